"""Sign in with Slack for the console (CONTRACTS ### 14), end to end: the bot's own server, the Slack double's
authorize page and OpenID Connect methods over real HTTP, and a real headless Chromium for the round trip, the
refusal page, the thrown-out member and sign-out. The state's checks are driven with plain HTTP (the browser's
cookie handled by hand), so each check is seen refusing on its own."""
from __future__ import annotations

import logging
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest

from bot import wording
from bot.config import Settings
from bot.console.auth import BINDING_COOKIE
from bot.console.session import COOKIE
from bot.slack.server import serve
from tests.slack.conftest import OFFICER
from tests.slack.double import TEAM_ID

from .conftest import (
    AUDITOR,
    CHIEF,
    CLIENT_SECRET,
    GROUPED_CHIEF,
    STAFF_GROUP,
    screenshot,
    scrolls_sideways,
    serious_axe_violations,
    sign_in_page,
    signed_in_page,
)


def signin_entries(console, action: str = "console_signin") -> list[dict]:
    return [e for e in console.console_entries() if e["action"] == action]


class Browser:
    """One browser's cookies, by hand (aiohttp's jar keeps no cookie of an IP address, nor a Secure one over http),
    going through the sign-in with plain HTTP."""

    def __init__(self, console, http: aiohttp.ClientSession) -> None:
        self.console, self.http, self.cookies = console, http, {}

    def _keep(self, response: aiohttp.ClientResponse) -> None:
        for header in response.headers.getall("Set-Cookie", []):
            for name, morsel in SimpleCookie(header).items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    async def get(self, url: str, **params: str) -> aiohttp.ClientResponse:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        async with self.http.get(url, params=params, headers=headers, allow_redirects=False) as response:
            await response.read()
            self._keep(response)
            return response

    async def start(self, next_path: str = "/console") -> str:
        """GET /console/signin/start: Slack's authorize URL (and this browser now holds the binding cookie)."""
        response = await self.get(self.console.base + "/console/signin/start", next=next_path)
        assert response.status == 303 and BINDING_COOKIE in self.cookies
        return response.headers["Location"]

    async def allow(self, authorize: str, decision: str = "allow") -> str:
        """At the Slack double: the consent page, then Allow (or Cancel); the URL it sends the browser back to."""
        query = dict(parse_qsl(urlsplit(authorize).query))
        async with self.http.post(authorize.split("?")[0], data={**query, "decision": decision},
                                  allow_redirects=False) as response:
            assert response.status == 302
            return response.headers["Location"]

    async def sign_in(self, next_path: str = "/console") -> aiohttp.ClientResponse:
        """The whole round trip; the callback's response."""
        return await self.get(await self.allow(await self.start(next_path)))


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


# --- the round trip in a real browser ----------------------------------------------------------------------------


async def test_sign_in_with_slack_round_trip_in_chromium_lands_back_signed_in_with_a_strict_cookie(console, browser):
    start = "/console/searches?outcome=candidates"
    page = await sign_in_page(browser, console, CHIEF, start=start)
    assert page.url == console.base + start  # back where they started, query kept
    cookies = {c["name"]: c for c in await page.context.cookies()}
    session = cookies[COOKIE]
    assert (session["httpOnly"], session["secure"], session["sameSite"], session["path"]) == (
        True, True, "Lax", "/console")
    assert BINDING_COOKIE not in cookies  # the one-sign-in binding is cleared once used
    response = await page.goto(console.base + "/console")
    assert response.status == 200 and await page.locator(".signout span").inner_text() == "Chief One"
    # Slack was asked as the contract says: the sign-in host of SLACK_API_URL, the workspace's team, both scopes.
    shown = console.slack.call_log("openid.authorize")[0].params
    assert (shown["scope"], shown["team"], shown["response_type"]) == ("openid profile", TEAM_ID, "code")
    assert shown["redirect_uri"] == console.base + "/console/auth/callback" and shown["nonce"]
    [exchange] = console.slack.call_log("openid.connect.token")
    assert exchange.ok and exchange.params["redirect_uri"] == shown["redirect_uri"]
    assert console.slack.call_log("openid.connect.userInfo")[0].ok
    [entry] = signin_entries(console)
    assert (entry["actor"]["id"], entry["allowed"], entry["outcome"], entry["roles"]) == (
        CHIEF, True, "signed_in", ["command_staff"])
    assert entry["query"] == {"next": start}


