"""The known-person gallery whatever holds it: the matrix of one generation in memory, the calibrated 1:N search,
the calibration, and each change committed as one new generation.

Where it is kept is a subclass's part (a few `_hooks`, below): `bot.faces.gallery.Gallery` keeps it under the
data dir (sqlite metadata, one .npy file per array and generation, thumbnails as files);
`bot.store.pg.gallery.PgGallery` keeps it in PostgreSQL with a local .npy cache. Both hold the same metadata
tables (meta, subjects, images), so the SQL here is written once, in what sqlite and PostgreSQL both speak:
`?` for a parameter and `{meta}`, `{subjects}`, `{images}` for the tables (`_sql` makes a dialect's text).

One change is one writer transaction (`_writing`): the new generation's arrays are staged as .npy files, its
calibration computed from them, the subclass stores both (`_publish`) and the metadata records the generation
and row count; the commit is the single point where the change happens, and readers pick it up on their next
`refresh()` (before every search).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from bot.faces import calibration, models
from bot.faces.search import MAX_K, squared_norms

DIM = 128
MANIFEST_HEADER = ["subject_id", "name", "record_ref", "image"]
ARRAYS = {"embeddings": np.float32, "row_subject": np.int32, "row_image": np.int64}
SHA = re.compile(r"^[0-9a-f]{64}$")
_COPY_ROWS = 65536  # rows copied per step when rewriting the matrix (bounded memory)
# dlib-resnet's near-duplicate distance (each model has its own: Model.near_duplicate).
NEAR_DUPLICATE_DISTANCE = models.get("dlib-resnet").near_duplicate
_REMOVED = ("subject_id", "name", "record_ref", "image_sha256", "source")
_IMAGE_OF_KEY = ("SELECT i.key, i.sha256, s.subject_id, s.name, s.record_ref FROM {images} i "
                 "JOIN {subjects} s ON s.key = i.subject_key WHERE i.key IN ({marks})")


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


def now() -> str:
    """UTC now as the gallery records it (seconds, Z)."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# ---------------------------------------------------------------- small crash-safe file helpers


