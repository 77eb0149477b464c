"""What face analysis found on a probe photo, kept per request until the request's search is done.

One file per request, `data_dir/cache/probes/<request_id>.npz` (mode 0600, written atomically): the face
entries, one face crop (JPEG) per face, where to encode each face from once the requester attests (encodings
are made only then), and, for a photo with several faces, the photo with numbered boxes posted for the face
choice. A restart mid-dialog reads it back instead of
downloading and detecting again (CONTRACTS: never re-detect on resume). The photo itself is not kept.
These are biometric data: `purge` removes them by the dialog-state retention period.
"""
from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bot.store.disk import ensure_private_dir, write_private_atomic

_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


@dataclass(frozen=True)
class CachedProbe:
    """One analysed probe: hash, upright size, face entries (Face.as_dict), encodings, crops, annotated image."""

    sha256: str
    width: int
    height: int
    faces: list[dict[str, Any]]
    encodings: np.ndarray  # float32 (n_faces, 128), row i = face i + 1
    crops: list[bytes]  # JPEG of each face, same order
    annotated: bytes | None = None  # JPEG with numbered boxes, only when there are several faces
    # Where to encode each face from after the attestation: {"padded": bool, "boxes": [box dicts]}.
    encode: dict[str, Any] | None = None

    def encoding(self, face_index: int) -> np.ndarray:
        """The encoding of face `face_index` (numbered from 1)."""
        return self.encodings[face_index - 1]

    def crop(self, face_index: int) -> bytes | None:
        """The JPEG crop of face `face_index` (numbered from 1), or None."""
        return self.crops[face_index - 1] if 1 <= face_index <= len(self.crops) else None


def probe_bytes(probe: CachedProbe) -> bytes:
    """The npz bytes one probe is stored as (a file here, a bytea row in bot.store.pg)."""
    meta = {"sha256": probe.sha256, "width": probe.width, "height": probe.height, "faces": probe.faces,
            "encode": probe.encode}
    arrays: dict[str, np.ndarray] = {
        "meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
        "encodings": np.asarray(probe.encodings, dtype=np.float32).reshape(-1, 128),
    }
    for i, crop in enumerate(probe.crops, start=1):
        arrays[f"crop_{i}"] = np.frombuffer(crop, dtype=np.uint8)
    if probe.annotated is not None:
        arrays["annotated"] = np.frombuffer(probe.annotated, dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # images inside are already compressed
    return buf.getvalue()


def probe_from(source: Path | bytes) -> CachedProbe | None:
    """The probe stored in an npz file or its bytes, or None when there is none (or it is unreadable)."""
    try:
        with np.load(io.BytesIO(source) if isinstance(source, bytes) else source, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode("utf-8"))
            n = len(meta["faces"])
            crops = [bytes(data[f"crop_{i}"]) if f"crop_{i}" in data else b"" for i in range(1, n + 1)]
            annotated = bytes(data["annotated"]) if "annotated" in data else None
            encodings = np.array(data["encodings"], dtype=np.float32)
    except (FileNotFoundError, ValueError, KeyError, OSError, EOFError):
        return None
    return CachedProbe(meta["sha256"], meta["width"], meta["height"], meta["faces"], encodings, crops, annotated,
                       meta.get("encode"))


def checked_id(request_id: str) -> str:
    """`request_id` when it may name a cached probe; ValueError otherwise."""
    if not _SAFE_ID.fullmatch(request_id or ""):
        raise ValueError(f"not a request id: {request_id!r}")
    return request_id


class _RequestFiles:
    """One file per request under `data_dir/cache/probes/`, `<request_id><suffix>` (0600, written atomically)."""

    suffix = ""

    def __init__(self, data_dir: Path) -> None:
        self.dir = Path(data_dir) / "cache" / "probes"

    def _path(self, request_id: str) -> Path:
        return self.dir / f"{checked_id(request_id)}{self.suffix}"

    def _write(self, request_id: str, data: bytes) -> None:
        ensure_private_dir(self.dir)
        write_private_atomic(self._path(request_id), data)

    def ids(self) -> list[str]:
        """The request ids with a file here (what `store copy` carries to a database)."""
        names = sorted(self.dir.glob("*" + self.suffix)) if self.dir.is_dir() else []
        return [p.name.removesuffix(self.suffix) for p in names]

    def remove(self, request_id: str) -> bool:
        """Delete one request's file; True when there was one."""
        try:
            self._path(request_id).unlink()
            return True
        except FileNotFoundError:
            return False

    def purge_before(self, cutoff: datetime) -> tuple[int, int]:
        """Delete the files stored before `cutoff`; returns (files removed, bytes removed). The retention purge
        (bot.oversight.retention) also clears what else waits in this folder."""
        removed = size = 0
        for path in sorted(self.dir.glob("*" + self.suffix)) if self.dir.is_dir() else ():
            try:
                st = path.lstat()
                if st.st_mtime < cutoff.timestamp():
                    path.unlink()
                    removed, size = removed + 1, size + st.st_size
            except FileNotFoundError:
                continue  # removed meanwhile by its request
        return removed, size


class ProbeCache(_RequestFiles):
    """The per-request probe files under `data_dir/cache/probes/`."""

    suffix = ".npz"

    def put(self, request_id: str, probe: CachedProbe) -> None:
        """Store (or replace) the analysis of one request's photo."""
        self._write(request_id, probe_bytes(probe))

    def get(self, request_id: str) -> CachedProbe | None:
        """The stored analysis, or None when there is none (or it is unreadable)."""
        return probe_from(self._path(request_id))


SHEET_SUFFIX = "-comparison.jpg"  # a CLI review's comparison sheet: <request_id>-comparison.jpg


class SheetCache(_RequestFiles):
    """The comparison sheets the command line made for its examiner reviews (the photo is only where the CLI
    ran), waiting for the server to post them in the review card's thread, then removed (posted, or the review
    cancelled): `data_dir/cache/probes/<request_id>-comparison.jpg`, beside the probe faces and purged with them.
    bot.store.pg.cache.PgSheetCache keeps them in the database, for a server on another machine."""

    suffix = SHEET_SUFFIX

    def put(self, request_id: str, jpeg: bytes) -> None:
        """Store (or replace) one request's comparison sheet."""
        self._write(request_id, jpeg)

    def get(self, request_id: str) -> bytes | None:
        """The sheet's JPEG bytes, or None when there is none."""
        try:
            return self._path(request_id).read_bytes()
        except FileNotFoundError:
            return None
