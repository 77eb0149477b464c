"""The console's fixtures: the bot's own server (with the Slack double, tests/slack/conftest.py) serving
/console, and a real headless Chromium driven by Playwright (Debian's `chromium`; Playwright's own browser
download is not reachable). `console` starts a server with the console on; `browser` launches Chromium.

A page test signs in either through Sign in with Slack (`sign_in_page`: Chromium goes through the Slack double's
authorize page and back) or with a session cookie minted by the console's own codec (`ConsoleServer.cookie`):
a real signed cookie, as the sign-in would set it. The server's clock is `console.clock` (move it forward to
reach a role recheck or a session's end).
"""
from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.console.session import COOKIE, Session, SessionCodec, session_secret
from tests.slack.conftest import (  # noqa: F401 (fixtures)
    Bot,
    Clock,
    Harness,
    bot_settings,
    enrolled_gallery,
    face_engine,
    harness,
    slack,
    store_kind,
)
from tests.slack.double import TEAM_ID
from tests.slack.replicas import free_port

CLIENT_ID = "1234567890.0987654321"
CLIENT_SECRET = "console-client-secret-for-tests"
CHIEF = "UCHIEF1"  # command staff
AUDITOR = "UAUDITOR1"  # an auditor (the console only)
STAFF_GROUP = "SCOMMAND"  # a command_staff_groups user group
GROUPED_CHIEF = "UCHIEF2"  # command staff through STAFF_GROUP only
SHOTS = Path(__file__).resolve().parents[2] / "build" / "console"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    """Debian's Chromium ($BOT_CHROMIUM wins), or None when it is not installed."""
    found = os.environ.get("BOT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return found if found and os.path.exists(found) else None


@dataclass
class ConsoleServer:
    """A running bot server with the console on at `base` (http://127.0.0.1:PORT)."""

    harness: Harness
    bot: Bot
    base: str
    clock: Clock

    @property
    def rt(self) -> Any:
        return self.bot.rt

    @property
    def slack(self) -> Any:
        """The Slack double (tests/slack/double): people, groups, who its browser is signed in as."""
        return self.harness.slack

    def cookie(self, user_id: str = CHIEF, name: str = "Chief One", roles: tuple[str, ...] = ("command_staff",),
               **changes: Any) -> dict[str, Any]:
        """A signed session cookie for `user_id`, as Playwright's `context.add_cookies` takes it."""
        session = Session.new(user_id, TEAM_ID, name, roles, self.rt.now().timestamp())
        if changes:
            from dataclasses import replace

            session = replace(session, **changes)
        value = SessionCodec(session_secret(CLIENT_SECRET)).dumps(session)
        return {"name": COOKIE, "value": value, "url": self.base + "/console", "httpOnly": True, "secure": True,
                "sameSite": "Lax"}

    def console_entries(self) -> list[dict[str, Any]]:
        """The `audit_access` entries the console wrote (action console_*)."""
        return [e for e in self.harness.audit_log().entries()
                if e.get("kind") == "audit_access" and str(e.get("action", "")).startswith("console_")]


@pytest.fixture
async def console(harness: Harness) -> AsyncIterator[ConsoleServer]:  # noqa: F811 (the harness fixture)
    """A bot server with the console on: CHIEF is command staff, GROUPED_CHIEF too through STAFF_GROUP, AUDITOR an
    auditor; public_url is the server's own loopback origin, registered with the Slack double as the app's
    redirect URL; the server runs on a clock the test moves (`console.clock`)."""
    harness.slack.add_user(CHIEF, "chief.one", display_name="Chief One")
    harness.slack.add_user(GROUPED_CHIEF, "chief.two", display_name="Chief Two")
    harness.slack.add_user(AUDITOR, "auditor.one", display_name="Auditor One")
    harness.slack.add_usergroup(STAFF_GROUP, [GROUPED_CHIEF])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    harness.slack.register_openid_app(CLIENT_ID, CLIENT_SECRET, [base + "/console/auth/callback"])
    from dataclasses import replace

    settings = bot_settings(harness.data_dir, command_staff=(CHIEF,), command_staff_groups=(STAFF_GROUP,))
    settings = replace(settings, oversight=replace(settings.oversight, auditors=(AUDITOR,)),
                       console=replace(settings.console, public_url=base))
    clock = Clock()
    bot = await harness.start(settings=settings, port=port, clock=clock,
                              env={"CONSOLE_CLIENT_ID": CLIENT_ID, "CONSOLE_CLIENT_SECRET": CLIENT_SECRET})
    yield ConsoleServer(harness, bot, base, clock)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium. Without it the test is skipped, except under CI=true, where it fails."""
    path = chromium_path()
    if path is None:
        message = "Debian's chromium is not installed (apt-get install chromium; .ci/run does it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


async def signed_in_page(browser: Any, server: ConsoleServer, *, width: int = 1280, height: int = 900,
                         **cookie: Any) -> Any:
    """A new page in its own browser context at `width` px, holding a signed session cookie."""
    context = await browser.new_context(viewport={"width": width, "height": height})
    await context.add_cookies([server.cookie(**cookie)])
    return await context.new_page()


async def sign_in_page(browser: Any, server: ConsoleServer, user_id: str = CHIEF, *, start: str = "/console",
                       width: int = 1280, height: int = 900) -> Any:
    """A new page in its own browser context, signed in through Sign in with Slack as `user_id`: it opens `start`,
    is sent to the sign-in page, follows "Sign in with Slack" to the Slack double's authorize page (its browser
    signed in to Slack as `user_id`), presses "Allow", and comes back to the console."""
    server.slack.sign_in_as(user_id)
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    await page.goto(server.base + start)
    await page.get_by_role("link", name="Sign in with Slack").click()
    await page.get_by_role("button", name="Allow").click()
    await page.wait_for_load_state()
    return page


async def screenshot(page: Any, name: str) -> Path:
    """A full-page screenshot kept as a test artefact in build/console/ (ignored by git; the README shows them)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def serious_axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations of impact serious or critical on the page as it stands."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    return [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]


async def scrolls_sideways(page: Any) -> bool:
    """Whether the page is wider than its viewport (something would scroll sideways)."""
    return await page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth")
