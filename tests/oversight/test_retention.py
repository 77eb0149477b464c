"""bot/retention.py: dialog state, probe cache and (only past audit_retention_days) audit entries."""
from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import ConfigError, RetentionSettings, Settings, load_settings
from bot.oversight import retention
from bot.request.transitions import Dialog, ImageRequest, Step
from bot.store.audit_log import AuditLog
from bot.store.dialogs import DialogStore

ENV = {"BOT_AUDIT_KEY": "retention-test-key-0123456789abcdef"}
NOW = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)


def dialog(dialog_id: str, step: Step, updated: datetime) -> Dialog:
    stamp = updated.isoformat()
    return Dialog(dialog_id=dialog_id, channel="C0CASE", thread_ts=f"17000000{len(dialog_id)}.0001",
                  requester_id="U0OFFICER1", requester_name="Dana", created_at=stamp, updated_at=stamp, step=step,
                  images=[ImageRequest(f"FR-{dialog_id}", "F1", "a.jpg")])


def settings_for(data_dir: Path, dialog_days: int = 30, audit_days: int = 0) -> Settings:
    return replace(Settings().with_data_dir(data_dir),
                   retention=RetentionSettings(dialog_state_days=dialog_days, audit_retention_days=audit_days))


def test_expired_dialog_state_is_removed_active_dialogs_kept(data_dir: Path):
    path = retention.dialogs_path(data_dir)
    store = DialogStore(path)
    store.put(dialog("OLD-DONE", Step.DONE, NOW - timedelta(days=31)))
    store.put(dialog("OLD-CANCELLED", Step.CANCELLED, NOW - timedelta(days=45)))
    store.put(dialog("NEW-DONE", Step.DONE, NOW - timedelta(days=29)))
    store.put(dialog("OLD-ACTIVE", Step.PURPOSE, NOW - timedelta(days=90)))  # still waiting on someone
    store.close()

    report = retention.purge_expired(settings_for(data_dir), now=NOW)
    assert report.dialogs_removed == 2
    store = DialogStore(path)
    assert store.get("OLD-DONE") is None and store.get("OLD-CANCELLED") is None
    assert store.get("NEW-DONE") is not None and store.get("OLD-ACTIVE") is not None
    assert "expired dialog states: 2 removed" in report.text()


def test_no_dialog_file_is_not_created(data_dir: Path):
    report = retention.purge_expired(settings_for(data_dir), now=NOW)
    assert report.dialogs_removed == 0 and not retention.dialogs_path(data_dir).exists()
    assert report.audit_kept_forever and not (data_dir / "audit" / "audit.jsonl").exists()


def test_cached_probe_files_older_than_dialog_state_days_are_removed(data_dir: Path):
    cache = retention.probe_cache_dir(data_dir)
    (cache / "nested").mkdir(parents=True)
    old_time = (NOW - timedelta(days=31)).timestamp()
    new_time = (NOW - timedelta(days=1)).timestamp()
    files = {"FR-OLD1.npz": old_time, "FR-OLD2.npz": old_time, "FR-NEW.npz": new_time,
             "nested/FR-OLD3.npz": old_time}
    for name, mtime in files.items():
        (cache / name).write_bytes(b"x" * 100)
        os.utime(cache / name, (mtime, mtime))
    outside = data_dir / "cache" / "other.bin"  # only cache/probes/ is probe data
    outside.write_bytes(b"keep")
    os.utime(outside, (old_time, old_time))

    report = retention.purge_expired(settings_for(data_dir), now=NOW)
    assert report.probe_files_removed == 3 and report.probe_bytes_removed == 300
    assert sorted(p.name for p in cache.rglob("*")) == ["FR-NEW.npz"]  # the emptied folder went too
    assert cache.is_dir() and outside.exists()
    assert "cached probe files: 3 removed" in report.text()


def test_symlinks_in_the_cache_are_removed_not_followed(data_dir: Path, tmp_path: Path):
    cache = retention.probe_cache_dir(data_dir)
    cache.mkdir(parents=True)
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = cache / "link.npz"
    link.symlink_to(target)
    old = (NOW - timedelta(days=40)).timestamp()
    os.utime(link, (old, old), follow_symlinks=False)
    files, _ = retention.purge_probe_cache(cache, NOW - timedelta(days=30))
    assert files == 1 and not link.is_symlink() and target.read_text() == "keep me"


def fill_audit(data_dir: Path) -> AuditLog:
    """Entries 400, 380 and 10 days old, plus a read of the audit."""
    now = [NOW]
    log = AuditLog.open(data_dir, env=ENV, clock=lambda: now[0])
    for days, rid in ((400, "FR-OLD1"), (380, "FR-OLD2"), (10, "FR-NEW")):
        now[0] = NOW - timedelta(days=days)
        log.append("search", outcome="no_candidate", request_id=rid, call_number="26-012345",
                   requester={"id": "U0OFFICER1", "name": "Dana"}, purpose="investigation")
    log.record_access({"id": "os:auditor", "name": "auditor"}, "export", {"since": None})
    now[0] = NOW
    return log