def new_private_file(path: Path) -> None:
    """Create (or truncate) `path` with mode 0600 before anything writes to it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """A private temp file beside `path` to write; on a clean exit it is fsynced and renamed to `path`, on any
    failure deleted (readers see the whole file or none)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    new_private_file(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_npy(path: Path, dtype: Any, shape: tuple[int, ...], parts: Iterable[np.ndarray]) -> None:
    """Write an .npy of `shape` from consecutive row blocks, durably, without holding it all in memory."""
    with atomic_file(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        at = 0
        for part in parts:
            out[at : at + len(part)] = part
            at += len(part)
        if at != shape[0]:
            raise RuntimeError(f"wrote {at} rows of {shape[0]} to {path.name}")
        out.flush()
        del out


def delete_files(folder: Path, stale: Callable[[os.DirEntry], bool]) -> None:
    """Delete the files of `folder` that `stale` picks (one deleted meanwhile by another process is fine)."""
    for entry in os.scandir(folder):
        if stale(entry):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


def _blocks(array: np.ndarray, keep: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Rows of `array` (optionally only where `keep`), in bounded-size blocks."""
    for start in range(0, len(array), _COPY_ROWS):
        block = np.asarray(array[start : start + _COPY_ROWS])
        yield block if keep is None else block[keep[start : start + _COPY_ROWS]]


# ---------------------------------------------------------------- the gallery


class GalleryCore:
    """Search, list, change and stats of a gallery; a subclass says where it is kept (the `_hooks`).

    Safe to share between threads of one process; several processes may open the same gallery (one writes at a
    time; readers pick up a change on their next search via `refresh()`).
    """

    _TABLES: ClassVar[dict[str, str]] = {"meta": "meta", "subjects": "subjects", "images": "images"}
    _PARAM: ClassVar[str] = "?"
    dir: Path  # the local folder: the matrix files (or their cache) and scratch files

    def __init__(self) -> None:
        """Nothing loaded yet: the subclass opens its storage, then calls `refresh()`."""
        self._lock = threading.RLock()
        self._generation = -1
        self._loaded: tuple[int, str] = (-1, "")
        self._subject_count = 0
        self._calibration: calibration.Calibration | None = None
        self._scale = calibration.DLIB_RESNET

    # -------------------------------------------------------------- what a subclass provides

    def _connection(self) -> contextlib.AbstractContextManager[Any]:
        """A connection to the metadata: the writer's own transaction while this thread writes, else one that
        commits what it did when the block ends."""
        raise NotImplementedError

    def _writing(self) -> contextlib.AbstractContextManager[Any]:
        """One writer at a time, one transaction (committed on a clean exit, rolled back on any failure),
        refreshed to the newest generation first; after the commit the new generation is loaded and what it
        superseded is deleted. Yields the transaction's connection."""
        raise NotImplementedError

    def _arrays(self, generation: int, rows: int, meta: dict[str, str]) -> tuple[np.ndarray, ...]:
        """(embeddings, row_subject, row_image) of a committed generation, memory-mapped; FileNotFoundError
        when they are gone (superseded meanwhile: `refresh` reads the generation again)."""
        raise NotImplementedError

    def _staged_path(self, name: str, generation: int) -> Path:
        """Where the writer stages array `name` of the generation it is making."""
        raise NotImplementedError

    def _publish(self, conn: Any, generation: int, staged: dict[str, Path],
                 cal: calibration.Calibration | None) -> None:
        """Inside the writer's transaction: keep the staged arrays and the calibration of `generation`."""
        raise NotImplementedError

    def _stored_calibration(self, generation: int) -> calibration.Calibration | None:
        """The calibration kept for `generation`, or None when missing or unreadable."""
        raise NotImplementedError

    def _keep_calibration(self, cal: calibration.Calibration) -> None:
        """Keep a calibration made on open (best effort: it is derived data)."""
        raise NotImplementedError

    def _storage_stats(self) -> dict:
        """{"matrix_bytes", "metadata_bytes", "thumbnail_bytes", "thumbnails"} of the current generation."""
        raise NotImplementedError

    def _read_thumbnail(self, image_sha256: str) -> bytes | None:
        raise NotImplementedError

    def _write_thumbnail(self, image_sha256: str, jpeg: bytes) -> None:
        raise NotImplementedError

    def _delete_thumbnails(self, image_hashes: list[str]) -> None:
        raise NotImplementedError

    def thumbnail(self, image_sha256: str) -> bytes | None:
        """JPEG crop of an enrolled image's face (longer side 320 px; 160 px when enrolled before
        `gallery thumbnails --rebuild`), or None. Callers scale it to their tiles."""
        return self._read_thumbnail(image_sha256) if SHA.match(image_sha256 or "") else None

    def save_thumbnail(self, image_sha256: str, jpeg: bytes) -> None:
        """Keep the face thumbnail of an image (replacing one kept before)."""
        if not SHA.match(image_sha256):
            raise ValueError("not a SHA-256 hex digest")
        self._write_thumbnail(image_sha256, jpeg)

    def drop_thumbnails(self, image_hashes: Iterable[str]) -> None:
        """Delete the face crops of these images (removed, or never committed); missing ones are fine."""
        hashes = [sha for sha in image_hashes if SHA.match(sha)]
        if hashes:
            self._delete_thumbnails(hashes)

    def close(self) -> None:
        """Let go of what the gallery holds open (the matrix memmaps go with the object)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- SQL in both dialects

    def _sql(self, text: str, **fields: str) -> str:
        return text.format(**self._TABLES, **fields).replace("?", self._PARAM)

    def _q(self, conn: Any, text: str, args: Iterable[Any] = (), **fields: str) -> list[tuple]:
        """Run one statement; its rows ([] when it returns none)."""
        cur = conn.execute(self._sql(text, **fields), tuple(args))
        return list(cur.fetchall()) if cur.description else []

    def _many(self, conn: Any, text: str, rows: Iterable[tuple]) -> None:
        rows = list(rows)
        if rows:
            with contextlib.closing(conn.cursor()) as cur:
                cur.executemany(self._sql(text), rows)

    def _select_in(self, conn: Any, text: str, values: list) -> list[tuple]:
        """Rows of `text` whose `IN ({marks})` takes `values`, asked 500 at a time (sqlite's parameter limit)."""
        rows: list[tuple] = []
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            rows += self._q(conn, text, chunk, marks=",".join("?" * len(chunk)))
        return rows

    # -------------------------------------------------------------- loading

    def _meta(self) -> dict[str, str]:
        with self._connection() as conn:
            return dict(self._q(conn, "SELECT key, value FROM {meta}"))

    def _snapshot(self) -> tuple[dict[str, str], int]:
        """Meta and subject count of one commit (one statement: one snapshot in either database)."""
        with self._connection() as conn:
            meta = dict(self._q(conn, "SELECT key, value FROM {meta} UNION ALL "
                                      "SELECT '#subjects', CAST(COUNT(*) AS TEXT) FROM {subjects}"))
        return meta, int(meta.pop("#subjects"))

    def _current(self) -> tuple[int, str]:
        """(generation, token) in force: what `refresh` compares before every search (two rows by key)."""
        with self._connection() as conn:
            meta = dict(self._q(conn, "SELECT key, value FROM {meta} WHERE key IN ('generation', 'token')"))
        return int(meta["generation"]), meta.get("token", "")

    def refresh(self) -> bool:
        """Reload if another process changed the gallery since it was loaded (one tiny read otherwise).

        Returns True when a new generation was loaded.
        """
        with self._lock:
            if self._current() == self._loaded:
                return False
            for attempt in range(5):
                meta, subjects = self._snapshot()
                generation = int(meta["generation"])
                if (generation, meta.get("token", "")) == self._loaded:
                    return False
                try:
                    self._scale = self._scale_of(meta.get("model", ""))
                    self._load(generation, int(meta["rows"]), subjects, meta)
                    return True
                except FileNotFoundError as exc:
                    # A writer may have committed a newer generation and deleted this one meanwhile: re-read.
                    if self._current()[0] == generation:
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

    def _load(self, generation: int, rows: int, subjects: int, meta: dict[str, str]) -> None:
        if rows == 0:
            emb = np.zeros((0, DIM), dtype=np.float32)
            row_subject = np.zeros(0, dtype=np.int32)
            row_image = np.zeros(0, dtype=np.int64)
        else:
            emb, row_subject, row_image = self._arrays(generation, rows, meta)
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
        self._loaded = (generation, meta.get("token", ""))
        self._calibration = self._load_calibration(generation, subjects) if rows else None

    def _calibration_stats(self) -> dict | None:
        """The operating point without its target (a setting, which bot.cli.main adds), and the score version."""
        if self._calibration is None:
            return None
        point = self._calibration.operating_point(None)
        del point["target_fpir"]
        return {**point, "score": self._calibration.version}

    def _load_calibration(self, generation: int, subjects: int) -> calibration.Calibration:
        """The stored calibration of this generation, or a fresh one (kept) when missing, damaged or stale."""
        cal = self._stored_calibration(generation)
        if cal is not None and (cal.generation, cal.version, cal.gallery_size) == (
                generation, self._scale.version, subjects):
            return cal
        cal = calibration.calibrate(self._emb, self._sq_norms, self._row_subject, generation=generation,
                                    subjects=subjects, scale=self._scale)
        self._keep_calibration(cal)
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
            with self._connection() as conn:
                info = {row[0]: row[1:] for row in self._select_in(conn, _IMAGE_OF_KEY, keys)}
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
            with self._connection() as conn:
                keys = dict(self._select_in(conn, "SELECT sha256, key FROM {images} WHERE sha256 IN ({marks})",
                                            list(image_hashes)))
                names = dict(self._q(conn, "SELECT key, subject_id FROM {subjects}"))
            wanted = np.flatnonzero(np.isin(np.asarray(self._row_image), list(keys.values())))
            if wanted.size == 0:
                return []
            probes = np.asarray(self._emb[wanted])
            own = self._row_subject[wanted]
            dist, rows = calibration.neighbours(self._emb, self._sq_norms, self._row_subject, probes,
                                                exclude=own, k=1, scale=self._scale)
        pairs: dict[tuple[str, str], float] = {}
        for subject_key, d, row in zip(own, dist[:, 0], rows[:, 0]):
            if row < 0 or d >= max_distance:
                continue
            a, b = sorted((names[int(subject_key)], names[int(self._row_subject[row])]))
            pairs[(a, b)] = min(float(d), pairs.get((a, b), 9.0))
        return sorted(((a, b, round(d, 4)) for (a, b), d in pairs.items()), key=lambda t: t[2])

    def images(self, chunk: int = 1000) -> Iterator[dict]:
        """Every enrolled image in enrollment order: sha256, subject_id, name, record_ref, source, box (JSON
        text), enrolled_at, enrolled_by, subject_created_at and `encoding` (its stored float32 row). Read `chunk` images at a time, the lock held per chunk
        only; an image removed meanwhile is not yielded."""
        last, order, generation = 0, None, -1
        while True:
            with self._lock:
                self.refresh()
                if generation != self._generation:  # matrix rows by image key, once per generation
                    order, generation = np.argsort(self._row_image, kind="stable"), self._generation
                with self._connection() as conn:
                    rows = self._q(conn, "SELECT i.key, i.sha256, s.subject_id, s.name, s.record_ref, i.source, "
                                         "i.box, i.enrolled_at, i.enrolled_by, s.created_at FROM {images} i JOIN "
                                         "{subjects} s ON s.key = i.subject_key WHERE i.key > ? ORDER BY i.key "
                                         "LIMIT ?", (last, chunk))
                if not rows or not self._rows:
                    return
                last = rows[-1][0]
                keys = np.asarray([r[0] for r in rows], dtype=np.int64)
                at = np.minimum(np.searchsorted(self._row_image, keys, sorter=order), self._rows - 1)
                found = [(r, np.array(self._emb[m], dtype=np.float32)) for r, m in zip(rows, order[at])
                         if int(self._row_image[m]) == r[0]]
            names = ("key", "sha256", "subject_id", "name", "record_ref", "source", "box", "enrolled_at",
                     "enrolled_by", "subject_created_at")
            for row, encoding in found:
                yield {**dict(zip(names, row)), "encoding": encoding}

    def subjects(self) -> list[dict]:
        """Every subject: subject_id, name, record_ref, images (count), first_enrolled; by subject_id."""
        with self._lock, self._connection() as conn:
            rows = self._q(conn, "SELECT s.subject_id, s.name, s.record_ref, COUNT(i.key), MIN(i.enrolled_at) "
                                 "FROM {subjects} s LEFT JOIN {images} i ON i.subject_key = s.key GROUP BY s.key "
                                 "ORDER BY s.subject_id")
        keys = ("subject_id", "name", "record_ref", "images", "first_enrolled")
        return [dict(zip(keys, row)) for row in rows]

    def subject(self, subject_id: str) -> dict | None:
        """One subject as the gallery holds it now: subject_id, name, record_ref and `images` (the SHA-256 of each
        enrolled image, oldest first); None when it is not enrolled (removed, or never was)."""
        with self._lock, self._connection() as conn:
            rows = self._q(conn, "SELECT s.name, s.record_ref, i.sha256 FROM {subjects} s LEFT JOIN {images} i "
                                 "ON i.subject_key = s.key WHERE s.subject_id = ? ORDER BY i.key", (subject_id,))
        if not rows:
            return None
        return {"subject_id": subject_id, "name": rows[0][0], "record_ref": rows[0][1],
                "images": [sha for _, _, sha in rows if sha]}

    def image_owners(self, hashes: Iterable[str]) -> dict[str, str]:
        """{image_sha256: subject_id} for those of `hashes` already enrolled."""
        with self._lock, self._connection() as conn:
            return dict(self._select_in(conn, "SELECT i.sha256, s.subject_id FROM {images} i JOIN {subjects} s "
                                              "ON s.key = i.subject_key WHERE i.sha256 IN ({marks})", list(hashes)))

    def subject_images(self) -> dict[str, list[str]]:
        """{subject_id: [SHA-256 of each enrolled image]}: what `gallery sync` compares with its manifest."""
        with self._lock, self._connection() as conn:
            rows = self._q(conn, "SELECT s.subject_id, i.sha256 FROM {images} i "
                                 "JOIN {subjects} s ON s.key = i.subject_key")
        found: dict[str, list[str]] = {}
        for subject_id, sha in rows:
            found.setdefault(subject_id, []).append(sha)
        return found

    def stats(self) -> dict:
        """Sizes and dates: subjects, images, model, generation, stored bytes, first/last enrolled."""
        with self._lock:
            self.refresh()
            with self._connection() as conn:
                [(first, last)] = self._q(conn, "SELECT MIN(enrolled_at), MAX(enrolled_at) FROM {images}")
                meta = dict(self._q(conn, "SELECT key, value FROM {meta}"))
            storage = self._storage_stats()
        return {
            "subjects": self._subject_count,
            "images": self._rows,
            "model": meta.get("model", ""),
            "generation": self._generation,
            "first_enrolled": first,
            "last_enrolled": last,
            "calibration": self._calibration_stats(),
            "files": storage,
            "path": str(self.dir),
        }

    # -------------------------------------------------------------- writing

    def _commit(self, conn: Any, generation: int, rows: int,
                arrays: dict[str, tuple[tuple, Iterable[np.ndarray]]]) -> None:
        """Inside the writer's transaction: stage the new generation's arrays, calibrate it, have the subclass
        keep both, and record the generation (the transaction's commit, `_writing`'s, makes it current)."""
        staged: dict[str, Path] = {}
        cal = None
        if rows:
            for name, (shape, parts) in arrays.items():
                staged[name] = self._staged_path(name, generation)
                _write_npy(staged[name], ARRAYS[name], shape, parts)
            emb = np.load(staged["embeddings"], mmap_mode="r")
            row_subject = np.load(staged["row_subject"])
            [(subjects,)] = self._q(conn, "SELECT COUNT(*) FROM {subjects}")
            model = dict(self._q(conn, "SELECT key, value FROM {meta}")).get("model", "")
            cal = calibration.calibrate(emb, squared_norms(emb), row_subject, generation=generation,
                                        subjects=int(subjects), scale=self._scale_of(model))
        self._publish(conn, generation, staged, cal)
        self._q(conn, "UPDATE {meta} SET value = ? WHERE key = 'generation'", (str(generation),))
        self._q(conn, "UPDATE {meta} SET value = ? WHERE key = 'rows'", (str(rows),))

    def check_model(self, model: str) -> None:
        """Refuse to mix encodings of another face model into this gallery."""
        stored = self._meta().get("model")
        if stored and stored != model:
            raise GalleryError(
                f"the gallery was enrolled with face model {stored!r}, this engine uses {model!r}: "
                "encodings of different models cannot be compared; move the gallery with "
                f"`python -m bot gallery reencode --model {model.split()[0]}`"
            )

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
        unless added back. Nothing to change: no new generation.
        """
        images, remove_subjects = list(images), list(dict.fromkeys(remove_subjects))
        renames = {r["subject_id"]: r for r in renames}
        with self._writing() as conn:
            if images:
                self.check_model(model)
            known = dict(self._q(conn, "SELECT subject_id, key FROM {subjects}"))
            gone = [known[s] for s in remove_subjects if s in known]
            select = ("SELECT i.key, s.subject_id, s.name, s.record_ref, i.sha256, i.source FROM {images} i "
                      "JOIN {subjects} s ON s.key = i.subject_key WHERE ")
            found = self._select_in(conn, select + "i.subject_key IN ({marks})", gone)
            found += self._select_in(conn, select + "i.sha256 IN ({marks})", list(remove_images))
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
            self._many(conn, "DELETE FROM {images} WHERE key = ?", [(int(k),) for k in drop])
            self._many(conn, "DELETE FROM {subjects} WHERE key = ?", [(k,) for k in gone])
            self._many(conn, "UPDATE {subjects} SET name = ?, record_ref = ? WHERE key = ?", renamed)
            image_keys, new_subjects = self._insert(conn, model, list(subjects), images)
            n = int(keep.sum()) + len(images)
            self._commit(conn, self._generation + 1, n, {
                "embeddings": ((n, DIM), [*_blocks(self._emb, keep), encodings]),
                "row_subject": ((n,), [self._row_subject[keep], new_subjects]),
                "row_image": ((n,), [*_blocks(self._row_image, keep), image_keys]),
            })
        added = {im["sha256"] for im in images}
        self.drop_thumbnails(r[4] for r in removed if r[4] not in added)
        return [dict(zip(_REMOVED, r[1:])) for r in removed]

    def _insert(self, conn: Any, model: str, subjects: list[dict], images: list[dict]
                ) -> tuple[np.ndarray, np.ndarray]:
        """Inside `change`'s transaction: new subjects and images rows; (image keys, subject keys) per image."""
        if not images:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
        self._set_model(conn, model)
        at = now()
        self._many(conn, "INSERT INTO {subjects} (subject_id, name, record_ref, created_at) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (subject_id) DO NOTHING",
                   [(s["subject_id"], s["name"], s["record_ref"], s.get("created_at") or at) for s in subjects])
        subject_key = dict(self._q(conn, "SELECT subject_id, key FROM {subjects}"))
        [(first_key,)] = self._q(conn, "SELECT COALESCE(MAX(key), 0) + 1 FROM {images}")
        image_keys = np.arange(first_key, first_key + len(images), dtype=np.int64)
        self._many(conn, "INSERT INTO {images} (key, sha256, subject_key, source, box, enrolled_at, enrolled_by) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   [(int(key), im["sha256"], subject_key[im["subject_id"]], im["source"], im["box"],
                     im.get("enrolled_at") or at, im.get("actor", "")) for key, im in zip(image_keys, images)])
        return image_keys, np.array([subject_key[im["subject_id"]] for im in images], dtype=np.int32)

    def _set_model(self, conn: Any, model: str) -> None:
        self._q(conn, "INSERT INTO {meta} (key, value) VALUES ('model', ?) "
                      "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (model,))

    def replace_templates(self, model: str, templates: Callable[[list[str]], dict[str, tuple[np.ndarray, str]]],
                          *, before_commit: Callable[[], None] | None = None) -> tuple[list[dict], list[dict]]:
        """One commit whose generation holds another model's templates (`gallery reencode`), stored as `model`.

        Under the writer lock, `before_commit` runs first (it may encode what was enrolled meanwhile, or refuse
        by raising); then `templates` is asked for {sha256: (template, box JSON)} a chunk of enrolled images at
        a time. Every image it answers for keeps its row with the new template and box; every other image is
        removed with its crop, and so is a subject left with no image. Readers see the old generation until the
        commit, then the whole new one. Returns (images removed as `change` gives them, subjects removed:
        subject_id, name, record_ref)."""
        with self._writing() as conn:
            if before_commit is not None:
                before_commit()
            [(total,)] = self._q(conn, "SELECT COUNT(*) FROM {images}")
            tmp = self.dir / f".templates.{os.getpid()}.tmp"  # a crash leaves it to the next cleanup
            new_private_file(tmp)
            try:
                emb = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(max(int(total), 1), DIM))
                keys, subjects, boxes, dropped, last = [], [], [], [], 0
                while rows := self._q(conn, "SELECT key, subject_key, sha256 FROM {images} WHERE key > ? "
                                            "ORDER BY key LIMIT ?", (last, _COPY_ROWS)):
                    last, found = rows[-1][0], templates([r[2] for r in rows])
                    for key, subject, sha in rows:
                        if sha not in found:
                            dropped.append(key)
                            continue
                        emb[len(keys)] = np.asarray(found[sha][0], dtype=np.float32).reshape(DIM)
                        keys.append(key)
                        subjects.append(subject)
                        boxes.append((found[sha][1], key))
                removed = self._select_in(conn, "SELECT i.key, s.subject_id, s.name, s.record_ref, i.sha256, "
                                                "i.source, s.key FROM {images} i JOIN {subjects} s "
                                                "ON s.key = i.subject_key WHERE i.key IN ({marks})", dropped)
                gone = sorted({r[6] for r in removed} - set(subjects))
                left = self._select_in(conn, "SELECT subject_id, name, record_ref FROM {subjects} "
                                             "WHERE key IN ({marks})", gone)
                n = len(keys)
                self._many(conn, "DELETE FROM {images} WHERE key = ?", [(k,) for k in dropped])
                self._many(conn, "DELETE FROM {subjects} WHERE key = ?", [(k,) for k in gone])
                self._many(conn, "UPDATE {images} SET box = ? WHERE key = ?", boxes)
                self._set_model(conn, model)
                self._commit(conn, self._generation + 1, n, {
                    "embeddings": ((n, DIM), _blocks(emb[:n])),
                    "row_subject": ((n,), [np.asarray(subjects, dtype=np.int32)]),
                    "row_image": ((n,), [np.asarray(keys, dtype=np.int64)]),
                })
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        self.drop_thumbnails(r[4] for r in removed)
        return [dict(zip(_REMOVED, r[1:6])) for r in removed], [dict(zip(_REMOVED, r)) for r in left]
