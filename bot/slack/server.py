"""`python -m bot serve`: the Slack bot's process.

HTTP mode (default): aiohttp on $PORT (default 3000) with `POST /slack/events` (events, interactivity and
slash commands, verified by Bolt) and `GET /healthz` ({"ok": true} and nothing more). Socket Mode when
SLACK_APP_TOKEN is set: the bot connects out to Slack and still answers `GET /healthz` on $PORT. The local port
($LOCAL_PORT, else `[server] local_port`, 9300), bound to 127.0.0.1, serves `/healthz` with its details and
`/metrics`. The edge (bot.slack.edge, `make_runner`) closes
connections that stall mid-request and caps how many are open.

Environment: SLACK_BOT_TOKEN (always), SLACK_SIGNING_SECRET (HTTP mode), SLACK_APP_TOKEN (Socket Mode),
SLACK_API_URL (optional Web API base URL), PORT, LOCAL_PORT, BOT_CONFIG, BOT_DATA_DIR, BOT_AUDIT_KEY. Secrets are never
logged. Background jobs: dialog timeouts, the watchdog of stuck work and the outbox every `tick_interval`
seconds, dialog-state retention daily, the alert rules every [oversight] check_minutes and the full chain check every
verify_minutes (the leader); on start, the dispatch-channel backfill, the resumption of dialogs a restart
interrupted, the full chain check and the alert rules.
One server per data dir (the dialog store is a local file).
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier

from bot import __version__
from bot.config import ConfigError, Settings, replica_id
from bot.console import app as console
from bot.faces.engine import FaceEngine
from bot.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from bot.slack import edge, flow, roles
from bot.slack.app import build_app
from bot.slack.client import normalise_api_url
from bot.slack.flow.sampling import draw_samples
from bot.slack.runtime import Runtime
from bot.store.backend import StoreError, is_database_outage
from bot.store.disk import DataDirInUse, hold_data_dir
from bot.store.replays import replay_key

log = logging.getLogger(__name__)

DEFAULT_PORT = 3000
LOCAL_HOST = "127.0.0.1"
WARM_UP_WAIT_S = 60.0  # at shutdown, how long to let the face workers finish starting before they are stopped
LOCAL_APP: web.AppKey[web.Application] = web.AppKey("local_app", web.Application)
TICK_INTERVAL_S = 30.0
PURGE_INTERVAL_S = 24 * 3600.0
GALLERY_WATCH_S = 2.0  # a LISTEN wait returns this often (so a stopping server is never held longer)
LEADER_POLL_S = 5.0  # leadership kept alive (and a dead leader replaced) at this beat: CONTRACTS ### 13
STUCK_AFTER_MINUTES = 5.0  # the tick's watchdog restarts face work or a search stuck this long
RUNTIME = web.AppKey("runtime", Runtime)


def env_problem(env: Mapping[str, str]) -> str | None:
    """One sentence naming exactly what to set, or None when the environment is complete."""
    socket_mode = bool(env.get("SLACK_APP_TOKEN"))
    missing = [] if env.get("SLACK_BOT_TOKEN") else ["SLACK_BOT_TOKEN (the Bot User OAuth Token, xoxb-...)"]
    if not socket_mode and not env.get("SLACK_SIGNING_SECRET"):
        missing.append("SLACK_SIGNING_SECRET (Basic Information > App Credentials > Signing Secret)")
    if missing:
        return (
            "error: set " + " and ".join(missing) + " in the environment before `python -m bot serve` "
            "(or set SLACK_APP_TOKEN, xapp-..., to use Socket Mode, which needs no signing secret)"
        )
    if socket_mode and not env["SLACK_APP_TOKEN"].startswith("xapp-"):
        return "error: SLACK_APP_TOKEN must be an app-level token starting with xapp- (connections:write scope)"
    for variable in ("PORT", "LOCAL_PORT"):
        port = env.get(variable, "")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            return f"error: {variable}={port!r} is not a port number (1-65535)"
    try:
        normalise_api_url(env.get("SLACK_API_URL"))
    except ConfigError as exc:
        return f"error: {exc}"
    return None


async def _nothing() -> None:
    """A periodic job's turn on a replica that does not lead."""


