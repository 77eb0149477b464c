"""End-to-end fixtures: the Slack Web API double, the bot's own server on an ephemeral port wired to it through
SLACK_API_URL, signed requests POSTed to it over real HTTP, and a gallery enrolled from real faces once per
session (BOT_TEST_FACES).

    async def test_x(harness):
        bot = await harness.start()                      # create_server on 127.0.0.1:0, tmp BOT_DATA_DIR
        upload = await harness.upload(harness.face("people/obama/obama3.jpg"))   # the bot offers a search
        await harness.wait_card("offered")
        await harness.answer_all(upload)                 # call number (starts it), purpose, justification, attest

The dispatch channel holds a CAD message for CALL when a server starts (pass `cad_calls=()` for none), as in a
department whose CAD feed posts its calls: a call number dispatch never posted is questioned.
"""
from __future__ import annotations

import asyncio
import itertools
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.config import FacesSettings, ImageSettings, ServerSettings, Settings, SlackSettings
from bot.faces.engine import FaceEngine
from bot.slack.runtime import Runtime
from bot.slack.server import LOCAL_APP, create_server, make_runner
from bot.store.backend import Backend

from ..conftest import link_subjects
from .double import TOKEN, Call, SlackDouble
from .signing import (
    SIGNING_SECRET,
    Reply,
    block_actions_payload,
    event_body,
    interaction_body,
    message_shortcut_payload,
    post,
    view_submission_payload,
)

PG_AUDIT_KEY = "the-audit-key-every-replica-signs-with-0123"  # BOT_AUDIT_KEY of the servers on PostgreSQL
CASE = "CCASE1"  # case-26-012345: a case channel by its name prefix
CASE_LISTED = "CLISTED"  # a case channel by its id in case_channels
GENERAL = "CGENERAL"  # not a case channel
SHARED = "CSHARED"  # case-shared: a case channel shared with another organisation
DISPATCH = "CDISPATCH"  # the dispatch channel (private)
OFFICER = "UOFFICER1"  # an authorised requester
OFFICER2 = "UOFFICER2"  # another member, not authorised
GUEST = "UGUEST1"  # a guest listed among the requesters (must still be refused)
GROUP = "SREQUESTERS"  # a requester user group
GROUP_MEMBER = "UGROUPED1"
ENROLLED = {  # subject -> images enrolled; the probes used in the tests are other photos
    "obama": ["obama.jpg", "obama2.jpg"],
    "biden": ["biden.jpg"],
    "kit_harington": ["john1.jpeg"],
    "rose_leslie": ["img1.jpg"],
}
CALL = "26-012345"  # the call the tests search under (posted by the CAD feed unless a test says otherwise)
CAD_BOT, CAD_USER = "BCAD", "UCAD"
JUSTIFICATION = (
    "Armed robbery of the Main Street pharmacy at 14:10 today; the store camera recorded this man taking "
    "cash from the register, report 26-4411."
)


# --------------------------------------------------------------------------------------- session fixtures


@pytest.fixture(scope="session")
def face_engine() -> FaceEngine:
    """One face worker for the whole session, shared by every bot server (spawned on first use)."""
    engine = FaceEngine(ImageSettings(), workers=1)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def enrolled_gallery(faces_dir: Path, face_engine: FaceEngine, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gallery dir (data_dir/gallery) enrolled once from real faces: obama, biden, kit_harington, rose_leslie."""
    from bot.faces.enroll import enroll
    from bot.faces.gallery import Gallery

    root = tmp_path_factory.mktemp("gallery")
    source = link_subjects(faces_dir, ENROLLED, root / "people")
    data = root / "data"
    gallery = Gallery(data)
    report = enroll(gallery, face_engine, source, audit=None, progress=False)
    gallery.close()
    assert len(report.rejected) == 0 and gallery.subject_count == len(ENROLLED), report
    return data / "gallery"


# ----------------------------------------------------------------------------------------------- helpers


class Clock:
    """A clock the test moves forward (dialog timeouts are minutes long)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **kwargs: float) -> None:
        self.offset += timedelta(**kwargs)


def bot_settings(data_dir: Path, **slack: Any) -> Settings:
    """Settings for a test bot: case- prefix, one requester, the dispatch channel, a 5-minute timeout."""
    values: dict[str, Any] = {
        "case_channel_prefix": "case-",
        "case_channels": (CASE_LISTED,),
        "dispatch_channel": DISPATCH,
        "requesters": (OFFICER, GUEST),
        "requester_groups": (GROUP,),
        "file_hosts": ("127.0.0.1",),
        "dialog_timeout_minutes": 5,
    }
    values.update(slack)
    # A 1 MB spool: hundreds of test servers need not reserve 16 MB each.
    return Settings(data_dir=data_dir, slack=SlackSettings(**values), faces=FacesSettings(workers=1),
                    server=ServerSettings(spool_mb=1))


