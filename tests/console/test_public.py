"""The public transparency report's console page in a real browser: the year's counts with small cells
suppressed, no request id, name or call number on it, one audited view, axe, 375 px and screenshots."""
from __future__ import annotations

from bot import wording
from bot.oversight.review import zone

from .conftest import screenshot, scrolls_sideways, serious_axe_violations, signed_in_page


def a_year(console) -> tuple[str, list[str]]:
    """Twelve searches this month (and three refused), each with its own requester, call number and text."""
    log = console.rt.core.audit
    planted = []
    for i in range(15):
        rid, uid, call = f"FR-PUBLIC{i:04d}", f"UPUBLIC{i:04d}", f"26-PUB{i:04d}"
        name, text = f"Officer Publicname{i}", f"Burglary narrative publictext {i}"
        log.append("search", outcome="denied" if i >= 12 else "candidates", request_id=rid,
                   requester={"id": uid, "name": name}, call_number=call, justification=text,
                   purpose="investigation")
        planted += [rid, uid, call, name, text]
    return str(console.rt.now().astimezone(zone(console.rt.settings.timezone)).year), planted


async def test_the_public_page_shows_the_years_counts_and_nothing_personal(console, browser):
    year, planted = a_year(console)
    for width in (1280, 375):
        page = await signed_in_page(browser, console, width=width)
        response = await page.goto(f"{console.base}/console/public?year={year}")
        assert response.status == 200
        assert await page.locator("h1").inner_text() == wording.public_report_title(int(year))
        outcomes = page.locator("#requests_by_outcome + .table-wrap tbody tr")
        shown = dict(zip(await outcomes.locator("th").all_inner_texts(),
                         await outcomes.locator("td").all_inner_texts(), strict=True))
        # 12 with candidates; the 3 refused are under 5, and the smallest other non-zero count (the 12) goes too.
        assert shown[wording.outcome_label("candidates")] == "<5"
        assert shown[wording.outcome_label("denied")] == "<5" and shown[wording.PUBLIC_TOTAL] == "15"
        body = await page.content()
        for token in planted:
            assert token not in body, token
        assert await serious_axe_violations(page) == []
        assert not await scrolls_sideways(page)
        assert await page.get_by_label(wording.PUBLIC_YEAR_LABEL).input_value() == year
        await screenshot(page, f"public-{width}")
    views = [e for e in console.harness.audit_log().find(kinds=["audit_access"]) if e["action"] == "console_public"]
    assert len(views) == 2 and views[0]["query"] == {"year": int(year)} and views[0]["results"] == 15


async def test_the_written_file_stands_alone_passes_axe_fits_375_px_and_prints_to_pdf(console, browser, tmp_path):
    from bot.console.public import render_html
    from bot.oversight import transparency

    year, _ = a_year(console)
    report = transparency.build(console.rt.core.audit.entries(), int(year), console.rt.settings.timezone)
    path = tmp_path / f"transparency-{year}.html"
    path.write_text(render_html(report, standalone=True), encoding="utf-8")
    for width in (1280, 375):
        context = await browser.new_context(viewport={"width": width, "height": 900})
        page = await context.new_page()
        requests: list[str] = []
        page.on("request", lambda r, seen=requests: seen.append(r.url))
        await page.goto(path.as_uri())
        assert requests == [path.as_uri()]  # self-contained: nothing else is fetched
        assert await page.locator("table.public").count() == 6  # the two alert tables: "no alert was raised"
        assert await page.get_by_text(wording.PUBLIC_NO_ALERTS).count() == 2
        assert await serious_axe_violations(page) == []
        assert not await scrolls_sideways(page)
        await screenshot(page, f"public-file-{width}")
        if width == 1280:
            await page.emulate_media(media="print")
            assert await page.locator(".hint").is_hidden()  # the print rules apply
            pdf = await page.pdf(format="A4")
            assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
            (tmp_path / "report.pdf").write_bytes(pdf)
        await context.close()
