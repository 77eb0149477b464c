"""One request's trail on the console, in a real browser: a real search made through the Slack double, its
answers, faces, candidates with their calibrated estimates and crops; the probe's crops while a request waits
(and gone, said in words, once searched); an examiner's decisions; an unknown id. A page view writes exactly one
`audit_access` entry; the images it loads write none."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import aiohttp

from bot import policy, wording
from bot.config import ReviewSettings

from ..slack.conftest import CALL, JUSTIFICATION, OFFICER, Clock, bot_settings
from ..slack.test_e2e_examination import (
    EXAMINER,
    NOTE,
    OBAMA,
    REVIEW,
    SECOND,
    SUPERVISOR,
    decide_approval,
    note,
    press,
)
from .conftest import (
    AUDITOR,
    CHIEF,
    CLIENT_ID,
    CLIENT_SECRET,
    ConsoleServer,
    free_port,
    screenshot,
    scrolls_sideways,
    serious_axe_violations,
    signed_in_page,
)


def console_reads(console: ConsoleServer) -> list[dict[str, Any]]:
    """The `audit_access` entries the console wrote (action console_*), in log order."""
    return [e for e in console.harness.audit_log().entries()
            if e.get("kind") == "audit_access" and str(e.get("action", "")).startswith("console_")]


async def console_with_review(harness: Any, *, audit: Any = None, **review: Any) -> ConsoleServer:
    """The `console` fixture's server with `[review]` settings (examiner mode, supervisor approval) and the review
    channel, an examiner pair and a supervisor in the Slack double; `audit`: its [audit] settings."""
    harness.slack.add_channel(REVIEW, "fr-review", is_private=True)
    for user, name in ((EXAMINER, "examiner.one"), (SECOND, "examiner.two"), (SUPERVISOR, "sgt.supervisor"),
                       (CHIEF, "chief.one"), (AUDITOR, "auditor.one")):
        harness.slack.add_user(user, name, display_name=name)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = bot_settings(harness.data_dir, command_staff=(CHIEF,))
    settings = replace(settings, review=ReviewSettings(review_channel=REVIEW, **review), audit=audit or settings.audit,
                       oversight=replace(settings.oversight, auditors=(AUDITOR,)),
                       console=replace(settings.console, public_url=base))
    clock = Clock()
    bot = await harness.start(settings=settings, port=port, clock=clock,
                              env={"CONSOLE_CLIENT_ID": CLIENT_ID, "CONSOLE_CLIENT_SECRET": CLIENT_SECRET})
    return ConsoleServer(harness, bot, base, clock)


async def image_widths(page: Any, selector: str) -> list[int]:
    """naturalWidth of every image matching `selector`, once each has loaded (0 for one that failed)."""
    await page.wait_for_load_state("load")
    return await page.locator(selector).evaluate_all("els => els.map(e => e.complete ? e.naturalWidth : 0)")


async def check_page(page: Any, name: str, width: int) -> None:
    """What every console page must pass: no serious axe violation, nothing sideways at 375 px, a screenshot."""
    assert await serious_axe_violations(page) == []
    assert not await scrolls_sideways(page)
    await screenshot(page, f"{name}-{width}")


async def test_a_searched_requests_trail_shows_answers_faces_candidates_estimates_and_crops(console, browser):
    harness = console.harness
    upload = await harness.upload(harness.face(OBAMA))
    await harness.answer_all(upload)
    await harness.done(upload)
    [search] = harness.audit()
    rid = search["request_id"]
    assert search["candidates"] and harness.cached_probes() == []  # the probe's crops went with the search
    first = search["candidates"][0]
    name = console.rt.core.gallery.subject(first["subject_id"])["name"]  # entries keep ids; names are the gallery's
    estimate = wording.estimate_text(first["fpir_estimate"], bool(first.get("below_resolution")),
                                     search["operating_point"])
    for width in (1280, 375):
        before = len(console_reads(console))
        page = await signed_in_page(browser, console, width=width)
        response = await page.goto(f"{console.base}/console/requests/{rid}")
        assert response.status == 200
        text = await page.inner_text("main")
        assert CALL in text and JUSTIFICATION in text
        assert policy.purpose_by_code(search["purpose"]).label in text
        assert "attested" in text and "Ofc. One" in text or OFFICER in text
        assert first["subject_id"] in text and name in text and estimate in text
        assert f"{first['distance']:.3f}" in text
        assert wording.CONSOLE_PROBE_REMOVED in text  # said in words, no broken image
        assert await page.locator(f"a[href='{search['permalink']}']").count() == 1  # the request thread
        widths = await image_widths(page, "table.candidates img")
        assert len(widths) == len(search["candidates"]) and all(w > 0 for w in widths)
        alts = await page.locator("table.candidates img").evaluate_all("els => els.map(e => e.alt)")
        assert alts[0] == wording.console_candidate_crop_alt(1) and name not in alts[0]
        reads = console_reads(console)
        assert len(reads) == before + 1  # the page, not its images
        assert reads[-1]["action"] == "console_request" and reads[-1]["query"] == {"request_id": rid}
        assert reads[-1]["actor"]["id"] == CHIEF
        fetched = await page.request.get(f"{console.base}/console/requests/{rid}/candidates/{first['subject_id']}.jpg")
        assert fetched.status == 200 and fetched.headers["content-type"] == "image/jpeg"
        # The same gallery face through a request whose search did not return it: not served.
        other = await page.request.get(f"{console.base}/console/requests/FR-0000000000/candidates/{first['subject_id']}.jpg")
        assert other.status == 404
        assert len(console_reads(console)) == before + 1
        await check_page(page, "request", width)
        await page.context.close()


async def test_a_request_waiting_for_a_supervisor_shows_its_probe_crops_until_the_search_removes_them(harness, browser):
    console = await console_with_review(harness, approval="always", supervisors=(SUPERVISOR,))
    upload = await harness.upload(harness.face(OBAMA), text=f"{CALL} purpose: 1 justification: {JUSTIFICATION}")
    await harness.wait_card("attestation")
    await harness.reply(upload, "I attest")
    await harness.wait_kind("approval_waiting")
    await harness.idle()
    [queued] = [e for e in harness.audit_log().entries() if e["kind"] == "review"]
    rid = queued["request_id"]
    assert harness.cached_probes() == [rid]

    page = await signed_in_page(browser, console)
    assert (await page.goto(f"{console.base}/console/requests/{rid}")).status == 200
    text = await page.inner_text("main")
    assert wording.CONSOLE_NOT_SEARCHED_YET in text and "supervisor approval" in text and "queued" in text
    assert wording.CONSOLE_ANSWERS_SO_FAR in text and CALL in text and JUSTIFICATION in text  # from the dialog
    [width] = await image_widths(page, "ul.faces img")  # one face, its crop from the probe cache
    assert width > 0
    alt = await page.locator("ul.faces img").get_attribute("alt")
    assert alt.startswith("Face 1 cut from the probe photo")
    before = len(console_reads(console))
    crop = await page.request.get(f"{console.base}/console/requests/{rid}/faces/1.jpg")
    assert crop.status == 200 and (await crop.body())[:2] == b"\xff\xd8"  # a JPEG
    assert len(console_reads(console)) == before  # an image fetch writes no audit entry
    await screenshot(page, "request-waiting-1280")
    await page.goto(f"{console.base}/console/open")  # listed as waiting for a supervisor, linking here
    cells = await page.locator("tbody tr td").all_inner_texts()
    assert cells[:2] == [rid, wording.CONSOLE_KIND_APPROVAL] and cells[4] == wording.console_waits_supervisor("always")
    await page.goto(f"{console.base}/console/requests/{rid}")

    await decide_approval(harness, harness.slack, "fr_approval_approve", SUPERVISOR, "facts and report number given")
    await harness.done(upload)
    assert harness.cached_probes() == []
    await page.reload()
    text = await page.inner_text("main")
    assert "approved" in text and "facts and report number given" in text and SUPERVISOR in text
    assert wording.CONSOLE_PROBE_REMOVED in text and await page.locator("ul.faces img").count() == 0
    gone = await page.request.get(f"{console.base}/console/requests/{rid}/faces/1.jpg")
    assert gone.status == 404


async def test_an_examiners_decisions_and_release_show_on_the_trail(harness, browser):
    console = await console_with_review(harness, mode="examiner", examiners=(EXAMINER, SECOND, OFFICER))
    from ..slack.test_e2e_examination import searched

    await searched(harness)
    [search] = harness.audit()
    await press(harness, harness.slack, "fr_exam_claim", EXAMINER)
    await press(harness, harness.slack, "fr_exam_decide", EXAMINER, "|possible_lead")
    await note(harness, harness.slack, EXAMINER, NOTE)
    await press(harness, harness.slack, "fr_exam_release", EXAMINER)
    await harness.wait_kind("result")
    await harness.idle()

    page = await signed_in_page(browser, console)
    assert (await page.goto(f"{console.base}/console/requests/{search['request_id']}")).status == 200
    row = await page.inner_text("table.candidates tbody tr:first-child")
    assert "obama" in row and f"{EXAMINER}: possible lead — {NOTE}" in row
    steps = await page.inner_text("#reviews + .table-wrap")
    for words in ("queued", "claimed", "decided a candidate", "released", "Possible lead", NOTE):
        assert words in steps
    assert wording.outcome_label("candidates") in await page.inner_text("main")  # the release's outcome
    await check_page(page, "request-examined", 1280)


async def test_an_unknown_request_id_is_a_404_page_with_a_sentence_and_one_access_entry(console, browser):
    page = await signed_in_page(browser, console, width=375)
    response = await page.goto(f"{console.base}/console/requests/FR-0000000000")
    assert response.status == 404
    assert wording.console_unknown_request("FR-0000000000") in await page.inner_text("main")
    [read] = console_reads(console)
    assert read["action"] == "console_request" and read["results"] == 0
    await check_page(page, "request-unknown", 375)
    cookies = {"frbot_console": console.cookie()["value"]}
    async with aiohttp.ClientSession(cookies=cookies) as http, http.get(f"{console.base}/console/requests/..%2Fetc") as odd:
        assert odd.status == 404  # never a file path
