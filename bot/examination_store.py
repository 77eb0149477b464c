"""The persisted examiner reviews (bot.examination) in one tinydb file, locked across processes like the dialog
store, so the CLI can queue a review the server then posts."""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from tinydb import Query

from bot.examination import Examination, Result
from bot.storage import file_lock, open_tinydb


class ExaminationStore:
    """Examinations by request id; every read afresh (another process may have written)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db = open_tinydb(self.path)
        self._table = self._db.table("examinations", cache_size=0)
        self._file_lock = file_lock(self.path.with_name(self.path.name + ".lock"))
        self._thread_lock = threading.RLock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock, self._file_lock:
            yield

    def put(self, exam: Examination) -> None:
        """Insert or replace."""
        with self._locked():
            self._table.upsert(exam.to_dict(), Query().request_id == exam.request_id)

    def get(self, request_id: str) -> Examination | None:
        with self._locked():
            doc = self._table.get(Query().request_id == request_id)
        return Examination.from_dict(dict(doc)) if doc else None

    def update(self, request_id: str, step: Callable[[Examination], Result]) -> Result | None:
        """Read, transition and write one examination as one locked step; None when there is none."""
        with self._locked():
            exam = self.get(request_id)
            if exam is None:
                return None
            new, effects = step(exam)
            if new.to_dict() != exam.to_dict():
                self.put(new)
            return new, effects

    def all(self) -> list[Examination]:
        with self._locked():
            return [Examination.from_dict(dict(d)) for d in self._table.all()]

    def open(self) -> list[Examination]:
        """Reviews still queued or claimed."""
        return [e for e in self.all() if e.open]

    def close(self) -> None:
        self._db.close()
