"""One contract, two stores: the file audit log and the PostgreSQL one (tests/pg_fixtures.py) answer the same
calls the same way (issue 17: the store seam). Each test runs on both."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from bot.store.audit_log import AuditError, AuditKeyError, AuditLog, EntryQuery
from bot.store.pg.audit import PgAuditLog
from tests.pg_fixtures import StepClock

KEY = b"k" * 32



@pytest.fixture(params=["file", "postgresql"])
def make_log(request, tmp_path):
    """make_log(key=KEY, clock=None) -> a log of the parametrised store, on one data dir or one database per
    test (all of a test's logs share one clock unless given theirs)."""
    shared = StepClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC), timedelta(hours=1))
    if request.param == "file":
        return lambda key=KEY, clock=None: AuditLog(tmp_path, key=key, key_source="env", clock=clock or shared)
    db = request.getfixturevalue("pg_migrated")
    return lambda key=KEY, clock=None: PgAuditLog(lambda: psycopg.connect(db.app_url), key=key,
                                                  clock=clock or shared)


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


def test_a_date_range_finds_what_a_whole_scan_finds_even_after_the_clock_stepped_back(make_log):
    """find(since=, until=) reads only part of a file (bot.store.audit_cache's time index, bisected); the answer
    must be the whole scan's, entry for entry, on both stores, with entries out of time order (a clock stepped
    back) and kinds asked for or not."""
    clock = StepClock(T0, timedelta(0))
    log = make_log(clock=clock)
    hours = [0, 5, 9, 30, 31, 7, 48, 50, 49, 72, 96, 96, 97, 120, 2, 121]  # 7, 49 and 2: the clock went back
    for n, hour in enumerate(hours):
        clock.now = T0 + timedelta(hours=hour)
        if n % 3 == 2:
            log.record_access({"id": "U9"}, "export", {"search": "a justification saying \"search\""})
        else:
            log.append("search", outcome="candidates", request_id=f"FR-{n}", requester={"id": f"U{n % 2}"})
    everything = list(log.entries())
    edges = [None, T0 - timedelta(hours=1), T0, T0 + timedelta(hours=7), T0 + timedelta(hours=8),
             T0 + timedelta(hours=49), T0 + timedelta(hours=96), T0 + timedelta(hours=121), T0 + timedelta(days=30)]
    for since in edges:
        for until in edges:
            for kinds in (None, ["search"], ["audit_access"], ["search", "review"]):
                found = log.find(since=since, until=until, kinds=kinds)
                expected = [e for e in everything if (kinds is None or e["kind"] in kinds)
                            and (since is None or datetime.fromisoformat(e["ts"]) >= since)
                            and (until is None or datetime.fromisoformat(e["ts"]) < until)]
                assert found == expected, (since, until, kinds)
                # The unparsed lines hold every one of them (a reader that parses and checks gets the same).
                query = EntryQuery.of(since=since, until=until, kinds=kinds)
                lines = log.find_lines(since=since, until=until, kinds=kinds)
                assert [e for e in map(json.loads, lines) if query.matches(e)] == expected, (since, until, kinds)
    # Appends after a range read extend the index; the clock stepping back again is still found.
    clock.now = T0 + timedelta(hours=1)
    late = log.append("search", outcome="no_candidate", request_id="FR-late", requester={"id": "U1"})
    assert log.find(since=T0, until=T0 + timedelta(hours=2)) == [everything[0], late]
    assert log.find(since=T0 + timedelta(hours=200)) == [] == log.find_lines(since=T0 + timedelta(hours=200))
    # Looked up by value: the database narrows to the lines holding it, the file reads the index's lines.
    assert [e["seq"] for e in log.find(request_id="FR-3", since=T0)] == [4]
    assert log.find(request_id="FR-3", until=T0) == [] and log.find(call_number="FR-3") == []

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


# -- purge -------------------------------------------------------------------------------------------------------
# Entries are dated years back, past the 365-day floor the database keeps whatever the caller asks.

