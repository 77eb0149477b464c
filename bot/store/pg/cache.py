"""Replay claims, cached probes and the small records in PostgreSQL (`replay_claims`, `probe_cache`,
`small_records`, migrations/002_slack.sql): the same calls, with the same answers, as bot.store.replays,
bot.store.probes and bot.store.small_records, seen alike by every replica.

- Replay claims: a claim is one `INSERT … ON CONFLICT` that takes the key only when it is new or expired, so
  the same signed request reaching two replicas is applied once. `remember` stays in this process's memory
  (the ack path must not wait for the database); `persist` writes it. Expired rows are deleted now and then.
- Probe cache: the same npz bytes the file holds, one row per request.
- Comparison sheets of CLI reviews (`comparison_sheets`): the JPEG the command line made, one row per request,
  until the server posts it.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bot.store.probes import CachedProbe, checked_id, probe_bytes, probe_from
from bot.store.replays import COMPACT_AFTER, TTL_S, check_key
from bot.store.small_records import checked_name

log = logging.getLogger(__name__)


class PgReplayClaims:
    """`seen(key, now)` and `claim(key, now)`, thread-safe, shared by every replica; `now` in epoch seconds."""

    def __init__(self, connect: Callable[[], Any], ttl: float = TTL_S) -> None:
        self._connect = connect
        self.ttl = ttl
        self._lock = threading.Lock()
        self._remembered: dict[str, float] = {}  # claims of this process not known to be persisted yet
        self._persisted = 0

    def _fresh_here(self, key: str, now: float) -> bool:
        with self._lock:
            at = self._remembered.get(key)
            return at is not None and now - at <= self.ttl

    def seen_here(self, key: str, now: float) -> bool:
        """Whether this process claimed `key` within the last `ttl` seconds (memory only: no database read)."""
        return self._fresh_here(key, now)

    def seen(self, key: str, now: float) -> bool:
        """Whether `key` was claimed within the last `ttl` seconds (by any replica)."""
        if self._fresh_here(key, now):
            return True
        with self._connect() as conn:
            row = conn.execute("SELECT EXISTS (SELECT 1 FROM replay_claims WHERE key = %s "
                               "AND at >= to_timestamp(%s))", (key, now - self.ttl)).fetchone()
        return bool(row[0])

    def claim(self, key: str, now: float) -> bool:
        """Handled now, in memory and in the database. True when this is the key's first claim within `ttl` on
        any replica (False: another claimed it first, and nothing changes)."""
        check_key(key)
        if self._fresh_here(key, now):
            return False
        with self._connect() as conn:
            row = conn.execute(
                "INSERT INTO replay_claims (key, at) VALUES (%s, to_timestamp(%s)) ON CONFLICT (key) DO UPDATE "
                "SET at = EXCLUDED.at WHERE replay_claims.at < EXCLUDED.at - make_interval(secs => %s) RETURNING key",
                (key, now, self.ttl)).fetchone()
        if row is not None:
            self.remember(key, now)
        return row is not None

    def remember(self, key: str, now: float) -> None:
        """Handled now, in this process's memory (cheap: the ack path calls it; `persist` follows in a thread)."""
        check_key(key)
        with self._lock:
            self._remembered[key] = now

    def persist(self, key: str, now: float) -> None:
        """Write the claim to the database, so every replica and a restart know it. A database that cannot take
        it leaves the claim in memory only (logged): refusing the request instead would lose an officer's input."""
        try:
            with self._connect() as conn:
                conn.execute("INSERT INTO replay_claims (key, at) VALUES (%s, to_timestamp(%s)) ON CONFLICT (key) "
                             "DO UPDATE SET at = greatest(replay_claims.at, EXCLUDED.at)", (key, now))
                self._persisted += 1
                if self._persisted >= COMPACT_AFTER:
                    conn.execute("DELETE FROM replay_claims WHERE at < to_timestamp(%s)", (now - self.ttl,))
                    self._persisted = 0
        except psycopg.Error as exc:
            log.error("a replay claim could not be saved (%s): it holds in this process only", type(exc).__name__)
            return
        with self._lock:
            self._remembered = {k: at for k, at in self._remembered.items() if now - at <= self.ttl}