async def test_the_sign_in_page_says_why_passes_axe_and_fits_375_px(console, browser):
    for width in (1280, 375):
        context = await browser.new_context(viewport={"width": width, "height": 800})
        page = await context.new_page()
        response = await page.goto(console.base + "/console/signin?reason=revoked&next=/console/alerts")
        assert response.status == 200
        assert wording.CONSOLE_SIGNIN_REASONS["revoked"] in await page.locator("[role=status]").inner_text()
        link = page.get_by_role("link", name=wording.CONSOLE_SIGNIN_BUTTON)
        assert await link.get_attribute("href") == "/console/signin/start?next=%2Fconsole%2Falerts"
        assert await serious_axe_violations(page) == []
        assert not await scrolls_sideways(page)
        await screenshot(page, f"signin-{width}")
        await page.keyboard.press("Tab")  # the skip link, then the brand, then the sign-in link
        await page.keyboard.press("Tab")
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent") == wording.CONSOLE_SIGNIN_BUTTON
        await context.close()


@pytest.mark.parametrize("reason", sorted(wording.CONSOLE_SIGNIN_REASONS))
async def test_each_reason_has_its_sentence_on_the_sign_in_page(console, http, reason):
    async with http.get(console.base + "/console/signin", params={"reason": reason}) as response:
        assert response.status == 200
        assert wording.CONSOLE_SIGNIN_REASONS[reason].replace("'", "&#39;") in await response.text()


async def test_someone_not_on_the_lists_gets_a_403_page_that_says_so_and_an_audit_entry(console, browser):
    console.slack.sign_in_as(OFFICER)  # a requester: not command staff, not an auditor
    context = await browser.new_context(viewport={"width": 375, "height": 800})
    page = await context.new_page()
    await page.goto(console.base + "/console")
    await page.get_by_role("link", name=wording.CONSOLE_SIGNIN_BUTTON).click()
    async with page.expect_navigation() as landed:
        await page.get_by_role("button", name="Allow").click()
    assert (await landed.value).status == 403
    shown = [line for line in (await page.locator("main").inner_text()).splitlines() if line.strip()]
    assert shown == [wording.CONSOLE_REFUSED_TITLE, wording.CONSOLE_NOT_LISTED]
    assert await page.locator("nav").count() == 0 and await page.locator("form").count() == 0  # nothing else
    assert COOKIE not in {c["name"] for c in await context.cookies()}
    assert await serious_axe_violations(page) == [] and not await scrolls_sideways(page)
    await screenshot(page, "signin-refused-375")
    [entry] = signin_entries(console)
    assert (entry["actor"]["id"], entry["allowed"], entry["outcome"], entry["roles"]) == (
        OFFICER, False, "not_listed", [])


@pytest.mark.parametrize("how", ["removed from the user group", "deactivated"])
async def test_a_revoked_member_is_thrown_out_at_the_next_check(console, browser, how):
    user = GROUPED_CHIEF if how.startswith("removed") else AUDITOR
    page = await sign_in_page(browser, console, user)
    assert page.url == console.base + "/console"
    if user == GROUPED_CHIEF:
        console.slack.add_usergroup(STAFF_GROUP, [])
    else:
        console.slack.deactivate_user(AUDITOR)
    console.clock.advance(minutes=4)  # within recheck_minutes (5): the roles Slack gave at sign-in stand
    assert (await page.goto(console.base + "/console")).status == 200
    console.clock.advance(minutes=2)  # past it: Slack is asked again, and says no
    await page.goto(console.base + "/console")
    assert page.url == console.base + "/console/signin?reason=revoked"
    assert wording.CONSOLE_SIGNIN_REASONS["revoked"] in await page.locator("[role=status]").inner_text()
    assert COOKIE not in {c["name"] for c in await page.context.cookies()}
    [ended] = signin_entries(console, "console_recheck")
    assert (ended["actor"]["id"], ended["allowed"], ended["outcome"]) == (user, False, "revoked")


