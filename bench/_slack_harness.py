"""Shared plumbing for the Slack benchmarks (bench.slack_ack, bench.slack_latency); not a benchmark itself.

Three event loops in one process, each on its own thread, so the bot's loop runs only the bot:
    the Slack side  - tests/slack/double/'s SlackDouble (the Web API the bot calls through SLACK_API_URL)
    the bot         - bot.slack.server.create_server on 127.0.0.1:0, as in tests/slack/conftest.py, with a
                      temporary data dir, a small gallery enrolled from real faces, and its own FaceEngine
    the driver      - the caller's loop (asyncio.run): POSTs signed events and button presses to the bot,
                      as Slack does, and times each one to its HTTP answer
Everything is timed with time.monotonic(), the clock SlackDouble stamps its recorded calls with (Call.at),
so "the result post arrived at the double" and "the attestation was POSTed" compare directly.

Faces come from $BOT_TEST_FACES (default ../shared/faces next to the repository).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import math
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from bot.config import FacesSettings, ImageSettings, Settings, SlackSettings
from bot.faces.engine import FaceEngine
from bot.request.transitions import ACTION_ATTEST
from tests.conftest import link_subjects
from tests.slack.double import TOKEN, Call, SlackDouble
from tests.slack.signing import (
    SIGNING_SECRET,
    Reply,
    block_actions_payload,
    event_body,
    interaction_body,
    post,
)

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
PHOTO = "people/obama/obama-1080p.jpg"  # the 1080p single-face shot the targets name
# The same channels, people, gallery and justification as the end-to-end tests.
from tests.slack.conftest import CASE, DISPATCH, ENROLLED, GENERAL, JUSTIFICATION, OFFICER, OFFICER2


def faces_root() -> Path:
    """$BOT_TEST_FACES, else ../shared/faces next to the repository; exits with a clear message when missing."""
    root = Path(os.environ.get("BOT_TEST_FACES") or ROOT.parent / "shared" / "faces")
    if not (root / PHOTO).is_file():
        raise SystemExit(
            f"no {PHOTO} under {root}: set BOT_TEST_FACES to the shared faces folder (e.g. ../shared/faces)"
        )
    return root


def upload_text(call_number: str) -> str:
    """An upload message that pre-fills the call number, the purpose and the justification
    (bot.policy.read_upload_message), so the dialog goes straight to the attestation."""
    return f"Call {call_number} purpose: investigation justification: {JUSTIFICATION}"


# ------------------------------------------------------------------------------------------------ numbers


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (q in [0, 1]): p99 of 300 samples is the 297th smallest, an observed value."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else math.nan


def machine_line() -> str:
    """CPU count and load average, for the head of a report (2 shared cores: quote medians and ratios)."""
    return f"cpus={os.cpu_count()}, load average {os.getloadavg()[0]:.1f}"


# ------------------------------------------------------------------------------------------ loops on threads


class LoopThread:
    """An asyncio event loop running forever on its own (daemon) thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule `coro` on this loop; a thread-safe future of its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def wait(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on this loop and await its result from another loop."""
        return await asyncio.wrap_future(self.submit(coro))

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a plain function on this loop's thread (the double's state is only touched there)."""

        async def run() -> T:
            return fn(*args, **kwargs)

        return await self.wait(run())

    def stop(self) -> None:
        """Stop the loop and join the thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


# ------------------------------------------------------------------------------------ timing the bot's work


class Spans:
    """Start/end times (monotonic) of named steps of the bot's pipeline, recorded by wrappers installed
    around bot functions for the benchmark only (the bot's code is not changed)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, float, float]] = []
        self._lock = threading.Lock()

    def add(self, name: str, start: float, end: float) -> None:
        """Record one span (thread-safe: some steps run in worker threads)."""
        with self._lock:
            self.items.append((name, start, end))

    def between(self, start: float, end: float) -> dict[str, tuple[float, float]]:
        """The first span of each name that started in [start, end]."""
        out: dict[str, tuple[float, float]] = {}
        with self._lock:
            for name, s, e in self.items:
                if start <= s <= end and name not in out:
                    out[name] = (s, e)
        return out

    def wrap_async(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """An async function that records `name` around `fn`."""

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.monotonic()
            try:
                return await fn(*args, **kwargs)
            finally:
                self.add(name, start, time.monotonic())

        return wrapper

    def wrap_sync(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """A plain function that records `name` around `fn`."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.monotonic()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, start, time.monotonic())

        return wrapper


def instrument(engine: FaceEngine) -> tuple[Spans, Callable[[], None]]:
    """Time the steps between an attestation and the result post; returns the spans and an undo function.

    The bot looks these up by name when it calls them (flow's module globals, `service.search_face`, the
    engine instance's method), so wrapping the names is enough.
    """
    from bot import service
    from bot.slack.flow import searching as flow

    spans = Spans()
    modules = [(flow, "_download", flow._download), (flow, "prepare_probe", flow.prepare_probe),
               (service, "search_face", service.search_face)]
    flow._download = spans.wrap_async("download", flow._download)
    flow.prepare_probe = spans.wrap_sync("prepare", flow.prepare_probe)
    service.search_face = spans.wrap_sync("search", service.search_face)
    engine.run = spans.wrap_async("analyse", engine.run)  # an instance attribute over the method

    def undo() -> None:
        for module, name, original in modules:
            setattr(module, name, original)
        del engine.run

    return spans, undo


# ----------------------------------------------------------------------------------------------- the setup


def _bot_settings(data_dir: Path, workers: int) -> Settings:
    """A case- prefix, one requester, the dispatch channel; file downloads allowed from the double's host."""
    slack = SlackSettings(
        case_channel_prefix="case-",
        dispatch_channel=DISPATCH,
        requesters=(OFFICER,),
        file_hosts=("127.0.0.1",),
    )
    return Settings(data_dir=data_dir, slack=slack, faces=FacesSettings(workers=workers))


def enroll_gallery(faces: Path, engine: FaceEngine, root: Path, store_env: Mapping[str, str] | None = None) -> Path:
    """Enroll ENROLLED into root/data/gallery (through symlinks: images are never copied); returns the data dir.
    With `store_env` (BOT_DATABASE_URL, BOT_AUDIT_KEY) the gallery is enrolled beside it and copied into the
    database as `store copy` moves one, and the data dir keeps only the replica's own files."""
    from bot.faces.enroll import enroll
    from bot.faces.gallery import Gallery

    source = link_subjects(faces, ENROLLED, root / "people")
    data = root / ("enrolled" if store_env else "data")
    gallery = Gallery(data)
    try:
        report = enroll(gallery, engine, source, audit=None, progress=False)
    finally:
        gallery.close()
    if report.rejected:
        raise SystemExit(f"gallery enrollment rejected images: {report.rejected}")
    shutil.rmtree(source)
    if not store_env:
        return data
    from bot.store.backend import Backend
    from bot.store.pg.copy import copy_gallery

    data = root / "data"
    backend = Backend.of(_bot_settings(data, 1), store_env)
    try:
        with Gallery(root / "enrolled") as enrolled:
            target = backend.gallery()
            try:
                copy_gallery(enrolled, target)
            finally:
                target.close()
    finally:
        backend.close()
    return data


def workspace(double: SlackDouble) -> None:
    """The case, general and dispatch channels and two officers, as the end-to-end tests have them."""
    double.add_channel(CASE, "case-26-012345")
    double.add_channel(GENERAL, "general")
    double.add_channel(DISPATCH, "dispatch", is_private=True)
    double.add_user(OFFICER, "officer.one", display_name="Ofc. One")
    double.add_user(OFFICER2, "officer.two", display_name="Ofc. Two")


@dataclass
class Sent:
    """One signed POST to the bot: when it left (monotonic), how long to the HTTP answer, the status."""

    kind: str
    at: float
    ms: float
    status: int


@dataclass
class Bench:
    """A running double + bot, driven from the caller's loop. Build with `await Bench.open(...)`."""

    faces: Path
    tmp: tempfile.TemporaryDirectory
    engine: FaceEngine
    slack_loop: LoopThread
    bot_loop: LoopThread
    double: SlackDouble
    rt: Any
    runner: web.AppRunner
    base: str
    http: aiohttp.ClientSession
    _ids: Any = field(default_factory=lambda: iter(range(1, 10**9)))

    @classmethod
    async def open(cls, *, workers: int = 2, quiet: bool = True, store_env: Mapping[str, str] | None = None) -> Bench:
        """Enroll the gallery, start the face workers, the double and the bot server. `store_env`
        (BOT_DATABASE_URL of a migrated database as the app's role, BOT_AUDIT_KEY): the server keeps its records,
        the gallery among them, in that database; without it, in the data dir's files."""
        from bot.slack.server import create_server

        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        if quiet:  # the bot warns that the audit key comes from a file: expected in a temp data dir
            logging.getLogger("bot.slack.server").setLevel(logging.ERROR)
        faces = faces_root()
        tmp = tempfile.TemporaryDirectory(prefix="slack-bench-")
        engine = FaceEngine(ImageSettings(), workers=workers)
        engine.start()  # workers up and models loaded before anything is timed
        data_dir = enroll_gallery(faces, engine, Path(tmp.name), store_env)
        settings = _bot_settings(data_dir, workers)

        slack_loop = LoopThread("slack-double")

        async def start_double() -> SlackDouble:
            double = SlackDouble()  # built on its own loop: its asyncio.Event belongs there
            await double.start()
            workspace(double)
            return double

        double = await slack_loop.wait(start_double())
        bot_loop = LoopThread("bot")
        env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": double.base_url,
               **(store_env or {})}

        async def start_bot() -> tuple[Any, web.AppRunner, str]:
            app, rt = create_server(settings, env, engine=engine, shutdown_grace=5.0)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            return rt, runner, f"http://127.0.0.1:{runner.addresses[0][1]}"

        rt, runner, base = await bot_loop.wait(start_bot())
        http = aiohttp.ClientSession()
        bench = cls(faces, tmp, engine, slack_loop, bot_loop, double, rt, runner, base, http)
        await bench.bot_idle()  # the start-up backfill of the dispatch channel
        return bench

    async def close(self) -> None:
        """Stop the bot, the double and the face workers; remove the temp data dir."""
        await self.http.close()
        await self.bot_loop.wait(self.runner.cleanup())
        self.bot_loop.stop()
        await self.slack_loop.wait(self.double.close())
        self.slack_loop.stop()
        self.engine.close()
        self.tmp.cleanup()

    @property
    def events_url(self) -> str:
        return f"{self.base}/slack/events"

    def photo(self, relative: str = PHOTO) -> tuple[str, bytes]:
        """(file name, bytes) of a shared test face."""
        path = self.faces / relative
        return path.name, path.read_bytes()

    # --- acting as Slack -------------------------------------------------------------------------------------

    async def _post(self, kind: str, body: bytes) -> tuple[Sent, Reply]:
        start = time.monotonic()
        reply = await post(self.http, self.events_url, body)
        return Sent(kind, start, (time.monotonic() - start) * 1000, reply.status), reply

    async def send(self, event: dict[str, Any], kind: str = "event") -> Sent:
        """POST a signed event_callback for `event`; timed from the POST to the HTTP answer."""
        sent, _ = await self._post(kind, event_body(event))
        return sent

    async def post_call(self, call_number: str) -> None:
        """The CAD feed posts the call in the dispatch channel (a call number dispatch never posted is
        questioned before the attestation, which is not what the benchmarks time)."""
        event = await self.slack_loop.call(lambda: self.double.add_message(
            DISPATCH, f"CAD {call_number} incident", user="UCAD", bot_id="BCAD"))
        await self.send(event, kind="dispatch")

    async def new_upload(self, text: str, photo: tuple[str, bytes] | None = None) -> dict[str, Any]:
        """Register the photo as a new file shared by the requester in the case channel; the message event. The
        call numbers the text names are posted by the CAD feed first."""
        from bot import policy

        for call in policy.find_call_numbers(text):
            await self.post_call(call)
        name, data = photo or self.photo()
        file_id = f"F{next(self._ids):06d}"

        def make() -> dict[str, Any]:
            file = self.double.add_file(file_id, name, "image/jpeg", data, OFFICER)
            return self.double.add_message(CASE, text, user=OFFICER, files=[file])

        return await self.slack_loop.call(make)

    async def new_message(self, channel: str, text: str, *, user: str, thread_ts: str | None = None) -> dict[str, Any]:
        """A person's message stored in the double; the event Slack would send for it."""
        return await self.slack_loop.call(self.double.add_message, channel, text, user=user, thread_ts=thread_ts)

    async def press(self, message: dict[str, Any], block_id: str, action_id: str, value: str, *, user: str,
                    kind: str = "button") -> Sent:
        """Press a button on a bot message (as the double stores it), as `user`."""
        body = block_actions_payload(action_id=action_id, value=value, user_id=user, channel_id=message["channel"],
                                     message=message, block_id=block_id)
        sent, _ = await self._post(kind, interaction_body(body))
        return sent

    # --- reading what the bot did ----------------------------------------------------------------------------

    async def wait_kind(self, kind: str, thread_ts: str, *, count: int = 1, timeout: float = 120.0,
                        **fields: Any) -> Call:
        """Wait for the bot's `count`-th successful chat.postMessage in `thread_ts` with metadata kind `kind` (for
        "card", a post or an update of the request card in that thread)."""
        match = bot_post(kind, thread_ts, **fields)
        return await self.slack_loop.wait(self.double.wait_for(match, count=count, ok=True, timeout=timeout))

    async def results(self, thread_ts: set[str]) -> dict[str, Call]:
        """thread ts -> the successful result post in that thread, for those posted so far."""

        def find() -> dict[str, Call]:
            out = {}
            for call in self.double.call_log("chat.postMessage"):
                ts = call.params.get("thread_ts")
                if ts in thread_ts and ts not in out and call.ok and payload(call).get("kind") == "result":
                    out[ts] = call
            return out

        return await self.slack_loop.call(find)

    async def attest_button(self, thread_ts: str) -> tuple[dict[str, Any], str, str, str]:
        """(message, block id, action id, value) of the attestation prompt's I attest button in a thread."""

        def find() -> tuple[dict[str, Any], str, str, str]:
            for message in reversed(self.double.messages(CASE, thread_ts=thread_ts)):
                meta = (message.get("metadata") or {}).get("event_payload") or {}
                if meta.get("kind") != "card" or meta.get("step") != "attestation":
                    continue
                for block in message.get("blocks") or []:
                    for el in block.get("elements") or []:
                        if el.get("type") == "button" and str(el.get("action_id", "")).startswith(ACTION_ATTEST):
                            return message, block.get("block_id") or "b", el["action_id"], el.get("value", "")
            raise AssertionError(f"no attestation button in thread {thread_ts}")

        return await self.slack_loop.call(find)

    async def clear_calls(self) -> None:
        """Forget the double's recorded calls (keeps later scans short)."""
        await self.slack_loop.call(self.double.clear_calls)

    async def bot_idle(self) -> None:
        """Wait until the bot has no request work running."""
        await self.bot_loop.wait(self.rt.idle())

    # --- the bot's event loop ----------------------------------------------------------------------------------

    def start_lag_monitor(self, interval: float = 0.005) -> list[tuple[float, float]]:
        """Sample the bot loop's lag: how late a `sleep(interval)` wakes, in ms, with the time it woke.
        Returns the (growing) list; a blocking call on the loop shows up as a large lag."""
        samples: list[tuple[float, float]] = []

        async def monitor() -> None:
            while True:
                start = time.monotonic()
                await asyncio.sleep(interval)
                now = time.monotonic()
                samples.append((now, (now - start - interval) * 1000))

        self._lag_task = self.bot_loop.submit(monitor())
        return samples

    def stop_lag_monitor(self) -> None:
        """Stop the lag monitor started by start_lag_monitor."""
        task = getattr(self, "_lag_task", None)
        if task is not None:
            task.cancel()

    def watch_slow_callbacks(self, threshold: float = 0.02) -> list[str]:
        """asyncio debug mode on the bot loop: every callback or task step that holds the loop longer than
        `threshold` seconds is logged by asyncio; returns the list those messages are collected into.
        Debug mode slows the loop itself: use it to find a blocker, not in a timed run."""
        found: list[str] = []

        class Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                message = record.getMessage()
                if message.startswith("Executing"):
                    found.append(message)

        logging.getLogger("asyncio").addHandler(Collect(level=logging.WARNING))
        logging.getLogger("asyncio").propagate = False
        self.bot_loop.loop.call_soon_threadsafe(self.bot_loop.loop.set_debug, True)
        self.bot_loop.loop.slow_callback_duration = threshold
        return found


def payload(call: Call) -> dict[str, Any]:
    """The metadata payload a bot post carried ({} when none)."""
    return ((call.params.get("metadata") or {}).get("event_payload")) or {}


def bot_post(kind: str, thread_ts: str, **fields: Any) -> Callable[[Call], bool]:
    """A test of the double's recorded calls: a chat.postMessage in `thread_ts` whose metadata kind is `kind` (for
    "card", a post or an update of the request card in that thread) and whose payload has `fields`."""
    methods = ("chat.postMessage", "chat.update") if kind == "card" else ("chat.postMessage",)

    def match(call: Call) -> bool:
        if call.method not in methods:
            return False
        in_thread = call.params.get("thread_ts") == thread_ts or (
            call.method == "chat.update" and (call.response or {}).get("message", {}).get("thread_ts") == thread_ts)
        if not in_thread:
            return False
        p = payload(call)
        return p.get("kind") == kind and all(p.get(k) == v for k, v in fields.items())

    return match


__all__ = [
    "CASE",
    "DISPATCH",
    "GENERAL",
    "JUSTIFICATION",
    "OFFICER",
    "OFFICER2",
    "PHOTO",
    "Bench",
    "Sent",
    "Spans",
    "bot_post",
    "enroll_gallery",
    "faces_root",
    "instrument",
    "machine_line",
    "median",
    "payload",
    "quantile",
    "upload_text",
    "workspace",
]