async def _every(interval: float, job: Callable[[], Awaitable[Any]], name: str) -> None:
    """Run `job` every `interval` seconds; a failing run is logged and the next one still happens."""
    while True:
        await asyncio.sleep(interval)
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background job %s failed", name)


async def _guard_dispatch_channel(rt: Runtime) -> None:
    """A dispatch channel shared with another organisation gets summary log entries only: justifications
    and candidate names stay inside the department (as case channels shared that way are refused)."""
    channel = rt.settings.slack.dispatch_channel
    if not channel or rt.settings.slack.call_log_detail == "summary":
        return
    info = await rt.channel_info(channel)
    if info and info.get("is_ext_shared"):
        log.error("the dispatch channel %s is shared with another organisation: call-thread entries will be "
                  "summaries (no justification, no candidates)", channel)
        rt.settings = replace(rt.settings, slack=replace(rt.settings.slack, call_log_detail="summary"))


async def review_channel_problem(rt: Runtime) -> str | None:
    """In examiner mode or with supervisor approval on (whatever the mode), why the review channel may not hold
    review or approval cards (one sentence), or None: it must be private (faces and justifications are shown
    there) and not shared with another organisation."""
    review = rt.settings.review
    if review.mode != "examiner" and review.approval == "never":
        return None
    return await flow.private_channel_problem(rt, "[review] review_channel", review.review_channel,
                                              "approval cards and examiner reviews show justifications and faces")


async def _on_start(rt: Runtime) -> None:
    """Apply this replica's spooled inputs; the leader (the only server on the files) then does the start's
    periodic work."""
    try:
        await _guard_dispatch_channel(rt)
    except Exception:
        log.exception("dispatch channel check failed")
    if rt.leading:
        await _lead_start(rt)
    spooled = await flow.replay_spool(rt)
    if spooled:
        log.info("applying %d inputs kept in the spool while the disk was full", spooled)


async def _lead_start(rt: Runtime) -> None:
    """What a server does once it leads (at start on the files; when it takes leadership on a database):
    backfill the call index, write audit entries an interrupted run left unwritten, resume dialogs whose work
    nobody holds, purge, post the chain head, check the whole chain and run the alert rules."""
    try:
        indexed = await rt.calls.backfill()
        log.info("dispatch channel backfill: %d messages indexed", indexed)
    except Exception:
        log.exception("dispatch channel backfill failed")
    try:
        await flow.reconcile_audit(rt)
    except Exception:
        log.exception("audit reconciliation at start failed")
    resumed = await flow.resume_all(rt)
    if resumed:
        log.info("resumed %d dialogs interrupted by a restart", resumed)
    try:
        await flow.purge(rt)  # once at start too: a server restarted more often than daily still purges
    except Exception:
        log.exception("retention purge at start failed")
    for job, name in ((flow.verify_chain, "full chain check"), (flow.check_alerts, "alert rules")):
        try:  # oversight is never taken on trust: the whole chain checked and the alert rules run at start
            await job(rt)
        except Exception:
            log.exception("%s at start failed", name)
    await draw_samples(rt)  # last month's sampled audit, when due (never raises)


async def _keep_leading(rt: Runtime) -> None:
    """Poll leadership (a thread: a poll may wait on an unreachable database); a replica that has just taken
    over does the leader's start work. Every LEADER_POLL_S, on a shared database only."""
    if await asyncio.to_thread(rt.core.backend.ping) and not rt.database_back.is_set():
        rt.state.pop("told_delayed", None)  # a later outage is told again
        rt.database_back.set()  # spooled inputs waiting on the database are retried now
    was = rt.leading
    now = await asyncio.to_thread(rt.leadership.poll)
    rt.state["leader"] = now
    if now != was:
        log.warning("replica %s %s the periodic work", rt.replica, "now runs" if now else "no longer runs")
        if now:
            rt.spawn(_lead_start(rt), name="lead-start")


async def _watch_gallery(rt: Runtime) -> None:
    """A shared database: load a gallery generation as soon as another machine commits it (LISTEN), so the next
    search need not fetch it first. Runs until the server stops."""
    watch = rt.core.backend.gallery_watch()
    try:
        while True:
            if await asyncio.to_thread(watch.wait, GALLERY_WATCH_S) is not None:
                try:
                    await rt.io(rt.core.gallery.refresh)
                except Exception as exc:  # noqa: BLE001 - the search's own check loads it later
                    log.warning("the new gallery generation could not be loaded yet (%s)", type(exc).__name__)
    finally:
        watch.close()


