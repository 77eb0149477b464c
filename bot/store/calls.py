"""The dispatch channel's files: the call-number index and the outbox of posts waiting for Slack.

Under data_dir/slack/ (tinydb on the project's atomic storage, 0600):
    calls.json   call_number -> {thread_ts, first_seen, source}
    outbox.json  queued posts: {post_id, call_number | channel + thread_ts, message (chat.postMessage kwargs),
                 attempts, last_error, queued_at}

tinydb is not thread-safe and callers use both from worker threads while the event loop posts: every operation
holds the store's lock (milliseconds). `cache_size=0`: every read sees the file as it is (both stay small).
What the records mean, and when they are written, is bot.slack.calls' business.

Exactly once (CONTRACTS ### 13): every queued post carries a `post_id`, also in its message's
`metadata.event_payload.post_id`, so the post can be found in its thread; queueing a post_id already queued
adds nothing. `claim` hands a sender the posts nobody holds, each under a lease (30 s): a post whose lease lapsed
(its sender died mid-post) is handed out again marked `_lapsed`, and is re-posted only if its thread lacks that
post_id. A post is never handed out while an earlier one to the same thread is held, so a thread keeps its
order. Here the leases live in this process (one server per data dir); bot.store.pg.slack keeps them in the
database for several replicas.
"""
from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tinydb import Query

from bot.audit.entries import parse_ts
from bot.store.disk import ensure_private_dir, open_tinydb

LEASE_S = 30.0  # CONTRACTS ### 13: work in flight holds a 30 s lease
CLAIM_LIMIT = 100
POST_EVENT_TYPE = "fr_post"  # metadata event type of a queued message that had no metadata of its own


