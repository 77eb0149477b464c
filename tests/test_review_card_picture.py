"""README's picture of the review card (docs/review-card.svg) is the real card, drawn: regenerated here it must be
byte-identical, so a card whose wording changed fails until the picture is redrawn."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from bench import draw_review_card as drawing
from bot import wording
from bot.slack.exam_card import review_card

COMMITTED = Path(__file__).resolve().parent.parent / "docs" / "review-card.svg"
REDRAW = "redraw it with `python -m bench.draw_review_card` and commit docs/review-card.svg"


def _shown(svg: str) -> str:
    """Every text line of the picture, in order, joined by spaces: what a reader sees, unwrapped."""
    lines = ["".join(t.itertext()) for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")]
    return " ".join(" ".join(lines).split())


@pytest.fixture(scope="module")
def svg() -> str:
    return COMMITTED.read_text(encoding="utf-8")


def test_the_committed_picture_is_the_card_drawn_now(tmp_path):
    out = tmp_path / "review-card.svg"
    assert drawing.main([str(out)]) == 0
    assert out.read_bytes() == COMMITTED.read_bytes(), f"the review card or its drawing changed: {REDRAW}"


def test_every_text_of_the_card_is_in_the_picture(svg):
    blocks = review_card(drawing.sample_exam()).kwargs()["blocks"]
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    contexts = [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]
    buttons = [e["text"]["text"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert len(sections) == 3 and len(contexts) == 2 and len(buttons) == 8
    shown = _shown(svg)
    for text in sections + contexts:
        seen = " ".join(drawing.plain(text).split())
        assert seen in shown, seen
        assert all(escape(word) in svg for word in seen.split())  # each word, escaped, in the file itself
    for label in buttons:
        assert f">{escape(label)}</text>" in svg, label


def test_the_picture_shows_people_by_name_and_escapes_what_they_typed(svg):
    assert "5th &amp; Main" in svg and "<@" not in svg and "&lt;@" not in svg
    assert "@officer.rivera" in svg and "@examiner.chen" in svg
    assert "*" not in _shown(svg)  # mrkdwn bold is drawn bold, not starred


def test_the_faces_are_drawn_not_photographed(svg):
    assert "<image" not in svg and "data:" not in svg and "href" not in svg
    assert svg.count(wording.COMPARISON_PROBE) == 2  # the searched face beside each of the two candidates
    assert "sans-serif" in svg


def test_a_wording_change_is_seen_in_the_picture(monkeypatch, svg):
    monkeypatch.setattr(wording, "EXAM_GIVE_BACK_BUTTON", "Return to queue")
    assert drawing.draw(drawing.sample_exam()) != svg


def test_mrkdwn_is_drawn_as_slack_shows_it():
    runs = drawing.styled("*Examiner review* FR-1 · by <@U0OFFICER1> at 5th &amp; Main\nnext")
    assert runs == [[("Examiner review", "b"), (" FR-1 · by ", ""), ("@officer.rivera", "m"), (" at 5th & Main", "")],
                    [("next", "")]]
    lines = drawing.wrap([("one two three", ""), ("four", "b")], 9)
    assert lines == [[("one two", "")], [("three", ""), ("four", "b")]]
    assert drawing.wrap([("x" * 12, "")], 5) == [[("xxxxx", "")], [("xxxxx", "")], [("xx", "")]]


def test_the_readme_shows_the_picture_where_examiners_read():
    readme = (COMMITTED.parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## For examiners and supervisors", 1)[1].split("\n## ", 1)[0]
    assert "](docs/review-card.svg)" in section and "python -m bench.draw_review_card" in section
