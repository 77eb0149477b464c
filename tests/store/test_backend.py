"""bot.store.backend: files unless a database is named; on PostgreSQL the audit key only from the environment, and
a server refused on another schema version or a role that could rewrite the audit log (CONTRACTS ### 13)."""
from __future__ import annotations

import psycopg
import pytest

from bot.config import Settings
from bot.slack.server import serve
from bot.store.audit_log import AuditKeyError, AuditLog
from bot.store.backend import Backend, StoreError
from bot.store.pg import schema
from bot.store.pg.audit import PgAuditLog

KEY = "a-key-for-this-test-0123456789abcdef"


def test_with_no_database_named_the_records_are_the_data_dirs_files(tmp_path):
    backend = Backend.of(Settings(data_dir=tmp_path), {})
    assert not backend.shared and backend.name == "files"
    backend.check_ready()  # nothing to check
    log = backend.audit_log()
    assert isinstance(log, AuditLog) and log.key_source == "file"  # a key file beside the log, as always
    with pytest.raises(StoreError):
        backend.pool  # noqa: B018


def test_bot_database_url_wins_over_the_settings_and_the_audit_lives_in_the_database(tmp_path, pg_migrated):
    settings = Settings(data_dir=tmp_path)
    settings = settings.__class__(**{**settings.__dict__,
                                     "store": settings.store.__class__(url="postgresql://nobody@/nowhere")})
    backend = Backend.of(settings, {"BOT_DATABASE_URL": pg_migrated.app_url, "BOT_AUDIT_KEY": KEY})
    try:
        assert backend.shared and backend.name == "postgresql" and pg_migrated.app_url not in repr(backend)
        backend.check_ready()
        log = backend.audit_log()
        assert isinstance(log, PgAuditLog) and log.key_source == "env"
        entry = log.append("audit_access", actor={"id": "U1"}, action="export", query={})
        with psycopg.connect(pg_migrated.app_url) as conn:
            assert conn.execute("SELECT seq, mac FROM audit_entries").fetchall() == [(1, entry["mac"])]
        assert not (tmp_path / "audit").exists()  # nothing written beside it
    finally:
        backend.close()


@pytest.fixture
def backend_for(tmp_path):
    """backend_for(env) -> a Backend on `tmp_path` with this environment, closed after the test."""
    made: list[Backend] = []

    def make(env: dict[str, str]) -> Backend:
        made.append(Backend.of(Settings(data_dir=tmp_path), env))
        return made[-1]

    yield make
    for backend in made:
        backend.close()


@pytest.mark.parametrize("value", [None, "short"])
def test_on_a_database_the_audit_key_comes_only_from_the_environment(tmp_path, pg_migrated, backend_for, value):
    backend = backend_for({"BOT_DATABASE_URL": pg_migrated.app_url, **({"BOT_AUDIT_KEY": value} if value else {})})
    with pytest.raises(AuditKeyError, match="BOT_AUDIT_KEY") as refused:
        backend.audit_log()
    assert ("shorter than" in str(refused.value)) == bool(value)
    assert not (tmp_path / "audit" / "audit.key").exists()  # never a key file on one replica's disk


def test_a_database_at_another_schema_version_is_refused_naming_store_migrate(pg_database, backend_for):
    app = {"BOT_DATABASE_URL": pg_database.app_url}
    with pytest.raises(StoreError, match="store migrate") as empty:
        backend_for(app).check_ready()
    assert "has no schema yet" in str(empty.value)
    with psycopg.connect(pg_database.owner_url, autocommit=True) as owner:
        schema.migrate(owner)
        backend_for(app).check_ready()  # this version's schema: served
        # A newer version of the bot migrated it further (an upgrade rolled back on this replica).
        owner.execute("INSERT INTO frbot_schema (version, name) VALUES (999, 'from_a_newer_bot')")
    with pytest.raises(StoreError, match="store migrate") as ahead:
        backend_for(app).check_ready()
    assert "schema version 999" in str(ahead.value)


def test_a_role_that_could_change_the_audit_log_is_refused(pg_migrated, backend_for):
    # The owner may UPDATE, DELETE and TRUNCATE (the triggers stop it, but a server must not even hold the right).
    with pytest.raises(StoreError, match="frbot_app") as refused:
        backend_for({"BOT_DATABASE_URL": pg_migrated.owner_url}).check_ready()
    assert all(right in str(refused.value) for right in ("UPDATE", "DELETE", "TRUNCATE"))


def test_serve_on_an_unmigrated_database_exits_1_with_the_sentence_and_no_url(tmp_path, pg_database, monkeypatch,
                                                                               capsys):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "secret")
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api/")  # never reached: start-up stops first
    monkeypatch.setenv("BOT_AUDIT_KEY", KEY)
    monkeypatch.setenv("BOT_DATABASE_URL", pg_database.app_url)
    assert serve(Settings(data_dir=tmp_path / "data")) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: The database has no schema yet") and "store migrate" in err
    assert pg_database.app_url not in err


def test_a_command_on_an_unmigrated_database_is_one_sentence(tmp_path, pg_database, monkeypatch, capsys):
    from bot.cli.main import main

    monkeypatch.setenv("BOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BOT_AUDIT_KEY", KEY)
    monkeypatch.setenv("BOT_DATABASE_URL", pg_database.app_url)
    assert main(["audit", "verify"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: The database has no schema yet") and pg_database.app_url not in err


def test_audit_verify_reads_the_database_chain(tmp_path, pg_migrated, monkeypatch, capsys):
    from bot.cli.main import main

    log = PgAuditLog(lambda: psycopg.connect(pg_migrated.app_url), key=KEY.encode())
    last = [log.append("audit_access", actor={"id": f"U{i}"}, action="export", query={}) for i in range(3)][-1]
    monkeypatch.setenv("BOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BOT_AUDIT_KEY", KEY)
    monkeypatch.setenv("BOT_DATABASE_URL", pg_migrated.app_url)
    assert main(["audit", "verify"]) == 0
    out = capsys.readouterr().out
    assert f"3 entries; last entry 3 (head 3:{last['mac']})" in out
    with psycopg.connect(pg_migrated.admin_url, autocommit=True) as admin:  # a DBA edits an entry by hand
        admin.execute("ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_append_only")
        admin.execute("UPDATE audit_entries SET line = convert_to(replace(convert_from(line, 'UTF8'), '\"U1\"', "
                      "'\"U7\"'), 'UTF8') WHERE seq = 2")
    assert main(["audit", "verify"]) == 1
    assert "BROKEN at entry 2" in capsys.readouterr().err
