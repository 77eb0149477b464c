"""The audit log on a real PostgreSQL (tests/pg_fixtures.py), as the app's role: the same chain as the file log,
byte for byte; appends from many connections at once never fork or gap it; an edit is found."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from bot.store.audit_log import AuditError, AuditKeyError, AuditLog
from bot.store.pg.audit import PgAuditLog
from tests.pg_fixtures import StepClock

KEY = b"k" * 32



@pytest.fixture
def migrated(pg_migrated):
    return pg_migrated


def _log(db, key: bytes = KEY, clock=None) -> PgAuditLog:
    return PgAuditLog(lambda: psycopg.connect(db.app_url), key=key, clock=clock)


ENTRIES = [
    ("search", {"outcome": "candidates", "request_id": "FR-1", "call_number": "26-012345",
                "requester": {"id": "U1", "name": "Ofc. Diaz"}, "candidates": [{"subject_id": "S-1", "distance": 0.31}],
                "justification": 'Robbery at "Joe\'s" 🚓 — =cmd|'}),
    ("audit_access", {"actor": {"id": "U2"}, "action": "export", "query": {}}),
    ("gallery_change", {"action": "reencode", "model": {"id": "sface"}, "previous_model": {"id": "dlib-resnet"}}),
]


def test_the_database_holds_the_same_chain_as_the_file_byte_for_byte(migrated, tmp_path):
    start, step = datetime(2026, 12, 7, 12, 0, tzinfo=UTC), timedelta(seconds=1)
    db_log = _log(migrated, clock=StepClock(start, step))
    file_log = AuditLog(tmp_path, key=KEY, key_source="env", clock=StepClock(start, step))
    for kind, fields in ENTRIES:
        assert db_log.append(kind, **fields) == file_log.append(kind, **fields)
    assert list(db_log.lines()) == file_log.path.read_bytes().splitlines()
    assert db_log.head() == file_log.head() and db_log.head()["seq"] == 3
    result = db_log.verify()
    assert result.ok and result.count == 3 and result.last_mac == file_log.verify().last_mac
    with psycopg.connect(migrated.app_url) as app:  # the indexed columns readers will search by
        rows = app.execute("SELECT kind, request_id, call_number, requester_id FROM audit_entries ORDER BY seq")
        assert rows.fetchall()[0] == ("search", "FR-1", "26-012345", "U1")


def test_2000_entries_from_8_connections_at_once_make_one_chain_with_nothing_lost(migrated):
    log = _log(migrated)
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(250):
                log.append("audit_access", actor={"id": f"W{w}"}, action="export", query={"i": i})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    result = log.verify()
    assert result.ok and result.count == 2000 and result.last_seq == 2000  # no gap, no fork, none lost
    per_writer = {}
    for e in log.entries():
        per_writer.setdefault(e["actor"]["id"], []).append(e["query"]["i"])
    assert all(sorted(v) == list(range(250)) for v in per_writer.values()) and len(per_writer) == 8


# A replica's process: two writer threads, each appending 500 entries through one pool, as a server's I/O threads do.
REPLICA = """import sys, threading
from psycopg_pool import ConnectionPool
from bot.store.pg.audit import PgAuditLog
pool = ConnectionPool(sys.argv[1], min_size=2, max_size=2, open=True)
log = PgAuditLog(pool.connection, key=b"k" * 32)
def write(w):
    for i in range(500):
        log.append("audit_access", actor={"id": sys.argv[2] + w}, action="export", query={"i": i})