async def _tick(rt: Runtime) -> None:
    """The tick: the leader's periodic work; every other replica flushes only what is its own (folded refusals)
    and helps deliver the outbox (claims keep each post to one sender)."""
    if rt.core.backend.shared:  # what other replicas indexed and queued
        await rt.io(rt.calls.reload)
    if rt.leading:
        await flow.tick(rt)
        return
    await rt.io(rt.core.refusals.flush, rt.now())
    if rt.calls.outbox_depth():
        await rt.calls.flush_outbox()


def _warnings(rt: Runtime) -> None:
    slack = rt.settings.slack
    if rt.core.audit.key_source == "file":
        log.warning(
            "the audit log is keyed from %s: production must set BOT_AUDIT_KEY (whoever can write the data dir "
            "could otherwise recompute the chain)", rt.core.audit.dir / "audit.key",
        )
    if not slack.requesters and not slack.requester_groups:
        log.warning("no requesters or requester_groups are configured: every request will be refused")
    if not slack.dispatch_channel:
        log.warning("no dispatch_channel is configured: searches will not be logged in call threads")
    elif not slack.dispatch_sources_listed:
        log.warning("no [slack] cad_bot_ids, dispatchers or dispatcher_groups are set: any message in the "
                    "dispatch channel can open or take over a call's thread and make a call number known")


# Slack's payloads are a few kB; a file's bytes never come through this route.
MAX_EVENT_BYTES = 1 << 20
REPLAY_WINDOW_S = 5 * 60


def verify_request(verifier: SignatureVerifier, body: bytes, headers: Mapping[str, str], now: float) -> str:
    """"ok", "malformed" or "unsigned".

    Slack signs `v0:timestamp:body`; a request older than 5 minutes is refused (the replay window). Whether this
    exact request was handled already is `ReplayClaims`' question, asked next.
    """
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature", "")
    if not timestamp or not signature:
        return "unsigned"
    if not timestamp.isdigit() or len(timestamp) > 12:
        return "malformed"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "malformed"
    if abs(now - int(timestamp)) > REPLAY_WINDOW_S:
        return "unsigned"
    if not verifier.is_valid(text, timestamp, signature):
        return "unsigned"
    return "ok"


# Where present, what a field of a Slack body must be (Slack's own bodies always are): the fields Bolt and the
# listeners read. Checked in the body itself and in the objects under NESTED, at any depth.
_NOTHING = type(None)
_SHAPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("user", "team", "enterprise", "channel"), (str, dict, _NOTHING)),
    **dict.fromkeys(("event", "container", "message", "previous_message", "view", "item", "state", "values"),
                    (dict, _NOTHING)),
    **dict.fromkeys(("authorizations", "actions", "files", "response_urls"), (list, _NOTHING)),
}
_NESTED = ("event", "message", "previous_message", "view", "state")


def _shape_problem(data: dict[str, Any], where: str) -> str | None:
    for key, kinds in _SHAPES.items():
        value = data.get(key)
        if not isinstance(value, kinds):
            return f"{where}.{key} is a {type(value).__name__}"
        if isinstance(value, list) and not all(isinstance(item, dict) for item in value):
            return f"{where}.{key} holds something other than objects"
    values = data.get("values")  # a form's answers: {block: {action: {...}}}
    if isinstance(values, dict) and not all(isinstance(b, dict) and all(isinstance(a, dict) for a in b.values())
                                            for b in values.values()):
        return f"{where}.values is not a form's answers"
    for key in _NESTED:
        inner = data.get(key)
        if isinstance(inner, dict):
            problem = _shape_problem(inner, f"{where}.{key}")
            if problem:
                return problem
    return None


