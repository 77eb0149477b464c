"""bot/refusals.py: refused attempts by someone who holds no role, folded into one `denied` entry per window."""
from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from bot import wording
from bot.audit.refusals import MAX_ATTEMPTS, PENDING_NAME, RefusalAggregator, attempt_with, folded_count
from bot.oversight import monthly, review
from bot.store.audit_log import AuditLog
from tests.store import test_audit_log as base
from tests.store.test_audit_log import ENV, Clock

clock, log = base.clock, base.log  # a settable clock (2024-01-01 12:00 UTC) and a log keyed with ENV
STRANGER = {"id": "U0STRANGER", "name": "Someone"}


def upload_fields(n: int, who: dict = STRANGER) -> dict:
    """A refused upload as the Slack flow records it (service.record_denied)."""
    return {"outcome": "denied", "request_id": f"FR-{n:010d}", "requester": who, "denied": ["not on the list"],
            "source": "slack", "channel": "C0CASE", "file_id": f"F{n:08d}", "thread_ts": f"1700000000.{n:06d}",
            "call_number": None, "purpose": None}


def frs_fields(n: int, who: dict = STRANGER) -> dict:
    """A refused /frs command as bot.slack.review records it."""
    return {"actor": who, "action": "query", "query": {"call_number": f"26-{n:06d}"}, "allowed": False,
            "outcome": "denied", "source": "slack", "channel": "C0CASE"}


def attempts(agg: RefusalAggregator, clock: Clock, count: int, fields=upload_fields, kind: str = "search",
             who: dict = STRANGER, every: timedelta = timedelta(seconds=5)) -> list:
    out = []
    for n in range(1, count + 1):
        out.append(agg.record(kind, who["id"], fields(n, who), clock.now))
        clock.now += every
    return out


def test_refusal_aggregation_folds_a_strangers_attempts_in_the_window_and_the_report_counts_them(
    log: AuditLog, clock: Clock
) -> None:
    agg = RefusalAggregator(log, 10)
    start = clock.now
    written = attempts(agg, clock, 50)  # 50 uploads in a little over 4 minutes
    assert written[0]["request_id"] == "FR-0000000001" and "count" not in written[0]  # the first: as always
    assert written[1:] == [None] * 49 and len(list(log.entries())) == 1 and agg.pending() == 49
    clock.now = start + timedelta(minutes=10)
    assert agg.flush(clock.now) == 1 and agg.pending() == 0
    first, folded = log.entries()
    assert folded["kind"] == "search" and folded["outcome"] == "denied" and folded["count"] == 49
    assert folded["requester"] == STRANGER and folded["denied"] == ["not on the list"]
    assert "request_id" not in folded and "file_id" not in folded
    assert folded["first_at"] == "2024-01-01T12:00:05.000000Z" and folded["last_at"] == "2024-01-01T12:04:05.000000Z"
    assert folded["window_minutes"] == 10 and folded["window_opened_at"] == first["ts"]
    assert [a["request_id"] for a in folded["attempts"]] == [f"FR-{n:010d}" for n in range(2, 51)]
    assert folded["attempts"][0] == {"at": "2024-01-01T12:00:05.000000Z", "request_id": "FR-0000000002",
                                     "file_id": "F00000002", "channel": "C0CASE", "thread_ts": "1700000000.000002"}
    assert [folded_count(e) for e in (first, folded)] == [1, 49]
    report = monthly.summarise_month(log.entries(), "2024-01", "UTC")
    assert report.total == 50 and report.by_outcome["denied"] == 50
    assert report.by_requester == [{"id": STRANGER["id"], "name": STRANGER["name"], "count": 50}]
    assert sum(w.by_outcome["denied"] for w in report.weeks) == 50
    assert log.verify().ok


def test_refusal_aggregation_the_next_attempt_after_the_window_writes_it_and_opens_another(
    log: AuditLog, clock: Clock
) -> None:
    agg = RefusalAggregator(log, 10)
    attempts(agg, clock, 3, every=timedelta(minutes=1))
    clock.now += timedelta(minutes=8)  # 11 minutes after the first
    entry = agg.record("search", STRANGER["id"], upload_fields(4), clock.now)
    assert entry is not None and entry["request_id"] == "FR-0000000004"
    kinds = [(e.get("count"), e.get("request_id")) for e in log.entries()]
    assert kinds == [(None, "FR-0000000001"), (2, None), (None, "FR-0000000004")]


