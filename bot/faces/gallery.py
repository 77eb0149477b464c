"""The known-person gallery on disk (search, calibration and changes: bot.faces.gallery_core; enrollment:
bot.faces.enroll).

Layout under ``data_dir/gallery/`` (directory 0700, files 0600)::

    gallery.sqlite3              subjects, images, meta (generation, row count, model)
    embeddings-<gen>.npy         float32 N×128, memory-mapped for search
    row_subject-<gen>.npy        int32 N: subject key (subjects.key) of each matrix row
    row_image-<gen>.npy          int64 N: image key (images.key) of each matrix row
    calibration-<gen>.npz        the generation's null scores (bot.faces.calibration), written before its commit
    thumbs/<image_sha256>.jpg    the face crop of each enrolled image, 320 px (contact and comparison sheets)
    .lock                        held by whoever writes (CLI enroll, server remove)

Why sqlite and not tinydb for the metadata: tinydb keeps the whole database in one JSON document that it parses
on open and rewrites on every change; a 1 M-image gallery would take tens of seconds to load and to update.
sqlite (stdlib, one file, WAL) opens in milliseconds whatever its size, answers the few look-ups a search needs
by key, and commits atomically, so readers (the server) never see half a change.

Consistency: the matrix files of a generation are written in full (temp file, fsync, rename) before the sqlite
transaction that adds or removes the metadata and records the new generation and row count commits. That
commit is the single point where the change happens: a crash before it leaves the previous generation in
force (the orphan files are deleted by the next writer); a crash after it leaves the new one complete.
Opening checks that the files of the recorded generation exist and have the recorded row count, and refuses
with a clear message otherwise. A calibration that is missing, damaged or of another score version is
recomputed on open (it is derived data: nothing is lost).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bot.faces import calibration
from bot.faces.gallery_core import (
    ARRAYS,
    DIM,
    MANIFEST_HEADER,
    NEAR_DUPLICATE_DISTANCE,
    Candidate,
    GalleryCore,
    GalleryError,
    delete_files,
    new_private_file,
)
from bot.store.disk import ensure_private_dir, fsync_dir, write_private_atomic

__all__ = ["DB_NAME", "DIM", "GALLERY_DIR", "MANIFEST_HEADER", "NEAR_DUPLICATE_DISTANCE", "Candidate", "Gallery",
           "GalleryError"]

GALLERY_DIR = "gallery"
DB_NAME = "gallery.sqlite3"
_GEN_FILE = re.compile(r"^(embeddings|row_subject|row_image|calibration)-(\d+)\.np[yz]$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subjects (
    key INTEGER PRIMARY KEY,
    subject_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    record_ref TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    key INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    subject_key INTEGER NOT NULL REFERENCES subjects(key),
    source TEXT NOT NULL,
    box TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    enrolled_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS images_subject ON images(subject_key);
"""


class Gallery(GalleryCore):
    """The known-person gallery under ``data_dir/gallery/``: search, list, change, stats (GalleryCore).

    Safe to share between threads of one process; several processes may open the same gallery (one writes at a
    time, under a file lock; readers pick up a change on their next search via `refresh()`).
    """

    def __init__(self, data_dir: Path | str):
        """Open (creating if needed) the gallery of `data_dir`; raises GalleryError if its files disagree."""
        super().__init__()
        self.data_dir = Path(data_dir)
        self.dir = self.data_dir / GALLERY_DIR
        self.thumbs_dir = self.dir / "thumbs"
        ensure_private_dir(self.data_dir)
        ensure_private_dir(self.dir)
        ensure_private_dir(self.thumbs_dir)
        db_path = self.dir / DB_NAME
        if not db_path.exists():
            new_private_file(db_path)  # sqlite's -wal and -shm files copy this file's mode
        self._db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives power loss, so a deleted previous generation can never be needed again.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        if not self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone():
            # Only a new gallery needs the writer lock here: opening never waits for a running enrollment.
            with self._write_lock():
                self._db.executescript(_SCHEMA)
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0'), ('rows', '0')")
        self.refresh()

    def _path(self, name: str, generation: int) -> Path:
        return self.dir / f"{name}-{generation:06d}.npy"

    def _calibration_path(self, generation: int) -> Path:
        return self.dir / f"calibration-{generation:06d}.npz"

    # -------------------------------------------------------------- GalleryCore's hooks

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """The file lock, a sqlite transaction (rolled back on any failure), then the new generation loaded and
        every other generation's files deleted, still under the lock."""
        with self._write_lock():
            self.refresh()
            self._cleanup()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.OperationalError):
                    self._db.execute("ROLLBACK")
                raise
            self.refresh()
            self._cleanup()

    def _arrays(self, generation: int, rows: int, meta: dict[str, str]) -> tuple[np.ndarray, ...]:
        return tuple(np.load(self._path(name, generation), mmap_mode="r") for name in ARRAYS)

    def _staged_path(self, name: str, generation: int) -> Path:
        # The final name at once: until the commit no metadata names this generation, and a writer that died
        # before it leaves files the next writer deletes.
        return self._path(name, generation)

    def _publish(self, conn: Any, generation: int, staged: dict[str, Path],
                 cal: calibration.Calibration | None) -> None:
        if cal is not None:
            cal.save(self._calibration_path(generation))  # committed with its generation
            fsync_dir(self.dir)

    def _stored_calibration(self, generation: int) -> calibration.Calibration | None:
        try:
            return calibration.Calibration.load(self._calibration_path(generation))
        except (OSError, ValueError, KeyError):
            return None

    def _keep_calibration(self, cal: calibration.Calibration) -> None:
        with contextlib.suppress(OSError):  # a read-only gallery still searches, calibrated in memory
            cal.save(self._calibration_path(cal.generation))

    def _storage_stats(self) -> dict:
        matrix_bytes = sum(self._path(name, self._generation).stat().st_size
                           for name in ARRAYS if self._rows and self._path(name, self._generation).exists())
        thumbs = [entry.stat().st_size for entry in os.scandir(self.thumbs_dir) if entry.name.endswith(".jpg")]
        return {
            "matrix_bytes": matrix_bytes,
            "metadata_bytes": sum(p.stat().st_size for p in self.dir.glob(DB_NAME + "*")),
            "thumbnail_bytes": sum(thumbs),
            "thumbnails": len(thumbs),
        }

    # -------------------------------------------------------------- files

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        """One writer at a time across processes (flock on gallery/.lock) and threads."""
        with self._lock:
            fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def _cleanup(self) -> None:
        """Delete temp files and other generations' files (left by a crash or superseded). Writer lock held."""

        def stale(entry: os.DirEntry) -> bool:
            match = _GEN_FILE.match(entry.name)
            return (entry.name.startswith(".") and entry.name.endswith(".tmp")) or bool(
                match and int(match.group(2)) != self._generation)

        delete_files(self.dir, stale)

    def _read_thumbnail(self, image_sha256: str) -> bytes | None:
        try:
            return (self.thumbs_dir / f"{image_sha256}.jpg").read_bytes()
        except FileNotFoundError:
            return None

    def _write_thumbnail(self, image_sha256: str, jpeg: bytes) -> None:
        write_private_atomic(self.thumbs_dir / f"{image_sha256}.jpg", jpeg)  # 0600, atomic

    def _delete_thumbnails(self, image_hashes: list[str]) -> None:
        for sha in image_hashes:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.thumbs_dir / f"{sha}.jpg")

    def close(self) -> None:
        """Close the metadata database (the matrix memmaps go with the object)."""
        with self._lock:
            self._db.close()
