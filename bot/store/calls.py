"""The dispatch channel's files: the call-number index and the outbox of posts waiting for Slack.

Under data_dir/slack/ (tinydb on the project's atomic storage, 0600):
    calls.json   call_number -> {thread_ts, first_seen, source}
    outbox.json  queued posts: {call_number | channel + thread_ts, message (chat.postMessage kwargs),
                 attempts, last_error, queued_at}

tinydb is not thread-safe and callers use both from worker threads while the event loop posts: every operation
holds the store's lock (milliseconds). `cache_size=0`: every read sees the file as it is (both stay small).
What the records mean, and when they are written, is bot.slack.calls' business.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tinydb import Query

from bot.store.disk import ensure_private_dir, open_tinydb


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

    def add(self, doc: dict[str, Any]) -> int:
        """Queue one post; returns how many are queued now."""
        with self._lock:
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

    def update(self, doc_id: int, fields: dict[str, Any]) -> None:
        """Change fields of one queued post (attempts, last error)."""
        with self._lock:
            self._table.update(fields, doc_ids=[doc_id])

    def remove(self, doc_id: int) -> int:
        """Drop one queued post (delivered, or refused for good); returns how many are queued now."""
        with self._lock:
            self._table.remove(doc_ids=[doc_id])
            return len(self._table)

    def close(self) -> None:
        """Close the tinydb handle."""
        self._db.close()
