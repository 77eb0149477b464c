"""`gallery thumbnails [--rebuild]`: the 320 px face crops of a gallery enrolled before they existed.

Enrollment keeps one face crop per image (`engine.face_thumbnail`, CROP_PX on the longer side). A gallery
enrolled earlier has 160 px ones. `rebuild` cuts them again from the source images the gallery records
(`images.source`: the file path of a folder enrollment, `MANIFEST:LINE (IMAGE)` of a manifest one), in the
face engine's workers as enrollment does, and only where it can be sure the crop shows the enrolled face: the
file is still there with the same SHA-256, exactly one face is found in it, and that face's encoding is within
MAX_DISTANCE of the stored one. Anything else is reported and left as it was; the rest goes on.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bot.faces.engine import CROP_PX
from bot.faces.gallery import Gallery

# The face found again must be this close to the stored encoding. The same bytes through the same code give
# under 0.001 (the encoder is deterministic); 0.1 is well under NEAR_DUPLICATE_DISTANCE (0.35).
MAX_DISTANCE = 0.1
_MANIFEST_SOURCE = re.compile(r"^(?P<manifest>.+):(?P<line>\d+) \((?P<image>.+)\)$")
_ESCAPED_BYTE = re.compile(rb"\\x([0-9a-f]{2})")


@dataclass
class ThumbnailIssue:
    """An image whose crop could not be made again, and why (a plain sentence)."""

    source: str
    subject_id: str
    image_sha256: str
    reason: str


@dataclass
class ThumbnailReport:
    """What one `gallery thumbnails` run found or did."""

    images: int = 0  # enrolled images looked at
    current: int = 0  # already a CROP_PX crop: left as it is
    rebuilt: int = 0  # cut again now (only with --rebuild)
    to_rebuild: int = 0  # crops missing or not CROP_PX when the run started
    problems: list[ThumbnailIssue] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def crop_is_current(jpeg: bytes | None) -> bool:
    """Whether a stored crop already has its longer side at CROP_PX (reads the JPEG header only)."""
    if not jpeg:
        return False
    try:
        with Image.open(io.BytesIO(jpeg)) as im:
            return max(im.size) == CROP_PX
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False


def source_path(source: str) -> Path:
    """The file an image was enrolled from, from its `source` record: the path itself (folder enrollment), or
    the image relative to its manifest (`MANIFEST:LINE (IMAGE)`). Relative paths are relative to the directory
    the enrollment ran in, as they were then. A name that was not UTF-8 (recorded with \\xNN) gets its bytes
    back."""
    candidates = [source]
    match = _MANIFEST_SOURCE.match(source)
    if match:
        candidates.append(str(Path(match["manifest"]).parent / match["image"]))
    for text in list(candidates):
        raw = _ESCAPED_BYTE.sub(lambda m: bytes([int(m[1], 16)]), text.encode("utf-8", "surrogateescape"))
        if raw != text.encode("utf-8", "surrogateescape"):
            candidates.append(os.fsdecode(raw))
    return next((Path(c) for c in candidates if os.path.isfile(c)), Path(candidates[-1]))


def _outdated(gallery: Gallery, report: ThumbnailReport) -> dict[str, dict]:
    """{sha256: image} of the enrolled images whose crop is missing or not CROP_PX; counts them in `report`."""
    todo: dict[str, dict] = {}
    for image in gallery.images():
        report.images += 1
        if crop_is_current(gallery.thumbnail(image["sha256"])):
            report.current += 1
        else:
            todo[image["sha256"]] = image
    report.to_rebuild = len(todo)
    return todo


def status(gallery: Gallery) -> ThumbnailReport:
    """How many crops are current and how many `--rebuild` would cut again; changes nothing."""
    started = time.perf_counter()
    report = ThumbnailReport()
    _outdated(gallery, report)
    report.seconds = time.perf_counter() - started
    return report


def rebuild(gallery: Gallery, engine: Any, *, audit: Any = None, actor: str = "", progress: bool = True
            ) -> ThumbnailReport:
    """Cut the CROP_PX crop again for every enrolled image whose crop is missing or smaller, from its source
    file; one `gallery_change` entry (action "thumbnails") per crop replaced. Problems are reported, not fatal.
    """
    from tqdm import tqdm

    from bot.faces.engine import model_info
    from bot.faces.images import ImageError

    started = time.perf_counter()
    report = ThumbnailReport()
    todo = _outdated(gallery, report)
    if not todo:
        report.seconds = time.perf_counter() - started
        return report
    gallery.check_model(model_info(engine.model)["model"])  # another model's encodings cannot confirm the face
    if audit is not None:
        audit.check_writable()  # no change the audit log could not record

    def problem(image: dict, reason: str) -> None:
        report.problems.append(ThumbnailIssue(image["source"], image["subject_id"], image["sha256"], reason))

    def items() -> Iterator[tuple[str, bytes]]:
        for sha, image in todo.items():
            path = source_path(image["source"])
            try:
                data = path.read_bytes()
            except OSError as exc:
                problem(image, f"the source image cannot be read ({exc.strerror or exc}): {path}")
                bar.update(1)
                continue
            if hashlib.sha256(data).hexdigest() != sha:
                problem(image, f"the source image has changed since it was enrolled (another SHA-256): {path}")
                bar.update(1)
                continue
            yield sha, data

    bar = tqdm(total=len(todo), desc="face crops", unit="image", file=sys.stderr, disable=not progress)
    try:
        for sha, result in engine.analyse_many(items(), thumbnails=True):
            bar.update(1)
            image = todo[sha]
            if isinstance(result, BaseException):
                reason = result.message if isinstance(result, ImageError) else str(result)
                problem(image, f"the source image could not be analysed: {reason}")
                continue
            if len(result.faces) != 1 or not result.thumbnails:
                problem(image, f"{len(result.faces)} faces found in the source image; its crop needs exactly one")
                continue
            distance = float(np.linalg.norm(np.asarray(result.faces[0].encoding, np.float32) - image["encoding"]))
            if distance >= MAX_DISTANCE:
                problem(image, f"the face found is {distance:.3f} from the enrolled one (at most {MAX_DISTANCE}): "
                               "not the face that was enrolled")
                continue
            if sha not in gallery.image_owners([sha]):
                continue  # removed from the gallery meanwhile
            gallery.save_thumbnail(sha, result.thumbnails[0])
            report.rebuilt += 1
            if audit is not None:
                audit.append("gallery_change", action="thumbnails", actor=actor, subject_id=image["subject_id"],
                             name=image["name"], record_ref=image["record_ref"], image_sha256=sha,
                             source=image["source"], crop_px=CROP_PX, distance=round(distance, 4))
    finally:
        bar.close()
    report.seconds = time.perf_counter() - started
    return report
