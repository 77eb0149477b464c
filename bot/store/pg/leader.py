"""Which replica leads (CONTRACTS ### 13): the periodic work (ticks, review pings, expiry, purge, chain-head posting,
dispatch backfill) runs on the one replica holding a session advisory lock, `LEADER_KEY`.

The lock lives on the replica's own connection, outside any pool (a pooled session goes to whoever borrows it
next, and its lock with it), in autocommit (no transaction is ever left open on it). The server's periodic task
calls `poll()` every `keepalive_s` seconds, in a thread: it may block while the database is unreachable. Each poll
sends one query, which keeps the connection alive and proves the session (and so the lock) still stands; a
follower tries the lock instead. A failed query drops leadership, closes the connection, and the same poll
connects again and tries the lock: after a database restart one replica takes it again.

Failover: a leader's lock ends with its session. When its process dies the kernel closes the socket and the
server ends the session at once; when its machine or the network goes, TCP keepalives in both directions notice
within `15 - keepalive_s` seconds (the client's libpq options, and this session's server-side `tcp_keepalives_*`
and `tcp_user_timeout`, so the server drops a vanished leader's session and frees the lock). Another replica's next
poll then takes it: within 15 s of the leader's death. A leader that cannot confirm its session for two
keepalives stops claiming leadership (`is_leader`) before the server can have freed the lock for another.

The lock is on the database the URL names: replicas must reach PostgreSQL directly (or through a session-mode
pooler), since a transaction-mode pooler would hand the session to others.
"""
from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from bot.store.pg import locks

# pg_try_advisory_lock's key for leadership (any fixed number no other program on the database uses; below 2**31,
# so pg_locks shows it as objid with classid 0).
LEADER_KEY = locks.LEADER
NOTICE_S = 15  # a dead leader is replaced within this many seconds (CONTRACTS ### 13)
_HOLDS = ("SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
          "AND classid = 0 AND objid = %s AND objsubid = 1 AND granted")


def keepalive_options(keepalive_s: float) -> dict[str, Any]:
    """libpq connection options for a session whose dead peer either side notices within `NOTICE_S - keepalive_s`
    seconds (idle + interval × count, and the same as the server's settings for this session), leaving one poll
    interval for a follower to take the freed lock."""
    budget = max(3, int(NOTICE_S - keepalive_s))
    count = 3
    interval = max(1, budget // 5)
    idle = max(1, budget - count * interval)
    server = {"tcp_keepalives_idle": idle, "tcp_keepalives_interval": interval, "tcp_keepalives_count": count,
              "tcp_user_timeout": budget * 1000}
    return {
        "keepalives": 1, "keepalives_idle": idle, "keepalives_interval": interval, "keepalives_count": count,
        "tcp_user_timeout": budget * 1000, "connect_timeout": max(2, int(keepalive_s)),
        "options": " ".join(f"-c {name}={value}" for name, value in server.items()),
    }


class Leadership:
    """Whether this replica leads, on its own connection to `url`. `poll()` every `keepalive_s` seconds; `close()`
    at shutdown frees the lock at once. Thread-safe."""

    def __init__(self, url: str, replica_id: str, *, keepalive_s: float = 5) -> None:
        self.url = url
        self.replica_id = replica_id
        self.keepalive_s = keepalive_s
        self._conn: psycopg.Connection | None = None
        self._held = False
        self._confirmed = 0.0  # time.monotonic() of the last poll that proved the lock ours
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never shows the URL: it may hold a password
        return f"Leadership({self.replica_id!r}, leader={self.is_leader})"

    @property
    def is_leader(self) -> bool:
        """True while this replica holds the lock, as its last poll found, and that poll is recent: a leader whose
        polls stall (a database gone silent) stops claiming before the server could free the lock for another."""
        return self._held and time.monotonic() - self._confirmed < 2 * self.keepalive_s

    def poll(self) -> bool:
        """Keep the connection alive and the lock held, or try to take it; reconnect once when the connection
        failed. Returns `is_leader`. Never raises for an unreachable database: that is "not leading"."""
        with self._lock:
            if self._conn is not None:
                try:
                    return self._ask()
                except psycopg.Error:
                    self._drop()  # the session is gone, and the lock with it
            try:
                self._conn = psycopg.connect(self.url, autocommit=True, application_name=self.application_name,
                                             **keepalive_options(self.keepalive_s))
                return self._ask()
            except psycopg.Error:
                self._drop()
                return False

    @property
    def application_name(self) -> str:
        """How this replica's leadership session shows in pg_stat_activity (the DBA's view)."""
        return f"frbot leader {self.replica_id}"[:63]

    def _ask(self) -> bool:
        conn = self._conn
        assert conn is not None
        if self._held:
            self._held = bool(conn.execute(_HOLDS, (LEADER_KEY,)).fetchone()[0])
        else:
            self._held = bool(conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_KEY,)).fetchone()[0])
        self._confirmed = time.monotonic()
        return self.is_leader

    def _drop(self) -> None:
        self._held = False
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass  # already broken: closing is all that was left to do

    def close(self) -> None:
        """Give up leadership (another replica takes it at its next poll) and close the connection."""
        with self._lock:
            if self._conn is not None and self._held:
                try:
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (LEADER_KEY,))
                except psycopg.Error:
                    pass  # the session is gone: so is the lock
            self._drop()
