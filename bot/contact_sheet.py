"""Images a person looks at: the probe with numbered face boxes (face choice) and the contact sheet.

Pure functions: a numpy RGB array or JPEG bytes in, JPEG (numbered faces, face crops) or PNG (the contact
sheet) bytes out. No Slack, no face detection, no files. Text drawn here is pixels, not markup, so nothing is
escaped; every label is cut to a bounded length instead, so a long name cannot push the layout apart.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from bot import wording
from bot.config import ImageSettings
from bot.faces.engine import CROP_MARGIN, CROP_PX, Box, Probe, detect_rgb, face_thumbnail
from bot.faces.images import decode_image
from bot.faces.quality import level_of

MAX_SIDE = 1600  # annotated probe: longer side at most this (Slack previews, phone data)
ANNOTATED_QUALITY = 85  # JPEG quality of the numbered picture: small on mobile data, numbers still crisp
MAX_LABEL_CHARS = 80  # never render more than this per label
OK_COLOUR = (255, 214, 0)  # yellow with a black halo: stands out on skin, sky and dark clothing alike
SMALL_COLOUR = (235, 0, 235)  # magenta, dashed and "(small)": colour is never the only cue
HALO = (0, 0, 0)
INK = (20, 20, 20)
PAPER = (255, 255, 255)
PLACEHOLDER = (200, 200, 200)  # a tile with no picture
RULE = (180, 180, 180)

# Short labels on the images (sentences live in bot.wording).
PROBE_LABEL = "Your photo"  # the officer's face crop, in plain words ("probe" is examiners' jargon)
NO_THUMBNAIL = "no thumbnail"
NO_PROBE = "no image"
NO_CANDIDATE = "No candidate"
SMALL_SUFFIX = "(small)"

# Contact sheet layout, in pixels. Fixed sizes so the sheet width depends only on the column count.
TILE = 224
GAP = 20
PAD = 24
SEPARATOR = 36  # space between the probe column and the candidates, with a rule in it
MAX_COLUMNS = 5  # default max_candidates is 5: one row
LABEL_LINES = 3
TITLE_PX, RANK_PX, LABEL_PX, TILE_TEXT_PX, FOOTER_PX = 28, 26, 20, 22, 20
# A tile's estimate ("stranger < 1 in 10,000") is never cut: it shrinks to BAND_MIN_PX to stay on one line, and
# wraps onto BAND_LINES lines past that (room for both is kept under every tile).
BAND_MIN_PX, BAND_LINES = 16, 2

# Comparison sheet (examiners): one row per candidate, the probe face and the gallery face side by side, both
# scaled to fit COMPARE_TILE (the size of the crops: engine.CROP_PX), beside the candidate's label and estimate.
COMPARE_TILE = CROP_PX
COMPARE_TEXT_W = 420  # the text column; the sheet is 1,156 px wide, readable on a laptop without zooming
COMPARE_ROWS = 10  # candidates on one sheet at most (comparison_sheets paginates; comparison_sheet cuts)
COMPARE_CAPTION_PX, COMPARE_ESTIMATE_LINES = 20, 6
COMPARE_QUALITY = 90  # a JPEG: ten rows of faces as PNG would be ~10 MB
_THUMB_MAX_PIXELS = 4096 * 4096  # a gallery crop is 320 px (older ones 160 px); anything huge is not one

_FONT_FILES = {False: "DejaVuSans.ttf", True: "DejaVuSans-Bold.ttf"}


@dataclass(frozen=True)
class SheetCandidate:
    """One candidate tile: rank, a label (e.g. subject id + name), the distance band, the gallery thumbnail."""

    rank: int
    label: str
    distance_band: str
    thumbnail_jpeg: bytes | None = None


# ---------------------------------------------------------------- public functions


def candidate_label(name: str, subject_id: str, record_ref: str = "") -> str:
    """A tile's label, "name · subject id · record": the id is left out when it only repeats the name (a
    gallery enrolled from folders names each subject by its id), the record when there is none."""
    parts = [name or subject_id]
    if subject_id and _clean(subject_id).casefold() != _clean(parts[0]).casefold():
        parts.append(subject_id)
    if record_ref:
        parts.append(record_ref)
    return " · ".join(parts)


def annotate_faces(rgb: np.ndarray, faces: list[dict]) -> bytes:
    """The probe photo with each face's box and number (`draw_faces`), as JPEG bytes for a phone: at most
    MAX_SIDE px on the longer side, quality ANNOTATED_QUALITY (a 1600 px photo is ~3 MB as PNG, a few hundred
    kB as JPEG; the numbers are black on yellow, so they stay sharp)."""
    buf = io.BytesIO()
    draw_faces(rgb, faces).save(buf, "JPEG", quality=ANNOTATED_QUALITY, optimize=True)
    return buf.getvalue()


def draw_faces(rgb: np.ndarray, faces: list[dict]) -> Image.Image:
    """Draw each face's box and its number on a copy of the probe photo.

    `faces` are dicts as in `Face.as_dict()` (`{"index", "box": {"top","right","bottom","left"}, "quality"}`;
    a bare box dict with "index" also works). Boxes are in pixels of `rgb`. The output is downscaled so
    its longer side is at most MAX_SIDE; line width and label size scale with the output so the numbers
    stay readable on a phone. Faces of quality "too_small" get a dashed magenta box and "(small)".
    """
    image = Image.fromarray(_check_rgb(rgb))
    scale = min(1.0, MAX_SIDE / max(image.size))
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    width, height = image.size
    longer = max(width, height)
    line_w = max(2, round(longer / 320))
    font = _font(max(18, round(longer / 26)), bold=True)
    draw = ImageDraw.Draw(image)

    drawn: list[tuple[tuple[int, int, int, int], str, tuple[int, int, int]]] = []
    for position, face in enumerate(faces, start=1):
        rect = _scaled_box(face.get("box", face), scale, width, height)
        if rect is None:
            continue
        small = level_of(face) == "too_small"
        colour = SMALL_COLOUR if small else OK_COLOUR
        if small:
            _dashed_rect(draw, rect, line_w, colour)
        else:
            _solid_rect(draw, rect, line_w, colour)
        number = face.get("index", position)
        drawn.append((rect, f"{number} {SMALL_SUFFIX}" if small else str(number), colour))

    # Badges after all boxes, so no outline is drawn over a number.
    taken: list[tuple[int, int, int, int]] = []
    for rect, text, colour in drawn:
        taken.append(_draw_badge(draw, rect, text, colour, font, line_w, (width, height), taken))
    return image


def contact_sheet(
    probe_face_jpeg: bytes, candidates: list[SheetCandidate], *, title: str, footer: str
) -> bytes:
    """The probe face beside each candidate's gallery thumbnail, labelled by rank; return PNG bytes.

    Layout: a title line, the probe tile on the left, candidates in up to MAX_COLUMNS columns (rows wrap),
    and the footer (the caveat) wrapped to the sheet width. No candidates -> a "No candidate" tile. A missing
    or undecodable thumbnail -> a grey "no thumbnail" tile. Labels are cut at MAX_LABEL_CHARS and to the
    tile width, so the sheet width depends only on the number of columns; estimates are never cut
    (`band_layout`).
    """
    columns = min(max(len(candidates), 1), MAX_COLUMNS)
    rows = max(1, -(-len(candidates) // columns))
    width = 2 * PAD + TILE + SEPARATOR + columns * TILE + (columns - 1) * GAP
    content_w = width - 2 * PAD

    title_font, footer_font = _font(TITLE_PX, bold=True), _font(FOOTER_PX)
    rank_font, label_font, tile_font = (
        _font(RANK_PX, bold=True),
        _font(LABEL_PX),
        _font(TILE_TEXT_PX, bold=True),
    )
    title_lines = _paragraphs(title, title_font, content_w, limit=300, max_lines=3)
    footer_lines = _paragraphs(footer, footer_font, content_w, limit=3000, max_lines=None)
    title_h = len(title_lines) * _line_h(title_font)
    footer_h = len(footer_lines) * _line_h(footer_font)
    cell_h = _cell_height()
    grid_h = rows * cell_h + (rows - 1) * GAP
    height = PAD + title_h + 2 * 14 + grid_h + 2 * 14 + footer_h + PAD

    sheet = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(sheet)
    y = PAD
    for line in title_lines:
        draw.text((PAD, y), line, font=title_font, fill=INK)
        y += _line_h(title_font)
    y += 14
    draw.line((PAD, y, width - PAD, y), fill=RULE, width=2)
    grid_top = y + 14

    probe = _open_jpeg(probe_face_jpeg)
    sheet.paste(_tile(probe, NO_PROBE, tile_font), (PAD, grid_top))
    draw.rectangle((PAD - 3, grid_top - 3, PAD + TILE + 2, grid_top + TILE + 2), outline=INK, width=3)
    draw.text((PAD, grid_top + TILE + 10), PROBE_LABEL, font=rank_font, fill=INK)
    rule_x = PAD + TILE + SEPARATOR // 2
    draw.line((rule_x, grid_top, rule_x, grid_top + grid_h), fill=RULE, width=2)

    left = PAD + TILE + SEPARATOR
    if not candidates:
        _draw_no_candidate(draw, (left, grid_top), tile_font)
    for i, cand in enumerate(candidates):
        x = left + (i % columns) * (TILE + GAP)
        cy = grid_top + (i // columns) * (cell_h + GAP)
        thumb = _open_jpeg(cand.thumbnail_jpeg) if cand.thumbnail_jpeg else None
        sheet.paste(_tile(thumb, NO_THUMBNAIL, tile_font), (x, cy))
        ty = cy + TILE + 10
        draw.text((x, ty), _fit(f"#{cand.rank}", rank_font, TILE), font=rank_font, fill=INK)
        ty += _line_h(rank_font)
        for line in _wrap(_clean(cand.label), label_font, TILE, max_lines=LABEL_LINES):
            draw.text((x, ty), line, font=label_font, fill=INK)
            ty += _line_h(label_font)
        band_px, band = band_layout(cand.distance_band)
        band_font = _font(band_px)
        by = cy + cell_h - len(band) * _line_h(band_font)
        for line in band:
            draw.text((x, by), line, font=band_font, fill=(70, 70, 70))
            by += _line_h(band_font)

    y = grid_top + grid_h + 14
    draw.line((PAD, y, width - PAD, y), fill=RULE, width=2)
    y += 14
    for line in footer_lines:
        draw.text((PAD, y), line, font=footer_font, fill=INK)
        y += _line_h(footer_font)
    return _png(sheet)


@dataclass(frozen=True)
class ComparisonLayout:
    """Where comparison_sheet draws: the sheet size and, per row, the top-left corners of the probe tile and
    of the gallery tile (each COMPARE_TILE square)."""

    width: int
    height: int
    rows: tuple[tuple[tuple[int, int], tuple[int, int]], ...]


def comparison_layout(title: str, footer: str, rows: int, *, note: bool = False) -> ComparisonLayout:
    """The geometry of a comparison sheet of `rows` rows (at most COMPARE_ROWS) with this title and footer
    (`note`: the line saying candidates were left off)."""
    rows = min(max(rows, 1), COMPARE_ROWS)
    width = 2 * PAD + 2 * COMPARE_TILE + GAP + SEPARATOR + COMPARE_TEXT_W
    content_w = width - 2 * PAD
    title_h = len(_paragraphs(title, _font(TITLE_PX, bold=True), content_w, limit=300, max_lines=3)) * _line_h(
        _font(TITLE_PX, bold=True))
    footer_font = _font(FOOTER_PX)
    footer_h = (len(_paragraphs(footer, footer_font, content_w, limit=3000, max_lines=None)) + int(note)) * _line_h(
        footer_font)
    row_h = COMPARE_TILE + 8 + _line_h(_font(COMPARE_CAPTION_PX))
    top = PAD + title_h + 28
    corners = tuple(((PAD, top + i * (row_h + GAP)), (PAD + COMPARE_TILE + GAP, top + i * (row_h + GAP)))
                    for i in range(rows))
    height = top + rows * row_h + (rows - 1) * GAP + 28 + footer_h + PAD
    return ComparisonLayout(width, height, corners)


def comparison_sheet(probe_crop_jpeg: bytes | None, candidates: list[tuple[str, bytes | None, str]], *, title: str,
                     footer: str, first_rank: int = 1) -> bytes:
    """For an examiner: one row per candidate, the probe face beside that candidate's gallery face at the same
    scale (both crops scaled to fit COMPARE_TILE: cut the same way, the face box plus 25 %, they show faces at
    one scale), then its rank, label and estimate; the footer (the caveat) below. Returns JPEG bytes.

    `candidates` are (label, gallery crop JPEG or None, estimate text), best first; ranks count from
    `first_rank`. A missing or undecodable crop draws a grey placeholder. At most COMPARE_ROWS rows: further
    candidates are left off with a note above the footer (`comparison_sheets` pages them instead).
    """
    shown, left_off = candidates[:COMPARE_ROWS], max(0, len(candidates) - COMPARE_ROWS)
    layout = comparison_layout(title, footer, len(shown), note=bool(left_off))
    sheet = Image.new("RGB", (layout.width, layout.height), PAPER)
    draw = ImageDraw.Draw(sheet)
    content_w = layout.width - 2 * PAD
    title_font, footer_font = _font(TITLE_PX, bold=True), _font(FOOTER_PX)
    rank_font, label_font, caption_font = _font(RANK_PX, bold=True), _font(TILE_TEXT_PX), _font(COMPARE_CAPTION_PX)
    y = PAD
    for line in _paragraphs(title, title_font, content_w, limit=300, max_lines=3):
        draw.text((PAD, y), line, font=title_font, fill=INK)
        y += _line_h(title_font)
    draw.line((PAD, y + 14, layout.width - PAD, y + 14), fill=RULE, width=2)

    probe = _tile(_open_jpeg(probe_crop_jpeg), wording.COMPARISON_NO_PROBE, caption_font, COMPARE_TILE)
    text_x = PAD + 2 * COMPARE_TILE + GAP + SEPARATOR
    for i, (probe_at, gallery_at) in enumerate(layout.rows):
        label, crop, estimate = shown[i] if shown else (wording.COMPARISON_NO_CANDIDATE, None, "")
        rank = first_rank + i
        sheet.paste(probe, probe_at)
        sheet.paste(_tile(_open_jpeg(crop), wording.COMPARISON_NO_GALLERY_CROP, caption_font, COMPARE_TILE),
                    gallery_at)
        below = probe_at[1] + COMPARE_TILE + 6
        draw.text((probe_at[0], below), _fit(wording.COMPARISON_PROBE, caption_font, COMPARE_TILE),
                  font=caption_font, fill=INK)
        draw.text((gallery_at[0], below), _fit(wording.comparison_gallery_caption(rank) if shown else "",
                                               caption_font, COMPARE_TILE), font=caption_font, fill=INK)
        ty = probe_at[1]
        if shown:
            draw.text((text_x, ty), f"#{rank}", font=rank_font, fill=INK)
            ty += _line_h(rank_font)
        for line in _wrap(_clean(label), label_font, COMPARE_TEXT_W, max_lines=LABEL_LINES):
            draw.text((text_x, ty), line, font=label_font, fill=INK)
            ty += _line_h(label_font)
        for line in _wrap(_clean(estimate, 600), caption_font, COMPARE_TEXT_W, max_lines=COMPARE_ESTIMATE_LINES):
            draw.text((text_x, ty + 6), line, font=caption_font, fill=(70, 70, 70))
            ty += _line_h(caption_font)
        if i:
            draw.line((PAD, probe_at[1] - GAP // 2, layout.width - PAD, probe_at[1] - GAP // 2), fill=RULE)
    y = layout.rows[-1][0][1] + COMPARE_TILE + 8 + _line_h(caption_font) + 14
    draw.line((PAD, y, layout.width - PAD, y), fill=RULE, width=2)
    y += 14
    lines = ([wording.comparison_left_off(left_off, COMPARE_ROWS)] if left_off else []) + _paragraphs(
        footer, footer_font, content_w, limit=3000, max_lines=None)
    for line in lines:
        draw.text((PAD, y), _fit(line, footer_font, content_w), font=footer_font, fill=INK)
        y += _line_h(footer_font)
    buf = io.BytesIO()
    sheet.save(buf, "JPEG", quality=COMPARE_QUALITY, subsampling=0, optimize=True)  # 4:4:4 keeps text crisp
    return buf.getvalue()


def comparison_sheets(probe_crop_jpeg: bytes | None, candidates: list[tuple[str, bytes | None, str]], *,
                      title: str, footer: str) -> list[bytes]:
    """Every candidate on comparison sheets of COMPARE_ROWS rows each, ranks running on, each titled with its
    place ("sheet 2 of 3") when there are several; one sheet saying "no candidate" when there are none."""
    pages = [candidates[i : i + COMPARE_ROWS] for i in range(0, len(candidates), COMPARE_ROWS)] or [[]]
    return [
        comparison_sheet(probe_crop_jpeg, page, first_rank=1 + n * COMPARE_ROWS, footer=footer,
                         title=title if len(pages) == 1 else wording.comparison_sheet_title(title, n + 1, len(pages)))
        for n, page in enumerate(pages)
    ]


def comparison_for(gallery: Any, result: Any, probe_crop: bytes | None) -> bytes:
    """For the examiner (JPEG): the searched face beside each candidate's gallery crop at one scale (320 px
    tiles). `result` is a bot.service.SearchResult, `gallery` its bot.faces.gallery.Gallery."""
    rows = [(candidate_label(c.name, c.subject_id, c.record_ref),
             gallery.thumbnail(c.image_sha256) if c.image_sha256 else None,
             wording.estimate_short(c.fpir_estimate, c.below_resolution, result.operating_point))
            for c in result.candidates]
    return comparison_sheet(probe_crop, rows, title=wording.comparison_title(result.request_id, result.call_number),
                            footer=wording.CAVEAT_SHORT)


def contact_sheet_for(gallery: Any, result: Any, probe_crop: bytes | None) -> bytes:
    """For the requester (PNG): the searched face beside each candidate's gallery thumbnail, labelled by rank, the
    caveat below. `result` is a bot.service.SearchResult, `gallery` its bot.faces.gallery.Gallery."""
    tiles = [
        SheetCandidate(
            rank=c.rank,
            label=candidate_label(c.name, c.subject_id, c.record_ref),
            distance_band=wording.estimate_short(c.fpir_estimate, c.below_resolution, result.operating_point),
            thumbnail_jpeg=gallery.thumbnail(c.image_sha256) if c.image_sha256 else None,
        )
        for c in result.candidates
    ]
    return contact_sheet(probe_crop or b"", tiles, title=wording.contact_sheet_title(result.request_id,
                                                                                       result.call_number),
                         footer=result.caveat)


def detect_with_pictures(data: bytes, images: ImageSettings) -> tuple[Probe, list[bytes], bytes | None]:
    """Decode a photo once and return its faces without encodings (`engine.detect_rgb`), a CROP_PX crop per
    face (`face_crop_jpeg`: the size examiners compare at; the contact sheet scales it to its tiles) and, with several faces, the numbered picture (`annotate_faces`). Runs in a face worker
    (`FaceEngine.run`), so decoding and drawing share the photo's deadline."""
    rgb = decode_image(data, max_bytes=images.max_bytes, max_pixels=images.max_pixels,
                       max_aspect_ratio=images.max_aspect_ratio)
    probe = detect_rgb(rgb, data, images)
    faces = [f.as_dict() for f in probe.faces]
    crops = [face_crop_jpeg(rgb, f["box"]) for f in faces]
    return probe, crops, annotate_faces(rgb, faces) if len(faces) > 1 else None


