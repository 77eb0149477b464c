"""Enrollment into the known-person gallery: a folder (DIR/<subject_id>/<images>) or a manifest CSV.

Idempotent by image content (SHA-256); conflicts, unreadable images and images without exactly one face are
reported, not fatal; near-duplicate subjects are reported; all new rows go into one gallery commit.
"""
from __future__ import annotations

import csv
import hashlib
import json
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot.faces.gallery import (
    DIM,
    MANIFEST_HEADER,
    NEAR_DUPLICATE_DISTANCE,
    Gallery,
    GalleryError,
)

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
        lines += [
            f"near-duplicate: subjects {a} and {b} are {d:.3f} apart (under {NEAR_DUPLICATE_DISTANCE}): possibly one "
            "person enrolled twice, which hides the mate of either; check and merge or remove one"
            for a, b, d in self.near_duplicates
        ]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass(frozen=True)
class _Entry:
    subject_id: str
    name: str
    record_ref: str
    path: Path
    source: str


def _clean(value: str) -> str:
    return " ".join(value.split())


def _display(text: str) -> str:
    """A file name as valid text: bytes that are not UTF-8 (decoded by Python to surrogates) become \\xNN,
    so sqlite and the audit log can store it and a person can still recognise it."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _scan_directory(directory: Path, report: EnrollReport) -> list[_Entry]:
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
                entries.append(_Entry(subject_id, subject_id, "", path, _display(str(path))))
    return entries


def _read_manifest(manifest: Path, report: EnrollReport) -> list[_Entry]:
    """Rows of a CSV with the header `subject_id,name,record_ref,image`; images relative to the CSV."""
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise GalleryError(f"cannot read the manifest {manifest}: {exc}") from None
    rows = list(csv.reader(text.splitlines()))
    header = [cell.strip() for cell in rows[0]] if rows else []
    if header != MANIFEST_HEADER:
        raise GalleryError(
            f"the manifest {manifest} must start with the header line {','.join(MANIFEST_HEADER)} "
            f"(found: {','.join(header) or 'an empty file'})"
        )
    base = manifest.parent
    entries: list[_Entry] = []
    first_seen: dict[str, tuple[str, str]] = {}
    for line, row in enumerate(rows[1:], start=2):
        source = f"{manifest}:{line}"
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(MANIFEST_HEADER):
            report.rejected.append(EnrollIssue(source, f"expected 4 fields, found {len(row)}"))
            continue
        subject_id, name, record_ref, image = (_clean(cell) for cell in row)
        if not subject_id or not image:
            report.rejected.append(EnrollIssue(source, "subject_id and image must not be empty", subject_id))
            continue
        name = name or subject_id
        if first_seen.setdefault(subject_id, (name, record_ref)) != (name, record_ref):
            report.notes.append(f"{source}: subject {subject_id} has another name or record_ref on an earlier line; "
                                "the first is used")
            name, record_ref = first_seen[subject_id]
        entries.append(_Entry(subject_id, name, record_ref, base / image, f"{source} ({image})"))
    return entries


def _hash_file(path: Path) -> str:
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
    exactly one face are reported, not fatal. All new rows are written in one commit at the end.
    With a manifest, image paths are relative to the CSV and `directory` is not used.
    """
    from tqdm import tqdm

    from bot.faces.engine import model_info
    from bot.faces.images import ImageError

    started = time.perf_counter()
    report = EnrollReport()
    if manifest is not None:
        entries = _read_manifest(Path(manifest), report)
    else:
        entries = _scan_directory(Path(directory), report)

    # Pass 1: hash every file (cheap next to face analysis) to settle duplicates and conflicts first.
    by_sha: dict[str, list[_Entry]] = defaultdict(list)
    for entry in entries:
        try:
            by_sha[_hash_file(entry.path)].append(entry)
        except OSError as exc:
            report.rejected.append(EnrollIssue(entry.source, f"cannot read the file: {exc.strerror}", entry.subject_id))
    owners = gallery.image_owners(by_sha)
    todo: dict[str, _Entry] = {}
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

    def items() -> Iterator[tuple[str, bytes]]:
        for sha, entry in todo.items():
            try:
                data = entry.path.read_bytes()
                problem = "" if hashlib.sha256(data).hexdigest() == sha else "the file changed during enrollment"
            except OSError as exc:
                problem = f"cannot read the file: {exc.strerror}"
            if problem:
                report.rejected.append(EnrollIssue(entry.source, problem, entry.subject_id))
                bar.update(1)
                continue
            pending[sha] = data
            yield sha, data

    # Pass 2: face analysis on the engine's process pool.
    model = model_info()["model"]
    gallery.check_model(model)  # fail before the long part, not after it
    pending: dict[str, bytes] = {}
    new_subjects: dict[str, dict] = {}
    images: list[dict] = []
    encodings: list[np.ndarray] = []
    known_subjects = {s["subject_id"]: (s["name"], s["record_ref"]) for s in gallery.subjects()}
    if manifest is not None:
        noted: set[str] = set()
        for entry in todo.values():
            stored = known_subjects.get(entry.subject_id)
            if stored is not None and stored != (entry.name, entry.record_ref) and entry.subject_id not in noted:
                noted.add(entry.subject_id)
                report.notes.append(f"subject {entry.subject_id} is enrolled as {stored[0]!r} ({stored[1]!r}); "
                                    "its name and record_ref were kept (remove and re-enroll to change them)")
    bar = tqdm(total=len(todo), desc="enrolling", unit="image", file=sys.stderr, disable=not progress)
    try:
        # Thumbnails are cut in the workers, which already hold the pixels (no second decode here).
        for sha, result in engine.analyse_many(items(), thumbnails=True):
            bar.update(1)
            entry = todo[sha]
            data = pending.pop(sha, b"")
            if isinstance(result, ImageError):
                report.rejected.append(EnrollIssue(entry.source, f"unreadable: {result.message}", entry.subject_id))
                continue
            if isinstance(result, BaseException):
                report.rejected.append(EnrollIssue(entry.source, f"could not be analysed: {result}", entry.subject_id))
                continue
            if len(result.faces) != 1:
                reason = ("no face found" if not result.faces else
                          f"{len(result.faces)} faces found; a gallery image must show exactly one person")
                report.rejected.append(EnrollIssue(entry.source, reason, entry.subject_id))
                continue
            face = result.faces[0]
            thumb = result.thumbnails[0] if result.thumbnails else _thumbnail(data, face.box, engine)
            if thumb is not None:
                gallery.save_thumbnail(sha, thumb)
            if entry.subject_id not in known_subjects and entry.subject_id not in new_subjects:
                new_subjects[entry.subject_id] = {
                    "subject_id": entry.subject_id, "name": entry.name, "record_ref": entry.record_ref}
            images.append({
                "sha256": sha, "subject_id": entry.subject_id, "source": entry.source,
                "name": entry.name, "record_ref": entry.record_ref,
                "box": _box_json(face.box), "actor": actor,
            })
            encodings.append(np.asarray(face.encoding, dtype=np.float32))
    finally:
        bar.close()

    if audit is not None and images:
        audit.check_writable()  # no change the audit log could not record
    gallery.add_images(model, list(new_subjects.values()), images,
                       np.array(encodings, dtype=np.float32).reshape(len(encodings), DIM))
    report.added = len(images)
    report.new_subjects = len(new_subjects)
    checked = [im["sha256"] for im in images[:NEAR_DUPLICATE_CHECK]]
    report.near_duplicates = gallery.near_duplicates(checked)
    if len(images) > NEAR_DUPLICATE_CHECK:
        report.notes.append(f"near-duplicates were checked for the first {NEAR_DUPLICATE_CHECK} new images only")
    if audit is not None:
        for image in images:
            audit.append("gallery_change", action="enroll", actor=actor, subject_id=image["subject_id"],
                         name=image["name"], record_ref=image["record_ref"], image_sha256=image["sha256"],
                         source=image["source"])
    report.seconds = time.perf_counter() - started
    return report


def _box_json(box: Any) -> str:

    data = box.as_dict() if hasattr(box, "as_dict") else dict(box)
    return json.dumps(data, separators=(",", ":"))
