"""Slack Web API client and the token-guarded file download.

The bot token is sent only to the host of SLACK_API_URL and to the configured `[slack] file_hosts`
(CONTRACTS "Slack"). Scheme rule, used for the API URL and for every download hop: `https`, or plain
`http` only for a loopback host (127.0.0.0/8, ::1, localhost), which is where the local test double runs.
The token never appears in a log line or an exception message.
"""
from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from yarl import URL

from bot.config import ConfigError

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://slack.com/api/"
# Retries per API call. Slack's rate-limit handler sleeps Retry-After (+ up to 1 s jitter) per retry, so a
# small count keeps a stuck call from holding a request open for minutes; queued work retries later.
MAX_RETRIES = 2
MAX_REDIRECTS = 3
DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 64 * 1024
_REDIRECTS = (301, 302, 303, 307, 308)
_SNIFF = 512  # bytes looked at for an HTML page; leading whitespace before <!DOCTYPE is allowed
_HTML_MESSAGE = "Slack sent an HTML page instead of the file: the app lacks files:read; reinstall it"


class DownloadError(Exception):
    """A Slack file could not be downloaded. `code` says why; the text never holds the token."""

    code = "http_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class TokenHostError(DownloadError):
    """The URL would carry the bot token to a host outside the allow-list, or over an insecure scheme."""

    code = "token_host"


class FileTooLarge(DownloadError):
    """The file is bigger than `[images] max_bytes`; reading stopped at the cap."""

    code = "too_large"


class MissingFilesScope(DownloadError):
    """Slack answered with an HTML (login) page instead of the file: the app lacks files:read."""

    code = "missing_files_scope"


