"""bench.console (issue 18's console target) runs end to end on a tiny scale: the synthetic year written and
chained on both stores (its own PostgreSQL started and removed), the real console served over each, every view
answered (200) and timed, the chain verifying. Nothing here is timed against the target."""
from __future__ import annotations

import re
from datetime import UTC, datetime

from bench import console


def test_the_synthetic_year_is_a_chain_that_verifies_in_time_order(tmp_path):
    from bot.store.audit_log import AuditLog

    end = datetime(2026, 12, 1, tzinfo=UTC)
    console.write_files(tmp_path, 600, 30, end)
    log = AuditLog(tmp_path, key=console.KEY.encode(), key_source="env")
    result = log.verify()
    assert result.ok and result.count == 600
    entries = list(log.entries())
    assert [e["ts"] for e in entries] == sorted(e["ts"] for e in entries) and entries[-1]["ts"] == "2026-12-01T00:00:00.000000Z"
    kinds = {e["kind"] for e in entries}
    assert {"search", "review", "audit_access", "refusal"} <= kinds
    assert len({e["requester"]["id"] for e in entries if e["kind"] == "search"}) >= 20


def test_the_console_bench_times_every_view_on_both_stores(capsys):
    assert console.main(["--entries", "1500", "--days", "60", "--runs", "3"]) in (0, 1)
    out = capsys.readouterr().out
    for label in ("searches, default (last 30 days)", "searches, a month + requester + outcome",
                  "searches, one call number, whole log", "searches, every search (?from=)", "CSV export"):
        [row] = [line for line in out.splitlines() if line.startswith(f"| {label}")]
        assert re.search(r"\| \d+ / \d+ \(first \d+\) \| \d+ / \d+ \(first \d+\) \|", row), row
    assert "1500 entries, verify) | " in out and "PostgreSQL 1" in out