async def test_a_member_still_listed_is_rechecked_quietly_and_a_session_ends_after_session_hours(console, browser):
    page = await signed_in_page(browser, console)
    asked = len(console.slack.call_log("users.info"))
    console.clock.advance(minutes=6)
    assert (await page.goto(console.base + "/console")).status == 200  # asked again: still command staff
    assert len(console.slack.call_log("users.info")) > asked  # fresh: Slack was asked again
    console.clock.advance(hours=12)
    await page.goto(console.base + "/console")
    assert page.url == console.base + "/console/signin?reason=expired"


async def test_when_slack_cannot_be_asked_at_a_recheck_the_session_ends_saying_so(console, browser):
    page = await signed_in_page(browser, console, user_id=AUDITOR, name="Auditor One", roles=("auditor",))
    console.clock.advance(minutes=6)
    console.slack.fail_next("users.info", status=503, times=10)
    await page.goto(console.base + "/console")
    assert page.url == console.base + "/console/signin?reason=unreachable"  # fail closed, and not "revoked"
    assert wording.CONSOLE_SIGNIN_REASONS["unreachable"] in await page.locator("[role=status]").inner_text()
    [ended] = signin_entries(console, "console_recheck")
    assert (ended["actor"]["id"], ended["allowed"], ended["outcome"]) == (AUDITOR, False, "unverified")


# --- the state: signed, ten minutes, once, this browser; the nonce; the workspace -----------------------------


async def test_a_state_is_single_use(console, http):
    console.slack.sign_in_as(CHIEF)
    browser = Browser(console, http)
    back = await browser.allow(await browser.start())
    first = await browser.get(back)
    assert first.status == 303 and first.headers["Location"] == "/console" and COOKIE in browser.cookies
    browser.cookies.pop(COOKIE)
    again = await browser.get(back)
    assert again.headers["Location"] == "/console/signin?reason=failed" and COOKIE not in browser.cookies
    assert len(console.slack.call_log("openid.connect.token")) == 1  # refused before Slack was asked again


async def test_a_tampered_state_or_one_from_another_browser_is_refused_before_any_code_is_used(console, http):
    console.slack.sign_in_as(CHIEF)
    mine, theirs = Browser(console, http), Browser(console, http)
    back = await mine.allow(await mine.start())
    query = dict(parse_qsl(urlsplit(back).query))
    state = query["state"]
    tampered = state[:-2] + ("AA" if not state.endswith("AA") else "BB")
    for who, url in ((mine, back.replace(state, tampered)), (theirs, back), (Browser(console, http), back)):
        refused = await who.get(url)
        assert refused.headers["Location"] == "/console/signin?reason=failed" and COOKIE not in who.cookies
    assert console.slack.call_log("openid.connect.token") == []
    # Nothing above spent it: the browser that started the sign-in still completes it.
    assert (await mine.get(back)).headers["Location"] == "/console" and COOKIE in mine.cookies


async def test_a_state_older_than_ten_minutes_is_refused_as_expired(console, http):
    console.slack.sign_in_as(CHIEF)
    browser = Browser(console, http)
    back = await browser.allow(await browser.start())
    console.clock.advance(minutes=11)
    assert (await browser.get(back)).headers["Location"] == "/console/signin?reason=expired"
    assert COOKIE not in browser.cookies


