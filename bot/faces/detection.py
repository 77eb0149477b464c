"""Where the faces are: HOG boxes with upsampling retries and a padded retry, on bounded copies of the photo.

dlib's HOG detector (face_recognition's "hog" model) is what every matcher starts from (bot.faces.models):
boxes in the orientation-corrected photo's pixels, left to right, and the pixels a face is to be encoded from.

Speed: HOG detection runs on a copy whose longer side is at most `detect_max_side`, without upsampling;
boxes are mapped back and encodings computed from the full-resolution pixels. Only when that finds no
face is detection repeated with upsampling (up to twice, while the scanned side stays under 2,048 px), so a
small or distant face still turns up; and when even that finds nothing the photo is padded on a plain border
and searched once more, so a still cropped tight around a face is found (HOG needs the outline of a whole
head). Never is the whole image taken as a face.

Memory: no copy made while searching (the upsampled scan, the padded photo) holds more than
`copy_bound(detect_max_side)` = 4 × detect_max_side² pixels; a photo whose padded copy would be larger is
scaled down first (its faces are then encoded from that copy: a face found only there is large).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, NamedTuple

import dlib
import numpy as np
from PIL import Image

# Upsampling doubles the side HOG scans (and quadruples its time) per step: retries stop before the scanned
# side passes this. A 140 px still gets two doublings, a 560 px crop one, a 1,024 px copy one; HOG at 2,240 px
# took ~0.4 s for a face it found in 2 of 3,108 dev-set photos.
MAX_UPSAMPLED_SIDE = 2048
# A photo where nothing is found is padded by this share of its longer side on every side and searched again.
PAD_SHARE = 0.25
# No copy made while searching is larger than this many times detect_max_side² pixels (4: a 1,024 px copy
# upsampled once; 16 MB of RGB at the default).
COPY_BOUND_FACTOR = 4


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


_hog_cache: Any = None
_hog_lock = threading.Lock()


def hog() -> Any:
    """dlib's HOG face detector, made once per process (dlib's objects are not shared between threads' calls)."""
    global _hog_cache
    with _hog_lock:
        if _hog_cache is None:
            _hog_cache = dlib.get_frontal_face_detector()
        return _hog_cache


def copy_bound(detect_max_side: int) -> int:
    """The most pixels any copy made while searching a photo may hold."""
    return COPY_BOUND_FACTOR * detect_max_side**2


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(height, width) scaled, at least 1 px each."""
    return max(1, round(height * scale)), max(1, round(width * scale))


def reduced(rgb: np.ndarray, scale: float) -> np.ndarray:
    """A smaller copy (box filter: averages pixels, so no aliasing); the photo itself at scale 1."""
    if scale >= 1.0:
        return rgb
    height, width = scaled_size(*rgb.shape[:2], scale)
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BOX))


def detection_copy(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """A copy whose longer side is at most max_side."""
    return reduced(rgb, max_side / max(rgb.shape[:2]))


def upsample_steps(shape: tuple[int, ...], detect_max_side: int) -> tuple[int, ...]:
    """Upsampling tries on a copy of `shape` (height, width), in order: none first; the retries only run when
    the previous found nothing, and only while the upsampled scan stays under MAX_UPSAMPLED_SIDE and
    copy_bound (HOG upsamples the whole copy, ×4 pixels a step)."""
    height, width = shape[:2]
    bound = copy_bound(detect_max_side)
    return tuple(u for u in (0, 1, 2)
                 if u == 0 or (max(height, width) * 2**u <= MAX_UPSAMPLED_SIDE and height * width * 4**u <= bound))


def hog_boxes(rgb: np.ndarray, detect_max_side: int) -> tuple[list[Box], str]:
    """HOG detection on the reduced copy; boxes mapped back to full resolution and clipped to the image.

    Returns the boxes and how they were found ("hog", "hog_up1", "hog_up2"; "" when nothing was).
    """
    detector = hog()
    height, width = rgb.shape[:2]
    small = detection_copy(rgb, detect_max_side)
    sy, sx = height / small.shape[0], width / small.shape[1]
    rects: Any = []
    how = ""
    for upsample in upsample_steps(small.shape, detect_max_side):
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


def pad_width(height: int, width: int) -> int:
    return max(8, round(PAD_SHARE * max(height, width)))


def pad_scale(height: int, width: int, detect_max_side: int) -> float:
    """1, or the scale at which the photo's padded copy holds at most copy_bound pixels."""
    bound = copy_bound(detect_max_side)
    longer = max(height, width)
    scale = min(1.0, (bound / ((height + 2 * PAD_SHARE * longer) * (width + 2 * PAD_SHARE * longer))) ** 0.5)
    while True:  # rounding and the 8 px floor can add a little: shrink until it fits (a step or two)
        h, w = scaled_size(height, width, scale)
        pad = pad_width(h, w)
        if (h + 2 * pad) * (w + 2 * pad) <= bound or (h == 1 and w == 1):
            return scale
        scale *= 0.995