def with_post_id(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The queued post `doc` with its `post_id` (its own, else its message's, else a new one), written into its
    message's `metadata.event_payload` too."""
    message = dict(doc.get("message") or {})
    metadata = dict(message.get("metadata") or {})
    payload = dict(metadata.get("event_payload") or {})
    post_id = str(doc.get("post_id") or payload.get("post_id") or uuid.uuid4().hex)
    metadata.setdefault("event_type", POST_EVENT_TYPE)
    message["metadata"] = {**metadata, "event_payload": {**payload, "post_id": post_id}}
    return {**doc, "post_id": post_id, "message": message}


def destination(doc: Mapping[str, Any]) -> str:
    """Where a queued post goes: one call's thread, or one request thread (channel and thread ts)."""
    if doc.get("call_number") is not None:
        return f"call:{doc['call_number']}"
    return f"thread:{doc.get('channel') or ''}:{doc.get('thread_ts') or ''}"


class CallIndexStore:
    """The call-number index on disk: one record per call number."""

    def __init__(self, data_dir: Path) -> None:
        self._db = open_tinydb(ensure_private_dir(Path(data_dir) / "slack") / "calls.json")
        self._table = self._db.table("calls", cache_size=0)
        self._lock = threading.RLock()

    def all(self) -> list[dict[str, Any]]:
        """Every record ({call_number, thread_ts, first_seen, source})."""
        with self._lock:
            return [dict(doc) for doc in self._table.all()]

    def get(self, call_number: str) -> dict[str, Any] | None:
        """The record of one call number, or None."""
        with self._lock:
            doc = self._table.get(Query().call_number == call_number)
        return dict(doc) if doc else None

    def put(self, records: list[dict[str, Any]]) -> None:
        """Write `records`, each replacing whatever its call number had (one batch)."""
        if not records:
            return
        with self._lock:
            self._table.remove(Query().call_number.one_of([r["call_number"] for r in records]))
            self._table.insert_multiple(records)

    def remove(self, call_numbers: list[str]) -> None:
        """Forget these call numbers."""
        if call_numbers:
            with self._lock:
                self._table.remove(Query().call_number.one_of(call_numbers))

    def close(self) -> None:
        """Close the tinydb handle (nothing stays open between operations anyway)."""
        self._db.close()


class OutboxStore:
    """Posts waiting for Slack, oldest first by their id."""

    def __init__(self, data_dir: Path) -> None:
        self._db = open_tinydb(ensure_private_dir(Path(data_dir) / "slack") / "outbox.json")
        self._table = self._db.table("outbox", cache_size=0)
        self._lock = threading.RLock()
        self._leases: dict[int, tuple[datetime, str]] = {}  # doc id -> (until, holder)

    def add(self, doc: dict[str, Any]) -> int:
        """Queue one post (given a `post_id`, see `with_post_id`; one already queued is not queued again);
        returns how many are queued now."""
        doc = with_post_id(doc)
        with self._lock:
            if not self._table.contains(Query().post_id == doc["post_id"]):
                self._table.insert(doc)
            return len(self._table)

    def count(self) -> int:
        """How many posts are queued."""
        with self._lock:
            return len(self._table)

    def has_call(self, call_number: str) -> bool:
        """Whether a call-thread post of `call_number` is queued."""
        with self._lock:
            return self._table.contains(Query().call_number == call_number)

    def has_thread(self, channel: str, thread_ts: str | None) -> bool:
        """Whether a post in the request thread (channel, thread_ts) is queued."""
        with self._lock:
            return self._table.contains((Query().channel == channel) & (Query().thread_ts == thread_ts))

    def all(self) -> list[dict[str, Any]]:
        """The queued posts, oldest first, each with its id as `_id`."""
        with self._lock:
            docs = self._table.all()
        return [{**doc, "_id": doc.doc_id} for doc in sorted(docs, key=lambda d: d.doc_id)]

    def claim(self, now: datetime, holder: str, lease_s: float = LEASE_S, limit: int = CLAIM_LIMIT,
              ids: list[int] | None = None) -> list[dict[str, Any]]:
        """Up to `limit` queued posts (of `ids`, when given) nobody holds (no lease, or one lapsed by `now`),
        oldest first, each now leased to `holder` for `lease_s` seconds; as `all` gives them, plus `_lapsed` (a
        lease had lapsed: its sender may have posted it). A post waits while an earlier one to the same thread
        is held."""
        taken: list[dict[str, Any]] = []
        with self._lock:
            held: set[str] = set()
            for doc in self.all():
                lease = self._leases.get(doc["_id"])
                dest = destination(doc)
                if lease is not None and lease[0] > now:
                    held.add(dest)
                elif dest not in held and len(taken) < limit and (ids is None or doc["_id"] in ids):
                    self._leases[doc["_id"]] = (now + timedelta(seconds=lease_s), holder)
                    taken.append({**doc, "_lapsed": lease is not None})
        return taken

    def update(self, doc_id: int, fields: dict[str, Any]) -> None:
        """Change fields of one queued post (attempts, last error); its lease ends (the try is over)."""
        with self._lock:
            self._table.update(fields, doc_ids=[doc_id])
            self._leases.pop(doc_id, None)

    def release(self, doc_id: int) -> None:
        """End the lease on one queued post, untried (another sender may take it at once)."""
        with self._lock:
            self._leases.pop(doc_id, None)

    def remove(self, doc_id: int) -> int:
        """Drop one queued post (delivered, or refused for good); returns how many are queued now."""
        with self._lock:
            self._table.remove(doc_ids=[doc_id])
            self._leases.pop(doc_id, None)
            return len(self._table)

    def purge_before(self, cutoff: datetime) -> int:
        """Drop posts queued before `cutoff` (never delivered within the dialog-state retention: they hold
        names and justifications); returns how many."""
        with self._lock:
            old = [doc.doc_id for doc in self._table.all() if _queued_before(doc, cutoff)]
            self._table.remove(doc_ids=old)
        return len(old)

    def close(self) -> None:
        """Close the tinydb handle."""
        self._db.close()


def _queued_before(doc: dict[str, Any], cutoff: datetime) -> bool:
    try:
        return parse_ts(str(doc.get("queued_at") or "")) < cutoff
    except ValueError:
        return False  # an unreadable stamp: kept, delivered or dropped by its attempts