def payload(call: Call) -> dict[str, Any]:
    """The metadata payload a bot post carried ({} when none)."""
    return ((call.params.get("metadata") or {}).get("event_payload")) or {}


def block_texts(message: dict[str, Any]) -> list[str]:
    """The texts of a message's section and context blocks, in order."""
    out = []
    for block in message.get("blocks") or []:
        if block.get("type") == "section" and block.get("text"):
            out.append(block["text"]["text"])
        elif block.get("type") == "context":
            out += [e.get("text", "") for e in block.get("elements", [])]
    return out


@dataclass
class Bot:
    """One running bot server."""

    rt: Runtime
    runner: web.AppRunner
    base: str
    local_runner: web.AppRunner | None = None
    local_base: str = ""  # the local port: /healthz's details and /metrics
    stopped: bool = False

    @property
    def events_url(self) -> str:
        return f"{self.base}/slack/events"

    async def stop(self) -> None:
        """Shut the server down (background jobs stop, stores close)."""
        if not self.stopped:
            self.stopped = True
            if self.local_runner is not None:
                await self.local_runner.cleanup()
            await self.runner.cleanup()


@dataclass
class Harness:
    """Drives the bot as Slack and a person would: uploads, replies, button presses, over real HTTP."""

    slack: SlackDouble
    http: aiohttp.ClientSession
    data_dir: Path
    faces_dir: Path | None
    request: pytest.FixtureRequest
    store_env: dict[str, str] = field(default_factory=dict)  # BOT_DATABASE_URL and BOT_AUDIT_KEY on PostgreSQL
    bots: list[Bot] = field(default_factory=list)
    backends: list[Backend] = field(default_factory=list)  # the test's own readers, closed afterwards
    gallery_in_database: bool = False
    target: Any = None  # the replica (tests/slack/replicas.py) that events and presses go to, when set
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def bot(self) -> Bot:
        """The server requests go to: `target` when set (a replica), else the most recently started one."""
        return self.target if self.target is not None else self.bots[-1]

    @property
    def rt(self) -> Runtime:
        return self.bot.rt

    async def start(
        self,
        *,
        settings: Settings | None = None,
        gallery: bool = True,
        clock: Callable[[], datetime] | None = None,
        tick_interval: float = 3600.0,
        status_interval: float = 0.1,
        cad_calls: tuple[str, ...] = (CALL,),
        env: dict[str, str] | None = None,
        port: int = 0,
        **slack: Any,
    ) -> Bot:
        """Start a bot server on 127.0.0.1:`port` (0: any free one) for this test's data dir (the enrolled gallery
        copied in), with `env` added to its environment. The CAD feed has posted `cad_calls` in the dispatch
        channel before (read by the backfill at start)."""
        settings = settings or bot_settings(self.data_dir, **slack)
        dispatch = settings.slack.dispatch_channel
        posted = {m.get("text") for m in self.slack.messages(dispatch, include_users=True)} if dispatch else set()
        new_calls = [c for c in cad_calls if dispatch and f"CAD {c} incident" not in posted]
        if new_calls:
            self.slack.add_history(dispatch, [{"text": f"CAD {c} incident", "user": CAD_USER, "bot_id": CAD_BOT}
                                              for c in new_calls])
        gallery_dir = settings.data_dir / "gallery"
        if gallery and self.on_postgresql and not self.gallery_in_database:
            self._enroll_in_database(self.request.getfixturevalue("enrolled_gallery"))
        elif gallery and not self.on_postgresql and not gallery_dir.exists():
            shutil.copytree(self.request.getfixturevalue("enrolled_gallery"), gallery_dir)
        env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": self.slack.base_url,
               **self.store_env, **(env or {})}
        app, rt = create_server(
            settings, env, tick_interval=tick_interval, engine=self.request.getfixturevalue("face_engine"),
            clock=clock, shutdown_grace=0.5, status_interval=status_interval,
        )
        runner = make_runner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        local_runner = web.AppRunner(app[LOCAL_APP], access_log=None)
        await local_runner.setup()
        await web.TCPSite(local_runner, "127.0.0.1", 0).start()
        bot = Bot(rt, runner, f"http://127.0.0.1:{runner.addresses[0][1]}", local_runner,
                  f"http://127.0.0.1:{local_runner.addresses[0][1]}")
        self.bots.append(bot)
        if dispatch and cad_calls:
            async with asyncio.timeout(10):  # the backfill at start reads them
                while not all(rt.calls.known(c) for c in cad_calls):
                    await asyncio.sleep(0.01)
        return bot

    # --- reading faces ----------------------------------------------------------------------------------------

    def face(self, relative: str) -> tuple[str, bytes]:
        """(file name, bytes) of a shared test face, e.g. "people/obama/obama3.jpg"."""
        if self.faces_dir is None:
            self.faces_dir = self.request.getfixturevalue("faces_dir")
        path = self.faces_dir / relative
        return path.name, path.read_bytes()

    # --- acting as Slack -----------------------------------------------------------------------------------------

    async def send(self, event: dict[str, Any], *, event_id: str | None = None, retry_num: int | None = None,
                   **kwargs: Any) -> Reply:
        """POST a signed event_callback for `event` to the bot; asserts Slack would count it as delivered."""
        reply = await post(self.http, self.bot.events_url, event_body(event, event_id, **kwargs), retry_num=retry_num)
        assert reply.status == 200, reply
        return reply

    async def upload(
        self,
        photo: tuple[str, bytes],
        *,
        text: str = "",
        user: str = OFFICER,
        channel: str = CASE,
        mimetype: str = "image/jpeg",
        event_id: str | None = None,
        html_instead: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Share a file in a channel as `user` and send the message (file_share) event; returns the event."""
        name, data = photo
        if name.endswith(".png"):
            mimetype = "image/png"
        file = self.slack.add_file(f"F{next(self._ids):06d}", name, mimetype, data, user, html_instead=html_instead)
        event = self.slack.add_message(channel, text, user=user, files=[file])
        await self.send(event, event_id=event_id, **kwargs)
        return event

    async def reply(self, upload: dict[str, Any], text: str, *, user: str = OFFICER) -> dict[str, Any]:
        """A thread reply to the upload, as `user`."""
        event = self.slack.add_message(upload["channel"], text, user=user, thread_ts=upload["ts"])
        await self.send(event)
        return event

    async def press(
        self, upload: dict[str, Any], action: str, *, value: str | None = None, user: str = OFFICER,
        message: dict[str, Any] | None = None,
    ) -> Reply:
        """Press a button (action id prefix `action`, and `value` when given) on the newest bot message in the
        upload's thread that has it (or on `message` as it was when copied: a phone showing an old card)."""
        shown = [message] if message is not None else self.slack.messages(upload["channel"], thread_ts=upload["ts"])
        for message in reversed(shown):  # noqa: PLR1704 - the message searched is the one pressed
            for block in message.get("blocks") or []:
                for el in block.get("elements") or []:
                    if el.get("type") != "button" or not str(el.get("action_id", "")).startswith(action):
                        continue
                    if value is not None and el.get("value") != value:
                        continue
                    body = block_actions_payload(
                        action_id=el["action_id"], value=el.get("value", ""), user_id=user,
                        channel_id=upload["channel"], message=message, block_id=block.get("block_id") or "b",
                    )
                    reply = await post(self.http, self.bot.events_url, interaction_body(body))
                    assert reply.status == 200, reply
                    return reply
        raise AssertionError(f"no {action} button (value {value}) in the thread of {upload['ts']}")

    # --- waiting and reading what the bot did ------------------------------------------------------------------

    async def wait_kind(self, kind: str, *, count: int = 1, timeout: float = 20.0, **fields: Any) -> Call:
        """Wait for the bot's `count`-th successful chat.postMessage whose metadata kind (and payload
        fields) match."""

        def match(call: Call) -> bool:
            if call.method != "chat.postMessage":
                return False
            p = payload(call)
            return p.get("kind") == kind and all(p.get(k) == v for k, v in fields.items())

        return await self.slack.wait_for(match, count=count, ok=True, timeout=timeout)

    async def wait_card(self, step: str | None = None, *, count: int = 1, timeout: float = 20.0,
                        **fields: Any) -> Call:
        """Wait for the `count`-th post or update of a request card (the offer included) at `step` (and
        with these payload fields)."""

        def match(call: Call) -> bool:
            if call.method not in ("chat.postMessage", "chat.update"):
                return False
            p = payload(call)
            return (p.get("kind") == "card" and (step is None or p.get("step") == step)
                    and all(p.get(k) == v for k, v in fields.items()))

        return await self.slack.wait_for(match, count=count, ok=True, timeout=timeout)

    async def wait_face_choice(self, count: int = 1) -> Call:
        """Wait for a card asking which face to search (its payload's `face_request` names the image)."""

        def match(call: Call) -> bool:
            p = payload(call) if call.method in ("chat.postMessage", "chat.update") else {}
            return p.get("kind") == "card" and bool(p.get("face_request"))

        return await self.slack.wait_for(match, count=count, ok=True, timeout=20.0)

    def card(self, upload: dict[str, Any]) -> dict[str, Any]:
        """The request card (or offer) in the upload's thread, as it stands now."""
        [card] = self.thread(upload, "card")
        return card

    async def submit_form(self, upload: dict[str, Any], *, call_number: str = CALL, purpose: str | None = "investigation",
                          justification: str = JUSTIFICATION, user: str = OFFICER) -> Reply:
        """Submit the newest form the bot opened, as `user`, with these answers; returns the bot's answer."""
        view = self.slack.views()[-1]
        values: dict[str, dict[str, Any]] = {
            "fr_form_call": {"value": {"type": "plain_text_input", "value": call_number}},
            "fr_form_purpose": {"value": {"type": "radio_buttons",
                                          "selected_option": {"value": purpose} if purpose else None}},
            "fr_form_justification": {"value": {"type": "plain_text_input", "value": justification}},
        }
        reply = await post(self.http, self.bot.events_url, interaction_body(view_submission_payload(user, view, values)))
        assert reply.status == 200, reply
        return reply

    async def shortcut(self, message: dict[str, Any], *, user: str = OFFICER, channel: str = CASE) -> Reply:
        """Invoke the "Facial recognition search" message shortcut on `message` as `user`."""
        body = message_shortcut_payload("fr_search_photo", user, channel, message)
        reply = await post(self.http, self.bot.events_url, interaction_body(body))
        assert reply.status == 200, reply
        return reply

    async def done(self, upload: dict[str, Any]) -> None:
        """Wait until the upload's dialog finished (the done reaction) and every background step has run."""
        await self.slack.wait_for(
            lambda c: c.method == "reactions.add" and c.params.get("name") == "checkered_flag"
            and c.params.get("timestamp") == upload["ts"],
            ok=True,
        )
        await self.idle()

    async def idle(self) -> None:
        """Let acked requests reach their background work, then wait for all of it to finish."""
        for _ in range(5):
            await asyncio.sleep(0)
        await self.rt.idle()

    def thread(self, upload: dict[str, Any], kind: str | None = None) -> list[dict[str, Any]]:
        """The bot's messages in the upload's thread (of one metadata kind when given), oldest first."""
        msgs = self.slack.messages(upload["channel"], thread_ts=upload["ts"])
        return [m for m in msgs if kind is None or (m.get("metadata") or {}).get("event_payload", {}).get("kind") == kind]

    def kinds(self, upload: dict[str, Any]) -> list[str]:
        """The metadata kinds of the bot's posts in the upload's thread, oldest first (a file upload's own
        message, which carries none, left out)."""
        return [m["metadata"]["event_payload"]["kind"] for m in self.thread(upload) if m.get("metadata")]

    @property
    def on_postgresql(self) -> bool:
        return bool(self.store_env)

    def _enroll_in_database(self, enrolled: Path) -> None:
        """The session's enrolled gallery into this test's database, as `store copy` moves one."""
        from bot.faces.gallery import Gallery
        from bot.store.pg.copy import copy_gallery

        with Gallery(enrolled.parent) as source:
            copy_gallery(source, self.backend().gallery())
        self.gallery_in_database = True

    def backend(self, data_dir: Path | None = None) -> Backend:
        """The store the servers use (the data dir's files, or the test's database), for reading what they wrote;
        one per data dir (on PostgreSQL: one pool for the test's reads)."""
        data_dir = data_dir or self.data_dir
        for made in self.backends:
            if made.settings.data_dir == data_dir:
                return made
        self.backends.append(Backend.of(bot_settings(data_dir), self.store_env))
        return self.backends[-1]

    def audit_log(self, clock: Callable[[], datetime] | None = None) -> Any:
        """The servers' audit log (the data dir's file, or the database's table); `clock` stamps what the test
        appends itself (seeded entries)."""
        return self.backend().audit_log(clock=clock)

    def cached_probes(self) -> list[str]:
        """Request ids whose probe analysis is kept (data_dir/cache/probes/*.npz, or the database's rows)."""
        if not self.on_postgresql:
            return sorted(p.stem for p in (self.data_dir / "cache" / "probes").glob("*.npz"))
        with self.backend().connect() as conn:
            return [r[0] for r in conn.execute("SELECT request_id FROM probe_cache ORDER BY request_id")]

    def cli_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The environment a command-line user of this department has: its data dir, and on PostgreSQL the
        database and the audit key the servers use."""
        monkeypatch.setenv("BOT_DATA_DIR", str(self.data_dir))
        for name in ("BOT_DATABASE_URL", "BOT_AUDIT_KEY"):
            if name in self.store_env:
                monkeypatch.setenv(name, self.store_env[name])
            else:
                monkeypatch.delenv(name, raising=False)

    def audit(self, **filters: Any) -> list[dict[str, Any]]:
        """Search audit entries of this data dir whose fields equal `filters`."""
        log = self.audit_log()
        return [e for e in log.entries() if e.get("kind") == "search" and all(e.get(k) == v for k, v in filters.items())]

    def verify_audit(self) -> bool:
        return self.audit_log().verify().ok

    async def answer_all(self, upload: dict[str, Any], *, purpose: str = "1") -> None:
        """Answer every question by replying: the call number (which starts an offered request), purpose,
        justification, attestation."""
        await self.wait_card()
        await self.reply(upload, CALL)
        await self.wait_card("purpose")
        await self.reply(upload, purpose)
        await self.wait_card("justification")
        await self.reply(upload, JUSTIFICATION)
        await self.wait_card("attestation")
        await self.reply(upload, "I attest")

    async def healthz(self) -> dict[str, Any]:
        """/healthz with its details, from the local port."""
        async with self.http.get(f"{self.bot.local_base}/healthz") as resp:
            assert resp.status == 200
            return await resp.json()


@pytest.fixture
async def slack() -> AsyncIterator[SlackDouble]:
    """The Slack double with the test workspace: channels, people, a requester group."""
    async with SlackDouble() as double:
        double.add_channel(CASE, "case-26-012345")
        double.add_channel(CASE_LISTED, "robbery-task-force", is_private=True)
        double.add_channel(GENERAL, "general")
        double.add_channel(SHARED, "case-joint-op", is_ext_shared=True)
        double.add_channel(DISPATCH, "dispatch", is_private=True)
        double.add_user(OFFICER, "officer.one", display_name="Ofc. One")
        double.add_user(OFFICER2, "officer.two", display_name="Ofc. Two")
        double.add_user(GUEST, "guest.one", restricted=True)
        double.add_user(GROUP_MEMBER, "officer.grouped", display_name="Ofc. Grouped")
        double.add_usergroup(GROUP, [GROUP_MEMBER])
        yield double


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every end-to-end test (tests/slack/test_e2e_*.py) runs on the data dir's files and again on PostgreSQL
    (CONTRACTS ### 13), except those about the files themselves (marked files_only)."""
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if "harness" in metafunc.fixturenames and module.startswith("test_e2e_"):
        only_files = metafunc.definition.get_closest_marker("files_only") is not None
        metafunc.parametrize("store_kind", ["files"] if only_files else ["files", "postgresql"])


@pytest.fixture
def store_kind() -> str:
    """Where the harness's servers keep their records: "files" (the default) or "postgresql"."""
    return "files"


@pytest.fixture
async def harness(slack: SlackDouble, tmp_path: Path, request: pytest.FixtureRequest,
                  store_kind: str) -> AsyncIterator[Harness]:
    """A harness with no server yet (call `await harness.start()`); every server is stopped afterwards. On
    PostgreSQL its servers share one migrated database (as the app's role) and sign with one BOT_AUDIT_KEY."""
    data_dir = tmp_path / "data"
    store_env: dict[str, str] = {}
    if store_kind == "postgresql":
        db = request.getfixturevalue("pg_migrated")
        store_env = {"BOT_DATABASE_URL": db.app_url, "BOT_AUDIT_KEY": PG_AUDIT_KEY}
    async with aiohttp.ClientSession() as http:
        h = Harness(slack, http, data_dir, None, request, store_env=store_env)
        try:
            yield h
        finally:
            for bot in reversed(h.bots):
                await bot.stop()
            for backend in h.backends:
                backend.close()


__all__ = ["CALL", "Clock", "Harness", "block_texts", "bot_settings", "payload"]
