"""The searches page and its exports in a real browser (headless Chromium): rows for real searches, each request id
linking to its trail, the filter form used with the keyboard, paging, filters and export agreeing with the CLI's
`audit export` of the same range, a tampered log shown as broken (page banner, export warning first), exactly one
`audit_access` entry per view, axe, 375 px, screenshots (build/console/searches-*.png)."""
from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from bot import wording
from bot.cli import main as cli
from bot.oversight import chain_check, searches
from tests.conftest import edit_in_place

from .conftest import CHIEF, screenshot, scrolls_sideways, serious_axe_violations, signed_in_page


def _crafted(console, day: datetime, n: int, **fields) -> dict:
    """A search entry stamped `day`, appended to the server's own log file through a second writer."""
    log = console.harness.audit_log(clock=lambda: day)
    body = {"outcome": "candidates", "request_id": f"FR-CRAFT{n:04d}", "call_number": f"26-{n:06d}",
            "requester": {"id": "UOFFICER2", "name": "Ofc. Lee"}, "purpose": "investigation",
            "justification": "Armed robbery at 5th and Main; store camera photo of the man at the register.",
            "candidates": [{"rank": 1, "subject_id": "obama", "distance": 0.31}]}
    body.update(fields)
    return log.append("search", **body)


def _local_day(console, when: datetime) -> str:
    return searches.today(when, console.rt.settings.timezone).isoformat()


def _views(console) -> list[dict]:
    """The console's page views in the audit log (`audit_access`, action console_*)."""
    return [e for e in console.harness.audit_log().find(kinds=["audit_access"])
            if str(e.get("action", "")).startswith("console_")]


async def _rows(page) -> list[dict[str, str]]:
    """The table's rows as {column label: cell text}."""
    return await page.locator("table tbody tr").evaluate_all(
        "rows => rows.map(r => Object.fromEntries([...r.cells].map(c => [c.dataset.label, c.innerText.trim()])))")


async def test_real_searches_are_listed_with_links_to_their_trail_at_1280_and_375_px(console, browser):
    harness = console.harness
    upload = await harness.upload(harness.face("people/obama/obama3.jpg"))
    await harness.answer_all(upload)
    await harness.done(upload)
    [real] = harness.audit()
    _crafted(console, datetime.now(UTC) - timedelta(minutes=5), 1, outcome="no_candidate", candidates=[],
             flags=["protected_class"])
    for width in (1280, 375):
        page = await signed_in_page(browser, console, width=width)
        response = await page.goto(console.base + "/console/searches")
        assert response.status == 200
        rows = await _rows(page)
        assert [r["Request"] for r in rows] == [real["request_id"], "FR-CRAFT0001"]  # newest first
        assert rows[0]["Outcome"] == wording.outcome_label("candidates") and rows[0]["Call number"] == "26-012345"
        assert rows[0]["Requester"] == f"{real['requester']['name']} ({real['requester']['id']})"
        assert rows[0]["Candidates"] == str(len(real["candidates"])) and rows[0]["Flagged"] == "no"
        assert rows[1]["Flagged"] == "yes" and rows[1]["Candidates"] == "0"
        href = await page.locator("table tbody tr").first.get_by_role("link").get_attribute("href")
        assert href == f"/console/requests/{real['request_id']}"
        assert await page.locator("table caption").inner_text() == \
            f"{wording.CONSOLE_SEARCHES_CAPTION} ({wording.console_searches_count(2, 1, 1)})"
        assert await page.locator("th[scope=col]").count() == 9
        for label in ("from", "to", "requester", "purpose", "outcome", "call number", "flagged", "reviewed"):
            assert await page.get_by_label(label, exact=True).count() == 1, label
        assert await page.locator("select").count() == 4  # purpose, outcome, flagged, reviewed: closed lists
        assert await page.get_by_text(wording.console_default_range(searches.DEFAULT_DAYS)).count() == 1
        assert await serious_axe_violations(page) == []
        assert not await scrolls_sideways(page)
        await screenshot(page, f"searches-{width}")
    # On a phone the header row is off screen and each cell says what it is.
    assert await page.locator("table.stack thead").evaluate("e => e.getBoundingClientRect().right < 0")


