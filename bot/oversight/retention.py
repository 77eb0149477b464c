"""Retention: remove expired dialog state, cached probe data and (only if configured) old audit entries.

Shared by `python -m bot purge` and the server's daily job. What is kept and for how long ([retention]):

- dialog state (`data_dir/slack/dialogs.json`): ended dialogs last changed more than `dialog_state_days` ago.
  Active dialogs are kept whatever their age (DialogStore.delete_older_than).
- examiner reviews and CLI approvals (`data_dir/examinations.json`, `approvals.json`): those that ended more
  than `dialog_state_days` ago; open ones are kept whatever their age (the audit log keeps what happened).
- cached probe data (`data_dir/cache/probes/`, with the comparison sheets of CLI reviews no server posted): files
  whose modification time is more than `dialog_state_days` ago (on PostgreSQL, rows stored that long ago too).
- audit entries: only when `audit_retention_days` is set (0 = keep forever; config refuses under 365, CJIS
  5.4.7), entries recorded more than that many days ago, through `AuditLog.purge_before`, which leaves a
  hash-chained purge entry so `audit verify` still passes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot import wording
from bot.config import Settings
from bot.store.audit_log import AuditError, AuditLog

SYSTEM_ACTOR = "system:retention"  # the actor of the server's daily purge


def dialogs_path(data_dir: Path) -> Path:
    """Where the Slack adapter keeps dialog state."""
    return Path(data_dir) / "slack" / "dialogs.json"


def probe_cache_dir(data_dir: Path) -> Path:
    """Where probe data may be cached between a dialog's steps."""
    return Path(data_dir) / "cache" / "probes"


@dataclass
class PurgeReport:
    """What one purge removed."""

    dialogs_removed: int = 0
    records_removed: int = 0  # ended examiner reviews and CLI approvals
    probe_files_removed: int = 0
    probe_bytes_removed: int = 0
    audit_removed: int = 0
    audit_kept_forever: bool = True
    audit_cutoff: str | None = None
    audit_purge_seq: int | None = None
    audit_error: str | None = None  # why old audit entries could not be purged (e.g. the chain is broken)

    @property
    def ok(self) -> bool:
        """False when the audit purge was due but refused."""
        return self.audit_error is None

    def text(self) -> str:
        """One sentence for a person (CLI output, server log)."""
        return wording.purge_summary(self.dialogs_removed, self.probe_files_removed, self.audit_removed,
                                     self.audit_kept_forever, self.audit_cutoff, self.audit_error,
                                     records=self.records_removed)


def purge_dialogs(path: Path, cutoff: datetime, store: Any = None) -> int:
    """Remove ended dialogs last changed before `cutoff`; 0 when there is no dialog file.

    Pass the server's own DialogStore as `store` to reuse it; otherwise one is opened only if the file exists
    (so a purge never creates an empty dialog file).
    """
    if store is not None:
        return store.delete_older_than(cutoff)
    if not Path(path).exists():
        return 0
    from bot.store.dialogs import DialogStore

    opened = DialogStore(path)
    try:
        return opened.delete_older_than(cutoff)
    finally:
        opened.close()


def purge_records(data_dir: Path, cutoff: datetime) -> int:
    """Remove examiner reviews and CLI approvals that ended before `cutoff` (only files that exist are opened)."""
    from bot.store.records import ApprovalStore, ExaminationStore

    removed = 0
    for name, cls in (("examinations.json", ExaminationStore), ("approvals.json", ApprovalStore)):
        path = Path(data_dir) / name
        if not path.exists():
            continue
        store = cls(path)
        try:
            removed += store.delete_ended_before(cutoff)
        finally:
            store.close()
    return removed


def purge_probe_cache(cache_dir: Path, cutoff: datetime) -> tuple[int, int]:
    """Delete files under `cache_dir` last modified before `cutoff`, then empty subfolders.

    Returns (files removed, bytes removed). Symlinks are removed as links, never followed.
    """
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return 0, 0
    limit = cutoff.timestamp()
    files = size = 0
    for root, dirs, names in os.walk(cache_dir, topdown=False):
        for name in names:
            path = Path(root) / name
            try:
                st = path.lstat()
                if st.st_mtime < limit:
                    path.unlink()
                    files += 1
                    size += st.st_size
            except FileNotFoundError:
                continue  # removed meanwhile by its owner
        for name in dirs:
            sub = Path(root) / name
            try:
                if sub.is_symlink():
                    if sub.lstat().st_mtime < limit:
                        sub.unlink()
                        files += 1
                else:
                    sub.rmdir()  # only succeeds when empty
            except OSError:
                pass
    return files, size


def purge_expired(
    settings: Settings,
    *,
    actor: str = SYSTEM_ACTOR,
    now: datetime | None = None,
    audit: AuditLog | None = None,
    dialog_store: Any = None,
    env: Any = None,
    backend: Any = None,
) -> PurgeReport:
    """Apply the retention settings once (CLI `purge` and the server's daily job). Blocking file I/O: the
    server runs it in a worker thread.

    The audit log is opened (or `audit` used) only when audit_retention_days is set. A log that does not
    verify is never purged (that would destroy evidence): the report's `audit_error` says why, and the
    dialog and probe purges still happen.
    """
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("purge_expired needs an aware datetime (UTC)")
    keep = settings.retention
    report = PurgeReport()
    state_cutoff = now - timedelta(days=keep.dialog_state_days)
    if backend is not None and backend.shared:  # the database's records (bot.store.backend)
        report.dialogs_removed = purge_dialogs(Path(), state_cutoff, dialog_store or backend.dialogs())
        report.records_removed = sum(store.delete_ended_before(state_cutoff)
                                     for store in (backend.examinations(), backend.approvals()))
    else:
        report.dialogs_removed = purge_dialogs(dialogs_path(settings.data_dir), state_cutoff, dialog_store)
        report.records_removed = purge_records(settings.data_dir, state_cutoff)
    report.probe_files_removed, report.probe_bytes_removed = purge_probe_cache(
        probe_cache_dir(settings.data_dir), state_cutoff
    )
    if backend is not None and backend.shared:  # the cached probes (and CLI reviews' sheets) every replica reads
        for cache in (backend.probes(), backend.sheets()):
            files, size = cache.purge_before(state_cutoff)
            report.probe_files_removed += files
            report.probe_bytes_removed += size
    if keep.audit_retention_days:
        report.audit_kept_forever = False
        cutoff = now - timedelta(days=keep.audit_retention_days)
        try:
            log = audit or (backend.audit_log() if backend is not None else AuditLog.open(settings.data_dir, env))
            purge = log.purge_before(cutoff, actor)
        except AuditError as exc:
            report.audit_error = str(exc)
            return report
        report.audit_removed = purge["removed"]
        report.audit_cutoff = purge["cutoff"]
        report.audit_purge_seq = purge.get("seq")
    return report