def padded_copy(rgb: np.ndarray, detect_max_side: int) -> tuple[np.ndarray, int, float]:
    """The photo on a plain border of its own mean colour, PAD_SHARE of its longer side each way: the copy, the
    border's width and the scale the photo was reduced by first (1, unless the padded copy would hold more than
    copy_bound pixels: a long or large photo's border alone would dwarf it).

    HOG looks for the outline of a whole head: a still cropped tight around a face has none, and is found
    once it has room around it. A flat border adds no edge that could look like a face (measured on tight
    crops of the shared photos: a flat border at 25 % finds 32 of 33 that HOG missed, repeating the edge
    pixels 21).
    """
    scale = pad_scale(*rgb.shape[:2], detect_max_side)
    base = reduced(rgb, scale)
    pad = pad_width(*base.shape[:2])
    fill = [int(v) for v in base.reshape(-1, 3).mean(axis=0)]
    out = np.empty((base.shape[0] + 2 * pad, base.shape[1] + 2 * pad, 3), dtype=np.uint8)
    out[...] = np.asarray(fill, dtype=np.uint8)
    out[pad:-pad, pad:-pad] = base
    return out, pad, scale


class Found(NamedTuple):
    """Detection result: boxes in the photo, how they were found, and where to encode them from."""

    boxes: list[Box]          # clipped to the photo, left to right
    how: str                  # "hog", "hog_up1", "hog_up2", "padded", "yunet", "yunet_padded" or "" (none)
    pixels: np.ndarray        # the photo, or its padded copy when the faces were found there
    encode_boxes: list[Box]   # the same faces in `pixels` coordinates (uncut by the photo's border)
    scale: float = 1.0        # pixels of `pixels` per pixel of the photo (below 1: a reduced padded copy)
    # Per face, the points a detector that gives landmarks found (YuNet's 5, in `pixels` coordinates); empty
    # when the detector gives boxes only (HOG: the model's own landmark predictor places them).
    points: tuple[np.ndarray, ...] = ()


def in_photo(rgb: np.ndarray, boxes: list[Box], how: str, points: list[np.ndarray] | None = None) -> Found:
    """Faces found on the photo itself (boxes clipped to it): empty boxes dropped, the rest left to right."""
    kept = sorted(((b, p) for b, p in zip(boxes, points or [None] * len(boxes)) if b.width > 0 and b.height > 0),
                  key=lambda bp: (bp[0].left, bp[0].top))
    found = [b for b, _ in kept]
    return Found(found, how, rgb, found, 1.0, tuple(p for _, p in kept) if points is not None else ())


def in_padded(rgb: np.ndarray, padded: np.ndarray, pad: int, scale: float, boxes: list[Box], how: str,
              points: list[np.ndarray] | None = None) -> Found:
    """Faces found on the padded copy (see padded_copy): each box mapped back into the photo and clipped to it
    (a face that lies wholly on the border is dropped), left to right; the copy's own boxes kept to encode
    from. Nothing found: an empty Found on the photo."""
    height, width = rgb.shape[:2]

    def photo(v: int) -> int:  # a padded copy's coordinate in the photo
        return round((v - pad) / scale)

    kept = []
    for b, p in zip(boxes, points or [None] * len(boxes)):
        c = Box(top=max(photo(b.top), 0), right=min(photo(b.right), width),
                bottom=min(photo(b.bottom), height), left=max(photo(b.left), 0))
        if c.width > 0 and c.height > 0:
            kept.append((c, b, p))
    if not kept:
        return Found([], "", rgb, [])
    kept.sort(key=lambda cbp: (cbp[0].left, cbp[0].top))
    return Found([c for c, _, _ in kept], how, padded, [b for _, b, _ in kept], scale,
                 tuple(p for _, _, p in kept) if points is not None else ())


def find_boxes(rgb: np.ndarray, detect_max_side: int = 1024) -> Found:
    """Face boxes in `rgb`, left to right; a photo where nothing is found is padded and searched again."""
    boxes, how = hog_boxes(rgb, detect_max_side)
    if boxes:
        return in_photo(rgb, boxes, how)
    padded, pad, scale = padded_copy(rgb, detect_max_side)
    return in_padded(rgb, padded, pad, scale, hog_boxes(padded, detect_max_side)[0], "padded")
