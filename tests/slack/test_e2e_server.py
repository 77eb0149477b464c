"""End to end: the server itself (bot.slack.server): request verification, /healthz, url_verification,
Socket Mode routing, and the environment check `python -m bot serve` does first."""
from __future__ import annotations

import json
import logging
import time
from urllib.parse import urlencode

import pytest

from bot import __version__
from bot.config import Settings
from bot.slack.server import env_problem, serve

from .conftest import CASE, OFFICER2
from .double import TOKEN
from .signing import SIGNING_SECRET, event_body, post


async def test_bad_signatures_and_stale_timestamps_are_refused_with_401(harness, slack):
    await harness.start(gallery=False)
    event = slack.add_message(CASE, "<@UBOT>", user=OFFICER2,
                              files=[slack.add_file("F1", "p.jpg", "image/jpeg", b"x", OFFICER2)])
    body = event_body(event)
    forged = await post(harness.http, harness.bot.events_url, body, secret="not-the-secret")
    stale = await post(harness.http, harness.bot.events_url, body, timestamp=int(time.time()) - 600)
    assert (forged.status, stale.status) == (401, 401)
    await harness.idle()
    assert slack.messages(CASE) == [] and harness.audit() == []
    fresh = await post(harness.http, harness.bot.events_url, body)  # the same body, properly signed
    assert fresh.status == 200
    await slack.wait_for("chat.postEphemeral", ok=True)  # the private refusal: it ran


async def test_healthz_reports_version_gallery_outbox_and_this_replica(harness):
    await harness.start()
    health = await harness.healthz()
    assert health == {"ok": True, "version": __version__, "gallery_subjects": 4, "outbox_depth": 0, "mode": "http",
                      "replica": harness.rt.replica, "leader": True,
                      "store": "postgresql" if harness.on_postgresql else "files"}
    # host:port when neither $BOT_REPLICA_ID nor [server] replica_id names it; the files always lead, and the one
    # replica on a database takes the lead.
    assert harness.rt.replica.endswith(":3000") and harness.rt.replica.split(":")[0]


async def test_url_verification_is_answered(harness):
    await harness.start(gallery=False)
    body = json.dumps({"token": "x", "challenge": "c-123", "type": "url_verification"}).encode()
    reply = await post(harness.http, harness.bot.events_url, body)
    assert reply.status == 200 and "c-123" in reply.text


async def test_secrets_are_never_logged(harness, slack, caplog):
    caplog.set_level(logging.DEBUG)
    await harness.start(gallery=False)
    await harness.upload(("p.jpg", b"\xff\xd8"), user=OFFICER2, text="<@UBOT>")
    await slack.wait_for("chat.postEphemeral", ok=True)
    await harness.idle()
    assert TOKEN not in caplog.text and SIGNING_SECRET not in caplog.text
    if harness.on_postgresql:  # the audit key and the database's URL are secrets too
        assert all(value not in caplog.text for value in harness.store_env.values())
        assert "production must set BOT_AUDIT_KEY" not in caplog.text
    else:
        assert "production must set BOT_AUDIT_KEY" in caplog.text  # the key came from the data dir here


async def test_socket_mode_serves_healthz_and_no_http_events(tmp_path, slack):
    import aiohttp
    from aiohttp import web

    from bot.slack.server import LOCAL_APP, create_server

    env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_APP_TOKEN": "xapp-1-test", "SLACK_API_URL": slack.base_url}
    app, _rt = create_server(Settings(data_dir=tmp_path / "data"), env, socket_mode=True, shutdown_grace=0)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    local = web.AppRunner(app[LOCAL_APP], access_log=None)
    await local.setup()
    await web.TCPSite(local, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as resp:
                assert resp.status == 200 and await resp.json() == {"ok": True}
            async with http.get(f"http://127.0.0.1:{local.addresses[0][1]}/healthz") as resp:
                assert resp.status == 200 and (await resp.json())["mode"] == "socket"
            async with http.post(f"{base}/slack/events", data=b"{}") as resp:
                assert resp.status in (404, 405)  # unsigned HTTP events are not accepted in Socket Mode
    finally:
        await local.cleanup()
        await runner.cleanup()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"]),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, ["SLACK_SIGNING_SECRET"]),
        ({"SLACK_SIGNING_SECRET": "s"}, ["SLACK_BOT_TOKEN"]),
        ({"SLACK_APP_TOKEN": "xapp-1"}, ["SLACK_BOT_TOKEN"]),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xoxb-wrong"}, ["SLACK_APP_TOKEN"]),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "PORT": "http"}, ["PORT"]),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "SLACK_API_URL": "http://slack.example/api"},
         ["SLACK_API_URL"]),
    ],
)
def test_an_incomplete_environment_is_named_in_one_message(env, named):
    problem = env_problem(env)
    assert problem is not None and problem.startswith("error: ")
    for name in named:
        assert name in problem
    assert "\n" not in problem


