"""The examiners' comparison sheet, drawn with real faces from $BOT_TEST_FACES (decoded and cropped with the
engine as enrollment and the Slack flow crop them), checked pixel by pixel."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from bot import wording
from bot.config import ImageSettings
from bot.contact_sheet import (
    COMPARE_ROWS,
    COMPARE_TILE,
    PLACEHOLDER,
    comparison_layout,
    comparison_sheet,
    comparison_sheets,
)
from bot.faces.engine import face_thumbnail, find_faces
from bot.faces.images import decode_image

TITLE = "Request FR-0123456789 · call 26-012345 · examiner review"
FOOTER = wording.CAVEAT
TILE_BACKGROUND = 236  # the grey around a crop that does not fill its square


@pytest.fixture(scope="module")
def crops(faces_dir: Path) -> dict[str, bytes]:
    """Face crops as the bot cuts them: 320 px (probe and gallery), and a 160 px one as older galleries hold."""
    images = ImageSettings()

    def crop(rel: str, size: int = 320) -> bytes:
        rgb = decode_image((faces_dir / rel).read_bytes(), max_bytes=images.max_bytes, max_pixels=images.max_pixels)
        [face] = find_faces(rgb)
        return face_thumbnail(rgb, face.box, size=size)

    return {"probe": crop("people/obama/obama2.jpg"), "obama": crop("people/obama/obama.jpg"),
            "biden": crop("people/biden/biden.jpg"), "kit_160": crop("people/kit_harington/john2.jpeg", 160)}


def _sheet(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG"
        return np.asarray(im.convert("RGB")).astype(int)


def _tile_at(sheet: np.ndarray, corner: tuple[int, int]) -> np.ndarray:
    x, y = corner
    return sheet[y : y + COMPARE_TILE, x : x + COMPARE_TILE]


def _expected_tile(jpeg: bytes) -> tuple[np.ndarray, tuple[int, int]]:
    """The crop scaled to fit the square and centred on the tile background; and the size it was drawn at."""
    with Image.open(io.BytesIO(jpeg)) as im:
        fitted = ImageOps.contain(im.convert("RGB"), (COMPARE_TILE, COMPARE_TILE), Image.Resampling.LANCZOS)
    tile = Image.new("RGB", (COMPARE_TILE, COMPARE_TILE), (TILE_BACKGROUND,) * 3)
    tile.paste(fitted, ((COMPARE_TILE - fitted.width) // 2, (COMPARE_TILE - fitted.height) // 2))
    return np.asarray(tile).astype(int), fitted.size


def _shows(tile: np.ndarray, expected: np.ndarray) -> float:
    """Mean absolute difference inside the 1 px outline (JPEG q90 leaves ~1-2)."""
    return float(np.abs(tile[2:-2, 2:-2] - expected[2:-2, 2:-2]).mean())


def test_comparison_sheet_shows_the_probe_beside_each_candidate_at_the_same_scale(crops):
    candidates = [
        ("Barack Obama · S-0001 · R-100", crops["obama"], "a person not in the gallery scores this well in 1 in 5,000"),
        ("Joe Biden · S-0002", crops["biden"], "1 in 40"),
        ("Kit Harington · S-0003 (enrolled before 320 px crops)", crops["kit_160"], "1 in 12"),
    ]
    data = comparison_sheet(crops["probe"], candidates, title=TITLE, footer=FOOTER)
    sheet = _sheet(data)
    layout = comparison_layout(TITLE, FOOTER, len(candidates))
    assert sheet.shape[:2] == (layout.height, layout.width) and len(layout.rows) == 3  # one row per candidate
    assert layout.width <= 1200 and len(data) < 1_500_000  # a laptop screen's width; a bounded file
    probe, probe_size = _expected_tile(crops["probe"])
    for (probe_at, gallery_at), (_, crop, _) in zip(layout.rows, candidates):
        assert probe_at[1] == gallery_at[1] and gallery_at[0] >= probe_at[0] + COMPARE_TILE  # side by side
        shown_probe, shown_gallery = _tile_at(sheet, probe_at), _tile_at(sheet, gallery_at)
        assert shown_probe.shape == shown_gallery.shape == (COMPARE_TILE, COMPARE_TILE, 3)
        expected, size = _expected_tile(crop)
        # Both faces drawn at the same scale: each crop fills the square on its longer side (the 160 px one
        # is scaled up), and the pixels are the crops' own.
        assert max(size) == max(probe_size) == COMPARE_TILE
        assert _shows(shown_probe, probe) < 4 and _shows(shown_gallery, expected) < 4
        assert _shows(shown_probe, expected) > 15  # the probe tile is not the candidate's face


def test_comparison_sheet_draws_a_placeholder_for_a_missing_gallery_crop(crops):
    candidates = [("No crop kept", None, "1 in 30"), ("Damaged crop", b"\xff\xd8 not a jpeg", "1 in 20"),
                  ("Biden", crops["biden"], "1 in 10")]
    sheet = _sheet(comparison_sheet(crops["probe"], candidates, title=TITLE, footer=FOOTER))
    layout = comparison_layout(TITLE, FOOTER, 3)
    probe, _ = _expected_tile(crops["probe"])
    for probe_at, gallery_at in layout.rows[:2]:
        grey = np.all(np.abs(_tile_at(sheet, gallery_at) - PLACEHOLDER) <= 8, axis=-1).mean()
        assert grey > 0.9  # the grey placeholder (with its short text), no face
        assert _shows(_tile_at(sheet, probe_at), probe) < 4  # the probe is still shown beside it
    assert np.all(np.abs(_tile_at(sheet, layout.rows[2][1]) - PLACEHOLDER) <= 8, axis=-1).mean() < 0.2


def test_comparison_sheet_holds_at_most_10_candidates_and_says_how_many_it_left_off(crops):
    many = [(f"Candidate {n}", crops["obama"] if n % 2 else crops["biden"], f"1 in {n * 10}") for n in range(1, 24)]
    sheet = _sheet(comparison_sheet(crops["probe"], many, title=TITLE, footer=FOOTER))
    cut = comparison_layout(TITLE, FOOTER, len(many), note=True)
    assert len(cut.rows) == COMPARE_ROWS == 10 and sheet.shape[:2] == (cut.height, cut.width)
    assert cut.height > comparison_layout(TITLE, FOOTER, 10).height  # the note's line
    assert wording.comparison_left_off(13, COMPARE_ROWS) == "13 more candidates not shown on this sheet (at most 10 a sheet)."
    pages = comparison_sheets(crops["probe"], many, title=TITLE, footer=FOOTER)
    heights = [_sheet(page).shape[0] for page in pages]
    assert len(pages) == 3 and heights[0] == heights[1] > heights[2]
    last = comparison_layout(wording.comparison_sheet_title(TITLE, 3, 3), FOOTER, 3)
    assert heights[2] == last.height  # the last sheet holds the remaining 3 rows
    # The ranks run on: the first row of sheet 2 is the 11th candidate (n = 11: the obama crop, not biden's).
    second = comparison_layout(wording.comparison_sheet_title(TITLE, 2, 3), FOOTER, 10)
    shown = _tile_at(_sheet(pages[1]), second.rows[0][1])
    assert _shows(shown, _expected_tile(crops["obama"])[0]) < 4 < _shows(shown, _expected_tile(crops["biden"])[0])


def test_comparison_sheet_with_no_candidate_is_one_row_with_the_probe(crops):
    [page] = comparison_sheets(crops["probe"], [], title=TITLE, footer=wording.NO_CANDIDATE_CAVEAT)
    layout = comparison_layout(TITLE, wording.NO_CANDIDATE_CAVEAT, 0)
    sheet = _sheet(page)
    assert len(layout.rows) == 1 and sheet.shape[:2] == (layout.height, layout.width)
    probe, _ = _expected_tile(crops["probe"])
    assert _shows(_tile_at(sheet, layout.rows[0][0]), probe) < 4
    assert np.all(np.abs(_tile_at(sheet, layout.rows[0][1]) - PLACEHOLDER) <= 8, axis=-1).mean() > 0.9
