"""The README and the docs pages quote the policy texts exactly (CONTRACTS "Wording"): these fail when a quote
drifts. Each quote is tested on the page where it lives (the README is a front door; details live in docs/)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot import wording

from .conftest import absolute_face_paths

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")


def page(name: str) -> str:
    """A docs page's text, e.g. page("officers") for docs/officers.md."""
    return (REPO / "docs" / f"{name}.md").read_text(encoding="utf-8")


POLICY_TEXTS = [
    wording.CAVEAT,
    wording.NO_CANDIDATE_CAVEAT,
    wording.ATTESTATION,
    wording.document_reminder("FR-…"),
    wording.NOT_AUTHORISED_NOBODY_CONFIGURED,
    wording.NOT_AUTHORISED,
    wording.GUEST_REFUSED,
    wording.EXTERNAL_CHANNEL_REFUSED,
    wording.JUSTIFICATION_PROTECTED_CLASS,
    wording.JUSTIFICATION_NO_FACTS,
    wording.CALL_NUMBER_MISSING,
    wording.ATTESTATION_MISSING,
]


@pytest.mark.parametrize("text", POLICY_TEXTS)
def test_the_policy_texts_page_quotes_wording_exactly(text: str) -> None:
    assert f"```text\n{text}\n```" in page("policy-texts")


def test_the_readme_quotes_the_caveat_exactly_for_officers() -> None:
    section = README.split("## For officers", 1)[1].split("\n## ", 1)[0]
    assert f"```text\n{wording.CAVEAT}\n```" in section
    assert f"```text\n   {wording.OFFER_TEXT}\n   ```" in section
    assert wording.not_a_call_number("26-04512", "26-012345") in " ".join(section.split())


def test_every_text_block_in_the_readme_and_the_docs_is_a_text_the_bot_says() -> None:
    """A ```text block is a promise of exact wording: each one, wherever it is, must be a wording text today."""
    known = {" ".join(t.split()) for t in POLICY_TEXTS + [wording.OFFER_TEXT, wording.EXAM_WAITING_REQUESTER,
                                                              wording.approval_waiting("flagged", 60),
                                                              wording.cli_awaiting_approval("FR-7C1D2E3F40",
                                                                                            "always", 60, True)]}
    pages = {"README.md": README} | {p.name: p.read_text(encoding="utf-8") for p in (REPO / "docs").glob("*.md")}
    found = 0
    for name, text in pages.items():
        for block in text.split("```text\n")[1:]:
            quoted = " ".join(block.split("```", 1)[0].split())
            if quoted.startswith(("Facial recognition request FR-", "┌")):
                continue  # a card drawn as text, not one sentence
            assert quoted in known, (name, quoted)
            found += 1
    assert found >= len(POLICY_TEXTS) + 1


def test_the_frs_refusal_is_quoted_where_command_staff_read() -> None:
    assert wording.FRS_STAFF_ONLY in page("audit")


def test_readme_names_the_two_commands() -> None:
    assert "make run" in README and "make test" in README


def test_relative_face_folders_are_made_absolute_from_where_pytest_runs():
    env = {"BOT_TEST_FACES": "../shared/faces", "BOT_DEV_FACES": "/abs/faces-dev", "OTHER": "x"}
    absolute_face_paths(env, "/work/repo")
    assert env == {"BOT_TEST_FACES": "/work/shared/faces", "BOT_DEV_FACES": "/abs/faces-dev", "OTHER": "x"}


INNER_TEST = """
import os
import re


def test_faces_after_a_change_of_directory(request, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a test or worker that changes directory before the faces are first used
    assert (request.getfixturevalue("faces_dir") / "people").is_dir()
    assert os.path.isabs(os.environ["BOT_TEST_FACES"])
"""


def test_the_readme_face_test_command_works_with_relative_paths(faces_dir, tmp_path):
    """README, Setup: `BOT_TEST_FACES=../shared/faces ... make test`, a path relative to the repository."""
    assert "BOT_TEST_FACES=../shared/faces" in README
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    env = {**os.environ, "BOT_TEST_FACES": os.path.relpath(faces_dir, REPO)}
    assert not os.path.isabs(env["BOT_TEST_FACES"])
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
         "-c", str(tmp_path / "pytest.ini"), str(tmp_path / "test_inner.py")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_officers_justification_sentence_reads_properly():
    for text in (" ".join(README.split()), " ".join(page("officers").split())):
        assert "and a justification that must name" not in text
    assert ("A description of a person alone is refused (GO 375.01 C): the justification must name the incident"
            in " ".join(page("officers").split()))


def test_the_officers_page_shows_the_offer_the_card_and_the_form_with_their_exact_texts():
    officers = page("officers")
    text = " ".join(officers.split())
    assert f"```text\n     {wording.OFFER_TEXT}\n     ```" in officers
    for quoted in (wording.OFFER_ENDED, wording.CARD_FLAG_PROTECTED, wording.FORM_CALL_LABEL,
                   wording.FORM_PURPOSE_LABEL, wording.FORM_JUSTIFICATION_LABEL, wording.FORM_SUBMIT,
                   wording.FORM_BUTTON, wording.START_BUTTON, wording.not_a_call_number("26-04512", "26-012345"),
                   wording.card_call_number("26-012345"), wording.CARD_ASK_ATTESTATION.replace("*", ""),
                   wording.CARD_PHOTO_READING, wording.card_ask_call_number("26-012345").replace("*", "")):
        assert quoted in text, quoted


