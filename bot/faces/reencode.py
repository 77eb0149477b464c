"""`gallery reencode --model ID`: the gallery's templates made again with another face model, from the recorded
source images, committed as one new generation (issue 16, item 5; CONTRACTS ### 12).

- Each enrolled image is read from its recorded source as `thumbnails --rebuild` reads it (bot.faces.sources)
  and used only while its SHA-256 is the enrolled one. The new model finds the photo's faces in the engine's
  workers; the face encoded is the one whose box overlaps the stored box (`images.box`) by at least MIN_IOU,
  intersection over union (the best one when several do). Both boxes are in pixels of the photo decoded and
  turned upright by its EXIF orientation: enrollment stored `Face.box`, the box every model reports in that
  frame. Anything else is skipped and listed with a sentence.
- Progress is kept with the gallery (`data_dir/gallery/reencode.sqlite3`, 0600): every template as it is made,
  committed (fsynced) every BATCH images or FLUSH_SECONDS. Stopped by Ctrl-C or a kill, the next run goes on
  from there and says so. A template depends only on the image's bytes and the model (and the image settings
  that steer detection), so what is done stays valid whatever else changed in the gallery meanwhile; the file
  starts again when those differ, and is deleted once the new generation is committed.
- The old generation serves searches all along: nothing in the gallery changes until the end, one commit
  (Gallery.replace_templates) under the writer lock, held for that commit only. Enrollment and removal may go on
  meanwhile: images enrolled meanwhile are encoded in passes before the commit, and the last ones under the
  lock itself, so no change is lost; images removed meanwhile are not in the new generation.
- More than MAX_SKIPPED_SHARE of the images skipped: nothing is committed without `yes`.
- One `gallery_change` audit entry, action "reencode": the model that replaced which ({id, version,
  weights_sha256, runtime} each), the counts, every image skipped and why, every subject removed.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot import wording
from bot.faces import models
from bot.faces.enroll import box_json, interrupt_deferred
from bot.faces.gallery import DIM, Gallery, GalleryError
from bot.faces.sources import SourceIssue, enrolled_bytes, issue

MIN_IOU = 0.3  # CONTRACTS ### 12: the face used overlaps the stored box by at least this
MAX_SKIPPED_SHARE = 0.10  # more of the images skipped than this needs --yes
PROGRESS_FILE = "reencode.sqlite3"
LOCK_FILE = ".reencode.lock"
BATCH = 64  # templates per progress commit (a kill loses at most these, or FLUSH_SECONDS of work)
FLUSH_SECONDS = 2.0
CATCH_UP_PASSES = 3  # passes for images enrolled meanwhile before the commit; the rest under the lock
_CHUNK = 500  # SHA-256s asked of the progress file at a time (sqlite's parameter limit)


@dataclass
class ReencodeReport:
    """What one `gallery reencode` run did."""

    model_from: dict  # {id, version, weights_sha256, runtime} of the templates replaced
    model_to: dict  # ... of the templates made
    images: int = 0  # enrolled images (at the commit, when there was one)
    reencoded: int = 0  # images in the new generation
    resumed: int = 0  # images an earlier run had done, not analysed again
    analysed: int = 0  # images whose source this run read and analysed (what the speed counts)
    skipped: list[SourceIssue] = field(default_factory=list)
    subjects_removed: list[dict] = field(default_factory=list)  # subject_id, name, record_ref
    refused: bool = False  # more than MAX_SKIPPED_SHARE skipped and no --yes: nothing committed
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        """Images this run analysed, a second."""
        return self.analysed / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


# ---------------------------------------------------------------- the pure decisions


def iou(a: Mapping[str, int], b: Mapping[str, int]) -> float:
    """Intersection over union of two boxes {"top","right","bottom","left"}: 0 apart, 1 the same box."""
    width = min(a["right"], b["right"]) - max(a["left"], b["left"])
    height = min(a["bottom"], b["bottom"]) - max(a["top"], b["top"])
    if width <= 0 or height <= 0:
        return 0.0

    def area(box: Mapping[str, int]) -> int:
        return max(0, box["right"] - box["left"]) * max(0, box["bottom"] - box["top"])

    union = area(a) + area(b) - width * height
    return width * height / union if union > 0 else 0.0


def choose_face(stored_box: Mapping[str, int], faces: Sequence[Any], min_iou: float = MIN_IOU
                ) -> tuple[Any | None, float]:
    """(the face whose `.box` overlaps `stored_box` most, or None when none does by `min_iou`; the best overlap)."""
    scored = [(iou(stored_box, face.box.as_dict()), face) for face in faces]
    best, face = max(scored, key=lambda t: t[0], default=(0.0, None))
    return (face if best >= min_iou else None), best


def needs_yes(skipped: int, images: int, max_share: float = MAX_SKIPPED_SHARE) -> bool:
    """Whether skipping `skipped` of `images` is more than may be done without confirmation."""
    return images > 0 and skipped / images > max_share


def refusal(gallery_model_id: str, images: int, target: str) -> str | None:
    """Why a reencode to `target` cannot start on this gallery (a sentence), or None."""
    if images == 0:
        return wording.gallery_reencode_empty(target)
    if gallery_model_id == target:
        return wording.gallery_reencode_same_model(target)
    return None


def model_record(model_id: str) -> dict:
    """{id, version, weights_sha256, runtime} of a model; a stored name no model has any more is kept as its id."""
    return models.record(model_id) if model_id in models.IDS else {"id": model_id}


# ---------------------------------------------------------------- progress kept with the gallery


class Progress:
    """The templates a reencode has made so far (see the module docstring): {sha256: template and box, or the
    reason no face could be used}, in `gallery/reencode.sqlite3`. One run at a time holds it (a lock file)."""

    def __init__(self, gallery_dir: Path, recipe: Mapping[str, Any]) -> None:
        self.path = Path(gallery_dir) / PROGRESS_FILE
        self._lock_fd = os.open(Path(gallery_dir) / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise GalleryError(wording.gallery_reencode_running()) from None
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))  # sqlite's -wal copies this mode
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a commit is on disk: what it holds is never encoded again
        self._db.executescript(
            "CREATE TABLE IF NOT EXISTS recipe (value TEXT NOT NULL);"
            "CREATE TABLE IF NOT EXISTS done (sha256 TEXT PRIMARY KEY, template BLOB, box TEXT, reason TEXT);")
        text = json.dumps(dict(recipe), sort_keys=True)
        if self._db.execute("SELECT value FROM recipe").fetchall() != [(text,)]:
            # Another model or other detection settings: what was made cannot be used.
            self._db.executescript("BEGIN; DELETE FROM done; DELETE FROM recipe;")
            self._db.execute("INSERT INTO recipe VALUES (?)", (text,))
            self._db.execute("COMMIT")
        self._pending = 0
        self._flushed = time.monotonic()

    def _in(self, sql: str, shas: list[str]) -> Iterator[tuple]:
        for start in range(0, len(shas), _CHUNK):
            chunk = shas[start : start + _CHUNK]
            yield from self._db.execute(sql.format(marks=",".join("?" * len(chunk))), chunk)

    def known(self, shas: list[str]) -> set[str]:
        """Those of `shas` decided already (a template made, or no face to use)."""
        return {row[0] for row in self._in("SELECT sha256 FROM done WHERE sha256 IN ({marks})", shas)}

    def templates(self, shas: list[str]) -> dict[str, tuple[np.ndarray, str]]:
        """{sha256: (template, box JSON)} for those of `shas` with a template."""
        return {sha: (np.frombuffer(blob, dtype=np.float32).copy(), box) for sha, blob, box in self._in(
            "SELECT sha256, template, box FROM done WHERE template IS NOT NULL AND sha256 IN ({marks})", shas)}

    def reasons(self, shas: list[str]) -> dict[str, str]:
        """{sha256: why no face could be used} for those of `shas` decided without a template."""
        return dict(self._in("SELECT sha256, reason FROM done WHERE template IS NULL AND sha256 IN ({marks})", shas))

    def add(self, sha: str, template: np.ndarray | None, box: str | None, reason: str = "") -> None:
        """Keep one image's outcome; committed to disk every BATCH images or FLUSH_SECONDS."""
        if not self._pending:
            self._db.execute("BEGIN")
        blob = None if template is None else np.asarray(template, dtype=np.float32).reshape(DIM).tobytes()
        self._db.execute("INSERT OR REPLACE INTO done VALUES (?, ?, ?, ?)", (sha, blob, box, reason))
        self._pending += 1
        if self._pending >= BATCH or time.monotonic() - self._flushed >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Commit what was added (fsynced)."""
        if self._pending:
            self._db.execute("COMMIT")
            self._pending = 0
        self._flushed = time.monotonic()

    def close(self, *, delete: bool = False) -> None:
        """Commit, close, release the run's lock; `delete`: the progress file goes too (its generation is in)."""
        with contextlib.suppress(sqlite3.Error):
            self.flush()
        self._db.close()
        if delete:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
        os.close(self._lock_fd)


