"""The Slack client plumbing: SLACK_API_URL handling, retries, the token-guarded file download, signing."""
from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier

from bot.config import ConfigError
from bot.slack.client import (
    DownloadError,
    FileTooLarge,
    MissingFilesScope,
    TokenHostError,
    allowed_token_hosts,
    download_file,
    make_web_client,
    normalise_api_url,
)

from .double import TOKEN, SlackDouble
from .signing import command_body, event_body, interaction_body, sign

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(range(256)) * 4
EVIL_HOST = "127.0.0.2"  # another loopback address: a host outside the allow-list


class EvilHost:
    """A server that is not Slack: records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.redirect_to = ""
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _record(self, request: web.Request) -> None:
        self.requests.append(dict(request.headers))

    async def image(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(body=b"not-slack-bytes", content_type="image/jpeg")

    async def html_as_octets(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(body=b"\n  <!DOCTYPE html><html><body>Sign in</body></html>",
                            content_type="application/octet-stream")

    async def stream(self, request: web.Request) -> web.StreamResponse:
        # Chunked, no Content-Length: the cap must hold while reading.
        await self._record(request)
        resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(64):
            await resp.write(b"\xff" * 16384)
        await resp.write_eof()
        return resp

    async def back(self, request: web.Request) -> web.Response:
        await self._record(request)
        raise web.HTTPFound(self.redirect_to)

    async def loop(self, request: web.Request) -> web.Response:
        await self._record(request)
        raise web.HTTPFound(f"{FILES}/loop")

    async def start(self) -> EvilHost:
        app = web.Application()
        for path, handler in (("/img.jpg", self.image), ("/html", self.html_as_octets),
                              ("/stream", self.stream), ("/back", self.back), ("/loop", self.loop)):
            app.router.add_get(FILES + path, handler)
        app.router.add_get("/api/auth.test", self.image)  # a path of the host that is not a file
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, EVIL_HOST, 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    def url(self, path: str, *, files: bool = True) -> str:
        return f"http://{EVIL_HOST}:{self.port}{FILES if files else ''}{path}"


FILES = "/files-pri/T0EVIL-F1"  # Slack's private-file path: the only path the token may go to


@pytest.fixture
async def slack():
    async with SlackDouble() as double:
        yield double


@pytest.fixture
async def evil():
    host = await EvilHost().start()
    yield host
    await host.runner.cleanup()


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


def _allowed(slack: SlackDouble) -> frozenset[str]:
    return allowed_token_hosts(slack.base_url, ["files.slack.com"])


# --- SLACK_API_URL -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "https://slack.com/api/"),
        ("", "https://slack.com/api/"),
        ("   ", "https://slack.com/api/"),
        ("https://slack.com/api", "https://slack.com/api/"),
        ("https://slack.com/api/", "https://slack.com/api/"),
        ("https://grid-proxy.example.gov/slack/api///", "https://grid-proxy.example.gov/slack/api/"),
        (" https://slack-gov.com/api \n", "https://slack-gov.com/api/"),
        ("http://127.0.0.1:8080/api", "http://127.0.0.1:8080/api/"),
        ("http://localhost:8080/api/", "http://localhost:8080/api/"),
    ],
)
def test_normalise_api_url(given, expected):
    assert normalise_api_url(given) == expected


@pytest.mark.parametrize("bad", ["http://proxy.example.gov/api/", "slack.com/api", "ftp://slack.com/api/"])
def test_normalise_api_url_refuses_urls_that_would_expose_the_token(bad):
    with pytest.raises(ConfigError, match="SLACK_API_URL"):
        normalise_api_url(bad)


def test_allowed_token_hosts_are_the_api_host_and_file_hosts():
    hosts = allowed_token_hosts("https://Grid-Proxy.example.gov/api", ["files.slack.com", "https://files.example.gov/"])
    assert hosts == frozenset({"grid-proxy.example.gov", "files.slack.com", "files.example.gov"})
    assert allowed_token_hosts(None, []) == frozenset({"slack.com"})


def test_make_web_client_uses_the_api_url_and_slacks_retry_handlers():
    client = make_web_client(TOKEN, "http://127.0.0.1:9/api")
    assert client.base_url == "http://127.0.0.1:9/api/"
    kinds = {type(h) for h in client.retry_handlers}
    assert kinds == {AsyncRateLimitErrorRetryHandler, AsyncServerErrorRetryHandler, AsyncConnectionErrorRetryHandler}
    assert all(1 <= h.max_retry_count <= 3 for h in client.retry_handlers)


# --- download_file -------------------------------------------------------------------------------------------


async def test_download_sends_the_bearer_token_and_returns_the_bytes(slack, session):
    f = slack.add_file("F1", "suspect.jpg", "image/jpeg", JPEG, "U1")
    data = await download_file(session, f["url_private_download"], TOKEN, allowed_hosts=_allowed(slack),
                               max_bytes=1_000_000)
    assert data == JPEG
    [download] = slack.downloads("F1")
    assert download.token == TOKEN


async def test_download_refuses_a_host_outside_the_allow_list_without_sending_anything(slack, evil, session):
    with pytest.raises(TokenHostError) as err:
        await download_file(session, evil.url("/img.jpg"), TOKEN, allowed_hosts=_allowed(slack), max_bytes=10**6)
    assert evil.requests == []
    assert TOKEN not in str(err.value)


@pytest.mark.parametrize("url", ["http://files.slack.com/files-pri/T-F1/x.jpg", "ftp://files.slack.com/x.jpg"])
async def test_download_refuses_an_insecure_scheme_even_for_an_allowed_host(url, session):
    with pytest.raises(TokenHostError):
        await download_file(session, url, TOKEN, allowed_hosts={"files.slack.com"}, max_bytes=10**6)


async def test_redirect_to_another_host_does_not_carry_the_token(slack, evil, session):
    f = slack.add_file("F2", "a.jpg", "image/jpeg", JPEG, "U1", redirect_to=evil.url("/img.jpg"))
    data = await download_file(session, f["url_private_download"], TOKEN, allowed_hosts=_allowed(slack),
                               max_bytes=10**6)
    assert data == b"not-slack-bytes"
    assert len(evil.requests) == 1
    assert "Authorization" not in evil.requests[0]
    assert TOKEN not in json.dumps(evil.requests[0])
    assert slack.downloads("F2")[0].token == TOKEN  # the allowed host did get it


async def test_redirect_within_the_allow_list_keeps_the_token(slack, session):
    target = slack.add_file("F3", "b.jpg", "image/jpeg", JPEG, "U1")
    f = slack.add_file("F4", "b.jpg", "image/jpeg", b"", "U1", redirect_to=target["url_private_download"])
    data = await download_file(session, f["url_private_download"], TOKEN, allowed_hosts=_allowed(slack),
                               max_bytes=10**6)
    assert data == JPEG
    assert slack.downloads("F3")[0].token == TOKEN


async def test_token_is_not_restored_after_the_chain_left_the_allow_list(slack, evil, session):
    # allowed -> evil -> back to allowed: the last URL was chosen by the evil host, so no token.
    target = slack.add_file("F5", "c.jpg", "image/jpeg", JPEG, "U1")
    evil.redirect_to = target["url_private_download"]
    f = slack.add_file("F6", "c.jpg", "image/jpeg", b"", "U1", redirect_to=evil.url("/back"))
    with pytest.raises(MissingFilesScope):
        await download_file(session, f["url_private_download"], TOKEN, allowed_hosts=_allowed(slack),
                            max_bytes=10**6)
    assert slack.downloads("F5")[0].token is None


async def test_too_many_redirects_is_an_error(evil, session):
    with pytest.raises(DownloadError, match="redirects"):
        await download_file(session, evil.url("/loop"), TOKEN, allowed_hosts={EVIL_HOST}, max_bytes=10**6)
    assert len(evil.requests) == 4  # the first request and three redirects, then it stops


async def test_login_page_instead_of_the_file_means_files_read_is_missing(slack, session):
    f = slack.add_file("F7", "d.jpg", "image/jpeg", JPEG, "U1", html_instead=True)
    with pytest.raises(MissingFilesScope, match="files:read"):
        await download_file(session, f["url_private_download"], TOKEN, allowed_hosts=_allowed(slack),
                            max_bytes=10**6)


async def test_html_body_is_detected_whatever_its_content_type(evil, session):
    with pytest.raises(MissingFilesScope):
        await download_file(session, evil.url("/html"), TOKEN, allowed_hosts={EVIL_HOST}, max_bytes=10**6)


async def test_a_wrong_token_gets_the_login_page_too(slack, session):
    f = slack.add_file("F8", "e.jpg", "image/jpeg", JPEG, "U1")
    with pytest.raises(MissingFilesScope):
        await download_file(session, f["url_private_download"], "xoxb-revoked", allowed_hosts=_allowed(slack),
                            max_bytes=10**6)


async def test_file_over_the_limit_is_refused(slack, session):
    f = slack.add_file("F9", "big.jpg", "image/jpeg", JPEG, "U1")
    with pytest.raises(FileTooLarge) as err:
        await download_file(session, f["url_private_download"], TOKEN, allowed_hosts=_allowed(slack),
                            max_bytes=len(JPEG) - 1)
    assert err.value.code == "too_large"


async def test_streamed_file_over_the_limit_stops_reading(evil, session):
    with pytest.raises(FileTooLarge):
        await download_file(session, evil.url("/stream"), TOKEN, allowed_hosts={EVIL_HOST}, max_bytes=100_000)


async def test_missing_file_is_a_download_error(slack, session):
    url = f"{slack.url}/files-pri/T0TEST-FNOPE/download/x.jpg"
    with pytest.raises(DownloadError) as err:
        await download_file(session, url, TOKEN, allowed_hosts=_allowed(slack), max_bytes=10**6)
    assert err.value.code == "http_error"


async def test_the_token_never_reaches_the_logs(slack, session, caplog):
    caplog.set_level(logging.DEBUG)
    slack.add_channel("C1", "case-1")
    f = slack.add_file("F10", "f.jpg", "image/jpeg", JPEG, "U1")
    await download_file(session, f["url_private_download"], TOKEN, allowed_hosts=_allowed(slack), max_bytes=10**6)
    client = make_web_client(TOKEN, slack.base_url)
    client.logger.setLevel(logging.DEBUG)
    await client.chat_postMessage(channel="C1", text="hello")
    assert "downloading a Slack file" in caplog.text  # the logs were captured
    assert TOKEN not in caplog.text


# --- signing helpers ---------------------------------------------------------------------------------------


def test_signature_helper_matches_slacks_verifier():
    body = event_body({"type": "message", "text": "hi", "channel": "C1", "user": "U1", "ts": "1.000001"})
    headers = sign("s3cret", body)
    verifier = SignatureVerifier("s3cret")
    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(body + b" ", headers)
    assert not SignatureVerifier("other").is_valid_request(body, headers)
    stale = sign("s3cret", body, timestamp=int(headers["X-Slack-Request-Timestamp"]) - 600)
    assert not verifier.is_valid_request(body, stale)


def test_bodies_have_slacks_shapes():
    envelope = json.loads(event_body({"type": "message"}, event_id="Ev1", team_id="T9"))
    assert (envelope["type"], envelope["event_id"], envelope["team_id"]) == ("event_callback", "Ev1", "T9")
    assert envelope["event"] == {"type": "message"}
    payload = parse_qs(interaction_body({"type": "block_actions", "actions": []}).decode())
    assert json.loads(payload["payload"][0]) == {"type": "block_actions", "actions": []}
    command = parse_qs(command_body("/frs", "audit 26-012345", "U1", "C1").decode())
    assert command["command"] == ["/frs"] and command["text"] == ["audit 26-012345"]
    assert command["user_id"] == ["U1"] and command["channel_id"] == ["C1"]


async def test_the_token_goes_only_to_file_paths_even_on_an_allowed_host(evil, session):
    """An allowed host answers much besides files (the Web API host does): the token goes to /files-pri/ and
    /files-tmb/ paths only."""
    with pytest.raises(TokenHostError, match="not a Slack file path"):
        await download_file(session, evil.url("/api/auth.test", files=False), TOKEN,
                            allowed_hosts={EVIL_HOST}, max_bytes=10**6)
    assert evil.requests == []  # refused before any request
