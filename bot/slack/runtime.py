"""One object holding what the Slack adapter needs at run time.

Settings, the core (audit, gallery, face engine), the dialog store, the call log, the Web API client, a
download session, small caches of Slack lookups, per-dialog locks and the background task set. Every
file or tinydb operation goes through `io()` (a thread), so the event loop stays free to ack Slack fast.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.faces.engine import FaceEngine
from bot.metrics import Metrics
from bot.service import Core
from bot.slack.calls import SLACK_ERRORS, CallLog, error_text, is_transient
from bot.slack.client import LookupFailed, allowed_token_hosts, make_web_client
from bot.store.backend import is_database_outage
from bot.store.dialogs import DialogStore
from bot.store.probes import ProbeCache
from bot.store.records import ApprovalStore, ExaminationStore
from bot.store.replays import ReplayClaims
from bot.store.spool import Spool

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long Slack lookups are trusted. Short: a guest flag, a group membership or a channel's sharing can change.
CHANNEL_TTL_S = 600.0
USER_TTL_S = 600.0
GROUP_TTL_S = 300.0
# A fresh "no" to an examiner's or a supervisor's press is remembered this long: further presses by that person
# are refused without asking Slack again (a flood of presses costs one look-up a minute, not one each).
ROLE_NO_TTL_S = 60.0
# Threads for file and tinydb work (the ack path) and, apart, for searches and image work, so a burst of
# searches never queues the quick store reads an ack waits on.
IO_THREADS = 4
ACK_THREADS = 2
# What the middleware answers for a thread it could not look up (the database is away): resolved again later.
THREAD_UNRESOLVED = "?"
THREAD_LOOKUP_S = 2.0  # the longest the ack waits for the database to say which request a thread is
# A lease on work in flight lasts 30 s (bot.store.leases.TTL_S); renewed every 10 s, two beats may fail first.
LEASE_RENEW_S = 10.0
WORK_THREADS = 4


def utc_now() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


@dataclass
class _Cached:
    value: Any
    expires: float


class TTLCache:
    """A tiny time-limited cache for Slack lookups (channel info, user info, user-group members)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._items: dict[str, _Cached] = {}

    def get(self, key: str) -> Any | None:
        """The cached value, or None when absent or expired."""
        item = self._items.get(key)
        if item is None or item.expires < time.monotonic():
            return None
        return item.value

    def put(self, key: str, value: Any) -> None:
        """Keep `value` for the cache's TTL."""
        self._items[key] = _Cached(value, time.monotonic() + self.ttl)


