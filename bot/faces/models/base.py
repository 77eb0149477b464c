"""What a matcher is: one small record of a face model and the flat functions that run it.

A model turns a photo into templates it can compare: where the faces are (`locate`), the points it aligns a
face by (`landmarks`), the template of each aligned face (`encode`) and how far apart two templates are
(`distance`, always a distance: smaller is more alike). Its id, version, the SHA-256 of the weights that
define its templates and the runtime that executes them say exactly which templates a gallery or a search
holds: two models' templates are never compared.

Weights are files inside installed packages, never downloaded; each is checked against a SHA-256 constant
in the code as it is loaded (`checked_bytes`), so a damaged or swapped file is refused with a sentence.
"""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from bot import wording
from bot.faces.calibration import Scale
from bot.faces.detection import Box, Found

T = TypeVar("T")


class WeightsError(RuntimeError):
    """A weight file is missing, or is not the file the model was measured with (the message says which)."""


def checked_bytes(path: Path, expected_sha256: str) -> bytes:
    """The file's bytes when their SHA-256 is the expected one; WeightsError (a sentence) otherwise. The caller
    builds its network from these same bytes, so what was checked is what runs."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WeightsError(wording.model_weights_unreadable(str(path), exc.strerror or str(exc))) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256:
        raise WeightsError(wording.model_weights_refused(str(path), digest, expected_sha256))
    return data


class Once(Generic[T]):
    """A value made once per process, on first use (a model's loaded networks: dlib's and OpenCV's objects are
    not shared between processes, so every face worker makes its own)."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        """The value, made now if this is the first call (a failure is raised, and the next call tries again)."""
        with self._lock:
            if self._value is None:
                self._value = self._make()
            return self._value


@dataclass(frozen=True)
class Model:
    """A named, versioned matcher (see the module docstring). The functions are plain module functions of
    the model's own module (bot.faces.models.dlib_resnet, bot.faces.models.sface): numpy in, numpy out."""

    id: str                 # "dlib-resnet" | "sface": what galleries and audit entries record
    version: str            # changes whenever the same photo would give another template
    weights_sha256: str     # of the file whose weights make the templates (checked at load)
    runtime: str            # what executes the network
    template_size: int      # floats per template
    metric: str             # how `distance` compares: "euclidean" | "cosine" (1 - cosine similarity)
    # How the calibrated decision reads this model's distances: horizon, score version, reference null scores.
    scale: Scale
    # Two subjects whose templates are closer than this are reported at enrollment as possibly one person
    # enrolled twice (measured on the dev set: see each model's module).
    near_duplicate: float
    # Load the weights into this process (once; later calls return at once). Raises WeightsError.
    load: Callable[[], object]
    # Check every weight file against its SHA-256 without loading anything (WeightsError): what a process that
    # starts face workers runs first, so a refused file is said in a sentence rather than as dead workers.
    verify: Callable[[], None]
    # Faces in an RGB photo: boxes left to right, how they were found, the pixels to encode from.
    locate: Callable[[np.ndarray, int], Found]
    # The points the model aligns one face by, placed on `pixels` within its box.
    landmarks: Callable[[np.ndarray, Box], np.ndarray]
    # Those points in bot.faces.quality's 5-point layout (eye corners, eye corners, nose base).
    quality_points: Callable[[np.ndarray], np.ndarray]
    # One template per face (float32, template_size) from `pixels` and each face's points; the same pixels
    # and points give the same bytes.
    encode: Callable[[np.ndarray, list[np.ndarray]], list[np.ndarray]]
    # Distances from each of the templates (N, template_size) to one template: (N,).
    distance: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def record(self) -> dict:
        """What a search entry names of the model: {id, version, weights_sha256, runtime} (CONTRACTS ### 12)."""
        return {"id": self.id, "version": self.version, "weights_sha256": self.weights_sha256,
                "runtime": self.runtime}
