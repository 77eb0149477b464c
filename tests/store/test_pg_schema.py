"""The PostgreSQL schema on a real postgres (tests/store/conftest.py): migrations, the roles' rights on the
audit table, and the purge's 365-day floor (CONTRACTS ### 13)."""
from __future__ import annotations

import json

import psycopg
import pytest

from bot.store.pg import schema


def _entry(conn: psycopg.Connection, seq: int, days_old: int = 0) -> None:
    conn.execute(
        "INSERT INTO audit_entries (seq, prev, mac, line, kind, at, request_id) "
        "VALUES (%s, %s, %s, %s, 'search', now() - make_interval(days => %s), %s)",
        (seq, f"mac{seq - 1}", f"mac{seq}", f'{{"seq": {seq}}}'.encode(), days_old, f"FR-{seq}"),
    )


def test_migrate_builds_the_schema_once_and_a_second_run_changes_nothing(pg_database):
    with psycopg.connect(pg_database.owner_url, autocommit=True) as conn:
        applied = schema.migrate(conn)
        assert [m.version for m in applied] == [m.version for m in schema.migrations()] and applied
        assert schema.current_version(conn) == len(schema.migrations())
        columns = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'audit_entries'")}
        assert {"seq", "prev", "mac", "line"} <= columns and "audit" in schema.AUDIT_TABLE
        before = conn.execute("SELECT version, applied_at FROM frbot_schema ORDER BY version").fetchall()
        assert schema.migrate(conn) == []  # nothing to do: no rows written
        assert conn.execute("SELECT version, applied_at FROM frbot_schema ORDER BY version").fetchall() == before


def test_a_misnumbered_migration_folder_is_refused(tmp_path):
    (tmp_path / "001_a.sql").write_text("SELECT 1;")
    (tmp_path / "003_c.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match="without gaps"):
        schema.migrations(tmp_path)
    (tmp_path / "2_b.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match="NNN_name.sql"):
        schema.migrations(tmp_path)


def test_the_app_role_reads_and_appends_and_can_never_change_or_remove_an_entry(pg_database):
    with psycopg.connect(pg_database.owner_url, autocommit=True) as owner:
        schema.migrate(owner)
    with psycopg.connect(pg_database.app_url, autocommit=True) as app:
        assert schema.app_rights_problems(app) == []
        _entry(app, 1)
        assert app.execute("SELECT count(*) FROM audit_entries").fetchone()[0] == 1
        for statement in ("UPDATE audit_entries SET kind = 'x'", "DELETE FROM audit_entries",
                          "TRUNCATE audit_entries"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(statement)
        assert app.execute("SELECT kind FROM audit_entries").fetchall() == [("search",)]
    # Not even the owner changes an entry by hand: the triggers refuse it.
    with psycopg.connect(pg_database.owner_url, autocommit=True) as owner:
        assert schema.app_rights_problems(owner) == ["UPDATE", "DELETE", "TRUNCATE"]  # what serve would refuse
        for statement in ("UPDATE audit_entries SET kind = 'x'", "DELETE FROM audit_entries",
                          "TRUNCATE audit_entries"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                owner.execute(statement)


def _purge_row(conn: psycopg.Connection, seq: int, through: int) -> bytes:
    """A `purge` entry at `seq` recording the removal through entry `through`; returns its purge marker's line."""
    line = json.dumps({"kind": "purge", "seq": seq, "through_seq": through, "through_mac": f"mac{through}"})
    conn.execute("INSERT INTO audit_entries (seq, prev, mac, line, kind, at) VALUES (%s, %s, %s, %s, 'purge', now())",
                 (seq, f"mac{seq - 1}", f"mac{seq}", line.encode()))
    return json.dumps({"kind": "purge_anchor", "anchor_seq": through, "anchor_mac": f"mac{through}",
                       "purge_seq": seq}).encode()


def test_entries_leave_only_through_the_purge_and_never_under_a_year(pg_database):
    with psycopg.connect(pg_database.owner_url, autocommit=True) as owner:
        schema.migrate(owner)
    with psycopg.connect(pg_database.app_url, autocommit=True) as app:
        _entry(app, 1, days_old=800)
        _entry(app, 2, days_old=400)
        _entry(app, 3, days_old=10)
        marker = _purge_row(app, 4, through=1)
        purge = "SELECT frbot_purge_audit_through(%s, now() - make_interval(days => %s), %s)"
        with pytest.raises(psycopg.errors.CheckViolation, match="at least 365 days"):
            app.execute(purge, (1, 30, marker))
        with pytest.raises(psycopg.errors.CheckViolation, match="not all older"):  # entry 2 is 400 days old
            app.execute(purge, (2, 730, marker))
        with pytest.raises(psycopg.errors.RaiseException, match="does not name"):  # a marker naming another entry
            app.execute(purge, (1, 730, marker.replace(b'"anchor_seq": 1', b'"anchor_seq": 2')))
        assert app.execute(purge, (1, 730, marker)).fetchone()[0] == 1
        assert [r[0] for r in app.execute("SELECT seq FROM audit_entries ORDER BY seq")] == [2, 3, 4]
        assert app.execute("SELECT purge_seq, anchor_seq, line FROM audit_anchors").fetchall() == [(4, 1, marker)]
        # The purge's permission ends with its own statement: a plain DELETE after it is refused again.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("DELETE FROM audit_entries")
