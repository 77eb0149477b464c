"""Draw the examiner's review card, as Slack shows it, into an SVG for the README (docs/review-card.svg).

    .venv/bin/python -m bench.draw_review_card [OUT.svg]      # default: docs/review-card.svg

The card is the real one: a sample examination made by `bot.controls.examination` (queued, claimed, one candidate
decided) and rendered by `bot.slack.exam_card.review_card`; this module only paints its Block Kit blocks the
way Slack lays them out, then the comparison sheet posted in the card's thread, with the geometry of
`bot.contact_sheet.comparison_sheet`. The faces are drawn (vector cartoons): no photo of anyone enters the
repository. Same code, same card -> byte-identical SVG, so tests/test_review_card_picture.py catches a card
whose wording changed without the picture being redrawn.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from bot import contact_sheet as cs
from bot import wording
from bot.controls import examination as ex
from bot.slack.exam_card import review_card

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "docs" / "review-card.svg"

# The sample: made-up people, Slack ids that only look like ids (shown by the names below).
REQUEST_ID, CALL_NUMBER = "FR-7C1D2E3F40", "26-012345"
OFFICER, EXAMINER = "U0OFFICER1", "U0EXAMINE1"
NAMES = {OFFICER: "officer.rivera", EXAMINER: "examiner.chen"}
NOW = datetime(2026, 3, 14, 2, 41, tzinfo=UTC)
POINT = {"gallery_size": 1630, "sample_size": 1600, "method": "gallery"}
CANDIDATES = [
    {"rank": 1, "subject_id": "S-001", "name": "Doe, Jane", "record_ref": "R-2019-0412", "distance": 0.412,
     "fpir_estimate": 1 / 60, "below_resolution": False},
    {"rank": 2, "subject_id": "S-014", "name": "Roe, Mary", "record_ref": "R-2021-1187", "distance": 0.468,
     "fpir_estimate": 0.05, "below_resolution": False},
]
JUSTIFICATION = ("Armed robbery at the 5th & Main gas station at 02:10; the clerk was threatened with a handgun. "
                 "Suspect's face from the store camera.")

# Slack's look, in pixels. Text wraps at a fixed number of characters (no font metrics here, so the file is
# the same on every machine); the widths leave room for wide fonts such as DejaVu Sans.
W = 800
LEFT, AVATAR, X0 = 20, 36, 68  # message gutter, avatar side, where blocks start
CONTENT_W = W - X0 - 24
FONT = "Lato, 'Helvetica Neue', Helvetica, Arial, 'Liberation Sans', 'DejaVu Sans', sans-serif"
INK, GREY, LINK, RULE = "#1d1c1d", "#616061", "#1264a3", "#dddddd"
SHEET_RULE, SHEET_INK = ("#{:02x}{:02x}{:02x}".format(*rgb) for rgb in (cs.RULE, cs.INK))  # the sheet's own
SECTION = (15, 22, 80)  # font px, line height, characters a line
CONTEXT = (12, 18, 100)
BUTTON_PX, BUTTON_H, BUTTON_CHAR, BUTTON_PAD, BUTTON_GAP = 13, 30, 8.4, 14, 8
BLOCK_GAP = 8
STYLES = {"primary": ("#007a5a", "#007a5a", "#ffffff"), "danger": ("#e01e5a", "#e01e5a", "#ffffff"),
          None: ("#ffffff", "#bbbbbb", INK)}  # fill, stroke, text


def _n(v: float) -> str:
    """A coordinate: at most one decimal, no trailing zero (stable text, small file)."""
    return f"{v:.1f}".rstrip("0").rstrip(".")


def bot_identity() -> tuple[str, str]:
    """The app's name and colour, as the Slack manifest gives them."""
    manifest = (REPO / "config" / "slack-manifest.yml").read_text(encoding="utf-8")
    name = re.search(r"^  name: (.+)$", manifest, re.MULTILINE)
    colour = re.search(r'^  background_color: "(#[0-9a-fA-F]{6})"', manifest, re.MULTILINE)
    return (name.group(1).strip() if name else "FR Search"), (colour.group(1) if colour else "#1d3557")


# ------------------------------------------------------------------------------------------- the sample


