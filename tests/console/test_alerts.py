"""The console's alerts page in a real browser: the alerts the leader's rules raised, unreviewed first, each with its
request links; *Reviewed* writes exactly one `alert_review` entry with the note and the person; a POST without the
form's token or from another origin is refused and writes nothing."""
from __future__ import annotations

import aiohttp

from bot import wording
from bot.console.session import COOKIE, SessionCodec, session_secret
from bot.oversight import alerts
from bot.slack import flow

from .conftest import (
    AUDITOR,
    CHIEF,
    CLIENT_SECRET,
    screenshot,
    scrolls_sideways,
    serious_axe_violations,
    signed_in_page,
)

OFFICER_X = {"id": "UOFFICERX", "name": "Ofc. Flagged"}
STRANGER = {"id": "USTRANGER9", "name": "Not A Requester"}


async def raise_alerts(console) -> dict[str, dict]:
    """A flagged search and a stranger refused 5 times, run through the leader's alert job: {rule: alert entry}."""
    log = console.rt.core.audit
    for n in range(5):
        log.append("search", outcome="denied", request_id=f"FR-REFUSED{n:02d}", requester=STRANGER,
                   denied=["not a requester"])
    log.append("search", outcome="no_candidate", request_id="FR-FLAGGED01", requester=OFFICER_X,
               flags=["protected_class"], probe_sha256="cd" * 32)
    written = await flow.check_alerts(console.rt)
    return {e["rule"]: e for e in written}


def views(console) -> list[dict]:
    """The alerts page's `audit_access` entries."""
    return [e for e in console.harness.audit_log().entries()
            if e.get("kind") == "audit_access" and e.get("action") == "console_alerts"]


def reviews(console) -> list[dict]:
    return [e for e in console.harness.audit_log().entries() if e.get("kind") == "alert_review"]


async def test_the_alerts_page_lists_unreviewed_first_with_request_links_and_passes_axe_at_1280_and_375_px(
    console, browser
):
    raised = await raise_alerts(console)
    refusals, flagged = raised["refusals"], raised["flagged"]
    console.rt.core.audit.append("alert_review", **alerts.review_fields(
        refusals["alert_id"], {"id": AUDITOR, "name": "Auditor One"}, "A stranger uploading into a case channel; "
        "told IT."))
    assert views(console) == []
    for width in (1280, 375):
        page = await signed_in_page(browser, console, width=width)
        response = await page.goto(console.base + "/console/alerts")
        assert response.status == 200
        rows = page.locator("li.alert")
        assert await rows.evaluate_all("els => els.map(e => e.id)") == [flagged["alert_id"], refusals["alert_id"]]
        first = rows.nth(0)
        assert await first.locator(".summary").inner_text() == flagged["summary"]
        assert "Not reviewed" in await first.locator("h2").inner_text()
        assert await first.locator("a[href='/console/requests/FR-FLAGGED01']").inner_text() == "FR-FLAGGED01"
        assert await first.locator("time").first.inner_text() != ""
        assert await first.locator("textarea").count() == 1
        second = rows.nth(1)
        assert await second.locator("a[href^='/console/requests/FR-REFUSED']").count() == 5
        note = await second.locator("p.reviewed").inner_text()
        assert note.startswith("Reviewed by Auditor One at ") and note.endswith(
            "A stranger uploading into a case channel; told IT.")
        assert await second.locator("form").count() == 0  # reviewed: who, when and the note; no form
        assert await serious_axe_violations(page) == []
        assert not await scrolls_sideways(page)
        await screenshot(page, f"alerts-{width}")
        await page.context.close()
    seen = views(console)
    assert len(seen) == 2  # one entry per view
    assert seen[0]["actor"]["id"] == CHIEF and seen[0]["results"] == 2 and seen[0]["unreviewed"] == 1


