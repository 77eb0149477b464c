"""Contact sheet and face-choice images, drawn on synthetic pictures so exact pixels can be checked."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bot import contact_sheet as cs
from bot.contact_sheet import (
    MAX_LABEL_CHARS,
    OK_COLOUR,
    SMALL_COLOUR,
    SheetCandidate,
    annotate_faces,
    contact_sheet,
    draw_faces,
    face_crop_jpeg,
)

GREY = (128, 128, 128)
PLACEHOLDER = (200, 200, 200)


def _grey(width: int, height: int) -> np.ndarray:
    return np.full((height, width, 3), GREY, dtype=np.uint8)


def _face(index: int, left: int, top: int, right: int, bottom: int, quality: str = "ok") -> dict:
    return {
        "index": index,
        "box": {"top": top, "right": right, "bottom": bottom, "left": left},
        "quality": quality,
    }


def _open_png(data: bytes) -> np.ndarray:
    """Check the bytes are a complete PNG and return its pixels."""
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG"
        im.verify()
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def _jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (160, 160)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _count(pixels: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int(np.all(pixels == colour, axis=-1).sum())


# ---------------------------------------------------------------- annotate_faces


def test_annotate_draws_the_box_outline_and_leaves_the_source_alone():
    src = _grey(400, 300)
    before = src.copy()
    out = np.asarray(draw_faces(src, [_face(1, 100, 80, 200, 200)]))
    assert out.shape == (300, 400, 3)  # small images are not resized
    assert tuple(out[140, 100]) == OK_COLOUR  # left edge
    assert tuple(out[200, 150]) == OK_COLOUR  # bottom edge
    assert tuple(out[140, 150]) == GREY  # the face itself is not covered
    assert np.array_equal(src, before)


def test_annotate_downscales_long_side_to_1600_and_scales_the_boxes():
    out = np.asarray(draw_faces(_grey(3200, 2000), [_face(1, 1000, 800, 1400, 1200)]))
    assert out.shape == (1000, 1600, 3)
    # The box is drawn where the face is in the downscaled picture (x0.5).
    assert tuple(out[500, 500]) == OK_COLOUR
    assert tuple(out[600, 600]) == OK_COLOUR
    assert tuple(out[500, 600]) == GREY


def test_annotate_numbers_each_face_with_its_own_badge():
    src = _grey(900, 400)
    lefts = (100, 400, 700)
    out = np.asarray(draw_faces(src, [_face(i, x, 200, x + 100, 300) for i, x in enumerate(lefts, 1)]))
    # The same spot above each equal box: the badge is there, and shows a different number each time.
    crops = [out[200 - 120 : 200, x : x + 100] for x in lefts]
    for crop in crops:
        assert _count(crop, OK_COLOUR) > 200
        assert (crop != GREY).any(axis=-1).sum() > 0
    assert not np.array_equal(crops[0], crops[1])
    assert not np.array_equal(crops[1], crops[2])
    assert not np.array_equal(crops[0], crops[2])


def test_annotate_uses_the_given_index_not_the_list_position():
    faces = [_face(1, 100, 200, 200, 300), _face(2, 400, 200, 500, 300)]
    renumbered = [dict(faces[0], index=2), dict(faces[1], index=1)]
    a = np.asarray(draw_faces(_grey(600, 400), faces))
    b = np.asarray(draw_faces(_grey(600, 400), renumbered))
    assert np.array_equal(a[80:200, 100:200], b[80:200, 400:500])  # "1" above the other face
    assert not np.array_equal(a[80:200, 100:200], a[80:200, 400:500])


def test_small_faces_are_dashed_in_their_own_colour_and_marked_small():
    box = (100, 200, 200, 300)
    small = np.asarray(draw_faces(_grey(600, 400), [_face(1, *box, quality="too_small")]))
    ok = np.asarray(draw_faces(_grey(600, 400), [_face(1, *box)]))
    assert _count(small, OK_COLOUR) == 0
    top_edge = small[200, 100:201]
    on = np.all(top_edge == SMALL_COLOUR, axis=-1)
    assert on.any() and not on.all()  # dashes and gaps

    # "1 (small)" makes a wider badge than "1".
    def badge_columns(img: np.ndarray) -> int:
        return int((img[60:195] != GREY).any(axis=-1).any(axis=0).sum())  # above the outline

    assert badge_columns(small) > badge_columns(ok) + 40


def test_boxes_reaching_past_the_edge_are_clipped_and_the_badge_stays_visible():
    out = np.asarray(draw_faces(_grey(400, 300), [_face(1, -40, -30, 120, 150)]))
    assert tuple(out[60, 0]) == OK_COLOUR  # left edge clipped to column 0
    assert tuple(out[0, 60]) == OK_COLOUR  # top edge clipped to row 0
    assert _count(out[151:], OK_COLOUR) > 200  # no room above: the badge goes below the box


@pytest.mark.parametrize(
    "box",
    [(0, 0, 50, 50), (350, 250, 399, 299), (0, 250, 60, 299), (370, 0, 399, 20), (0, 0, 399, 299)],
)
def test_badge_position_is_always_inside_the_image(box):
    x0, y0, x1, y1 = cs._place_badge(box, (80, 60), (400, 300), [], gap=4)
    assert 0 <= x0 < x1 <= 400 and 0 <= y0 < y1 <= 300
    assert (x1 - x0, y1 - y0) == (80, 60)


def test_badge_prefers_above_then_below_and_avoids_other_badges():
    above = cs._place_badge((100, 150, 200, 250), (40, 40), (400, 400), [], gap=4)
    assert above[3] <= 150
    below = cs._place_badge((100, 10, 200, 110), (40, 40), (400, 400), [], gap=4)
    assert below[1] > 110
    moved = cs._place_badge((100, 150, 200, 250), (40, 40), (400, 400), [above], gap=4)
    assert not cs._overlap(moved, above)


def test_the_numbered_faces_picture_of_a_group_photo_is_a_jpeg_under_500_kb(faces_dir):
    """Sent over mobile data: a JPEG (it was a ~3 MB PNG), at most 1600 px, the numbers as drawn."""
    from bot.config import ImageSettings
    from bot.faces.images import decode_image

    data, images = (faces_dir / "group" / "obama_and_biden.jpg").read_bytes(), ImageSettings()
    probe, _, picture = cs.detect_with_pictures(data, images)
    assert picture is not None and picture.startswith(b"\xff\xd8\xff") and len(picture) < 500_000
    with Image.open(io.BytesIO(picture)) as im:
        assert im.format == "JPEG" and max(im.size) == cs.MAX_SIDE
        shown = np.asarray(im.convert("RGB")).astype(int)
    rgb = decode_image(data, max_bytes=images.max_bytes, max_pixels=images.max_pixels)
    drawn = np.asarray(draw_faces(rgb, [f.as_dict() for f in probe.faces])).astype(int)
    badges = np.all(drawn == OK_COLOUR, axis=-1)  # the yellow of the boxes and the number badges
    assert badges.sum() > 1000 and np.abs(shown - drawn).mean() < 4
    assert np.abs(shown[badges] - OK_COLOUR).mean() < 25  # still the same yellow: the numbers stay readable


def test_annotate_refuses_what_is_not_an_rgb_array():
    with pytest.raises(ValueError):
        annotate_faces(np.zeros((10, 10), dtype=np.uint8), [])
    with pytest.raises(ValueError):
        annotate_faces(np.zeros((10, 10, 3), dtype=np.float32), [])


# ---------------------------------------------------------------- contact_sheet


def _candidates(n: int, label: str = "S-00042 Jane Doe", thumb: bytes | None = None) -> list[SheetCandidate]:
    thumb = thumb if thumb is not None else _jpeg((30, 90, 200))
    return [SheetCandidate(i + 1, f"{label} {i + 1}", "higher similarity", thumb) for i in range(n)]


def _sheet(candidates: list[SheetCandidate], probe: bytes | None = None) -> np.ndarray:
    probe = probe or _jpeg((220, 40, 40))
    return _open_png(
        contact_sheet(
            probe, candidates, title="Request R-1 · Call 26-012345", footer="Investigative lead only."
        )
    )


def _drawn_texts(monkeypatch, draw) -> list[str]:
    """Every text `draw()` writes on an image (Pillow's ImageDraw.text, recorded)."""
    from PIL import ImageDraw

    texts: list[str] = []
    real = ImageDraw.ImageDraw.text
    monkeypatch.setattr(ImageDraw.ImageDraw, "text", lambda self, xy, text, *a, **k: (texts.append(text),
                                                                                       real(self, xy, text, *a, **k)))
    draw()
    return texts


def test_contact_sheet_labels_the_officers_photo_in_plain_words(monkeypatch):
    texts = _drawn_texts(monkeypatch, lambda: _sheet(_candidates(2)))
    assert "Your photo" in texts and "Probe" not in texts


def test_contact_sheet_shows_a_name_equal_to_its_subject_id_once(monkeypatch):
    assert cs.candidate_label("obama", "obama") == "obama"
    assert cs.candidate_label("Obama", " obama ", "BK-1") == "Obama · BK-1"
    assert cs.candidate_label("Doe, Jane", "S-00042", "BK-7") == "Doe, Jane · S-00042 · BK-7"
    assert cs.candidate_label("", "S-1") == "S-1"
    tile = SheetCandidate(1, cs.candidate_label("obama", "obama"), "higher similarity", _jpeg((30, 90, 200)))
    texts = _drawn_texts(monkeypatch, lambda: _sheet([tile]))
    assert "obama" in texts and not any("obama · obama" in t for t in texts)


def test_contact_sheet_grows_with_rows():
    sizes = {n: _sheet(_candidates(n)).shape[:2] for n in (0, 3, 6, 20)}
    heights = {n: s[0] for n, s in sizes.items()}
    widths = {n: s[1] for n, s in sizes.items()}
    assert heights[0] == heights[3] < heights[6] < heights[20]  # 1, 1, 2 and 4 rows
    assert widths[0] < widths[3] < widths[6] == widths[20]  # columns stop at MAX_COLUMNS
    assert widths[20] <= 1600


def test_contact_sheet_shows_the_probe_and_every_thumbnail():
    sheet = _sheet(_candidates(3, thumb=_jpeg((30, 90, 200))), probe=_jpeg((220, 40, 40)))
    red = np.abs(sheet.astype(int) - (220, 40, 40)).sum(axis=-1) < 30
    blue = np.abs(sheet.astype(int) - (30, 90, 200)).sum(axis=-1) < 30
    assert red.sum() > 0.8 * cs.TILE * cs.TILE
    assert blue.sum() > 3 * 0.8 * cs.TILE * cs.TILE
    # Probe on the left of every candidate.
    assert np.nonzero(red)[1].max() < np.nonzero(blue)[1].min()


def test_contact_sheet_with_no_candidate_shows_a_no_candidate_tile():
    sheet = _sheet([])
    assert _count(sheet, (245, 245, 245)) > 0.8 * cs.TILE * cs.TILE


@pytest.mark.parametrize("thumb", [None, b"", b"not a jpeg at all", _jpeg((1, 2, 3))[:40]])
def test_missing_or_broken_thumbnail_gets_a_placeholder(thumb):
    missing = _sheet([SheetCandidate(1, "S-1 A", "near the threshold", thumb)])
    present = _sheet([SheetCandidate(1, "S-1 A", "near the threshold", _jpeg((30, 90, 200)))])
    assert _count(missing, PLACEHOLDER) > 0.8 * cs.TILE * cs.TILE
    assert _count(present, PLACEHOLDER) < 0.02 * cs.TILE * cs.TILE  # only anti-aliased text edges
    assert missing.shape == present.shape


def _sheet_of(candidates: list[SheetCandidate]) -> np.ndarray:
    return _open_png(
        contact_sheet(
            _jpeg((220, 40, 40)), candidates, title="Request R-1 · Call 26-012345", footer="Lead only."
        )
    )


def test_long_labels_are_cut_and_do_not_change_the_sheet_size():
    long_label = "S-1 " + "Bartholomew-Featherstonehaugh " * 200
    odd = SheetCandidate(3, "José 李 line\nbreak \u202eevil\u202c", "band\twith\ttabs", None)
    short = _sheet_of([SheetCandidate(i + 1, "S-1 A", "near the threshold", None) for i in range(3)])
    long = _sheet_of(
        [SheetCandidate(i + 1, long_label, "near the threshold " * 50, None) for i in range(2)] + [odd]
    )
    assert long.shape == short.shape


def test_a_long_label_never_spills_over_its_band_line():
    short = _sheet_of([SheetCandidate(1, "S-1 A", "near the threshold", None)])
    long = _sheet_of(
        [SheetCandidate(1, "S-1 " + "Bartholomew-Featherstonehaugh " * 200, "near the threshold", None)]
    )
    # The probe tile's 3 px border starts 3 px above the grid.
    grid_top = int(np.argmax(np.all(short[:, cs.PAD - 3] == cs.INK, axis=-1))) + 3
    cell_bottom = grid_top + cs._cell_height()
    band_y = cell_bottom - cs._line_h(cs._font(cs.LABEL_PX))
    column = slice(cs.PAD + cs.TILE + cs.SEPARATOR, cs.PAD + 2 * cs.TILE + cs.SEPARATOR)
    assert np.array_equal(long[band_y:cell_bottom, column], short[band_y:cell_bottom, column])
    assert not np.array_equal(long[:band_y, column], short[:band_y, column])  # the label itself did change


def _estimates() -> list[str]:
    """Every estimate a tile can carry, false-match rates down to 1 in 10 million (bounds included)."""
    from bot import wording

    texts = {wording.estimate_short(None, False, None)}
    for exponent in range(8):
        for mantissa in (1.0, 1.04, 2.5, 3.3, 5.0, 9.96):
            fpir = min(1.0, mantissa * 10.0**-exponent)
            texts.add(wording.estimate_short(fpir, False, {}))
            for sample in (200, 5000, 10_000, 1_000_000, 10_000_000):
                texts.add(wording.estimate_short(fpir, True, {"sample_size": sample}))
    return sorted(texts, key=len)


def test_every_estimate_fits_its_tile_whole():
    estimates = _estimates()
    assert "stranger < 1 in 10,000" in estimates and "stranger ≈ 1 in 10,000,000" in estimates
    for text in estimates:
        px, lines = cs.band_layout(text)
        assert " ".join(lines) == text  # never cut: a number is read whole or not at all
        assert all(cs._font(px).getlength(line) <= cs.TILE for line in lines), (text, px, lines)
        assert px >= cs.BAND_MIN_PX and len(lines) <= cs.BAND_LINES


def test_the_contact_sheet_draws_the_longest_estimates_whole(monkeypatch):
    longest = _estimates()[-5:]
    tiles = [SheetCandidate(i + 1, "S-1 A", band, None) for i, band in enumerate(longest)]
    texts = _drawn_texts(monkeypatch, lambda: _sheet_of(tiles))
    assert not any("…" in t for t in texts)
    for band in longest:
        number = band.rsplit(" ", 1)[-1]
        assert any(number in t for t in texts), (number, texts)


def test_labels_are_capped_at_80_characters():
    cut = cs._clean("x" * 500)
    assert len(cut) == MAX_LABEL_CHARS and cut.endswith("…")
    assert cs._clean("a\nb\u202ec") == "a b c"
    assert cs._clean("short") == "short"


def test_long_footer_wraps_to_the_sheet_width():
    caveat = "Investigative lead only, not an identification. " * 12
    one_line = _sheet(_candidates(1))
    wrapped = _open_png(contact_sheet(_jpeg((220, 40, 40)), _candidates(1), title="R-1", footer=caveat))
    assert wrapped.shape[1] == one_line.shape[1]  # width fixed by the grid, not the text
    assert wrapped.shape[0] > one_line.shape[0] + 5 * 20  # several more lines


# ---------------------------------------------------------------- face_crop_jpeg


def _two_tone(width: int = 200, height: int = 100) -> np.ndarray:
    img = np.zeros((height, width, 3), dtype=np.uint8)
    img[:, : width // 2] = (230, 20, 20)
    img[:, width // 2 :] = (20, 20, 230)
    return img


def _open_jpeg(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG"
        return np.asarray(im.convert("RGB"))


def test_face_crop_adds_the_margin_and_keeps_the_aspect():
    crop = _open_jpeg(
        face_crop_jpeg(_two_tone(400, 400), {"top": 100, "right": 140, "bottom": 220, "left": 60}, size=160)
    )
    # 80x120 box + 25 % each side -> 120x180 -> longer side 160
    assert crop.shape[:2] == (160, 107)


def test_the_probe_crop_kept_for_examiners_is_320_px(faces_dir):
    """The Slack flow keeps a 320 px crop of each face (the size examiners compare at; the contact sheet scales
    it to its 224 px tiles): the default of face_crop_jpeg, as detect_with_pictures calls it."""
    from bot.config import ImageSettings

    box = {"top": 100, "right": 140, "bottom": 220, "left": 60}
    assert _open_jpeg(face_crop_jpeg(_two_tone(400, 400), box)).shape[:2] == (320, 213)
    _, crops, _ = cs.detect_with_pictures((faces_dir / "group" / "two_people.jpg").read_bytes(), ImageSettings())
    assert len(crops) == 2 and all(max(_open_jpeg(c).shape[:2]) == 320 for c in crops)


def test_face_crop_clips_boxes_at_the_image_edge():
    box = {"top": 20, "right": 40, "bottom": 80, "left": 0}
    crop = _open_jpeg(face_crop_jpeg(_two_tone(), box, size=160))
    # Margins 10 px (x) and 15 px (y): x 0..50 (clipped at 0), y 5..95 -> 50x90 -> 89x160.
    assert crop.shape[:2] == (160, 89)
    mean = crop.reshape(-1, 3).mean(axis=0)
    assert mean[0] > 200 and mean[2] < 60  # all from the red left half, nothing wrapped around


def test_face_crop_clips_at_the_bottom_right_corner():
    box = {"top": 70, "right": 200, "bottom": 100, "left": 170}
    crop = _open_jpeg(face_crop_jpeg(_two_tone(), box, size=64))
    # Margins 8 px: x 162..200, y 62..100 -> 38x38
    assert crop.shape[:2] == (64, 64)
    assert crop.reshape(-1, 3).mean(axis=0)[2] > 200


@pytest.mark.parametrize(
    "box",
    [
        {"top": 10, "right": 10, "bottom": 20, "left": 10},  # empty
        {"top": 300, "right": 400, "bottom": 350, "left": 300},  # outside
    ],
)
def test_face_crop_refuses_empty_or_outside_boxes(box):
    with pytest.raises(ValueError):
        face_crop_jpeg(_two_tone(), box)
