"""After the attestation the Slack flow encodes the chosen face from what it stored at detection (the probe
cache), never detecting again: for a face YuNet found (sface) that includes YuNet's points."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from bot.config import ImageSettings
from bot.faces.engine import analyse_bytes, detect_rgb, encode_bytes
from bot.faces.images import decode_image
from bot.slack.flow.searching import encode_args, prepare_probe
from bot.store.probes import ProbeCache

IMAGES = ImageSettings()
LIMITS = {"max_bytes": IMAGES.max_bytes, "max_pixels": IMAGES.max_pixels}


def _digest(v: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(v, dtype=np.float32).tobytes()).hexdigest()


def _stored(tmp_path: Path, data: bytes, model: str):
    probe = detect_rgb(decode_image(data, **LIMITS), data, IMAGES, model=model)
    cache = ProbeCache(tmp_path)
    cache.put("FR-1", prepare_probe(probe, [b"jpeg"] * len(probe.faces), None))
    return cache.get("FR-1")


def test_a_face_yunet_found_is_encoded_later_from_the_stored_points(tmp_path: Path, dev_faces_dir: Path):
    data = (dev_faces_dir / "people" / "Robert_Bullock" / "Robert_Bullock_0002.jpg").read_bytes()  # HOG: none
    cached = _stored(tmp_path, data, "sface")
    assert cached is not None and len(cached.encode["points"]) == 1
    later = encode_bytes(data, IMAGES, *encode_args(cached, 1), model="sface")
    assert _digest(later) == _digest(analyse_bytes(data, IMAGES, model="sface").faces[0].encoding)


def test_todays_probe_stores_what_it_stored_before(tmp_path: Path, faces_dir: Path):
    data = (faces_dir / "group" / "obama_and_biden.jpg").read_bytes()
    cached = _stored(tmp_path, data, "dlib-resnet")
    assert cached is not None and set(cached.encode) == {"padded", "scale", "boxes"}
    at_once = analyse_bytes(data, IMAGES, model="dlib-resnet")
    for i in (1, 2, 3):
        args = encode_args(cached, i)
        assert args[-1] is None
        assert _digest(encode_bytes(data, IMAGES, *args, model="dlib-resnet")) == _digest(at_once.faces[i - 1].encoding)


def test_points_of_another_models_detector_are_never_encoded_by_this_one(tmp_path: Path, dev_faces_dir: Path,
                                                                         faces_dir: Path):
    """A face YuNet placed (sface) keeps its points with the model that placed them: if the gallery moved to
    another model before the attestation, the search is refused with a sentence, never encoded from points that
    mean nothing to that model. HOG boxes are every model's, so a probe stored without points still encodes."""
    import pytest

    from bot import service, wording
    from bot.slack.flow.searching import check_detected_with

    yunet_face = _stored(tmp_path / "a", (dev_faces_dir / "people" / "Robert_Bullock" /
                                          "Robert_Bullock_0002.jpg").read_bytes(), "sface")
    assert yunet_face.encode["model"] == "sface"
    check_detected_with(yunet_face, "sface")
    with pytest.raises(service.GalleryModelMismatch) as refused:
        check_detected_with(yunet_face, "dlib-resnet")
    assert str(refused.value) == wording.gallery_model_moved("dlib-resnet", "sface")
    hog_faces = _stored(tmp_path / "b", (faces_dir / "group" / "obama_and_biden.jpg").read_bytes(), "sface")
    assert "model" not in hog_faces.encode
    check_detected_with(hog_faces, "dlib-resnet")
    assert wording.image_problem("gallery_moved") == wording.GALLERY_MOVED
