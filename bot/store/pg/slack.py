"""The dispatch channel's call index and the outbox in PostgreSQL (`call_index`, `outbox`,
migrations/002_slack.sql): the same calls, with the same answers, as bot.store.calls' files, for any number of
replicas.

The outbox is posted exactly once (CONTRACTS ### 13): `claim` locks the rows it hands out with
`FOR UPDATE SKIP LOCKED` (two replicas claiming at once never get one post) and leases each to its holder; a
lapsed lease (the holder died mid-post) is claimable again, marked `_lapsed`. Claims are also serialised by a
transaction-level advisory lock, held for milliseconds, so that "an earlier post to the same thread is held"
is always seen as committed: a thread keeps its order across replicas.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from bot.store.calls import CLAIM_LIMIT, LEASE_S, destination, with_post_id
from bot.store.pg import locks

# pg_advisory_xact_lock's key for outbox claims (any fixed number no other program on the database uses).
CLAIM_LOCK = locks.OUTBOX_CLAIM


class PgCallIndexStore:
    """The call-number index in PostgreSQL: one row per call number."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect

    def all(self) -> list[dict[str, Any]]:
        """Every record ({call_number, thread_ts, first_seen, source})."""
        with self._connect() as conn:
            rows = conn.execute("SELECT call_number, thread_ts, first_seen, source FROM call_index "
                                "ORDER BY call_number").fetchall()
        return [{"call_number": c, "thread_ts": t, "first_seen": f, "source": s} for c, t, f, s in rows]

    def get(self, call_number: str) -> dict[str, Any] | None:
        """The record of one call number (another replica may have indexed it), or None."""
        with self._connect() as conn:
            row = conn.execute("SELECT call_number, thread_ts, first_seen, source FROM call_index "
                               "WHERE call_number = %s", (call_number,)).fetchone()
        return None if row is None else dict(zip(("call_number", "thread_ts", "first_seen", "source"), row))

    def put(self, records: list[dict[str, Any]]) -> None:
        """Write `records`, each replacing whatever its call number had (one transaction)."""
        if not records:
            return
        with self._connect() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO call_index (call_number, thread_ts, first_seen, source) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (call_number) DO UPDATE SET thread_ts = EXCLUDED.thread_ts, "
                "first_seen = EXCLUDED.first_seen, source = EXCLUDED.source",
                [(r["call_number"], r["thread_ts"], r["first_seen"], r.get("source", "")) for r in records])

    def remove(self, call_numbers: list[str]) -> None:
        """Forget these call numbers."""
        if call_numbers:
            with self._connect() as conn:
                conn.execute("DELETE FROM call_index WHERE call_number = ANY(%s)", (list(call_numbers),))

    def close(self) -> None:
        """Nothing to close: each call takes a connection and gives it back."""


