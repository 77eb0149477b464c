"""Bytes -> RGB pixels: the formats phones and workstations send, EXIF orientation, and the guards.

Every refusal is an `ImageError` whose message is a plain sentence an officer can act on. Sizes are
checked before any pixel is decoded: the byte size first, then the pixel count and the shape from the file
header, so a decompression bomb (a small file that claims a huge canvas) or a long strip is refused without
allocating it.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# HEIC/HEIF is what iPhones send by default.
pillow_heif.register_heif_opener()

# `import face_recognition` sets this to True for the whole process, which silently turns a truncated
# upload into a half-grey picture. Undo it here, and again inside every decode (see _strict_load).
ImageFile.LOAD_TRUNCATED_IMAGES = False

# Only these Pillow plugins may parse an upload; others (EPS runs Ghostscript, for one) are never tried.
# (Multi-picture phone JPEGs, "MPO", come through the JPEG plugin.)
Image.init()
ALLOWED_FORMATS = tuple(
    f for f in ("JPEG", "PNG", "GIF", "WEBP", "BMP", "DIB", "TIFF", "HEIF", "AVIF") if f in Image.OPEN
)

CODES = ("too_large", "too_many_pixels", "bad_shape", "corrupt", "not_image", "unsupported", "unreadable")

# [images] max_aspect_ratio's default (bot.config): longer side over shorter side.
MAX_ASPECT_RATIO = 8.0

_SEND_ORIGINAL = "Send the original photo as JPEG or PNG."

# Signatures of the formats we accept: a file that starts like one but will not open is corrupt.
_IMAGE_MAGIC = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
)
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis")
_HTML = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body|<meta|<title|<script|<!--)", re.IGNORECASE)


class ImageError(ValueError):
    """An upload that cannot be used as a probe; `.code` names the reason, `.message` tells the officer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # crosses the process-pool boundary intact
        return (type(self), (self.code, self.message))


def sha256_hex(data: bytes) -> str:
    """SHA-256 of the original bytes, as lowercase hex (what the audit log records instead of the image)."""
    return hashlib.sha256(data).hexdigest()


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def _check_bytes(data: bytes, max_bytes: int) -> None:
    if not data:
        raise ImageError("not_image", f"The file is empty (0 bytes). {_SEND_ORIGINAL}")
    if len(data) > max_bytes:
        raise ImageError(
            "too_large",
            f"The file is {_mb(len(data))}, over the {_mb(max_bytes)} limit. "
            "Send a smaller copy of the photo (most phones offer a 'large' or 'medium' size when sharing).",
        )


def _not_image(data: bytes) -> ImageError:
    """Explain what the bytes look like when no allowed image plugin recognised them."""
    head = data[:1024].lstrip(b"\xef\xbb\xbf")
    if head.startswith(b"%PDF"):
        return ImageError(
            "not_image",
            f"This is a PDF document, not a photo. {_SEND_ORIGINAL}",
        )
    if _HTML.match(head):
        return ImageError(
            "not_image",
            "This is a web page (HTML), not a photo. That usually means a login or error page was saved "
            f"instead of the file. Download the photo itself and send it again. {_SEND_ORIGINAL}",
        )
    if (
        head.startswith(_IMAGE_MAGIC)
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
        or (head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS)
    ):
        return ImageError(
            "corrupt",
            f"The photo is damaged or incomplete and cannot be read. {_SEND_ORIGINAL}",
        )
    other = _other_format(data)
    if other:
        return ImageError(
            "unsupported",
            f"This is a {other} file, which the bot does not read. {_SEND_ORIGINAL}",
        )
    return ImageError("not_image", f"This file is not a photo the bot can read. {_SEND_ORIGINAL}")


# Formats people send by mistake, named from their first bytes only: no Pillow plugin outside
# ALLOWED_FORMATS ever parses untrusted bytes, not even a header.
_OTHER_MAGIC = (
    (b"8BPS", "Photoshop (PSD)"),
    (b"%!PS", "PostScript"),
    (b"\x00\x00\x01\x00", "Windows icon (ICO)"),
    (b"icns", "Apple icon (ICNS)"),
    (b"DDS ", "DirectDraw surface (DDS)"),
)


def _other_format(data: bytes) -> str | None:
    """Name an image format we do not accept, from its magic bytes; None when unknown."""
    for magic, name in _OTHER_MAGIC:
        if data.startswith(magic):
            return name
    return None


def _too_many_pixels(width: int, height: int, max_pixels: int) -> ImageError:
    return ImageError(
        "too_many_pixels",
        f"The picture is {width}×{height} pixels, over the {max_pixels:,} pixel limit. "
        "Send a smaller copy of the photo, or crop it to the person of interest.",
    )


def _bad_shape(width: int, height: int, max_aspect_ratio: float) -> ImageError:
    ratio = max(width, height) / min(width, height)
    times = f"{ratio:,.0f}" if ratio >= 10 else f"{ratio:.1f}"
    return ImageError(
        "bad_shape",
        f"The picture is {width}×{height} pixels, one side {times} times the other; the bot reads pictures whose "
        f"longer side is at most {max_aspect_ratio:g} times the shorter. Send the original photo, or crop it "
        "around the person of interest.",
    )


def _bomb() -> ImageError:
    return ImageError(
        "too_many_pixels",
        "The picture claims more pixels than the bot will decode (a possible decompression bomb). "
        "Send the original photo, or a smaller copy of it.",
    )