async def test_an_id_token_with_another_nonce_is_refused(console, http):
    console.slack.sign_in_as(CHIEF)
    console.slack.id_token_changes = {"nonce": "a-nonce-from-another-sign-in"}
    browser = Browser(console, http)
    refused = await browser.sign_in()
    assert refused.headers["Location"] == "/console/signin?reason=failed" and COOKIE not in browser.cookies
    assert signin_entries(console) == []


async def test_someone_of_another_workspace_is_refused_and_recorded(console, http):
    console.slack.sign_in_as(CHIEF, team_id="T0OTHER")  # userInfo names another team than auth.test's
    browser = Browser(console, http)
    refused = await browser.sign_in()
    assert refused.status == 403 and COOKIE not in browser.cookies
    [entry] = signin_entries(console)
    assert (entry["allowed"], entry["outcome"], entry["team_id"]) == (False, "other_workspace", "T0OTHER")


async def test_cancelling_at_slack_signs_nobody_in(console, http):
    console.slack.sign_in_as(CHIEF)
    browser = Browser(console, http)
    back = await browser.allow(await browser.start(), decision="cancel")
    assert "error=access_denied" in back
    assert (await browser.get(back)).headers["Location"] == "/console/signin?reason=refused"
    assert COOKIE not in browser.cookies and console.slack.call_log("openid.connect.token") == []


@pytest.mark.parametrize("elsewhere", ["https://evil.example/console", "//evil.example/console", "/\\evil.example",
                                       "/console/../admin", "/console/%2e%2e/slack/events", "/healthz",
                                       "/console/signout", "javascript:alert(1)"])
async def test_next_pointing_elsewhere_is_ignored(console, http, elsewhere):
    console.slack.sign_in_as(CHIEF)
    browser = Browser(console, http)
    landed = await browser.sign_in(elsewhere)
    assert landed.status == 303 and landed.headers["Location"] == "/console" and COOKIE in browser.cookies


async def test_the_authorize_url_follows_slack_api_url_and_nothing_secret_is_logged(console, http, caplog):
    caplog.set_level(logging.DEBUG)
    console.slack.sign_in_as(CHIEF)
    browser = Browser(console, http)
    authorize = await browser.start()
    assert authorize.startswith(console.slack.url + "/openid/connect/authorize?")
    back = await browser.allow(authorize)
    assert (await browser.get(back)).headers["Location"] == "/console"
    code = dict(parse_qsl(urlsplit(back).query))["code"]
    [token] = console.slack.call_log("openid.connect.token")
    for secret in (CLIENT_SECRET, code, token.response["access_token"], token.response["id_token"],
                   browser.cookies[COOKIE]):
        assert secret not in caplog.text


# --- sign-out ------------------------------------------------------------------------------------------------


async def test_sign_out_with_the_token_ends_the_session_even_for_a_copied_cookie(console, browser):
    page = await sign_in_page(browser, console, CHIEF)
    copied = next(c for c in await page.context.cookies() if c["name"] == COOKIE)
    console.clock.advance(seconds=1)
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/console/signin?reason=signed_out")
    assert COOKIE not in {c["name"] for c in await page.context.cookies()}
    # The same cookie value, kept elsewhere, is dead too.
    other = await browser.new_context()
    await other.add_cookies([copied])
    stale = await other.new_page()
    await stale.goto(console.base + "/console")
    assert stale.url == console.base + "/console/signin?reason=signed_out"
    [entry] = signin_entries(console, "console_signout")
    assert (entry["actor"]["id"], entry["allowed"]) == (CHIEF, True)
    # Signing in again afterwards works.
    console.clock.advance(seconds=1)
    again = await sign_in_page(browser, console, CHIEF)
    assert again.url == console.base + "/console"


