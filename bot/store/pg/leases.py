"""Leases on work in flight for replicas on one PostgreSQL (`work_leases`, migrations/002_audit_purge.sql): the rules
of bot.store.leases, each call one statement in its own transaction, so of replicas taking one key at once exactly
one wins (the upsert's row lock makes the others see the new lease and leave it)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from bot.audit.entries import as_utc
from bot.store.leases import Leases


class PgLeases(Leases):
    """`connect()` gives a new connection (a pool's, or psycopg's), committed on a clean exit."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect

    def _rows(self, sql: str, params: Mapping[str, Any]) -> list[tuple]:
        with self._connect() as conn:
            return conn.execute(sql, params).fetchall()

    def _param(self, name: str) -> str:
        return f"%({name})s"

    def _time(self, now: datetime, plus_s: float = 0.0) -> datetime:
        return as_utc(now) + timedelta(seconds=plus_s)
