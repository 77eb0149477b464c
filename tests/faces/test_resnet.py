"""bot.faces.resnet: dlib's ResNet in numpy gives dlib's own descriptors, on real faces."""

from __future__ import annotations

import warnings
from pathlib import Path

import dlib
import numpy as np
import pytest

from bot.faces import detection, resnet
from bot.faces.images import decode_image
from bot.faces.models import dlib_resnet

LIMITS = {"max_bytes": 1 << 28, "max_pixels": 1 << 28}


@pytest.fixture(scope="module")
def dlib_encoder():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition_models as frm
    return dlib.face_recognition_model_v1(frm.face_recognition_model_location())


def _shapes(rgb: np.ndarray):
    predictor = dlib_resnet.load().landmarks
    return [predictor(rgb, r) for r in detection.hog()(rgb, 1)]


def test_descriptors_equal_dlibs_on_every_shared_face(faces_dir: Path, dlib_encoder):
    """Every face of people/ and group/: the numpy network's descriptor is dlib's to 1e-5 (distances ~0.5)."""
    net = dlib_resnet.load().encoder
    compared = 0
    for path in sorted((faces_dir / "people").glob("*/*")) + sorted((faces_dir / "group").glob("*")):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue  # odd formats are the images tests' business
        rgb = decode_image(path.read_bytes(), **LIMITS)
        for shape in _shapes(rgb):
            ours = net.descriptors(dlib.get_face_chip(rgb, shape, size=150, padding=0.25)[None])[0]
            theirs = np.asarray(dlib_encoder.compute_face_descriptor(rgb, shape, 1))
            assert np.linalg.norm(ours - theirs) < 1e-5, path.name
            compared += 1
    assert compared >= 20


def test_a_batch_gives_the_same_descriptors_as_one_at_a_time(faces_dir: Path):
    net = dlib_resnet.load().encoder
    rgb = decode_image((faces_dir / "group" / "obama_and_biden.jpg").read_bytes(), **LIMITS)
    chips = np.stack([dlib.get_face_chip(rgb, s, size=150, padding=0.25) for s in _shapes(rgb)])
    assert len(chips) >= 2
    batch = net.descriptors(chips)
    single = np.stack([net.descriptors(c[None])[0] for c in chips])
    assert batch.shape == (len(chips), 128) and batch.dtype == np.float32
    assert np.abs(batch - single).max() < 1e-5


def test_a_wrong_chip_size_is_refused():
    net = dlib_resnet.load().encoder
    with pytest.raises(ValueError, match="150x150x3"):
        net.descriptors(np.zeros((1, 120, 120, 3), np.uint8))


def test_a_model_file_of_another_network_is_refused(tmp_path: Path):
    """Only the network the parser knows is accepted: a cut or foreign file is an error, never a guess."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition_models as frm
    data = Path(frm.face_recognition_model_location()).read_bytes()
    cut = tmp_path / "cut.dat"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises((ValueError, IndexError)):
        resnet.load(str(cut))
    other = tmp_path / "landmarks.dat"
    other.write_bytes(Path(frm.pose_predictor_five_point_model_location()).read_bytes())
    with pytest.raises((ValueError, NotImplementedError, IndexError)):
        resnet.load(str(other))
