"""Probe quality per face: eye distance, sharpness, exposure, grayscale, head turn; one verdict.

Plain measurements of the pixels and of dlib's 5-point landmarks (two corners of each eye and the base of the
nose; a model that places other points maps them to these first, e.g. `from_eye_centres_and_nose_tip`),
nothing learned and nothing about who the person is (no age, gender or race: GO 375.01 C).

- `eye_px`: distance between the eye centres in pixels of the photo. dlib's encoder resamples every face to
  150×150; below ~30 px between the eyes it is mostly inventing detail.
- `sharpness`: variance of the Laplacian of the face, resampled to 128 px wide (so it does not grow with
  resolution), divided by the face's own contrast; small means soft or blurred.
- `exposure`: mean luminance of the face, 0 (black) to 1 (white).
- `grayscale`: the photo has no colour (CCTV at night, scanned prints).
- `yaw_deg`: head turn left or right, from where the nose base sits between the eyes. Approximate (about
  ±10°): the landmarks are not a 3-D head model.

`level` is "too_small" (box narrower than `min_face_px`), "low" (any of the limits in `LOW_LIMITS`) or "ok".
The limits were set on the development set (bench/accuracy.py reports FNIR per level); see the README.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

# Below / above these a face is "low" quality: the search still runs but the officer is told what it means.
LOW_LIMITS = {
    "eye_px_min": 28.0,
    "sharpness_min": 0.015,
    "exposure_min": 0.12,
    "exposure_max": 0.90,
    "yaw_abs_max": 30.0,
}
# Depth of the nose base in front of the eyes, as a share of the distance between the eyes (anthropometric
# average); turns the nose's sideways offset into an angle.
_NOSE_DEPTH = 0.45
# The same for the nose tip, which a detector marking eye centres and the tip (YuNet) gives instead of the base:
# set on the first third of the dev set's people (414 faces both HOG and YuNet find), where it turns the
# tip's offset into the angle the base gives (median difference 3.7°; 10 faces past the 30° limit against
# the base's 11).
_NOSE_TIP_DEPTH = 0.50
_SHARP_WIDTH = 128


@dataclass(frozen=True)
class Quality:
    """Measurements of one face (see the module docstring) and the verdict `level`."""

    eye_px: float
    sharpness: float
    exposure: float
    grayscale: bool
    yaw_deg: float
    level: str  # "ok" | "low" | "too_small"

    def as_dict(self) -> dict:
        """{"eye_px","sharpness","exposure","grayscale","yaw_deg","level"} (CONTRACTS.md), rounded for JSON."""
        d = asdict(self)
        d["eye_px"] = round(self.eye_px, 1)
        d["sharpness"] = round(self.sharpness, 4)
        d["exposure"] = round(self.exposure, 3)
        d["yaw_deg"] = round(self.yaw_deg, 1)
        return d

    @property
    def problems(self) -> tuple[str, ...]:
        """Which limits this face misses, as keys: "small", "eyes", "soft", "dark", "bright", "turned"."""
        return problems(self.as_dict())


def problems(quality: dict) -> tuple[str, ...]:
    """The limits a stored quality object misses (works on the JSON form, for adapters and old entries)."""
    out = []
    if quality.get("level") == "too_small":
        out.append("small")
    if float(quality.get("eye_px", 1e9)) < LOW_LIMITS["eye_px_min"]:
        out.append("eyes")
    if float(quality.get("sharpness", 1e9)) < LOW_LIMITS["sharpness_min"]:
        out.append("soft")
    exposure = float(quality.get("exposure", 0.5))
    if exposure < LOW_LIMITS["exposure_min"]:
        out.append("dark")
    if exposure > LOW_LIMITS["exposure_max"]:
        out.append("bright")
    if abs(float(quality.get("yaw_deg", 0.0))) > LOW_LIMITS["yaw_abs_max"]:
        out.append("turned")
    return tuple(out)


def landmark_points(shape) -> np.ndarray:
    """dlib full_object_detection -> float array (n, 2) of (x, y)."""
    return np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)], dtype=np.float64)


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two eye centres from the 5-point model (parts 0-1 one eye's corners, 2-3 the other's)."""
    return (points[0] + points[1]) / 2.0, (points[2] + points[3]) / 2.0


