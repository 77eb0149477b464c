"""Dialogs, claims, reviews and approvals on a real PostgreSQL (tests/pg_fixtures.py) from several replicas at
once, as the app's role: no transition is lost or applied twice, a claim is won once, a stale write is refused."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from bot.config import PolicySettings
from bot.controls import examination
from bot.request.transitions import start_dialog
from bot.store.pg import schema
from bot.store.pg.dialogs import PgDialogStore
from bot.store.pg.records import PgExaminationStore, StaleWrite, write_checked

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
TABLES = ("dialogs", "dialog_images", "dialog_claims", "examinations", "approvals")


def _dialog():
    dialog, _ = start_dialog(channel="C0CASE", thread_ts="1700000000.000100", requester_id="U0OFFICER1",
                             requester_name="Ofc. Reyes", files=[("F1", "a.jpg")], text="call 26-012345", now=T0,
                             policy=PolicySettings())
    return dialog


def _exam():
    exam, _ = examination.queue(request_id="FR-RACE00001", requester_id="U0OFFICER1", call_number="26-012345",
                                purpose="investigation", justification="j", candidates=[], reviewers_required=1,
                                now=T0)
    return exam


def _race(replicas: list, key: str, mark: Callable, marks: Callable, times: int = 50) -> list:
    """Each replica (its own pool) applies `times` transitions to one record at once; what the record holds."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(replicas))

    def replica(n: int, store) -> None:
        def step(record):
            new = record.copy()
            mark(new, f"{n}-{len(marks(record))}")
            time.sleep(0.001)  # widen the read-to-write window: without the row lock, writes would cross
            return new, []
        try:
            start.wait()
            for _ in range(times):
                store.update(key, step)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=replica, args=(n, s)) for n, s in enumerate(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return marks(replicas[0].get(key))


@pytest.mark.parametrize("kind", ["dialog", "examination"])
def test_two_replicas_racing_transitions_on_one_record_lose_none(pg_migrated, kind):
    pools = [ConnectionPool(pg_migrated.app_url, min_size=1, max_size=2, open=True) for _ in range(2)]
    try:
        if kind == "dialog":
            replicas = [PgDialogStore(pool.connection) for pool in pools]
            record, table, key = _dialog(), "dialogs", "dialog_id"
            mark, marks = (lambda d, tag: d.flags.append(tag)), (lambda d: d.flags)
        else:
            replicas = [PgExaminationStore(pool.connection) for pool in pools]
            record, table, key = _exam(), "examinations", "request_id"
            mark, marks = (lambda e, tag: e.source.setdefault("marks", []).append(tag)), \
                (lambda e: e.source.get("marks", []))
        replicas[0].put(record)
        ident = getattr(record, key)
        landed = _race(replicas, ident, mark, marks)
    finally:
        for pool in pools:
            pool.close()
    # Every transition saw the one before it: 100 marks, each replica's numbered by what it read, none repeated.
    assert len(landed) == 100 and len(set(landed)) == 100
    assert sorted(int(tag.split("-")[1]) for tag in landed) == list(range(100))
    with psycopg.connect(pg_migrated.app_url) as app:
        version = app.execute(f"SELECT version FROM {table} WHERE {key} = %s", (ident,)).fetchone()[0]
    assert version == 101  # the put, then one checked write per transition


def _claim_at_once(db, key: str, replicas: int = 8) -> list[bool]:
    """What each of `replicas` stores (each its own connection) is told, claiming `key` at the same moment."""
    start, won = threading.Barrier(replicas), []

    def replica(store: PgDialogStore) -> None:
        start.wait()
        won.append(store.claim(key, T0))

    threads = [threading.Thread(target=replica, args=(PgDialogStore(lambda: psycopg.connect(db.app_url)),))
               for _ in range(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won


def test_one_claim_key_offered_by_8_replicas_at_once_is_won_once(pg_migrated):
    for round_ in range(5):
        assert sorted(_claim_at_once(pg_migrated, f"event:Ev{round_}")) == [False] * 7 + [True]
    assert PgDialogStore(lambda: psycopg.connect(pg_migrated.app_url)).claimed("event:Ev4")


def test_a_write_over_a_version_it_did_not_read_is_refused(pg_migrated):
    store = PgDialogStore(lambda: psycopg.connect(pg_migrated.app_url))
    dialog = _dialog()
    store.put(dialog)
    store.put(dialog)  # version 2
    with psycopg.connect(pg_migrated.app_url) as app, pytest.raises(StaleWrite, match="version 1"):
        write_checked(app, "dialogs", "dialog_id", dialog.dialog_id, 1, "terminal = %s", (True,))
    assert store.active() == [dialog]


def test_the_app_role_reads_and_writes_these_records_and_nothing_more(pg_migrated):
    with psycopg.connect(pg_migrated.app_url, autocommit=True) as app:
        assert app.execute("SELECT current_user").fetchone()[0] == schema.APP_ROLE
        for table in TABLES:
            for right, granted in (("SELECT", True), ("INSERT", True), ("UPDATE", True), ("DELETE", True),
                                   ("TRUNCATE", False), ("REFERENCES", False), ("TRIGGER", False)):
                query = "SELECT has_table_privilege(current_user, %s, %s)"
                assert app.execute(query, (table, right)).fetchone()[0] is granted, (table, right)
        assert schema.app_rights_problems(app) == []  # the audit table is still read-and-append only
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("DROP TABLE dialog_claims")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("ALTER TABLE dialogs DROP COLUMN version")