def sample_exam() -> ex.Examination:
    """A purpose-2 (urgent) search under two-examiner review, claimed by the first examiner, who has decided one
    of the two candidates: the state that shows every button the card has."""
    exam, _ = ex.queue(request_id=REQUEST_ID, requester_id=OFFICER, call_number=CALL_NUMBER, purpose="threat",
                       justification=JUSTIFICATION, candidates=CANDIDATES, reviewers_required=2, now=NOW,
                       source={"operating_point": POINT,
                               "quality_note": wording.card_quality("low", ["soft"])})
    exam, _ = ex.claim(exam, EXAMINER, NOW + timedelta(minutes=2))
    exam, effects = ex.decide(exam, EXAMINER, "S-014", ex.NOT_SAME, "", NOW + timedelta(minutes=6))
    if exam.status != ex.CLAIMED or len(exam.current) != 1:  # the core refused: the sample no longer fits it
        raise RuntimeError(f"sample examination not as expected: {effects}")
    return exam


def sheet_rows(exam: ex.Examination) -> list[tuple[str, str]]:
    """(label, estimate) per candidate, as the comparison sheet prints them (bot.slack.flow.searching)."""
    point = exam.source.get("operating_point") or {}
    return [(cs.candidate_label(c["name"], c["subject_id"], c.get("record_ref") or ""),
             wording.estimate_short(c.get("fpir_estimate"), bool(c.get("below_resolution")), point))
            for c in exam.candidates]


# -------------------------------------------------------------------------------------------- mrkdwn

_TOKEN = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>|<[^>|]+\|([^>]+)>|<([^>]+)>|\*([^*\n]+)\*")


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def styled(mrkdwn: str, names: dict[str, str] | None = None) -> list[list[tuple[str, str]]]:
    """Slack mrkdwn as displayed, one list of (text, style) runs per paragraph: style "b" for *bold*, "m" for a
    mention (<@U…> becomes @name), "" otherwise. Links show their label; anything else is left as typed."""
    names = NAMES if names is None else names
    paragraphs = []
    for para in mrkdwn.split("\n"):
        runs, at = [], 0
        for m in _TOKEN.finditer(para):
            runs.append((_unescape(para[at:m.start()]), ""))
            user, label, link_label, url, bold = m.groups()
            if user:
                runs.append(("@" + (label or names.get(user, user)), "m"))
            else:
                runs.append((_unescape(link_label or url or bold), "b" if bold else ""))
            at = m.end()
        runs.append((_unescape(para[at:]), ""))
        paragraphs.append([r for r in runs if r[0]])
    return paragraphs


def plain(mrkdwn: str, names: dict[str, str] | None = None) -> str:
    """The text a reader sees, without styles (what the test looks for in the picture)."""
    return "\n".join("".join(t for t, _ in para) for para in styled(mrkdwn, names))


def wrap(runs: list[tuple[str, str]], width: int) -> list[list[tuple[str, str]]]:
    """Runs cut into lines of at most `width` characters, at spaces (a longer word is cut where it must)."""
    chars = [(ch, style) for text, style in runs for ch in text]
    line_text = "".join(ch for ch, _ in chars)
    lines, start = [], 0
    while start < len(line_text):
        end = min(start + width, len(line_text))
        if end < len(line_text):
            space = line_text.rfind(" ", start, end + 1)
            end = space if space > start else end
        piece = chars[start:end]
        while piece and piece[-1][0] == " ":
            piece.pop()
        grouped: list[tuple[str, str]] = []
        for ch, style in piece:
            if grouped and grouped[-1][1] == style:
                grouped[-1] = (grouped[-1][0] + ch, style)
            else:
                grouped.append((ch, style))
        lines.append(grouped)
        start = end
        while start < len(line_text) and line_text[start] == " ":
            start += 1
    return lines or [[]]


# --------------------------------------------------------------------------------------------- drawing


@dataclass
class Canvas:
    """SVG elements in drawing order; `y` is where the next thing goes."""

    parts: list[str]
    y: float = 0.0

    def add(self, element: str) -> None:
        self.parts.append(element)

    def rule(self, x1: float, x2: float, y: float, colour: str = RULE, width: float = 1) -> None:
        thick = f' stroke-width="{_n(width)}"' if width != 1 else ""
        self.add(f'<line x1="{_n(x1)}" y1="{_n(y)}" x2="{_n(x2)}" y2="{_n(y)}" stroke="{colour}"{thick}/>')

    def text(self, x: float, y: float, runs: list[tuple[str, str]], px: float, fill: str = INK,
             weight: int = 400, anchor: str = "start") -> None:
        spans = []
        for text, style in runs:
            attrs = ' font-weight="700"' if style == "b" else f' fill="{LINK}"' if style == "m" else ""
            spans.append(f"<tspan{attrs}>{escape(text)}</tspan>" if attrs else escape(text))
        extra = f' font-weight="{weight}"' if weight != 400 else ""
        extra += f' text-anchor="{anchor}"' if anchor != "start" else ""
        self.add(f'<text x="{_n(x)}" y="{_n(y)}" font-size="{_n(px)}" fill="{fill}"{extra}>{"".join(spans)}</text>')

    def paragraphs(self, x: float, mrkdwn: str, kind: tuple[int, int, int], fill: str = INK) -> None:
        """Wrapped mrkdwn from the cursor down; the cursor ends below the last line."""
        px, lh, width = kind
        for para in styled(mrkdwn):
            for line in wrap(para, width):
                self.y += lh
                self.text(x, self.y - (lh - px) / 2 - 3, line, px, fill)


