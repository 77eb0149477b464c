"""Probe quality: measurements move the right way on real faces; tight crops are found by padding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from bot.faces import detection, quality
from bot.faces.detection import find_boxes
from bot.faces.engine import find_faces
from bot.faces.images import decode_image
from tests.conftest import same_person

LIMITS = {"max_bytes": 1 << 28, "max_pixels": 1 << 28}


@pytest.fixture(scope="module")
def obama(faces_dir: Path) -> np.ndarray:
    return decode_image((faces_dir / "people" / "obama" / "obama-480p.jpg").read_bytes(), **LIMITS)


def _one(rgb: np.ndarray, model: str | None = None):
    faces = find_faces(rgb, model=model)
    assert len(faces) == 1
    return faces[0]


def test_face_entry_carries_the_quality_object(obama: np.ndarray):
    entry = _one(obama).as_dict()
    q = entry["quality"]
    assert set(q) == {"eye_px", "sharpness", "exposure", "grayscale", "yaw_deg", "level"}
    assert q["level"] == "ok" and q["grayscale"] is False
    assert 20 < q["eye_px"] < entry["size"]  # eyes are inside the box
    assert quality.level_of(entry) == "ok"


def test_blur_lowers_sharpness_until_the_face_is_low_quality(obama: np.ndarray):
    sharp = _one(obama).quality
    soft = _one(np.asarray(Image.fromarray(obama).filter(ImageFilter.GaussianBlur(4)))).quality
    assert soft.sharpness < sharp.sharpness / 2
    assert soft.level == "low" and "soft" in soft.problems


def test_darkening_lowers_exposure(obama: np.ndarray):
    dark = (obama.astype(np.float32) * 0.25).astype(np.uint8)
    assert _one(dark).quality.exposure < _one(obama).quality.exposure * 0.4


def test_a_black_and_white_copy_is_grayscale(obama: np.ndarray):
    gray = np.repeat(np.asarray(Image.fromarray(obama).convert("L"))[..., None], 3, axis=2)
    assert _one(gray).quality.grayscale is True


def test_yaw_follows_the_nose_between_the_eyes():
    eyes = np.array([[100, 100], [120, 100], [160, 100], [180, 100]], dtype=float)
    centred = np.vstack([eyes, [[140, 140]]])
    turned = np.vstack([eyes, [[165, 140]]])
    other_way = np.vstack([eyes, [[115, 140]]])
    assert abs(quality.yaw_degrees(centred)) < 1
    assert quality.yaw_degrees(turned) > 25 and quality.yaw_degrees(other_way) < -25


def test_eye_centres_and_a_nose_tip_read_as_the_same_head_turn():
    """YuNet marks eye centres (image-left first) and the nose tip; dlib's 5-point model marks eye corners
    (image-right eye first) and the nose base, which sits less far in front of the eyes. The adapter gives
    `measure` the layout it reads, with the turn the base would show."""
    left, right = np.array([110.0, 100.0]), np.array([170.0, 100.0])
    base_px = 10.0  # the nose base 10 px right of the eyes' midline, on a 60 px eye span
    dlib5 = np.array([[180, 100], [160, 100], [100, 100], [120, 100], [140 + base_px, 140]], dtype=float)
    tip_px = base_px * 0.50 / 0.45  # the tip stands further out: the same turn moves it further
    adapted = quality.from_eye_centres_and_nose_tip(left, right, [140 + tip_px, 130])
    assert abs(quality.yaw_degrees(adapted) - quality.yaw_degrees(dlib5)) < 0.01
    assert abs(quality.yaw_degrees(dlib5)) > 10
    assert abs(quality.yaw_degrees(quality.from_eye_centres_and_nose_tip(left, right, [140, 130]))) < 1e-9
    a, b = quality.eye_centres(adapted)
    assert float(np.hypot(*(b - a))) == 60.0  # eye distance between the centres


def test_old_string_quality_entries_still_read():
    assert quality.level_of({"quality": "too_small"}) == "too_small"
    assert quality.level_of({"quality": {"level": "low"}}) == "low"
    assert quality.level_of({}) == "ok"


def test_a_tight_crop_is_found_by_padding_never_by_taking_the_whole_image(faces_dir: Path, obama: np.ndarray):
    """A still cut exactly at the face box has no head outline for HOG: padding finds it, inside the crop."""
    face = _one(obama)
    b = face.box
    shrink = round(b.width * 0.2)  # tighter than the detector's own box: brows to lips
    crop = np.ascontiguousarray(obama[b.top + shrink : b.bottom - shrink, b.left + shrink : b.right - shrink])
    assert all(len(detection.hog()(crop, up)) == 0 for up in (0, 1, 2))  # HOG alone misses it
    found = find_boxes(crop)
    assert found.how == "padded" and len(found.boxes) == 1
    box = found.boxes[0]
    h, w = crop.shape[:2]
    assert 0 <= box.left < box.right <= w and 0 <= box.top < box.bottom <= h
    # The detector's own box on the padded copy, reaching past the cut: a detection, not the frame assumed.
    pbox = found.encode_boxes[0]
    assert pbox.as_dict() != {"top": 0, "right": w, "bottom": h, "left": 0}
    tight = _one(crop)
    # Still the same person to the encoder: within the search's distance ceiling of the full photo's face
    # (the chip's cut-off forehead and chin cost some similarity). With dlib-resnet: sface loses more on a
    # brows-to-lips cut (0.56 against its 0.55 ceiling here; its nearest people/ photo is still the same
    # person: tests/faces/test_sface.py).
    dlib = "dlib-resnet"
    assert same_person(_one(crop, dlib).encoding, _one(obama, dlib).encoding, dlib)
    assert tight.found_by == "padded"
    # A crop of the same size without a face (a corner of the photo) stays without one.
    corner = np.ascontiguousarray(obama[:h, :w])
    assert find_faces(corner) == []


def test_padding_invents_no_face():
    flat = np.full((200, 160, 3), 128, np.uint8)
    flat[60:140, 40:120] = 90  # a dark square is not a face
    assert find_faces(flat) == []
