"""Odd shapes: a tiny file drawn as a long strip is refused before decoding, and no copy the face search makes
(the padded retry, upsampling for small faces) grows past 4 × detect_max_side² pixels, whatever the shape.

Memory is measured in a child process (its own peak resident size, from wait4), which runs under an
address-space limit: code that would build a multi-gigabyte copy fails there at once instead of eating the
shared machine.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.config import ImageSettings
from bot.faces import detection, engine
from bot.faces.detection import find_boxes
from bot.faces.engine import analyse_bytes, detect_rgb, encode_bytes, find_faces
from bot.faces.images import ImageError, decode_image

IMAGES = ImageSettings()
BOUND = 4 * IMAGES.detect_max_side**2
PEAK_MB = 600
ROOT = Path(__file__).resolve().parents[2]
# The child's address space: well above what a bounded search needs (~0.8 GB of it is libraries and a 40 MP
# photo), far below the 5 GB the unbounded padded copy of a long strip took.
CHILD_AS_BYTES = 1536 * 1024 * 1024

CHILD = f"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({CHILD_AS_BYTES}, {CHILD_AS_BYTES}))
resource.setrlimit(resource.RLIMIT_CPU, (120, 120))
from bot import contact_sheet
from bot.config import ImageSettings
from bot.faces import engine
from bot.faces.images import ImageError
data = open(sys.argv[1], "rb").read()
try:
    if sys.argv[2] == "analyse":  # the command line's entry
        probe = engine.analyse_bytes(data, ImageSettings())
    else:  # Slack's: faces, crops and the numbered picture, in a face worker
        probe = contact_sheet.detect_with_pictures(data, ImageSettings())[0]
    out = {{"faces": len(probe.faces)}}
except ImageError as exc:
    out = {{"code": exc.code, "message": exc.message}}
except MemoryError:
    out = {{"error": "MemoryError"}}
# This process's own peak: VmHWM starts afresh at exec, where the rusage maximum keeps the forked copy of the
# parent's (a test process past 600 MB would read as this child's).
out["peak_kb"] = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps(out))
"""
from bot.faces import models


def _png(width: int, height: int) -> bytes:
    """A flat grey RGB PNG written row by row with zlib (no canvas of that size is allocated to make it)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    z = zlib.compressobj(9)
    row = b"\x00" + b"\x80" * (3 * width)
    body = b"".join(z.compress(row) for _ in range(height)) + z.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def _in_child(data: bytes, entry: str) -> tuple[dict, float]:
    """Run one upload through `entry` in a fresh process; its outcome and its peak resident size in MB."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "upload.png"
        path.write_bytes(data)
        err_path = Path(tmp) / "stderr"
        with err_path.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(path), entry], cwd=ROOT, stdout=subprocess.PIPE, stderr=err,
                env={**os.environ, **engine.WORKER_ENV, "PYTHONPATH": str(ROOT)},
            )
            assert proc.stdout is not None
            out = proc.stdout.read()
            proc.stdout.close()
            proc.wait()
        assert proc.returncode == 0, err_path.read_text(errors="replace")[-2000:]
    outcome = json.loads(out)
    return outcome, outcome.pop("peak_kb") / 1024


@pytest.mark.parametrize(("width", "height"), [(30000, 2), (2, 30000)])
def test_a_long_strip_is_refused_before_decoding_with_a_sentence(width: int, height: int):
    data = _png(width, height)
    assert len(data) < 400 and width * height <= IMAGES.max_pixels  # tiny, and within every other limit
    with pytest.raises(ImageError) as info:
        decode_image(data, max_bytes=IMAGES.max_bytes, max_pixels=IMAGES.max_pixels)
    assert info.value.code == "bad_shape"
    assert f"{width}×{height}" in info.value.message and info.value.message.endswith(".")


@pytest.mark.parametrize("entry", ["analyse", "detect"])
def test_a_long_strip_costs_no_memory(entry: str):
    outcome, peak_mb = _in_child(_png(30000, 2), entry)
    assert outcome.get("code") == "bad_shape", outcome
    assert peak_mb <= PEAK_MB


