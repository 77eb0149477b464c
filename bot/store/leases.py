"""Leases on work in flight (CONTRACTS ### 13): whoever works on something (a search, a post) holds a 30 s lease on
its key and renews it while it runs; the leader resumes only work whose lease expired (its holder died).

A lease is taken only when the key is free or its lease has expired, by one statement the store runs atomically
(an upsert whose update applies only to an expired row), so of any number of replicas or threads taking one key at
once exactly one wins. Renewing needs the lease to be still held and unexpired: once expired it may already be
someone else's, and the old holder must stop. The leader's round: `expired(now)`, then `take` each key (which
fails if another got there first).

The statements are written once here for both stores: `FileLeases`, a SQLite file in the data dir (one process
on it; leases survive a restart, so work cut off by a crash is found expired afterwards), and
bot.store.pg.leases.PgLeases for replicas on PostgreSQL.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.audit.entries import as_utc

TTL_S = 30.0  # CONTRACTS ### 13: work in flight holds a 30 s lease
TABLE = "work_leases"
_TAKE = (f"INSERT INTO {TABLE} (key, holder, expires_at) VALUES ({{key}}, {{holder}}, {{until}}) "
         f"ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
         f"WHERE {TABLE}.expires_at <= {{now}} RETURNING key")
_RENEW = (f"UPDATE {TABLE} SET expires_at = {{until}} WHERE key = {{key}} AND holder = {{holder}} "
          f"AND expires_at > {{now}} RETURNING key")
_RELEASE = f"DELETE FROM {TABLE} WHERE key = {{key}} AND holder = {{holder}} RETURNING key"
_EXPIRED = f"SELECT key FROM {TABLE} WHERE expires_at <= {{now}} ORDER BY expires_at, key"
_HELD = f"SELECT key FROM {TABLE} WHERE key = {{key}} AND expires_at > {{now}}"


class Leases:
    """The lease rules over one SQL table; a store gives `_rows` (run one statement, committed) and `_param`
    (how a named parameter is written) and `_time` (how a moment is stored)."""

    def take(self, key: str, holder: str, now: datetime, ttl_s: float = TTL_S) -> bool:
        """Take the lease on `key` for `ttl_s` seconds from `now`, only when it is free or expired."""
        return bool(self._run(_TAKE, key=key, holder=holder, until=self._time(now, ttl_s), now=self._time(now)))

    def renew(self, key: str, holder: str, now: datetime, ttl_s: float = TTL_S) -> bool:
        """Extend `holder`'s lease to `ttl_s` seconds from `now`; False when it is not theirs or has expired (stop:
        the work may be resumed elsewhere)."""
        return bool(self._run(_RENEW, key=key, holder=holder, until=self._time(now, ttl_s), now=self._time(now)))

    def release(self, key: str, holder: str) -> bool:
        """End `holder`'s lease on `key` (the work is done); False when it was not theirs."""
        return bool(self._run(_RELEASE, key=key, holder=holder))

    def held(self, key: str, now: datetime) -> bool:
        """Whether someone holds an unexpired lease on `key` at `now` (work on it is in flight somewhere)."""
        return bool(self._run(_HELD, key=key, now=self._time(now)))

    def expired(self, now: datetime) -> list[str]:
        """Keys whose lease has run out by `now`, oldest first: work whose holder stopped renewing."""
        return [row[0] for row in self._run(_EXPIRED, now=self._time(now))]

    def _run(self, sql: str, **params: Any) -> list[tuple]:
        return self._rows(sql.format(**{name: self._param(name) for name in params}), params)

    def _rows(self, sql: str, params: Mapping[str, Any]) -> list[tuple]:
        raise NotImplementedError

    def _param(self, name: str) -> str:
        raise NotImplementedError

    def _time(self, now: datetime, plus_s: float = 0.0) -> Any:
        raise NotImplementedError


class FileLeases(Leases):
    """Leases in a SQLite file (created 0600). Safe to share between threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA synchronous=FULL")  # a taken lease survives a crash
        self._db.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (key TEXT PRIMARY KEY, holder TEXT NOT NULL, "
                         "expires_at REAL NOT NULL)")
        self._lock = threading.Lock()

    def _rows(self, sql: str, params: Mapping[str, Any]) -> list[tuple]:
        with self._lock:  # one statement at a time on the shared connection; SQLite serialises processes
            return self._db.execute(sql, dict(params)).fetchall()

    def _param(self, name: str) -> str:
        return f":{name}"

    def _time(self, now: datetime, plus_s: float = 0.0) -> float:
        return as_utc(now).timestamp() + plus_s

    def close(self) -> None:
        """Close the file."""
        self._db.close()