class PgOutboxStore:
    """Posts waiting for Slack, oldest first by their id, shared by every replica."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect

    @staticmethod
    def _count(conn: Any) -> int:
        return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def add(self, doc: dict[str, Any]) -> int:
        """Queue one post (given a `post_id`; one already queued is not queued again); returns how many are
        queued now."""
        doc = with_post_id(doc)
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO outbox (post_id, dest, doc, attempts, last_error, queued_at) "
                "VALUES (%s, %s, %s, %s, %s, coalesce(%s::timestamptz, now())) ON CONFLICT (post_id) DO NOTHING",
                (doc["post_id"], destination(doc), Jsonb(doc), int(doc.get("attempts") or 0), doc.get("last_error"),
                 doc.get("queued_at") or None))
            return self._count(conn)

    def count(self) -> int:
        """How many posts are queued."""
        with self._connect() as conn:
            return self._count(conn)

    def has_call(self, call_number: str) -> bool:
        """Whether a call-thread post of `call_number` is queued."""
        with self._connect() as conn:
            return bool(conn.execute("SELECT EXISTS (SELECT 1 FROM outbox WHERE doc->'call_number' = %s)",
                                     (Jsonb(call_number),)).fetchone()[0])

    def has_thread(self, channel: str, thread_ts: str | None) -> bool:
        """Whether a post in the request thread (channel, thread_ts) is queued."""
        with self._connect() as conn:
            return bool(conn.execute(
                "SELECT EXISTS (SELECT 1 FROM outbox WHERE doc->'channel' = %s AND doc->'thread_ts' = %s)",
                (Jsonb(channel), Jsonb(thread_ts))).fetchone()[0])

    def all(self) -> list[dict[str, Any]]:
        """The queued posts, oldest first, each with its id as `_id`."""
        with self._connect() as conn:
            rows = conn.execute("SELECT id, doc FROM outbox ORDER BY id").fetchall()
        return [{**doc, "_id": doc_id} for doc_id, doc in rows]

    def claim(self, now: datetime, holder: str, lease_s: float = LEASE_S, limit: int = CLAIM_LIMIT,
              ids: list[int] | None = None) -> list[dict[str, Any]]:
        """Up to `limit` queued posts (of `ids`, when given) nobody holds (no lease, or one lapsed by `now`),
        oldest first, each now leased to `holder` for `lease_s` seconds; as `all` gives them, plus `_lapsed` (a
        lease had lapsed: its sender may have posted it). A post waits while an earlier one to the same thread
        is held."""
        with self._connect() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (CLAIM_LOCK,))
            rows = conn.execute(
                "WITH free AS ("
                " SELECT o.id, o.lease_until IS NOT NULL AS lapsed FROM outbox o"
                " WHERE (o.lease_until IS NULL OR o.lease_until <= %(now)s)"
                "  AND (%(ids)s::bigint[] IS NULL OR o.id = ANY(%(ids)s::bigint[]))"
                "  AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.dest = o.dest AND e.id < o.id"
                "                  AND e.lease_until > %(now)s)"
                " ORDER BY o.id LIMIT %(limit)s FOR UPDATE OF o SKIP LOCKED) "
                "UPDATE outbox t SET lease_until = %(until)s, leased_by = %(holder)s FROM free WHERE t.id = free.id "
                "RETURNING t.id, t.doc, free.lapsed",
                {"now": now, "until": now + timedelta(seconds=lease_s), "holder": holder, "limit": limit,
                 "ids": None if ids is None else list(ids)},
            ).fetchall()
        return [{**doc, "_id": doc_id, "_lapsed": lapsed} for doc_id, doc, lapsed in sorted(rows, key=lambda r: r[0])]

    def update(self, doc_id: int, fields: dict[str, Any]) -> None:
        """Change fields of one queued post (attempts, last error); its lease ends (the try is over)."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE outbox SET doc = doc || %(f)s, lease_until = NULL, leased_by = NULL, "
                "attempts = coalesce(((doc || %(f)s)->>'attempts')::integer, attempts), "
                "last_error = (doc || %(f)s)->>'last_error' WHERE id = %(id)s",
                {"f": Jsonb(fields), "id": doc_id})

    def release(self, doc_id: int) -> None:
        """End the lease on one queued post, untried (another sender may take it at once)."""
        with self._connect() as conn:
            conn.execute("UPDATE outbox SET lease_until = NULL, leased_by = NULL WHERE id = %s", (doc_id,))

    def remove(self, doc_id: int) -> int:
        """Drop one queued post (delivered, or refused for good); returns how many are queued now."""
        with self._connect() as conn:
            conn.execute("DELETE FROM outbox WHERE id = %s", (doc_id,))
            return self._count(conn)

    def purge_before(self, cutoff: datetime) -> int:
        """Drop posts queued before `cutoff` (never delivered within the dialog-state retention); returns how
        many. A post some replica holds right now is left to it."""
        with self._connect() as conn:
            cur = conn.execute("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE queued_at < %s "
                               "FOR UPDATE SKIP LOCKED)", (cutoff,))
            return cur.rowcount

    def close(self) -> None:
        """Nothing to close: each call takes a connection and gives it back."""