async def test_the_filter_form_is_used_with_the_keyboard_alone(console, browser):
    now = datetime.now(UTC)
    _crafted(console, now - timedelta(minutes=3), 1)
    _crafted(console, now - timedelta(minutes=2), 2, outcome="no_candidate", candidates=[])
    _crafted(console, now - timedelta(minutes=1), 3, outcome="no_candidate", candidates=[],
             requester={"id": "UOFFICER3", "name": "Ofc. Park"})
    page = await signed_in_page(browser, console)
    await page.goto(console.base + "/console/searches")
    for _ in range(40):  # from the top of the page, Tab until the requester field has the focus
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") == "f-requester":
            break
    else:
        pytest.fail("Tab never reached the requester field")
    await page.keyboard.type("lee")
    await page.keyboard.press("Tab")  # purpose: left at any
    await page.keyboard.press("Tab")  # outcome
    await page.keyboard.type("no")  # picks "no candidate (not an exclusion)"
    await page.keyboard.press("Tab")  # call number
    await page.keyboard.press("Enter")  # submits the form
    await page.wait_for_url("**/console/searches?*")
    query = parse_qs(urlsplit(page.url).query)
    assert query["requester"] == ["lee"] and query["outcome"] == ["no_candidate"]
    assert [r["Request"] for r in await _rows(page)] == ["FR-CRAFT0002"]
    assert await page.get_by_label("outcome", exact=True).input_value() == "no_candidate"  # the form keeps it
    assert await page.get_by_label("requester", exact=True).input_value() == "lee"
    assert await serious_axe_violations(page) == []
    await screenshot(page, "searches-filtered-1280")


async def test_pages_hold_a_hundred_searches_newest_first_with_next_and_previous(console, browser):
    now = datetime.now(UTC)
    for n in range(searches.PAGE_SIZE + 5):
        _crafted(console, now - timedelta(minutes=200 - n), n)
    page = await signed_in_page(browser, console, width=375)
    await page.goto(console.base + "/console/searches?from=")
    first = await _rows(page)
    assert len(first) == searches.PAGE_SIZE and first[0]["Request"] == "FR-CRAFT0104"
    assert await page.get_by_role("link", name="Previous page").count() == 0
    await page.get_by_role("link", name="Next page").click()
    await page.wait_for_url("**page=2*")
    assert [r["Request"] for r in await _rows(page)] == [f"FR-CRAFT{n:04d}" for n in range(4, -1, -1)]
    assert await page.get_by_text(wording.console_searches_count(105, 2, 2)).count() >= 1
    assert not await scrolls_sideways(page)
    await page.get_by_role("link", name="Previous page").click()
    await page.wait_for_url("**/console/searches?from=*")
    assert "page=" not in page.url and len(await _rows(page)) == searches.PAGE_SIZE


async def test_filters_and_export_agree_with_the_clis_export_of_the_same_range(console, browser, monkeypatch,
                                                                                 tmp_path):
    now = datetime.now(UTC)
    for n, days in enumerate((4, 3, 3, 2, 1)):
        _crafted(console, now - timedelta(days=days), n, outcome="no_candidate" if n % 2 else "candidates")
    since, until = _local_day(console, now - timedelta(days=3)), _local_day(console, now - timedelta(days=2))
    page = await signed_in_page(browser, console)
    await page.goto(f"{console.base}/console/searches?from={since}&to={until}")
    assert sorted(r["Request"] for r in await _rows(page)) == ["FR-CRAFT0001", "FR-CRAFT0002", "FR-CRAFT0003"]
    async with page.expect_download() as info:
        await page.get_by_role("link", name="CSV").click()
    download = await info.value
    assert download.suggested_filename == f"frbot-searches-{since}-{until}.csv"
    console_csv = Path(await download.path()).read_bytes()
    jsonl = await page.context.request.get(f"{console.base}/console/searches/export.jsonl?from={since}&to={until}")
    assert jsonl.headers["content-disposition"] == f'attachment; filename="frbot-searches-{since}-{until}.jsonl"'
    # The CLI of the same department (data dir, timezone), asked for the same days' searches.
    config = tmp_path / "settings.toml"
    config.write_text(f'timezone = "{console.rt.settings.timezone}"\n')
    console.harness.cli_env(monkeypatch)
    monkeypatch.setenv("BOT_CONFIG", str(config))
    monkeypatch.setenv("SUDO_USER", "auditor")
    for fmt, got in (("csv", console_csv), ("jsonl", await jsonl.body())):
        out = tmp_path / f"cli.{fmt}"
        assert cli.main(["audit", "export", "--since", since, "--until", until, "--kind", "search",
                         "--format", fmt, "--out", str(out)]) == 0
        assert got == out.read_bytes(), fmt  # byte for byte
    # A filter narrows the export the way it narrows the page: the CLI's rows with that outcome.
    narrowed = await page.context.request.get(
        f"{console.base}/console/searches/export.csv?from={since}&to={until}&outcome=no_candidate")
    cli_rows = list(csv.DictReader(io.StringIO((tmp_path / "cli.csv").read_bytes().decode("utf-8-sig"))))
    rows = list(csv.DictReader(io.StringIO((await narrowed.body()).decode("utf-8-sig"))))
    assert rows == [r for r in cli_rows if r["outcome"] == "no_candidate"] and len(rows) == 2
    exports = [e for e in console.harness.audit_log().find(kinds=["audit_access"]) if e["action"] == "export"
               and e["actor"]["id"] == CHIEF]
    assert [e["query"].get("format") for e in exports] == ["csv", "jsonl", "csv"]
    assert exports[2]["query"] == {"from": since, "to": until, "outcome": "no_candidate", "format": "csv",
                                   "kinds": ["search"]} and exports[2]["results"] == 2