def body_problem(body: bytes, content_type: str | None) -> str | None:
    """Why a verified body is no request Slack sends (a few words for the log), or None: read as Bolt reads it
    (JSON, a form, or a form's `payload` of JSON), it must be an object whose fields have Slack's shapes. What
    passes cannot make Bolt or a listener fail on its shape; what fails gets 400, never a 500 with a traceback."""
    kind = (content_type or "").split(";")[0] or None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8"
    as_json = kind == "application/json" or text.startswith("{")  # as Bolt decides
    try:
        if not as_json:
            urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
        data = parse_body(text, kind)
    except ValueError:  # json.JSONDecodeError is one
        return "not JSON" if as_json else "a payload that is not JSON" if "payload=" in text else "not a form"
    if not isinstance(data, dict):
        return f"JSON of the wrong shape (a {type(data).__name__}, not an object)"
    return _shape_problem(data, "body")


def _log_model(rt: Runtime) -> None:
    """Which face model searches use: the gallery's (a setting of another model waits for `gallery reencode`)."""
    gallery = rt.core.gallery
    gallery.refresh()
    held, setting = gallery.model_id, rt.settings.faces.model
    if held and held != setting:
        log.warning("face model: %s (the gallery's); [faces] model = %s applies once the gallery is moved with "
                    "`python -m bot gallery reencode --model %s`", held, setting, setting)
    else:
        log.info("face model: %s", held or setting)


def describe_request(body: bytes, headers: Mapping[str, str]) -> str:
    """One log line for a verified request: its kind, channel and ids, never text or names."""
    retry = headers.get("X-Slack-Retry-Num")
    suffix = f" (retry {retry})" if retry else ""
    try:
        if headers.get("Content-Type", "").startswith("application/json"):
            data = json.loads(body)
            event = data.get("event") or {}
            kind = "/".join(str(x) for x in (data.get("type"), event.get("type"), event.get("subtype")) if x)
            return f"{kind} channel={event.get('channel', '-')} event_id={data.get('event_id', '-')}{suffix}"
        form = urllib.parse.parse_qs(body.decode("utf-8"))
        if "command" in form:
            return f"command {form['command'][0][:20]} channel={form.get('channel_id', ['-'])[0][:20]}{suffix}"
        payload = json.loads(form.get("payload", ["{}"])[0])
        actions = [a.get("action_id", "") for a in payload.get("actions") or []]
        channel = (payload.get("channel") or {}).get("id", "-")
        return f"{payload.get('type', 'request')} {','.join(actions)[:80]} channel={channel}{suffix}"
    except (ValueError, AttributeError, TypeError):
        return f"request ({len(body)} bytes){suffix}"