def from_eye_centres_and_nose_tip(left_eye: np.ndarray, right_eye: np.ndarray, nose_tip: np.ndarray) -> np.ndarray:
    """The 5-point layout `measure` reads, from a detector that marks the eye centres (image-left, image-right)
    and the nose tip (YuNet): each centre stands for both corners of its eye, and the tip's offset from the
    eyes' midpoint is scaled by _NOSE_DEPTH / _NOSE_TIP_DEPTH, so `yaw_degrees` reads the same head turn."""
    left_eye, right_eye, nose_tip = (np.asarray(p, dtype=np.float64) for p in (left_eye, right_eye, nose_tip))
    mid = (left_eye + right_eye) / 2.0
    base = mid + (nose_tip - mid) * (_NOSE_DEPTH / _NOSE_TIP_DEPTH)
    # dlib's 5-point order: the image-right eye's two corners, the image-left eye's two, the nose base.
    return np.stack([right_eye, right_eye, left_eye, left_eye, base])


def yaw_degrees(points: np.ndarray) -> float:
    """Approximate head turn from 5 landmarks: the nose base's offset from the eyes' midline, as an angle."""
    a, b = eye_centres(points)
    axis = b - a
    span = float(np.hypot(*axis))
    if span < 1e-6:
        return 0.0
    unit = axis / span
    offset = float(np.dot(points[4] - (a + b) / 2.0, unit)) / span
    return math.degrees(math.atan(offset / _NOSE_DEPTH))


def _face_gray(rgb: np.ndarray, box) -> np.ndarray:
    top, bottom = max(box.top, 0), min(box.bottom, rgb.shape[0])
    left, right = max(box.left, 0), min(box.right, rgb.shape[1])
    crop = rgb[top:bottom, left:right]
    if crop.size == 0:
        return np.zeros((1, 1), dtype=np.float64)
    gray = Image.fromarray(np.ascontiguousarray(crop)).convert("L")
    if gray.width != _SHARP_WIDTH:
        height = max(1, round(gray.height * _SHARP_WIDTH / gray.width))
        gray = gray.resize((_SHARP_WIDTH, height), Image.Resampling.BILINEAR)
    return np.asarray(gray, dtype=np.float64) / 255.0


def sharpness(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian, over the face's own variance (contrast-free softness measure)."""
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        return 0.0
    lap = (gray[1:-1, :-2] + gray[1:-1, 2:] + gray[:-2, 1:-1] + gray[2:, 1:-1]) - 4.0 * gray[1:-1, 1:-1]
    contrast = float(gray.var())
    return float(lap.var()) / contrast if contrast > 1e-6 else 0.0


def is_grayscale(rgb: np.ndarray) -> bool:
    """True when the three channels are (nearly) equal everywhere: a black-and-white photo."""
    step = max(1, int(math.sqrt(rgb.shape[0] * rgb.shape[1] / 65536)))  # a sample is enough
    sample = rgb[::step, ::step].astype(np.int16)
    return bool(np.abs(sample[..., 0] - sample[..., 1]).max() <= 8 and np.abs(sample[..., 1] - sample[..., 2]).max() <= 8)


def measure(rgb: np.ndarray, box, points: np.ndarray, *, min_face_px: int, grayscale: bool | None = None,
            scale: float = 1.0) -> Quality:
    """Quality of the face in `box` with its 5 landmark `points`; `grayscale` may be passed when known.
    `scale`: pixels of `rgb` per pixel of the photo (a reduced copy), so sizes are the photo's."""
    a, b = eye_centres(points)
    eye_px = float(np.hypot(*(b - a))) / scale
    gray = _face_gray(rgb, box)
    sharp = sharpness(gray)
    exposure = float(gray.mean())
    yaw = yaw_degrees(points)
    mono = is_grayscale(rgb) if grayscale is None else grayscale
    values = {"eye_px": eye_px, "sharpness": sharp, "exposure": exposure, "yaw_deg": yaw}
    if (box.right - box.left) / scale < min_face_px:
        level = "too_small"
    elif problems({**values, "level": "ok"}):
        level = "low"
    else:
        level = "ok"
    return Quality(eye_px=eye_px, sharpness=sharp, exposure=exposure, grayscale=mono, yaw_deg=yaw, level=level)


def level_of(face: dict) -> str:
    """The quality verdict of a stored face entry: the `level` of its quality object, or the plain string that
    entries written before quality objects carried ("ok" | "too_small")."""
    q = face.get("quality")
    if isinstance(q, dict):
        return str(q.get("level", "ok"))
    return str(q or "ok")
