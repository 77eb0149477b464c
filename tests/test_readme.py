"""The README quotes the policy texts exactly (CONTRACTS "Wording"): these fail when a quote drifts."""
from __future__ import annotations

from pathlib import Path

import pytest

from bot import wording

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "text",
    [
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
    ],
)
def test_readme_quotes_wording_exactly(text: str) -> None:
    assert f"```text\n{text}\n```" in README


def test_readme_quotes_the_frs_refusal() -> None:
    assert wording.FRS_STAFF_ONLY in README


def test_readme_names_the_two_commands() -> None:
    assert "make run" in README and "make test" in README
