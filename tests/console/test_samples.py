"""The sampled-audits page in a real browser: the draw and its sampled requests, the checklist round trip (a
`sample_review` in the log, the row reviewed and found wanting), a POST refused without the session's token,
axe, 375 px, screenshots, and the form filled and sent with the keyboard alone."""
from __future__ import annotations

import aiohttp

from bot import wording
from bot.console.session import SessionCodec, session_secret
from bot.oversight import samples

from .conftest import (
    AUDITOR,
    CHIEF,
    CLIENT_SECRET,
    screenshot,
    scrolls_sideways,
    serious_axe_violations,
    signed_in_page,
)

TZ = "America/Los_Angeles"


def sample_month(console, ran: int = 14) -> dict:
    """`ran` searches that ran this month by officers (not the people signed in), one refused, and this month's
    draw as the leader records it (n = 10), assigned to the auditor."""
    log = console.rt.core.audit
    for i in range(ran):
        log.append("search", outcome="candidates" if i % 2 else "no_candidate", request_id=f"FR-SAMPLE{i:04d}",
                   requester={"id": f"UOFF{i % 3}", "name": f"Officer {i % 3}"}, call_number=f"26-0{i:05d}")
    log.append("search", outcome="denied", request_id="FR-REFUSED001", requester={"id": "UOFF1", "name": "O"})
    entries = list(log.entries())
    month = entries[-1]["ts"][:7]
    local = samples.population(entries, month, TZ)
    if len(local) != ran:  # the first hours of a UTC month are the last of the month before, locally
        month = samples.previous_month(console.rt.now(), TZ)
    fields = samples.draw_fields(entries, month, TZ, seed=20260101, percent=5.0, minimum=10,
                                 auditors=[{"id": AUDITOR, "name": "Auditor One"}], actor="frbot")
    return log.append("sample_draw", **fields)


async def test_the_page_lists_the_draw_and_its_sampled_requests_and_is_one_audited_view(console, browser):
    drawn = sample_month(console)
    page = await signed_in_page(browser, console)
    response = await page.goto(console.base + "/console/samples")
    assert response.status == 200
    draw_row = page.locator("table").first.locator("tbody tr").first
    assert await draw_row.locator("td").all_inner_texts() == [
        drawn["month"], str(drawn["seed"]), "14", "10", "0", "0", await draw_row.locator("td").nth(6).inner_text()]
    rows = page.locator("table").nth(1).locator("tbody tr")
    assert await rows.count() == 10
    links = await rows.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert links == [f"/console/requests/{rid}" for rid in drawn["request_ids"]]
    assert await rows.first.locator("td").nth(1).inner_text() == "Auditor One"
    assert await page.locator("details.checklist form").count() == 10  # one checklist per unreviewed request
    assert await page.get_by_text(wording.SAMPLE_RECHECK_OK).count() == 1
    views = [e for e in console.harness.audit_log().find(kinds=["audit_access"]) if e["action"] == "console_samples"]
    assert len(views) == 1 and views[0]["query"] == {"month": drawn["month"]} and views[0]["results"] == 10


async def test_the_checklist_round_trip_records_a_sample_review_and_shows_it_found_wanting(console, browser):
    drawn = sample_month(console)
    first = drawn["request_ids"][0]
    page = await signed_in_page(browser, console)
    await page.goto(console.base + "/console/samples")
    form = page.locator("details.checklist").first
    await form.locator("summary").click()  # the checklists are folded until opened
    for name, _question in samples.CHECKLIST:
        answer = "no" if name == "lead_corroborated" else "yes"
        await form.locator(f"input[name={name}][value={answer}]").check()
    await form.get_by_label("Note").fill("Lead acted on without corroboration (report 26-4411)")
    async with page.expect_navigation():
        await form.get_by_role("button").click()
    assert page.url.startswith(console.base + f"/console/samples?month={drawn['month']}")
    [review] = console.harness.audit_log().find(kinds=["sample_review"])
    assert (review["request_id"], review["month"], review["found_wanting"]) == (first, drawn["month"], True)
    assert review["answers"]["lead_corroborated"] == "no" and review["actor"]["id"] == CHIEF
    assert review["roles"] == ["command_staff"]
    row = page.locator(f"tr[id='{first}']")
    assert (await row.locator("td").nth(2).inner_text()).startswith("yes, by Chief One")
    assert await row.locator("td").nth(3).inner_text() == "yes"
    assert await page.locator("details.checklist form").count() == 9
    assert samples.summary(console.harness.audit_log().entries(), drawn["month"]).found_wanting == 1


