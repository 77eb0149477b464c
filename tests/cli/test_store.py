"""`python -m bot store migrate` against a real PostgreSQL (tests/pg_fixtures.py), and where its URL comes from."""
from __future__ import annotations

import psycopg

from bot import wording
from bot.cli.main import main
from bot.store.pg import schema


def test_store_migrate_builds_the_schema_and_a_second_run_says_there_is_nothing_to_do(pg_database, capsys,
                                                                                     monkeypatch):
    monkeypatch.setenv("BOT_DATABASE_URL", pg_database.owner_url)
    latest = len(schema.migrations())
    assert main(["store", "migrate"]) == 0
    first = capsys.readouterr().out.strip()
    assert first == wording.store_migrated(latest, [f"{m.version:03d}_{m.name}" for m in schema.migrations()])
    assert main(["store", "migrate"]) == 0
    assert capsys.readouterr().out.strip() == wording.store_migrated(latest, [])
    with psycopg.connect(pg_database.app_url) as app:
        assert schema.current_version(app) == latest and schema.app_rights_problems(app) == []


def test_store_migrate_as_the_app_role_is_refused_in_a_sentence_and_changes_nothing(pg_database, capsys,
                                                                                  monkeypatch):
    """The app's role may not create tables: the database's own reason, one line, exit 1, no schema."""
    monkeypatch.setenv("BOT_DATABASE_URL", pg_database.app_url)
    assert main(["store", "migrate"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: The database refused or could not be reached (") and "\n" not in err
    assert "permission denied" in err and pg_database.app_url not in err
    with psycopg.connect(pg_database.owner_url) as owner:
        assert schema.current_version(owner) == 0


def test_store_migrate_without_a_database_says_what_to_set(capsys, monkeypatch):
    monkeypatch.delenv("BOT_DATABASE_URL", raising=False)
    assert main(["store", "migrate"]) == 1
    assert capsys.readouterr().err.strip() == f"error: {wording.STORE_URL_MISSING}"


def test_an_unreachable_database_is_one_sentence(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BOT_DATABASE_URL", f"postgresql://frbot_owner@/frbot?host={tmp_path}")  # no server here
    assert main(["store", "migrate"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: The database refused or could not be reached (") and "Traceback" not in err