def face_crop_jpeg(rgb: np.ndarray, box: dict, margin: float = CROP_MARGIN, size: int = CROP_PX) -> bytes:
    """JPEG of one face for the probe tile: the box grown by `margin` of its size on each side, clipped to
    the image, resized keeping its aspect so the longer side is `size` px (`engine.face_thumbnail`, so a probe
    crop and a gallery crop of the same size show faces at the same scale)."""
    arr = _check_rgb(rgb)
    if margin < 0 or size < 1:
        raise ValueError("margin must be >= 0 and size >= 1")
    top, right, bottom, left = (int(box[k]) for k in ("top", "right", "bottom", "left"))
    if right <= left or bottom <= top:
        raise ValueError(f"face box is empty: {box}")
    return face_thumbnail(arr, Box(top=top, right=right, bottom=bottom, left=left), size=size, margin=margin)


# ---------------------------------------------------------------- drawing helpers


def _check_rgb(rgb: Any) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or 0 in arr.shape:
        raise ValueError(f"expected an HxWx3 uint8 RGB array, got {arr.dtype} {arr.shape}")
    return arr


def _scaled_box(box: dict, scale: float, width: int, height: int) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) inclusive, scaled and clipped to the image; None when outside it."""
    left = max(0, round(int(box["left"]) * scale))
    top = max(0, round(int(box["top"]) * scale))
    right = min(width - 1, round(int(box["right"]) * scale))
    bottom = min(height - 1, round(int(box["bottom"]) * scale))
    if right <= left or bottom <= top:
        return None
    return left, top, right, bottom


def _solid_rect(draw: ImageDraw.ImageDraw, rect: tuple[int, int, int, int], line_w: int, colour) -> None:
    left, top, right, bottom = rect
    # A 1 px black halo each side keeps a yellow line visible on a pale background.
    draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), outline=HALO, width=line_w + 2)
    draw.rectangle(rect, outline=colour, width=line_w)


def _dashed_rect(draw: ImageDraw.ImageDraw, rect: tuple[int, int, int, int], line_w: int, colour) -> None:
    left, top, right, bottom = rect
    dash, step = 4 * line_w, 7 * line_w
    segments = []
    for x in range(left, right + 1, step):
        x_end = min(x + dash - 1, right)
        segments += [(x, top, x_end, top + line_w - 1), (x, bottom - line_w + 1, x_end, bottom)]
    for y in range(top, bottom + 1, step):
        y_end = min(y + dash - 1, bottom)
        segments += [(left, y, left + line_w - 1, y_end), (right - line_w + 1, y, right, y_end)]
    for x0, y0, x1, y1 in segments:
        draw.rectangle((x0 - 1, y0 - 1, x1 + 1, y1 + 1), fill=HALO)
    for segment in segments:
        draw.rectangle(segment, fill=colour)


def _place_badge(
    box: tuple[int, int, int, int],
    size: tuple[int, int],
    image_size: tuple[int, int],
    taken: list[tuple[int, int, int, int]],
    gap: int,
) -> tuple[int, int, int, int]:
    """Where a badge goes: (x0, y0, x1, y1), end exclusive, always inside the image.

    Prefers above the box, then below it, then inside its top-left corner; positions that fit without
    being pushed vertically come first, and one that overlaps no badge already placed wins.
    """
    left, top, _, bottom = box
    width, height = image_size
    bw, bh = min(size[0], width), min(size[1], height)
    raw = [(left, top - gap - bh), (left, bottom + gap + 1), (left + gap, top + gap)]
    rects = []
    for x, y in raw:
        x = min(max(0, x), width - bw)
        y = min(max(0, y), height - bh)
        rects.append((x, y, x + bw, y + bh))
    fits = [0 <= y and y + bh <= height for _, y in raw]
    order = [i for i in range(len(raw)) if fits[i]] + [i for i in range(len(raw)) if not fits[i]]
    for i in order:
        if not any(_overlap(rects[i], other) for other in taken):
            return rects[i]
    return rects[order[0]]


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _draw_badge(draw, box, text, colour, font, line_w, image_size, taken) -> tuple[int, int, int, int]:
    text = _drawable(text, font)
    x0, y0, x1, y1 = font.getbbox(text)
    pad = max(4, round(_font_px(font) * 0.25))
    size = (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad)
    rect = _place_badge(box, size, image_size, taken, gap=line_w + 2)
    border = max(2, line_w // 2 + 1)
    draw.rounded_rectangle(
        (rect[0], rect[1], rect[2] - 1, rect[3] - 1), radius=pad, fill=colour, outline=HALO, width=border
    )
    # Offset by the ink's bbox so the digits sit exactly in the middle, whatever the font's bearings.
    draw.text((rect[0] + pad - x0, rect[1] + pad - y0), text, font=font, fill=HALO)
    return rect


def band_layout(text: str) -> tuple[int, list[str]]:
    """How a tile's estimate is drawn: (font size in px, lines), every line at most TILE wide. One line at
    LABEL_PX when it fits, else at the largest size down to BAND_MIN_PX that fits, else wrapped at BAND_MIN_PX
    onto BAND_LINES lines (only a text longer than any estimate is cut past those)."""
    text = _clean(text)
    for px in range(LABEL_PX, BAND_MIN_PX - 1, -1):
        font = _font(px)
        line = _drawable(text, font)
        if _text_w(line, font) <= TILE:
            return px, [line]
    return BAND_MIN_PX, _wrap(text, _font(BAND_MIN_PX), TILE, max_lines=BAND_LINES)


def _cell_height() -> int:
    """Height of one grid cell: tile, rank line, LABEL_LINES label lines, the estimate's band."""
    band = max(_line_h(_font(LABEL_PX)), BAND_LINES * _line_h(_font(BAND_MIN_PX)))
    return TILE + 10 + _line_h(_font(RANK_PX, bold=True)) + LABEL_LINES * _line_h(_font(LABEL_PX)) + band