def message_head(c: Canvas, name: str, colour: str, stamp: str) -> None:
    """Avatar, the app's name, the APP badge and the time, as Slack heads a bot's message."""
    top = c.y
    c.add(f'<rect x="{LEFT}" y="{_n(top)}" width="{AVATAR}" height="{AVATAR}" rx="6" fill="{colour}"/>')
    c.text(LEFT + AVATAR / 2, top + 23, [("FR", "")], 13, "#ffffff", 700, "middle")
    c.text(X0, top + 14, [(name, "")], 15, INK, 700)
    badge_x = X0 + len(name) * 10 + 10  # room for a wide bold font
    c.add(f'<rect x="{_n(badge_x)}" y="{_n(top + 2)}" width="30" height="15" rx="3" fill="#e8e8e8"/>')
    c.text(badge_x + 15, top + 13, [("APP", "")], 9.5, GREY, 700, "middle")
    c.text(badge_x + 38, top + 14, [(stamp, "")], 12, GREY)
    c.y = top + 20


def button_row(c: Canvas, buttons: list[dict[str, Any]]) -> None:
    """An actions block: its buttons left to right, onto a new row when the width runs out."""
    x, top = float(X0), c.y + 4
    for b in buttons:
        label = b["text"]["text"]
        width = len(label) * BUTTON_CHAR + 2 * BUTTON_PAD
        if x > X0 and x + width > X0 + CONTENT_W:
            x, top = float(X0), top + BUTTON_H + BUTTON_GAP
        fill, stroke, ink = STYLES[b.get("style")]
        c.add(f'<rect x="{_n(x)}" y="{_n(top)}" width="{_n(width)}" height="{BUTTON_H}" rx="4" fill="{fill}" '
              f'stroke="{stroke}"/>')
        c.text(x + width / 2, top + BUTTON_H / 2 + BUTTON_PX * 0.36, [(label, "")], BUTTON_PX, ink, 700, "middle")
        x += width + BUTTON_GAP
    c.y = top + BUTTON_H


def blocks(c: Canvas, kwargs_blocks: list[dict[str, Any]]) -> None:
    """Block Kit blocks (their JSON), as Slack stacks them. An unknown block type is an error: the picture
    would silently leave it out."""
    for block in kwargs_blocks:
        c.y += BLOCK_GAP if block is not kwargs_blocks[0] else 0
        kind = block["type"]
        if kind == "section":
            c.paragraphs(X0, block["text"]["text"], SECTION)
        elif kind == "context":
            c.paragraphs(X0, "  ".join(e.get("text", "") for e in block["elements"]), CONTEXT, GREY)
        elif kind == "actions":
            button_row(c, block["elements"])
        elif kind == "divider":
            c.y += 6
            c.rule(X0, X0 + CONTENT_W, c.y)
        else:
            raise ValueError(f"no drawing for a {kind} block")


# Faces: a 100-unit cartoon, varied by a few parameters. The probe and candidate 1 share features (a fair
# lead), candidate 2 differs; none is anyone.
@dataclass(frozen=True)
class Face:
    skin: str
    hair: str
    shirt: str
    head_rx: float = 21
    eye_dx: float = 8.5
    smile: float = 2.0
    long_hair: bool = False
    glasses: bool = False


PROBE_FACE = Face("#d9a77f", "#3b2a20", "#4a5a6a", long_hair=True)
FACES = [Face("#d6a37c", "#3b2a20", "#6a4a5a", head_rx=21.5, long_hair=True, smile=1.0),
         Face("#c58c63", "#1c1c1c", "#3c6e5a", head_rx=23, eye_dx=9.5, smile=0.5, glasses=True)]


def _path(d: str, fill: str = "none", stroke: str = "", width: float = 0) -> str:
    line = f' stroke="{stroke}" stroke-width="{_n(width)}" stroke-linecap="round"' if stroke else ""
    return f'<path d="{d}" fill="{fill}"{line}/>'


