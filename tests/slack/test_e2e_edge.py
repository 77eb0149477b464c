"""End to end: the HTTP edge (bot.slack.edge) over loopback sockets: connections that stall in their headers or
body are closed after `[server] read_timeout_seconds`, and `max_connections` caps what is open without costing a
genuine signed request its answer. Every wait is bounded; nothing asserts how long anything took."""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from bot.config import ServerSettings
from bot.slack import edge

from .conftest import bot_settings
from .signing import SIGNING_SECRET, post, sign

BOUND_S = 5.0  # every wait on the server ends within this (the limits under test are 1 s)


async def _start(harness, **server: Any):
    settings = bot_settings(harness.data_dir)
    settings = replace(settings, server=ServerSettings(**server))
    return await harness.start(settings=settings, gallery=False)


async def _connect(bot) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = bot.base.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


def _open_ports(bot) -> set[int]:
    """Client ports of the connections the server holds open."""
    server = bot.runner.server
    return {h.transport.get_extra_info("peername")[1] for h in server.connections if h.transport is not None}


async def _until(condition, what: str) -> None:
    for _ in range(int(BOUND_S / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within {BOUND_S} s: {what}")


async def _closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """What the server sent before it closed the connection (fails when it keeps it open past BOUND_S)."""
    return await asyncio.wait_for(reader.read(), BOUND_S)


def _challenge() -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"token": "x", "challenge": "c-edge", "type": "url_verification"}).encode()
    return body, {"Content-Type": "application/json", **sign(SIGNING_SECRET, body)}


def _head(body_length: int, headers: dict[str, str]) -> bytes:
    lines = ["POST /slack/events HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {body_length}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_stalled_connections_are_closed_in_the_headers(harness, caplog):
    caplog.set_level(logging.DEBUG)
    bot = await _start(harness, read_timeout_seconds=1.0)
    reader, writer = await _connect(bot)
    writer.write(b"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")  # and nothing more
    await writer.drain()
    silent_reader, silent = await _connect(bot)  # connects and sends nothing at all
    assert await _closed_by_server(reader) == b""
    assert await _closed_by_server(silent_reader) == b""
    writer.close()
    silent.close()
    assert (await harness.healthz())["ok"] is True  # the server goes on
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_stalled_connections_are_closed_in_the_body(harness, caplog):
    caplog.set_level(logging.DEBUG)
    bot = await _start(harness, read_timeout_seconds=1.0)
    body, headers = _challenge()
    reader, writer = await _connect(bot)
    writer.write(_head(len(body), headers) + body[:10])  # the headers whole, then a part of the body
    await writer.drain()
    assert await _closed_by_server(reader) == b""  # closed, and never answered
    writer.close()
    # A client that leaves mid-body costs a closed connection too, and no traceback in the log.
    reader, writer = await _connect(bot)
    writer.write(_head(len(body), headers) + body[:10])
    await writer.drain()
    await _until(lambda: len(_open_ports(bot)) == 1, "the server holds the second connection")
    writer.close()
    await _until(lambda: not bot.runner.server.connections, "the server lets go of the second connection")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    reply = await post(harness.http, bot.events_url, body)
    assert reply.status == 200 and "c-edge" in reply.text


async def test_stalled_connections_a_body_sent_in_pieces_is_read_whole(harness):
    """Not a stall: a body arriving in several TCP segments is verified whole (reading only the first piece
    would refuse a genuine request as unsigned)."""
    bot = await _start(harness, read_timeout_seconds=5.0)
    body, headers = _challenge()
    reader, writer = await _connect(bot)
    writer.write(_head(len(body), headers) + body[:10])
    await writer.drain()
    await _until(lambda: len(_open_ports(bot)) == 1, "the server holds the connection")
    await asyncio.sleep(0.1)  # the handler now waits for the rest
    writer.write(body[10:])
    await writer.drain()
    answer = await asyncio.wait_for(reader.readuntil(b"c-edge"), BOUND_S)
    assert answer.startswith(b"HTTP/1.1 200 ")
    writer.close()


async def test_connections_are_capped_and_a_genuine_request_still_gets_through(harness, caplog):
    """The cap full of clients stalled in their headers or body (and more of them arriving): the server never
    holds more than the cap, the oldest stalled clients give way, and a genuine signed request is answered at
    once (the stall timeout, 30 s here, plays no part)."""
    caplog.set_level(logging.WARNING, logger="bot.slack.edge")
    bot = await _start(harness, max_connections=5)
    body, headers = _challenge()
    stalled: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, int]] = []
    for i in range(8):
        reader, writer = await _connect(bot)
        writer.write(_head(len(body), headers) + body[:10] if i % 2 else b"POST /slack/events HTTP/1.1\r\n")
        await writer.drain()
        port = writer.get_extra_info("sockname")[1]
        await _until(lambda p=port: p in _open_ports(bot), "the server accepts it")
        stalled.append((reader, writer, port))
        assert len(_open_ports(bot)) <= 5
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        reply = await post(http, bot.events_url, body)
    assert reply.status == 200 and "c-edge" in reply.text
    for reader, _writer, _port in stalled[:4]:  # the four oldest made room for the four newer connections
        assert await _closed_by_server(reader) == b""
    newest = {port for _r, _w, port in stalled[4:]}
    await _until(lambda: _open_ports(bot) == newest, "the server holds the four newest stalled clients only")
    for _reader, writer, _port in stalled:
        writer.close()
    warnings = [r for r in caplog.records if "connection cap reached" in r.getMessage()]
    assert len(warnings) == 1  # four connections closed, one line


class _FakeHandler:
    def __init__(self) -> None:
        self.transport: object | None = object()

    def force_close(self) -> None:
        self.transport = None


def test_connections_are_capped_a_new_one_is_refused_when_all_are_busy():
    cap = edge.ConnectionCap(2)
    busy, idle = [_FakeHandler(), _FakeHandler()], _FakeHandler()
    server = type("S", (), {"connections": [*busy, idle]})()
    for handler in busy:
        cap.busy[handler] = SimpleNamespace(content=SimpleNamespace(is_eof=lambda: True))  # whole, running
    cap.admit(server, idle)  # type: ignore[arg-type]
    assert idle.transport is None and all(h.transport is not None for h in busy)


@pytest.mark.parametrize(("configured", "limit", "cap"), [(512, 20000, 512), (512, 1024, 512), (512, 600, 344)])
def test_connections_are_capped_below_the_open_file_limit(configured, limit, cap):
    assert edge.connection_cap(configured, limit) == cap
