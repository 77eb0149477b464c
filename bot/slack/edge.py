"""The HTTP edge: connections that stall mid-request are closed, and open connections are capped.

aiohttp closes a connection whose request headers have not arrived within its keep-alive timeout (the timer
starts when the connection opens and again after each response; it also ends idle kept-alive connections), so
`EdgeRunner` sets that timeout to `[server] read_timeout_seconds`. It waits for a request body forever, though:
the handler reads bodies with `read_body`, which gives up after the same time and closes the connection.

Over `[server] max_connections`, a new connection makes room by closing the oldest one that is not running a
handler on a whole request (a client still sending its headers or body, or idle between requests); when every
connection is busy, the new one is closed at once. A genuine Slack request arrives whole within milliseconds,
so a flood of stalled clients costs the newest of them their slot and never a real request its answer. One
warning a minute at most says how many were closed.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from aiohttp.web_server import Server

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 30.0  # [server] read_timeout_seconds: headers, and then the body, must arrive within this
MAX_CONNECTIONS = 512  # [server] max_connections
# Files kept free for the bot's own work under the open-file limit: the face workers' pipes, the audit log,
# tinydb files and the connection pools to Slack (up to 100 each).
FD_RESERVE = 256
WARN_EVERY_S = 60.0


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes | None:
    """The whole request body, or the first `limit` + 1 bytes of a longer one (the caller refuses those).

    None when the body did not arrive within `timeout` seconds or the client left mid-body; the connection is
    closed then (no answer: the client has stopped sending). `content.read(n)` alone would return whatever
    part of the body has arrived so far.
    """
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while size <= limit:
                chunk = await request.content.readany()
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
    except (TimeoutError, ConnectionError):
        request.protocol.force_close()
        return None
    return b"".join(chunks)


class ConnectionCap:
    """At most `limit` open connections on one server (see the module docstring for who gives way)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.busy: dict[RequestHandler, BaseRequest] = {}  # connections running a handler, and its request
        self.closed = {"evicted": 0, "refused": 0}  # since the last warning
        self._warned_at: float | None = None

    def admit(self, server: Server, new: RequestHandler) -> None:
        """A connection was just accepted: close one when that makes more than `limit` open."""
        open_ = [h for h in server.connections if h.transport is not None]  # oldest first
        if len(open_) <= self.limit:
            return
        victim = next((h for h in open_ if h is not new and not self._serving(h)), None)
        (victim or new).force_close()
        self._note("evicted" if victim is not None else "refused")

    def _serving(self, handler: RequestHandler) -> bool:
        """Running a handler on a request that has arrived whole."""
        request = self.busy.get(handler)
        return request is not None and request.content.is_eof()

    def _note(self, how: str) -> None:
        self.closed[how] += 1
        now = time.monotonic()
        if self._warned_at is not None and now - self._warned_at < WARN_EVERY_S:
            return
        self._warned_at = now
        log.warning(
            "connection cap reached (%d open, [server] max_connections): %d stalled or idle connection(s) closed "
            "and %d new one(s) refused since the last warning; at most one such warning a minute",
            self.limit, self.closed["evicted"], self.closed["refused"],
        )
        self.closed = {"evicted": 0, "refused": 0}

    def track(
        self, handler: Callable[[BaseRequest], Awaitable[StreamResponse]]
    ) -> Callable[[BaseRequest], Awaitable[StreamResponse]]:
        """`handler` (the application's) noting which connection runs which request meanwhile."""

        async def tracked(request: BaseRequest) -> StreamResponse:
            protocol = request.protocol
            self.busy[protocol] = request
            try:
                return await handler(request)
            finally:
                self.busy.pop(protocol, None)

        return tracked


class _CappedServer(Server):
    """aiohttp's Server, telling the cap about every accepted connection."""

    cap: ConnectionCap

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self.cap.admit(self, handler)


class EdgeRunner(web.AppRunner):
    """An AppRunner with the stall timeouts and the connection cap of this module."""

    def __init__(self, app: web.Application, *, read_timeout: float = READ_TIMEOUT_S,
                 max_connections: int = MAX_CONNECTIONS, **kwargs: object) -> None:
        super().__init__(app, keepalive_timeout=read_timeout, **kwargs)  # type: ignore[arg-type]
        self.cap = ConnectionCap(max_connections)

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        # The Server the application made, with its handler and settings, given the cap's connection_made:
        # aiohttp has no hook for accepted connections, and builds this object itself.
        server.__class__ = _CappedServer
        server.cap = self.cap  # type: ignore[attr-defined]
        server.request_handler = self.cap.track(server.request_handler)
        return server


def connection_cap(configured: int, open_file_limit: int) -> int:
    """The cap to use: `configured`, lowered to leave FD_RESERVE files under the open-file limit."""
    return max(1, min(configured, open_file_limit - FD_RESERVE))
