"""Enrollment into the known-person gallery: a folder (DIR/<subject_id>/<images>) or a manifest CSV.

Idempotent by image content (SHA-256); conflicts, unreadable images and images without exactly one face are
reported, not fatal; near-duplicate subjects are reported; all new rows go into one gallery commit.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import signal
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np

from bot import wording
from bot.faces.gallery import (
    DIM,
    MANIFEST_HEADER,
    NEAR_DUPLICATE_DISTANCE,
    Gallery,
    GalleryError,
)
from bot.faces.sync_plan import KEEP_STATUSES, read_status

# At most this many newly enrolled images are checked for near-duplicates in one run (bounded time).
NEAR_DUPLICATE_CHECK = 20000


@dataclass
class EnrollIssue:
    """An image that was not enrolled, and why (a plain sentence)."""

    source: str
    reason: str
    subject_id: str = ""


@dataclass
class EnrollReport:
    """What one enrollment run did."""

    added: int = 0  # images enrolled now
    already: int = 0  # images (by content) already enrolled under the same subject, or repeated in this run
    new_subjects: int = 0
    rejected: list[EnrollIssue] = field(default_factory=list)  # unreadable, no face, several faces
    conflicts: list[EnrollIssue] = field(default_factory=list)  # one image under two subjects
    near_duplicates: list[tuple[str, str, float]] = field(default_factory=list)  # (subject, other, distance)
    near_duplicate_under: float = NEAR_DUPLICATE_DISTANCE  # the gallery's model's figure
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        analysed = self.added + len(self.rejected)
        return analysed / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        """JSON-ready form (issues as dicts)."""
        return asdict(self)

    def summary(self) -> str:
        """Plain text for the terminal: totals first, then every image not enrolled and why."""
        lines = [(
            f"enrolled {self.added} image(s), {self.new_subjects} new subject(s); "
            f"{self.already} already enrolled; {len(self.rejected)} rejected; {len(self.conflicts)} conflict(s) "
            f"({self.seconds:.1f} s)"
        )]
        lines += [f"rejected: {i.source}: {i.reason}" for i in self.rejected]
        lines += [f"conflict: {i.source}: {i.reason}" for i in self.conflicts]
        lines += [wording.gallery_near_duplicate(a, b, d, self.near_duplicate_under)
                  for a, b, d in self.near_duplicates]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass(frozen=True)
class Entry:
    """One image to enroll: a file of a folder, or a manifest row (with its `status`; a row of a person to remove
    may have no image)."""

    subject_id: str
    name: str
    record_ref: str
    path: Path | None
    source: str
    status: str = ""


def _clean(value: str) -> str:
    return " ".join(value.split())


def _display(text: str) -> str:
    """A file name as valid text: bytes that are not UTF-8 (decoded by Python to surrogates) become \\xNN,
    so sqlite and the audit log can store it and a person can still recognise it."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _scan_directory(directory: Path, report: EnrollReport) -> list[Entry]:
    """DIR/<subject_id>/<images> (sub-folders inside a subject folder included); hidden files skipped."""
    if not directory.is_dir():
        raise GalleryError(f"{directory} is not a directory")
    entries = []
    for item in sorted(directory.iterdir()):
        if item.name.startswith("."):
            continue
        if not item.is_dir():
            report.rejected.append(EnrollIssue(_display(str(item)), "not inside a subject folder (DIR/<subject_id>/<image>)"))
            continue
        subject_id = _clean(_display(item.name))
        for path in sorted(item.rglob("*")):
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(item).parts):
                entries.append(Entry(subject_id, subject_id, "", path, _display(str(path))))
    return entries