class LookupFailed(Exception):
    """Slack could not be asked (rate limit, server error, dropped connection): neither yes nor no."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host(url: str | URL) -> str:
    """Lower-case host of a URL without a trailing dot ('' when there is none)."""
    host = URL(url).host if isinstance(url, URL) else urlsplit(url).hostname
    return (host or "").lower().rstrip(".")


def _scheme_ok(scheme: str, host: str) -> bool:
    return scheme == "https" or (scheme == "http" and _is_loopback(host))


def normalise_api_url(url: str | None) -> str:
    """Return SLACK_API_URL as a slack_sdk base_url: Slack's own when unset, with exactly one trailing slash.

    Raises ConfigError for a URL that is not https (plain http is accepted only for a loopback host,
    e.g. a local test double), because the bot token travels to it.
    """
    if url is None or not url.strip():
        return DEFAULT_API_URL
    url = url.strip()
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host or not _scheme_ok(parts.scheme.lower(), host):
        raise ConfigError(
            f"SLACK_API_URL={url!r} is not usable: it must be an https:// URL such as {DEFAULT_API_URL} "
            "(http:// is accepted only for a local test server on 127.0.0.1 or localhost)"
        )
    # slack_sdk joins method names onto base_url, so a missing slash would drop the last path segment.
    return url.rstrip("/") + "/"


def make_web_client(
    token: str, api_url: str | None, *, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    """Build the bot's AsyncWebClient on SLACK_API_URL with retries for 429 (honouring Retry-After),
    500/503 and dropped connections. Bolt copies base_url and retry handlers into its per-request clients."""
    # The handlers share one retry count per call, so MAX_RETRIES bounds all retries together.
    handlers = [
        AsyncRateLimitErrorRetryHandler(max_retry_count=MAX_RETRIES),
        AsyncServerErrorRetryHandler(max_retry_count=MAX_RETRIES),
        AsyncConnectionErrorRetryHandler(max_retry_count=MAX_RETRIES),
    ]
    return AsyncWebClient(
        token=token,
        base_url=normalise_api_url(api_url),
        session=session,
        retry_handlers=handlers,
    )


def allowed_token_hosts(api_url: str | None, file_hosts: Iterable[str]) -> frozenset[str]:
    """The hosts the bot token may be sent to: the SLACK_API_URL host plus `[slack] file_hosts`."""
    hosts = {_host(normalise_api_url(api_url))}
    for entry in file_hosts:
        entry = entry.strip()
        # Tolerate "https://files.example.gov" written where a bare host name was meant.
        host = _host(entry) if "://" in entry else entry.lower().rstrip(".")
        if host:
            hosts.add(host)
    return frozenset(hosts)


# Slack serves private files (and their thumbnails) under these paths; the token goes to no other path, even on
# an allowed host (the Web API host answers much else).
FILE_PATH_PREFIXES = ("/files-pri/", "/files-tmb/")


def _file_path(url: URL) -> bool:
    return any(url.path.startswith(prefix) for prefix in FILE_PATH_PREFIXES)


def _check_first_hop(url: URL, allowed: frozenset[str]) -> None:
    host = _host(url)
    if host not in allowed:
        raise TokenHostError(f"refused to send the bot token to {host or 'a URL without a host'}: "
                             "it is neither the SLACK_API_URL host nor a configured file host")
    if not _file_path(url):
        raise TokenHostError(f"refused to send the bot token to {host}{url.path[:80]}: not a Slack file path "
                             f"({', '.join(FILE_PATH_PREFIXES)})")
    if not _scheme_ok(url.scheme, host):
        raise TokenHostError(f"refused to send the bot token over {url.scheme or 'no scheme'} to {host}: "
                             "https is required")


async def download_file(
    session: aiohttp.ClientSession,
    url: str,
    token: str,
    *,
    allowed_hosts: Iterable[str],
    max_bytes: int,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> bytes:
    """Download a Slack file (`url_private_download`) with the bot token.

    The token goes only to `allowed_hosts`. Redirects are followed here, not by aiohttp, at most
    MAX_REDIRECTS times: once a hop leaves the allow-list the token is dropped for the rest of the chain
    (a host outside the list chose the next URL). Raises TokenHostError before any request when the first
    URL is not allowed, FileTooLarge past `max_bytes`, MissingFilesScope when Slack sends an HTML page
    instead of the file, and DownloadError for other failures.
    """
    allowed = frozenset(h.lower().rstrip(".") for h in allowed_hosts)
    if "Authorization" in session.headers:
        raise ValueError("download_file needs a session without a default Authorization header")
    try:
        current = URL(url)
    except (TypeError, ValueError):
        raise TokenHostError("refused to send the bot token to a malformed file URL") from None
    _check_first_hop(current, allowed)
    send_token = True
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    for _hop in range(MAX_REDIRECTS + 1):
        host = _host(current)
        headers = {"Authorization": f"Bearer {token}"} if send_token else {}
        log.debug("downloading a Slack file from %s (token %s)", host, "sent" if send_token else "withheld")
        try:
            async with session.get(
                current, headers=headers, allow_redirects=False, timeout=client_timeout
            ) as resp:
                if resp.status in _REDIRECTS:
                    location = resp.headers.get("Location")
                    if not location:
                        raise DownloadError(f"{host} answered {resp.status} without a Location")
                    current = current.join(URL(location))
                    next_host = _host(current)
                    if not _scheme_ok(current.scheme, next_host):
                        raise DownloadError(f"refused a redirect to insecure {current.scheme}://{next_host}")
                    if next_host not in allowed or not _file_path(current):
                        send_token = False
                    continue
                return await _read_body(resp, host, max_bytes)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DownloadError(f"could not download the file from {host}: {type(exc).__name__}") from None
    raise DownloadError(f"more than {MAX_REDIRECTS} redirects while downloading the file")


async def _read_body(resp: aiohttp.ClientResponse, host: str, max_bytes: int) -> bytes:
    """Read a 200 response up to max_bytes, refusing an HTML page in place of the file."""
    if resp.status != 200:
        raise DownloadError(f"{host} answered HTTP {resp.status} for the file")
    if resp.content_type == "text/html":
        raise MissingFilesScope(_HTML_MESSAGE)
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise FileTooLarge(f"the file is {resp.content_length} bytes, over the {max_bytes}-byte limit")
    body = bytearray()
    sniffed = False
    async for chunk in resp.content.iter_chunked(_CHUNK):
        body += chunk
        if not sniffed and (len(body) >= _SNIFF or len(body) > max_bytes):
            _refuse_html(body)
            sniffed = True
        if len(body) > max_bytes:
            raise FileTooLarge(f"the file is over the {max_bytes}-byte limit")
    if not sniffed:
        _refuse_html(body)
    return bytes(body)


def _refuse_html(head: bytes) -> None:
    # Slack answers 200 with its login page (sometimes labelled as another type) when files:read is missing.
    start = bytes(head[:_SNIFF]).lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if start.startswith((b"<!doctype html", b"<html")):
        raise MissingFilesScope(_HTML_MESSAGE)
