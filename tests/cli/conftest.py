"""Shared by the command-line tests: a data dir with a small gallery enrolled through the CLI itself, and how
to read one JSON object or the search entries back."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.config import DEFAULT_CONFIG
from bot.store.audit_log import AuditLog
from tests.conftest import link_subjects

JUSTIFICATION = (
    "Robbery at 5th and J on 11/20; store camera still of the suspect who used the victim's card at 14:05"
)
GOOD = ["--call-number", "26-012345", "--purpose", "investigation", "--justification", JUSTIFICATION, "--attest"]
ENROLLED = {"obama": ["obama.jpg"], "biden": ["biden.jpg"], "kit_harington": ["john2.jpeg"]}


@pytest.fixture(scope="module")
def gallery_data(faces_dir: Path, tmp_path_factory) -> Path:
    """A data dir with a small gallery enrolled through the CLI itself (once per module)."""
    root = tmp_path_factory.mktemp("cli")
    src = link_subjects(faces_dir, ENROLLED, root / "enroll")
    data = root / "data"
    mp = pytest.MonkeyPatch()
    mp.setenv("BOT_DATA_DIR", str(data))
    try:
        assert main(["gallery", "enroll", str(src), "--no-progress"]) == 0
    finally:
        mp.undo()
    return data


@pytest.fixture
def data(gallery_data: Path, tmp_path: Path, monkeypatch) -> Path:
    """A private copy of the enrolled data dir, so each test sees only its own audit entries."""
    copy = tmp_path / "data"
    shutil.copytree(gallery_data, copy)
    monkeypatch.setenv("BOT_DATA_DIR", str(copy))
    return copy


def run_json(capsys, argv: list[str]) -> tuple[int, dict]:
    code = main(argv)
    out = capsys.readouterr().out
    return code, json.loads(out)  # exactly one JSON object, or this raises


def audit_entries(data: Path) -> list[dict]:
    return [e for e in AuditLog.open(data).entries() if e["kind"] == "search"]


# Settings the CLI tests switch on: an examiner reviews every search; a supervisor approves every search first.
EXAMINER_MODE = {'mode = "direct"': 'mode = "examiner"', "examiners = []": 'examiners = ["UEXAMINER1"]',
                 'review_channel = ""': 'review_channel = "CREVIEW"'}
APPROVAL_ALWAYS = {'approval = "never"': 'approval = "always"', "supervisors = []": 'supervisors = ["U0SUPERVISOR"]',
                   'review_channel = ""': 'review_channel = "CREVIEW"'}


def settings_file(tmp_path: Path, changes: dict[str, str], name: str = "settings.toml") -> Path:
    """The default settings file with `changes` (old text -> new) made, written under tmp_path."""
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path
