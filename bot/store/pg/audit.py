"""The audit log in PostgreSQL (`audit_entries`, bot/store/pg/migrations/001_audit.sql): the same HMAC chain,
entry for entry and byte for byte, as the file log (bot.store.audit_log), so a copy verifies to the same head.

Appends from any number of replicas are serialised in the database: each runs in one transaction that first
takes a transaction-level advisory lock, reads the head, and inserts the next entry (the primary key on `seq`
and the unique `mac` would refuse a fork even without the lock). Each row keeps the exact bytes its MAC covers
(`line`), and readers and `verify` work from those bytes with bot.audit.chain, as they do on the file.

Under way (issue 17): append, read and verify are here; the server and the CLI still open the file log.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from bot.audit.chain import GENESIS, ChainCheck, VerifyResult, canonical, parse_line
from bot.audit.entries import checked_body, iso_utc
from bot.store.audit_log import MIN_KEY_CHARS, AuditError, AuditKeyError

# pg_advisory_xact_lock's key for appends (any fixed number no other program on the database uses).
APPEND_LOCK = 37501_0018


class PgAuditLog:
    """The audit log of one PostgreSQL database; `connect()` gives a new connection (a pool's, or psycopg's)."""

    def __init__(self, connect: Callable[[], Any], *, key: bytes,
                 clock: Callable[[], datetime] | None = None) -> None:
        if len(key) < MIN_KEY_CHARS:
            raise AuditKeyError(f"the audit key must be at least {MIN_KEY_CHARS} bytes")
        self._connect = connect
        self._key = key
        self._clock = clock or (lambda: datetime.now(UTC))

    def __repr__(self) -> str:  # never shows the key
        return "PgAuditLog()"

    def _mac(self, obj: Mapping[str, Any]) -> str:
        body = {k: v for k, v in obj.items() if k != "mac"}
        return hmac.new(self._key, canonical(body), hashlib.sha256).hexdigest()

    def _head(self, conn: Any) -> tuple[int, str]:
        """(seq, mac) of the last entry, or (0, GENESIS); refuses to extend an entry this key did not sign."""
        row = conn.execute("SELECT seq, line FROM audit_entries ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None:
            return 0, GENESIS
        obj = parse_line(bytes(row[1]))
        if obj is None or obj.get("seq") != row[0]:
            raise AuditError(f"audit entry {row[0]} in the database is not readable; run `python -m bot audit verify`")
        if not isinstance(obj.get("mac"), str) or not hmac.compare_digest(obj["mac"].encode(), self._mac(obj).encode()):
            raise AuditKeyError("the last audit entry does not verify with this key (BOT_AUDIT_KEY changed?); "
                                "refusing to append. Run `python -m bot audit verify`.")
        return row[0], obj["mac"]

    def append(self, kind: str, **fields: Any) -> dict:
        """Append one entry (committed when this returns); returns it with seq, ts, prev and mac."""
        body = checked_body(kind, fields)
        with self._connect() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK,))
            seq, prev = self._head(conn)
            entry = {**body, "kind": kind, "seq": seq + 1, "ts": iso_utc(self._clock()), "prev": prev}
            entry["mac"] = self._mac(entry)
            requester = entry.get("requester")
            conn.execute(
                "INSERT INTO audit_entries (seq, prev, mac, line, kind, at, request_id, call_number, requester_id) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (entry["seq"], prev, entry["mac"], canonical(entry), kind, entry["ts"], entry.get("request_id"),
                 entry.get("call_number"), requester.get("id") if isinstance(requester, dict) else None),
            )
        return entry

    def head(self) -> dict[str, Any] | None:
        """{"seq", "mac"} of the last entry, or None while the log is empty (not checked: see `verify`)."""
        with self._connect() as conn:
            row = conn.execute("SELECT seq, mac FROM audit_entries ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else {"seq": row[0], "mac": row[1]}

    def lines(self) -> Iterator[bytes]:
        """Every entry's exact bytes, in seq order (a server-side cursor: a large log is never held whole)."""
        with self._connect() as conn, conn.transaction(), conn.cursor(name="audit_lines") as cur:
            cur.itersize = 2000
            cur.execute("SELECT line FROM audit_entries ORDER BY seq")
            for (line,) in cur:
                yield bytes(line)

    def entries(self) -> Iterator[dict]:
        """Every entry, in seq order (an unreadable one is skipped here; `verify` reports it)."""
        for line in self.lines():
            obj = parse_line(line)
            if obj is not None:
                yield obj

    def verify(self) -> VerifyResult:
        """The whole chain checked from its first entry with bot.audit.chain, exactly as the file log's."""
        check = ChainCheck(self._mac)
        for line in self.lines():
            failed = check.feed(line)
            if failed is not None:
                return failed
        return check.finish(torn_tail=False)