def read_manifest(manifest: Path, report: EnrollReport) -> list[Entry]:
    """Rows of a CSV with the header `subject_id,name,record_ref,image` and an optional fifth column `status`
    (bot.faces.sync_plan: empty or `eligible` keeps a person, `not_charged`, `dropped`, `acquitted`, `expunged`
    remove them); images relative to the CSV. Refused rows go to `report.rejected`; a status that is none of
    those stops the read (GalleryError naming the row and the value), before anything changes."""
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise GalleryError(f"cannot read the manifest {manifest}: {exc}") from None
    rows = list(csv.reader(text.splitlines()))
    header = [cell.strip() for cell in rows[0]] if rows else []
    if header not in (MANIFEST_HEADER, [*MANIFEST_HEADER, "status"]):
        raise GalleryError(
            f"the manifest {manifest} must start with the header line {','.join(MANIFEST_HEADER)} "
            f"(or {','.join(MANIFEST_HEADER)},status) (found: {','.join(header) or 'an empty file'})"
        )
    base = manifest.parent
    entries: list[Entry] = []
    first_seen: dict[str, tuple[str, str]] = {}
    for line, row in enumerate(rows[1:], start=2):
        source = f"{manifest}:{line}"
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            report.rejected.append(EnrollIssue(source, f"expected {len(header)} fields, found {len(row)}"))
            continue
        subject_id, name, record_ref, image = (_clean(cell) for cell in row[:4])
        status = read_status(row[4]) if len(row) > 4 else ""
        if status is None:
            raise GalleryError(wording.gallery_sync_bad_status(source, _clean(row[4])))
        if not subject_id or not (image or status not in KEEP_STATUSES):
            report.rejected.append(EnrollIssue(source, "subject_id and image must not be empty", subject_id))
            continue
        name = name or subject_id
        if first_seen.setdefault(subject_id, (name, record_ref)) != (name, record_ref):
            report.notes.append(f"{source}: subject {subject_id} has another name or record_ref on an earlier line; "
                                "the first is used")
            name, record_ref = first_seen[subject_id]
        path = base / image if image else None
        entries.append(Entry(subject_id, name, record_ref, path, f"{source} ({image})" if image else source, status))
    return entries


def hash_file(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _thumbnail(data: bytes, box: Any, engine: Any) -> bytes | None:
    """Cut the face thumbnail in this process from a second decode (only images with exactly one face)."""
    from bot.faces.engine import face_thumbnail
    from bot.faces.images import decode_image

    images = getattr(engine, "images", None)
    max_bytes = getattr(images, "max_bytes", len(data))
    max_pixels = getattr(images, "max_pixels", 1 << 62)
    ratio = getattr(images, "max_aspect_ratio", float("inf"))
    try:
        return face_thumbnail(decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels,
                                           max_aspect_ratio=ratio), box)
    except Exception:  # noqa: BLE001 - a missing thumbnail must not stop an enrollment
        return None


class Crops:
    """The face crops one run writes before its commit: deleted again unless `committed` is set (a Ctrl-C, a
    failure), so no crop of a person never enrolled stays behind. A crop already there is left as it was."""

    def __init__(self, gallery: Gallery) -> None:
        self.gallery = gallery
        self.written: list[str] = []
        self.committed = False

    def save(self, image_sha256: str, jpeg: bytes) -> None:
        """Write the crop of an image about to be enrolled (unless one is there: it may be an enrolled image's)."""
        if self.gallery.thumbnail(image_sha256) is None:
            # Noted before it is written: a Ctrl-C after the file appears (during the folder's fsync) must not leave
            # a crop nobody deletes; deleting one never written is fine.
            self.written.append(image_sha256)
            self.gallery.save_thumbnail(image_sha256, jpeg)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.committed:
            self.gallery.drop_thumbnails(self.written)


