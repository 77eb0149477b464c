"""`gallery thumbnails [--rebuild]`: the 320 px face crops of a gallery enrolled before they existed.

Enrollment keeps one face crop per image (`engine.face_thumbnail`, CROP_PX on the longer side). A gallery
enrolled earlier has 160 px ones. `rebuild` cuts them again from the source images the gallery records
(`images.source`: the file path of a folder enrollment, `MANIFEST:LINE (IMAGE)` of a manifest one), in the
face engine's workers as enrollment does, and only where it can be sure the crop shows the enrolled face: the
file is still there with the same SHA-256, exactly one face is found in it, and that face's encoding is within
MAX_DISTANCE of the stored one. Anything else is reported and left as it was; the rest goes on.
"""
from __future__ import annotations

import io
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from bot import wording
from bot.faces.engine import CROP_PX
from bot.faces.gallery import Gallery
from bot.faces.sources import SourceIssue, enrolled_bytes, issue

# The face found again must be this close to the stored encoding. The same bytes through the same code give
# under 0.001 (the encoder is deterministic); 0.1 is well under NEAR_DUPLICATE_DISTANCE (0.35).
MAX_DISTANCE = 0.1
ThumbnailIssue = SourceIssue  # an image whose crop could not be made again, and why (a plain sentence)


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
        report.problems.append(issue(image, reason))

    def unread(image: dict, reason: str) -> None:  # never reaches a worker: counted on the bar here
        problem(image, reason)
        bar.update(1)

    bar = tqdm(total=len(todo), desc="face crops", unit="image", file=sys.stderr, disable=not progress)
    try:
        for sha, result in engine.analyse_many(enrolled_bytes(todo.values(), unread), thumbnails=True):
            bar.update(1)
            image = todo[sha]
            if isinstance(result, BaseException):
                reason = result.message if isinstance(result, ImageError) else str(result)
                problem(image, wording.gallery_source_unanalysed(reason))
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