# ---------------------------------------------------------------- the run


def _chunks(images: Iterable[dict], size: int = _CHUNK) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for image in images:
        chunk.append(image)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _NeedsYes(Exception):
    """Raised under the writer lock when too many images would be skipped: nothing is committed."""


class _Run:
    """One reencode: the engine's workers fill the progress file; `commit` makes the new generation."""

    def __init__(self, gallery: Gallery, engine: Any, kept: Progress, report: ReencodeReport, *, bar: Any = None,
                 on_progress: Callable[[int], None] | None = None) -> None:
        self.gallery, self.engine, self.kept, self.report, self.bar = gallery, engine, kept, report, bar
        self.on_progress = on_progress
        self.issues: dict[str, SourceIssue] = {}  # this run's: unreadable, changed, not analysed (tried again next run)

    def todo(self) -> Iterator[dict]:
        """The enrolled images neither decided (an earlier pass or run) nor failed in this run, as they are now."""
        for chunk in _chunks(self.gallery.images()):
            known = self.kept.known([im["sha256"] for im in chunk])
            yield from (im for im in chunk if im["sha256"] not in known and im["sha256"] not in self.issues)

    def encode(self, images: Iterable[dict]) -> int:
        """Analyse `images` with the engine's model, keeping each outcome; how many were looked at."""
        from bot.faces.images import ImageError

        inflight: dict[str, dict] = {}
        seen = 0

        def tracked() -> Iterator[dict]:
            nonlocal seen
            for image in images:
                seen += 1
                inflight[image["sha256"]] = image
                yield image

        def unread(image: dict, reason: str) -> None:
            inflight.pop(image["sha256"], None)
            self.issues[image["sha256"]] = issue(image, reason)
            self.bar.update(1)

        for sha, result in self.engine.analyse_many(enrolled_bytes(tracked(), unread)):
            image = inflight.pop(sha)
            self.report.analysed += 1
            self.bar.update(1)
            if isinstance(result, BaseException):
                reason = result.message if isinstance(result, ImageError) else str(result)
                self.issues[sha] = issue(image, wording.gallery_source_unanalysed(reason))
                continue
            face, best = choose_face(json.loads(image["box"]), result.faces)
            if face is None:
                self.kept.add(sha, None, None, wording.gallery_reencode_no_overlap(len(result.faces), best, MIN_IOU))
            else:
                self.kept.add(sha, face.encoding, box_json(face.box))
            if self.on_progress is not None:
                self.on_progress(self.report.analysed)
        return seen

    def skipped(self) -> list[SourceIssue]:
        """Every enrolled image (now) that will not be in the new generation, and why."""
        found: list[SourceIssue] = []
        for chunk in _chunks(self.gallery.images()):
            reasons = self.kept.reasons([im["sha256"] for im in chunk])
            for image in chunk:
                sha = image["sha256"]
                if sha in self.issues:
                    found.append(self.issues[sha])
                elif sha in reasons:
                    found.append(issue(image, reasons[sha]))
        return found

    def before_commit(self, audit: Any, yes: bool) -> None:
        """Under the writer lock: the last images enrolled meanwhile, then the share skipped judged."""
        if audit is not None:
            audit.check_writable()  # no change the audit log could not record
        self.encode(self.todo())
        self.kept.flush()
        self.report.images = self.gallery.image_count
        self.report.skipped = self.skipped()
        if needs_yes(len(self.report.skipped), self.report.images) and not yes:
            raise _NeedsYes