T0 = datetime(2020, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def dated(make_log):
    """(log, clock): a log whose clock stands where the test sets it (`clock.now`)."""
    clock = StepClock(T0, timedelta(0))
    return make_log(clock=clock), clock


def _dated_fill(log, clock, days) -> list[dict]:
    out = []
    for day in days:
        clock.now = T0 + timedelta(days=day)
        out.append(log.append("search", outcome="no_candidate", request_id=f"FR-{day}",
                              requester={"id": "U1", "name": "Ofc. Diaz"}))
    return out


def test_a_purge_removes_the_oldest_entries_and_the_rest_verifies_from_its_marker(dated):
    log, clock = dated
    written = _dated_fill(log, clock, range(10))
    log.append("gallery_change", actor="os:admin", action="enroll", subject_id="s1")  # day 9 too
    clock.now = T0 + timedelta(days=20)
    purge = log.purge_before(T0 + timedelta(days=5), actor="os:clerk")
    assert (purge["kind"], purge["seq"], purge["prev"]) == ("purge", 12, log.find(kinds=["gallery_change"])[0]["mac"])
    assert (purge["removed"], purge["first_seq"], purge["through_seq"]) == (5, 1, 5)
    assert purge["through_mac"] == written[4]["mac"] and purge["removed_kinds"] == {"search": 5}
    assert purge["cutoff"] == "2020-03-06T12:00:00.000000Z" and purge["actor"] == "os:clerk"
    remaining = list(log.entries())
    assert [e["seq"] for e in remaining] == list(range(6, 13))
    assert remaining[:5] == written[5:] and remaining[-1] == purge  # kept entries unchanged
    result = log.verify()
    assert result.ok and (result.count, result.first_seq, result.last_seq, result.anchor_seq) == (7, 6, 12, 5)
    assert log.head() == {"seq": 12, "mac": purge["mac"], "ts": purge["ts"]} and log.last_seq() == 12
    assert log.find(request_id="FR-2") == [] and log.find(kinds=["purge"]) == [purge]
    # A head published before the purge: the last entry removed is checked against the MAC its purge kept.
    assert log.check_head(5, written[4]["mac"]).ok and log.check_head(5, "0" * 16).problem == "mismatch"
    purged = log.check_head(3, written[2]["mac"])
    assert (purged.problem, purged.through_seq, purged.last_seq) == ("purged", 5, 12)
    assert log.check_head(40, written[2]["mac"]).problem == "missing"
    # The chain carries on after a purge.
    assert log.append("audit_access", actor={"id": "U9"}, action="export", query={})["seq"] == 13
    assert log.verify().ok and log.verify().count == 8 and log.verify(use_prefix=True).last_seq == 13


def test_a_second_purge_carries_the_first_forward(dated):
    log, clock = dated
    _dated_fill(log, clock, range(10))
    clock.now = T0 + timedelta(days=10)
    first = log.purge_before(T0 + timedelta(days=3), actor="os:clerk")  # seq 11
    _dated_fill(log, clock, range(11, 14))  # seq 12..14
    clock.now = T0 + timedelta(days=30)
    second = log.purge_before(T0 + timedelta(days=12), actor="os:clerk")
    # Entries 4..10, the first purge entry (day 10) and entry 12 (day 11) go.
    assert (second["first_seq"], second["through_seq"], second["removed"]) == (4, 12, 9)
    assert second["removed_kinds"] == {"purge": 1, "search": 8}
    assert second["earlier_purges"] == [{
        "seq": first["seq"], "ts": first["ts"], "actor": "os:clerk", "cutoff": first["cutoff"],
        "removed": 3, "first_seq": 1, "through_seq": 3,
    }]
    assert [e["seq"] for e in log.entries()] == [13, 14, 15]
    result = log.verify()
    assert result.ok and result.count == 3 and result.anchor_seq == 12  # from the newer marker


def test_a_purge_of_everything_leaves_its_own_entry(dated):
    log, clock = dated
    written = _dated_fill(log, clock, range(3))
    purge = log.purge_before(T0 + timedelta(days=100), actor="os:clerk")
    assert purge["removed"] == 3 and purge["prev"] == written[-1]["mac"]
    assert [e["seq"] for e in log.entries()] == [4]
    result = log.verify()
    assert result.ok and result.count == 1 and result.anchor_seq == 3


def test_a_purge_with_nothing_to_remove_writes_nothing(dated):
    log, clock = dated
    _dated_fill(log, clock, range(3))
    before = list(log.entries())
    assert log.purge_before(T0 - timedelta(days=1), actor="os:clerk") == {
        "kind": "purge", "removed": 0, "cutoff": "2020-02-29T12:00:00.000000Z", "actor": "os:clerk"}
    assert list(log.entries()) == before and log.verify().anchor_seq is None


def test_a_purge_stops_at_the_first_recent_entry(dated):
    log, clock = dated
    _dated_fill(log, clock, [0, 1, 8, 2, 3])  # the clock stepped back after day 8
    purge = log.purge_before(T0 + timedelta(days=5), actor="os:clerk")
    assert purge["through_seq"] == 2  # never leaves a hole in the middle of the chain
    assert [e["seq"] for e in log.entries()] == [3, 4, 5, 6]
    assert log.verify().ok


def test_a_purge_leaves_the_same_lines_on_both_stores(pg_migrated, tmp_path):
    clocks = [StepClock(T0, timedelta(0)), StepClock(T0, timedelta(0))]
    file_log = AuditLog(tmp_path, key=KEY, key_source="env", clock=clocks[0])
    db_log = PgAuditLog(lambda: psycopg.connect(pg_migrated.app_url), key=KEY, clock=clocks[1])
    for log, clock in zip((file_log, db_log), clocks, strict=True):
        _dated_fill(log, clock, range(6))
        clock.now = T0 + timedelta(days=10)
        log.purge_before(T0 + timedelta(days=3), actor="os:clerk")
        clock.now = T0 + timedelta(days=11)
        log.purge_before(T0 + timedelta(days=4), actor="os:clerk")
    assert list(db_log.lines()) == file_log.path.read_bytes().splitlines()  # the marker first, byte for byte
    assert db_log.verify() == file_log.verify() and db_log.verify().anchor_seq == 4


def test_the_database_keeps_a_year_of_entries_whatever_the_caller_asks(pg_migrated, tmp_path):
    now = datetime.now(UTC)
    clock = StepClock(now - timedelta(days=100), timedelta(days=1))
    db_log = PgAuditLog(lambda: psycopg.connect(pg_migrated.app_url), key=KEY, clock=clock)
    _fill(db_log)  # 99 to 96 days old
    before = list(db_log.lines())
    with pytest.raises(AuditError, match="at least 365 days"):
        db_log.purge_before(now - timedelta(days=30), actor="os:clerk")
    assert list(db_log.lines()) == before and db_log.last_seq() == 4  # nothing removed, no purge entry kept
    assert db_log.verify().ok
    # The function itself, called by the app's role with a cutoff under the floor, or with an old cutoff but
    # through entries younger than it: refused by the database.
    with psycopg.connect(pg_migrated.app_url, autocommit=True) as app:
        for cutoff in ("now() - interval '30 days'", "now() - interval '400 days'"):
            with pytest.raises(psycopg.errors.CheckViolation):
                app.execute(f"SELECT frbot_purge_audit_through(2, {cutoff}, %s)", (b"{}",))
        assert app.execute("SELECT count(*) FROM audit_entries").fetchone()[0] == 4
    # The file log leaves the floor to the caller's settings (bot.config refuses under 365 days).
    file_log = AuditLog(tmp_path, key=KEY, key_source="env", clock=StepClock(now - timedelta(days=100),
                                                                             timedelta(days=1)))
    _fill(file_log)
    assert file_log.purge_before(now - timedelta(days=30), actor="os:clerk")["removed"] == 4
