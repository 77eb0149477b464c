"""RGB pixels -> faces: box, size, quality verdict and the 128-d encoding; a process pool for async callers.

The models are face_recognition's (dlib's HOG detector, its 5-point landmark model and ResNet encoder),
loaded straight from `face_recognition_models`: importing `face_recognition` itself would also load a
100 MB landmark model and a CNN detector we never use, and flip PIL's LOAD_TRUNCATED_IMAGES for the
process. The encodings are face_recognition's model averaged over the face and its mirror image (see
`_encode`), so they are close to but not the same as plain face_recognition's. The ResNet encoder runs in numpy (bot.faces.resnet: the same network and weights, ~8× faster than
the BLAS-less dlib wheel). Nothing here infers age, gender or race; what leaves it is boxes, encodings and
the quality measurements of bot.faces.quality (GO 375.01 C).

Speed: HOG detection runs on a copy whose longer side is at most `detect_max_side`, without upsampling;
boxes are mapped back and encodings computed from the full-resolution pixels. Only when that finds no
face is detection repeated with upsampling (up to twice, while the scanned side stays under 2,048 px), so a
small or distant face still turns up; and when even that finds nothing the photo is padded on a plain border and searched
once more, so a still cropped tight around a face is found (HOG needs the outline of a whole head).

Memory: no copy made while searching (the upsampled scan, the padded photo) holds more than
`copy_bound(detect_max_side)` = 4 × detect_max_side² pixels; a photo whose padded copy would be larger is
scaled down first (its faces are then encoded from that copy: a face found only there is large).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import io
import multiprocessing
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, InvalidStateError, wait
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Self, TypeVar

import dlib
import numpy as np
from pebble import ProcessExpired, ProcessPool
from PIL import Image

from bot import __version__ as BOT_VERSION
from bot.config import ImageSettings
from bot.faces import quality, resnet
from bot.faces.fair import FairQueue
from bot.faces.images import ImageError, decode_image, sha256_hex
from bot.faces.quality import Quality

MODEL_NAME = "dlib_face_recognition_resnet_model_v1 (HOG detector, 5-point landmarks, mirror-averaged)"

# Upsampling doubles the side HOG scans (and quadruples its time) per step: retries stop before the scanned
# side passes this. A 140 px still gets two doublings, a 560 px crop one, a 1,024 px copy one; HOG at 2,240 px
# took ~0.4 s for a face it found in 2 of 3,108 dev-set photos.
MAX_UPSAMPLED_SIDE = 2048
# The aligned face chip dlib's encoder takes, as compute_face_descriptor cuts it.
CHIP_SIZE = 150
CHIP_PADDING = 0.25
# A photo where nothing is found is padded by this share of its longer side on every side and searched again.
PAD_SHARE = 0.25
# No copy made while searching is larger than this many times detect_max_side² pixels (4: a 1,024 px copy
# upsampled once; 16 MB of RGB at the default).
COPY_BOUND_FACTOR = 4
# Environment for the worker processes: one BLAS thread each, the pool itself is the parallelism.
WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
WORKER_NICE = 10
# Face crops (gallery images at enrollment, probe faces in Slack): the box plus 25 % each side, the longer side
# exactly this many px (an examiner compares faces at this size; smaller faces are scaled up to it), JPEG q90.
CROP_PX = 320
CROP_MARGIN = 0.25
CROP_QUALITY = 90

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


@dataclass(frozen=True)
class Box:
    """A face box in pixels of the orientation-corrected image (face_recognition's css order)."""

    top: int
    right: int
    bottom: int
    left: int

    def as_dict(self) -> dict:
        """The box as {"top","right","bottom","left"}."""
        return {"top": self.top, "right": self.right, "bottom": self.bottom, "left": self.left}

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top


@dataclass(frozen=True)
class Face:
    """One detected face, numbered from 1 left to right; `size` is the box width in pixels."""

    index: int
    box: Box
    size: int
    quality: Quality
    # float32 (128,); None from `detect_faces`, before the attestation allows a biometric template.
    encoding: np.ndarray | None = field(repr=False, compare=False)
    found_by: str = field(default="hog", compare=False)  # "hog", "hog_up1", "hog_up2" or "padded"

    @property
    def level(self) -> str:
        """The quality verdict: "ok" | "low" | "too_small"."""
        return self.quality.level

    def as_dict(self) -> dict:
        """The face entry of CONTRACTS.md: {"index","box","size","quality":{...,"level"}} (never the encoding)."""
        return {"index": self.index, "box": self.box.as_dict(), "size": self.size, "quality": self.quality.as_dict()}


@dataclass(frozen=True)
class Probe:
    """What one uploaded photo yields: its SHA-256, upright dimensions and faces (left to right)."""

    sha256: str
    width: int
    height: int
    faces: tuple[Face, ...]
    # One JPEG per face (face_thumbnail), only when asked for: enrollment cuts them in the worker that
    # already holds the pixels, instead of decoding the photo a second time.
    thumbnails: tuple[bytes, ...] = field(default=(), repr=False, compare=False)
    # From `detect_bytes`: each face's box in the pixels it was found in, and whether those were the padded
    # copy (`encode_bytes` needs both to encode a face later without detecting again).
    encode_boxes: tuple[Box, ...] = field(default=(), repr=False, compare=False)
    padded: bool = field(default=False, compare=False)
    pad_scale: float = field(default=1.0, compare=False)  # Found.scale of a padded detection

    def as_dict(self) -> dict:
        """JSON-ready summary: hash, dimensions and the face entries."""
        return {
            "sha256": self.sha256,
            "width": self.width,
            "height": self.height,
            "faces": [f.as_dict() for f in self.faces],
        }


class _Models(NamedTuple):
    detector: Any
    landmarks: Any
    encoder: Any  # bot.faces.resnet.DlibResNet: dlib's ResNet run in numpy (see that module)


_models_cache: _Models | None = None
_models_lock = threading.Lock()


def _models() -> _Models:
    """Load the models once per process (dlib's are not thread-safe: one set per worker process)."""
    global _models_cache
    with _models_lock:
        if _models_cache is None:
            with warnings.catch_warnings():
                # face_recognition_models imports the deprecated pkg_resources.
                warnings.simplefilter("ignore")
                import face_recognition_models as frm
            _models_cache = _Models(
                detector=dlib.get_frontal_face_detector(),
                landmarks=dlib.shape_predictor(frm.pose_predictor_five_point_model_location()),
                encoder=resnet.load(frm.face_recognition_model_location()),
            )
        return _models_cache


def model_info() -> dict:
    """Model name and package versions, for the audit log."""
    return {
        "model": MODEL_NAME,
        "face_recognition": _version("face_recognition"),
        "dlib": getattr(dlib, "__version__", None) or _version("dlib-bin"),
        "bot": BOT_VERSION,
    }


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def copy_bound(detect_max_side: int) -> int:
    """The most pixels any copy made while searching a photo may hold."""
    return COPY_BOUND_FACTOR * detect_max_side**2


def _scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(height, width) scaled, at least 1 px each."""
    return max(1, round(height * scale)), max(1, round(width * scale))


def _reduced(rgb: np.ndarray, scale: float) -> np.ndarray:
    """A smaller copy (box filter: averages pixels, so no aliasing); the photo itself at scale 1."""
    if scale >= 1.0:
        return rgb
    height, width = _scaled_size(*rgb.shape[:2], scale)
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BOX))


def _detection_copy(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """A copy whose longer side is at most max_side."""
    return _reduced(rgb, max_side / max(rgb.shape[:2]))


def _upsample_steps(shape: tuple[int, ...], detect_max_side: int) -> tuple[int, ...]:
    """Upsampling tries on a copy of `shape` (height, width), in order: none first; the retries only run when
    the previous found nothing, and only while the upsampled scan stays under MAX_UPSAMPLED_SIDE and
    copy_bound (HOG upsamples the whole copy, ×4 pixels a step)."""
    height, width = shape[:2]
    bound = copy_bound(detect_max_side)
    return tuple(u for u in (0, 1, 2)
                 if u == 0 or (max(height, width) * 2**u <= MAX_UPSAMPLED_SIDE and height * width * 4**u <= bound))


def _detect(rgb: np.ndarray, detect_max_side: int) -> tuple[list[Box], str]:
    """HOG detection on the reduced copy; boxes mapped back to full resolution and clipped to the image.

    Returns the boxes and how they were found ("hog", "hog_up1", "hog_up2"; "" when nothing was).
    """
    detector = _models().detector
    height, width = rgb.shape[:2]
    small = _detection_copy(rgb, detect_max_side)
    sy, sx = height / small.shape[0], width / small.shape[1]
    rects: Any = []
    how = ""
    for upsample in _upsample_steps(small.shape, detect_max_side):
        rects = detector(small, upsample)
        if len(rects):
            how = "hog" if upsample == 0 else f"hog_up{upsample}"
            break
    boxes = [
        Box(
            top=max(round(r.top() * sy), 0),
            right=min(round(r.right() * sx), width),
            bottom=min(round(r.bottom() * sy), height),
            left=max(round(r.left() * sx), 0),
        )
        for r in rects
    ]
    return boxes, how


def _pad_width(height: int, width: int) -> int:
    return max(8, round(PAD_SHARE * max(height, width)))


def _pad_scale(height: int, width: int, detect_max_side: int) -> float:
    """1, or the scale at which the photo's padded copy holds at most copy_bound pixels."""
    bound = copy_bound(detect_max_side)
    longer = max(height, width)
    scale = min(1.0, (bound / ((height + 2 * PAD_SHARE * longer) * (width + 2 * PAD_SHARE * longer))) ** 0.5)
    while True:  # rounding and the 8 px floor can add a little: shrink until it fits (a step or two)
        h, w = _scaled_size(height, width, scale)
        pad = _pad_width(h, w)
        if (h + 2 * pad) * (w + 2 * pad) <= bound or (h == 1 and w == 1):
            return scale
        scale *= 0.995


def _padded(rgb: np.ndarray, detect_max_side: int) -> tuple[np.ndarray, int, float]:
    """The photo on a plain border of its own mean colour, PAD_SHARE of its longer side each way: the copy, the
    border's width and the scale the photo was reduced by first (1, unless the padded copy would hold more than
    copy_bound pixels: a long or large photo's border alone would dwarf it).

    HOG looks for the outline of a whole head: a still cropped tight around a face has none, and is found
    once it has room around it. A flat border adds no edge that could look like a face (measured on tight
    crops of the shared photos: a flat border at 25 % finds 32 of 33 that HOG missed, repeating the edge
    pixels 21).
    """
    scale = _pad_scale(*rgb.shape[:2], detect_max_side)
    base = _reduced(rgb, scale)
    pad = _pad_width(*base.shape[:2])
    fill = [int(v) for v in base.reshape(-1, 3).mean(axis=0)]
    out = np.empty((base.shape[0] + 2 * pad, base.shape[1] + 2 * pad, 3), dtype=np.uint8)
    out[...] = np.asarray(fill, dtype=np.uint8)
    out[pad:-pad, pad:-pad] = base
    return out, pad, scale


class Found(NamedTuple):
    """Detection result: boxes in the photo, how they were found, and where to encode them from."""

    boxes: list[Box]          # clipped to the photo, left to right
    how: str                  # "hog", "hog_up1", "hog_up2", "padded" or "" (nothing found)
    pixels: np.ndarray        # the photo, or its padded copy when the faces were found there
    encode_boxes: list[Box]   # the same faces in `pixels` coordinates (uncut by the photo's border)
    scale: float = 1.0        # pixels of `pixels` per pixel of the photo (below 1: a reduced padded copy)


def find_boxes(rgb: np.ndarray, detect_max_side: int = 1024) -> Found:
    """Face boxes in `rgb`, left to right; a photo where nothing is found is padded and searched again."""
    boxes, how = _detect(rgb, detect_max_side)
    if boxes:
        boxes = sorted((b for b in boxes if b.width > 0 and b.height > 0), key=lambda b: (b.left, b.top))
        return Found(boxes, how, rgb, boxes)
    padded, pad, scale = _padded(rgb, detect_max_side)
    found, _ = _detect(padded, detect_max_side)
    height, width = rgb.shape[:2]

    def photo(v: int) -> int:  # a padded copy's coordinate in the photo
        return round((v - pad) / scale)

    pairs = []
    for b in found:
        c = Box(top=max(photo(b.top), 0), right=min(photo(b.right), width),
                bottom=min(photo(b.bottom), height), left=max(photo(b.left), 0))
        if c.width > 0 and c.height > 0:
            pairs.append((c, b))
    if not pairs:
        return Found([], "", rgb, [])
    pairs.sort(key=lambda cb: (cb[0].left, cb[0].top))
    return Found([c for c, _ in pairs], "padded", padded, [b for _, b in pairs], scale)


def _landmarks(rgb: np.ndarray, boxes: list[Box]) -> list[Any]:
    """dlib's 5-point landmarks of each box (deterministic: the same pixels and box give the same points)."""
    predictor = _models().landmarks
    return [predictor(rgb, dlib.rectangle(b.left, b.top, b.right, b.bottom)) for b in boxes]


def _encode_shapes(rgb: np.ndarray, shapes: list[Any]) -> list[np.ndarray]:
    """A 128-d float32 encoding per landmarked face, from full-resolution pixels.

    dlib aligns each face to the 150×150 chip its encoder expects (padding 0.25, as compute_face_descriptor
    does). The encoding is the mean of the chip's descriptor and its mirror image's: on the development set
    that lowered FNIR at FPIR 1 % from 40 % to 34 % for one more pass of the network (~8 ms), where dlib's
    random jitter (5 passes, and not reproducible) gave 38 % (bench/README: pipeline choices). The chips of
    one photo go through the network in one batch.
    """
    if not shapes:
        return []
    chips = np.stack([dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING) for shape in shapes])
    return [np.asarray(enc, dtype=np.float32) for enc in mirror_averaged(chips)]


