"""The console's status pages in a real browser: the monthly report with its chart (the chain judged first), the
chain (clean, then BROKEN after a line of the log is edited, never shown clean), and the open examiner reviews
and approvals. Each page view writes one `audit_access` entry; the chart image writes none."""
from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

import aiohttp

from bot import wording
from bot.config import AuditSettings
from bot.oversight import chain_check, monthly, review

from ..slack.test_e2e_audit import HEAD_CHANNEL
from ..slack.test_e2e_examination import EXAMINER, SECOND, press, searched
from ..slack.test_e2e_frs import edit_audit_entry, seed_call
from .conftest import screenshot, signed_in_page
from .test_trail import OFFICER, check_page, console_reads, console_with_review, image_widths


def middle_of_last_month(tz: str) -> tuple[str, datetime]:
    """("YYYY-MM", noon on its 15th in `tz`, as UTC) of the month before this one."""
    month = review.previous_month(datetime.now(UTC), tz)
    year, mon = review.parse_month(month)
    return month, datetime.combine(datetime(year, mon, 15).date(), time(12), tzinfo=review.zone(tz)).astimezone(UTC)


async def test_the_monthly_report_shows_last_months_counts_and_chart_after_the_chain_check(console, browser):
    tz = console.rt.settings.timezone
    month, when = middle_of_last_month(tz)
    seed_call(console.harness, when)  # four requests: three ran (one found no candidate), one refused
    title = monthly.summarise_month([], month, tz).month_title
    for width in (1280, 375):
        before = len(console_reads(console))
        page = await signed_in_page(browser, console, width=width)
        assert (await page.goto(f"{console.base}/console/report")).status == 200  # last month by default
        assert title in await page.inner_text("h1")
        main = await page.inner_text("main")
        chain = await page.inner_text(".chain-line")  # the chain's state first, never clean on trust
        assert main.index(chain) < main.index("Requests per week")
        assert chain.startswith(wording.CONSOLE_CHAIN_NOT_CHECKED) or "checked" in chain
        counts = await page.locator("table.summary tbody tr").first.locator("td").all_inner_texts()
        assert counts == ["Requests", "4"]
        ran = await page.locator("table.summary tbody tr", has_text="Searches that ran").locator("td").all_inner_texts()
        assert ran == ["Searches that ran", "3"]
        [chart] = await image_widths(page, "figure.chart img")
        assert chart > 0
        alt = await page.locator("figure.chart img").get_attribute("alt")
        assert alt == wording.console_chart_alt(title, 4)
        reads = console_reads(console)
        assert len(reads) == before + 1 and reads[-1]["action"] == "console_report"
        assert reads[-1]["query"] == {"month": month} and reads[-1]["results"] == 4
        png = await page.request.get(f"{console.base}/console/report/chart.png?month={month}")
        assert png.status == 200 and (await png.body())[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(console_reads(console)) == before + 1  # the chart writes no entry
        assert await page.locator("label[for=month]").inner_text() == "Month"
        await check_page(page, "report", width)
        await page.context.close()

    page = await signed_in_page(browser, console)
    await page.goto(f"{console.base}/console/report")
    await page.focus("#month")  # the keyboard alone picks another month
    await page.fill("#month", "2026-01")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/console/report?month=2026-01")
    assert "January 2026" in await page.inner_text("h1")
    await page.goto(f"{console.base}/console/report?month=2026-13")
    assert wording.console_bad_month("2026-13") in await page.inner_text("main")


async def test_the_chain_page_shows_a_clean_check_then_broken_after_a_line_is_edited_never_clean(console, browser):
    harness = console.harness
    await harness.idle()  # the leader's own check at start, then forgotten: this page before any check
    assert chain_check.last(console.rt.core.backend.small_records()).by == console.rt.replica
    console.rt.core.backend.small_records().remove(chain_check.NAMESPACE, chain_check.KEY)
    seed_call(harness, datetime.now(UTC))  # entries 1-4, call 26-012345
    page = await signed_in_page(browser, console)
    assert (await page.goto(f"{console.base}/console/chain")).status == 200
    assert wording.CONSOLE_CHAIN_NEVER_CHECKED in await page.inner_text("main")
    assert wording.CONSOLE_HEAD_NOT_CONFIGURED in await page.inner_text("td.posted-note")
    await check_page(page, "chain-unchecked", 1280)

    async with page.expect_navigation(url="**/console/chain"):  # the POST, then its 303 back here
        await page.get_by_role("button", name="Check the whole chain now").click()
    verdict = await page.inner_text(".chain-verdict")
    assert verdict.startswith("INTACT") and wording.CONSOLE_CHAIN_OK in verdict
    saved = chain_check.last(console.rt.core.backend.small_records())
    assert saved.ok and saved.by == "Chief One (UCHIEF1) on the console" and saved.count >= 5
    await check_page(page, "chain", 1280)

    edit_audit_entry(harness, 1, b"26-012345", b"26-012399")  # a careful tamperer: same length, same inode
    await page.reload()
    assert (await page.inner_text(".chain-verdict")).startswith("INTACT")  # the last check, with its time
    await page.get_by_role("button", name="Check the whole chain now").focus()  # by keyboard this time
    async with page.expect_navigation(url="**/console/chain"):
        await page.keyboard.press("Enter")
    main = await page.inner_text("main")
    assert wording.console_chain_broken(1, "mac mismatch") in main and "INTACT" not in main
    assert await page.inner_text("dd.bad-seq") == "1"
    assert not chain_check.last(console.rt.core.backend.small_records()).ok
    raised = [e for e in console.harness.audit_log().entries() if e["kind"] == "alert"]
    assert [e["rule"] for e in raised] == ["chain"]  # the console's check raised the chain alert at once
    chain_views = [r for r in console_reads(console) if r["action"] == "console_chain"]
    assert len(chain_views) == 4  # one per GET (two of them after a check's redirect), none for the POSTs
    for width in (1280, 375):
        page = await signed_in_page(browser, console, width=width)
        await page.goto(f"{console.base}/console/chain")
        assert "BROKEN at entry 1" in await page.inner_text("main")
        await check_page(page, "chain-broken", width)

    before = chain_check.last(console.rt.core.backend.small_records())
    cookies = {"frbot_console": console.cookie()["value"]}
    async with aiohttp.ClientSession(cookies=cookies) as http, http.post(
            f"{console.base}/console/chain/verify", data={"csrf_token": "forged"}, headers={"Origin": console.base},
            allow_redirects=False) as forged:
        assert forged.status == 403  # a POST needs the session's own token
    assert chain_check.last(console.rt.core.backend.small_records()) == before


async def test_the_chain_page_shows_the_head_posted_last_in_the_head_channel(harness, browser):
    harness.slack.add_channel(HEAD_CHANNEL, "frs-audit-heads", is_private=True)
    seed_call(harness, datetime.now(UTC))  # a log with entries: its head is posted at start
    console = await console_with_review(harness, audit=AuditSettings(head_channel=HEAD_CHANNEL))
    posted = await harness.slack.wait_for(lambda c: c.method == "chat.postMessage"
                                          and c.params.get("channel") == HEAD_CHANNEL, ok=True)
    head = posted.params["metadata"]["event_payload"]
    page = await signed_in_page(browser, console, width=375)
    await page.goto(f"{console.base}/console/chain")
    row = await page.inner_text("table tbody tr:nth-child(3)")
    assert str(head["seq"]) in row and head["mac"] in row
    assert await page.locator("[role=alert]").count() == 0
    alarm = wording.audit_head_alarm(head["seq"], "missing", 2)
    console.rt.state["head_alarm"] = alarm  # as the daily job keeps it (bot.slack.flow.jobs.publish_head)
    await page.reload()
    assert await page.inner_text("[role=alert]") == alarm
    await check_page(page, "chain-head", 375)


async def test_open_reviews_list_each_waiting_request_with_who_claimed_it_and_what_it_waits_for(harness, browser):
    console = await console_with_review(harness, mode="examiner", examiners=(EXAMINER, SECOND, OFFICER))
    page = await signed_in_page(browser, console)
    await page.goto(f"{console.base}/console/open")
    assert wording.CONSOLE_NOTHING_OPEN in await page.inner_text("main")

    await searched(harness)
    [search] = harness.audit()
    rid = search["request_id"]
    await page.reload()
    row = page.locator("tbody tr")
    assert await row.count() == 1
    cells: list[Any] = await row.locator("td").all_inner_texts()
    assert cells[0] == rid and cells[1] == wording.CONSOLE_KIND_EXAMINATION
    assert cells[3] == "" and cells[4] == wording.CONSOLE_WAITS_EXAMINER_CLAIM and cells[6] == search["call_number"]
    assert await page.locator(f"a[href='/console/requests/{rid}']").count() == 1
    await check_page(page, "open", 1280)

    await press(harness, harness.slack, "fr_exam_claim", EXAMINER)
    for width in (1280, 375):
        page = await signed_in_page(browser, console, width=width)
        await page.goto(f"{console.base}/console/open")
        cells = await page.locator("tbody tr td").all_inner_texts()
        assert cells[3] == EXAMINER and cells[4] == wording.CONSOLE_WAITS_EXAMINER_RELEASE
        await check_page(page, "open-claimed", width)
    await page.locator(f"a[href='/console/requests/{rid}']").click()  # the row links to the trail
    await page.wait_for_url(f"**/console/requests/{rid}")
    assert "claimed" in await page.inner_text("#reviews + .table-wrap")
    views = [r["action"] for r in console_reads(console)]
    assert views == ["console_open"] * 4 + ["console_request"]
    await screenshot(page, "request-under-review-375")
