"""The known-person gallery on disk and its calibrated 1:N search (enrollment: bot.faces.enroll).

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
import dataclasses
import fcntl
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import numpy as np

from bot.faces import calibration, models
from bot.faces.search import MAX_K, squared_norms
from bot.store.disk import ensure_private_dir, fsync_dir, write_private_atomic

DIM = 128
GALLERY_DIR = "gallery"
DB_NAME = "gallery.sqlite3"
MANIFEST_HEADER = ["subject_id", "name", "record_ref", "image"]
_ARRAYS = {"embeddings": np.float32, "row_subject": np.int32, "row_image": np.int64}
_GEN_FILE = re.compile(r"^(embeddings|row_subject|row_image|calibration)-(\d+)\.np[yz]$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_COPY_ROWS = 65536  # rows copied per step when rewriting the matrix (bounded memory)
# dlib-resnet's near-duplicate distance (each model has its own: Model.near_duplicate).
NEAR_DUPLICATE_DISTANCE = models.get("dlib-resnet").near_duplicate

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


class GalleryError(Exception):
    """The gallery cannot be read or changed as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Candidate:
    """One ranked search result: a lead to investigate, never an identification."""

    rank: int  # from 1
    subject_id: str
    name: str
    record_ref: str
    distance: float
    image_sha256: str
    margin: float | None = None  # distance to the next subject minus this one's (None: no other near)
    score: float | None = None  # bot.faces.calibration.score: higher is a stronger candidate
    fpir_estimate: float | None = None  # chance a person not enrolled scores this well in this gallery
    below_resolution: bool = False  # no measured stranger scored this well: fpir_estimate is a bound

    def as_dict(self) -> dict:
        """JSON-ready form: rank, subject_id, name, record_ref, distance, image_sha256, margin, score,
        fpir_estimate, below_resolution."""
        return asdict(self)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# ---------------------------------------------------------------- small crash-safe file helpers