def _encode(rgb: np.ndarray, boxes: list[Box]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(128-d encoding, 5 landmark points) per box (see `_encode_shapes`)."""
    shapes = _landmarks(rgb, boxes)
    return [(enc, quality.landmark_points(shape)) for enc, shape in zip(_encode_shapes(rgb, shapes), shapes)]


def mirror_averaged(chips: np.ndarray) -> np.ndarray:
    """(N,128) float32: the mean descriptor of each aligned chip and its mirror image, in one network batch."""
    both = _models().encoder.descriptors(np.concatenate([chips, chips[:, :, ::-1]]))
    return (both[: len(chips)] + both[len(chips) :]) / 2


def _checked_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("find_faces needs an HxWx3 RGB array")
    return rgb


def _faces(rgb: np.ndarray, found: Found, points: list[np.ndarray], encodings: list[np.ndarray | None],
           min_face_px: int) -> list[Face]:
    mono = quality.is_grayscale(rgb)
    faces = []
    for i, (box, pbox, pts, enc) in enumerate(zip(found.boxes, found.encode_boxes, points, encodings), start=1):
        q = quality.measure(found.pixels, pbox, pts, min_face_px=min_face_px, grayscale=mono, scale=found.scale)
        faces.append(Face(index=i, box=box, size=box.width, quality=q, encoding=enc, found_by=found.how))
    return faces


def find_faces(rgb: np.ndarray, *, min_face_px: int = 60, detect_max_side: int = 1024) -> list[Face]:
    """Detect and encode every face in an HxWx3 uint8 RGB array; numbered from 1, left to right."""
    rgb = _checked_rgb(rgb)
    found = find_boxes(rgb, detect_max_side)
    encoded = _encode(found.pixels, found.encode_boxes)
    return _faces(rgb, found, [p for _, p in encoded], [e for e, _ in encoded], min_face_px)


def detect_faces(rgb: np.ndarray, *, min_face_px: int = 60, detect_max_side: int = 1024) -> tuple[list[Face], Found]:
    """Faces with boxes and quality but no encoding (encoding=None): what may be known of a photo before the
    requester attests. Also returns the detection, for `encode_found` later."""
    rgb = _checked_rgb(rgb)
    found = find_boxes(rgb, detect_max_side)
    points = [quality.landmark_points(s) for s in _landmarks(found.pixels, found.encode_boxes)]
    return _faces(rgb, found, points, [None] * len(points), min_face_px), found


def encode_at(rgb: np.ndarray, encode_box: Box, padded: bool, detect_max_side: int = 1024,
              scale: float | None = None) -> np.ndarray:
    """The encoding of one face `detect_faces` found, from the same photo: `encode_box` is its box in the
    pixels it was found in (the padded copy when `padded`, built again the same way: `scale`, when known, is
    the one detection used, checked). Nothing is detected again."""
    rgb = _checked_rgb(rgb)
    if not padded:
        return _encode_shapes(rgb, _landmarks(rgb, [encode_box]))[0]
    if scale is not None and abs(_pad_scale(*rgb.shape[:2], detect_max_side) - scale) > 1e-9:
        # Found with other settings (or before copies were bounded): the box would point elsewhere.
        raise ImageError("changed", "the photo's padded copy is not the one its faces were found on")
    pixels = _padded(rgb, detect_max_side)[0]
    return _encode_shapes(pixels, _landmarks(pixels, [encode_box]))[0]


def analyse_bytes(data: bytes, images: ImageSettings, *, thumbnails: bool = False) -> Probe:
    """Decode an upload and find its faces; raises ImageError when the bytes are not a usable photo.

    With thumbnails=True the probe also carries face_thumbnail() of each face, in face order.
    """
    rgb = decode_image(data, max_bytes=images.max_bytes, max_pixels=images.max_pixels,
                       max_aspect_ratio=images.max_aspect_ratio)
    return analyse_rgb(rgb, data, images, thumbnails=thumbnails)


def analyse_rgb(rgb: np.ndarray, data: bytes, images: ImageSettings, *, thumbnails: bool = False) -> Probe:
    """The faces of an already decoded photo (`data`: its bytes, for the hash); see analyse_bytes."""
    faces = find_faces(rgb, min_face_px=images.min_face_px, detect_max_side=images.detect_max_side)
    thumbs = tuple(face_thumbnail(rgb, f.box) for f in faces) if thumbnails else ()
    return Probe(
        sha256=sha256_hex(data),
        width=rgb.shape[1],
        height=rgb.shape[0],
        faces=tuple(faces),
        thumbnails=thumbs,
    )


def detect_rgb(rgb: np.ndarray, data: bytes, images: ImageSettings) -> Probe:
    """`analyse_rgb` without encodings (each face's `encoding` is None): boxes, quality, and what
    `encode_bytes` needs to encode a face after the attestation."""
    faces, found = detect_faces(rgb, min_face_px=images.min_face_px, detect_max_side=images.detect_max_side)
    return Probe(sha256=sha256_hex(data), width=rgb.shape[1], height=rgb.shape[0], faces=tuple(faces),
                 encode_boxes=tuple(found.encode_boxes), padded=found.how == "padded", pad_scale=found.scale)


def encode_bytes(data: bytes, images: ImageSettings, sha256: str, encode_box: dict, padded: bool,
                 scale: float | None = None) -> np.ndarray:
    """The encoding of one face found earlier by `detect_bytes`/`detect_rgb` on these same bytes (checked by
    their SHA-256: a different photo raises ImageError "changed"; `scale`: the probe's `pad_scale`). Nothing
    is detected again."""
    if sha256_hex(data) != sha256:
        raise ImageError("changed", "the photo is not the one its faces were found on")
    rgb = decode_image(data, max_bytes=images.max_bytes, max_pixels=images.max_pixels,
                       max_aspect_ratio=images.max_aspect_ratio)
    box = Box(**{k: int(encode_box[k]) for k in ("top", "right", "bottom", "left")})
    return encode_at(rgb, box, padded, images.detect_max_side, scale)


def face_thumbnail(rgb: np.ndarray, box: Box, size: int = CROP_PX, margin: float = CROP_MARGIN) -> bytes:
    """JPEG bytes (quality CROP_QUALITY) of the face with `margin` of the box on each side (clipped to the
    image), resized with LANCZOS so its longer side is exactly `size` px: a smaller face is scaled up, so every
    crop shows faces at the same scale and an examiner compares like with like."""
    height, width = rgb.shape[:2]
    mx, my = round(box.width * margin), round(box.height * margin)
    top, bottom = max(box.top - my, 0), min(box.bottom + my, height)
    left, right = max(box.left - mx, 0), min(box.right + mx, width)
    if bottom <= top or right <= left:
        raise ValueError(f"the face box {box.as_dict()} lies outside the {width}×{height} image")
    crop = Image.fromarray(np.ascontiguousarray(rgb[top:bottom, left:right]))
    factor = size / max(crop.size)
    crop = crop.resize((max(1, round(crop.width * factor)), max(1, round(crop.height * factor))),
                       Image.Resampling.LANCZOS)
    out = io.BytesIO()
    crop.save(out, "JPEG", quality=CROP_QUALITY)
    return out.getvalue()


def _die_with_parent(interval: float = 0.5) -> None:
    """Exit this worker as soon as the process that started it is gone (kill -9 of the server leaves no
    worker burning CPU): a daemon thread watches for the worker being handed to another parent.

    Not prctl(PR_SET_PDEATHSIG): Linux ties that to the parent *thread*, and the pool may start workers from a
    short-lived thread. The check runs while the worker decodes or runs the network (both release the GIL);
    at worst it waits for one dlib call to end.
    """
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def _init_worker() -> None:
    """Worker start: die with the parent, lower CPU priority than the event loop, then load the models once."""
    _die_with_parent()
    # Ctrl-C at a terminal reaches the whole process group: the parent decides what stops, then stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(WORKER_ENV)  # for anything this worker starts; its own BLAS got it at spawn
    try:
        os.nice(WORKER_NICE)
    except OSError:
        pass
    _models()


def _ready() -> int:
    """A no-op task used to start the workers ahead of the first request; returns the worker's pid."""
    return os.getpid()


TOO_SLOW = "too_slow"  # ImageError.code: the deadline passed and the worker was stopped
WORKER_DIED = "worker_died"  # ImageError.code: the worker died on this photo (memory, a decoder crash)


def _too_slow(seconds: float) -> ImageError:
    return ImageError(TOO_SLOW, f"This photo takes too long to read (over {seconds:g} s); it was not searched.")


def _worker_died() -> ImageError:
    return ImageError(WORKER_DIED, "Reading this photo stopped the face worker; it was not searched.")


@dataclass(eq=False)
class _Job:
    """One task waiting its turn for a worker: what to run, for whom, and the future its caller waits on."""

    key: Hashable
    func: Any
    args: tuple
    kwargs: dict
    outer: Future  # what the caller holds; settled from the pool's future
    queue: FairQueue  # the queue it was pushed on (a closed engine starts a new one)
    inner: Future | None = None  # the pool's future, once handed to a worker


def _settle(inner: Future, outer: Future) -> None:
    """Give the caller's future the pool future's ending (unless the caller gave up already)."""
    try:
        if inner.cancelled():
            outer.cancel()
        elif (exc := inner.exception()) is not None:
            outer.set_exception(exc)
        else:
            outer.set_result(inner.result())
    except InvalidStateError:  # cancelled by its caller meanwhile
        pass


class FaceEngine:
    """Face work for any caller: a pool of worker processes (spawned lazily), one model set per worker.

    Every task has a deadline (`deadline` seconds, [faces] deadline_seconds): past it the worker running it is
    stopped (pebble kills and replaces it) and the photo fails with ImageError code TOO_SLOW; a worker that
    dies fails its photo with WORKER_DIED. Either way the other workers and the pool go on. Workers are niced, have one
    BLAS thread, and die with the process that started them.

    Tasks wait their turn in a FairQueue keyed by requester (bot.faces.fair) and go to the pool only when a
    worker is free, so one requester's backlog never stands in front of another requester's photo.
    """

    def __init__(self, images: ImageSettings, workers: int = 0, deadline: float = 30.0) -> None:
        self.images = images
        self.workers = workers if workers > 0 else (os.cpu_count() or 1)
        self.deadline = float(deadline)
        self._pool: ProcessPool | None = None
        self._lock = threading.Lock()
        self._running: set[Future] = set()  # scheduled and not done: cancelled on close, so no waiter hangs
        self._fair: FairQueue[Hashable, _Job] = FairQueue()
        self._fair_lock = threading.Lock()
        # Called (in a pool thread) with the seconds from scheduling to the end of each photo's task, however it
        # ended: the server's face-work metric. It must not raise.
        self.on_task_done: Callable[[float], None] | None = None

    def _executor(self) -> ProcessPool:
        with self._lock:
            if self._pool is None or not self._pool.active:
                # Spawned children inherit the environment: BLAS reads these when numpy loads there.
                # (The parent's own BLAS started long ago, so setting them here does not touch it.)
                os.environ.update(WORKER_ENV)
                # spawn, never fork: the parent may hold threads and an event loop.
                self._pool = ProcessPool(max_workers=self.workers, initializer=_init_worker,
                                         context=multiprocessing.get_context("spawn"))
            return self._pool

    def _schedule(self, func: Any, *args: Any, timeout: float | None = None, **kwargs: Any) -> Future:
        future = self._executor().schedule(func, args=args, kwargs=kwargs,
                                           timeout=self.deadline if timeout is None else timeout)
        with self._lock:
            self._running.add(future)
        future.add_done_callback(self._done)
        hook = self.on_task_done
        if hook is not None and func is not _ready:
            started = time.monotonic()
            future.add_done_callback(lambda _f: hook(time.monotonic() - started))
        return future

    def _done(self, future: Future) -> None:
        with self._lock:
            self._running.discard(future)

    def _submit(self, key: Hashable, func: Any, *args: Any, **kwargs: Any) -> Future:
        """`func(*args, **kwargs)` for requester `key`: queued fairly (see the class), run within the deadline.
        The future returned ends as the pool's would (a deadline or dead worker included); cancelling it
        withdraws a waiting task, or stops the worker running it."""
        outer: Future = Future()
        with self._fair_lock:
            job = _Job(key, func, args, kwargs, outer, self._fair)
            job.queue.push(key, job)
        with self._lock:
            self._running.add(outer)
        outer.add_done_callback(self._done)
        outer.add_done_callback(lambda _f: self._withdrawn(job))
        hook = self.on_task_done
        if hook is not None:
            started = time.monotonic()
            outer.add_done_callback(lambda _f: hook(time.monotonic() - started))
        self._dispatch()
        return outer

    def _dispatch(self) -> None:
        """Hand waiting tasks to the pool, in the fair queue's order, while a worker is free."""
        while True:
            with self._fair_lock:
                if self._fair.out >= self.workers:
                    return
                nxt = self._fair.pop()
            if nxt is None:
                return
            job = nxt[1]
            try:
                inner = self._executor().schedule(job.func, args=job.args, kwargs=job.kwargs, timeout=self.deadline)
            except Exception as exc:  # noqa: BLE001 - the pool refused (closing): this task fails, not the caller's loop
                self._ended(job)
                if not job.outer.done():
                    job.outer.set_exception(exc)
                continue
            job.inner = inner
            inner.add_done_callback(lambda f, job=job: self._ran(job, f))
            if job.outer.cancelled():  # given up between the pop and now
                inner.cancel()

    def _ran(self, job: _Job, inner: Future) -> None:
        self._ended(job)
        _settle(inner, job.outer)
        self._dispatch()

    def _ended(self, job: _Job) -> None:
        with self._fair_lock:
            job.queue.done(job.key)

    def _withdrawn(self, job: _Job) -> None:
        """The caller's future ended: when that was a cancel, stop the task wherever it is."""
        if not job.outer.cancelled():
            return
        if job.inner is not None:
            job.inner.cancel()  # a cancelled task stops its worker too
        else:
            with self._fair_lock:
                job.queue.discard(job.key, job)

    def _outcome(self, future: Future) -> Any:
        """The task's result, with a deadline or a dead worker turned into the photo's ImageError."""
        try:
            return future.result()
        except FutureTimeout:
            raise _too_slow(self.deadline) from None
        except (ProcessExpired, BrokenProcessPool):
            # pebble gives up a pool whose worker died while idle: the next task gets a new pool.
            raise _worker_died() from None

    def start(self) -> list[int]:
        """Start the workers (each loads its models as it starts) and wait until they answer; their pids."""
        futures = [self._schedule(_ready, timeout=max(self.deadline, 120.0)) for _ in range(self.workers)]
        for f in futures:
            f.result()
        return self.worker_pids()

    def worker_pids(self) -> list[int]:
        """The pids of the running workers (for status pages and tests)."""
        pool = self._pool
        if pool is None:
            return []
        workers = getattr(getattr(pool, "_pool_manager", None), "worker_manager", None)
        found = getattr(workers, "workers", {}) or {}
        return sorted(int(pid) for pid in found)

    async def analyse(self, data: bytes, requester: Hashable = "") -> Probe:
        """analyse_bytes in a worker process, within the deadline; the event loop keeps running meanwhile.
        `requester`: whose photo it is (workers are shared between requesters in turn)."""
        return await self.run(analyse_bytes, data, self.images, requester=requester)

    async def run(self, func: Callable[..., T], *args: Any, requester: Hashable = "") -> T:
        """`func(*args)` in a worker process within the deadline, as `analyse` (a module-level function, so
        it pickles by name): for callers that need more of the decoded pixels than a Probe (e.g. pictures)."""
        future = self._submit(requester, func, *args)
        try:
            await asyncio.wrap_future(future)
        except (FutureTimeout, ProcessExpired, BrokenProcessPool):
            pass  # turned into the photo's error just below
        except asyncio.CancelledError:
            future.cancel()  # a cancelled task stops its worker too
            raise
        return self._outcome(future)

    def analyse_sync(self, data: bytes, requester: Hashable = "") -> Probe:
        """analyse_bytes in a worker process within the deadline, waiting for it (the CLI: one photo)."""
        return self._outcome(self._submit(requester, analyse_bytes, data, self.images))

    def analyse_many(
        self, items: Iterable[tuple[K, bytes]], *, thumbnails: bool = False, requester: Hashable = ""
    ) -> Iterator[tuple[K, Probe | ImageError]]:
        """Analyse many photos in parallel (enrollment), yielding (key, Probe or ImageError) as each ends.

        A bad, slow or worker-killing file yields its ImageError instead of stopping the rest. At most two
        photos per worker are in flight, so a large folder is never read into memory at once. thumbnails=True
        fills Probe.thumbnails in the workers (see analyse_bytes).
        """
        window = 2 * self.workers
        source = iter(items)
        pending: dict[Future, K] = {}

        def fill() -> None:
            while len(pending) < window:
                try:
                    key, data = next(source)
                except StopIteration:
                    return
                pending[self._submit(requester, analyse_bytes, data, self.images, thumbnails=thumbnails)] = key

        try:
            fill()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    key = pending.pop(fut)
                    try:
                        result: Probe | ImageError = self._outcome(fut)
                    except ImageError as exc:
                        result = exc
                    yield key, result
                fill()
        finally:
            for fut in pending:
                fut.cancel()

    def close(self) -> None:
        """Stop the worker processes now (running work is abandoned: shutdown takes a moment, not a photo)."""
        with self._lock:
            pool, self._pool = self._pool, None
            running, self._running = list(self._running), set()
        with self._fair_lock:  # what still waits is cancelled below (it is in `running`); a reopened engine starts empty
            self._fair = FairQueue()
        if pool is not None:
            pool.stop()
            pool.join(timeout=10)
        for future in running:
            future.cancel()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