@pytest.mark.parametrize("entry", ["analyse", "detect"])
def test_a_shape_at_the_ratio_limit_with_a_huge_padded_size_stays_under_the_bound(entry: str):
    """8:1 at the pixel limit (17,888×2,236): padded at full size it would be 11,180×26,832 (900 MB)."""
    width, height = 17888, 2236
    assert width / height <= 8 and width * height <= IMAGES.max_pixels  # [images] max_aspect_ratio's default
    outcome, peak_mb = _in_child(_png(width, height), entry)
    assert outcome == {"faces": 0}  # searched to the end (hog, upsampled, padded): nothing there
    assert peak_mb <= PEAK_MB


@pytest.mark.parametrize("shape", [(2236, 17888), (17888, 2236), (3000, 3000), (1400, 1100), (300, 40), (9, 72)])
def test_the_padded_copy_is_never_over_the_bound(shape: tuple[int, int]):
    rgb = np.full((*shape, 3), 128, np.uint8)
    padded, pad, scale = detection.padded_copy(rgb, IMAGES.detect_max_side)
    assert padded.shape[0] * padded.shape[1] <= BOUND
    assert 0 < scale <= 1 and pad >= 8
    # Around the photo (scaled when it had to be), a border on every side.
    assert padded.shape[0] == round(shape[0] * scale) + 2 * pad and padded.shape[1] == round(shape[1] * scale) + 2 * pad


@pytest.mark.parametrize("detect_max_side", [256, 512, 1024])
@pytest.mark.parametrize("shape", [(40, 40), (140, 140), (500, 500), (1024, 1024), (128, 1024)])
def test_upsampling_never_scans_more_than_the_bound(shape: tuple[int, int], detect_max_side: int):
    scale = min(1.0, detect_max_side / max(shape))  # the detection copy HOG scans
    shape = (round(shape[0] * scale), round(shape[1] * scale))
    steps = detection.upsample_steps(shape, detect_max_side)
    assert steps[0] == 0
    for up in steps:
        assert shape[0] * shape[1] * 4**up <= 4 * detect_max_side**2


def _jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def test_a_large_tight_crop_still_gets_its_padded_retry(faces_dir: Path):
    """A face filling the frame, large enough that its padded copy must be scaled down to stay in bounds:
    still found by the padded retry, inside the crop, and encoded the same whether at once or after the
    attestation (Slack encodes later, rebuilding the same padded copy)."""
    obama = decode_image((faces_dir / "people" / "obama" / "obama-480p.jpg").read_bytes(),
                         max_bytes=IMAGES.max_bytes, max_pixels=IMAGES.max_pixels)
    [face] = find_faces(obama)
    b = face.box
    shrink = round(b.width * 0.2)  # brows to lips: no head outline for HOG
    crop = obama[b.top + shrink : b.bottom - shrink, b.left + shrink : b.right - shrink]
    side = 1800
    big = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((side, side), Image.Resampling.LANCZOS))
    assert 2.25 * side * side > BOUND  # the full-size padded copy would be over the bound
    found = find_boxes(big, IMAGES.detect_max_side)
    assert found.how == "padded" and len(found.boxes) == 1
    assert found.pixels.shape[0] * found.pixels.shape[1] <= BOUND
    box = found.boxes[0]
    assert 0 <= box.left < box.right <= side and 0 <= box.top < box.bottom <= side
    assert box.width > side / 2  # the face fills the frame
    data = _jpeg(big)
    probe = analyse_bytes(data, IMAGES)
    assert len(probe.faces) == 1 and probe.faces[0].found_by == "padded"
    # Still the same person: nearer to the full photo's face than any other person's in people/.
    others = [find_faces(decode_image(p.read_bytes(), max_bytes=IMAGES.max_bytes, max_pixels=IMAGES.max_pixels))
              for p in (faces_dir / "people" / "biden", faces_dir / "people" / "alex_lacamoire") for p in sorted(p.iterdir())]
    nearest_other = min(models.get().distance(np.stack([f.encoding for fs in others for f in fs]),
                                              probe.faces[0].encoding))
    assert models.get().distance(face.encoding[None], probe.faces[0].encoding)[0] < nearest_other
    rgb = decode_image(data, max_bytes=IMAGES.max_bytes, max_pixels=IMAGES.max_pixels)
    later = detect_rgb(rgb, data, IMAGES)
    assert later.padded
    encoding = encode_bytes(data, IMAGES, later.sha256, later.encode_boxes[0].as_dict(), later.padded)
    assert np.allclose(encoding, probe.faces[0].encoding, atol=1e-5)