def face(x: float, y: float, size: float, f: Face) -> str:
    """One drawn face filling a `size` square tile at (x, y), drawn in a 100-unit box."""
    r, sides = f.head_rx, (-1, 1)
    left, right = _n(50 - r), _n(50 + r)
    parts = ['<rect width="100" height="100" fill="#e6ebf0"/>']
    if f.long_hair:  # behind the head and shoulders
        parts.append(_path(f"M{_n(47 - r)} 44 Q{_n(44 - r)} 12 50 13 Q{_n(56 + r)} 12 {_n(53 + r)} 44 "
                           f"L{_n(55 + r)} 78 L{_n(45 - r)} 78 Z", f.hair))
    parts += [
        _path("M14 100 Q16 80 50 79 Q84 80 86 100 Z", f.shirt),  # shoulders
        f'<rect x="44" y="62" width="12" height="19" fill="{f.skin}"/>',  # neck
        *(f'<ellipse cx="{_n(50 + s * r)}" cy="48" rx="3.5" ry="6" fill="{f.skin}"/>' for s in sides),  # ears
        f'<ellipse cx="50" cy="47" rx="{_n(r)}" ry="26" fill="{f.skin}"/>',
        _path(f"M{left} 42 Q{left} 19 50 20 Q{right} 19 {right} 42 Q{_n(46 + r)} 28 50 29 "
              f"Q{_n(56 - r)} 28 {left} 42 Z", f.hair),  # hairline
    ]
    for s in sides:
        eye = _n(50 + s * f.eye_dx)
        parts += [f'<ellipse cx="{eye}" cy="45" rx="3.2" ry="2.1" fill="#ffffff"/>',
                  f'<circle cx="{eye}" cy="45" r="1.5" fill="#222222"/>',
                  _path(f"M{_n(50 + s * (f.eye_dx - 4))} 38.5 L{_n(50 + s * (f.eye_dx + 4))} 39.5", stroke=f.hair,
                        width=1.6)]  # eyebrow
        if f.glasses:
            parts.append(f'<circle cx="{eye}" cy="45" r="5.5" fill="none" stroke="#333333" stroke-width="1.2"/>')
    if f.glasses:
        parts.append(_path(f"M{_n(55.5 - f.eye_dx)} 45 L{_n(44.5 + f.eye_dx)} 45", stroke="#333333", width=1.2))
    parts += [_path("M50 47 Q47 54 49.5 56 L51.5 56", stroke="#8a5a40", width=1.2),  # nose
              _path(f"M44 62 Q50 {_n(62 + f.smile)} 56 62", stroke="#7a3a30", width=1.6)]  # mouth
    return f'<g transform="translate({_n(x)} {_n(y)}) scale({_n(size / 100)})">{"".join(parts)}</g>'