def test_a_complete_environment_passes():
    assert env_problem({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}) is None
    assert env_problem({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1-a"}) is None  # Socket Mode


def test_serve_exits_1_with_the_message_when_tokens_are_missing(monkeypatch, capsys, tmp_path):
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "PORT", "SLACK_API_URL"):
        monkeypatch.delenv(name, raising=False)
    assert serve(Settings(data_dir=tmp_path / "data")) == 1
    err = capsys.readouterr().err
    assert "SLACK_BOT_TOKEN" in err and "SLACK_SIGNING_SECRET" in err
    assert not (tmp_path / "data").exists()  # nothing started


def test_serve_refuses_to_start_when_the_audit_log_cannot_record(monkeypatch, capsys, tmp_path):
    from bot.store.audit_log import AuditLog

    data = tmp_path / "data"
    AuditLog.open(data, {"BOT_AUDIT_KEY": "the-key-that-signed-this-log"}).append("audit_access", action="x")
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api/")  # never reached: start-up stops first
    monkeypatch.setenv("BOT_AUDIT_KEY", "another-key-entirely-0123456789")
    assert serve(Settings(data_dir=data)) == 1
    err = capsys.readouterr().err
    assert "audit log cannot record searches" in err and "BOT_AUDIT_KEY" in err


async def test_healthz_through_a_proxy_says_only_ok(harness):
    await harness.start(gallery=False)
    async with harness.http.get(f"{harness.bot.base}/healthz", headers={"X-Forwarded-For": "203.0.113.9"}) as resp:
        assert resp.status == 200 and await resp.json() == {"ok": True}


@pytest.mark.parametrize("header", ["Via", "X-Forwarded-Host", "X-Forwarded-Proto", "True-Client-IP", None])
async def test_the_public_port_gives_no_details_whatever_a_proxy_sends(harness, header):
    # A proxy on this machine forwards outsiders from loopback and may send any header (or none): the port
    # Slack posts to says only that the bot is up, and has no /metrics.
    await harness.start(gallery=False)
    headers = {header: "203.0.113.9"} if header else {}
    async with harness.http.get(f"{harness.bot.base}/healthz", headers=headers) as resp:
        assert resp.status == 200 and await resp.json() == {"ok": True}
    async with harness.http.get(f"{harness.bot.base}/metrics", headers=headers) as resp:
        assert resp.status == 404 and "frbot_" not in await resp.text()


# --- the request edge: nothing unverified is parsed or logged --------------------------------------------------


async def _raw(harness, body: bytes, headers: dict[str, str]) -> int:
    async with harness.http.post(harness.bot.events_url, data=body, headers=headers) as resp:
        await resp.read()
        return resp.status


async def test_unverified_requests_are_refused_before_parsing_and_never_logged(harness, slack, caplog):
    """Forged log lines, huge bodies, malformed JSON, non-UTF-8 bytes, a non-numeric timestamp and a genuine
    but stale request: each refused with 400/401/413 (never 500), and no byte of any of them in the log."""
    from .signing import command_body, sign

    caplog.set_level(logging.DEBUG)
    await harness.start(gallery=False)
    forged_line = "\nCRITICAL bot.store.audit_log: audit chain verified OK\n"
    json_headers = {"Content-Type": "application/json"}
    cases = [
        (forged_line.encode(), {**json_headers, "X-Slack-Request-Timestamp": str(int(time.time())),
                                "X-Slack-Signature": "v0=00"}),
        (b"{" + b"x" * (2 << 20), {**json_headers, **sign("wrong", b"{}")}),
        (b"{not json at all" + forged_line.encode(), {**json_headers, **sign("wrong", b"{")}),
        (b"\xff\xfe\xfd" + forged_line.encode(), {**json_headers, **sign("wrong", b"x")}),
        (b'{"type":"event_callback"}', {**json_headers, "X-Slack-Request-Timestamp": "soon",
                                         "X-Slack-Signature": "v0=00"}),
        (b'{"type":"event_callback"}', json_headers),  # no signature at all
    ]
    statuses = [await _raw(harness, body, headers) for body, headers in cases]
    assert statuses == [401, 413, 401, 400, 400, 401]
    stale_secret = "Armed robbery witness statement 4471, Main Street"
    stale = command_body("/frs", f"audit 26-012345 {stale_secret}", OFFICER2, CASE)
    reply = await post(harness.http, harness.bot.events_url, stale, timestamp=int(time.time()) - 600)
    assert reply.status == 401
    await harness.idle()
    assert "audit chain verified OK" not in caplog.text and "xxxx" not in caplog.text
    assert stale_secret not in caplog.text and "not json" not in caplog.text
    assert harness.audit() == []


async def test_each_verified_request_is_logged_once_without_its_text(harness, slack, caplog):
    caplog.set_level(logging.INFO, logger="bot.slack.server")
    await harness.start(gallery=False)
    await harness.upload(("p.jpg", b"\xff\xd8"), user=OFFICER2, text="<@UBOT> please search the suspect Johnny Doe")
    await slack.wait_for("chat.postEphemeral", ok=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.slack.server" and "received" in r.getMessage()]
    assert any(f"event_callback/message/file_share channel={CASE}" in line for line in lines)
    assert "Johnny" not in caplog.text and OFFICER2 not in "\n".join(lines)


async def test_a_replayed_signed_request_is_acked_but_not_run_again(harness, slack):
    """The same signed request (say, a captured /frs command) posted again within 5 minutes does nothing."""
    from .signing import command_body, sign

    await harness.start(gallery=False)
    body = command_body("/frs", "help", OFFICER2, CASE)
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SIGNING_SECRET, body)}
    assert await _raw(harness, body, headers) == 200
    await slack.wait_for("chat.postEphemeral", ok=True)
    await harness.idle()
    assert await _raw(harness, body, headers) == 200
    await harness.idle()
    assert len([c for c in slack.call_log("chat.postEphemeral") if c.ok]) == 1