async def test_a_tampered_log_is_shown_broken_on_the_page_and_first_in_the_export(console, browser):
    now = datetime.now(UTC)
    for n in range(3):
        _crafted(console, now - timedelta(minutes=10 - n), n)
    log = console.rt.core.audit
    assert log.verify().ok  # as the leader's check at start: the verified prefix now covers them
    page = await signed_in_page(browser, console)
    await page.goto(console.base + "/console/searches")
    assert await page.locator(".banner-broken").count() == 0
    # A careful tamperer's edit: same length, before the verified prefix. The export checks every line.
    edit_in_place(log.path, b"5th and Main", b"6th and Main")
    broken = log.verify()
    assert not broken.ok and broken.reason == "mac mismatch"
    warning = wording.audit_chain_broken(broken.bad_seq, broken.reason)
    for fmt in ("csv", "jsonl"):
        response = await page.context.request.get(f"{console.base}/console/searches/export.{fmt}?from=")
        first = (await response.body()).decode("utf-8-sig").splitlines()[0]
        assert (next(csv.reader([first])) == [warning]) if fmt == "csv" else (json.loads(first) == {"warning": warning})
    # The leader's full check (as it runs every hour) finds it; the page says so at once.
    chain_check.save(console.rt.core.backend.small_records(), chain_check.run(log, now, "leader test"))
    await page.goto(console.base + "/console/searches")
    banner = page.get_by_role("alert")
    assert await banner.inner_text() == wording.console_chain_banner(broken.bad_seq, "mac mismatch")
    await screenshot(page, "searches-broken-1280")
    # An edit that changes a line's length is seen by the page's own check of the tail, with no full check.
    chain_check.save(console.rt.core.backend.small_records(), chain_check.ChainCheck(
        True, 0, None, None, None, "", "2026-01-01T00:00:00.000000Z", "stale"))
    edit_in_place(log.path, b"6th and Main", b"5th and Main")  # undone: the chain verifies again
    assert log.verify().ok
    await page.goto(console.base + "/console/searches")
    assert await page.locator(".banner-broken").count() == 0
    data = log.path.read_bytes().replace(b"5th and Main", b"5th & Main", 1)
    log.path.write_bytes(data)
    await page.goto(console.base + "/console/searches")
    assert "does NOT verify" in await page.get_by_role("alert").inner_text()
    assert await serious_axe_violations(page) == []


async def test_each_view_writes_exactly_one_audit_access_entry_with_its_filters(console, browser):
    _crafted(console, datetime.now(UTC), 1)
    page = await signed_in_page(browser, console)
    before = len(_views(console))
    await page.goto(console.base + "/console/searches?from=&outcome=candidates&call_number=26-000001")
    views = _views(console)[before:]
    assert len(views) == 1
    assert views[0]["action"] == "console_searches" and views[0]["actor"]["id"] == CHIEF
    assert views[0]["query"] == {"outcome": "candidates", "call_number": "26-000001"} and views[0]["results"] == 1
    # A bad value: the sentence on the page (400), nothing listed, still one entry for the view.
    response = await page.goto(console.base + "/console/searches?from=2026-02-30&flagged=maybe")
    assert response.status == 400
    alert = await page.get_by_role("alert").inner_text()
    assert wording.console_bad_date("from", "2026-02-30") in alert
    assert wording.console_bad_choice("flagged", "maybe", searches.YES_NO) in alert
    assert await page.locator("table").count() == 0
    views = _views(console)[before:]
    assert len(views) == 2 and views[1]["refused"] and "results" not in views[1]
    # An export with a bad value is refused in words and exports nothing (no export entry).
    refused = await page.context.request.get(console.base + "/console/searches/export.csv?outcome=maybe")
    assert refused.status == 400
    assert await refused.text() == wording.console_bad_choice("outcome", "maybe", searches.OUTCOMES)
    assert not [e for e in console.harness.audit_log().find(kinds=["audit_access"]) if e["action"] == "export"]
    assert await serious_axe_violations(page) == []