def test_audit_is_kept_forever_by_default(data_dir: Path):
    log = fill_audit(data_dir)
    report = retention.purge_expired(settings_for(data_dir), now=NOW, audit=log)
    assert report.audit_kept_forever and report.audit_removed == 0
    assert len(list(log.entries())) == 4
    assert "kept forever" in report.text()


def test_audit_entries_past_retention_are_purged_and_the_chain_still_verifies(data_dir: Path):
    log = fill_audit(data_dir)
    report = retention.purge_expired(settings_for(data_dir, audit_days=365), now=NOW, audit=log,
                                     actor="os:admin")
    assert report.audit_removed == 2 and not report.audit_kept_forever
    assert report.audit_cutoff == "2026-06-01T12:00:00.000000Z"
    entries = list(log.entries())
    assert [e.get("request_id") for e in entries if e["kind"] == "search"] == ["FR-NEW"]
    purge = entries[-1]
    assert purge["kind"] == "purge" and purge["removed"] == 2 and purge["actor"] == "os:admin"
    assert purge["first_seq"] == 1 and purge["through_seq"] == 2 and report.audit_purge_seq == purge["seq"]
    result = log.verify()
    assert result.ok and result.anchor_seq == 2
    assert "audit entries: 2 removed" in report.text()
    # A second run the same day finds nothing more to remove and writes nothing.
    again = retention.purge_expired(settings_for(data_dir, audit_days=365), now=NOW, audit=log)
    assert again.audit_removed == 0 and len(list(log.entries())) == len(entries)
    assert "none older than" in again.text()


def test_audit_retention_under_a_year_is_refused_with_the_cjis_reason(tmp_path: Path):
    config = tmp_path / "settings.toml"
    config.write_text("[retention]\naudit_retention_days = 100\n")
    with pytest.raises(ConfigError, match=r"CJIS Security Policy 5\.4\.7") as info:
        load_settings(config, env={"BOT_DATA_DIR": str(tmp_path / "data")})
    assert "audit_retention_days = 100" in str(info.value) and "365" in str(info.value)
    config.write_text("[retention]\naudit_retention_days = 365\n")
    assert load_settings(config, env={}).retention.audit_retention_days == 365


def test_purge_needs_an_aware_time(data_dir: Path):
    with pytest.raises(ValueError, match="aware"):
        retention.purge_expired(settings_for(data_dir), now=datetime(2027, 1, 1))


def test_ended_reviews_and_cli_approvals_older_than_dialog_state_days_are_removed_open_ones_kept(data_dir: Path):
    from bot.controls import approval, examination
    from bot.store.records import ApprovalStore, ExaminationStore

    def exam(rid: str, at: datetime, status: str) -> examination.Examination:
        e, _ = examination.queue(request_id=rid, requester_id="U1", call_number="26-012345", purpose="investigation",
                                 justification="j", candidates=[], reviewers_required=1, now=at)
        e.status = status
        return e

    def waiting(rid: str, at: datetime, status: str) -> approval.Pending:
        return approval.Pending(request_id=rid, requester={"id": "os:a", "name": "a"}, slack_user="", answers={},
                                reason="always", source={}, probe_sha256="", faces=[], face_index=1, encoding=None,
                                created_at=at.isoformat(), status=status, decided_at=at.isoformat())

    old, new = NOW - timedelta(days=31), NOW - timedelta(days=1)
    exams = ExaminationStore(data_dir / "examinations.json")
    for e in (exam("FR-OLDREL", old, "released"), exam("FR-OLDOPEN", old, "queued"), exam("FR-NEWREL", new, "released")):
        exams.put(e)
    exams.close()
    approvals = ApprovalStore(data_dir / "approvals.json")
    for p in (waiting("FR-OLDREF", old, "refused"), waiting("FR-OLDWAIT", old, "pending")):
        approvals.put(p)
    approvals.close()

    report = retention.purge_expired(settings_for(data_dir), now=NOW)
    assert report.records_removed == 2 and "ended reviews and approvals: 2 removed" in report.text()
    exams, approvals = ExaminationStore(data_dir / "examinations.json"), ApprovalStore(data_dir / "approvals.json")
    assert sorted(e.request_id for e in exams.all()) == ["FR-NEWREL", "FR-OLDOPEN"]  # an open review is never purged
    assert [p.request_id for p in approvals.all()] == ["FR-OLDWAIT"]
    exams.close()
    approvals.close()
