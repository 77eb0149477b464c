"""Today's dlib pipeline, frozen: the boxes, how each face was found, its quality and the exact bytes of its
template, on the shared photos and on copies that take each detection path (upsampled, padded).

The digests were recorded with the engine as it stood before matchers became named models (main at c5ac8a9):
whatever the code is reorganised into, the `dlib-resnet` model must give exactly these templates, or every
gallery enrolled before would silently drift from its probes. They are SHA-256 of the float32 bytes, so
nothing biometric is stored here. (The numpy ResNet gives the same bits with one BLAS thread or many; a CPU
whose BLAS kernels round differently would show here first.)"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.config import ImageSettings
from bot.faces.engine import analyse_bytes, detect_rgb, encode_bytes, find_faces
from bot.faces.images import decode_image

DLIB = "dlib-resnet"  # the model these digests pin (sface has its own tests: the default changed, not dlib's)

LIMITS = {"max_bytes": 1 << 28, "max_pixels": 1 << 28}

# photo -> per face, left to right: (found_by, (left, top, right, bottom), quality, template SHA-256)
EXPECTED: dict[str, list[tuple]] = {
    "people/obama/obama.jpg": [
        ("hog", (364, 152, 603, 391),
         {"eye_px": 106.0, "sharpness": 0.2838, "exposure": 0.575, "grayscale": False, "yaw_deg": -0.3, "level": "ok"},
         "86f20fce6cefce05a7f4a90a99cabfdc1a6e78c9023c07e96d92dd65a1a6f42a"),
    ],
    "people/biden/biden.jpg": [
        ("hog", (417, 241, 740, 562),
         {"eye_px": 120.3, "sharpness": 0.1578, "exposure": 0.426, "grayscale": False, "yaw_deg": -12.5, "level": "ok"},
         "7de7ef47841d38d87a8911a649d66978979433fd344cdd33c14509ca825c384a"),
    ],
    "people/obama/obama_small.jpg": [
        ("hog", (112, 65, 215, 169),
         {"eye_px": 48.5, "sharpness": 0.2046, "exposure": 0.585, "grayscale": False, "yaw_deg": 2.6, "level": "ok"},
         "9aeecdac5b7d791d839a03491363165dc1209c52eddbbf724e86d958606e4452"),
    ],
    "people/alex_lacamoire/alex-lacamoire.png": [
        ("hog", (174, 134, 353, 313),
         {"eye_px": 63.6, "sharpness": 0.0261, "exposure": 0.372, "grayscale": False, "yaw_deg": -17.3, "level": "ok"},
         "46aa240d4c0c6289dbc01955b4c08ff2cc792e97d97f0589a419dcbe78bff16e"),
    ],
    "group/obama_and_biden.jpg": [
        ("hog", (736, 443, 938, 645),
         {"eye_px": 75.0, "sharpness": 0.202, "exposure": 0.539, "grayscale": False, "yaw_deg": 8.2, "level": "ok"},
         "09aabb837e510df3f32dac9c99068106d7f1b3c1e8f56b6e4d8b37b0b7e47c6d"),
        ("hog", (1141, 399, 1344, 600),
         {"eye_px": 79.2, "sharpness": 0.2787, "exposure": 0.475, "grayscale": False, "yaw_deg": 5.1, "level": "ok"},
         "a0b4d6fdd676983822c556e1fdc6ce212ec64682b2966a529ceee25a4240367d"),
        ("hog", (1604, 1072, 1744, 1213),
         {"eye_px": 48.0, "sharpness": 0.0189, "exposure": 0.325, "grayscale": False, "yaw_deg": 23.1, "level": "ok"},
         "aaf7268492fcbb9540f5812e2a4ab93469e068105b072ac3b42031e46a4174d1"),
    ],
    "odd/obama_partial_face.jpg": [
        ("hog", (0, 152, 206, 391),
         {"eye_px": 100.0, "sharpness": 0.2553, "exposure": 0.566, "grayscale": False, "yaw_deg": 12.0, "level": "ok"},
         "6f2d62135782837995f45257b6f38c6f203707185cc89d876639a39cb844d21e"),
    ],
    "obama 120 px wide (hog_up1)": [
        ("hog_up1", (45, 18, 81, 54),
         {"eye_px": 14.0, "sharpness": 0.0322, "exposure": 0.571, "grayscale": False, "yaw_deg": 0.0, "level": "too_small"},
         "a1d64262d9d34c62f8b392e603906ab84059f7683554458d50ef53350686784c"),
    ],
    "obama 80 px wide (hog_up2)": [
        ("hog_up2", (29, 9, 55, 35),
         {"eye_px": 9.5, "sharpness": 0.0146, "exposure": 0.572, "grayscale": False, "yaw_deg": 3.3, "level": "too_small"},
         "b74679803f201dd2facfcf199c74732c57ee0f35fe6ee2ba000221e75f541ff3"),
    ],
    "obama-480p tight crop (padded)": [
        ("padded", (0, 0, 74, 74),
         {"eye_px": 46.5, "sharpness": 0.2971, "exposure": 0.561, "grayscale": False, "yaw_deg": 3.4, "level": "ok"},
         "16923c9342822a471c376ad1d52e94a84e83f471664286867b7f58a6c884fdd0"),
    ],
}


def _load(faces_dir: Path, rel: str) -> np.ndarray:
    return decode_image((faces_dir / rel).read_bytes(), **LIMITS)


def _scaled(rgb: np.ndarray, width: int) -> np.ndarray:
    height = round(rgb.shape[0] * width / rgb.shape[1])
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS))


def _tight(rgb: np.ndarray) -> np.ndarray:
    [face] = find_faces(rgb, model=DLIB)
    b, s = face.box, round(face.box.width * 0.2)  # brows to lips: HOG finds it only on the padded copy
    return np.ascontiguousarray(rgb[b.top + s : b.bottom - s, b.left + s : b.right - s])


def photos(faces_dir: Path) -> dict[str, np.ndarray]:
    """The photos the digests were recorded on: shared files as they are, and three made copies."""
    out = {rel: _load(faces_dir, rel) for rel in (
        "people/obama/obama.jpg", "people/biden/biden.jpg", "people/obama/obama_small.jpg",
        "people/alex_lacamoire/alex-lacamoire.png", "group/obama_and_biden.jpg", "odd/obama_partial_face.jpg")}
    obama = out["people/obama/obama.jpg"]
    out["obama 120 px wide (hog_up1)"] = _scaled(obama, 120)
    out["obama 80 px wide (hog_up2)"] = _scaled(obama, 80)
    out["obama-480p tight crop (padded)"] = _tight(_load(faces_dir, "people/obama/obama-480p.jpg"))
    return out


def record(faces) -> list[tuple]:
    """What a user relies on of each face, in a comparable form."""
    return [(f.found_by, (f.box.left, f.box.top, f.box.right, f.box.bottom), f.quality.as_dict(),
             hashlib.sha256(np.asarray(f.encoding, dtype=np.float32).tobytes()).hexdigest()) for f in faces]


@pytest.fixture(scope="module")
def shared(faces_dir: Path) -> dict[str, np.ndarray]:
    return photos(faces_dir)


def test_todays_faces_and_templates_are_unchanged(shared: dict[str, np.ndarray]):
    got = {name: record(find_faces(rgb, model=DLIB)) for name, rgb in shared.items()}
    assert got == EXPECTED


def test_encoding_after_the_attestation_gives_the_same_bytes(shared: dict[str, np.ndarray]):
    """Slack finds faces first and encodes the chosen one later from the stored box (padded copy included)."""
    images = ImageSettings()
    for name in ("group/obama_and_biden.jpg", "obama-480p tight crop (padded)"):
        buf = _png(shared[name])
        at_once = analyse_bytes(buf, images, model=DLIB)
        later = detect_rgb(decode_image(buf, **LIMITS), buf, images, model=DLIB)
        assert len(later.faces) == len(at_once.faces) >= 1
        for i, face in enumerate(at_once.faces):
            enc = encode_bytes(buf, images, later.sha256, later.encode_boxes[i].as_dict(), later.padded,
                               later.pad_scale, model=DLIB)
            assert enc.tobytes() == face.encoding.tobytes(), (name, i)


def _png(rgb: np.ndarray) -> bytes:
    import io

    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "PNG")
    return out.getvalue()