def thread_of(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(channel, thread_ts) of a request body: a threaded message event or a button in a thread."""
    event = body.get("event")
    if isinstance(event, dict):
        if event.get("type") != "message":
            return None, None
        return event.get("channel"), event.get("thread_ts")
    container = body.get("container")
    if isinstance(container, dict) and container.get("type") == "message":
        message = body.get("message") or {}
        thread_ts = message.get("thread_ts") or container.get("thread_ts")
        return container.get("channel_id") or (body.get("channel") or {}).get("id"), thread_ts
    return None, None



@dataclass
class Runtime:
    """Everything the Slack adapter shares between requests. Build it with `Runtime.create`."""

    settings: Settings
    env: Mapping[str, str] = field(repr=False)  # holds the secrets: never in a printout
    core: Core
    store: DialogStore
    calls: CallLog
    client: AsyncWebClient
    token: str = field(repr=False)
    api_url: str | None
    signing_secret: str | None = field(repr=False)
    probes: ProbeCache
    exams: ExaminationStore
    approvals: ApprovalStore  # CLI requests waiting for a supervisor
    spool: Spool  # inputs waiting for a full disk to have room, kept across a restart
    replays: ReplayClaims  # signed requests already handled (a replay is acked, not applied), across a restart
    clock: Callable[[], datetime] = utc_now
    status_interval: float = 1.0  # in-place status updates at most this often (CONTRACTS: once a second)
    # A dialog finding faces or searching with no change this long and nothing running is restarted by the
    # tick's watchdog (a search takes seconds; a download at most a minute).
    stuck_after: timedelta = timedelta(minutes=5)
    owns_engine: bool = True
    bot_user_id: str | None = None
    bot_id: str | None = None
    api_session: aiohttp.ClientSession | None = None
    download_session: aiohttp.ClientSession | None = None
    channels: TTLCache = field(default_factory=lambda: TTLCache(CHANNEL_TTL_S))
    users: TTLCache = field(default_factory=lambda: TTLCache(USER_TTL_S))
    groups: TTLCache = field(default_factory=lambda: TTLCache(GROUP_TTL_S))
    role_refusals: TTLCache = field(default_factory=lambda: TTLCache(ROLE_NO_TTL_S))  # "role:user" Slack said no to
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    tasks: set[asyncio.Task] = field(default_factory=set)  # request work: awaited a little on shutdown
    jobs: set[asyncio.Task] = field(default_factory=set)  # periodic jobs: cancelled on shutdown
    # (channel, thread_ts) -> dialog_id: "which request is this thread?" answered from memory before the ack
    # (a dialog never changes thread). Filled from the store on create and as dialogs start, and on a shared
    # database from it when another replica started the thread; a dialog purged meanwhile is simply not found.
    threads: dict[tuple[str, str], str] = field(default_factory=dict)
    # In-process state that needs no persistence (a restart posts a fresh status message, etc.).
    state: dict[str, Any] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)  # this server's Prometheus metrics (GET /metrics)
    replica: str = ""  # this server's name among replicas ($BOT_REPLICA_ID, [server] replica_id, host:port)
    # Leases on work in flight, on a shared database only (bot.store.leases): a search or an analysis runs where
    # its lease is held; the leader resumes work whose lease expired. None on the files (one process knows).
    leases: Any = None
    leadership: Any = None  # who runs the periodic work (bot.store.backend.leadership); set by the server
    # Set when the database answers again after an outage: inputs waiting in the spool are retried at once.
    database_back: asyncio.Event = field(default_factory=asyncio.Event)
    # This process's name as a lease holder: unique even when two replicas share a replica id.
    holder: str = field(default_factory=lambda: f"p{os.getpid()}-{uuid.uuid4().hex[:8]}")
    _io_pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(IO_THREADS, "frbot-io"))
    _work_pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(WORK_THREADS, "frbot-work"))
    # The reads an ack waits for on a shared database (replay check, which request a thread is): threads of their
    # own, so they never queue behind the searches' work in the I/O threads.
    _ack_pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(ACK_THREADS, "frbot-ack"))

    @classmethod
    def create(
        cls,
        settings: Settings,
        env: Mapping[str, str],
        *,
        engine: FaceEngine | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> Runtime:
        """Open the data dir's stores and build the Web client from the environment (nothing is posted yet).

        `engine`, when given, is shared and not closed with this runtime (tests share one across servers).
        """
        token = env.get("SLACK_BOT_TOKEN", "")
        api_url = env.get("SLACK_API_URL") or None
        client = make_web_client(token, api_url)
        core = Core(settings, env=env)
        if engine is not None:
            core._engine = engine  # shared: Core.engine hands it out, Runtime.close leaves it running
        data_dir = settings.data_dir
        # A database at another schema version, or a role that could rewrite the audit log: refused now.
        core.backend.check_ready()
        core.audit  # noqa: B018 - opens (and checks) the audit key now, not on the first search
        # Built now, once: made lazily by the first refusals, arriving together in several I/O threads, two
        # folders would each open a window and write an entry.
        core.refusals  # noqa: B018
        store = core.backend.dialogs()
        return cls(
            settings=settings,
            env=env,
            core=core,
            store=store,
            threads=store.threads(),
            calls=CallLog(data_dir, client, settings, index=core.backend.call_index(), outbox=core.backend.outbox(),
                          shared=core.backend.shared),
            client=client,
            token=token,
            api_url=api_url,
            signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
            probes=core.backend.probes(),
            exams=core.backend.examinations(),
            approvals=core.backend.approvals(),
            spool=Spool(data_dir / "spool" / "spool.bin", settings.server.spool_mb << 20),
            replays=core.backend.replays(),
            leases=core.backend.leases() if core.backend.shared else None,
            clock=clock or utc_now,
            owns_engine=engine is None,
        )

    # --- properties ----------------------------------------------------------------------------------------

    @property
    def engine(self) -> FaceEngine:
        """The face engine (a process pool)."""
        return self.core.engine

    @property
    def token_hosts(self) -> frozenset[str]:
        """Hosts the bot token may be sent to when downloading files."""
        return allowed_token_hosts(self.api_url, self.settings.slack.file_hosts)

    async def dialog_of_thread(self, channel: str | None, thread_ts: str | None, *,
                               strict: bool = False) -> str | None:
        """Which request is this thread? From memory; on a shared database, a thread another replica started is
        looked up once (an indexed read) and remembered. None for a thread that holds no request.

        While the database does not answer: THREAD_UNRESOLVED within a moment (the ack cannot wait), which the
        entry point resolves again with `strict` — raising, so the input is spooled and retried."""
        if not channel or not thread_ts:
            return None
        found = self.threads.get((channel, thread_ts))
        if found is None and self.core.backend.shared:
            try:
                lookup = self.io if strict else self.ack_io
                found = await asyncio.wait_for(lookup(self.store.thread_of, channel, thread_ts),
                                               None if strict else THREAD_LOOKUP_S)
            except Exception as exc:
                if strict or not (isinstance(exc, TimeoutError) or is_database_outage(exc)):
                    raise
                return THREAD_UNRESOLVED
            if found is not None:
                self.threads[(channel, thread_ts)] = found
        return found

    async def resolved(self, dialog_id: str | None, body: Mapping[str, Any]) -> str | None:
        """`dialog_id` as the middleware found it; asked again (raising while the database is away) when it could
        not say."""
        if dialog_id != THREAD_UNRESOLVED:
            return dialog_id
        return await self.dialog_of_thread(*thread_of(dict(body)), strict=True)  # the thread the middleware asked

    async def leased(self, key: str, work: Coroutine[Any, Any, T]) -> T | None:
        """Run `work` holding the lease on `key` (CONTRACTS ### 13). On a shared database the lease is taken
        first — when another replica holds it, `work` never runs and None is returned — renewed every
        LEASE_RENEW_S while it runs, and released at the end. On the files, just `work`."""
        if self.leases is None:
            return await work
        if not await self.io(self.leases.take, key, self.holder, datetime.now(UTC)):
            work.close()
            log.info("%s is in flight on another replica: left to it", key)
            return None
        renewing = asyncio.get_running_loop().create_task(self._renew(key), name=f"lease-{key}")
        try:
            return await work
        finally:
            renewing.cancel()
            try:
                await self.io(self.leases.release, key, self.holder)
            except Exception as exc:  # noqa: BLE001 - it expires by itself in 30 s
                log.warning("the lease on %s could not be released (%s): it expires by itself", key,
                            type(exc).__name__)

    async def _renew(self, key: str) -> None:
        while True:
            await asyncio.sleep(LEASE_RENEW_S)
            try:
                if not await self.io(self.leases.renew, key, self.holder, datetime.now(UTC)):
                    log.warning("the lease on %s ran out while its work ran: it may be resumed elsewhere", key)
                    return
            except Exception as exc:  # noqa: BLE001 - the database is away: try again at the next beat
                log.warning("the lease on %s could not be renewed (%s)", key, type(exc).__name__)

    async def in_flight_elsewhere(self, keys: Iterable[str]) -> bool:
        """Whether another process holds an unexpired lease on any of `keys` (always False on the files)."""
        if self.leases is None:
            return False
        now = datetime.now(UTC)
        for key in keys:
            if await self.io(self.leases.held, key, now):
                return True
        return False

    @property
    def leading(self) -> bool:
        """Whether this replica runs the periodic work: always on the files (one server per data dir)."""
        return bool(self.state.get("leader", not self.core.backend.shared))

    def now(self) -> datetime:
        """The current time (UTC); tests move it forward to reach a dialog timeout."""
        return self.clock()

    # --- lifecycle -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP sessions and learn the bot's own ids (auth.test); raises when Slack refuses the token."""
        if self.api_session is None:
            self.api_session = aiohttp.ClientSession()
            # slack_sdk (and Bolt's per-request clients) reuse this session: one connection pool to the API.
            self.client.session = self.api_session
        if self.download_session is None:
            # A separate session with no default headers: download_file adds the token per allowed host.
            self.download_session = aiohttp.ClientSession()
        auth = await self.client.auth_test()
        self.bot_user_id = auth.get("user_id")
        self.bot_id = auth.get("bot_id")
        self.calls.own_ids = {i for i in (self.bot_user_id, self.bot_id) if i}

    async def close(self, grace: float = 5.0) -> None:
        """Stop periodic jobs, give request work `grace` seconds to finish, then cancel it and close everything."""
        for job in list(self.jobs):
            job.cancel()
        await asyncio.gather(*self.jobs, return_exceptions=True)
        if self.tasks:
            _done, pending = await asyncio.wait(list(self.tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self.core._refusals is not None:  # write every folded refusal now, whatever its window
            try:
                self.core._refusals.flush(self.now(), everything=True)
            except Exception:  # the pending file keeps them for the next start
                log.exception("folded refusals could not be written at shutdown")
        for session in (self.api_session, self.download_session):
            if session is not None:
                await session.close()
        self.api_session = self.download_session = None
        self.client.session = None
        self._io_pool.shutdown(wait=True)
        self._work_pool.shutdown(wait=True)
        self._ack_pool.shutdown(wait=True)
        if self.leadership is not None:
            await asyncio.to_thread(self.leadership.close)  # another replica takes over at its next poll
        self.store.close()
        self.exams.close()
        self.approvals.close()
        self.calls.close()
        if self.core._gallery is not None:
            self.core._gallery.close()
            self.core._gallery = None
        if self.owns_engine:
            self.core.close()
        else:
            self.core._engine = None
            self.core.close()  # the shared engine is gone from it: this closes the store's pool only

    # --- threads and tasks ---------------------------------------------------------------------------------

    async def io(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run quick file work (tinydb, audit, caches) in the I/O threads."""
        return await asyncio.get_running_loop().run_in_executor(self._io_pool, partial(func, *args, **kwargs))

    async def ack_io(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a database read the ack waits for (a shared database) in the ack threads."""
        return await asyncio.get_running_loop().run_in_executor(self._ack_pool, partial(func, *args, **kwargs))

    async def work(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run heavier work (a search, image decoding and drawing) in the work threads."""
        return await asyncio.get_running_loop().run_in_executor(self._work_pool, partial(func, *args, **kwargs))

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str, job: bool = False) -> asyncio.Task:
        """Start `coro` in the background, keep a reference until it ends, and log any exception it raises."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        bucket = self.jobs if job else self.tasks
        bucket.add(task)
        task.add_done_callback(partial(self._finished, bucket))
        return task

    @staticmethod
    def _finished(bucket: set[asyncio.Task], task: asyncio.Task) -> None:
        bucket.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    def lock(self, dialog_id: str) -> asyncio.Lock:
        """The lock serialising transitions (and the messages they post) of one dialog in this process."""
        lock = self.locks.get(dialog_id)
        if lock is None:
            lock = self.locks[dialog_id] = asyncio.Lock()
        return lock

    def face_slots(self, dialog_id: str) -> asyncio.Semaphore:
        """How many of one dialog's photos may be in the face workers at once: all workers but one, so one
        request's photos (a slow or crafted one among them) never hold every worker from other officers."""
        slots: dict[str, asyncio.Semaphore] = self.state.setdefault("face_slots", {})
        slot = slots.get(dialog_id)
        if slot is None:
            slot = slots[dialog_id] = asyncio.Semaphore(max(1, self.engine.workers - 1))
        return slot

    def face_work(self) -> list[tuple[str, float]]:
        """(request id, seconds running) of every photo in the face workers now, longest first."""
        now = time.monotonic()
        running: dict[str, float] = self.state.get("face_work", {})
        return sorted(((rid, now - started) for rid, started in running.items()), key=lambda x: -x[1])

    async def idle(self) -> None:
        """Wait until no request work is running (tests and benchmarks)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    # --- cached Slack lookups ------------------------------------------------------------------------------

    async def channel_info(self, channel: str) -> dict[str, Any] | None:
        """conversations.info for a channel (cached); None when Slack cannot tell us."""
        cached = self.channels.get(channel)
        if cached is not None:
            return cached
        try:
            info = (await self.client.conversations_info(channel=channel)).get("channel") or {}
        except SLACK_ERRORS as exc:
            log.warning("conversations.info for %s failed: %s", channel, error_text(exc))
            return None
        self.channels.put(channel, info)
        return info

    async def user_info(self, user: str, *, strict: bool = False, fresh: bool = False) -> dict[str, Any] | None:
        """users.info for a user (cached); None when Slack cannot tell us. With `strict`, a failure to reach
        Slack (as opposed to Slack's answer, e.g. user_not_found) raises LookupFailed instead. With `fresh`,
        Slack is asked again whatever the cache holds (authority re-checks)."""
        cached = None if fresh else self.users.get(user)
        if cached is not None:
            return cached
        try:
            info = (await self.client.users_info(user=user)).get("user") or {}
        except SLACK_ERRORS as exc:
            log.warning("users.info for %s failed: %s", user, error_text(exc))
            if strict and is_transient(exc):
                raise LookupFailed(error_text(exc)) from None
            return None
        self.users.put(user, info)
        return info

    async def user_name(self, user: str) -> str:
        """A person's display name (else real name, else handle, else the id) for audit entries."""
        info = await self.user_info(user) or {}
        profile = info.get("profile") or {}
        return (
            profile.get("display_name") or profile.get("real_name") or info.get("real_name")
            or info.get("name") or user
        )

    async def group_members(self, group: str, *, fresh: bool = False, strict: bool = False) -> frozenset[str]:
        """Members of a user group (cached); empty when Slack cannot tell us. `fresh`: ask Slack again. With
        `strict`, a failure to reach Slack raises LookupFailed instead (an empty group would read as "no")."""
        cached = None if fresh else self.groups.get(group)
        if cached is not None:
            return cached
        try:
            users = (await self.client.usergroups_users_list(usergroup=group)).get("users") or []
        except SLACK_ERRORS as exc:
            log.warning("usergroups.users.list for %s failed: %s", group, error_text(exc))
            if strict and is_transient(exc):
                raise LookupFailed(error_text(exc)) from None
            return frozenset()
        members = frozenset(users)
        self.groups.put(group, members)
        return members

    async def is_case_channel(self, channel: str) -> bool:
        """A case channel: listed in `case_channels`, or named with `case_channel_prefix`."""
        slack = self.settings.slack
        if channel in slack.case_channels:
            return True
        if not slack.case_channel_prefix:
            return False
        info = await self.channel_info(channel)
        return bool(info) and str(info.get("name", "")).startswith(slack.case_channel_prefix)

    async def permalink(self, channel: str, ts: str) -> str | None:
        """chat.getPermalink of a message (cached for the life of the process)."""
        cache: dict[str, str] = self.state.setdefault("permalinks", {})
        key = f"{channel}:{ts}"
        if key in cache:
            return cache[key]
        try:
            link = (await self.client.chat_getPermalink(channel=channel, message_ts=ts)).get("permalink")
        except SLACK_ERRORS as exc:
            log.warning("chat.getPermalink failed: %s", error_text(exc))
            return None
        if link:
            cache[key] = link
        return link