def _new_private_file(path: Path) -> None:
    """Create (or truncate) `path` with mode 0600 before anything writes to it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def _write_npy(path: Path, dtype: Any, shape: tuple[int, ...], parts: Iterable[np.ndarray]) -> None:
    """Write an .npy of `shape` from consecutive row blocks, durably, without holding it all in memory."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _new_private_file(tmp)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        at = 0
        for part in parts:
            out[at : at + len(part)] = part
            at += len(part)
        if at != shape[0]:
            raise RuntimeError(f"wrote {at} rows of {shape[0]} to {path.name}")
        out.flush()
        del out
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _blocks(array: np.ndarray, keep: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Rows of `array` (optionally only where `keep`), in bounded-size blocks."""
    for start in range(0, len(array), _COPY_ROWS):
        block = np.asarray(array[start : start + _COPY_ROWS])
        yield block if keep is None else block[keep[start : start + _COPY_ROWS]]


# ---------------------------------------------------------------- the gallery


class Gallery:
    """The known-person gallery under ``data_dir/gallery/``: search, list, remove, stats.

    Safe to share between threads of one process; several processes may open the same gallery (one writes at a
    time, under a file lock; readers pick up a change on their next search via `refresh()`).
    """

    def __init__(self, data_dir: Path | str):
        """Open (creating if needed) the gallery of `data_dir`; raises GalleryError if its files disagree."""
        self.data_dir = Path(data_dir)
        self.dir = self.data_dir / GALLERY_DIR
        self.thumbs_dir = self.dir / "thumbs"
        ensure_private_dir(self.data_dir)
        ensure_private_dir(self.dir)
        ensure_private_dir(self.thumbs_dir)
        db_path = self.dir / DB_NAME
        if not db_path.exists():
            _new_private_file(db_path)  # sqlite's -wal and -shm files copy this file's mode
        self._lock = threading.RLock()
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
        self._generation = -1
        self._subject_count = 0
        self._calibration: calibration.Calibration | None = None
        self._scale = calibration.DLIB_RESNET
        self.refresh()

    # -------------------------------------------------------------- loading

    def _meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def _snapshot(self) -> tuple[dict[str, str], int]:
        """Meta and subject count from one read transaction (both of the same commit)."""
        self._db.execute("BEGIN")
        try:
            meta = self._meta()
            subjects = self._db.execute("SELECT COUNT(*) FROM subjects").fetchone()[0]
        finally:
            self._db.execute("COMMIT")
        return meta, subjects

    def _path(self, name: str, generation: int) -> Path:
        return self.dir / f"{name}-{generation:06d}.npy"

    def refresh(self) -> bool:
        """Reload if another process changed the gallery since it was loaded (one tiny sqlite read otherwise).

        Returns True when a new generation was loaded.
        """
        with self._lock:
            for attempt in range(5):
                meta, subjects = self._snapshot()
                generation = int(meta["generation"])
                if generation == self._generation:
                    return False
                try:
                    self._scale = self._scale_of(meta.get("model", ""))
                    self._load(generation, int(meta["rows"]), subjects)
                    return True
                except FileNotFoundError as exc:
                    # A writer may have committed a newer generation and deleted this one meanwhile: re-read.
                    if int(self._meta()["generation"]) == generation:
                        raise GalleryError(
                            f"the gallery in {self.dir} is damaged: {Path(exc.filename).name} is missing for "
                            f"generation {generation}; restore the gallery directory from a backup or re-enroll"
                        ) from None
                    time.sleep(0.05 * (attempt + 1))
                except (ValueError, OSError) as exc:  # a truncated or foreign .npy
                    raise GalleryError(
                        f"the gallery in {self.dir} is damaged: the files of generation {generation} cannot be read "
                        f"({exc}); restore the gallery directory from a backup or re-enroll"
                    ) from None
            raise GalleryError("the gallery kept changing while it was being loaded; try again")

    def _scale_of(self, stored_model: str) -> calibration.Scale:
        """How the decision reads this gallery's distances: its model's scale (dlib-resnet's while empty)."""
        model_id = models.id_of_stored(stored_model)
        if not model_id:
            return calibration.DLIB_RESNET
        try:
            return models.get(model_id).scale
        except ValueError:
            raise GalleryError(f"the gallery in {self.dir} holds templates of a face model this version does not "
                               f"know ({stored_model!r}); run the version that enrolled it") from None

    @property
    def scale(self) -> calibration.Scale:
        """How the loaded generation's distances are read (its model's calibration.Scale)."""
        return self._scale

    def _load(self, generation: int, rows: int, subjects: int) -> None:
        if rows == 0:
            emb = np.zeros((0, DIM), dtype=np.float32)
            row_subject = np.zeros(0, dtype=np.int32)
            row_image = np.zeros(0, dtype=np.int64)
        else:
            emb = np.load(self._path("embeddings", generation), mmap_mode="r")
            row_subject = np.load(self._path("row_subject", generation), mmap_mode="r")
            row_image = np.load(self._path("row_image", generation), mmap_mode="r")
            shapes = (emb.shape, row_subject.shape, row_image.shape)
            if shapes != ((rows, DIM), (rows,), (rows,)) or emb.dtype != np.float32:
                raise GalleryError(
                    f"the gallery in {self.dir} is damaged: generation {generation} should hold {rows} rows but "
                    f"its files have shapes {shapes}; restore the gallery directory from a backup or re-enroll"
                )
        self._emb = emb
        self._row_subject = np.ascontiguousarray(row_subject)  # small (4 bytes a row): keep in memory
        self._row_image = row_image
        self._sq_norms = squared_norms(emb)  # also pulls the matrix into the page cache for the first search
        self._rows = rows
        self._subject_count = subjects
        self._generation = generation
        self._calibration = self._load_calibration(generation, subjects) if rows else None

    def _calibration_stats(self) -> dict | None:
        """The operating point without its target (a setting, which bot.cli.main adds), and the score version."""
        if self._calibration is None:
            return None
        point = self._calibration.operating_point(None)
        del point["target_fpir"]
        return {**point, "score": self._calibration.version}

    def _calibration_path(self, generation: int) -> Path:
        return self.dir / f"calibration-{generation:06d}.npz"

    def _load_calibration(self, generation: int, subjects: int) -> calibration.Calibration:
        """The stored calibration of this generation, or a fresh one (saved) when missing, damaged or stale."""
        path = self._calibration_path(generation)
        try:
            cal = calibration.Calibration.load(path)
            if (cal.generation, cal.version, cal.gallery_size) == (generation, self._scale.version, subjects):
                return cal
        except (OSError, ValueError, KeyError):
            pass
        cal = calibration.calibrate(self._emb, self._sq_norms, self._row_subject, generation=generation,
                                    subjects=subjects, scale=self._scale)
        with contextlib.suppress(OSError):  # a read-only gallery still searches, calibrated in memory
            cal.save(path)
        return cal

    # -------------------------------------------------------------- reading

    @property
    def subject_count(self) -> int:
        """Subjects in the gallery (what `gallery_size` reports)."""
        return self._subject_count

    @property
    def image_count(self) -> int:
        """Enrolled images (matrix rows)."""
        return self._rows

    @property
    def generation(self) -> int:
        """Increases by one with every committed change."""
        return self._generation

    @property
    def model(self) -> str:
        """Name of the face model the gallery was enrolled with ("" while empty)."""
        return self._meta().get("model", "")

    @property
    def model_id(self) -> str:
        """The id of the face model the gallery's templates came from ("" while empty)."""
        return models.id_of_stored(self.model)

    @property
    def calibration(self) -> calibration.Calibration | None:
        """The calibration of the loaded generation (None while the gallery is empty)."""
        return self._calibration

    def search(self, encoding: np.ndarray, *, threshold: float, max_candidates: int,
               target_fpir: float = 0.01) -> list[Candidate]:
        """The calibrated 1:N decision (bot.faces.calibration.decide): candidates closest first, one per subject,
        each within `threshold` and with a false-match estimate at most `target_fpir`; at most
        `max_candidates` (<= 20)."""
        return self.search_detail(encoding, threshold=threshold, max_candidates=max_candidates,
                                  target_fpir=target_fpir)[0]

    def search_detail(self, encoding: np.ndarray, *, threshold: float, max_candidates: int,
                      target_fpir: float = 0.01) -> tuple[list[Candidate], list[float], dict | None]:
        """As `search`, plus the closest subjects' distances (returned or not: for the audit) and the
        operating point ({"target_fpir","gallery_size","calibrated_at","method","sample_size"})."""
        k = min(max_candidates, MAX_K)
        with self._lock:
            self.refresh()
            if self._rows == 0 or self._calibration is None or k <= 0:
                return [], [], None
            cal = self._calibration
            p = np.asarray(encoding, dtype=np.float32).reshape(-1)
            d2 = self._emb @ p
            d2 *= -2.0
            d2 += self._sq_norms
            d2 += np.float32(p @ p)
            scale = self._scale
            dist, rows = calibration.neighbours(self._emb, self._sq_norms, self._row_subject, p,
                                                k=k + calibration.COHORT, d2=d2, scale=scale)
            decisions = calibration.decide(dist[0], rows[0], cal, target_fpir=target_fpir, threshold=threshold,
                                           max_candidates=k, horizon=scale.horizon)
            decisions = [self._with_margin(d, rows[0], d2, p) for d in decisions]
            nearest = [round(float(v), 4) for v, r in zip(dist[0], rows[0]) if r >= 0][: calibration.COHORT + 1]
            point = cal.operating_point(target_fpir)
            if not decisions:
                return [], nearest, point
            keys = [int(self._row_image[d.row]) for d in decisions]
            marks = ",".join("?" * len(keys))
            info = {
                row[0]: row[1:]
                for row in self._db.execute(
                    "SELECT i.key, i.sha256, s.subject_id, s.name, s.record_ref FROM images i "
                    f"JOIN subjects s ON s.key = i.subject_key WHERE i.key IN ({marks})",
                    keys,
                )
            }
        found = []
        for key, d in zip(keys, decisions):
            if key in info:  # a subject removed after this generation was loaded is not reported
                sha, subject_id, name, record_ref = info[key]
                found.append(Candidate(len(found) + 1, subject_id, name, record_ref, d.distance, sha,
                                       margin=d.margin, score=d.score, fpir_estimate=d.fpir_estimate,
                                       below_resolution=d.below_resolution))
        return found, nearest, point

    def _with_margin(self, d: calibration.Decision, rows: np.ndarray, d2: np.ndarray, p: np.ndarray
                     ) -> calibration.Decision:
        """A decision whose next subject lies beyond the neighbours looked at (beyond the horizon) gets its margin
        from the closest row of any subject not ranked above it (exact, float64). Only then: it costs one pass
        over the distances already computed."""
        if d.margin is not None:
            return d
        ranked = np.unique(self._row_subject[rows[(rows >= 0)][: d.rank]])
        others = ~np.isin(self._row_subject, ranked)
        if not others.any():
            return d  # nobody else in the gallery: margin stays None ("alone")
        row = int(np.flatnonzero(others)[np.argmin(d2[others])])
        diff = np.asarray(self._emb[row], dtype=np.float64) - p.astype(np.float64)
        nxt = float(self._scale.distance(diff @ diff))
        return dataclasses.replace(d, margin=nxt - d.distance)

    def near_duplicate_distance(self) -> float:
        """Under this distance two subjects may be one person enrolled twice (the gallery's model's figure)."""
        model_id = self.model_id
        return models.get(model_id).near_duplicate if model_id else NEAR_DUPLICATE_DISTANCE

    def near_duplicates(self, image_hashes: list[str], *, max_distance: float | None = None
                        ) -> list[tuple[str, str, float]]:
        """(subject, other subject, distance) for each of these enrolled images whose closest *other* subject
        is nearer than max_distance (None: the model's near-duplicate distance); each pair once, closest first."""
        with self._lock:
            self.refresh()
            if max_distance is None:
                max_distance = self.near_duplicate_distance()
            if not image_hashes or self._rows == 0:
                return []
            keys = dict(self._db.execute(
                f"SELECT sha256, key FROM images WHERE sha256 IN ({','.join('?' * len(image_hashes))})",
                image_hashes).fetchall())
            wanted = np.flatnonzero(np.isin(np.asarray(self._row_image), list(keys.values())))
            if wanted.size == 0:
                return []
            probes = np.asarray(self._emb[wanted])
            own = self._row_subject[wanted]
            dist, rows = calibration.neighbours(self._emb, self._sq_norms, self._row_subject, probes,
                                                exclude=own, k=1, scale=self._scale)
            names = dict(self._db.execute("SELECT key, subject_id FROM subjects").fetchall())
        pairs: dict[tuple[str, str], float] = {}
        for subject_key, d, row in zip(own, dist[:, 0], rows[:, 0]):
            if row < 0 or d >= max_distance:
                continue
            a, b = sorted((names[int(subject_key)], names[int(self._row_subject[row])]))
            pairs[(a, b)] = min(float(d), pairs.get((a, b), 9.0))
        return sorted(((a, b, round(d, 4)) for (a, b), d in pairs.items()), key=lambda t: t[2])

    def thumbnail(self, image_sha256: str) -> bytes | None:
        """JPEG crop of an enrolled image's face (longer side 320 px; 160 px when enrolled before
        `gallery thumbnails --rebuild`), or None. Callers scale it to their tiles."""
        if not _SHA.match(image_sha256 or ""):
            return None
        try:
            return (self.thumbs_dir / f"{image_sha256}.jpg").read_bytes()
        except FileNotFoundError:
            return None

    def images(self, chunk: int = 1000) -> Iterator[dict]:
        """Every enrolled image in enrollment order: sha256, subject_id, name, record_ref, source, box (JSON
        text) and `encoding` (its stored float32 row). Read `chunk` images at a time, the lock held per chunk
        only; an image removed meanwhile is not yielded."""
        last, order, generation = 0, None, -1
        while True:
            with self._lock:
                self.refresh()
                if generation != self._generation:  # matrix rows by image key, once per generation
                    order, generation = np.argsort(self._row_image, kind="stable"), self._generation
                rows = self._db.execute(
                    "SELECT i.key, i.sha256, s.subject_id, s.name, s.record_ref, i.source, i.box FROM images i "
                    "JOIN subjects s ON s.key = i.subject_key WHERE i.key > ? ORDER BY i.key LIMIT ?",
                    (last, chunk)).fetchall()
                if not rows or not self._rows:
                    return
                last = rows[-1][0]
                keys = np.asarray([r[0] for r in rows], dtype=np.int64)
                at = np.minimum(np.searchsorted(self._row_image, keys, sorter=order), self._rows - 1)
                found = [(r, np.array(self._emb[m], dtype=np.float32)) for r, m in zip(rows, order[at])
                         if int(self._row_image[m]) == r[0]]
            names = ("key", "sha256", "subject_id", "name", "record_ref", "source", "box")
            for row, encoding in found:
                yield {**dict(zip(names, row)), "encoding": encoding}

    def subjects(self) -> list[dict]:
        """Every subject: subject_id, name, record_ref, images (count), first_enrolled; by subject_id."""
        with self._lock:
            rows = self._db.execute(
                "SELECT s.subject_id, s.name, s.record_ref, COUNT(i.key), MIN(i.enrolled_at) FROM subjects s "
                "LEFT JOIN images i ON i.subject_key = s.key GROUP BY s.key ORDER BY s.subject_id"
            ).fetchall()
        keys = ("subject_id", "name", "record_ref", "images", "first_enrolled")
        return [dict(zip(keys, row)) for row in rows]

    def image_owners(self, hashes: Iterable[str]) -> dict[str, str]:
        """{image_sha256: subject_id} for those of `hashes` already enrolled."""
        hashes = list(hashes)
        owners: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(hashes), 500):
                chunk = hashes[start : start + 500]
                owners.update(
                    self._db.execute(
                        "SELECT i.sha256, s.subject_id FROM images i JOIN subjects s ON s.key = i.subject_key "
                        f"WHERE i.sha256 IN ({','.join('?' * len(chunk))})",
                        chunk,
                    ).fetchall()
                )
        return owners

    def subject_images(self) -> dict[str, list[str]]:
        """{subject_id: [SHA-256 of each enrolled image]}: what `gallery sync` compares with its manifest."""
        with self._lock:
            rows = self._db.execute(
                "SELECT s.subject_id, i.sha256 FROM images i JOIN subjects s ON s.key = i.subject_key").fetchall()
        found: dict[str, list[str]] = {}
        for subject_id, sha in rows:
            found.setdefault(subject_id, []).append(sha)
        return found

    def stats(self) -> dict:
        """Sizes and dates: subjects, images, model, generation, file sizes in bytes, first/last enrolled."""
        with self._lock:
            self.refresh()
            first, last = self._db.execute("SELECT MIN(enrolled_at), MAX(enrolled_at) FROM images").fetchone()
            meta = self._meta()
        matrix_bytes = sum(
            self._path(name, self._generation).stat().st_size
            for name in _ARRAYS
            if self._rows and self._path(name, self._generation).exists()
        )
        db_bytes = sum(p.stat().st_size for p in self.dir.glob(DB_NAME + "*"))
        thumbs = [entry.stat().st_size for entry in os.scandir(self.thumbs_dir) if entry.name.endswith(".jpg")]
        return {
            "subjects": self._subject_count,
            "images": self._rows,
            "model": meta.get("model", ""),
            "generation": self._generation,
            "first_enrolled": first,
            "last_enrolled": last,
            "calibration": self._calibration_stats(),
            "files": {
                "matrix_bytes": matrix_bytes,
                "metadata_bytes": db_bytes,
                "thumbnail_bytes": sum(thumbs),
                "thumbnails": len(thumbs),
            },
            "path": str(self.dir),
        }

    # -------------------------------------------------------------- writing

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        """One writer at a time across processes (flock on gallery/.lock) and threads."""
        with self._lock:
            lock_path = self.dir / ".lock"
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def _cleanup(self) -> None:
        """Delete temp files and other generations' files (left by a crash or superseded). Writer lock held."""
        for entry in os.scandir(self.dir):
            match = _GEN_FILE.match(entry.name)
            stale_tmp = entry.name.startswith(".") and entry.name.endswith(".tmp")
            if stale_tmp or (match and int(match.group(2)) != self._generation):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)

    def _commit(self, generation: int, rows: int, arrays: dict[str, tuple[tuple, Iterable[np.ndarray]]]) -> None:
        """Inside an open sqlite transaction: write the new generation's files, record it, commit."""
        for name, (shape, parts) in arrays.items():
            if rows:
                _write_npy(self._path(name, generation), _ARRAYS[name], shape, parts)
        if rows:
            # The calibration of the new generation, committed with it (a crash before COMMIT leaves an orphan).
            emb = np.load(self._path("embeddings", generation), mmap_mode="r")
            row_subject = np.load(self._path("row_subject", generation))
            subjects = int(self._db.execute("SELECT COUNT(*) FROM subjects").fetchone()[0])
            calibration.calibrate(emb, squared_norms(emb), row_subject, generation=generation,
                                  subjects=subjects).save(self._calibration_path(generation))
            fsync_dir(self.dir)
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (str(generation),))
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'rows'", (str(rows),))
        self._db.execute("COMMIT")

    def check_model(self, model: str) -> None:
        """Refuse to mix encodings of another face model into this gallery."""
        stored = self._meta().get("model")
        if stored and stored != model:
            raise GalleryError(
                f"the gallery was enrolled with face model {stored!r}, this engine uses {model!r}: "
                "encodings of different models cannot be compared; move the gallery with "
                f"`python -m bot gallery reencode --model {model.split()[0]}`"
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One change: a sqlite transaction that `_commit` (matrix files, then COMMIT) ends, rolled back on any
        failure; afterwards this object reloads the new generation and leftovers are removed."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.OperationalError):
                self._db.execute("ROLLBACK")
            raise
        self.refresh()
        self._cleanup()

    def add_images(self, model: str, subjects: list[dict], images: list[dict], encodings: np.ndarray) -> None:
        """Add `images` (dicts: sha256, subject_id, source, box, actor) with their `encodings` in one commit.

        `subjects` (dicts: subject_id, name, record_ref) are created when new. Used by `enroll`.
        """
        self.change(model, subjects=subjects, images=images, encodings=encodings)

    def remove(self, subject_id: str, *, audit: Any = None, actor: str = "") -> int:
        """Remove a subject and all its images (matrix rewritten, thumbnails deleted); returns images removed.

        Returns 0 when no such subject exists. With `audit`, appends one `gallery_change` entry per image removed.
        """
        removed = self.change("", remove_subjects=[subject_id],
                              before_commit=None if audit is None else audit.check_writable)
        for image in removed if audit is not None else ():
            # Name and record stay in the log, so past searches naming this subject remain explainable.
            audit.append("gallery_change", action="remove", actor=actor, **image)
        return len(removed)

    def change(
        self,
        model: str,
        *,
        subjects: Iterable[dict] = (),
        images: Iterable[dict] = (),
        encodings: np.ndarray | None = None,
        remove_subjects: Iterable[str] = (),
        remove_images: Iterable[str] = (),
        renames: Iterable[dict] = (),
        before_commit: Callable[[], None] | None = None,
    ) -> list[dict]:
        """One change, one commit: remove subjects (with every image) and single images (by SHA-256), rename
        subjects (`renames`: subject_id, name, record_ref), create `subjects` (same keys; existing ones kept) and
        add `images` (sha256, subject_id, source, box, actor) with their `encodings`.

        Removals come first, so an image may move to another subject. `before_commit` runs under the writer lock
        once there is something to change (e.g. the audit log's check that it can record it). Returns the images
        removed (subject_id, name, record_ref, image_sha256, source); their crops are deleted after the commit
        unless added back. Nothing to change: no commit.
        """
        images, remove_subjects = list(images), list(dict.fromkeys(remove_subjects))
        renames = {r["subject_id"]: r for r in renames}
        with self._write_lock():
            self.refresh()
            self._cleanup()
            if images:
                self.check_model(model)
            known = dict(self._db.execute("SELECT subject_id, key FROM subjects").fetchall())
            gone = [known[s] for s in remove_subjects if s in known]
            select = ("SELECT i.key, s.subject_id, s.name, s.record_ref, i.sha256, i.source FROM images i "
                      "JOIN subjects s ON s.key = i.subject_key WHERE ")
            found = self._select_in(select + "i.subject_key IN ({marks})", gone)
            found += self._select_in(select + "i.sha256 IN ({marks})", list(remove_images))
            removed = list({r[0]: r for r in found}.values())  # an image of a removed subject named again: once
            renamed = [(r["name"], r["record_ref"], known[s]) for s, r in renames.items() if s in known]
            if not (images or gone or removed or renamed):
                return []
            if before_commit is not None:
                before_commit()
            drop = np.asarray([r[0] for r in removed], dtype=np.int64)
            keep = ~np.isin(np.asarray(self._row_image), drop)
            if images:
                encodings = np.asarray(encodings, dtype=np.float32).reshape(len(images), DIM)
            else:
                encodings = np.zeros((0, DIM), dtype=np.float32)
            with self._transaction():
                self._db.executemany("DELETE FROM images WHERE key = ?", [(int(k),) for k in drop])
                self._db.executemany("DELETE FROM subjects WHERE key = ?", [(k,) for k in gone])
                self._db.executemany("UPDATE subjects SET name = ?, record_ref = ? WHERE key = ?", renamed)
                image_keys, new_subjects = self._insert(model, list(subjects), images)
                n = int(keep.sum()) + len(images)
                self._commit(
                    self._generation + 1,
                    n,
                    {
                        "embeddings": ((n, DIM), [*_blocks(self._emb, keep), encodings]),
                        "row_subject": ((n,), [self._row_subject[keep], new_subjects]),
                        "row_image": ((n,), [*_blocks(self._row_image, keep), image_keys]),
                    },
                )
        added = {im["sha256"] for im in images}
        self.drop_thumbnails(r[4] for r in removed if r[4] not in added)
        names = ("subject_id", "name", "record_ref", "image_sha256", "source")
        return [dict(zip(names, r[1:])) for r in removed]

    def _select_in(self, sql: str, values: list) -> list[tuple]:
        """Rows of `sql` whose `IN ({marks})` takes `values`, asked 500 at a time (sqlite's parameter limit)."""
        rows: list[tuple] = []
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            rows += self._db.execute(sql.format(marks=",".join("?" * len(chunk))), chunk).fetchall()
        return rows

    def _insert(self, model: str, subjects: list[dict], images: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        """Inside `change`'s transaction: new subjects and images rows; (image keys, subject keys) per image."""
        if not images:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('model', ?)", (model,))
        now = _now()
        self._db.executemany(
            "INSERT OR IGNORE INTO subjects (subject_id, name, record_ref, created_at) VALUES (?, ?, ?, ?)",
            [(s["subject_id"], s["name"], s["record_ref"], now) for s in subjects],
        )
        subject_key = dict(self._db.execute("SELECT subject_id, key FROM subjects").fetchall())
        first_key = self._db.execute("SELECT COALESCE(MAX(key), 0) + 1 FROM images").fetchone()[0]
        image_keys = np.arange(first_key, first_key + len(images), dtype=np.int64)
        self._db.executemany(
            "INSERT INTO images (key, sha256, subject_key, source, box, enrolled_at, enrolled_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (int(key), im["sha256"], subject_key[im["subject_id"]], im["source"], im["box"], now,
                 im.get("actor", ""))
                for key, im in zip(image_keys, images)
            ],
        )
        return image_keys, np.array([subject_key[im["subject_id"]] for im in images], dtype=np.int32)

    def replace_templates(self, model: str, templates: Callable[[list[str]], dict[str, tuple[np.ndarray, str]]],
                          *, before_commit: Callable[[], None] | None = None) -> tuple[list[dict], list[dict]]:
        """One commit whose generation holds another model's templates (`gallery reencode`), stored as `model`.

        Under the writer lock, `before_commit` runs first (it may encode what was enrolled meanwhile, or refuse
        by raising); then `templates` is asked for {sha256: (template, box JSON)} a chunk of enrolled images at
        a time. Every image it answers for keeps its row with the new template and box; every other image is
        removed with its crop, and so is a subject left with no image. Readers see the old generation until the
        commit, then the whole new one. Returns (images removed as `change` gives them, subjects removed:
        subject_id, name, record_ref)."""
        with self._write_lock():
            self.refresh()
            self._cleanup()
            if before_commit is not None:
                before_commit()
            total = int(self._db.execute("SELECT COUNT(*) FROM images").fetchone()[0])
            tmp = self.dir / f".templates.{os.getpid()}.tmp"  # a crash leaves it to _cleanup
            _new_private_file(tmp)
            try:
                emb = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(max(total, 1), DIM))
                keys, subjects, boxes, dropped, last = [], [], [], [], 0
                while rows := self._db.execute("SELECT key, subject_key, sha256 FROM images WHERE key > ? ORDER BY "
                                               "key LIMIT ?", (last, _COPY_ROWS)).fetchall():
                    last, found = rows[-1][0], templates([r[2] for r in rows])
                    for key, subject, sha in rows:
                        if sha not in found:
                            dropped.append(key)
                            continue
                        emb[len(keys)] = np.asarray(found[sha][0], dtype=np.float32).reshape(DIM)
                        keys.append(key)
                        subjects.append(subject)
                        boxes.append((found[sha][1], key))
                removed = self._select_in("SELECT i.key, s.subject_id, s.name, s.record_ref, i.sha256, i.source, "
                                          "s.key FROM images i JOIN subjects s ON s.key = i.subject_key WHERE i.key IN "
                                          "({marks})", dropped)
                gone = sorted({r[6] for r in removed} - set(subjects))
                left = self._select_in("SELECT subject_id, name, record_ref FROM subjects WHERE key IN ({marks})", gone)
                n = len(keys)
                with self._transaction():
                    self._db.executemany("DELETE FROM images WHERE key = ?", [(k,) for k in dropped])
                    self._db.executemany("DELETE FROM subjects WHERE key = ?", [(k,) for k in gone])
                    self._db.executemany("UPDATE images SET box = ? WHERE key = ?", boxes)
                    self._db.execute("INSERT OR REPLACE INTO meta VALUES ('model', ?)", (model,))
                    self._commit(self._generation + 1, n, {
                        "embeddings": ((n, DIM), _blocks(emb[:n])),
                        "row_subject": ((n,), [np.asarray(subjects, dtype=np.int32)]),
                        "row_image": ((n,), [np.asarray(keys, dtype=np.int64)]),
                    })
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        self.drop_thumbnails(r[4] for r in removed)
        names = ("subject_id", "name", "record_ref", "image_sha256", "source")
        return [dict(zip(names, r[1:6])) for r in removed], [dict(zip(names, r)) for r in left]

    def save_thumbnail(self, image_sha256: str, jpeg: bytes) -> None:
        """Keep the face thumbnail of an image (0600, atomic)."""
        if not _SHA.match(image_sha256):
            raise ValueError("not a SHA-256 hex digest")
        write_private_atomic(self.thumbs_dir / f"{image_sha256}.jpg", jpeg)

    def drop_thumbnails(self, image_hashes: Iterable[str]) -> None:
        """Delete the face crops of these images (removed, or never committed); missing ones are fine."""
        for sha in image_hashes:
            if _SHA.match(sha):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.thumbs_dir / f"{sha}.jpg")

    def close(self) -> None:
        """Close the metadata database (the matrix memmaps go with the object)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