def reencode(gallery: Gallery, engine: Any, *, audit: Any = None, actor: str = "", yes: bool = False,
             progress: bool = True, notify: Callable[[str], None] | None = None,
             on_progress: Callable[[int], None] | None = None,
             kept_in: Callable[[Mapping[str, Any]], Any] | None = None) -> ReencodeReport:
    """Re-encode every enrolled image with `engine`'s model and commit the new generation (module docstring).

    Refused with GalleryError (a sentence) on an empty gallery, one that holds the model already, or while
    another reencode of it runs; AuditError when the audit log could not record the change. `notify` is told a
    resumed run's sentence; `on_progress(n)` runs after each image analysed (n so far in this run). With more
    than MAX_SKIPPED_SHARE skipped and not `yes`, the report says `refused` and nothing is committed.
    `kept_in(recipe)` opens where progress is kept (default: `Progress` beside the gallery's files; on a shared
    database its table, so a run stopped on one machine resumes on another).
    """
    from tqdm import tqdm

    from bot.faces.engine import model_info

    started = time.perf_counter()
    target = models.get(engine.model).id
    gallery.refresh()
    why = refusal(gallery.model_id, gallery.image_count, target)
    if why is not None:
        if gallery.model_id == target and (kept_in is not None or (gallery.dir / PROGRESS_FILE).exists()):
            with contextlib.suppress(GalleryError):  # left by a run stopped after its commit
                (kept_in or (lambda recipe: Progress(gallery.dir, recipe)))({}).close(delete=True)
        raise GalleryError(why)
    if audit is not None:
        audit.check_writable()  # before the long part, not after it
    report = ReencodeReport(model_from=model_record(gallery.model_id), model_to=models.record(target))
    recipe = {"model": report.model_to, "images": asdict(engine.images), "min_iou": MIN_IOU}
    kept = kept_in(recipe) if kept_in is not None else Progress(gallery.dir, recipe)
    bar, committed = None, False
    try:
        report.images = gallery.image_count
        report.resumed = report.images - sum(1 for _ in _Run(gallery, engine, kept, report).todo())
        if report.resumed and notify is not None:
            notify(wording.gallery_reencode_resuming(report.resumed, report.images))
        bar = tqdm(total=report.images, initial=report.resumed, desc=f"re-encoding ({target})", unit="image",
                   file=sys.stderr, disable=not progress)
        run = _Run(gallery, engine, kept, report, bar=bar, on_progress=on_progress)
        for _ in range(CATCH_UP_PASSES):  # the first pass, then what was enrolled meanwhile
            if not run.encode(run.todo()):
                break
        kept.flush()
        try:
            with interrupt_deferred():  # the commit and the entry recording it are never cut in two
                _, removed = gallery.replace_templates(model_info(target)["model"], kept.templates,
                                                       before_commit=lambda: run.before_commit(audit, yes))
                committed = True
                report.subjects_removed, report.reencoded = removed, gallery.image_count
                if audit is not None:
                    audit.append("gallery_change", action="reencode", actor=actor, model=report.model_to,
                                 previous_model=report.model_from, images=report.images,
                                 reencoded=report.reencoded, skipped=[asdict(i) for i in report.skipped],
                                 subjects_removed=removed, generation=gallery.generation)
        except _NeedsYes:
            report.refused = True
    finally:
        if bar is not None:
            bar.close()
        # Committed: its templates are the gallery's now, and the file goes. Otherwise it stays for the next run.
        kept.close(delete=committed)
    report.seconds = time.perf_counter() - started
    return report
