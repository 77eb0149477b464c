"""Records the CLI and the server share, in one tinydb file each, locked across processes like the dialog
store: examiner reviews (bot.controls.examination), which the CLI can queue for the server to post, and CLI requests
waiting for a supervisor's approval (bot.controls.approval)."""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from tinydb import Query

from bot.controls.approval import Pending
from bot.controls.examination import Examination
from bot.store.disk import file_lock, open_tinydb


class _Record(Protocol):
    request_id: str

    @property
    def open(self) -> bool: ...

    @property
    def ended_at(self) -> str | None: ...

    def to_dict(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=_Record)


class RecordStore(Generic[R]):
    """Records by request id; every read afresh (another process may have written)."""

    table = "records"

    def __init__(self, path: Path | str, load: Callable[[dict[str, Any]], R]) -> None:
        self.path = Path(path)
        self._load = load
        self._db = open_tinydb(self.path)
        self._table = self._db.table(self.table, cache_size=0)
        self._file_lock = file_lock(self.path.with_name(self.path.name + ".lock"))
        self._thread_lock = threading.RLock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock, self._file_lock:
            yield

    def put(self, record: R) -> None:
        """Insert or replace."""
        with self._locked():
            self._table.upsert(record.to_dict(), Query().request_id == record.request_id)

    def get(self, request_id: str) -> R | None:
        with self._locked():
            doc = self._table.get(Query().request_id == request_id)
        return self._load(dict(doc)) if doc else None

    def update(self, request_id: str, step: Callable[[R], tuple[R, list]]) -> tuple[R, list] | None:
        """Read, transition and write one record as one locked step; None when there is none."""
        with self._locked():
            record = self.get(request_id)
            if record is None:
                return None
            new, effects = step(record)
            if new.to_dict() != record.to_dict():
                self.put(new)
            return new, effects

    def all(self) -> list[R]:
        with self._locked():
            return [self._load(dict(d)) for d in self._table.all()]

    def open(self) -> list[R]:
        """Records still in progress (a review queued or claimed; a request pending or approved)."""
        return [r for r in self.all() if r.open]

    def delete_ended_before(self, cutoff: datetime) -> int:
        """Remove records that ended before `cutoff` ([retention] dialog_state_days: the audit log keeps what
        happened); returns how many."""
        with self._locked():
            old = [r.request_id for r in self.all() if r.ended_at and datetime.fromisoformat(r.ended_at) < cutoff]
            if old:
                self._table.remove(Query().request_id.one_of(old))
        return len(old)

    def close(self) -> None:
        self._db.close()


class ExaminationStore(RecordStore[Examination]):
    """data/examinations.json: examiner reviews."""

    table = "examinations"

    def __init__(self, path: Path | str) -> None:
        super().__init__(path, Examination.from_dict)


class ApprovalStore(RecordStore[Pending]):
    """data/approvals.json: CLI requests waiting for a supervisor."""

    table = "approvals"

    def __init__(self, path: Path | str) -> None:
        super().__init__(path, Pending.from_dict)