def test_refusal_aggregation_each_person_and_kind_has_its_own_window(log: AuditLog, clock: Clock) -> None:
    agg = RefusalAggregator(log, 10)
    other = {"id": "U0OTHER", "name": "Other"}
    attempts(agg, clock, 3)
    attempts(agg, clock, 3, who=other)
    attempts(agg, clock, 3, fields=frs_fields, kind="audit_access")
    assert len(list(log.entries())) == 3 and agg.pending() == 6
    assert agg.flush(clock.now, everything=True) == 3  # at shutdown: every open window
    folded = [e for e in log.entries() if "count" in e]
    assert sorted((e["kind"], folded_count(e)) for e in folded) == [("audit_access", 2), ("search", 2), ("search", 2)]
    access = next(e for e in folded if e["kind"] == "audit_access")
    assert access["actor"] == STRANGER and access["allowed"] is False and "query" not in access
    assert [a["query"] for a in access["attempts"]] == [{"call_number": "26-000002"}, {"call_number": "26-000003"}]
    assert monthly.summarise_month(log.entries(), "2024-01", "UTC").refused_commands == 3


def test_refusal_aggregation_window_zero_writes_every_attempt(log: AuditLog, clock: Clock) -> None:
    agg = RefusalAggregator(log, 0)
    assert all(e is not None for e in attempts(agg, clock, 5))
    assert len(list(log.entries())) == 5 and not (log.dir / PENDING_NAME).exists()


def test_refusal_aggregation_lists_at_most_a_hundred_attempts_and_counts_them_all(log: AuditLog, clock: Clock) -> None:
    agg = RefusalAggregator(log, 10)
    attempts(agg, clock, 151, every=timedelta(seconds=1))
    agg.flush(clock.now, everything=True)
    folded = list(log.entries())[-1]
    assert folded["count"] == 150 and len(folded["attempts"]) == MAX_ATTEMPTS
    assert folded["attempts_not_listed"] == 150 - MAX_ATTEMPTS


def test_refusal_aggregation_survives_a_crash_in_a_signed_private_pending_file(
    data_dir: Path, log: AuditLog, clock: Clock
) -> None:
    agg = RefusalAggregator(log, 10)
    attempts(agg, clock, 6)
    pending = log.dir / PENDING_NAME
    assert stat.S_IMODE(pending.stat().st_mode) == 0o600
    del agg  # the server dies: nothing was flushed
    restarted = RefusalAggregator(AuditLog.open(data_dir, env=ENV, clock=clock), 10)
    assert restarted.pending() == 5
    assert restarted.flush(clock.now) == 0  # the window is still open
    clock.now += timedelta(minutes=10)
    assert restarted.flush(clock.now) == 1
    folded = list(log.entries())[-1]
    assert folded["count"] == 5 and "pending_unverified" not in folded
    assert restarted.pending() == 0 and json.loads(pending.read_bytes())["windows"] == {}


def test_refusal_aggregation_a_pending_file_changed_without_the_key_is_flushed_marked(
    data_dir: Path, log: AuditLog, clock: Clock
) -> None:
    attempts(RefusalAggregator(log, 10), clock, 4)
    pending = log.dir / PENDING_NAME
    obj = json.loads(pending.read_bytes())
    next(iter(obj["windows"].values()))["count"] = 1  # someone lowers the count
    pending.write_text(json.dumps(obj))
    restarted = RefusalAggregator(AuditLog.open(data_dir, env=ENV, clock=clock), 10)
    restarted.flush(clock.now, everything=True)
    folded = list(log.entries())[-1]
    assert folded["count"] == 1 and folded["pending_unverified"] is True


def test_refusal_aggregation_folded_attempts_are_found_by_request_and_file_id(log: AuditLog, clock: Clock) -> None:
    agg = RefusalAggregator(log, 10)
    attempts(agg, clock, 5)
    assert agg.pending_attempt("file_id", "F00000003")["request_id"] == "FR-0000000003"  # window still open
    assert agg.pending_attempt("file_id", "F00000001") is None  # the first was written at once
    agg.flush(clock.now, everything=True)
    [folded] = log.find(file_id="F00000003", kinds=["search"])
    assert folded["count"] == 4
    assert attempt_with(folded, "file_id", "F00000003")["request_id"] == "FR-0000000003"
    assert log.find(request_id="FR-0000000004") == [folded]
    assert [e.get("count") for e in log.find(request_id="FR-0000000001")] == [None]  # the first, on its own
    assert attempt_with(folded, "file_id", "F-OTHER") is None
    line = wording.audit_lines([folded], "UTC")[0]
    assert " · folded · Someone (U0STRANGER) · " in line and "4 attempts folded into this entry" in line
    bundle = review.build_bundle(log, "FR-0000000004", {"id": "os:auditor", "name": "a"}, "UTC")
    assert bundle.summary["request_id"] == "FR-0000000004" and bundle.summary["outcome"] == "denied"


@pytest.mark.parametrize("minutes", [-1, 1441])
def test_refusal_aggregation_window_setting_is_checked(tmp_path: Path, minutes: int) -> None:
    from bot.config import ConfigError, load_settings

    path = tmp_path / "settings.toml"
    path.write_text(f"[audit]\nrefusal_window_minutes = {minutes}\n")
    with pytest.raises(ConfigError, match="refusal_window_minutes"):
        load_settings(path, env={})
