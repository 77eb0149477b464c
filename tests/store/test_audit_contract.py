"""One contract, two stores: the file audit log and the PostgreSQL one (tests/pg_fixtures.py) answer the same
calls the same way (issue 17: the store seam). Each test runs on both."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from bot.store.audit_log import AuditKeyError, AuditLog
from bot.store.pg.audit import PgAuditLog
from tests.pg_fixtures import StepClock

KEY = b"k" * 32



@pytest.fixture(params=["file", "postgresql"])
def make_log(request, tmp_path):
    """make_log(key=KEY) -> a log of the parametrised store, on one data dir or one database per test."""
    clock = StepClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC), timedelta(hours=1))
    if request.param == "file":
        return lambda key=KEY: AuditLog(tmp_path, key=key, key_source="env", clock=clock)
    db = request.getfixturevalue("pg_migrated")
    return lambda key=KEY: PgAuditLog(lambda: psycopg.connect(db.app_url), key=key, clock=clock)


def _fill(log) -> None:
    log.append("search", outcome="candidates", request_id="FR-1", call_number="26-000001",
               requester={"id": "U1", "name": "Ofc. Diaz"})
    log.append("search", outcome="no_candidate", request_id="FR-2", call_number="26-000002",
               requester={"id": "U2", "name": "Ofc. Lee"})
    log.record_access({"id": "U9", "name": "Capt. Reyes"}, "export", {"since": "2026-03-01"})
    log.append("refusal", reason="not a requester", attempts=[{"request_id": "FR-3", "user": "U7"}])


def test_an_empty_log_has_no_head_and_takes_entries(make_log):
    log = make_log()
    assert log.head() is None and log.last_seq() == 0 and log.verify().ok
    log.check_writable()
    entry = log.append("audit_access", actor={"id": "U9"}, action="export", query={})
    assert (entry["seq"], entry["prev"]) == (1, "") and log.last_seq() == 1
    assert log.head() == {"seq": 1, "mac": entry["mac"], "ts": entry["ts"]}


def test_find_answers_the_same_on_every_store(make_log):
    log = make_log()
    _fill(log)
    assert [e["seq"] for e in log.find(request_id="FR-1")] == [1]
    assert [e["seq"] for e in log.find(request_id="FR-3")] == [4]  # inside a top-level list (folded refusals)
    assert [e["seq"] for e in log.find(call_number="26-000002")] == [2]
    assert [e["seq"] for e in log.find(requester_id="U9")] == [3]  # the actor of an audit access
    assert [e["seq"] for e in log.find(kinds=["search"])] == [1, 2]
    second = log.find(request_id="FR-2")[0]["ts"]
    assert [e["seq"] for e in log.find(since=second)] == [2, 3, 4]
    assert [e["seq"] for e in log.find(until=second)] == [1]
    assert [e["seq"] for e in log.find(kinds=["search"], requester_id="U2", since=second)] == [2]
    with pytest.raises(ValueError, match="unknown audit entry kind"):
        log.find(kinds=["nonsense"])


def test_a_published_head_is_checked_the_same_way(make_log):
    log = make_log()
    _fill(log)
    head = log.head()
    assert log.check_head(head["seq"], head["mac"][:16]).ok
    assert log.check_head(head["seq"], "0" * 16).problem == "mismatch"
    missing = log.check_head(head["seq"] + 5, head["mac"])
    assert missing.problem == "missing" and missing.last_seq == head["seq"]


def test_entries_are_refused_the_same_way(make_log):
    log = make_log()
    _fill(log)
    for kind, fields in (("nonsense", {}), ("search", {"outcome": "maybe"}), ("search", {"outcome": "error",
                                                                                         "seq": 9})):
        with pytest.raises(ValueError):
            log.append(kind, **fields)
    other = make_log(b"x" * 32)
    with pytest.raises(AuditKeyError):
        other.check_writable()
    with pytest.raises(AuditKeyError):
        other.append("audit_access", actor={"id": "U9"}, action="export", query={})
    result = log.verify()
    assert result.ok and result.count == 4 and log.last_seq() == 4