def comparison_sheet(c: Canvas, exam: ex.Examination) -> None:
    """The comparison sheet (bot.contact_sheet.comparison_sheet) as posted in the card's thread, scaled from
    its real geometry: title, a row per candidate (probe beside gallery face), the caveat below."""
    sheet_w = 2 * cs.PAD + 2 * cs.COMPARE_TILE + cs.GAP + cs.SEPARATOR + cs.COMPARE_TEXT_W
    s = CONTENT_W / sheet_w
    tile, pad, gap = cs.COMPARE_TILE * s, cs.PAD * s, cs.GAP * s
    caption_px, label_px, rank_px = cs.COMPARE_CAPTION_PX * s * 0.9, cs.TILE_TEXT_PX * s, cs.RANK_PX * s
    top = c.y + 6
    body: list[str] = []
    sub = Canvas(body, top + pad)
    sub.text(X0 + pad, sub.y + cs.TITLE_PX * s, [(wording.comparison_title(exam.request_id, exam.call_number), "")],
             cs.TITLE_PX * s, SHEET_INK, 700)
    sub.y += cs.TITLE_PX * s * 1.3 + 14 * s
    sub.rule(X0 + pad, X0 + CONTENT_W - pad, sub.y, SHEET_RULE, 1.5)
    sub.y += 14 * s
    text_x = X0 + pad + 2 * tile + gap + cs.SEPARATOR * s
    text_chars = int(cs.COMPARE_TEXT_W * s / (label_px * 0.62))
    for i, (label, estimate) in enumerate(sheet_rows(exam)):
        rank, y = i + 1, sub.y + (gap if i else 0)
        if i:
            sub.rule(X0 + pad, X0 + CONTENT_W - pad, y - gap / 2, SHEET_RULE)
        sub.add(face(X0 + pad, y, tile, PROBE_FACE))
        sub.add(face(X0 + pad + tile + gap, y, tile, FACES[i % len(FACES)]))
        below = y + tile + 6 * s + caption_px
        sub.text(X0 + pad, below, [(wording.COMPARISON_PROBE, "")], caption_px, SHEET_INK)
        sub.text(X0 + pad + tile + gap, below, [(wording.comparison_gallery_caption(rank), "")], caption_px, SHEET_INK)
        ty = y + rank_px
        sub.text(text_x, ty, [(f"#{rank}", "")], rank_px, SHEET_INK, 700)
        for line in wrap([(label, "")], text_chars)[: cs.LABEL_LINES]:
            ty += label_px * 1.3
            sub.text(text_x, ty, line, label_px, SHEET_INK)
        for line in wrap([(estimate, "")], int(text_chars * label_px / caption_px))[: cs.COMPARE_ESTIMATE_LINES]:
            ty += caption_px * 1.3
            sub.text(text_x, ty + 6 * s, line, caption_px, "#464646")  # the sheet's grey, (70, 70, 70)
        sub.y = y + tile + 8 * s + caption_px * 1.3
    sub.y += 14 * s
    sub.rule(X0 + pad, X0 + CONTENT_W - pad, sub.y, SHEET_RULE, 1.5)
    sub.y += 14 * s
    for line in wrap([(wording.CAVEAT_SHORT, "")], int((CONTENT_W - 2 * pad) / (cs.FOOTER_PX * s * 0.62))):
        sub.y += cs.FOOTER_PX * s * 1.3
        sub.text(X0 + pad, sub.y - 3, line, cs.FOOTER_PX * s, SHEET_INK)
    sub.y += pad
    c.add(f'<rect x="{X0}" y="{_n(top)}" width="{CONTENT_W}" height="{_n(sub.y - top)}" rx="6" fill="#ffffff" '
          f'stroke="{RULE}"/>')
    c.parts.extend(body)
    c.y = sub.y


def draw(exam: ex.Examination) -> str:
    """The review channel as Slack shows it: the card, its "1 reply", and the thread with the comparison sheet."""
    name, colour = bot_identity()
    stamp = datetime.fromisoformat(exam.queued_at).strftime("%H:%M")
    c = Canvas([], 16.0)
    c.text(LEFT, c.y + 14, [("Review channel (private): the card is updated in place as the review goes on", "")],
           13, GREY, 700)
    c.y += 30
    c.rule(0, W, c.y)
    c.y += 16
    message_head(c, name, colour, stamp)
    c.y += 4
    blocks(c, review_card(exam).kwargs()["blocks"])
    c.y += 12
    c.add(f'<rect x="{X0}" y="{_n(c.y)}" width="20" height="20" rx="4" fill="{colour}"/>')
    c.text(X0 + 10, c.y + 14, [("FR", "")], 8, "#ffffff", 700, "middle")
    c.text(X0 + 28, c.y + 15, [("1 reply", "")], 13, LINK, 700)
    c.y += 40
    c.rule(0, W, c.y)
    c.add(f'<rect x="{_n(W / 2 - 40)}" y="{_n(c.y - 10)}" width="80" height="20" rx="10" fill="#ffffff" '
          f'stroke="{RULE}"/>')
    c.text(W / 2, c.y + 4, [("Thread", "")], 12, GREY, 700, "middle")
    c.y += 24
    message_head(c, name, colour, stamp)
    c.y += 6
    c.text(X0, c.y + 13, [(wording.comparison_upload_title(exam.request_id), "")], 13, GREY)  # the upload's title
    c.y += 18
    comparison_sheet(c, exam)
    c.y += 10
    c.paragraphs(X0, "Faces drawn for this picture: the real sheet shows the searched face and each candidate's "
                     "gallery face, cropped the same way.", CONTEXT, GREY)
    height = round(c.y + 20)
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" '
            f'font-family="{escape(FONT)}" role="img">\n'
            f'<title>{escape(plain(wording.exam_card_header(exam.request_id, exam.urgent)))}: the '
            'review card and its comparison sheet (faces drawn)</title>\n'
            f'<rect width="{W}" height="{height}" fill="#ffffff"/>')
    return "\n".join([head, *c.parts, "</svg>"]) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else DEFAULT_OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(draw(sample_exam()), encoding="utf-8", newline="\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