@contextlib.contextmanager
def interrupt_deferred() -> Iterator[None]:
    """Ctrl-C (SIGINT) waits until the block ends, and the block then ends normally: a gallery commit and the
    audit entries recording it are never cut in two. Only the main thread receives signals; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda _signum, _frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def analyse(engine: Any, todo: dict[str, Entry], rejected: list[EnrollIssue], crops: Crops, *, actor: str,
            progress: bool) -> tuple[list[dict], np.ndarray]:
    """Pass 2 of an enrollment: face analysis of `todo` ({sha256: entry}) on the engine's process pool. Images
    without exactly one face, unreadable or changed files go to `rejected`; each face's crop is written through
    `crops`. Returns the image rows for `Gallery.change` and their encodings (N x DIM)."""
    from tqdm import tqdm

    from bot.faces.images import ImageError

    pending: dict[str, bytes] = {}
    images: list[dict] = []
    encodings: list[np.ndarray] = []

    def items() -> Iterator[tuple[str, bytes]]:
        for sha, entry in todo.items():
            try:
                data = entry.path.read_bytes() if entry.path is not None else b""
                problem = "" if hashlib.sha256(data).hexdigest() == sha else "the file changed during enrollment"
            except OSError as exc:
                problem = f"cannot read the file: {exc.strerror}"
            if problem:
                rejected.append(EnrollIssue(entry.source, problem, entry.subject_id))
                bar.update(1)
                continue
            pending[sha] = data
            yield sha, data

    bar = tqdm(total=len(todo), desc="enrolling", unit="image", file=sys.stderr, disable=not progress)
    try:
        # Thumbnails are cut in the workers, which already hold the pixels (no second decode here).
        for sha, result in engine.analyse_many(items(), thumbnails=True):
            bar.update(1)
            entry = todo[sha]
            data = pending.pop(sha, b"")
            if isinstance(result, ImageError):
                rejected.append(EnrollIssue(entry.source, f"unreadable: {result.message}", entry.subject_id))
                continue
            if isinstance(result, BaseException):
                rejected.append(EnrollIssue(entry.source, f"could not be analysed: {result}", entry.subject_id))
                continue
            if len(result.faces) != 1:
                reason = ("no face found" if not result.faces else
                          f"{len(result.faces)} faces found; a gallery image must show exactly one person")
                rejected.append(EnrollIssue(entry.source, reason, entry.subject_id))
                continue
            face = result.faces[0]
            thumb = result.thumbnails[0] if result.thumbnails else _thumbnail(data, face.box, engine)
            if thumb is not None:
                crops.save(sha, thumb)
            images.append({
                "sha256": sha, "subject_id": entry.subject_id, "source": entry.source,
                "name": entry.name, "record_ref": entry.record_ref,
                "box": box_json(face.box), "actor": actor,
            })
            encodings.append(np.asarray(face.encoding, dtype=np.float32))
    finally:
        bar.close()
    return images, np.array(encodings, dtype=np.float32).reshape(len(encodings), DIM)


def audit_enrolled(audit: Any, images: Iterable[dict], actor: str, **extra: Any) -> None:
    """One `gallery_change` entry (action "enroll") per image enrolled."""
    for image in images:
        audit.append("gallery_change", action="enroll", actor=actor, subject_id=image["subject_id"],
                     name=image["name"], record_ref=image["record_ref"], image_sha256=image["sha256"],
                     source=image["source"], **extra)


def near_duplicates(gallery: Gallery, images: list[dict], notes: list[Any]) -> list[tuple[str, str, float]]:
    """Near-duplicate subjects among the newly enrolled `images` (the first NEAR_DUPLICATE_CHECK of them)."""
    if len(images) > NEAR_DUPLICATE_CHECK:
        notes.append(f"near-duplicates were checked for the first {NEAR_DUPLICATE_CHECK} new images only")
    return gallery.near_duplicates([im["sha256"] for im in images[:NEAR_DUPLICATE_CHECK]])


def enroll(
    gallery: Gallery,
    engine: Any,
    directory: Path | str | None,
    *,
    manifest: Path | str | None = None,
    audit: Any = None,
    actor: str = "",
    progress: bool = True,
) -> EnrollReport:
    """Enroll `directory` (<subject_id>/<images>) or the `manifest` CSV into `gallery`; returns what happened.

    Idempotent by image content (SHA-256). An image already enrolled under another subject, or listed under two
    subjects in this run, is a conflict and is not enrolled (again). Unreadable images and images without
    exactly one face are reported, not fatal. All new rows are written in one commit at the end; the face crops
    written before it are deleted again when the run stops first (Ctrl-C, a failure).
    With a manifest, image paths are relative to the CSV and `directory` is not used; rows whose `status`
    removes a person (`gallery sync`) are not enrolled.
    """
    from bot.faces.engine import model_info

    started = time.perf_counter()
    report = EnrollReport()
    if manifest is not None:
        entries = []
        for entry in read_manifest(Path(manifest), report):
            if entry.status in KEEP_STATUSES:
                entries.append(entry)
            else:
                report.rejected.append(EnrollIssue(entry.source, wording.gallery_enroll_ineligible(entry.status),
                                                   entry.subject_id))
    else:
        entries = _scan_directory(Path(directory), report)

    # Pass 1: hash every file (cheap next to face analysis) to settle duplicates and conflicts first.
    by_sha: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        try:
            by_sha[hash_file(entry.path)].append(entry)
        except OSError as exc:
            report.rejected.append(EnrollIssue(entry.source, f"cannot read the file: {exc.strerror}", entry.subject_id))
    owners = gallery.image_owners(by_sha)
    todo: dict[str, Entry] = {}
    for sha, group in by_sha.items():
        listed = list(dict.fromkeys(e.subject_id for e in group))
        owner = owners.get(sha)
        if owner is not None:
            for e in group:
                if e.subject_id == owner:
                    report.already += 1
                else:
                    report.conflicts.append(
                        EnrollIssue(e.source, f"this image is already enrolled under subject {owner}", e.subject_id))
        elif len(listed) > 1:
            # Which label is right cannot be known: enrolling either could put a wrong name on a face.
            for e in group:
                report.conflicts.append(EnrollIssue(
                    e.source, f"the same image is listed under subjects {', '.join(listed)}; enrolled under none",
                    e.subject_id))
        else:
            todo[sha] = group[0]
            report.already += len(group) - 1

    model = model_info(engine.model)["model"]  # the templates are the engine's model's
    gallery.check_model(model)  # fail before the long part, not after it
    known_subjects = {s["subject_id"]: (s["name"], s["record_ref"]) for s in gallery.subjects()}
    if manifest is not None:
        noted: set[str] = set()
        for entry in todo.values():
            stored = known_subjects.get(entry.subject_id)
            if stored is not None and stored != (entry.name, entry.record_ref) and entry.subject_id not in noted:
                noted.add(entry.subject_id)
                report.notes.append(f"subject {entry.subject_id} is enrolled as {stored[0]!r} ({stored[1]!r}); "
                                    "its name and record_ref were kept (`gallery sync` changes them)")
    with Crops(gallery) as crops:
        images, encodings = analyse(engine, todo, report.rejected, crops, actor=actor, progress=progress)
        new_subjects: dict[str, dict] = {}
        for image in images:
            if image["subject_id"] not in known_subjects:
                new_subjects.setdefault(image["subject_id"], {
                    "subject_id": image["subject_id"], "name": image["name"], "record_ref": image["record_ref"]})
        with interrupt_deferred():
            gallery.change(model, subjects=new_subjects.values(), images=images, encodings=encodings,
                           before_commit=None if audit is None else audit.check_writable)
            crops.committed = True
            if audit is not None:
                audit_enrolled(audit, images, actor)
    report.added = len(images)
    report.new_subjects = len(new_subjects)
    report.near_duplicates = near_duplicates(gallery, images, report.notes)
    report.near_duplicate_under = gallery.near_duplicate_distance()
    report.seconds = time.perf_counter() - started
    return report


def box_json(box: Any) -> str:
    """A face box as the gallery stores it (images.box): compact JSON of {"top","right","bottom","left"}."""
    data = box.as_dict() if hasattr(box, "as_dict") else dict(box)
    return json.dumps(data, separators=(",", ":"))
