"""The source images a gallery recorded, read again: `gallery thumbnails --rebuild` and `gallery reencode`.

Enrollment records where each image came from (`images.source`: the file path of a folder enrollment,
`MANIFEST:LINE (IMAGE)` of a manifest one) and its SHA-256. Work that goes back to the photos (a crop cut again,
a template of another model) reads that file and uses it only when its bytes are still the enrolled ones; any
other case is an issue with a plain sentence, and the rest goes on.
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bot import wording

_MANIFEST_SOURCE = re.compile(r"^(?P<manifest>.+):(?P<line>\d+) \((?P<image>.+)\)$")
_ESCAPED_BYTE = re.compile(rb"\\x([0-9a-f]{2})")


@dataclass
class SourceIssue:
    """An enrolled image that could not be used again, and why (a plain sentence)."""

    source: str
    subject_id: str
    image_sha256: str
    reason: str


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


def issue(image: dict, reason: str) -> SourceIssue:
    """The issue of an enrolled image (a `Gallery.images()` row) and why it could not be used."""
    return SourceIssue(image["source"], image["subject_id"], image["sha256"], reason)


def enrolled_bytes(images: Iterable[dict], problem: Callable[[dict, str], None]) -> Iterator[tuple[str, bytes]]:
    """(sha256, bytes) of each image (`Gallery.images()` rows) whose recorded source still holds the enrolled
    bytes; every other image goes to `problem(image, sentence)`: unreadable, or changed since enrollment."""
    for image in images:
        path = source_path(image["source"])
        try:
            data = path.read_bytes()
        except OSError as exc:
            problem(image, wording.gallery_source_unreadable(str(path), exc.strerror or str(exc)))
            continue
        if hashlib.sha256(data).hexdigest() != image["sha256"]:
            problem(image, wording.gallery_source_changed(str(path)))
            continue
        yield image["sha256"], data
