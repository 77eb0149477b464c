"""Examiner reviews and CLI approvals in PostgreSQL (`examinations`, `approvals`,
bot/store/pg/migrations/002_records.sql): the file RecordStore's calls, answered the same way, for any number of
replicas on one database. A step (`update`) holds the row (`SELECT ... FOR UPDATE`) and writes only over the
version it read, as the dialogs do (bot/store/pg/dialogs.py).
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic

from psycopg import sql
from psycopg.types.json import Jsonb

from bot.controls.approval import Pending
from bot.controls.examination import Examination
from bot.store.records import R

TABLES = ("examinations", "approvals")


class StaleWrite(RuntimeError):
    """A record changed between its read and its write, which the row lock should make impossible: the write is
    refused (its transaction rolls back) rather than applied over a state it never saw."""


def write_checked(conn: Any, table: str, key: str, value: str, version: int, assignments: str,
                  args: tuple[Any, ...]) -> None:
    """UPDATE the row of `table` whose `key` is `value` (`assignments`, a SET clause's text, with `args`) and
    count one more write, only if it is still at `version`; StaleWrite otherwise."""
    statement = sql.SQL("UPDATE {} SET " + assignments + ", version = version + 1 WHERE {} = %s AND version = %s")
    cur = conn.execute(statement.format(sql.Identifier(table), sql.Identifier(key)), (*args, value, version))
    if cur.rowcount != 1:
        raise StaleWrite(f"{table} {value} changed under its lock (version {version}); nothing was written")


def _ended(record: R) -> datetime | None:
    return datetime.fromisoformat(record.ended_at) if record.ended_at else None


class PgRecordStore(Generic[R]):
    """Records by request id in one table of `TABLES`; `connect()` gives a context-managed connection that
    commits on a clean exit (a psycopg_pool pool's `connection`, or `psycopg.connect`)."""

    table = ""

    def __init__(self, connect: Callable[[], Any], load: Callable[[dict[str, Any]], R]) -> None:
        if self.table not in TABLES:
            raise ValueError(f"a record table is one of {TABLES}")
        self._connect = connect
        self._load = load
        self._name = sql.Identifier(self.table)

    def _sql(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(table=self._name)

    def put(self, record: R) -> None:
        """Insert or replace."""
        with self._connect() as conn:
            conn.execute(self._sql(
                "INSERT INTO {table} (request_id, open, ended_at, doc) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (request_id) DO UPDATE SET open = EXCLUDED.open, ended_at = EXCLUDED.ended_at, "
                "doc = EXCLUDED.doc, version = {table}.version + 1"),
                (record.request_id, record.open, _ended(record), Jsonb(record.to_dict())))

    def get(self, request_id: str) -> R | None:
        """The record of this request, or None."""
        with self._connect() as conn:
            row = conn.execute(self._sql("SELECT doc FROM {table} WHERE request_id = %s"), (request_id,)).fetchone()
        return self._load(row[0]) if row else None

    def update(self, request_id: str, step: Callable[[R], tuple[R, list]]) -> tuple[R, list] | None:
        """Read, transition and write one record as one transaction holding its row; None when there is none."""
        with self._connect() as conn, conn.transaction():
            row = conn.execute(self._sql("SELECT doc, version FROM {table} WHERE request_id = %s FOR UPDATE"),
                               (request_id,)).fetchone()
            if row is None:
                return None
            record = self._load(row[0])
            new, effects = step(record)
            if new.to_dict() != record.to_dict():
                write_checked(conn, self.table, "request_id", request_id, row[1], "(open, ended_at, doc) = "
                              "(%s, %s, %s)", (new.open, _ended(new), Jsonb(new.to_dict())))
            return new, effects

    def _many(self, where: str) -> list[R]:
        with self._connect() as conn:
            rows = conn.execute(self._sql(f"SELECT doc FROM {{table}}{where} ORDER BY added")).fetchall()
        return [self._load(doc) for (doc,) in rows]

    def all(self) -> list[R]:
        """Every record, in the order first stored."""
        return self._many("")

    def open(self) -> list[R]:
        """Records still in progress (a review queued or claimed; a request pending or approved)."""
        return self._many(" WHERE open")

    def delete_ended_before(self, cutoff: datetime) -> int:
        """Remove records that ended before `cutoff` ([retention] dialog_state_days: the audit log keeps what
        happened); returns how many."""
        with self._connect() as conn:
            return conn.execute(self._sql("DELETE FROM {table} WHERE ended_at < %s"), (cutoff,)).rowcount

    def close(self) -> None:
        """Nothing to close: each call borrows a connection and gives it back."""


class PgExaminationStore(PgRecordStore[Examination]):
    """Examiner reviews (`examinations`)."""

    table = "examinations"

    def __init__(self, connect: Callable[[], Any]) -> None:
        super().__init__(connect, Examination.from_dict)


class PgApprovalStore(PgRecordStore[Pending]):
    """CLI requests waiting for a supervisor (`approvals`)."""

    table = "approvals"

    def __init__(self, connect: Callable[[], Any]) -> None:
        super().__init__(connect, Pending.from_dict)
