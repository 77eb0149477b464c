"""The README and the docs pages quote the policy texts exactly (CONTRACTS "Wording"): these fail when a quote
drifts. Each quote is tested on the page where it lives (the README is a front door; details live in docs/)."""
from __future__ import annotations

import os
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