def _open(data: bytes, max_pixels: int, max_aspect_ratio: float) -> Image.Image:
    """Open the header only and refuse an oversized or absurdly shaped canvas before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns above MAX_IMAGE_PIXELS and raises above twice that. The
            # warning refuses too, unless our cap is set higher (then our own check below decides).
            bomb_warning = "error" if max_pixels < Image.MAX_IMAGE_PIXELS else "ignore"
            warnings.simplefilter(bomb_warning, Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _bomb() from None
    except UnidentifiedImageError:
        raise _not_image(data) from None
    except Exception:  # noqa: BLE001 - a plugin choking on a malformed header
        raise ImageError("corrupt", f"The photo is damaged and cannot be read. {_SEND_ORIGINAL}") from None
    width, height = im.size
    if width < 1 or height < 1:
        raise ImageError("corrupt", f"The photo has no pixels. {_SEND_ORIGINAL}")
    if width * height > max_pixels:
        raise _too_many_pixels(width, height, max_pixels)
    # A long strip (a 263-byte PNG can claim 30000×2) is no photo, and the face search's copies of it (padding
    # is a share of the longer side, on every side) would dwarf the picture itself.
    if max(width, height) > max_aspect_ratio * min(width, height):
        raise _bad_shape(width, height, max_aspect_ratio)
    return im


def _strict_load(im: Image.Image, max_pixels: int) -> None:
    """Decode the pixels; a truncated or damaged file is an error, never a half-grey picture."""
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # whatever was imported since (face_recognition sets True)
    try:
        with warnings.catch_warnings():
            bomb_warning = "error" if max_pixels < Image.MAX_IMAGE_PIXELS else "ignore"
            warnings.simplefilter(bomb_warning, Image.DecompressionBombWarning)
            im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _bomb() from None
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - OSError "image file is truncated", SyntaxError, zlib/struct errors, ...
        raise ImageError(
            "corrupt",
            f"The photo is damaged or incomplete (it may have been cut off while copying). {_SEND_ORIGINAL}",
        ) from None


def _upright(im: Image.Image) -> Image.Image:
    """Apply the EXIF orientation, as phones store many photos sideways and only tag them."""
    try:
        ImageOps.exif_transpose(im, in_place=True)  # in place: no copy of an upright photo
    except Exception:  # noqa: BLE001, S110 - bad EXIF: keep the pixels as stored rather than refuse
        pass
    return im


def _to_rgb(im: Image.Image) -> np.ndarray:
    """Any decoded mode -> HxWx3 uint8 RGB; transparency is laid on white, high bit depth scaled down."""
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # Pillow's own conversion clips 16-bit values at 255 (a white picture); scale them instead.
        grey = np.asarray(im).astype(np.float64)
        top = 65535.0 if mode.startswith("I;16") or grey.max() > 255 else 255.0
        grey = np.clip(grey * (255.0 / top), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    has_alpha = mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in im.info
    if has_alpha:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.array(im, dtype=np.uint8)


# A progressive JPEG is a handful of scans (libjpeg writes 10; cameras and phones 1-12). Each scan makes the
# decoder refine the whole image again, so a small file repeating one scan thousands of times takes minutes
# to decode: refused before decoding.
MAX_JPEG_SCANS = 100


def _check_structure(data: bytes, im: Image.Image) -> None:
    """Refuse what would make a decoder work without bound, before it runs (counting markers, not pixels)."""
    if im.format == "JPEG":
        # Start-of-scan markers: FF DA. Entropy-coded data escapes every FF (FF 00), so no scan data is
        # counted as a marker.
        scans = data.count(b"\xff\xda")
        if scans > MAX_JPEG_SCANS:
            raise ImageError(
                "too_complex",
                f"This JPEG is built unusually ({scans} scans; photos have at most a dozen) and would take too "
                f"long to read. {_SEND_ORIGINAL}",
            )


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int,
                 max_aspect_ratio: float = MAX_ASPECT_RATIO) -> np.ndarray:
    """Decode upload bytes into an HxWx3 uint8 RGB array, upright per EXIF; raise ImageError when unusable."""
    _check_bytes(data, max_bytes)
    im = _open(data, max_pixels, max_aspect_ratio)
    try:
        _check_structure(data, im)
    except ImageError:
        im.close()
        raise
    try:
        _strict_load(im, max_pixels)
        # GIF/TIFF/WebP may hold several frames: opening leaves the first one loaded, which is the one used.
        im = _upright(im)
        width, height = im.size
        if width * height > max_pixels:  # cannot grow by transposing, but keep the promise explicit
            raise _too_many_pixels(width, height, max_pixels)
        try:
            return _to_rgb(im)
        except MemoryError:
            raise
        except Exception:  # noqa: BLE001 - an exotic mode Pillow cannot convert
            raise ImageError("corrupt", f"The photo's colour data cannot be read. {_SEND_ORIGINAL}") from None
    finally:
        im.close()


def read_image_file(path: str | os.PathLike, *, max_bytes: int, max_pixels: int,
                    max_aspect_ratio: float = MAX_ASPECT_RATIO) -> np.ndarray:
    """Read and decode an image file with the same guards; the size is checked before reading it."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageError(
                "too_large",
                f"{path.name} is {_mb(size)}, over the {_mb(max_bytes)} limit. Use a smaller copy of the photo.",
            )
        data = path.read_bytes()
    except ImageError:
        raise
    except OSError as exc:
        raise ImageError(
            "unreadable", f"{path} cannot be read ({exc.strerror or exc}). Check the path."
        ) from None
    return decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels, max_aspect_ratio=max_aspect_ratio)
