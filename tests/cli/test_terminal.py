"""The command line in a terminal and out of one: progress bars only on a terminal, one warning per command while the
audit key is a file beside the log, and `audit report` for last month unless told otherwise (as `/frs report`)."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot import wording
from bot.cli.main import main
from bot.config import load_settings
from bot.oversight import review
from tests.conftest import link_subjects

KEY = "terminal-test-key-0123456789abcdef"


def test_enroll_draws_no_progress_bar_when_standard_error_is_not_a_terminal(faces_dir, tmp_path, monkeypatch,
                                                                            capsys):
    monkeypatch.setenv("BOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BOT_AUDIT_KEY", KEY)
    src = link_subjects(faces_dir, {"obama": ["obama.jpg"]}, tmp_path / "enroll")
    assert main(["gallery", "enroll", str(src)]) == 0  # no --no-progress: captured output is no terminal
    captured = capsys.readouterr()
    assert "enrolled 1 image" in captured.out
    assert "enrolling" not in captured.err and "it/s" not in captured.err and "image/s" not in captured.err


def _warning(data: Path) -> str:
    return wording.cli_audit_key_file(data / "audit" / "audit.key")


def test_a_key_file_beside_the_log_is_warned_about_once_per_command(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    monkeypatch.setenv("BOT_DATA_DIR", str(data))
    monkeypatch.delenv("BOT_AUDIT_KEY", raising=False)
    denied = ["search", str(tmp_path / "p.jpg"), "--json"]  # refused by policy: written to the log, nothing read
    assert main(denied) == 2
    err = capsys.readouterr().err
    assert err.count(_warning(data)) == 1 and "BOT_AUDIT_KEY" in _warning(data)
    assert main(["audit", "report", "--month", "2026-03", "--json"]) == 0
    assert capsys.readouterr().err.count(_warning(data)) == 1
    assert main(["audit", "verify"]) == 0
    assert capsys.readouterr().err.count(_warning(data)) == 1


def test_no_warning_when_the_key_comes_from_the_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BOT_AUDIT_KEY", KEY)
    assert main(["search", str(tmp_path / "p.jpg"), "--json"]) == 2
    assert main(["audit", "verify"]) == 0
    assert "BOT_AUDIT_KEY" not in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["--json", None])
def test_audit_report_defaults_to_last_month_as_frs_report_does(tmp_path, monkeypatch, capsys, fmt):
    monkeypatch.setenv("BOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BOT_AUDIT_KEY", KEY)
    month = review.previous_month(datetime.now(UTC), load_settings().timezone)
    assert main(["audit", "report", *([fmt] if fmt else [])]) == 0
    out = capsys.readouterr().out
    if fmt:
        assert json.loads(out)["month"] == month
    else:
        year, mon = review.parse_month(month)
        assert datetime(year, mon, 1).strftime("%B %Y") in out