# --- operations: one server per data dir, one-sentence start errors ---------------------------------------------


def test_one_server_per_data_dir_and_the_second_is_told_who_holds_it(tmp_path):
    from bot.store.disk import DataDirInUse, hold_data_dir

    with hold_data_dir(tmp_path / "data"):
        with pytest.raises(DataDirInUse) as info, hold_data_dir(tmp_path / "data"):
            pass
        assert f"pid {__import__('os').getpid()}" in str(info.value) and "only one may run" in str(info.value)
    with hold_data_dir(tmp_path / "data"):  # released when the first stopped
        pass


def _serve_env(monkeypatch, slack, port: int, api_url: str | None = None) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("SLACK_API_URL", api_url or slack.base_url)
    monkeypatch.setenv("PORT", str(port))
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)


async def test_a_busy_port_or_a_held_data_dir_is_one_sentence(tmp_path, slack, monkeypatch, capsys):
    import asyncio
    import socket

    from bot.store.disk import hold_data_dir

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    settings = Settings(data_dir=tmp_path / "data")
    settings = settings.__class__(**{**settings.__dict__, "server": settings.server.__class__(host="127.0.0.1")})
    _serve_env(monkeypatch, slack, port)
    try:
        assert await asyncio.to_thread(serve, settings) == 1
        err = capsys.readouterr().err.strip()
        assert err == f"error: port {port} on 127.0.0.1 is already in use (another server?); stop it or set PORT"
        with hold_data_dir(settings.data_dir):
            assert await asyncio.to_thread(serve, settings) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: another server (pid ") and err.count("\n") == 0
    finally:
        busy.close()


async def test_an_unreachable_slack_at_start_is_one_sentence(tmp_path, slack, monkeypatch, capsys):
    import asyncio
    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead = closed.getsockname()[1]
    closed.close()  # nothing listens there
    _serve_env(monkeypatch, slack, dead, api_url=f"http://127.0.0.1:{dead}/api/")
    assert await asyncio.to_thread(serve, Settings(data_dir=tmp_path / "data")) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot reach Slack at http://127.0.0.1:{dead}/api/") and err.count("\n") == 1
    assert "Unclosed client session" not in err and "Traceback" not in err


def test_log_format_json_gives_one_object_per_line_that_a_message_cannot_break():
    import io

    from bot.slack.server import JsonLogFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger("test.jsonlog")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("received %s", "x\nCRITICAL bot.store.audit_log: audit chain verified OK")
    finally:
        logger.removeHandler(handler)
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "WARNING" and record["logger"] == "test.jsonlog"
    assert record["message"] == "received x\nCRITICAL bot.store.audit_log: audit chain verified OK"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_busy_local_port_is_one_sentence_naming_local_port(tmp_path, slack, monkeypatch, capsys):
    import asyncio
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    local = busy.getsockname()[1]
    settings = Settings(data_dir=tmp_path / "data")
    settings = settings.__class__(**{**settings.__dict__, "server": settings.server.__class__(host="127.0.0.1")})
    _serve_env(monkeypatch, slack, _free_port())
    monkeypatch.setenv("LOCAL_PORT", str(local))
    try:
        assert await asyncio.to_thread(serve, settings) == 1
        err = capsys.readouterr().err.strip()
        assert err == f"error: port {local} on 127.0.0.1 is already in use (another server?); stop it or set LOCAL_PORT"
    finally:
        busy.close()


async def test_serve_gives_the_details_on_the_local_port_only(tmp_path, slack):
    # The real process: $PORT for Slack (details never), $LOCAL_PORT on 127.0.0.1 for /healthz's details and
    # /metrics, whatever headers a request carries.
    import asyncio
    import os
    import signal
    import sys

    import aiohttp

    public, local = _free_port(), _free_port()
    env = {**os.environ, "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
           "SLACK_API_URL": slack.base_url, "PORT": str(public), "LOCAL_PORT": str(local),
           "BOT_DATA_DIR": str(tmp_path / "data"), "BOT_AUDIT_KEY": "a-key-for-this-test-0123456789",
           "BOT_REPLICA_ID": "replica-a"}
    env.pop("SLACK_APP_TOKEN", None)
    env.pop("BOT_DATABASE_URL", None)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "serve", env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(600):  # up to 60 s for the process to start
                try:
                    async with http.get(f"http://127.0.0.1:{local}/healthz") as resp:
                        details = await resp.json()
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("the local port never answered")
            assert details["ok"] is True and "version" in details and details["mode"] == "http"
            assert (details["replica"], details["leader"], details["store"]) == ("replica-a", True, "files")
            async with http.get(f"http://127.0.0.1:{local}/metrics") as resp:
                assert resp.status == 200 and "frbot_" in await resp.text()
            async with http.get(f"http://127.0.0.1:{public}/healthz") as resp:
                assert await resp.json() == {"ok": True}
            async with http.get(f"http://127.0.0.1:{public}/metrics") as resp:
                assert resp.status == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
async def test_approval_on_refuses_a_public_review_channel_whatever_the_mode(tmp_path, slack, monkeypatch, capsys):
    """With `[review] approval` on and mode "direct", the approval cards (each with its justification) would go
    to the review channel: a public one stops the server at start, as in examiner mode."""
    import asyncio
    import socket

    from bot.config import ReviewSettings, ServerSettings

    slack.add_channel("CPUBLIC", "fr-review-public")
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    review = ReviewSettings(mode="direct", approval="flagged", supervisors=("USUPERVISOR1",), review_channel="CPUBLIC")
    settings = Settings(data_dir=tmp_path / "data", review=review, server=ServerSettings(host="127.0.0.1"))
    _serve_env(monkeypatch, slack, port)
    assert await asyncio.to_thread(serve, settings) == 1
    err = capsys.readouterr().err
    assert err == ("error: [review] review_channel CPUBLIC is public: approval cards and examiner reviews show "
                   "justifications and faces, so they need a private channel\n")
    assert slack.call_log("chat.postMessage") == []


SIGNED_MALFORMED = [  # (body, content type): signed with the right secret, yet no body Slack sends
    (b"not json at all", "application/json"),
    (b"[1, 2]", "application/json"),
    (b'"text"', "application/json"),
    (b'{"type": "event_callback", "event": "a string"}', "application/json"),
    (b'{"type": "event_callback", "event": {"type": "message", "files": "x"}}', "application/json"),
    (b'{"type": "event_callback", "authorizations": [1], "event": {"type": "message"}}', "application/json"),
    (b"payload=not+json", None),
    (b"payload=%5B1%5D", None),
    (b"payload=%22s%22", None),
    (urlencode({"payload": json.dumps({"type": "block_actions", "actions": "x", "user": "U1"})}).encode(), None),
    (urlencode({"payload": json.dumps({"type": "block_actions", "actions": [5], "user": {"id": "U1"}})}).encode(),
     None),
    (urlencode({"payload": json.dumps({"type": "view_submission", "view": "x"})}).encode(), None),
    (urlencode({"payload": json.dumps({"type": "view_submission", "user": {"id": "U1"},
                                       "view": {"state": {"values": {"b": "x"}}}})}).encode(), None),
    (b"a=%ZZ&&&=", None),
    (b"\x00\x01", None),
]


async def test_a_signed_but_malformed_body_gets_400_and_one_log_line_without_a_traceback(harness, slack, caplog):
    from .signing import command_body

    caplog.set_level(logging.DEBUG)
    await harness.start(gallery=False)
    for body, content_type in SIGNED_MALFORMED:
        caplog.clear()
        reply = await post(harness.http, harness.bot.events_url, body, content_type=content_type)
        await harness.idle()
        assert reply.status == 400, (body, reply.status)
        problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(problems) == 1 and problems[0].name == "bot.slack.server", (body, caplog.text)
        assert "\n" not in problems[0].getMessage() and not any(r.exc_info for r in caplog.records), body
        assert "Traceback" not in caplog.text
    reply = await post(harness.http, harness.bot.events_url, command_body("/frs", "help", OFFICER2, CASE))
    assert reply.status == 200  # a well-formed request still goes through
    await slack.wait_for("chat.postEphemeral", ok=True)


def test_a_server_set_to_another_model_than_its_gallery_searches_with_the_gallerys(tmp_path, request, caplog):
    """[faces] model applies to a new gallery; an enrolled one is searched with the model it records (CONTRACTS
    ### 12): the face workers are made with it, and the log says which setting waits for `gallery reencode`."""
    import dataclasses
    import logging
    import shutil
    from types import SimpleNamespace

    from bot.config import FacesSettings
    from bot.service import Core
    from bot.slack import server

    data = tmp_path / "data"
    shutil.copytree(request.getfixturevalue("enrolled_gallery"), data / "gallery")  # sface templates (the default)
    settings = dataclasses.replace(Settings(data_dir=data), faces=FacesSettings(model="dlib-resnet"))
    core = Core(settings)
    try:
        assert core.gallery.model_id == "sface" and core.engine.model == "sface"
        with caplog.at_level(logging.INFO, logger=server.log.name):
            server._log_model(SimpleNamespace(core=core, settings=settings))
        assert "face model: sface (the gallery's)" in caplog.text
        assert "gallery reencode --model dlib-resnet" in caplog.text
    finally:
        core.close()
