"""The persisted store of request dialogs (bot.request.transitions): dialogs and dedupe keys in one tinydb file.

Atomic writes (bot.store.disk's tinydb storage class), a cross-process file lock, and every read afresh, so
what another process (the CLI's purge) wrote is seen.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

from tinydb import Query

from bot.request.transitions import Dialog, Result, iso_time, parse_time
from bot.store.disk import file_lock, open_tinydb


class DialogStore:
    """Dialogs and dedupe keys in one tinydb file (atomic writes), locked across processes.

    Every operation reads the file afresh under the lock (tinydb's query cache is off), so what another
    process wrote is seen. One server instance per data dir still: two servers would both answer a thread.
    """

    def __init__(self, path: Path | str, *, claim_ttl: timedelta = timedelta(days=3)) -> None:
        self.path = Path(path)
        self._db = open_tinydb(self.path)
        # cache_size=0: a cached query result would hide another process's writes.
        self._dialogs = self._db.table("dialogs", cache_size=0)
        self._claims = self._db.table("claims", cache_size=0)
        # Threads of this process queue on a plain lock (woken at once); only its holder takes the file lock,
        # which other processes (the CLI's purge) wait on. filelock alone polls every 50 ms, and the server's
        # I/O threads would wait behind each other that long.
        self._file_lock = file_lock(self.path.with_name(self.path.name + ".lock"))
        self._thread_lock = threading.RLock()
        self._claim_ttl = claim_ttl
        self._last_prune: datetime | None = None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock, self._file_lock:
            yield

    def threads(self) -> dict[tuple[str, str], str]:
        """(channel, thread_ts) -> dialog_id of every stored dialog: the server's in-memory thread index."""
        with self._locked():
            return {(d["channel"], d["thread_ts"]): d["dialog_id"] for d in self._dialogs.all()}

    def thread_of(self, channel: str, thread_ts: str) -> str | None:
        """The id of the dialog `by_thread` answers: what the in-memory index misses (a thread another
        process, or on PostgreSQL another replica, started)."""
        found = self.by_thread(channel, thread_ts)
        return found.dialog_id if found else None

    def close(self) -> None:
        """Close the tinydb handle (nothing stays open between operations anyway)."""
        self._db.close()

    def _all(self) -> list[Dialog]:
        return [Dialog.from_dict(doc) for doc in self._dialogs.all()]

    def put(self, dialog: Dialog) -> None:
        """Insert or replace a dialog."""
        with self._locked():
            self._dialogs.upsert(dialog.to_dict(), Query().dialog_id == dialog.dialog_id)

    def get(self, dialog_id: str) -> Dialog | None:
        """The dialog with this id, or None."""
        with self._locked():
            doc = self._dialogs.get(Query().dialog_id == dialog_id)
        return Dialog.from_dict(doc) if doc else None

    def update(self, dialog_id: str, transition: Callable[[Dialog], Result]) -> Result | None:
        """Read, transition and write one dialog as one locked step; None when there is no such dialog.

        Use it when two inputs for one dialog may race (e.g. two images analysed at once in threads).
        """
        with self._locked():
            dialog = self.get(dialog_id)
            if dialog is None:
                return None
            new, effects = transition(dialog)
            if new is not dialog:
                self.put(new)
            return new, effects

    def by_thread(self, channel: str, thread_ts: str) -> Dialog | None:
        """Which request is this thread? The dialog its upload started (an active one first, then newest)."""
        q = Query()
        with self._locked():
            docs = self._dialogs.search((q.channel == channel) & (q.thread_ts == thread_ts))
        if not docs:
            return None
        dialogs = [Dialog.from_dict(doc) for doc in docs]
        return max(dialogs, key=lambda x: (not x.terminal, x.created_at))

    def by_request_id(self, request_id: str) -> Dialog | None:
        """The dialog holding the image with this request id, or None."""
        with self._locked():
            doc = self._dialogs.get(Query().images.any(Query().request_id == request_id))
        return Dialog.from_dict(doc) if doc else None

    def by_file_id(self, file_id: str) -> Dialog | None:
        """The newest dialog holding an image of this Slack file, or None."""
        with self._locked():
            docs = self._dialogs.search(Query().images.any(Query().file_id == file_id))
        if not docs:
            return None
        return max((Dialog.from_dict(doc) for doc in docs), key=lambda x: x.created_at)

    def all(self) -> list[Dialog]:
        """Every stored dialog, ended ones included (audit reconciliation at start)."""
        with self._locked():
            return self._all()

    def active(self) -> list[Dialog]:
        """Dialogs not yet ended, oldest first: for timeouts, and to resume after a restart."""
        with self._locked():
            dialogs = self._all()
        return sorted((d for d in dialogs if not d.terminal), key=lambda x: x.created_at)

    def delete_older_than(self, cutoff: datetime) -> int:
        """Remove ended dialogs last changed before `cutoff` (dialog-state retention); returns the count.

        Active dialogs are kept whatever their age: they are still waiting on someone.
        """
        iso_time(cutoff)  # refuse a naive cutoff
        with self._locked():
            old = [d.dialog_id for d in self._all() if d.terminal and parse_time(d.updated_at) < cutoff]
            if old:
                self._dialogs.remove(Query().dialog_id.one_of(old))
        return len(old)

    def claim(self, key: str, now: datetime) -> bool:
        """True the first time `key` is seen (an event id, a file id, an action id + ts), False after.

        Persisted, so a restart plus a Slack redelivery never starts a second request or search. Keys older
        than the claim TTL (default 3 days; Slack stops redelivering within the hour) are pruned.
        """
        stamp = iso_time(now)
        with self._locked():
            if self._claims.contains(Query().key == key):
                return False
            self._claims.insert({"key": key, "at": stamp})
            if self._last_prune is None or now - self._last_prune >= timedelta(hours=1):
                cutoff = now - self._claim_ttl
                self._claims.remove(Query().at.test(lambda at: parse_time(at) < cutoff))
                self._last_prune = now
        return True

    def claims(self) -> list[tuple[str, datetime]]:
        """Every dedupe claim not yet pruned, (key, when): what `store copy` carries to a database."""
        with self._locked():
            return [(doc["key"], parse_time(doc["at"])) for doc in self._claims.all()]

    def claimed(self, key: str) -> bool:
        """Whether `key` has been claimed (and not yet pruned)."""
        with self._locked():
            return self._claims.contains(Query().key == key)