def test_the_examiners_page_quotes_the_cards_texts():
    examiners = page("examiners")
    assert "## For examiners and supervisors" in README and "](docs/examiners.md)" in README
    for quoted in (wording.EXAM_WAITING_REQUESTER, wording.approval_waiting("flagged", 60),
                   wording.exam_released_header("FR-7C1D2E3F40", 1).replace("*", ""),
                   wording.exam_released_header("FR-7C1D2E3F40", 0),
                   wording.exam_status("claimed", claimed_by="x", decided=1, total=2, round_no=1,
                                       rounds=2).split(" (review")[1]):
        assert quoted in examiners, quoted


# --- The README is a front door; the docs pages it links exist (CONTRACTS "### 11") ------------------------------

README_MAX_LINES = 350
DOC_PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_FENCE = re.compile(r"^ *```.*?^ *```", re.DOTALL | re.MULTILINE)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|^\[[^\]\n]+\]:\s*(\S+)", re.MULTILINE)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped (hyphens and underscores kept), spaces
    become hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (outside code blocks)."""
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    return {github_anchor(line.lstrip("#")) for line in text.splitlines() if re.match(r"#{1,6} ", line)}


def relative_links(path: Path) -> list[str]:
    """Every link and image target in a Markdown file that is not a URL (code blocks and code spans left out)."""
    text = _CODE_SPAN.sub("", _FENCE.sub("", path.read_text(encoding="utf-8")))
    targets = [m.group(1) or m.group(2) for m in _LINK.finditer(text)]
    return [t for t in targets if not re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", t)]


SHOTS = "build/console/"  # the console's screenshots, made by its browser tests (not tracked by git)


def screenshot_names() -> set[str]:
    """Every screenshot name the console's browser tests write (`screenshot(page, "NAME")` or the `check_page`
    helper's f"{name}-{width}"), as far as the test sources spell them."""
    names = set()
    for test in (REPO / "tests" / "console").glob("test_*.py"):
        text = test.read_text(encoding="utf-8")
        names |= set(re.findall(r'screenshot\(\w+, f?"([\w-]+)"\)', text))
        for name in re.findall(r'check_page\(\w+, "([\w-]+)", (?:\d+|width)\)', text):
            names |= {f"{name}-1280", f"{name}-375"}
        for name in re.findall(r'screenshot\(\w+, f"([\w-]+)-\{width\}"\)', text):
            names |= {f"{name}-1280", f"{name}-375"}
    return names


def broken_links(path: Path) -> list[str]:
    """The relative links of `path` whose file does not exist, or whose #anchor names no heading there. A link to a
    console screenshot (build/console/NAME.png) must name one the browser tests write: it exists after `make test`."""
    broken = []
    for target in relative_links(path):
        if target.startswith(SHOTS):
            if target.removeprefix(SHOTS).removesuffix(".png") not in screenshot_names():
                broken.append(f"{target} (no browser test writes this screenshot)")
            continue
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target} (no heading #{anchor} in {resolved.name})")
    return broken


def test_the_readme_is_a_front_door_of_at_most_350_lines():
    lines = README.count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move details to a docs/ page and link it"


@pytest.mark.parametrize("path", DOC_PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_points_to_a_file_that_exists(path: Path):
    assert broken_links(path) == []


def test_the_link_check_sees_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## A section, with punctuation\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md) [ok](other.md#a-section-with-punctuation) [ok](#top) ![pic](other.md)\n"
                    "[gone](missing.md) [bad](other.md#nowhere) [web](https://example.org/x.md) `[code](nope.md)`\n"
                    "```\n[fenced](nope.md)\n```\n# Top\n")
    assert broken_links(page) == ["missing.md (no such file)", "other.md#nowhere (no heading #nowhere in other.md)"]


def test_the_readme_links_every_docs_page():
    for page in sorted((REPO / "docs").glob("*.md")):
        assert f"](docs/{page.name})" in README, page.name


def test_the_examiners_page_draws_the_real_review_card_as_text():
    """docs/examiners.md shows the sample review card as text: every text and button of the card drawn in
    docs/review-card.svg is in it, so a wording change fails here until the page is redrawn too."""
    from bench import draw_review_card as drawing
    from bot.slack.exam_card import review_card

    box = page("examiners").split("┌", 1)[1].split("┘", 1)[0]
    shown = " ".join(line.strip().strip("│") for line in box.splitlines()).split()
    shown_text = " ".join(shown)
    blocks = review_card(drawing.sample_exam()).kwargs()["blocks"]
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    texts += [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]
    for text in texts:
        assert " ".join(drawing.plain(text).split()) in shown_text, text
    for label in (e["text"]["text"] for b in blocks if b["type"] == "actions" for e in b["elements"]):
        assert f"[{label}]" in shown_text, label


def test_a_screenshot_link_must_name_one_the_browser_tests_write(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("![ok](build/console/searches-1280.png) ![gone](build/console/nowhere-1280.png)\n")
    assert broken_links(page) == ["build/console/nowhere-1280.png (no browser test writes this screenshot)"]
