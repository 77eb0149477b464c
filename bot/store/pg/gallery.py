"""The known-person gallery in PostgreSQL (bot/store/pg/migrations/002_gallery.sql), each replica with a local
matrix cache. Search, calibration and changes are the file gallery's own code (bot.faces.gallery_core): only
where things are kept differs.

- Subjects and images: `gallery_subjects`, `gallery_images`, the columns of the file gallery's sqlite;
  `gallery_meta` holds the generation, its row count, the model and the generation's token (random per commit).
- A generation's matrix: each array's .npy bytes in PART_BYTES parts (`gallery_chunks`), its calibration
  (`gallery_calibration`); only the generation in force is kept.
- One enrollment, removal, rename or reencode is one transaction under an advisory lock (WRITE_LOCK): the new
  parts and calibration, the metadata, the generation and token, the previous generation's parts deleted, and
  `NOTIFY frbot_gallery, '<generation>'`. Any failure before COMMIT rolls all of it back: the previous generation
  stays in force everywhere.
- The cache: `<cache_dir>/gallery-<generation>-<token>-<array>.npy`, written whole (temp file, fsync, rename) and
  memory-mapped. The writer keeps the files it staged; every other replica fetches the parts once per generation
  in one snapshot, so reopening a cached generation reads no part. `refresh()`, before every search, reads the
  generation and token (one small query) and loads a new one; files of older generations are then deleted. The
  token in the name keeps a cache from serving a same-numbered generation of another database (a restore).
- Face crops: `gallery_thumbnails`.

`GalleryWatch` LISTENs on its own connection: the server loads a new generation as soon as it is committed, so
the first search after an enrollment does not wait for the fetch; the check before each search stays the rule.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bot import wording
from bot.faces import calibration
from bot.faces.gallery_core import ARRAYS, GalleryCore, GalleryError, atomic_file, delete_files
from bot.store.disk import ensure_private_dir
from bot.store.pg import locks

PART_BYTES = 8 << 20  # bytes of a .npy file per gallery_chunks row
# pg_advisory_xact_lock's key for gallery writers (any fixed number no other program on the database uses).
WRITE_LOCK = locks.GALLERY_WRITE
CHANNEL = "frbot_gallery"
_CACHE_FILE = re.compile(r"^gallery-(\d+)-([0-9a-f]*)-(?:embeddings|row_subject|row_image)\.npy$")
_STALE_TMP_SECONDS = 3600  # a temp file this old was left by a dead process (live ones keep writing theirs)


class PgGallery(GalleryCore):
    """The gallery of one PostgreSQL database; `connect()` gives a connection (a pool's, or psycopg's) that
    commits on a clean exit; `cache_dir` is this replica's own folder for the matrix cache."""

    _TABLES: ClassVar[dict[str, str]] = {"meta": "gallery_meta", "subjects": "gallery_subjects", "images": "gallery_images"}
    _PARAM: ClassVar[str] = "%s"

    def __init__(self, connect: Callable[[], Any], cache_dir: Path | str) -> None:
        """Open the database's gallery and load its current generation (from the cache when there)."""
        super().__init__()
        self._connect = connect
        self.dir = ensure_private_dir(cache_dir)
        self._local = threading.local()  # the writer's transaction and token, for its own thread only
        self.parts_read = 0  # gallery_chunks rows fetched by this object (a cached generation fetches none)
        self.refresh()

    def __repr__(self) -> str:
        return f"PgGallery(cache_dir={str(self.dir)!r})"

    def _cache_path(self, name: str, generation: int, token: str) -> Path:
        return self.dir / f"gallery-{generation:06d}-{token}-{name}.npy"

    def refresh(self) -> bool:
        """Reload when the database holds another generation (one small query otherwise); after loading one,
        the cache files of every other generation are deleted. True when a new generation was loaded."""
        with self._lock:
            changed = super().refresh()
            if changed:
                self._cleanup()
            return changed

    # -------------------------------------------------------------- GalleryCore's hooks

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        tx = getattr(self._local, "tx", None)
        if tx is not None:
            yield tx
            return
        with self._connect() as conn:
            yield conn

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Any]:
        """One transaction holding the writer lock (released by its COMMIT or ROLLBACK), then the new
        generation loaded."""
        with self._lock:
            with self._connect() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                self._local.tx, self._local.token = conn, secrets.token_hex(8)
                try:
                    self.refresh()
                    yield conn
                finally:
                    self._local.tx = None
            self.refresh()

    def _arrays(self, generation: int, rows: int, meta: dict[str, str]) -> tuple[np.ndarray, ...]:
        paths = [self._cache_path(name, generation, meta.get("token", "")) for name in ARRAYS]
        if not all(p.exists() for p in paths):
            self._fetch(generation, meta.get("token", ""), paths)
        try:
            return tuple(np.load(p, mmap_mode="r") for p in paths)
        except (ValueError, OSError):  # a cache file damaged or deleted by hand: fetched again, once
            self._fetch(generation, meta.get("token", ""), paths)
            return tuple(np.load(p, mmap_mode="r") for p in paths)

    def _fetch(self, generation: int, token: str, paths: list[Path]) -> None:
        """Copy the generation's arrays from the database into the cache, each file whole or not at all;
        FileNotFoundError when it is no longer the generation in force (the core then reads it again)."""
        with contextlib.ExitStack() as stack:
            conn = getattr(self._local, "tx", None)  # a writer holds the lock: nothing changes under it
            if conn is None:
                conn = stack.enter_context(self._connect())
                stack.enter_context(conn.transaction())
                # One snapshot for the check and every part: a commit meanwhile cannot mix two generations.
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            now = dict(conn.execute("SELECT key, value FROM gallery_meta WHERE key IN ('generation', 'token')")
                       .fetchall())
            if (int(now["generation"]), now["token"]) != (generation, token):
                raise FileNotFoundError(errno.ENOENT, "superseded", str(paths[0]))
            for name, path in zip(ARRAYS, paths):
                with atomic_file(path) as tmp, open(tmp, "wb") as out, conn.cursor(binary=True) as cur:
                    part = 0
                    while (row := cur.execute("SELECT data FROM gallery_chunks WHERE generation = %s AND name = %s "
                                              "AND part = %s", (generation, name, part)).fetchone()) is not None:
                        out.write(row[0])
                        part += 1
                        self.parts_read += 1
                    if part == 0:
                        raise GalleryError(wording.gallery_database_damaged(generation, name))

    def _staged_path(self, name: str, generation: int) -> Path:
        # The cache's own name at once: the token is this transaction's, so until it commits no replica looks
        # for the file, and a rolled-back one is deleted by a later cleanup.
        return self._cache_path(name, generation, self._local.token)

    def _publish(self, conn: Any, generation: int, staged: dict[str, Path],
                 cal: calibration.Calibration | None) -> None:
        for name, path in staged.items():
            with open(path, "rb") as fh:
                for part, data in enumerate(iter(lambda fh=fh: fh.read(PART_BYTES), b"")):
                    conn.execute("INSERT INTO gallery_chunks (generation, name, part, data) VALUES (%s, %s, %s, %s)",
                                 (generation, name, part, data))
        if cal is not None:
            self._keep_calibration(cal)
        # Only the generation in force is kept; a replica still fetching the previous one reads its own snapshot.
        conn.execute("DELETE FROM gallery_chunks WHERE generation <> %s", (generation,))
        conn.execute("DELETE FROM gallery_calibration WHERE generation <> %s", (generation,))
        conn.execute("UPDATE gallery_meta SET value = %s WHERE key = 'token'", (self._local.token,))
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(generation)))  # sent at COMMIT, never before

    def _stored_calibration(self, generation: int) -> calibration.Calibration | None:
        with self._connection() as conn:
            row = conn.execute("SELECT npz FROM gallery_calibration WHERE generation = %s", (generation,)).fetchone()
        try:
            return None if row is None else calibration.Calibration.from_bytes(bytes(row[0]))
        except (OSError, ValueError, KeyError):
            return None

    def _keep_calibration(self, cal: calibration.Calibration) -> None:
        with self._connection() as conn:
            conn.execute("INSERT INTO gallery_calibration (generation, npz) VALUES (%s, %s) "
                         "ON CONFLICT (generation) DO UPDATE SET npz = excluded.npz", (cal.generation, cal.to_bytes()))

    def _storage_stats(self) -> dict:
        with self._connection() as conn:
            [(matrix, thumbnails, thumbnail_bytes, metadata)] = conn.execute(
                "SELECT (SELECT coalesce(sum(octet_length(data)), 0) FROM gallery_chunks WHERE generation = %s), "
                "(SELECT count(*) FROM gallery_thumbnails), "
                "(SELECT coalesce(sum(octet_length(jpeg)), 0) FROM gallery_thumbnails), "
                "pg_total_relation_size('gallery_meta') + pg_total_relation_size('gallery_subjects') "
                "+ pg_total_relation_size('gallery_images')", (self._generation,)).fetchall()
        return {"matrix_bytes": int(matrix), "metadata_bytes": int(metadata), "thumbnail_bytes": int(thumbnail_bytes),
                "thumbnails": int(thumbnails)}

    # -------------------------------------------------------------- the cache and the crops

    def _cleanup(self) -> None:
        """Delete the cache files of older generations, of commits that never happened (another token of the
        generation in force) and temp files left by dead processes; a newer generation's (a writer's staging)
        stay."""
        generation, token = self._loaded

        def stale(entry: os.DirEntry) -> bool:
            match = _CACHE_FILE.match(entry.name)
            if match:
                return int(match[1]) < generation or (int(match[1]) == generation and match[2] != token)
            return (entry.name.startswith(".") and entry.name.endswith(".tmp")
                    and time.time() - entry.stat().st_mtime > _STALE_TMP_SECONDS)

        delete_files(self.dir, stale)

    def _read_thumbnail(self, image_sha256: str) -> bytes | None:
        with self._connection() as conn:
            row = conn.execute("SELECT jpeg FROM gallery_thumbnails WHERE sha256 = %s", (image_sha256,)).fetchone()
        return None if row is None else bytes(row[0])

    def _write_thumbnail(self, image_sha256: str, jpeg: bytes) -> None:
        with self._connection() as conn:
            conn.execute("INSERT INTO gallery_thumbnails (sha256, jpeg) VALUES (%s, %s) "
                         "ON CONFLICT (sha256) DO UPDATE SET jpeg = excluded.jpeg", (image_sha256, jpeg))

    def _delete_thumbnails(self, image_hashes: list[str]) -> None:
        with self._connection() as conn:
            conn.execute("DELETE FROM gallery_thumbnails WHERE sha256 = ANY(%s)", (image_hashes,))


class GalleryWatch:
    """`LISTEN frbot_gallery` on a connection of its own (autocommit, outside the pool): `wait(timeout)` returns
    the generation a commit announced, or None when none came in `timeout` seconds. A connection that failed is
    opened again at the next `wait` (None meanwhile: the check before each search still holds)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None

    def wait(self, timeout: float) -> int | None:
        """Block up to `timeout` seconds for the next announced generation."""
        import psycopg

        try:
            if self._conn is None:
                self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5,
                                             application_name="frbot gallery watch")
                self._conn.execute(f"LISTEN {CHANNEL}")
            for notice in self._conn.notifies(timeout=timeout, stop_after=1):
                return int(notice.payload) if notice.payload.isdigit() else 0
            return None
        except psycopg.Error:
            self.close()
            time.sleep(min(timeout, 1.0))  # the database is away: the next beat tries again
            return None

    def close(self) -> None:
        """Stop listening."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
