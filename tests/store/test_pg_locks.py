"""The advisory-lock keys (bot.store.pg.locks): each feature its own, so one never waits on another's lock —
the leader holds its key for as long as it leads, and a shared key would stall every other replica's work."""
from __future__ import annotations

import threading
from datetime import UTC, datetime

import psycopg

from bot.store.pg import locks
from bot.store.pg.audit import PgAuditLog
from bot.store.pg.leader import Leadership
from bot.store.pg.slack import PgOutboxStore


def test_every_lock_key_is_its_own():
    assert len(set(locks.ALL.values())) == len(locks.ALL)


def test_the_leaders_lock_never_holds_up_another_replicas_outbox_claims_or_appends(pg_migrated):
    lead = Leadership(pg_migrated.app_url, "replica-a")
    try:
        assert lead.poll()  # replica A leads, holding its session lock from now on
        connect = lambda: psycopg.connect(pg_migrated.app_url)
        outbox, log = PgOutboxStore(connect), PgAuditLog(connect, key=b"k" * 32)
        outbox.add({"channel": "C1", "thread_ts": "1.0", "message": {"text": "hello"}})
        done: list[object] = []
        worker = threading.Thread(target=lambda: done.extend([
            outbox.claim(datetime.now(UTC), "replica-b"), log.append("audit_access", action="x", query={})]))
        worker.start()
        worker.join(timeout=10)
        assert not worker.is_alive(), "replica B waited on the leader's lock"
        assert len(done[0]) == 1 and done[1]["seq"] == 1
    finally:
        lead.close()