async def test_a_checklist_post_without_the_sessions_token_or_from_elsewhere_is_refused(console):
    drawn = sample_month(console)
    cookie = console.cookie()
    url = f"{console.base}/console/samples/{drawn['month']}/{drawn['request_ids'][0]}"
    answers = {name: "yes" for name, _ in samples.CHECKLIST}
    token = SessionCodec(session_secret(CLIENT_SECRET)).loads(cookie["value"], 3600).csrf
    signed = {**answers, "csrf_token": token}
    async with aiohttp.ClientSession() as http:
        for headers, form in (({"Origin": console.base}, answers),
                              ({"Origin": console.base}, {**answers, "csrf_token": "not-the-token"}),
                              ({"Origin": "https://evil.example"}, signed),  # the real token, from elsewhere
                              ({}, signed)):  # neither Origin nor Referer
            async with http.post(url, data=form, allow_redirects=False,
                                 headers={**headers, "Cookie": f"{cookie['name']}={cookie['value']}"}) as response:
                assert response.status == 403
        # Everything right, but Slack no longer shows the person as command staff: the POST asks Slack afresh.
        console.harness.slack.deactivate_user(CHIEF)
        async with http.post(url, data=signed, allow_redirects=False,
                             headers={"Origin": console.base, "Cookie": f"{cookie['name']}={cookie['value']}"}) as response:
            assert response.status == 403
            assert await response.text() == wording.CONSOLE_ROLE_GONE
    assert console.harness.audit_log().find(kinds=["sample_review"]) == []


async def test_the_page_passes_axe_fits_375_px_and_is_screenshotted(console, browser):
    sample_month(console)
    for width in (1280, 375):
        page = await signed_in_page(browser, console, width=width)
        await page.goto(console.base + "/console/samples")
        assert await serious_axe_violations(page) == []
        assert not await scrolls_sideways(page)
        unlabelled = await page.locator("input:not([type=hidden]), textarea").evaluate_all(
            "els => els.filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).length")
        assert unlabelled == 0
        await screenshot(page, f"samples-{width}")


async def test_the_checklist_can_be_filled_and_sent_with_the_keyboard_alone(console, browser):
    drawn = sample_month(console)
    page = await signed_in_page(browser, console)
    await page.goto(console.base + "/console/samples")
    for _ in range(200):  # Tab through the page until the first checklist's summary has the focus
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.tagName") == "SUMMARY":
            break
    else:
        raise AssertionError("Tab never reached the checklist")
    await page.keyboard.press("Enter")  # opens it
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "r1-purpose_fits-yes"
    for index in range(len(samples.CHECKLIST)):
        await page.keyboard.press("Space")  # "yes"
        if index == 1:
            await page.keyboard.press("ArrowRight")  # the justification: "no"
        await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "r1-note"
    await page.keyboard.type("Justification is a label, no facts")
    await page.keyboard.press("Tab")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    [review] = console.harness.audit_log().find(kinds=["sample_review"])
    assert review["request_id"] == drawn["request_ids"][0]
    assert review["answers"] == {**{n: "yes" for n, _ in samples.CHECKLIST}, "justification_states_facts": "no"}
    assert review["note"] == "Justification is a label, no facts" and review["found_wanting"] is True


async def test_a_draw_that_does_not_match_the_log_is_shown_as_failing_its_recheck(console, browser):
    log = console.rt.core.audit
    drawn = sample_month(console)
    forged = {k: v for k, v in drawn.items() if k not in ("kind", "seq", "ts", "prev", "mac")}
    forged.update(month="2026-01", request_ids=list(reversed(drawn["request_ids"])))  # not what the seed draws
    log.append("sample_draw", **forged)
    page = await signed_in_page(browser, console)
    await page.goto(console.base + "/console/samples?month=2026-01")
    failed = page.locator(".status-broken")
    assert (await failed.inner_text()).startswith(wording.SAMPLE_RECHECK_FAILED)
    assert await page.get_by_text(wording.SAMPLE_RECHECK_OK).count() == 0


async def test_a_checklist_the_core_refuses_is_answered_with_its_sentence_and_records_nothing(console, browser):
    drawn = sample_month(console)
    page = await signed_in_page(browser, console)
    await page.goto(console.base + "/console/samples")
    form = page.locator("details.checklist").first
    await form.locator("summary").click()
    for name, _question in samples.CHECKLIST:
        await form.locator(f"input[name={name}][value=no]").check()
    async with page.expect_navigation():
        await form.get_by_role("button").click()  # found wanting, but no note
    assert await page.get_by_role("alert").inner_text() == wording.SAMPLE_NOTE_NEEDED
    assert console.harness.audit_log().find(kinds=["sample_review"]) == []
    assert await page.get_by_role("link", name=wording.SAMPLE_BACK).get_attribute("href") == (
        f"/console/samples?month={drawn['month']}")