class _PgRequestRows:
    """One bytea row per request in `table` (request_id, data, stored_at): the rows behind the files of
    bot.store.probes, one folder there, a table per kind here."""

    table = ""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect

    def _write(self, request_id: str, data: bytes) -> None:
        with self._connect() as conn:
            conn.execute(f"INSERT INTO {self.table} (request_id, data) VALUES (%s, %s) ON CONFLICT (request_id) "
                         "DO UPDATE SET data = EXCLUDED.data, stored_at = now()", (checked_id(request_id), data))

    def _read(self, request_id: str) -> bytes | None:
        with self._connect() as conn:
            row = conn.execute(f"SELECT data FROM {self.table} WHERE request_id = %s",
                               (checked_id(request_id),)).fetchone()
        return None if row is None else bytes(row[0])

    def remove(self, request_id: str) -> bool:
        """Delete one request's row; True when there was one."""
        with self._connect() as conn:
            return conn.execute(f"DELETE FROM {self.table} WHERE request_id = %s",
                                (checked_id(request_id),)).rowcount > 0

    def purge_before(self, cutoff: datetime) -> tuple[int, int]:
        """Delete the rows stored before `cutoff`; returns (rows removed, bytes removed)."""
        with self._connect() as conn:
            rows = conn.execute(f"DELETE FROM {self.table} WHERE stored_at < %s RETURNING octet_length(data)",
                                (cutoff,)).fetchall()
        return len(rows), sum(r[0] for r in rows)


class PgProbeCache(_PgRequestRows):
    """The per-request probe analyses in `probe_cache`."""

    table = "probe_cache"

    def put(self, request_id: str, probe: CachedProbe) -> None:
        """Store (or replace) the analysis of one request's photo."""
        self._write(request_id, probe_bytes(probe))

    def get(self, request_id: str) -> CachedProbe | None:
        """The stored analysis, or None when there is none (or it is unreadable)."""
        data = self._read(request_id)
        return None if data is None else probe_from(data)


class PgSheetCache(_PgRequestRows):
    """The comparison sheets of CLI reviews in `comparison_sheets` (bot.store.probes.SheetCache's calls), until a
    server posts them (then removed) or the purge takes them."""

    table = "comparison_sheets"

    def put(self, request_id: str, jpeg: bytes) -> None:
        """Store (or replace) one request's comparison sheet."""
        self._write(request_id, jpeg)

    def get(self, request_id: str) -> bytes | None:
        """The sheet's JPEG bytes, or None when there is none."""
        return self._read(request_id)


class PgSmallRecords:
    """The small records in `small_records`: one JSON document per (namespace, key)."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect

    def get(self, namespace: str, key: str) -> dict[str, Any] | None:
        """The record, or None when there is none; ValueError when it is not a JSON object."""
        with self._connect() as conn:
            row = conn.execute("SELECT doc FROM small_records WHERE namespace = %s AND key = %s",
                               (checked_name(namespace), checked_name(key))).fetchone()
        if row is not None and not isinstance(row[0], dict):
            raise ValueError(f"the record {namespace}/{key} is not a JSON object")
        return None if row is None else row[0]

    def put(self, namespace: str, key: str, doc: dict[str, Any]) -> None:
        """Store (or replace) one record."""
        with self._connect() as conn:
            conn.execute("INSERT INTO small_records (namespace, key, doc) VALUES (%s, %s, %s) ON CONFLICT "
                         "(namespace, key) DO UPDATE SET doc = EXCLUDED.doc, updated_at = now()",
                         (checked_name(namespace), checked_name(key), Jsonb(doc)))

    def remove(self, namespace: str, key: str) -> bool:
        """Forget one record; True when there was one."""
        with self._connect() as conn:
            return conn.execute("DELETE FROM small_records WHERE namespace = %s AND key = %s",
                                (checked_name(namespace), checked_name(key))).rowcount > 0
