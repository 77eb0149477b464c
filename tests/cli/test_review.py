"""`python -m bot audit export|report|bundle` and `python -m bot purge`, run in-process through bot.cli.main.main."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import pwd
import stat
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from bot import wording
from bot.audit.entries import OUTCOMES
from bot.cli import main as cli
from bot.request.transitions import Dialog, ImageRequest, Step
from bot.store.audit_log import AuditLog
from bot.store.dialogs import DialogStore

from ..conftest import edit_in_place

KEY = "cli-review-test-key-0123456789abcdef"
ENV = {"BOT_AUDIT_KEY": KEY}
JUST = 'Armed robbery at "Lucky\'s", 5th & Main,\nvictim statement 🚓; =1+1'
# Reached through the shared account the tests run as (tests/conftest.py), as command staff are on the server.
AUDITOR = {"id": "os:auditor", "name": wording.cli_person_name("auditor", pwd.getpwuid(os.getuid()).pw_name,
                                                               os.getuid(), "sudo")}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data_dir: Path) -> Path:
    """BOT_DATA_DIR, BOT_CONFIG and BOT_AUDIT_KEY for the CLI, and a fixed OS user."""
    config = tmp_path / "settings.toml"
    config.write_text('timezone = "America/Los_Angeles"\n[slack]\ndispatch_channel = "C0DISPATCH"\n')
    monkeypatch.setenv("BOT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("BOT_CONFIG", str(config))
    monkeypatch.setenv("BOT_AUDIT_KEY", KEY)
    monkeypatch.setenv("SUDO_USER", "auditor")
    return config


def entry(log: AuditLog, outcome: str, request_id: str, **extra) -> dict:
    fields = {
        "request_id": request_id, "outcome": outcome, "requester": {"id": "U0OFFICER1", "name": "Dana O'Neil"},
        "source": "slack", "channel": "C0CASE", "thread_ts": "1772470740.000100",
        "permalink": "https://pd.slack.com/archives/C0CASE/p1772470740000100", "file_id": "F0PHOTO1",
        "call_number": "26-012345", "call_thread_ts": "1772470000.000200", "purpose": "investigation",
        "justification": JUST, "attestation": {"attested": True, "text": wording.ATTESTATION},
        "uploaded_at": "2026-03-02T16:59:00Z",
    }
    fields.update(extra)
    return log.append("search", **fields)


def ran(candidates: list[tuple[str, float]], result_at: str) -> dict:
    return {
        "probe_sha256": "9f" * 32, "face_index": 1, "threshold": 0.55, "model": "dlib_face_recognition_resnet_model_v1",
        "faces": [{"index": 1, "box": {"top": 40, "right": 180, "bottom": 160, "left": 60}, "size": 120,
                   "quality": "ok"}],
        "versions": {"face_recognition": "1.3.0", "dlib": "19.24.6", "bot": "0.1.0"},
        "gallery_subjects": 120, "gallery_images": 342, "result_at": result_at,
        "candidates": [{"rank": i, "subject_id": s, "distance": d} for i, (s, d) in enumerate(candidates, 1)],
    }


@pytest.fixture
def log(env: Path, data_dir: Path) -> AuditLog:
    """March 2026: a search with candidates (90 s), one without (30 s), a refusal, a cancellation."""
    now = [datetime(2026, 3, 2, 17, 0, 30, tzinfo=UTC)]
    log = AuditLog.open(data_dir, env=ENV, clock=lambda: now[0])
    entry(log, "candidates", "FR-A1", **ran([("S-0042", 0.41), ("S-0107", 0.52)], "2026-03-02T17:00:30Z"))
    now[0] = datetime(2026, 3, 12, 17, 0, tzinfo=UTC)
    entry(log, "no_candidate", "FR-B2", uploaded_at="2026-03-12T16:59:30Z", **ran([], "2026-03-12T17:00:00Z"))
    now[0] = datetime(2026, 3, 20, 17, 0, tzinfo=UTC)
    entry(log, "denied", "FR-C3", purpose=None, denied=[wording.PURPOSE_MISSING])
    now[0] = datetime(2026, 3, 27, 17, 0, tzinfo=UTC)
    entry(log, "cancelled", "FR-D4")
    return AuditLog.open(data_dir, env=ENV)  # the CLI's own appends use the real clock


def accesses(log: AuditLog) -> list[dict]:
    return [e for e in log.entries() if e["kind"] == "audit_access"]


# --- export ------------------------------------------------------------------------------------------------------


def test_export_csv_to_stdout_is_utf8_bom_rfc4180_and_audited(log: AuditLog, capsysbinary):
    assert cli.main(["audit", "export", "--kind", "search"]) == 0
    out, err = capsysbinary.readouterr()
    assert out.startswith(b"\xef\xbb\xbfseq,ts,local_time,kind,outcome,request_id")
    rows = list(csv.DictReader(io.StringIO(out.decode("utf-8-sig"), newline="")))
    assert [r["request_id"] for r in rows] == ["FR-A1", "FR-B2", "FR-C3", "FR-D4"]
    assert rows[0]["justification"] == JUST  # quotes, commas, newline, emoji and a mid-text "=" intact
    assert rows[0]["candidates"] == "S-0042:0.41;S-0107:0.52" and rows[0]["local_time"] == "2026-03-02 09:00:30"
    assert rows[2]["denied"] == wording.PURPOSE_MISSING
    assert b"Exported 4 audit entries as csv to standard output" in err
    (access,) = accesses(log)
    assert access["action"] == "export" and access["actor"] == AUDITOR and access["out_file"] == "-"
    assert access["query"]["kinds"] == ["search"] and access["results"] == 4


def test_export_neutralises_formulas_in_a_file_written_0600(log: AuditLog, tmp_path: Path, capsys):
    entry(log, "denied", "FR-EVIL", justification='=HYPERLINK("https://evil.example","x")',
          requester={"id": "U0X", "name": "@SUM(A1)"}, denied=["-bad"])
    out = tmp_path / "audit.csv"
    assert cli.main(["audit", "export", "--format", "csv", "--out", str(out), "--kind", "search"]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with open(out, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    evil = rows[-1]
    assert evil["justification"] == '\'=HYPERLINK("https://evil.example","x")'
    assert evil["requester_name"] == "'@SUM(A1)" and evil["denied"] == "'-bad"
    assert capsys.readouterr().out == ""  # the file, not stdout
    assert accesses(log)[-1]["out_file"] == str(out)


def test_export_jsonl_by_local_days(log: AuditLog, capsys):
    # FR-B2 is 2026-03-12 17:00 UTC = 10:00 PDT on March 12.
    assert cli.main(["audit", "export", "--format", "jsonl", "--since", "2026-03-12", "--until", "2026-03-12"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    back = json.loads(lines[0])
    assert back == next(e for e in log.entries() if e.get("request_id") == "FR-B2")
    assert accesses(log)[-1]["query"] == {"since": "2026-03-12", "until": "2026-03-12", "format": "jsonl",
                                          "kinds": None}


def test_export_refuses_a_reversed_range_and_bad_dates(log: AuditLog, capsys):
    assert cli.main(["audit", "export", "--since", "2026-03-12", "--until", "2026-03-01"]) == 1
    assert "after the end day" in capsys.readouterr().err
    assert accesses(log) == []  # nothing was read
    with pytest.raises(SystemExit) as info:
        cli.main(["audit", "export", "--since", "12/03/2026"])
    # Usage errors exit 1: 2 means "denied by policy" in this CLI.
    assert info.value.code == 1 and "YYYY-MM-DD" in capsys.readouterr().err


# --- report ------------------------------------------------------------------------------------------------------


def test_report_text_json_and_png(log: AuditLog, tmp_path: Path, capsys):
    png = tmp_path / "march.png"
    assert cli.main(["audit", "report", "--month", "2026-03", "--png", str(png)]) == 0
    text = capsys.readouterr().out
    for outcome in OUTCOMES:
        assert f"- {wording.outcome_label(outcome)}: " in text
    assert "Requests: 4" in text and "- candidates returned: 1" in text and "- failed (error): 0" in text
    assert "Searches with a candidate: 1 of 2 searches that ran (50%)" in text
    assert "Median time from upload to result: 1 min 00 s over 2 searches" in text  # median of 90 s and 30 s
    assert "- Dana O'Neil (U0OFFICER1): 4" in text
    image = Image.open(png)
    assert image.format == "PNG" and image.size[0] > 0
    assert stat.S_IMODE(png.stat().st_mode) == 0o600

    assert cli.main(["audit", "report", "--month", "2026-03", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)  # exactly one JSON object
    assert data["by_outcome"] == {"candidates": 1, "no_candidate": 1, "denied": 1, "error": 0, "cancelled": 1,
                                  "expired": 0, "review": 0}
    assert data["candidate_share"] == 0.5 and data["median_seconds_to_result"] == 60
    reports = [a for a in accesses(log) if a["action"] == "report"]
    assert len(reports) == 2 and reports[0]["png_file"] == str(png) and reports[0]["actor"] == AUDITOR


def test_report_for_an_empty_month_and_a_bad_month(log: AuditLog, capsys):
    assert cli.main(["audit", "report", "--month", "2025-11"]) == 0
    text = capsys.readouterr().out
    assert "Requests: 0" in text and "n/a (no search ran)" in text
    assert cli.main(["audit", "report", "--month", "2026-13"]) == 1
    assert "use YYYY-MM" in capsys.readouterr().err
    assert [a["query"]["month"] for a in accesses(log)] == ["2025-11"]


# --- bundle ------------------------------------------------------------------------------------------------------


def test_bundle_writes_a_zip_whose_manifest_hashes_verify(log: AuditLog, tmp_path: Path, capsys):
    out = tmp_path / "FR-A1.zip"
    assert cli.main(["audit", "bundle", "FR-A1", str(out)]) == 0
    assert "the audit chain verified" in capsys.readouterr().out
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        for name, meta in manifest["files"].items():
            assert hashlib.sha256(zf.read(name)).hexdigest() == meta["sha256"]
        assert set(manifest["files"]) == {"entries.jsonl", "summary.json", "summary.txt", "verification.json"}
        summary = json.loads(zf.read("summary.json"))
        verification = json.loads(zf.read("verification.json"))
    assert manifest["created_by"] == AUDITOR and manifest["tool"]["name"] == "frbot"
    assert summary["slack"]["call_thread_link"] == "https://pd.slack.com/archives/C0DISPATCH/p1772470000000200"
    assert summary["candidates"][0] == {"rank": 1, "subject_id": "S-0042", "distance": 0.41}
    assert verification["ok"] is True
    (access,) = accesses(log)
    assert access["action"] == "bundle" and access["query"] == {"request_id": "FR-A1"}
    assert access["seq"] == manifest["audit_access_seq"] and access["out_file"] == str(out)


def test_bundle_of_an_unknown_request_exits_1(log: AuditLog, tmp_path: Path, capsys):
    out = tmp_path / "nope.zip"
    assert cli.main(["audit", "bundle", "FR-NOPE", str(out)]) == 1
    assert "No audit entry has request id FR-NOPE" in capsys.readouterr().err
    assert not out.exists()
    assert accesses(log)[-1]["results"] == 0


# --- purge -------------------------------------------------------------------------------------------------------


def test_purge_removes_old_audit_entries_and_verify_still_passes(env: Path, data_dir: Path, capsys):
    env.write_text('timezone = "America/Los_Angeles"\n[retention]\naudit_retention_days = 365\n')
    real_now = datetime.now(UTC)
    now = [real_now - timedelta(days=500)]
    log = AuditLog.open(data_dir, env=ENV, clock=lambda: now[0])
    entry(log, "no_candidate", "FR-OLD1")
    now[0] = real_now - timedelta(days=400)
    entry(log, "denied", "FR-OLD2", denied=["x"])
    now[0] = real_now - timedelta(days=2)
    entry(log, "cancelled", "FR-NEW")

    assert cli.main(["purge"]) == 0
    out = capsys.readouterr().out
    assert "audit entries: 2 removed" in out
    assert cli.main(["audit", "verify"]) == 0
    assert "audit log intact" in capsys.readouterr().out
    assert cli.main(["audit", "export", "--format", "jsonl"]) == 0
    exported = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e.get("request_id") for e in exported if e["kind"] == "search"] == ["FR-NEW"]
    purge = next(e for e in exported if e["kind"] == "purge")
    assert purge["removed"] == 2 and purge["actor"] == "os:auditor"


def test_purge_removes_expired_dialog_state_and_probe_cache(env: Path, data_dir: Path, capsys):
    old = datetime.now(UTC) - timedelta(days=60)
    store = DialogStore(data_dir / "slack" / "dialogs.json")
    store.put(Dialog(dialog_id="D-OLD", channel="C0CASE", thread_ts="1.1", requester_id="U0OFFICER1",
                     requester_name="Dana", created_at=old.isoformat(), updated_at=old.isoformat(), step=Step.DONE,
                     images=[ImageRequest("FR-OLD", "F1", "a.jpg")]))
    cache = data_dir / "cache" / "probes"
    cache.mkdir(parents=True)
    (cache / "FR-OLD.npz").write_bytes(b"biometric")
    os.utime(cache / "FR-OLD.npz", (old.timestamp(), old.timestamp()))
    (cache / "FR-NEW.npz").write_bytes(b"biometric")

    assert cli.main(["purge"]) == 0
    out = capsys.readouterr().out
    assert "expired dialog states: 1 removed" in out and "cached probe files: 1 removed" in out
    assert "kept forever" in out
    assert DialogStore(data_dir / "slack" / "dialogs.json").get("D-OLD") is None
    assert [p.name for p in cache.iterdir()] == ["FR-NEW.npz"]


def test_audit_retention_under_365_days_is_refused_at_start(env: Path, data_dir: Path, capsys):
    env.write_text("[retention]\naudit_retention_days = 100\n")
    assert cli.main(["purge"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("configuration error: [retention] audit_retention_days = 100")
    assert "CJIS Security Policy 5.4.7" in err
    assert not (data_dir / "audit").exists()  # refused before anything was touched


def test_purge_refuses_to_remove_entries_from_a_broken_log_but_still_clears_dialog_state(
        env: Path, data_dir: Path, capsys):
    env.write_text("[retention]\naudit_retention_days = 365\n")
    now = [datetime.now(UTC) - timedelta(days=500)]
    log = AuditLog.open(data_dir, env=ENV, clock=lambda: now[0])
    entry(log, "no_candidate", "FR-OLD1")
    entry(log, "no_candidate", "FR-OLD2")
    log.path.write_bytes(log.path.read_bytes().replace(b"FR-OLD1", b"FR-EDIT"))  # tampering
    cache = data_dir / "cache" / "probes"
    cache.mkdir(parents=True)
    (cache / "FR-OLD.npz").write_bytes(b"biometric")
    os.utime(cache / "FR-OLD.npz", (now[0].timestamp(), now[0].timestamp()))

    assert cli.main(["purge"]) == 1
    err = capsys.readouterr().err
    assert "cached probe files: 1 removed" in err and "audit entries: NOT purged: refusing to purge" in err
    assert [e["request_id"] for e in log.entries()] == ["FR-EDIT", "FR-OLD2"]  # the evidence stays
    assert cli.main(["audit", "verify"]) == 1


def test_verify_warns_about_a_cut_tail_instead_of_calling_the_log_intact_alone(tmp_path, capsys, monkeypatch):
    """Bytes removed from the end of the log leave an incomplete last line: verify says so (exit 0, the
    entries before it verify) rather than a bare "intact"."""
    from bot.cli.main import main
    from bot.store.audit_log import AuditLog

    data = tmp_path / "data"
    monkeypatch.setenv("BOT_DATA_DIR", str(data))
    monkeypatch.setenv("BOT_AUDIT_KEY", "cli-verify-key-0123456789abcdef")
    log = AuditLog.open(data, env={"BOT_AUDIT_KEY": "cli-verify-key-0123456789abcdef"})
    for n in range(3):
        log.append("purge", removed=n)
    raw = log.path.read_bytes()
    log.path.write_bytes(raw[:-10])
    assert main(["audit", "verify"]) == 0
    captured = capsys.readouterr()
    assert "intact: 2 entries" in captured.out
    assert "warning: the log ends with an incomplete line" in captured.err


def test_evidence_is_judged_by_every_line_of_a_log_edited_before_the_verified_prefix(log: AuditLog, tmp_path: Path,
                                                                                     capsys):
    """One byte of the first entry edited in place after a check remembered the whole log as verified (so the
    size, the inode and the prefix's last line all still match): export, report and bundle check the whole
    chain, so they still give their output (the broken record is what an auditor must see) but warn first on
    stderr naming the entry, and exit 4 (CONTRACTS: CLI exit codes). Before, export passed with exit 0."""
    assert cli.main(["audit", "verify"]) == 0  # the verified prefix now ends at the last entry
    edit_in_place(log.path, b"Armed robbery", b"Armed robberY")  # entry 1's justification
    capsys.readouterr()
    broken = "WARNING: the audit log does not verify (entry 1"

    out = tmp_path / "export.csv"
    assert cli.main(["audit", "export", "--out", str(out)]) == 4
    err = capsys.readouterr().err
    assert out.exists() and b"Armed robberY" in out.read_bytes() and "Traceback" not in err
    assert broken in err

    assert cli.main(["audit", "report", "--month", "2026-03", "--json"]) == 4
    captured = capsys.readouterr()
    assert json.loads(captured.out)["month"] == "2026-03" and broken in captured.err

    bundle = tmp_path / "b.zip"
    assert cli.main(["audit", "bundle", "FR-A1", str(bundle)]) == 4
    assert broken in capsys.readouterr().err
    with zipfile.ZipFile(bundle) as z:
        verification = json.loads(z.read("verification.json"))
    assert verification["ok"] is False and verification["bad_seq"] == 1 and verification["resumed_after_seq"] is None
    assert [a["action"] for a in accesses(log)] == ["export", "report", "bundle"]