threads = [threading.Thread(target=write, args=(w,)) for w in ("-1", "-2")]
[t.start() for t in threads]
[t.join() for t in threads]
pool.close()
"""


def test_4_writers_on_2_replica_processes_append_2000_entries_with_no_fork_and_none_lost(migrated):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    replicas = [subprocess.Popen([sys.executable, "-c", REPLICA, migrated.app_url, name], cwd=root,
                                 stderr=subprocess.PIPE) for name in ("A", "B")]
    for proc in replicas:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err.decode()
    log = _log(migrated)
    result = log.verify()
    assert result.ok and result.count == 2000 and result.last_seq == 2000  # one chain: no gap, no fork
    per_writer: dict[str, list[int]] = {}
    for e in log.entries():
        per_writer.setdefault(e["actor"]["id"], []).append(e["query"]["i"])
    assert sorted(per_writer) == ["A-1", "A-2", "B-1", "B-2"]
    assert all(v == list(range(500)) for v in per_writer.values())  # none lost, each writer's in its order


def test_an_entry_edited_behind_the_bots_back_is_found_and_another_key_may_not_append(migrated):
    log = _log(migrated)
    for kind, fields in ENTRIES:
        log.append(kind, **fields)
    with pytest.raises(AuditKeyError):
        _log(migrated, key=b"x" * 32).append("audit_access", actor={"id": "U9"}, action="export", query={})
    # A superuser can switch the append-only triggers off; the chain still tells.
    with psycopg.connect(migrated.admin_url, autocommit=True) as admin:
        admin.execute("SET session_replication_role = replica")
        admin.execute("UPDATE audit_entries SET line = convert_to(replace(convert_from(line, 'UTF8'), 'S-1', "
                      "'S-2'), 'UTF8') WHERE seq = 1")
    result = log.verify()
    assert not result.ok and result.bad_seq == 1 and result.reason == "mac mismatch"


# -- purge: what the database guards ----------------------------------------------------------------------------

T0 = datetime(2020, 3, 1, 12, 0, tzinfo=UTC)  # years back: past the 365-day floor


def _purged(db) -> tuple[PgAuditLog, dict]:
    """A log of 6 daily entries whose first 3 were purged (the purge entry is seq 7)."""
    clock = StepClock(T0, timedelta(days=1))
    log = _log(db, clock=clock)
    for i in range(6):
        log.append("audit_access", actor={"id": "U9"}, action="export", query={"i": i})
    purge = log.purge_before(T0 + timedelta(days=3, hours=12), actor="os:clerk")
    assert purge["through_seq"] == 3 and log.verify().ok
    return log, purge


def _as_admin(db, statement: str) -> None:
    """What a superuser could do behind the bot's back, with the append-only triggers switched off."""
    with psycopg.connect(db.admin_url, autocommit=True) as admin:
        admin.execute("SET session_replication_role = replica")
        admin.execute(statement)


def test_the_app_never_writes_a_purge_marker_or_removes_an_entry_itself(migrated):
    _purged(migrated)
    with psycopg.connect(migrated.app_url, autocommit=True) as app:
        assert app.execute("SELECT anchor_seq, purge_seq FROM audit_anchors").fetchall() == [(3, 7)]
        for statement in ("INSERT INTO audit_anchors (purge_seq, anchor_seq, line) VALUES (99, 1, '')",
                          "UPDATE audit_anchors SET anchor_seq = 1", "DELETE FROM audit_anchors",
                          "DELETE FROM audit_entries"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(statement)
        with pytest.raises(psycopg.errors.UndefinedFunction):  # 001's purge without a marker is gone
            app.execute("SELECT frbot_purge_audit(400)")
    with (psycopg.connect(migrated.owner_url, autocommit=True) as owner,  # the triggers refuse even the owner
          pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only")):
        owner.execute("DELETE FROM audit_anchors")


def test_a_dropped_purge_marker_is_found(migrated):
    log, _ = _purged(migrated)
    _as_admin(migrated, "DELETE FROM audit_anchors")
    result = log.verify()
    assert not result.ok and result.bad_seq == 4 and "expected 1" in result.reason


def test_a_purge_entry_removed_behind_its_marker_is_found(migrated):
    log, purge = _purged(migrated)
    _as_admin(migrated, f"DELETE FROM audit_entries WHERE seq = {purge['seq']}")
    result = log.verify()
    assert not result.ok and "no matching purge entry" in result.reason


def test_a_broken_log_is_not_purged(migrated):
    log, _ = _purged(migrated)
    _as_admin(migrated, "UPDATE audit_entries SET line = convert_to(replace(convert_from(line, 'UTF8'), "
                        "'\"i\":4', '\"i\":5'), 'UTF8') WHERE seq = 5")
    before = list(log.lines())
    with pytest.raises(AuditError, match="refusing to purge: the audit log is broken at entry 5"):
        log.purge_before(T0 + timedelta(days=30), actor="os:clerk")
    assert list(log.lines()) == before
