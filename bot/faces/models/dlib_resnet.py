"""`dlib-resnet`: today's matcher. face_recognition's models (dlib's HOG detector, its 5-point landmark model
and the 2017 ResNet encoder), loaded straight from `face_recognition_models`: importing `face_recognition`
itself would also load a 100 MB landmark model and a CNN detector we never use, and flip PIL's
LOAD_TRUNCATED_IMAGES for the process. The ResNet runs in numpy (bot.faces.resnet: the same network and
weights, ~8× faster than the BLAS-less dlib wheel).

Template: the mean of the descriptor of the aligned 150×150 chip and of its mirror image (see `encode`), so
close to but not the same as plain face_recognition's; compared by Euclidean distance.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, NamedTuple

import dlib
import numpy as np

from bot.faces import calibration, detection, resnet
from bot.faces.detection import Box, Found
from bot.faces.models.base import Model, Once, checked_bytes

ID = "dlib-resnet"
# The pipeline as the audit log has always named it (galleries enrolled before record this string).
MODEL_NAME = "dlib_face_recognition_resnet_model_v1 (HOG detector, 5-point landmarks, mirror-averaged)"
VERSION = "resnet_v1+hog+5pt+mirror-1"
RUNTIME = "numpy"
# face_recognition_models 0.3.0's files: the encoder's weights (the template) and the 5-point model (the
# alignment, which moves the template too).
WEIGHTS_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
LANDMARKS_SHA256 = "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888"
# The aligned face chip dlib's encoder takes, as compute_face_descriptor cuts it.
CHIP_SIZE = 150
CHIP_PADDING = 0.25


class _Loaded(NamedTuple):
    landmarks: Any  # dlib.shape_predictor (5 points)
    encoder: resnet.DlibResNet


def weight_paths() -> tuple[Path, Path]:
    """(ResNet weights, 5-point landmark model) inside the installed face_recognition_models."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # face_recognition_models imports the deprecated pkg_resources
        import face_recognition_models as frm
    return Path(frm.face_recognition_model_location()), Path(frm.pose_predictor_five_point_model_location())


def encoder(path: Path | None = None) -> resnet.DlibResNet:
    """The ResNet built from the checked bytes of its file (WeightsError, a sentence, on a mismatch)."""
    return resnet.DlibResNet.from_bytes(checked_bytes(path or weight_paths()[0], WEIGHTS_SHA256))


def verify() -> None:
    """Check both files against their SHA-256 (WeightsError), loading nothing."""
    weights, landmark_model = weight_paths()
    checked_bytes(weights, WEIGHTS_SHA256)
    checked_bytes(landmark_model, LANDMARKS_SHA256)


def _load() -> _Loaded:
    path = weight_paths()[1]
    checked_bytes(path, LANDMARKS_SHA256)  # dlib reads it by path
    return _Loaded(dlib.shape_predictor(str(path)), encoder())


_ONCE = Once(_load)


def load() -> _Loaded:
    """The landmark model and the encoder, loaded into this process on first use (dlib's objects are not
    thread-safe: one set per worker process), each file checked against its SHA-256 first (WeightsError)."""
    return _ONCE.get()


def locate(rgb: np.ndarray, detect_max_side: int) -> Found:
    """HOG boxes with its retries (bot.faces.detection.find_boxes)."""
    return detection.find_boxes(rgb, detect_max_side)


def landmarks(pixels: np.ndarray, box: Box) -> np.ndarray:
    """dlib's 5 points of the face in `box` (5, 2): one eye's two corners, the other's, the nose base.
    Deterministic: the same pixels and box give the same points (whole pixels)."""
    shape = load().landmarks(pixels, dlib.rectangle(box.left, box.top, box.right, box.bottom))
    return np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)], dtype=np.float64)


def quality_points(points: np.ndarray) -> np.ndarray:
    """The 5 points are already bot.faces.quality's layout."""
    return points


def chip(pixels: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The aligned 150×150 chip dlib's encoder takes (padding 0.25, as compute_face_descriptor cuts it)."""
    parts = dlib.points([dlib.point(int(x), int(y)) for x, y in points])
    shape = dlib.full_object_detection(dlib.rectangle(0, 0, 0, 0), parts)  # the chip is cut from the parts alone
    return dlib.get_face_chip(pixels, shape, size=CHIP_SIZE, padding=CHIP_PADDING)


def encode(pixels: np.ndarray, points: list[np.ndarray]) -> list[np.ndarray]:
    """A 128-d float32 template per face, from full-resolution pixels.

    The template is the mean of the chip's descriptor and its mirror image's: on the development set that
    lowered FNIR at FPIR 1 % from 40 % to 34 % for one more pass of the network (~8 ms), where dlib's random
    jitter (5 passes, and not reproducible) gave 38 % (bench/README: pipeline choices). The chips of one call
    go through the network in one batch (a face's template can differ in the last bits with the batch).
    """
    if not points:
        return []
    chips = np.stack([chip(pixels, p) for p in points])
    return [np.asarray(enc, dtype=np.float32) for enc in mirror_averaged(chips)]


def mirror_averaged(chips: np.ndarray) -> np.ndarray:
    """(N,128) float32: the mean descriptor of each aligned chip and its mirror image, in one network batch."""
    both = load().encoder.descriptors(np.concatenate([chips, chips[:, :, ::-1]]))
    return (both[: len(chips)] + both[len(chips) :]) / 2


def distance(templates: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Euclidean distance from each row of `templates` to `template` (face_recognition's face_distance)."""
    templates = np.asarray(templates, dtype=np.float32).reshape(-1, 128)
    return np.linalg.norm(templates - np.asarray(template, dtype=np.float32), axis=1)


# Closer than this, two subjects are reported at enrollment as possibly one person enrolled twice (which
# drives the margin to zero and hides the mate). On the dev set, 27 % of same-person photo pairs are closer,
# and 2 of 2.27 M pairs of different people.
NEAR_DUPLICATE = 0.35

MODEL = Model(id=ID, version=VERSION, weights_sha256=WEIGHTS_SHA256, runtime=RUNTIME, template_size=128,
              metric="euclidean", scale=calibration.DLIB_RESNET, near_duplicate=NEAR_DUPLICATE, load=load,
              verify=verify, locate=locate, landmarks=landmarks, quality_points=quality_points, encode=encode,
              distance=distance)