def create_server(
    settings: Settings,
    env: Mapping[str, str],
    *,
    tick_interval: float = TICK_INTERVAL_S,
    purge_interval: float = PURGE_INTERVAL_S,
    engine: FaceEngine | None = None,
    clock: Callable[[], datetime] | None = None,
    socket_mode: bool = False,
    shutdown_grace: float = 10.0,
    status_interval: float = 1.0,
    stuck_after_minutes: float = STUCK_AFTER_MINUTES,
) -> tuple[web.Application, Runtime]:
    """The aiohttp application and its runtime; background jobs start and stop with the application.

    `engine` (shared, not closed here), `clock` and the intervals are for tests. With `socket_mode`
    there is no /slack/events route (requests arrive over the socket, unsigned by design). On shutdown,
    request work in flight gets `shutdown_grace` seconds to finish before it is cancelled. Status messages
    are updated at most every `status_interval` seconds (Slack etiquette: once a second; tests go faster).
    A dialog stuck finding faces or searching for `stuck_after_minutes` with nothing running has its work
    restarted by the tick (`flow.watchdog`).
    """
    rt = Runtime.create(settings, env, engine=engine, clock=clock)
    rt.replica = replica_id(settings, env, int(env.get("PORT") or settings.server.port or DEFAULT_PORT))
    rt.leadership = rt.core.backend.leadership(rt.replica)
    # Refuse to start when no search could be recorded (e.g. BOT_AUDIT_KEY is not the key that signed the log).
    rt.core.audit.check_writable()
    rt.status_interval = status_interval
    rt.stuck_after = timedelta(minutes=stuck_after_minutes)
    bolt = build_app(rt)
    rt.state["bolt"] = bolt
    app = web.Application()
    app[RUNTIME] = rt

    verifier = SignatureVerifier(rt.signing_secret) if rt.signing_secret else None  # None: Socket Mode
    in_flight: set[str] = set()  # claimed once handled; a copy arriving meanwhile is a replay too

    async def slack_events(request: web.Request) -> web.Response:
        arrived = time.perf_counter()
        # Verify before anything parses or logs the request: an unsigned body never reaches Bolt (which
        # logs failed bodies) nor a JSON parser, and gets 400/401, never a 500 with a traceback.
        if request.content_length is not None and request.content_length > MAX_EVENT_BYTES:
            return web.Response(status=413, text="too large")
        body = await edge.read_body(request, MAX_EVENT_BYTES, settings.server.read_timeout_seconds)
        if body is None:
            return web.Response(status=408)  # never sent: the connection stalled and is closed
        if len(body) > MAX_EVENT_BYTES:
            return web.Response(status=413, text="too large")
        now = time.time()
        verdict = verify_request(verifier, body, request.headers, now) if verifier is not None else "unsigned"
        if verdict != "ok":
            rejected[verdict] = rejected.get(verdict, 0) + 1
            return web.Response(status=400 if verdict == "malformed" else 401, text="invalid request")
        problem = body_problem(body, request.headers.get("Content-Type"))
        if problem:  # signed, so from someone holding the secret: said in one line, never a traceback
            rejected["malformed"] = rejected.get("malformed", 0) + 1
            log.warning("refused a signed request (%d bytes): %s", len(body), problem)
            return web.Response(status=400, text="invalid request")
        key = replay_key(body, request.headers)
        if key in in_flight or await _replayed(rt, key, now):
            # A copy of a request handled already (a replay, even across a restart, or Slack's redelivery of an
            # event): acked, not run again.
            return web.Response(status=200)
        in_flight.add(key)
        try:
            log.info("received %s", describe_request(body, request.headers))
            bolt_request = AsyncBoltRequest(body=body.decode("utf-8"), query=request.query_string,
                                            headers=request.headers)  # type: ignore[arg-type]
            response = await to_aiohttp_response(await bolt.async_dispatch(bolt_request))
            if response.status < 500:  # handled: a copy is a replay from now on (a 500 lets Slack retry)
                rt.replays.remember(key, now)
                # The fsync stays off the ack: a replay meets the claim in memory until it is on disk.
                rt.spawn(rt.io(rt.replays.persist, key, now), name="replay-claim")
        finally:
            in_flight.discard(key)
        rt.metrics.ack_latency.observe(time.perf_counter() - arrived)
        return response

    rejected: dict[str, int] = rt.state.setdefault("rejected_requests", {})

    async def healthz(_request: web.Request) -> web.Response:
        # The port faces the internet (Slack posts to it, often through a proxy on this machine that forwards
        # outsiders from loopback with whatever headers it likes): it says only that the bot is up. The details
        # and /metrics are on the local port (`local_app`).
        return web.json_response({"ok": True})

    rt.metrics.watch({"open_requests": lambda: len(rt.store.active()), "outbox_depth": rt.calls.outbox_depth,
                      "audit_entries": rt.core.audit.last_seq})
    rt.core.audit.on_append = rt.metrics.audit_appended
    rt.engine.on_task_done = rt.metrics.face_work.observe  # a shared engine (tests) reports to the newest server

    async def startup(_app: web.Application) -> None:
        await rt.start()
        # Which top-level dispatch messages are indexed: the bot's own and the configured sources (roles).
        rt.calls.trust = lambda message: roles.is_dispatch_source(rt, dict(message))
        _warnings(rt)
        rt.state["leader"] = await asyncio.to_thread(rt.leadership.poll)
        if rt.core.backend.shared:
            log.info("replica %s %s", rt.replica, "leads the periodic work" if rt.leading else "serves (another leads)")
            rt.spawn(_every(LEADER_POLL_S, lambda: _keep_leading(rt), "leadership"), name="leadership", job=True)
            rt.spawn(_watch_gallery(rt), name="gallery-watch", job=True)
        rt.spawn(_on_start(rt), name="on-start")
        rt.spawn(_every(tick_interval, lambda: _tick(rt), "tick"), name="tick", job=True)
        rt.spawn(_every(purge_interval, lambda: flow.purge(rt) if rt.leading else _nothing(), "purge"), name="purge",
                 job=True)
        rt.spawn(_every(purge_interval, lambda: draw_samples(rt) if rt.leading else _nothing(), "samples"),
                 name="samples", job=True)
        oversight = rt.settings.oversight
        rt.spawn(_every(oversight.check_minutes * 60.0, lambda: flow.check_alerts(rt) if rt.leading else _nothing(),
                        "alerts"), name="alerts", job=True)
        rt.spawn(_every(oversight.verify_minutes * 60.0, lambda: flow.verify_chain(rt) if rt.leading else _nothing(),
                        "chain check"), name="chain-check", job=True)

    async def cleanup(_app: web.Application) -> None:
        await rt.close(grace=shutdown_grace)

    if not socket_mode:
        app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/healthz", healthz)
    if console.enabled(env):  # the oversight console (Sign in with Slack); otherwise /console is 404
        app.add_subapp(console.PREFIX, console.console_app(rt, env))
    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    app[LOCAL_APP] = local_app(rt, socket_mode=socket_mode)
    return app, rt


