"""`gallery reencode`'s progress in PostgreSQL: the same calls, with the same answers, as
bot.faces.reencode.Progress (its sqlite file beside the gallery), kept as small records (`small_records`,
namespace "reencode": one row per image decided, key its SHA-256; "reencode.recipe": what they were made with),
so a reencode stopped on one machine goes on from any other.

One run at a time: the run holds a session advisory lock on its own connection until `close`.
"""
from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
from psycopg.types.json import Jsonb

from bot import wording
from bot.faces.gallery import DIM, GalleryError
from bot.faces.reencode import BATCH, FLUSH_SECONDS
from bot.store.pg import locks

DONE = "reencode"
RECIPE = ("reencode.recipe", "recipe")
# pg_try_advisory_lock's key for the one reencode run (any fixed number no other program on the database uses).
RUN_LOCK = locks.REENCODE_RUN


class PgReencodeProgress:
    """The templates a reencode has made so far: {sha256: template and box, or the reason no face could be used}."""

    def __init__(self, connect: Callable[[], Any], recipe: Mapping[str, Any]) -> None:
        self._stack = contextlib.ExitStack()
        self._conn = self._stack.enter_context(connect())  # held for the run: it holds the run's lock
        autocommit = self._conn.autocommit
        self._stack.callback(setattr, self._conn, "autocommit", autocommit)  # a pool's connection goes back as it came
        self._conn.autocommit = True  # each read and each flush is its own transaction
        if not self._conn.execute("SELECT pg_try_advisory_lock(%s)", (RUN_LOCK,)).fetchone()[0]:
            self._stack.close()
            raise GalleryError(wording.gallery_reencode_running())
        text = json.dumps(dict(recipe), sort_keys=True)
        with self._conn.transaction():
            row = self._conn.execute("SELECT doc FROM small_records WHERE namespace = %s AND key = %s",
                                     RECIPE).fetchone()
            if row is None or row[0].get("recipe") != text:
                # Another model or other detection settings: what was made cannot be used.
                self._conn.execute("DELETE FROM small_records WHERE namespace = %s", (DONE,))
                self._conn.execute("INSERT INTO small_records (namespace, key, doc) VALUES (%s, %s, %s) "
                                   "ON CONFLICT (namespace, key) DO UPDATE SET doc = EXCLUDED.doc, updated_at = now()",
                                   (*RECIPE, Jsonb({"recipe": text})))
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._flushed = time.monotonic()

    def _docs(self, shas: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        rows = self._conn.execute("SELECT key, doc FROM small_records WHERE namespace = %s AND key = ANY(%s)",
                                  (DONE, list(shas))).fetchall()
        yield from rows

    def known(self, shas: list[str]) -> set[str]:
        """Those of `shas` decided already (a template made, or no face to use)."""
        return {sha for sha, _ in self._docs(shas)}

    def templates(self, shas: list[str]) -> dict[str, tuple[np.ndarray, str]]:
        """{sha256: (template, box JSON)} for those of `shas` with a template."""
        return {sha: (np.frombuffer(base64.b64decode(doc["template"]), dtype=np.float32).copy(), doc["box"])
                for sha, doc in self._docs(shas) if doc.get("template") is not None}

    def reasons(self, shas: list[str]) -> dict[str, str]:
        """{sha256: why no face could be used} for those of `shas` decided without a template."""
        return {sha: doc["reason"] for sha, doc in self._docs(shas) if doc.get("template") is None}

    def add(self, sha: str, template: np.ndarray | None, box: str | None, reason: str = "") -> None:
        """Keep one image's outcome; committed every BATCH images or FLUSH_SECONDS."""
        blob = None if template is None else base64.b64encode(
            np.asarray(template, dtype=np.float32).reshape(DIM).tobytes()).decode("ascii")
        self._pending.append((sha, {"template": blob, "box": box, "reason": reason}))
        if len(self._pending) >= BATCH or time.monotonic() - self._flushed >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Commit what was added."""
        if self._pending:
            with self._conn.transaction(), self._conn.cursor() as cur:
                cur.executemany("INSERT INTO small_records (namespace, key, doc) VALUES (%s, %s, %s) ON CONFLICT "
                                "(namespace, key) DO UPDATE SET doc = EXCLUDED.doc, updated_at = now()",
                                [(DONE, sha, Jsonb(doc)) for sha, doc in self._pending])
            self._pending = []
        self._flushed = time.monotonic()

    def close(self, *, delete: bool = False) -> None:
        """Commit, release the run's lock; `delete`: the progress goes too (its generation is in)."""
        try:
            self.flush()
            if delete:
                self._conn.execute("DELETE FROM small_records WHERE namespace = ANY(%s)", ([DONE, RECIPE[0]],))
            self._conn.execute("SELECT pg_advisory_unlock(%s)", (RUN_LOCK,))
        finally:
            self._stack.close()