async def test_sign_out_without_the_token_or_from_another_origin_is_refused(console, http):
    cookie = console.cookie()
    headers = {"Cookie": f"{COOKIE}={cookie['value']}", "Origin": console.base}
    for form, origin, text in (({}, console.base, wording.CONSOLE_BAD_TOKEN),
                               ({"csrf_token": "guessed"}, console.base, wording.CONSOLE_BAD_TOKEN),
                               (None, "https://evil.example", wording.CONSOLE_FOREIGN_ORIGIN)):
        async with http.post(console.base + "/console/signout", headers={**headers, "Origin": origin},
                             data=form or {"csrf_token": "x"}, allow_redirects=False) as response:
            assert response.status == 403 and await response.text() == text
    async with http.get(console.base + "/console", headers=headers, allow_redirects=False) as response:
        assert response.status == 200  # still signed in
    assert signin_entries(console, "console_signout") == []


def test_serve_refuses_to_start_with_the_console_on_and_no_public_url(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    monkeypatch.setenv("CONSOLE_CLIENT_ID", "1.2")
    monkeypatch.setenv("CONSOLE_CLIENT_SECRET", "the-console-secret")
    for name in ("SLACK_APP_TOKEN", "PORT", "SLACK_API_URL"):
        monkeypatch.delenv(name, raising=False)
    assert serve(Settings(data_dir=tmp_path / "data")) == 1
    err = capsys.readouterr().err
    assert err.strip() == wording.CONSOLE_NO_PUBLIC_URL and "[console] public_url" in err
    assert "the-console-secret" not in err and not (tmp_path / "data").exists()  # nothing started


def test_the_manifest_has_the_consoles_redirect_url_and_exactly_the_sign_in_scopes():
    from bot.console.auth import CALLBACK, SCOPE
    from tests.slack.test_blocks import MANIFEST, yaml_list

    text = MANIFEST.read_text(encoding="utf-8")
    assert yaml_list(text, "redirect_urls") == [f"https://YOUR-HOST{CALLBACK}"]
    assert yaml_list(text, "user") == SCOPE.split() == ["openid", "profile"]
    places = [line for line in text.splitlines() if "YOUR-HOST" in line and not line.lstrip().startswith("#")]
    assert len(places) == 4 and "(four places below" in text


@pytest.mark.parametrize("store_kind", ["postgresql"])
async def test_replicas_on_one_database_share_the_states_claims(console, http, tmp_path):
    """Behind one public URL a callback may reach any replica: a state made on one completes on another, and a
    state used on one is refused on every other (its claim is in the database, not in a replica's memory)."""
    from dataclasses import replace

    from .conftest import CLIENT_ID, free_port

    port = free_port()
    other = await console.harness.start(
        settings=replace(console.rt.settings, data_dir=tmp_path / "replica-b"), port=port, clock=console.clock,
        env={"CONSOLE_CLIENT_ID": CLIENT_ID, "CONSOLE_CLIENT_SECRET": CLIENT_SECRET})
    console.slack.sign_in_as(CHIEF)
    browser = Browser(console, http)
    crossed = (await browser.allow(await browser.start())).replace(console.base, other.base)
    assert (await browser.get(crossed)).headers["Location"] == "/console" and COOKIE in browser.cookies
    browser.cookies.pop(COOKIE)
    back = await browser.allow(await browser.start())
    assert (await browser.get(back)).headers["Location"] == "/console"
    browser.cookies.pop(COOKIE)
    replayed = await browser.get(back.replace(console.base, other.base))
    assert replayed.headers["Location"] == "/console/signin?reason=failed" and COOKIE not in browser.cookies
    assert len(console.slack.call_log("openid.connect.token")) == 2


def test_the_sign_in_host_and_issuer_follow_slack_api_url():
    from bot.console.auth import authorize_url, issuer, redirect_uri

    assert authorize_url(None) == "https://slack.com/openid/connect/authorize"
    assert authorize_url("http://127.0.0.1:9/api/") == "http://127.0.0.1:9/openid/connect/authorize"
    assert authorize_url("https://slack-gov.com/api") == "https://slack-gov.com/openid/connect/authorize"
    assert (issuer(None), issuer("http://127.0.0.1:9/api/")) == ("https://slack.com", "http://127.0.0.1:9")
    assert redirect_uri("https://frbot.example.org/") == "https://frbot.example.org/console/auth/callback"