async def _replayed(rt: Runtime, key: str, now: float) -> bool:
    """Whether a signed request was handled already. In memory on the files. On a shared database an event is
    asked of memory only: an event is applied through a dedupe claim on its event id in the database (once,
    on whichever replica) or changes nothing when applied twice (the dispatch index), so a read here would only
    delay the ack of every message. Button presses, forms and
    slash commands are asked of the database, in the ack threads; a database that cannot answer counts as "not
    seen" (refusing it here would lose an officer's input)."""
    if not rt.core.backend.shared or key.startswith("event:"):
        return rt.replays.seen_here(key, now)
    try:
        return await rt.ack_io(rt.replays.seen, key, now)
    except Exception as exc:  # noqa: BLE001 - psycopg's errors; never a 500 for this
        log.warning("replay check skipped: the database did not answer (%s)", type(exc).__name__)
        return False


def local_app(rt: Runtime, *, socket_mode: bool = False) -> web.Application:
    """What only this machine may read, served on 127.0.0.1 at `[server] local_port` ($LOCAL_PORT wins):
    `/healthz` with its details (monitoring agents, the Procfile host's checks) and `/metrics` (Prometheus).
    Decided by the socket it listens on, never by a request's headers."""

    async def healthz(_request: web.Request) -> web.Response:
        def numbers() -> tuple[int, int]:
            gallery = rt.core.gallery
            gallery.refresh()
            return gallery.subject_count, rt.calls.outbox_depth()

        try:
            subjects, depth = await rt.io(numbers)
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            # The database is away: said plainly (503), never a traceback; this replica keeps running.
            return web.json_response({"ok": False, "version": __version__, "database": "unreachable",
                                      "replica": rt.replica, "leader": rt.leading, "store": rt.core.backend.name},
                                     status=503)
        return web.json_response(
            {"ok": True, "version": __version__, "gallery_subjects": subjects, "outbox_depth": depth,
             "mode": "socket" if socket_mode else "http", "replica": rt.replica, "leader": rt.leading,
             "store": rt.core.backend.name}
        )

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=await rt.io(rt.metrics.render), headers={"Content-Type": METRICS_CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


def make_runner(app: web.Application, open_file_limit: int | None = None) -> edge.EdgeRunner:
    """The runner for a `create_server` application: stalled connections closed after `[server]
    read_timeout_seconds`, at most `max_connections` open (lowered to stay under `open_file_limit`)."""
    server = app[RUNTIME].settings.server
    cap = server.max_connections
    if open_file_limit is not None:
        cap = edge.connection_cap(cap, open_file_limit)
        if cap < server.max_connections:
            log.warning("[server] max_connections %d lowered to %d: the open-file limit is %d", server.max_connections,
                        cap, open_file_limit)
    return edge.EdgeRunner(app, read_timeout=server.read_timeout_seconds, max_connections=cap, access_log=None)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line (LOG_FORMAT=json): ts, level, logger, message, and the exception if any.
    A message can never break out of its line: JSON escapes the newlines a forged one would need."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname,
               "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(env: Mapping[str, str]) -> None:
    """LOG_LEVEL (default INFO) and LOG_FORMAT ("text", default, or "json") for the server's log."""
    handler = logging.StreamHandler()
    if env.get("LOG_FORMAT", "text").lower() == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=env.get("LOG_LEVEL", "INFO").upper(), handlers=[handler])


