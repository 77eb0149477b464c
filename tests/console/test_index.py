"""The console's front page in a real browser, and the console being off without its credentials."""
from __future__ import annotations

import aiohttp

from .conftest import CHIEF, screenshot, scrolls_sideways, serious_axe_violations, signed_in_page


async def test_the_front_page_links_every_console_page_and_passes_axe_at_1280_and_375_px(console, browser):
    for width in (1280, 375):
        page = await signed_in_page(browser, console, width=width)
        response = await page.goto(console.base + "/console")
        assert response.status == 200
        links = await page.locator("nav a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
        for href in ("/console/searches", "/console/alerts", "/console/report", "/console/chain"):
            assert href in links
        assert await serious_axe_violations(page) == []
        assert not await scrolls_sideways(page)
        await screenshot(page, f"index-{width}")
    views = [e for e in console.console_entries() if e["action"] == "console_index"]
    assert len(views) == 2 and views[0]["actor"]["id"] == CHIEF  # each page view is one audit_access entry


async def test_a_visitor_with_no_session_is_sent_to_sign_in(console):
    async with aiohttp.ClientSession() as http, http.get(console.base + "/console/searches",
                                                          allow_redirects=False) as response:
        assert response.status == 303
        assert response.headers["Location"].startswith("/console/signin?")


async def test_without_the_apps_client_credentials_the_console_is_404(harness):
    bot = await harness.start()
    async with aiohttp.ClientSession() as http, http.get(bot.base + "/console") as response:
        assert response.status == 404
