"""A data dir written before the modules moved into domain packages opens unchanged.

`tests/fixtures/datadir-0.1/` was written by the code as it stood before the move (commit a7ce04e): an audit log
of three entries (key below), a dialog waiting for its purpose with its event claim, an open examiner review, a
command-line request waiting for approval and a call in the dispatch index. No face image is in it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.request import transitions
from bot.slack.calls import CallLog
from bot.store.audit_log import AuditLog
from bot.store.dialogs import DialogStore
from bot.store.records import ApprovalStore, ExaminationStore

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "datadir-0.1"
KEY = "fixture-audit-key-0123456789abcdef"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def old_dir(tmp_path: Path) -> Path:
    """A private copy of the fixture (git keeps no file modes: the data dir is 0700/0600 as the bot leaves it)."""
    target = tmp_path / "data"
    shutil.copytree(FIXTURE, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o700 if path.is_dir() else 0o600)
    return target


def test_the_old_audit_log_verifies_and_takes_new_entries(old_dir):
    log = AuditLog.open(old_dir, {"BOT_AUDIT_KEY": KEY})
    result = log.verify()
    assert result.ok and result.count == 3
    kinds = [e["kind"] for e in log.entries()]
    assert kinds == ["search", "refusal", "review"]
    log.append("audit_access", actor={"id": "U0CMD"}, action="verify", query={})
    assert log.verify().ok and log.last_seq() == 4


def test_the_old_dialog_resumes_at_its_step_and_its_claim_holds(old_dir):
    settings = load_settings(env={"BOT_DATA_DIR": str(old_dir)})
    store = DialogStore(old_dir / "slack" / "dialogs.json")
    dialog = store.by_thread("C0CASE", "1700000000.000100")
    assert dialog is not None and dialog.step is transitions.Step.PURPOSE and dialog.call_number == "26-000111"
    assert store.claimed("event:Ev0OLD")
    now = datetime(2026, 11, 30, 17, 5, tzinfo=UTC)
    new, _effects = transitions.on_reply(dialog, user_id="U0OFFICER", text="1", now=now, policy=settings.policy)
    assert new.step is transitions.Step.JUSTIFICATION


def test_the_old_review_approval_and_call_index_read_back(old_dir):
    exam = ExaminationStore(old_dir / "examinations.json").get("FR-OLD0000003")
    assert exam is not None and exam.open and exam.candidates[0]["subject_id"] == "S-1"
    pending = ApprovalStore(old_dir / "approvals.json").get("FR-OLD0000004")
    assert pending is not None and pending.open and pending.requester["id"] == "os:alice"
    settings = load_settings(env={"BOT_DATA_DIR": str(old_dir)})
    assert CallLog(old_dir, None, settings).known("26-000111")


def test_the_command_line_verifies_the_old_log(old_dir):
    env = {**os.environ, "BOT_DATA_DIR": str(old_dir), "BOT_AUDIT_KEY": KEY}
    run = subprocess.run([sys.executable, "-m", "bot", "audit", "verify"], check=False, cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 entries" in run.stdout


def test_the_old_entries_still_export_report_and_bundle(old_dir, tmp_path):
    env = {**os.environ, "BOT_DATA_DIR": str(old_dir), "BOT_AUDIT_KEY": KEY, "SUDO_USER": "auditor"}

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bot", "audit", *argv], check=False, cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)

    export = run("export", "--format", "jsonl", "--out", str(tmp_path / "out.jsonl"))
    assert export.returncode == 0, export.stderr
    assert "FR-OLD0000001" in (tmp_path / "out.jsonl").read_text()
    assert run("report", "--month", "2026-12", "--json").returncode == 0
    bundle = run("bundle", "FR-OLD0000001", str(tmp_path / "b.zip"))
    assert bundle.returncode == 0, bundle.stderr