class StartError(Exception):
    """The server cannot start; the message is the one sentence to print."""


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft open-file limit to the hard limit (connections are files); returns (soft, hard)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft, hard


async def _abandon(runner: web.AppRunner, rt: Runtime) -> None:
    """A failed start: close what the start opened (sessions, pools), so no "Unclosed client session" noise."""
    with contextlib.suppress(Exception):
        await runner.cleanup()
    if rt.api_session is not None or rt.download_session is not None:
        with contextlib.suppress(Exception):
            await rt.close(grace=0)


async def _run(settings: Settings, env: Mapping[str, str]) -> None:
    app_token = env.get("SLACK_APP_TOKEN")
    port = int(env.get("PORT") or settings.server.port or DEFAULT_PORT)
    local_port = int(env.get("LOCAL_PORT") or settings.server.local_port)
    host = settings.server.host
    soft, _hard = raise_open_file_limit()
    app, rt = create_server(settings, env, socket_mode=bool(app_token))
    runner = make_runner(app, soft)
    try:
        await runner.setup()  # runs startup: auth.test, background jobs
    except aiohttp.ClientConnectionError as exc:
        await _abandon(runner, rt)
        raise StartError(f"cannot reach Slack at {rt.api_url or 'https://slack.com/api/'} ({exc}); check the "
                         "network and SLACK_API_URL") from None
    except BaseException:
        await _abandon(runner, rt)
        raise
    await rt.io(_log_model, rt)
    problem = await review_channel_problem(rt)
    if problem:
        await _abandon(runner, rt)
        raise StartError(problem)
    local_runner = web.AppRunner(app[LOCAL_APP], access_log=None)
    await local_runner.setup()
    sites = [(web.TCPSite(runner, host, port), host, port, "PORT"),
             (web.TCPSite(local_runner, LOCAL_HOST, local_port), LOCAL_HOST, local_port, "LOCAL_PORT")]
    for site, site_host, site_port, variable in sites:
        try:
            await site.start()
        except OSError as exc:
            await local_runner.cleanup()
            await _abandon(runner, rt)
            if exc.errno == errno.EADDRINUSE:
                raise StartError(f"port {site_port} on {site_host} is already in use (another server?); stop it "
                                 f"or set {variable}") from None
            raise StartError(f"cannot listen on {site_host}:{site_port}: {exc.strerror or exc}") from None
    # Start the face workers now so the first photo does not wait for the models to load.
    warming = asyncio.get_running_loop().run_in_executor(None, rt.engine.start)
    log.info("open-file limit %d; at most %d connections at once", soft, runner.cap.limit)
    handler = None
    if app_token:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        handler = AsyncSocketModeHandler(rt.state["bolt"], app_token)
        await handler.connect_async()
        log.info("connected to Slack in Socket Mode; /healthz on port %d", port)
    else:
        log.info("listening on port %d: POST /slack/events, GET /healthz", port)
    log.info("local port %s:%d: GET /healthz (details), GET /metrics", LOCAL_HOST, local_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        if handler is not None:
            await handler.close_async()
        # A stop while the workers still start: let the start finish first, else the engine's close runs before
        # the start makes its pool, the pool outlives the close and the process never exits.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(warming), WARM_UP_WAIT_S)
        await local_runner.cleanup()
        await runner.cleanup()


def serve(settings: Settings) -> int:
    """Run the bot until SIGINT/SIGTERM; 1 with one clear message when the environment is incomplete."""
    env = dict(os.environ)
    problem = env_problem(env) or console.settings_problem(settings, env)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    configure_logging(env)
    try:
        with hold_data_dir(settings.data_dir):
            asyncio.run(_run(settings, env))
    except (StartError, DataDirInUse, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        from slack_sdk.errors import SlackApiError

        from bot.store.audit_log import AuditError

        if isinstance(exc, AuditError):
            print(f"error: the audit log cannot record searches, so the bot will not start: {exc}", file=sys.stderr)
        elif isinstance(exc, SlackApiError):
            print(f"error: Slack refused the bot token ({exc.response.get('error')}); check SLACK_BOT_TOKEN and "
                  "SLACK_API_URL", file=sys.stderr)
        else:
            log.exception("the server stopped")
            print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
