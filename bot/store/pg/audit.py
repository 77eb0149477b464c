"""The audit log in PostgreSQL (`audit_entries`, bot/store/pg/migrations/001_audit.sql): the same HMAC chain,
entry for entry and byte for byte, as the file log (bot.store.audit_log), so a copy verifies to the same head.

Appends from any number of replicas are serialised in the database: each runs in one transaction that first
takes a transaction-level advisory lock, reads the head, and inserts the next entry (the primary key on `seq`
and the unique `mac` would refuse a fork even without the lock). Each row keeps the exact bytes its MAC covers
(`line`), and readers and `verify` work from those bytes with bot.audit.chain, as they do on the file.

Purge (`purge_before`, the file log's semantics and return value): in one transaction under the append lock, the
chain is verified, the `purge` entry appended and the purge marker (anchor, bot.audit.purge) handed to
`frbot_purge_audit_through` (migrations/002_audit_purge.sql), a SECURITY DEFINER function: the app's role can never
DELETE. The function removes the contiguous prefix only when all of it is older than the cutoff and the cutoff
keeps the 365-day floor, whatever the caller asks, and stores the marker in `audit_anchors`, which the app may only
read. Readers start the chain from the newest marker, as the file log starts from its first line.

Under way (issue 17): the server and the CLI still open the file log.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg

from bot import wording
from bot.audit.chain import (
    ANCHOR_KIND,
    GENESIS,
    ChainCheck,
    VerifyResult,
    canonical,
    entry_mac,
    head_matches,
    is_int,
    mac_matches,
    parse_line,
    signed_copy,
)
from bot.audit.entries import checked_body, iso_utc
from bot.audit.purge import PurgeTally
from bot.config import MIN_AUDIT_RETENTION_DAYS
from bot.store.audit_log import MIN_KEY_CHARS, AuditError, AuditKeyError, EntryQuery, HeadCheck
from bot.store.pg import locks

# pg_advisory_xact_lock's key for appends (any fixed number no other program on the database uses).
APPEND_LOCK = locks.AUDIT_APPEND


class PgAuditLog:
    """The audit log of one PostgreSQL database; `connect()` gives a new connection (a pool's, or psycopg's)."""

    def __init__(self, connect: Callable[[], Any], *, key: bytes,
                 clock: Callable[[], datetime] | None = None) -> None:
        if len(key) < MIN_KEY_CHARS:
            raise AuditKeyError(f"the audit key must be at least {MIN_KEY_CHARS} bytes")
        self._connect = connect
        self._key = key
        self._clock = clock or (lambda: datetime.now(UTC))
        self.key_source = "env"  # on a database the key comes only from BOT_AUDIT_KEY (bot.store.backend)
        # Called with each entry once it is committed (the server's metrics); it must not raise.
        self.on_append: Callable[[dict], None] | None = None

    def __repr__(self) -> str:  # never shows the key
        return "PgAuditLog()"

    def _mac(self, obj: Mapping[str, Any]) -> str:
        return entry_mac(self._key, obj)

    def sign(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """`body` with a `mac` made with the log's key, as the file log's `sign` (side records, never entries)."""
        return signed_copy(self._key, body)

    def signed(self, obj: Mapping[str, Any]) -> bool:
        """Whether `obj` carries a `mac` made with this log's key (see `sign`)."""
        return mac_matches(self._key, obj)

    def side_file_entries(self) -> list[tuple[str, int]]:
        """Entries set aside beside the log: none here (a row is committed whole or not at all; no torn tail)."""
        return []

    def verified_prefix(self) -> tuple[int, str] | None:
        """The file log remembers how far it verified; the database's log is checked whole by `verify` (None)."""
        return None

    def _head(self, conn: Any) -> tuple[int, str]:
        """(seq, mac) of the last entry, or (0, GENESIS); refuses to extend an entry this key did not sign."""
        row = conn.execute("SELECT seq, line FROM audit_entries ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None:
            return 0, GENESIS
        obj = parse_line(bytes(row[1]))
        if obj is None or obj.get("seq") != row[0]:
            raise AuditError(f"audit entry {row[0]} in the database is not readable; run `python -m bot audit verify`")
        if not mac_matches(self._key, obj):
            raise AuditKeyError("the last audit entry does not verify with this key (BOT_AUDIT_KEY changed?); "
                                "refusing to append. Run `python -m bot audit verify`.")
        return row[0], obj["mac"]

    def append(self, kind: str, **fields: Any) -> dict:
        """Append one entry (committed when this returns); returns it with seq, ts, prev and mac."""
        body = checked_body(kind, fields)
        with self._connect() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK,))
            seq, prev = self._head(conn)
            entry = self.sign({**body, "kind": kind, "seq": seq + 1, "ts": iso_utc(self._clock()), "prev": prev})
            insert_line(conn, entry, canonical(entry))
        if self.on_append is not None:
            self.on_append(entry)
        return entry

    def record_access(self, actor: dict, action: str, query: dict, **fields: Any) -> dict:
        """Audit a read of the audit log (CJIS), as the file log does."""
        return self.append("audit_access", actor=actor, action=action, query=query, **fields)

    def check_writable(self) -> None:
        """AuditError (AuditKeyError for another key) when the next `append` would be refused."""
        with self._connect() as conn:
            self._head(conn)

    def head(self) -> dict[str, Any] | None:
        """{"seq", "mac", "ts"} of the last entry, or None while the log is empty (not checked: see `verify`)."""
        with self._connect() as conn:
            row = conn.execute("SELECT line FROM audit_entries ORDER BY seq DESC LIMIT 1").fetchone()
        obj = parse_line(bytes(row[0])) if row is not None else None
        return None if obj is None else {"seq": obj["seq"], "mac": str(obj.get("mac", "")), "ts": str(obj.get("ts", ""))}

    def last_seq(self) -> int:
        """The seq of the newest entry (0 for an empty log)."""
        with self._connect() as conn:
            return int(conn.execute("SELECT coalesce(max(seq), 0) FROM audit_entries").fetchone()[0])

    def check_head(self, seq: int, mac: str) -> HeadCheck:
        """Whether entry `seq` is still in the log with MAC `mac` (a head published earlier; `mac` may be cut
        to its first 16+ characters): None, "missing", "mismatch" or "purged" as the file log says (the last entry
        a purge removed is checked against the MAC its `purge` entry kept)."""
        mac = mac.strip().lower()
        with self._connect() as conn:
            row = conn.execute("SELECT mac FROM audit_entries WHERE seq = %s", (seq,)).fetchone()
            if row is not None:
                return HeadCheck(seq, mac, None if head_matches(row[0], mac) else "mismatch", actual_mac=row[0])
            last_seq = int(conn.execute("SELECT coalesce(max(seq), 0) FROM audit_entries").fetchone()[0])
            purges = [parse_line(bytes(line)) or {} for (line,) in
                      conn.execute("SELECT line FROM audit_entries WHERE kind = 'purge' ORDER BY seq")]
        through = [p for p in purges if is_int(p.get("through_seq"))]
        for purge in through:
            if purge["through_seq"] == seq:
                actual = str(purge.get("through_mac") or "")
                return HeadCheck(seq, mac, None if head_matches(actual, mac) else "mismatch", actual_mac=actual)
        if through and seq <= max(p["through_seq"] for p in through):
            return HeadCheck(seq, mac, "purged", last_seq, through_seq=max(p["through_seq"] for p in through))
        return HeadCheck(seq, mac, "missing", last_seq)

    def find(self, *, request_id: str | None = None, file_id: str | None = None, call_number: str | None = None,
             requester_id: str | None = None, since: Any = None, until: Any = None,
             kinds: Iterable[str] | None = None) -> list[dict]:
        """Entries matching every filter given, in seq order, as the file log's `find` (the same EntryQuery);
        the time range and the kinds narrow what the database sends."""
        query = EntryQuery.of(request_id=request_id, file_id=file_id, call_number=call_number,
                              requester_id=requester_id, since=since, until=until, kinds=kinds)
        found = []
        for line in self._select(query):
            obj = parse_line(line)
            if obj is not None and query.matches(obj):
                found.append(obj)
        return found

    def find_lines(self, *, since: Any = None, until: Any = None, kinds: Iterable[str] | None = None) -> list[bytes]:
        """The lines of the entries with since <= ts < until of `kinds`, in seq order, unparsed (the file log's
        `find_lines`: a caller that keeps what it made of a line need not parse it again)."""
        return self._select(EntryQuery.of(since=since, until=until, kinds=kinds))

    def _select(self, query: EntryQuery) -> list[bytes]:
        """The lines the database narrows `query` to: the time range on `at` (indexed), the kinds, and for each
        looked-up value the lines holding it as a JSON string (a top-level one or in a list's objects, as
        bot.store.audit_cache.entry_keys finds it); the caller checks each line it parses."""
        where, args = [], []
        if query.since is not None:
            where.append("at >= %s")
            args.append(query.since)
        if query.until is not None:
            where.append("at < %s")
            args.append(query.until)
        if query.kinds is not None:
            where.append("kind = ANY(%s)")
            args.append(sorted(query.kinds))
        for _name, value in sorted(query.keys):
            where.append("position(%s::bytea in line) > 0")
            args.append(json.dumps(value, ensure_ascii=False).encode("utf-8"))
        sql = "SELECT line FROM audit_entries" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY seq"
        with self._connect() as conn:
            return [bytes(line) for (line,) in conn.execute(sql, args).fetchall()]

    @staticmethod
    def _lines(conn: Any) -> Iterator[bytes]:
        """The newest purge marker's line (after a purge), then every entry's exact bytes in seq order: what the file
        log holds, line for line. Within `conn`'s open transaction (a server-side cursor: never held whole)."""
        row = conn.execute("SELECT line FROM audit_anchors ORDER BY purge_seq DESC LIMIT 1").fetchone()
        if row is not None:
            yield bytes(row[0])
        with conn.cursor(name="audit_lines") as cur:
            cur.itersize = 2000
            cur.execute("SELECT line FROM audit_entries ORDER BY seq")
            for (line,) in cur:
                yield bytes(line)

    def lines(self) -> Iterator[bytes]:
        """The log's lines as the file holds them (the purge marker first, if any), from one snapshot."""
        with self._connect() as conn:
            outermost = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            with conn.transaction():
                if outermost:  # inside a caller's transaction (`store copy`) its snapshot already holds
                    # One snapshot for the marker and the entries: a purge committed between them cannot split it.
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                yield from self._lines(conn)

    def entries(self) -> Iterator[dict]:
        """Every entry, in seq order (the purge marker is not one; an unreadable entry is skipped here: `verify`
        reports it)."""
        for line in self.lines():
            obj = parse_line(line)
            if obj is not None and obj.get("kind") != ANCHOR_KIND:
                yield obj

    def verify(self, *, use_prefix: bool = False) -> VerifyResult:
        """The whole chain checked with bot.audit.chain exactly as the file log's: from entry 1, or after a purge
        from the purge marker, which must match the `purge` entry that follows it in the chain. `use_prefix` is
        taken for the file log's signature; every line is checked whatever it says (always right, never less)."""
        return self._check(self.lines())

    def _check(self, lines: Iterable[bytes], on_entry: Callable[[dict], Any] | None = None) -> VerifyResult:
        """`lines` through one ChainCheck; `on_entry` sees each entry once it has verified."""
        check = ChainCheck(self._mac)
        for line in lines:
            failed = check.feed(line)
            if failed is not None:
                return failed
            obj = parse_line(line) if on_entry is not None else None
            if obj is not None and obj.get("kind") != ANCHOR_KIND:
                on_entry(obj)
        return check.finish(torn_tail=False)

    def purge_before(self, cutoff_ts: datetime, actor: str) -> dict:
        """Remove the oldest entries with `ts` before the cutoff and return the `purge` entry appended, as the file
        log's `purge_before` (contiguous prefix, `earlier_purges` carried forward, {"kind": "purge", "removed": 0,
        ...} with nothing written when nothing goes, AuditError for a log that does not verify). Unlike the file,
        the database itself refuses (AuditError) to remove an entry under the 365-day floor, whatever the cutoff."""
        tally = PurgeTally(cutoff_ts)
        with self._connect() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK,))  # no append between check and purge
            result = self._check(self._lines(conn), tally.feed)
            if not result.ok:
                raise AuditError(wording.audit_purge_refused(result.bad_seq, result.reason))
            if not tally.removed:
                return tally.nothing(actor)
            purge, anchor = tally.records(actor, result.last_seq or 0, result.last_mac, self._clock(), self.sign)
            insert_line(conn, purge, canonical(purge))
            try:
                conn.execute("SELECT frbot_purge_audit_through(%s, %s, %s)",
                             (purge["through_seq"], tally.cutoff, canonical(anchor)))
            except psycopg.errors.CheckViolation as exc:  # the floor: the transaction (and the purge entry) rolls back
                raise AuditError(wording.audit_purge_under_floor(purge["cutoff"], MIN_AUDIT_RETENTION_DAYS)) from exc
        return purge


def insert_line(conn: Any, entry: Mapping[str, Any], line: bytes) -> None:
    """Insert one entry: `line`, the exact bytes its MAC covers, and the columns the readers look up by."""
    requester = entry.get("requester")
    conn.execute(
        "INSERT INTO audit_entries (seq, prev, mac, line, kind, at, request_id, call_number, requester_id) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (entry["seq"], entry["prev"], entry["mac"], line, entry["kind"], entry["ts"], entry.get("request_id"),
         entry.get("call_number"), requester.get("id") if isinstance(requester, dict) else None),
    )
