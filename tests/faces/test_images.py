"""Image decoding: every format phones send, EXIF orientation, and every refusal with its code."""

from __future__ import annotations

import hashlib
import io
import pickle
import random
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from bot.faces.engine import find_faces
from bot.faces.images import ImageError, decode_image, read_image_file, sha256_hex

LIMITS = {"max_bytes": 25 * 1024 * 1024, "max_pixels": 40_000_000}


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(width: int, height: int, bit_depth: int, colour_type: int, raw: bytes) -> bytes:
    """A PNG written by hand: Pillow cannot save 48-bit RGB, and a bomb must not be allocated to be made."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


def _png_rgb16(rgb8: np.ndarray) -> bytes:
    h, w, _ = rgb8.shape
    wide = (rgb8.astype(np.uint16) * 257).astype(">u2")
    return _png(w, h, 16, 2, b"".join(b"\x00" + wide[y].tobytes() for y in range(h)))


@pytest.fixture(scope="session")
def face_jpeg(faces_dir: Path) -> bytes:
    """A small one-face photo (630×374) to make format variants from."""
    return (faces_dir / "people" / "kit_harington" / "john2.jpeg").read_bytes()


@pytest.fixture(scope="session")
def face_rgb(face_jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(face_jpeg)).convert("RGB"))


def _variants(rgb: np.ndarray) -> dict[str, bytes]:
    im = Image.fromarray(rgb)
    rgba = im.convert("RGBA")
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:20, :] = 0  # a transparent strip along the top
    rgba.putalpha(Image.fromarray(alpha))
    blank = Image.new("RGB", im.size, (40, 40, 40))
    return {
        "png": _save(im, "PNG"),
        "png_rgb16": _png_rgb16(rgb),
        "png_grey16": _save(Image.fromarray(np.asarray(im.convert("L")).astype(np.uint16) * 257), "PNG"),
        "png_palette": _save(im.convert("P", palette=Image.Palette.ADAPTIVE, colors=256), "PNG"),
        "png_alpha": _save(rgba, "PNG"),
        # The face is the first frame; a second, empty frame proves the first one is used.
        "gif": _save(
            im.convert("P", palette=Image.Palette.ADAPTIVE),
            "GIF",
            save_all=True,
            append_images=[blank.convert("P")],
            duration=100,
        ),
        "webp": _save(im, "WEBP", quality=90),
        "bmp": _save(im, "BMP"),
        "tiff": _save(im, "TIFF"),
        "heic": _save(im, "HEIF", quality=90),
    }


@pytest.fixture(scope="session")
def variants(face_rgb: np.ndarray) -> dict[str, bytes]:
    return _variants(face_rgb)


@pytest.mark.parametrize(
    "kind",
    ["png", "png_rgb16", "png_grey16", "png_palette", "png_alpha", "gif", "webp", "bmp", "tiff", "heic"],
)
def test_each_format_decodes_to_rgb_with_a_face(kind: str, variants: dict[str, bytes], face_rgb: np.ndarray):
    rgb = decode_image(variants[kind], **LIMITS)
    assert rgb.dtype == np.uint8 and rgb.shape == face_rgb.shape
    # The pixels are the photo, not a blank or clipped canvas (16-bit values scaled, not clipped to white).
    ref = (
        face_rgb
        if kind != "png_grey16"
        else np.repeat(np.asarray(Image.fromarray(face_rgb).convert("L"))[:, :, None], 3, 2)
    )
    rows = slice(20, None)  # the alpha variant's transparent strip is checked separately
    assert np.abs(rgb[rows].astype(int) - ref[rows].astype(int)).mean() < 12
    assert len(find_faces(rgb)) == 1


def test_32bit_rgba_png_from_the_shared_faces(faces_dir: Path):
    rgb = read_image_file(faces_dir / "odd" / "32bit.png", **LIMITS)
    assert rgb.shape == (1200, 626, 3)
    assert len(find_faces(rgb)) == 1


def test_transparent_pixels_become_white(variants: dict[str, bytes]):
    rgb = decode_image(variants["png_alpha"], **LIMITS)
    assert (rgb[:20] == 255).all()


@pytest.mark.parametrize(
    "orientation, stored", [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270)]
)
def test_exif_orientation_is_applied(orientation, stored, face_rgb: np.ndarray, tmp_path: Path):
    """A phone stores the pixels sideways and tags them; decoding returns the photo upright."""
    sideways = Image.fromarray(face_rgb).transpose(stored)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "phone.jpg"
    sideways.save(path, "JPEG", quality=95, exif=exif.tobytes())

    rgb = read_image_file(path, **LIMITS)
    assert rgb.shape == face_rgb.shape  # upright height × width, not the stored sideways ones
    assert np.abs(rgb.astype(int) - face_rgb.astype(int)).mean() < 6
    assert len(find_faces(rgb)) == 1

    # Why this matters: plain face_recognition ignores the tag and finds no face in the same file.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # face_recognition_models imports the deprecated pkg_resources
        import face_recognition
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # undo the import's side effect for the other tests
    assert face_recognition.face_locations(face_recognition.load_image_file(path)) == []


def _expect(code: str, data: bytes, **limits) -> ImageError:
    with pytest.raises(ImageError) as info:
        decode_image(data, **{**LIMITS, **limits})
    assert info.value.code == code
    assert info.value.message and str(info.value) == info.value.message
    return info.value


def test_too_large_is_refused_before_decoding(face_jpeg: bytes):
    err = _expect("too_large", face_jpeg, max_bytes=len(face_jpeg) - 1)
    assert "MB" in err.message


@pytest.mark.parametrize(
    "width, height",
    [
        (8_000, 8_000),  # 64 M pixels: over our 40 M cap, under Pillow's own warning level
        (10_000, 10_000),  # 100 M: Pillow warns (DecompressionBombWarning)
        (100_000, 100_000),  # 10 G: Pillow raises DecompressionBombError in open()
    ],
)
def test_pixel_bomb_is_refused_from_the_header(width: int, height: int):
    """A few hundred bytes that claim a huge canvas: refused without allocating it."""
    bomb = _png(width, height, 8, 0, b"\x00" * 64)
    assert len(bomb) < 200
    err = _expect("too_many_pixels", bomb)
    assert "pixel" in err.message


def test_pixel_cap_applies_to_ordinary_photos(face_jpeg: bytes):
    err = _expect("too_many_pixels", face_jpeg, max_pixels=630 * 374 - 1)
    assert "630×374" in err.message


def test_truncated_jpeg_is_corrupt(face_jpeg: bytes):
    err = _expect("corrupt", face_jpeg[: len(face_jpeg) // 2])
    assert "damaged or incomplete" in err.message


def test_truncated_jpeg_is_corrupt_even_after_face_recognition_flipped_the_flag(
    face_jpeg: bytes, monkeypatch
):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # what `import face_recognition` does
    _expect("corrupt", face_jpeg[: len(face_jpeg) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_cut_header_is_corrupt(variants: dict[str, bytes]):
    _expect("corrupt", variants["png"][:30])


def test_garbage_bytes_are_not_an_image():
    _expect("not_image", random.Random(375).randbytes(4096))


def test_pdf_is_not_an_image():
    err = _expect("not_image", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n")
    assert "PDF" in err.message


def test_html_page_is_named_as_a_login_page():
    page = b"\n<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body><form>...</form></body></html>"
    err = _expect("not_image", page)
    assert "web page" in err.message and "login" in err.message


def test_empty_bytes():
    err = _expect("not_image", b"")
    assert "empty" in err.message


def test_other_image_formats_are_unsupported(face_rgb: np.ndarray):
    err = _expect("unsupported", _save(Image.fromarray(face_rgb).resize((64, 64)), "ICO"))
    assert "ICO" in err.message and "JPEG or PNG" in err.message
    # Formats outside the accepted list are never parsed, not even their header: a PPM is just "not a photo".
    assert _expect("not_image", _save(Image.fromarray(face_rgb), "PPM")).code == "not_image"


def test_read_image_file_missing_and_oversized(tmp_path: Path, face_jpeg: bytes):
    with pytest.raises(ImageError) as info:
        read_image_file(tmp_path / "nope.jpg", **LIMITS)
    assert info.value.code == "unreadable"
    path = tmp_path / "big.jpg"
    path.write_bytes(face_jpeg)
    with pytest.raises(ImageError) as info:
        read_image_file(path, max_bytes=100, max_pixels=LIMITS["max_pixels"])
    assert info.value.code == "too_large"


def test_image_error_survives_pickling():
    """Errors cross the process-pool boundary with their code and message."""
    err = pickle.loads(pickle.dumps(ImageError("corrupt", "The photo is damaged.")))
    assert isinstance(err, ImageError) and err.code == "corrupt" and err.message == "The photo is damaged."


def test_sha256_hex():
    assert sha256_hex(b"probe") == hashlib.sha256(b"probe").hexdigest()


def test_a_cap_above_pillows_own_limit_is_honoured():
    """Pillow warns above ~89 M pixels; with a higher configured cap, that warning alone does not refuse."""
    claim = _png(10_000, 10_000, 8, 0, b"\x00" * 64)  # 100 M pixels, pixel data missing
    _expect("too_many_pixels", claim, max_pixels=99_999_999)
    _expect("corrupt", claim, max_pixels=100_000_000)  # past the cap check, then refused as truncated


def _progressive(side: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (128, 128, 128)).save(buf, "JPEG", progressive=True)
    return buf.getvalue()


def test_a_progressive_jpeg_whose_scan_repeats_thousands_of_times_is_refused_before_decoding(monkeypatch):
    """The crafted photo that held every face worker for minutes: small file, one refinement scan repeated
    2,000 times. Refused by counting scans, without decoding a pixel."""
    data = _progressive()
    last_scan = data.rindex(b"\xff\xda")
    crafted = data[:last_scan] + data[last_scan:-2] * 2000 + b"\xff\xd9"
    assert len(crafted) < 2_000_000
    loads = []
    monkeypatch.setattr(Image.Image, "load", lambda self: loads.append(1))
    with pytest.raises(ImageError) as info:
        decode_image(crafted, **LIMITS)
    assert info.value.code == "too_complex" and "scans" in info.value.message
    assert loads == []  # no decoding was attempted


def test_an_ordinary_progressive_jpeg_still_decodes():
    data = _progressive()
    assert 1 < data.count(b"\xff\xda") <= 12
    assert decode_image(data, **LIMITS).shape == (64, 64, 3)
