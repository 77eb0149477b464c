"""The dispatch channel: a call-number index, each call's thread, log entries, and an on-disk outbox.

Dispatch (usually the CAD feed, a bot) posts one top-level message per call. Every top-level message there is
indexed for call numbers (live, and from recent history on start); the earliest message that names a call
is that call's thread. When a search is logged for a call nobody posted, the bot starts the thread itself
("Call 26-012345 — facial recognition activity").

A post that still fails after the web client's own retries (rate limit, server error, dropped connection)
is kept in the outbox on disk and delivered later by `flush_outbox`, in the order it was queued. Logging
never raises to the caller: the audit log records the search either way. The same outbox carries the
request thread's essentials (the result, an image's failure, the dialog's end) that could not be posted:
`post_in_thread` queues them with their channel and thread, and the flush delivers them there.

Exactly once (CONTRACTS ### 13): each post this class makes carries a `post_id` in its metadata's
`event_payload`, from its first try. A flush leases each queued post while it delivers it (bot.store.calls'
`claim`); a post whose lease lapsed (its sender died mid-post, or another replica's did) is posted again only
if its thread does not show that post_id yet. A post another sender holds is left to it, with the later posts
to the same thread.

The index and the outbox live in data_dir/slack/ (bot.store.calls).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot import policy, wording
from bot.config import Settings
from bot.slack import blocks
from bot.slack.blocks import Message
from bot.store.calls import CallIndexStore, OutboxStore, destination, with_post_id

log = logging.getLogger(__name__)

# Tries of a queued call-log post that Slack refuses for good (e.g. not_in_channel) before it is dropped.
MAX_PERMANENT_ATTEMPTS = 10
HISTORY_PAGE = 200  # conversations.history page size (Slack allows up to 1,000; 200 is its recommendation)
# Errors that say Slack (or the way to it) is unwell rather than this one post being wrong: a flush stops
# at the first of these instead of trying every queued post against a service that is down.
_TRANSIENT = {"ratelimited", "fatal_error", "internal_error", "service_unavailable", "request_timeout"}
# What a Web API call can raise once the client's retry handlers gave up: Slack's refusal (SlackApiError),
# a request slack_sdk could not complete (SlackRequestError, e.g. the upload step of files_upload_v2), a
# dropped connection (aiohttp.ClientError) or a timeout. Every Slack call of the adapter catches this family.
SLACK_ERRORS: tuple[type[BaseException], ...] = (
    SlackClientError, aiohttp.ClientError, asyncio.TimeoutError, OSError,
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _ts_key(ts: str) -> tuple[int, int]:
    """Slack timestamps ("1700000000.000100") compared as numbers, not strings."""
    secs, _, frac = str(ts).partition(".")
    return int(secs or 0), int((frac or "0").ljust(6, "0")[:6])


def _ts_time(ts: str) -> str:
    """The UTC time a Slack ts stands for, ISO 8601."""
    try:
        moment = datetime.fromtimestamp(_ts_key(ts)[0], UTC)
    except (OverflowError, OSError, ValueError):
        return _now()
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def error_text(exc: BaseException) -> str:
    """A short error description for the outbox and the log (never a token: slack_sdk keeps it out)."""
    if isinstance(exc, SlackApiError):
        status = getattr(exc.response, "status_code", None)
        error = exc.response.get("error") if exc.response is not None else None
        return f"{error or 'slack_error'} (HTTP {status})" if status else str(error or "slack_error")
    return f"{type(exc).__name__}: {exc}"[:300]


def is_transient(exc: BaseException) -> bool:
    """Whether a failure says Slack (or the way to it) is unwell, so the same post may succeed later."""
    if isinstance(exc, SlackApiError):
        status = getattr(exc.response, "status_code", 200)
        error = exc.response.get("error") if exc.response is not None else None
        return status == 429 or status >= 500 or error in _TRANSIENT
    return True  # connection errors and timeouts


def message_text(message: Mapping[str, Any]) -> str:
    """All the text of a Slack message a call number may hide in: its text, attachment fields (CAD feeds
    often post attachments) and the text of its blocks."""
    parts: list[str] = [str(message.get("text") or "")]
    for att in message.get("attachments") or ():
        if isinstance(att, Mapping):
            parts += [str(att.get(k) or "") for k in ("pretext", "title", "text", "fallback")]
            for f in att.get("fields") or ():
                if isinstance(f, Mapping):
                    parts += [str(f.get("title") or ""), str(f.get("value") or "")]
    parts += list(_block_texts(message.get("blocks") or ()))
    return "\n".join(p for p in parts if p)


def _block_texts(items: Iterable[Any]) -> Iterable[str]:
    """Every "text" string inside blocks (sections, fields, context elements, rich text), depth first."""
    for item in items:
        if isinstance(item, Mapping):
            text = item.get("text")
            if isinstance(text, str):
                yield text
            for value in item.values():
                if isinstance(value, (list, Mapping)):
                    yield from _block_texts(value if isinstance(value, list) else [value])
        elif isinstance(item, list):
            yield from _block_texts(item)


# chat.postMessage's answer for a reply to a message that no longer exists.
DEAD_THREAD_ERRORS = frozenset({"thread_not_found"})


class CallLog:
    """Dispatch channel: index call numbers, find or start a call's thread, post log entries, outbox."""

    def __init__(self, data_dir: Path, client: AsyncWebClient, settings: Settings, *, index: Any = None,
                 outbox: Any = None, shared: bool = False) -> None:
        """Open (creating) data_dir/slack/calls.json and outbox.json, or use the database's `index` and `outbox`
        (`shared`: other replicas write them too); nothing is posted yet."""
        self.client = client
        self.channel = settings.slack.dispatch_channel.strip()
        self.pattern = settings.policy.call_number_pattern
        self.max_calls = settings.slack.max_calls_per_message
        self.index_days = settings.slack.call_index_days
        self._calls = index if index is not None else CallIndexStore(data_dir)
        self._outbox = outbox if outbox is not None else OutboxStore(data_dir)
        self.shared = shared
        # Memory and file change together under this lock: writes that finish out of order never leave an
        # older thread on disk (indexing runs in worker threads while the event loop posts).
        self._db_lock = threading.RLock()
        # The index lives in memory too (this process is its only writer): look-ups on the event loop never
        # touch the disk or wait for the lock; writes go to disk from a worker thread (`_persist_async`).
        docs = self._calls.all()
        self._threads: dict[str, str] = {d["call_number"]: d["thread_ts"] for d in docs}
        self._sources: dict[str, str] = {d["call_number"]: d.get("source", "") for d in docs}
        self._queued: int = self._outbox.count()
        # Who holds the outbox posts this log is delivering (the runtime may name it after its replica).
        self.holder = f"calls-{uuid.uuid4().hex[:12]}"
        self.own_ids: set[str] = set()  # this bot's user and bot ids, set by the runtime after auth.test
        # Who may open or take over a call's thread (`roles.is_dispatch_source`), set by the runtime; None:
        # every message may.
        self.trust: Callable[[Mapping[str, Any]], Awaitable[bool]] | None = None
        self._thread_locks: dict[str, asyncio.Lock] = {}
        self._flush_lock = asyncio.Lock()
        self._warned_no_channel = False
        self._deleted: dict[str, str] = {}  # call number -> its deleted thread's ts, until a new one starts

    def close(self) -> None:
        """Close the tinydb handles (nothing stays open between operations anyway)."""
        self._calls.close()
        self._outbox.close()

    # --- the index -------------------------------------------------------------------------------------------

    def index_message(self, text: str, ts: str, *, source: str = "dispatch") -> list[str]:
        """Index a top-level dispatch-channel message: every call number in it (word-bounded, configured
        pattern). The earliest message naming a call is its thread. Returns the call numbers seen.
        Writes to disk in this thread: from the event loop use `index`."""
        found, changed = self._remember_all(text, ts, source)
        self._persist(changed)
        return found

    async def index(self, text: str, ts: str, *, source: str = "dispatch") -> list[str]:
        """`index_message` for the event loop: memory at once, the disk write in a worker thread.

        When dispatch posts a call the bot had already opened a thread for (the search came first), the
        call's thread becomes dispatch's message, and a link there points to the earlier entries."""
        before = {c: (self._threads.get(c), self._sources.get(c)) for c in
                  policy.find_call_numbers(text or "", self.pattern)}
        found, changed = self._remember_all(text, ts, source)
        if changed:
            await asyncio.to_thread(self._persist, changed)
        for record in changed:
            old_ts, old_source = before.get(record["call_number"], (None, None))
            if old_ts and old_source == "bot" and self.channel:
                await self._link_earlier_thread(record["call_number"], old_ts, ts)
        return found

    async def _link_earlier_thread(self, call_number: str, old_ts: str, new_ts: str) -> None:
        """Post, in dispatch's thread for the call, a link to the thread the bot had started for it."""
        try:
            link = (await self.client.chat_getPermalink(channel=self.channel, message_ts=old_ts)).get("permalink")
            note = blocks.note(wording.call_thread_moved(call_number, link), kind="call_thread_moved")
            await self.client.chat_postMessage(channel=self.channel, thread_ts=new_ts, **note.kwargs())
        except SLACK_ERRORS as exc:
            log.warning("could not link the earlier thread of call %s: %s", call_number, error_text(exc))

    def _remember_all(self, text: str, ts: str, source: str) -> tuple[list[str], list[dict[str, str]]]:
        """Update the in-memory index; return the call numbers found and the records that changed.

        At most `max_calls_per_message` call numbers of one message (its first ones) are indexed."""
        found = policy.find_call_numbers(text or "", self.pattern)
        if len(found) > self.max_calls:
            log.warning("a dispatch message (ts %s) names %d call numbers; indexing the first %d", ts, len(found),
                        self.max_calls)
            found = found[: self.max_calls]
        changed = []
        for call_number in found:
            current = self._threads.get(call_number)
            if current is not None:
                # An edit never moves a call's thread: editing an old message to add a call number must not
                # redirect the call's log (and its link in results and the audit) to that message.
                if source == "edit" or current == ts:
                    continue
                # Dispatch's own message (CAD feed or dispatcher) wins over a thread the bot started; among
                # dispatch's messages, the earliest.
                current_is_bot = self._sources.get(call_number) == "bot"
                if source == "bot" and not current_is_bot:
                    continue
                takes_over = current_is_bot and source != "bot"
                if not takes_over and _ts_key(current) <= _ts_key(ts):
                    continue
            self._threads[call_number] = ts
            self._sources[call_number] = source
            changed.append({"call_number": call_number, "thread_ts": ts, "first_seen": _ts_time(ts),
                            "source": source})
        return found, changed

    def is_own(self, message: Mapping[str, Any]) -> bool:
        """Whether a message is this bot's own (its call-thread openings): those never take over a call."""
        return bool(self.own_ids) and (message.get("user") in self.own_ids or message.get("bot_id") in self.own_ids)

    async def counts(self, message: Mapping[str, Any]) -> bool:
        """Whether a dispatch-channel message may index call numbers (open or take over a call's thread, make
        a call known): the bot's own always; others as `trust` says."""
        if self.is_own(message) or self.trust is None:
            return True
        return await self.trust(message)

    def _persist(self, records: list[dict[str, str]]) -> None:
        """Write the changed records in one batch (two file writes however many numbers a message names)."""
        if not records:
            return
        with self._db_lock:
            # Memory decides (`_remember_all`); the file follows what memory holds *now*, so writes that
            # finish out of order never leave an older thread on disk.
            current = {
                r["call_number"]: {**r, "thread_ts": self._threads[r["call_number"]],
                                   "source": self._sources.get(r["call_number"], r["source"])}
                for r in records
            }
            self._calls.put(list(current.values()))

    def prune(self, now: datetime | None = None) -> int:
        """Forget calls whose thread is older than `call_index_days` (memory and file); returns how many."""
        cutoff = (now or datetime.now(UTC)).timestamp() - self.index_days * 86400
        old = [c for c, ts in self._threads.items() if _ts_key(ts)[0] < cutoff]
        if not old:
            return 0
        with self._db_lock:
            for call_number in old:
                self._threads.pop(call_number, None)
                self._sources.pop(call_number, None)
            self._calls.remove(old)
        return len(old)

    def _looked_up(self, call_number: str) -> str | None:
        """The call's thread from memory; on a shared database, one another replica indexed is read and kept.
        A worker thread's call (the database is asked on a miss)."""
        found = self._threads.get(call_number)
        if found is None and self.shared and call_number:
            record = self._calls.get(call_number)
            if record is not None:
                with self._db_lock:
                    found = self._threads.setdefault(call_number, record["thread_ts"])
                    self._sources.setdefault(call_number, record.get("source", ""))
        return found

    def reload(self) -> None:
        """Read the index and the outbox's depth again (a shared database: what other replicas indexed and
        queued; the periodic tick, in a worker thread)."""
        docs = self._calls.all()
        with self._db_lock:
            self._threads.update({d["call_number"]: d["thread_ts"] for d in docs})
            self._sources.update({d["call_number"]: d.get("source", "") for d in docs})
        self._queued = self._outbox.count()

    def known(self, call_number: str) -> bool:
        """Whether the call has been seen in the dispatch channel (or the bot started its thread)."""
        return self._looked_up(call_number) is not None

    def recent(self, hours: float, now: datetime | None = None) -> list[str]:
        """Calls dispatch posted (not threads the bot opened) in the last `hours`, newest first: the ones a
        mistyped call number is compared with."""
        cutoff = (now or datetime.now(UTC)).timestamp() - hours * 3600
        recent = [(ts, c) for c, ts in self._threads.items()
                  if self._sources.get(c) != "bot" and _ts_key(ts)[0] >= cutoff]
        return [c for _, c in sorted(recent, key=lambda tc: _ts_key(tc[0]), reverse=True)]

    def thread_ts(self, call_number: str) -> str | None:
        """The ts of the call's thread in the dispatch channel, or None."""
        return self._looked_up(call_number)

    async def backfill(self, limit: int = 1000) -> int:
        """Index recent dispatch-channel history (top-level messages, bots' included) on start.

        Reads at most `limit` messages, newest first, page by page; returns how many of them named a call.
        A Slack error stops the backfill with a warning (the live index still fills as messages arrive).
        """
        if not self.channel:
            return 0
        cursor: str | None = None
        read = indexed = 0
        while read < limit:
            try:
                resp = await self.client.conversations_history(
                    channel=self.channel, limit=min(HISTORY_PAGE, limit - read), cursor=cursor or None
                )
            except SLACK_ERRORS as exc:
                log.warning("dispatch channel backfill stopped after %d messages: %s", read, error_text(exc))
                break
            messages = resp.get("messages") or []
            for msg in messages:
                read += 1
                ts = str(msg.get("ts") or "")
                if not ts or msg.get("thread_ts") not in (None, ts):
                    continue  # a reply shown in the channel: not a call's opening message
                if not await self.counts(msg):
                    continue
                source = "bot" if self.is_own(msg) else "backfill"
                if await self.index(message_text(msg), ts, source=source):
                    indexed += 1
                if read >= limit:
                    break
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor or not messages:
                break
        return indexed

    # --- posting ---------------------------------------------------------------------------------------------

    def _lock(self, call_number: str) -> asyncio.Lock:
        # One thread start per call even when two searches for it finish at once.
        return self._thread_locks.setdefault(call_number, asyncio.Lock())

    async def _find_or_start_thread(self, call_number: str) -> str:
        """The call's thread ts, starting the thread when dispatch has none (saying so when it replaces a
        deleted one). Raises on Slack errors."""
        async with self._lock(call_number):
            thread = await asyncio.to_thread(self.thread_ts, call_number) if self.shared else self.thread_ts(
                call_number)
            if thread is not None:
                return thread
            opening = blocks.call_thread_opening(call_number, replaces_deleted=call_number in self._deleted)
            resp = await self.client.chat_postMessage(channel=self.channel, **opening.kwargs())
            thread = str(resp["ts"])
            self._deleted.pop(call_number, None)
            await self.index(opening.text, thread, source="bot")
            return self.thread_ts(call_number) or thread

    async def ensure_thread(self, call_number: str) -> str | None:
        """The call's thread ts, starting the thread now when dispatch has none (so a search's audit entry
        can record it before the search). None with no dispatch channel or when Slack refuses."""
        if not self.channel or not call_number:
            return None
        try:
            return await self._find_or_start_thread(call_number)
        except SLACK_ERRORS as exc:
            log.warning("could not start the thread of call %s: %s", call_number, error_text(exc))
            return None

    async def _post(self, call_number: str, kwargs: Mapping[str, Any]) -> str:
        """Post one entry in the call's thread; returns its ts. Raises on Slack errors.

        A thread Slack no longer has (its opening message was deleted) is forgotten and the call gets a new
        thread, opened by the bot with a note, so the entry is not lost retrying a dead thread."""
        thread = await self._find_or_start_thread(call_number)
        try:
            resp = await self.client.chat_postMessage(channel=self.channel, thread_ts=thread, **kwargs)
        except SlackApiError as exc:
            if (exc.response or {}).get("error") not in DEAD_THREAD_ERRORS:
                raise
            log.warning("the thread of call %s (ts %s) is gone from the dispatch channel: starting a new one",
                        call_number, thread)
            self.forget_thread(call_number, thread)
            thread = await self._find_or_start_thread(call_number)
            resp = await self.client.chat_postMessage(channel=self.channel, thread_ts=thread, **kwargs)
        return str(resp["ts"])

    def forget_thread(self, call_number: str, thread_ts: str) -> bool:
        """Drop a call's thread from the index (memory and file) when it is still `thread_ts` (its opening
        message was deleted); the next entry starts a new thread. Returns whether it was dropped."""
        if self._threads.get(call_number) != thread_ts:
            return False
        with self._db_lock:
            self._threads.pop(call_number, None)
            self._sources.pop(call_number, None)
            self._calls.remove([call_number])
        self._deleted[call_number] = thread_ts
        return True

    def forget_deleted_message(self, ts: str) -> list[str]:
        """Forget every call whose thread was the message `ts` (a `message_deleted` event); returns them."""
        gone = [c for c, t in self._threads.items() if t == ts]
        for call_number in gone:
            self.forget_thread(call_number, ts)
        return gone

    async def log(self, call_number: str, message: Message) -> str | None:
        """Post `message` in the call's thread (found, or started); returns the entry's ts.

        On failure after the client's retries the post is queued on disk and None is returned; nothing is
        raised. Older queued posts for the same call are tried first, so the thread keeps its order when
        Slack is back. No dispatch channel configured: None, and nothing is queued.
        """
        if not self.channel:
            if not self._warned_no_channel:
                log.warning("no [slack] dispatch_channel is set: searches are not logged in a call thread")
                self._warned_no_channel = True
            return None
        kwargs = with_post_id({"message": message.kwargs()})["message"]
        if (self._queued or self.shared) and await asyncio.to_thread(self._queued_for, call_number):
            await self.flush_outbox(call_number=call_number)
        try:
            return await self._post(call_number, kwargs)
        except SLACK_ERRORS as exc:
            error = error_text(exc)
            log.warning("call-thread post for call %s failed after retries (%s); queued", call_number, error)
            await asyncio.to_thread(self._enqueue, {"call_number": call_number, "message": kwargs, "attempts": 1,
                                                    "last_error": error, "queued_at": _now()})
            return None

    # --- the outbox ------------------------------------------------------------------------------------------

    def _enqueue(self, doc: dict[str, Any]) -> None:
        self._queued = self._outbox.add(doc)

    def _queued_for(self, call_number: str) -> bool:
        return self._outbox.has_call(call_number)

    def _queued_in(self, channel: str, thread_ts: str | None) -> bool:
        return self._outbox.has_thread(channel, thread_ts)

    async def post_in_thread(self, channel: str, thread_ts: str | None, message: Message) -> str | None:
        """Post an essential message of a request thread (a result, an image's failure, the dialog's end);
        returns its ts.

        When Slack still fails after the client's retries and the failure is transient (rate limit, 5xx,
        dropped connection), the post is queued on disk like a call-log entry and delivered by the next
        `flush_outbox`; None is returned and nothing is raised. Posts queued earlier for the same thread are
        tried first, so the thread keeps its order. A permanent refusal (e.g. the channel was archived) is
        logged, not queued: it would never succeed.
        """
        kwargs = with_post_id({"message": message.kwargs()})["message"]
        if (self._queued or self.shared) and await asyncio.to_thread(self._queued_in, channel, thread_ts):
            await self.flush_outbox(thread=(channel, thread_ts))
            if await asyncio.to_thread(self._queued_in, channel, thread_ts):
                # Still down: queue behind the earlier posts rather than overtake them.
                await self._queue_thread_post(channel, thread_ts, kwargs, "queued behind earlier posts")
                return None
        try:
            resp = await self.client.chat_postMessage(channel=channel, thread_ts=thread_ts, **kwargs)
        except SLACK_ERRORS as exc:
            error = error_text(exc)
            if not is_transient(exc):
                log.error("post in thread %s of %s refused: %s", thread_ts, channel, error)
                return None
            log.warning("post in thread %s of %s failed after retries (%s); queued", thread_ts, channel,
                        error)
            await self._queue_thread_post(channel, thread_ts, kwargs, error)
            return None
        return str(resp.get("ts") or "") or None

    async def _queue_thread_post(
        self, channel: str, thread_ts: str | None, kwargs: Mapping[str, Any], error: str
    ) -> None:
        doc = {"channel": channel, "thread_ts": thread_ts, "message": dict(kwargs), "attempts": 1,
               "last_error": error, "queued_at": _now()}
        await asyncio.to_thread(self._enqueue, doc)

    def purge_outbox(self, cutoff: datetime) -> int:
        """Drop posts queued before `cutoff` (the daily purge: dialog-state retention); returns how many."""
        removed = self._outbox.purge_before(cutoff)
        self._queued = self._outbox.count()
        return removed

    def outbox_depth(self) -> int:
        """How many posts wait in the outbox (kept in memory: cheap on the event loop)."""
        return self._queued

    def outbox(self) -> list[dict[str, Any]]:
        """The queued posts, oldest first (for status and tests)."""
        return self._outbox.all()

    def _outbox_update(self, doc_id: int, fields: dict[str, Any]) -> None:
        self._outbox.update(doc_id, fields)

    def _outbox_remove(self, doc_id: int) -> None:
        self._queued = self._outbox.remove(doc_id)

    async def flush_outbox(
        self, *, call_number: str | None = None, thread: tuple[str, str | None] | None = None
    ) -> int:
        """Retry queued posts oldest first (only those of `call_number`, or of the request `thread`
        (channel, thread_ts), when given); returns how many were delivered. A post that fails again stays,
        with attempts + 1 and its error; a failure that says Slack is unwell (rate limit, 5xx, connection)
        ends this round, leaving the rest for the next one. Each post is leased while it is delivered; one
        another sender holds is skipped, with the later ones to its thread."""
        if not (self._queued or self.shared):
            return 0
        delivered = 0
        async with self._flush_lock:
            queued = await asyncio.to_thread(self.outbox)
            held: set[str] = set()  # threads whose earlier post another sender holds: it keeps their order
            for listed in queued:
                if not self._selected(listed, call_number, thread) or destination(listed) in held:
                    continue
                doc = await asyncio.to_thread(self._claim, listed["_id"])
                if doc is None:
                    held.add(destination(listed))
                    continue
                try:
                    if not (doc["_lapsed"] and await self._shown_in_thread(doc)):
                        await self._deliver(doc)
                except SLACK_ERRORS as exc:
                    permanent = not is_transient(exc)
                    if permanent and (doc.get("call_number") is None
                                      or int(doc.get("attempts", 0)) + 1 >= MAX_PERMANENT_ATTEMPTS):
                        # A thread Slack refuses for good (archived, bot not in the channel): it would block
                        # every later post there and never succeed. A call-log post gets a few tries first (an
                        # admin may invite the bot); the search is in the audit log either way.
                        log.error("dropped a queued post for thread %s of %s: %s", doc.get("thread_ts"),
                                  doc.get("channel"), error_text(exc))
                        await asyncio.to_thread(self._outbox_remove, doc["_id"])
                        continue
                    update = {"attempts": int(doc.get("attempts", 0)) + 1, "last_error": error_text(exc)}
                    await asyncio.to_thread(self._outbox_update, doc["_id"], update)
                    if is_transient(exc):
                        break
                    continue
                await asyncio.to_thread(self._outbox_remove, doc["_id"])
                delivered += 1
        if delivered:
            log.info("delivered %d queued post(s); %d still queued", delivered, self.outbox_depth())
        return delivered

    def _claim(self, doc_id: int) -> dict[str, Any] | None:
        """Lease one queued post for its delivery: the post, or None when another sender holds it (or an
        earlier one to its thread), or it is gone."""
        claimed = self._outbox.claim(datetime.now(UTC), self.holder, ids=[doc_id])
        return claimed[0] if claimed else None

    async def _shown_in_thread(self, doc: Mapping[str, Any]) -> bool:
        """Whether the post's thread already shows its post_id (a sender whose lease lapsed had posted it).
        Raises on Slack errors (the post is then tried again later, like a failed post)."""
        post_id = doc.get("post_id")
        if doc.get("call_number") is not None:
            channel, thread_ts = self.channel, self.thread_ts(doc["call_number"])
            if thread_ts is None:
                return False  # no thread yet: the post was never shown
        else:
            channel, thread_ts = doc["channel"], doc.get("thread_ts")
        cursor: str | None = None
        while True:
            if thread_ts is None:  # a top-level post: the channel's latest messages
                resp = await self.client.conversations_history(channel=channel, limit=HISTORY_PAGE,
                                                               include_all_metadata=True)
            else:
                try:
                    resp = await self.client.conversations_replies(
                        channel=channel, ts=thread_ts, limit=HISTORY_PAGE, cursor=cursor or None,
                        include_all_metadata=True)
                except SlackApiError as exc:
                    if (exc.response or {}).get("error") in DEAD_THREAD_ERRORS:
                        return False  # nothing there: the post itself finds out what became of the thread
                    raise
            if any(((m.get("metadata") or {}).get("event_payload") or {}).get("post_id") == post_id
                   for m in resp.get("messages") or ()):
                return True
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if thread_ts is None or not cursor:
                return False

    def _selected(
        self, doc: Mapping[str, Any], call_number: str | None, thread: tuple[str, str | None] | None
    ) -> bool:
        """Whether a flush limited to `call_number` or `thread` (or neither) should try this queued post."""
        doc_call = doc.get("call_number")
        if doc_call is not None and not self.channel:
            return False  # a call-log post with no dispatch channel (any more): nowhere to deliver it
        if call_number is not None:
            return doc_call == call_number
        if thread is not None:
            return doc_call is None and (doc.get("channel"), doc.get("thread_ts")) == thread
        return True

    async def _deliver(self, doc: Mapping[str, Any]) -> str:
        """Post one queued message where it belongs: the call's thread, or the request thread it names."""
        if doc.get("call_number") is not None:
            return await self._post(doc["call_number"], doc["message"])
        resp = await self.client.chat_postMessage(channel=doc["channel"], thread_ts=doc.get("thread_ts"),
                                                  **doc["message"])
        return str(resp["ts"])

    async def thread_permalink(self, call_number: str) -> str | None:
        """A link to the call's thread (for the result message), or None when unknown or Slack fails."""
        thread = self.thread_ts(call_number)
        if not self.channel or thread is None:
            return None
        try:
            resp = await self.client.chat_getPermalink(channel=self.channel, message_ts=thread)
        except SLACK_ERRORS as exc:
            log.warning("no permalink for the thread of call %s: %s", call_number, error_text(exc))
            return None
        return resp.get("permalink")


__all__ = ["SLACK_ERRORS", "CallLog", "error_text", "is_transient", "message_text"]