async def test_reviewed_round_trip_by_keyboard_writes_one_alert_review_with_the_note_and_the_person(console, browser):
    flagged = (await raise_alerts(console))["flagged"]
    page = await signed_in_page(browser, console)
    await page.goto(console.base + "/console/alerts")
    field = page.get_by_label(wording.ALERT_NOTE_LABEL).first
    assert await field.get_attribute("id") == f"note-{flagged['alert_id']}"
    await field.focus()
    await page.keyboard.type("Read the justification: it rests on the camera footage and the report.")
    await page.keyboard.press("Tab")  # to its Reviewed button
    assert await page.evaluate("document.activeElement.textContent") == wording.ALERT_REVIEWED_BUTTON
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert page.url.endswith(f"/console/alerts#{flagged['alert_id']}")
    [entry] = reviews(console)
    assert entry["alert_id"] == flagged["alert_id"]
    assert entry["note"] == "Read the justification: it rests on the camera footage and the report."
    assert entry["actor"] == {"id": CHIEF, "name": "Chief One"}
    row = page.locator(f"li#{flagged['alert_id']}")
    assert "Reviewed by Chief One at " in await row.locator("p.reviewed").inner_text()
    assert await row.locator("form").count() == 0
    rows = await page.locator("li.alert").evaluate_all("els => els.map(e => e.id)")
    assert rows[-1] == flagged["alert_id"]  # reviewed ones go after the unreviewed
    await screenshot(page, "alerts-reviewed")
    assert console.harness.verify_audit()


async def test_a_review_without_the_token_or_from_another_origin_is_refused_and_writes_nothing(console):
    flagged = (await raise_alerts(console))["flagged"]
    cookie = console.cookie()
    session = SessionCodec(session_secret(CLIENT_SECRET)).loads(cookie["value"], max_age=3600)
    url = f"{console.base}/console/alerts/{flagged['alert_id']}/review"
    headers = {"Cookie": f"{COOKIE}={cookie['value']}"}
    async with aiohttp.ClientSession() as http:
        for origin, form, sentence in (
            (console.base, {"note": "no token"}, wording.CONSOLE_BAD_TOKEN),
            (console.base, {"note": "wrong token", "csrf_token": "x" * len(session.csrf)}, wording.CONSOLE_BAD_TOKEN),
            ("https://evil.example", {"note": "elsewhere", "csrf_token": session.csrf}, wording.CONSOLE_FOREIGN_ORIGIN),
        ):
            async with http.post(url, data=form, headers={**headers, "Origin": origin},
                                 allow_redirects=False) as response:
                assert response.status == 403
                assert await response.text() == sentence
        assert reviews(console) == []
        async with http.post(f"{console.base}/console/alerts/AL-000000000000/review", allow_redirects=False,
                             data={"note": "x", "csrf_token": session.csrf},
                             headers={**headers, "Origin": console.base}) as response:
            assert response.status == 404
        async with http.post(url, data={"note": "   ", "csrf_token": session.csrf}, allow_redirects=False,
                             headers={**headers, "Origin": console.base}) as response:
            assert response.status == 400 and await response.text() == wording.ALERT_NOTE_MISSING
        assert reviews(console) == []
        async with http.post(url, data={"note": "checked", "csrf_token": session.csrf}, allow_redirects=False,
                             headers={**headers, "Origin": console.base}) as response:
            assert response.status == 303  # the same form with its token, from the console: accepted
        assert [r["note"] for r in reviews(console)] == ["checked"]


async def test_the_person_an_alert_is_about_cannot_mark_it_reviewed(console):
    """Command staff can be raised too: the chief's own flagged search is an alert the chief may not clear."""
    console.rt.core.audit.append("search", outcome="no_candidate", request_id="FR-CHIEFS0001",
                                 requester={"id": CHIEF, "name": "Chief One"}, flags=["protected_class"],
                                 probe_sha256="ef" * 32)
    [own] = [e for e in await flow.check_alerts(console.rt) if e["rule"] == "flagged"]
    url = f"{console.base}/console/alerts/{own['alert_id']}/review"
    async with aiohttp.ClientSession() as http:
        for who, status in ((CHIEF, 400), (AUDITOR, 303)):
            cookie = console.cookie(user_id=who, roles=("command_staff",) if who == CHIEF else ("auditor",))
            csrf = SessionCodec(session_secret(CLIENT_SECRET)).loads(cookie["value"], max_age=3600).csrf
            async with http.post(url, data={"note": "looked", "csrf_token": csrf}, allow_redirects=False,
                                 headers={"Cookie": f"{COOKIE}={cookie['value']}", "Origin": console.base}) as response:
                assert response.status == status
                if status == 400:
                    assert await response.text() == wording.ALERT_OWN
    assert [r["actor"]["id"] for r in reviews(console)] == [AUDITOR]
