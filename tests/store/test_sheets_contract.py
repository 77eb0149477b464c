"""One contract, two stores: the comparison sheet a command-line examiner review waits with until a server posts
it (Backend.sheets: beside the cached probe faces in the data dir, or in the database, CONTRACTS ### 13) answers
the same calls the same way on files and on PostgreSQL (tests/pg_fixtures.py, as the app's role)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from bot.config import Settings
from bot.oversight.retention import purge_expired
from bot.store.backend import Backend

SHEET = b"\xff\xd8\xff\xe0 a comparison sheet"


@pytest.fixture(params=["file", "postgresql"])
def backend_at(request, tmp_path) -> Iterator[Callable[[Path], Backend]]:
    """Backends of one department's store; on PostgreSQL each data dir is another machine's (the CLI's, a
    replica's), on files they are the one data dir."""
    env = {}
    if request.param == "postgresql":
        env = {"BOT_DATABASE_URL": request.getfixturevalue("pg_migrated").app_url}
    opened: list[Backend] = []

    def at(data_dir: Path) -> Backend:
        opened.append(Backend.of(Settings(data_dir=data_dir if env else tmp_path / "data"), env))
        return opened[-1]

    yield at
    for backend in opened:
        backend.close()


def test_a_sheet_stored_where_the_cli_ran_is_read_where_the_server_runs_until_removed(backend_at, tmp_path):
    cli, server = backend_at(tmp_path / "workstation").sheets(), backend_at(tmp_path / "replica").sheets()
    assert server.get("FR-1") is None and server.remove("FR-1") is False
    cli.put("FR-1", b"first draft")
    cli.put("FR-1", SHEET)  # replaced
    cli.put("FR-2", b"another")
    assert server.get("FR-1") == SHEET
    for bad in ("", "../x", "FR 1", "FR-1/../../etc"):
        with pytest.raises(ValueError):
            cli.put(bad, SHEET)
    assert server.remove("FR-1") is True  # posted: not kept
    assert cli.get("FR-1") is None and server.remove("FR-1") is False
    assert cli.get("FR-2") == b"another"  # the other request's sheet is untouched


def test_a_sheet_no_server_posted_is_purged_after_the_dialog_state_days(backend_at, tmp_path):
    backend = backend_at(tmp_path / "replica")
    sheets = backend.sheets()
    sheets.put("FR-1", SHEET)
    now = datetime.now(UTC)
    assert sheets.purge_before(now - timedelta(hours=1)) == (0, 0)  # not old enough
    assert sheets.get("FR-1") == SHEET
    days = backend.settings.retention.dialog_state_days
    early = purge_expired(backend.settings, now=now + timedelta(days=days - 1), backend=backend)
    assert early.probe_files_removed == 0 and sheets.get("FR-1") == SHEET
    report = purge_expired(backend.settings, now=now + timedelta(days=days, minutes=1), backend=backend)
    assert (report.probe_files_removed, report.probe_bytes_removed) == (1, len(SHEET))
    assert sheets.get("FR-1") is None


def test_the_app_role_may_change_the_sheets_table_but_not_truncate_it(pg_migrated):
    with psycopg.connect(pg_migrated.app_url) as conn:
        for right in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            assert conn.execute("SELECT has_table_privilege(current_user, 'comparison_sheets', %s)",
                                (right,)).fetchone()[0]
        assert not conn.execute("SELECT has_table_privilege(current_user, 'comparison_sheets', 'TRUNCATE')"
                                ).fetchone()[0]