def _tile(image: Image.Image | None, missing_text: str, font, size: int = TILE) -> Image.Image:
    """A size×size tile: the image scaled (up or down, LANCZOS) to fit and centred, or a grey placeholder."""
    if image is None:
        tile = Image.new("RGB", (size, size), PLACEHOLDER)
        _centred_text(ImageDraw.Draw(tile), missing_text, font, (60, 60, 60), size)
    else:
        tile = Image.new("RGB", (size, size), (236, 236, 236))
        fitted = ImageOps.contain(image, (size, size), Image.Resampling.LANCZOS)
        tile.paste(fitted, ((size - fitted.width) // 2, (size - fitted.height) // 2))
    ImageDraw.Draw(tile).rectangle((0, 0, size - 1, size - 1), outline=(150, 150, 150), width=1)
    return tile


def _draw_no_candidate(draw: ImageDraw.ImageDraw, origin: tuple[int, int], font) -> None:
    x, y = origin
    draw.rectangle((x, y, x + TILE - 1, y + TILE - 1), fill=(245, 245, 245), outline=(150, 150, 150), width=2)
    text = _drawable(NO_CANDIDATE, font)
    x0, y0, x1, y1 = font.getbbox(text)
    draw.text((x + (TILE - (x1 - x0)) // 2 - x0, y + (TILE - (y1 - y0)) // 2 - y0), text, font=font, fill=INK)


def _centred_text(draw: ImageDraw.ImageDraw, text: str, font, fill, size: int = TILE) -> None:
    text = _fit(text, font, size - 8)
    x0, y0, x1, y1 = font.getbbox(text)
    draw.text(((size - (x1 - x0)) // 2 - x0, (size - (y1 - y0)) // 2 - y0), text, font=font, fill=fill)


def _open_jpeg(data: bytes | None) -> Image.Image | None:
    """Decode a thumbnail; None when absent, corrupt or implausibly large (it is then shown as missing)."""
    if not data:
        return None
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > _THUMB_MAX_PIXELS:
                return None
            return ImageOps.exif_transpose(im).convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def _png(image: Image.Image, level: int = 6) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=level)
    return buf.getvalue()


# ---------------------------------------------------------------- text helpers


def _font_dirs() -> list[Path]:
    # matplotlib (a project dependency) ships DejaVu; find its folder without importing it.
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(p) / "mpl-data" / "fonts" / "ttf" for p in spec.submodule_search_locations]


@functools.lru_cache(maxsize=32)
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans (wide glyph coverage, a bold face) when found, else Pillow's built-in TrueType font."""
    name = _FONT_FILES[bold]
    for candidate in [str(d / name) for d in _font_dirs()] + [name]:
        try:
            return ImageFont.truetype(candidate, size)
        except (OSError, ImportError):
            continue
    return ImageFont.load_default(size=size)


def _font_px(font) -> int:
    return int(getattr(font, "size", 11))


def _line_h(font) -> int:
    return round(_font_px(font) * 1.3)


@functools.lru_cache(maxsize=8192)
def _has_glyph(font, char: str) -> bool:
    if not isinstance(font, ImageFont.FreeTypeFont):
        return ord(char) < 128
    if char == " ":
        return True
    # U+FFFF is a noncharacter: what it renders is the font's "missing glyph" box.
    return bytes(font.getmask(char)) != bytes(font.getmask("\uffff"))


def _drawable(text: str, font) -> str:
    """Replace characters the font cannot draw: accents folded (é -> e) where that helps, else "?"."""
    out = []
    for char in text:
        if _has_glyph(font, char):
            out.append(char)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
        out.append(base if base and all(_has_glyph(font, c) for c in base) else "?")
    return "".join(out)


def _clean(text: str | None, limit: int = MAX_LABEL_CHARS) -> str:
    """One line: control and format characters (newlines, bidi overrides) become spaces; cut at `limit`."""
    text = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in str(text or ""))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _paragraphs(text: str, font, width: int, *, limit: int, max_lines: int | None) -> list[str]:
    """Wrap text that may hold newlines (kept as paragraph breaks) to `width` px."""
    lines: list[str] = []
    for paragraph in str(text or "")[:limit].splitlines() or [""]:
        lines += _wrap(_clean(paragraph, limit), font, width) or [""]
    if max_lines and len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _fit(lines[-1] + "…", font, width)
    return lines


def _text_w(text: str, font) -> float:
    return font.getlength(text)


def _fit(text: str, font, width: int) -> str:
    """The text, cut with … so it is at most `width` px wide."""
    text = _drawable(text, font)
    if _text_w(text, font) <= width:
        return text
    while text and _text_w(text.rstrip() + "…", font) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _chars_fitting(word: str, font, width: int) -> int:
    """How many leading characters of `word` fit in `width` px (at least 1, so wrapping always advances)."""
    n = 1
    while n < len(word) and _text_w(word[: n + 1], font) <= width:
        n += 1
    return n


def _wrap(text: str, font, width: int, max_lines: int | None = None) -> list[str]:
    """Greedy word wrap to `width` px; words wider than a line are broken; the last kept line gets …"""
    text = _drawable(text, font)
    lines: list[str] = []
    line = ""
    for word in text.split():
        trial = f"{line} {word}" if line else word
        if _text_w(trial, font) <= width:
            line = trial
            continue
        if line:
            lines.append(line)
        while _text_w(word, font) > width:
            cut = _chars_fitting(word, font, width)
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line:
        lines.append(line)
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _fit(lines[-1] + "…", font, width)
    return lines
