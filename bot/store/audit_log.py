"""The audit log: append-only, HMAC-chained, crash-safe and locked (GO 375.01 D; CJIS 5.4).

File: `data_dir/audit/audit.jsonl` (dir 0700, file 0600), one JSON object per line in canonical form
(keys sorted, compact separators, UTF-8). Every entry carries the caller's fields plus:

- `kind`  one of KINDS; a `search` entry also needs an `outcome` from OUTCOMES.
- `seq`   1, 2, 3 ... with no gaps.
- `ts`    UTC ISO 8601 with microseconds and a `Z`, taken while holding the lock (so it never goes backwards
          between entries unless the clock does).
- `prev`  the previous entry's `mac` ("" for entry 1).
- `mac`   HMAC-SHA256(key, canonical JSON of the entry without `mac`), hex.

Key: `BOT_AUDIT_KEY` (its UTF-8 bytes, surrounding whitespace ignored, at least 16 characters). Without it,
`data_dir/audit/audit.key` holds 32 random bytes created once (0600) and `key_source` is "file": production
must set BOT_AUDIT_KEY, since whoever can write the data dir can read that file and re-sign a forged log.
The key cannot be changed under an existing log: entries written with another key no longer verify.

Crash safety: an entry is one `os.write` of a whole line to an O_APPEND fd, then fsync, under a cross-process
lock. A crash can only leave a torn last line without its newline. That line was never acknowledged to the
caller, so readers ignore it, `verify()` reports it as "incomplete final write (ignored)" while staying ok
when everything before it verifies, and the next append truncates it before writing.

Purge (retention): `purge_before` removes the oldest entries (a contiguous prefix, so the chain never has a
hole in the middle), rewrites the file atomically and appends a `purge` entry recording what went. The
rewritten file starts with a MAC'd purge marker line (`kind: "purge_anchor"`, not an entry) naming the last
removed entry's seq and mac; verification starts from it, and it must match the `purge` entry that follows
in the chain, so neither can be forged, moved or dropped without `verify()` failing.

Not detectable by any chain alone: cutting whole entries off the end, or restoring an older copy of the
file. `verify()` returns `last_seq`/`last_mac` so they can be noted elsewhere and compared later.

Reads at scale (bot.store.audit_cache): a check that passes is remembered as the verified prefix, so reads
(`verify(use_prefix=True)`) check only the tail appended since; `verify()` without it checks every line.
"""
from __future__ import annotations

import io
import json
import os
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot import wording
from bot.audit.chain import (
    ANCHOR_KIND,
    GENESIS,
    ChainCheck,
    VerifyResult,
    canonical,
    entry_mac,
    head_matches,
    mac_matches,
    signed_copy,
)
from bot.audit.chain import is_int as _is_int
from bot.audit.chain import parse_line as _parse_line
from bot.audit.entries import KINDS, as_utc, checked_body, iso_utc, parse_ts
from bot.audit.purge import PurgeTally
from bot.store.audit_cache import (
    PREFIX_NAME,
    OffsetIndex,
    Prefix,
    drop_prefix,
    entry_keys,
    load_prefix,
    micros,
    read_line_at,
    save_prefix,
)
from bot.store.disk import (
    ensure_private_dir,
    file_lock,
    fsync_dir,
    open_private_append,
    write_private_atomic,
)

KEY_ENV = "BOT_AUDIT_KEY"
MIN_KEY_CHARS = 16
LOG_NAME = "audit.jsonl"
LOCK_NAME = "audit.jsonl.lock"
KEY_NAME = "audit.key"
_TAIL_CHUNK = 64 * 1024


@dataclass(frozen=True)
class HeadCheck:
    """The log against a chain head published elsewhere (`AuditLog.check_head`).

    problem: None when entry `seq` is in the log with that MAC; "missing" (the log ends before it: entries cut
    off the end, or an older copy restored), "mismatch" (entry `seq` has another MAC: the log was replaced or
    rewritten), or "purged" (removed by retention; `through_seq` is the last entry removed). `last_seq`: the
    log's last entry (when the head is not found), `actual_mac`: the MAC found for `seq`.
    """

    seq: int
    mac: str
    problem: str | None
    last_seq: int | None = None
    actual_mac: str = ""
    through_seq: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


class AuditError(Exception):
    """The audit log cannot be written or purged safely; the message says why and what to do."""


class AuditKeyError(AuditError):
    """The audit key is missing, too short or does not belong to this log."""


def _last_complete_line(fd: int, size: int) -> tuple[bytes | None, int]:
    """Read backwards from the end: (the last newline-terminated line without "\\n", offset just after it).

    Returns (None, 0) when the file holds no complete line. Bytes after the returned offset are a torn tail.
    Reads only the tail of the file, so an append costs the same whatever the log's length.
    """
    buf = b""
    start = size
    chunk = _TAIL_CHUNK
    while True:
        last_nl = buf.rfind(b"\n")
        if last_nl != -1:
            prev_nl = buf.rfind(b"\n", 0, last_nl)
            if prev_nl != -1 or start == 0:
                return buf[prev_nl + 1:last_nl], start + last_nl + 1
        elif start == 0:
            return None, 0
        step = min(chunk, start)
        start -= step
        buf = os.pread(fd, step, start) + buf
        chunk *= 2


def _load_key(audit_dir: Path, env: Mapping[str, str]) -> tuple[bytes, str]:
    value = env.get(KEY_ENV)
    if value is not None:
        value = value.strip()
        if len(value) < MIN_KEY_CHARS:
            state = "empty" if not value else f"only {len(value)} characters"
            raise AuditKeyError(
                f"{KEY_ENV} is set but {state}: use at least {MIN_KEY_CHARS} random characters, e.g. the "
                "output of `python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        return value.encode("utf-8"), "env"
    key_path = audit_dir / KEY_NAME
    with file_lock(audit_dir / LOCK_NAME):
        if not key_path.exists():
            log_path = audit_dir / LOG_NAME
            if log_path.exists() and log_path.stat().st_size > 0:
                # A fresh key could never verify the existing entries.
                raise AuditKeyError(
                    f"{log_path} has entries but {KEY_ENV} is not set and {key_path} is missing: set {KEY_ENV} "
                    "to the key the log was written with, or restore the key file"
                )
            write_private_atomic(key_path, secrets.token_bytes(32))
        mode = key_path.stat().st_mode & 0o777
        if mode & 0o077:
            # Whoever can read the key can recompute the chain after editing the log.
            raise AuditKeyError(
                f"{key_path} is readable by others (mode {mode:04o}): run `chmod 600 {key_path}` (better: set "
                f"{KEY_ENV} in the environment and keep the key off this disk)"
            )
        key = key_path.read_bytes()
    if len(key) < MIN_KEY_CHARS:
        raise AuditKeyError(f"{key_path} is damaged (too short); restore it from a backup")
    return key, "file"


class AuditLog:
    """The audit log under `data_dir/audit/`. Safe to share between threads and processes."""

    def __init__(self, data_dir: Path, *, key: bytes, key_source: str,
                 clock: Callable[[], datetime] | None = None) -> None:
        if len(key) < MIN_KEY_CHARS:
            raise AuditKeyError(f"the audit key must be at least {MIN_KEY_CHARS} bytes")
        self.dir = ensure_private_dir(Path(data_dir) / "audit")
        self.path = self.dir / LOG_NAME
        self.key_source = key_source  # "env" or "file"; the server/CLI warn when it is "file"
        self._key = key
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = file_lock(self.dir / LOCK_NAME)
        # Called with each entry once it is durable (the server's metrics); it must not raise.
        self.on_append: Callable[[dict], None] | None = None
        # What reads remember (bot.store.audit_cache): the verified prefix, kept in memory and in a side file, and
        # the lookup index of line offsets by request id, file id and call number (memory only).
        self._read_lock = threading.Lock()
        self._prefix: Prefix | None = None
        self._index = OffsetIndex()
        self._prefix_path = self.dir / PREFIX_NAME

    @classmethod
    def open(cls, data_dir: Path, env: Mapping[str, str] | None = None, *,
             clock: Callable[[], datetime] | None = None) -> AuditLog:
        """Open the log; key from BOT_AUDIT_KEY, else data_dir/audit/audit.key (created once, 0600).

        Raises AuditKeyError for a short key, or when the log has entries but no key can be found.
        """
        env = os.environ if env is None else env
        audit_dir = ensure_private_dir(Path(data_dir) / "audit")
        key, source = _load_key(audit_dir, env)
        return cls(data_dir, key=key, key_source=source, clock=clock)

    def __repr__(self) -> str:  # never shows the key
        return f"AuditLog({str(self.path)!r}, key_source={self.key_source!r})"

    def _mac(self, obj: Mapping[str, Any]) -> str:
        return entry_mac(self._key, obj)

    def sign(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """`body` with a `mac` made with the log's key: for the log's side files, which are not entries (give
        them a `kind` no entry has, so one can never pass for the other)."""
        return signed_copy(self._key, body)

    def signed(self, obj: Mapping[str, Any]) -> bool:
        """Whether `obj` carries a `mac` made with this log's key (see `sign`)."""
        return mac_matches(self._key, obj)

    # -- writing ---------------------------------------------------------------------------------------

    def append(self, kind: str, **fields: Any) -> dict:
        """Append one entry; returns it with seq, ts, prev and mac. Durable (fsynced) when this returns.

        Raises ValueError for an unknown kind, a search without a valid outcome, a reserved field name or a
        value JSON cannot hold; AuditError when the last entry is unreadable or signed with another key.
        """
        body = checked_body(kind, fields)
        with self._lock:
            fd = open_private_append(self.path, read=True)
            try:
                size = os.fstat(fd).st_size
                last, good_end = _last_complete_line(fd, size)
                if good_end < size:
                    # A torn tail (a crash mid-write, or bytes cut off the end) was never acknowledged, but it
                    # is evidence: kept in a side file, then cut from the log before the next entry.
                    self._keep_torn_tail(fd, good_end, size)
                    os.ftruncate(fd, good_end)
                seq, prev = self._chain_head(last)
                entry = {**body, "kind": kind, "seq": seq + 1, "ts": iso_utc(self._clock()), "prev": prev}
                entry["mac"] = self._mac(entry)
                self._write_line(fd, canonical(entry) + b"\n", good_end)
            finally:
                os.close(fd)
            if size == 0:
                fsync_dir(self.dir)  # a new file's directory entry must survive a crash too
        if self.on_append is not None:
            self.on_append(entry)
        return entry

    def check_writable(self) -> None:
        """Raise AuditError (AuditKeyError for a changed key) when the next `append` would be refused.

        Callers that are about to change something (a search, an enrollment) check first, so no change
        happens that the log then cannot record."""
        with self._lock:
            if not self.path.exists():
                return
            fd = os.open(self.path, os.O_RDONLY)
            try:
                last, _ = _last_complete_line(fd, os.fstat(fd).st_size)
            finally:
                os.close(fd)
            self._chain_head(last)

    @staticmethod
    def _write_line(fd: int, line: bytes, good_end: int) -> None:
        try:
            written = os.write(fd, line)  # one write: the line lands whole at the end (O_APPEND)
            while written < len(line):  # only on a full disk or a signal; we still hold the lock
                written += os.write(fd, line[written:])
            os.fsync(fd)
        except BaseException:
            try:
                os.ftruncate(fd, good_end)  # leave no half entry behind a failed append
            except OSError:
                pass
            raise

    def _chain_head(self, last: bytes | None) -> tuple[int, str]:
        """(seq, mac) of the last entry, or (0, GENESIS) for an empty log; refuses to extend a bad tail."""
        if last is None:
            return 0, GENESIS
        obj = _parse_line(last)
        if obj is None or obj.get("kind") == ANCHOR_KIND or not _is_int(obj.get("seq")):
            raise AuditError(f"the last line of {self.path} is not an audit entry; run `python -m bot audit verify`")
        if not mac_matches(self._key, obj):
            # Usually a changed or missing BOT_AUDIT_KEY; appending would mix keys and break the chain for good.
            raise AuditKeyError(
                f"the last audit entry does not verify with this key ({KEY_ENV} changed or unset?); refusing to "
                "append. Run `python -m bot audit verify`."
            )
        return obj["seq"], obj["mac"]

    def record_access(self, actor: dict, action: str, query: dict, **fields: Any) -> dict:
        """Audit a read of the audit log (CJIS): who (`actor`), what (`action`: query/export/bundle/report)
        and with which parameters (`query`). Extra fields (e.g. `allowed=False`, `out_file`) are kept."""
        return self.append("audit_access", actor=actor, action=action, query=query, **fields)

    def purge_before(self, cutoff_ts: datetime, actor: str) -> dict:
        """Remove the oldest entries with `ts` before the cutoff; return the `purge` entry appended.

        Removal is a contiguous prefix: it stops at the first entry at or after the cutoff, so an entry
        stamped earlier behind it (clock stepped back) waits for a later purge. Entries of every kind in
        that prefix go, including older `purge` entries, whose summaries are carried into the new one's
        `earlier_purges`. The file is rewritten atomically under the lock, starting with a purge marker.
        With nothing to remove nothing is written and {"kind": "purge", "removed": 0, ...} (no seq) returned.
        Refuses (AuditError) to purge a log that does not verify: that would destroy the evidence.
        Retention limits (the 365-day floor) are enforced by the caller's settings, not here.
        """
        with self._lock:
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                data = b""
            lines = list(io.BytesIO(data))  # splits on b"\n" only, unlike bytes.splitlines
            if lines and not lines[-1].endswith(b"\n"):
                lines.pop()  # torn tail: never acknowledged, not carried over
            check = self._verify_lines(lines, torn_tail=False)
            if not check.ok:
                raise AuditError(wording.audit_purge_refused(check.bad_seq, check.reason))
            entries = [(raw, json.loads(raw)) for raw in lines]
            entries = [(raw, obj) for raw, obj in entries if obj.get("kind") != ANCHOR_KIND]
            tally = PurgeTally(cutoff_ts)
            for _, obj in entries:
                if not tally.feed(obj):
                    break
            if not tally.removed:
                return tally.nothing(actor)
            head = entries[-1][1]
            purge, anchor = tally.records(actor, head["seq"], head["mac"], self._clock(), self.sign)
            kept = b"".join(raw for raw, _ in entries[tally.removed:])
            write_private_atomic(self.path, canonical(anchor) + b"\n" + kept + canonical(purge) + b"\n")
            self._forget_reads()
        return purge

    def _forget_reads(self) -> None:
        """The log was rewritten: what reads remembered about it no longer holds."""
        with self._read_lock:
            self._prefix = None
            self._index.reset(None)
            drop_prefix(self._prefix_path)

    # -- reading ---------------------------------------------------------------------------------------

    def head(self) -> dict[str, Any] | None:
        """The chain head: {"seq", "mac", "ts"} of the last complete entry (read from the end of the file, not
        verified), or None for a log with no entry. Published elsewhere, it shows later truncation."""
        if not self.path.exists():
            return None
        with open(self.path, "rb") as fh:
            last, _ = _last_complete_line(fh.fileno(), os.fstat(fh.fileno()).st_size)
        obj = _parse_line(last) if last is not None else None
        if obj is None or obj.get("kind") == ANCHOR_KIND or not _is_int(obj.get("seq")):
            return None
        return {"seq": obj["seq"], "mac": str(obj.get("mac", "")), "ts": str(obj.get("ts", ""))}

    def check_head(self, seq: int, mac: str) -> HeadCheck:
        """Whether entry `seq` is still in the log with MAC `mac` (a head published earlier; `mac` may be cut to
        its first 16+ characters). Reads the whole log: run it after a full `verify()`."""
        mac = mac.strip().lower()
        last_seq = None
        for entry in self.entries():
            last_seq = entry.get("seq")
            if entry.get("kind") == "purge" and entry.get("through_seq") == seq:
                actual = str(entry.get("through_mac") or "")  # the last entry a purge removed: its MAC is kept
            elif last_seq == seq:
                actual = str(entry.get("mac") or "")
            else:
                continue
            return HeadCheck(seq, mac, None if head_matches(actual, mac) else "mismatch", actual_mac=actual)
        purged = [e for e in self.entries() if e.get("kind") == "purge" and _is_int(e.get("through_seq"))]
        if purged and seq <= max(e["through_seq"] for e in purged):
            return HeadCheck(seq, mac, "purged", last_seq, through_seq=max(e["through_seq"] for e in purged))
        return HeadCheck(seq, mac, "missing", last_seq)

    def _raw_lines(self) -> Iterator[bytes]:
        """Complete lines (with their newline) then, if the file ends mid-line, that torn tail."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            yield from fh  # binary iteration splits on b"\n" only

    def last_seq(self) -> int:
        """The seq of the newest entry (0 for an empty log), from the file's tail only: cheap at any length."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return 0
        try:
            last, _ = _last_complete_line(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)
        obj = _parse_line(last) if last is not None else None
        return obj["seq"] if obj is not None and _is_int(obj.get("seq")) else 0

    def entries(self) -> Iterator[dict]:
        """Parsed entries in file order (no integrity check: that is verify()).

        Skips the purge marker line and any unparseable line; stops before a torn final line.
        """
        for raw in self._raw_lines():
            if not raw.endswith(b"\n"):
                return
            obj = _parse_line(raw)
            if obj is not None and obj.get("kind") != ANCHOR_KIND:
                yield obj

    def _keep_torn_tail(self, fd: int, start: int, end: int) -> None:
        torn = os.pread(fd, end - start, start)
        stamp = iso_utc(self._clock()).replace(":", "")
        write_private_atomic(self.dir / f"{LOG_NAME}.torn-{stamp}", torn)

    def side_file_entries(self) -> list[tuple[str, int]]:
        """(file name, seq) of each entry kept in a `.torn-*` side file that continues the chain: signed with this
        log's key and linked to the log's entry before it, yet not the log's entry of that seq. A crash leaves only
        part of a line there; a whole entry means one was cut off the end (its newline removed) and the next write
        moved it aside: an entry removed from the log, which the chain alone cannot show."""
        kept = []
        for path in sorted(self.dir.glob(f"{LOG_NAME}.torn-*")):
            try:
                raw = path.read_bytes()
            except OSError:
                continue
            for line in raw.split(b"\n"):
                obj = _parse_line(line.strip()) if line.strip() else None
                if (obj is not None and obj.get("kind") != ANCHOR_KIND and _is_int(obj.get("seq"))
                        and isinstance(obj.get("prev"), str) and self.signed(obj)):
                    kept.append((path.name, obj))
        if not kept:
            return []
        wanted = {obj["seq"] + d for _, obj in kept for d in (-1, 0)}
        macs: dict[int, str] = {0: GENESIS}
        for entry in self.entries():
            if entry.get("seq") in wanted:
                macs[entry["seq"]] = str(entry.get("mac", ""))
            if entry.get("kind") == "purge" and entry.get("through_seq") in wanted:
                macs[entry["through_seq"]] = str(entry.get("through_mac", ""))  # purged: its MAC is kept
        return [(name, obj["seq"]) for name, obj in kept
                if macs.get(obj["seq"] - 1) == obj["prev"] and macs.get(obj["seq"]) != obj["mac"]]

    def verify(self, *, use_prefix: bool = False) -> VerifyResult:
        """Recompute every mac and check seq contiguity and prev links from the start (or the purge marker).

        A torn final line without a newline is ignored (reason TORN_TAIL) and the result is ok when everything
        before it verifies: that write was never acknowledged, and the next append removes it.

        Every check that passes is remembered as the verified prefix (bot.store.audit_cache). With `use_prefix`
        (reads: export, report, bundle, /frs) only the lines after a prefix that still holds are checked, and
        `resumed_after_seq` says so; without it (`audit verify`, purge) every line is.
        """
        if not self.path.exists():
            return ChainCheck(self._mac).finish(False)
        with open(self.path, "rb") as fh, self._read_lock:
            st = os.fstat(fh.fileno())
            prefix = self._trusted_prefix(fh.fileno(), st) if use_prefix else None
            check = ChainCheck.resume(self._mac, prefix.state) if prefix else ChainCheck(self._mac)
            start = prefix.offset if prefix else 0
            fh.seek(start)
            result, end = self._check_lines(check, fh, torn_tail=None)
            if result.ok and check.last_seq is not None and (prefix is None or start + end > prefix.offset):
                self._keep_prefix(Prefix(st.st_ino, start + end, check.state()))
        return replace(result, resumed_after_seq=prefix.seq) if prefix else result

    def _verify_lines(self, lines: Iterable[bytes], torn_tail: bool | None) -> VerifyResult:
        return self._check_lines(ChainCheck(self._mac), lines, torn_tail)[0]

    @staticmethod
    def _check_lines(check: ChainCheck, lines: Iterable[bytes], torn_tail: bool | None) -> tuple[VerifyResult, int]:
        """Feed complete lines to `check`: (the result, bytes of the lines that verified)."""
        torn = bool(torn_tail)
        end = 0
        for raw in lines:
            if not raw.endswith(b"\n"):
                torn = True
                break
            failure = check.feed(raw[:-1])
            if failure is not None:
                return failure, end
            end += len(raw)
        return check.finish(torn), end

    def verified_prefix(self) -> tuple[int, str] | None:
        """(seq, mac) of the last entry a chain check reached, as remembered (signed side file), whether or not the
        file still reaches it: a log that now ends before it went backwards (bot.audit.heads)."""
        prefix = self._prefix or load_prefix(self._prefix_path, self.signed)
        return (prefix.seq, prefix.mac) if prefix is not None else None

    def _trusted_prefix(self, fd: int, st: os.stat_result) -> Prefix | None:
        """The remembered prefix (memory, else the side file) when it still describes this file: same inode, no
        shorter, and the line ending at its offset is still its last entry, with a MAC that verifies."""
        for prefix in (self._prefix, load_prefix(self._prefix_path, self.signed)):
            if prefix is None or prefix.inode != st.st_ino or not 0 < prefix.offset <= st.st_size:
                continue
            line, end = _last_complete_line(fd, prefix.offset)
            obj = _parse_line(line) if line is not None and end == prefix.offset else None
            if (obj is not None and obj.get("seq") == prefix.seq and obj.get("mac") == prefix.mac
                    and self.signed(obj) and canonical(obj) == line):
                self._prefix = prefix
                return prefix
        return None

    def _keep_prefix(self, prefix: Prefix) -> None:
        self._prefix = prefix
        try:
            save_prefix(self._prefix_path, prefix, self.sign)
        except OSError:
            pass  # a read-only audit dir: the prefix still holds in memory, and a full check is always right

    def find(
        self,
        *,
        request_id: str | None = None,
        file_id: str | None = None,
        call_number: str | None = None,
        requester_id: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        kinds: Iterable[str] | None = None,
    ) -> list[dict]:
        """Entries matching every filter given, in log order.

        request_id, file_id and call_number match the field at the top level of an entry of any kind, or in an
        object of a top-level list (bot.store.audit_cache.entry_keys); given any of them, only the lines the lookup
        index holds for it are read. requester_id matches the person who acted: `requester.id` (searches) or
        `actor` / `actor.id` (gallery changes, purges, audit access). since <= ts < until (datetimes, naive =
        UTC, or ISO strings).
        """
        query = EntryQuery.of(request_id=request_id, file_id=file_id, call_number=call_number,
                              requester_id=requester_id, since=since, until=until, kinds=kinds)
        if query.keys:
            found: Iterable[dict] = self._indexed(query.keys)
        else:
            found = _parsed(self._ranged_lines(query), query.kinds)
        return [entry for entry in found if query.matches(entry)]

    def find_lines(self, *, since: datetime | str | None = None, until: datetime | str | None = None,
                   kinds: Iterable[str] | None = None) -> list[bytes]:
        """The lines (bytes, newline kept) among which every entry with since <= ts < until of `kinds` is, in file
        order, unparsed: a few more may come (the caller parses each and checks it, e.g. with EntryQuery.matches),
        never fewer. For readers that keep what they made of a line (bot.oversight.searches' rows) and so need not
        parse the lines they have seen; `find` parses them all."""
        query = EntryQuery.of(since=since, until=until, kinds=kinds)
        return _candidates(self._ranged_lines(query), query.kinds)

    def _ranged_lines(self, query: EntryQuery) -> Iterable[bytes]:
        """The complete lines the time index says can fall in [since, until) (the caller checks each): one read of
        the bytes between two bisections, then the few late lines after them (bot.store.audit_cache)."""
        if not self.path.exists():
            return []
        if query.since is None and query.until is None:  # the whole file, streamed
            return (raw for raw in self._raw_lines() if raw.endswith(b"\n"))
        since = micros(query.since) if query.since is not None else None
        until = micros(query.until) if query.until is not None else None
        with open(self.path, "rb") as fh, self._read_lock:
            for rebuilt in (False, True):
                index = self._current_index(fh)
                first, stop, late = index.span(since, until)
                start = index.starts[first] if first < stop else 0
                end = index.line_end(stop - 1) if first < stop else 0
                chunk = os.pread(fh.fileno(), end - start, start)
                aligned = (start == 0 or os.pread(fh.fileno(), 1, start - 1) == b"\n") and chunk.endswith(b"\n")
                if first < stop and not aligned and not rebuilt:
                    index.reset(None)  # the file changed under the index (edited in place): index it afresh
                    continue
                lines = chunk.splitlines(keepends=True)
                return lines + [read_line_at(fh.fileno(), index.starts[i]) for i in late]
        return []

    def _indexed(self, keys: set[tuple[str, str]]) -> list[dict]:
        """The entries at the offsets the index holds for the rarest of `keys` (the caller checks the rest)."""
        if not self.path.exists():
            return []
        with open(self.path, "rb") as fh, self._read_lock:
            for rebuilt in (False, True):
                index = self._current_index(fh)
                key = min(keys, key=lambda k: len(index.lookup(*k)))
                entries = []
                for offset in index.lookup(*key):
                    raw = read_line_at(fh.fileno(), offset)
                    obj = _parse_line(raw) if raw.endswith(b"\n") else None
                    if obj is None or key not in entry_keys(obj):
                        if not rebuilt:
                            break  # the file changed under the index (edited in place): index it afresh
                        continue
                    entries.append(obj)
                else:
                    return entries
                index.reset(None)
        return entries

    def _current_index(self, fh: Any) -> OffsetIndex:
        """The lookup index, extended to the end of `fh`; rebuilt when it no longer describes this file."""
        st = os.fstat(fh.fileno())
        index = self._index
        if index.inode != st.st_ino or index.end > st.st_size or (
            index.end and _last_complete_line(fh.fileno(), index.end) != (index.tail, index.end)
        ):
            index.reset(st.st_ino)
        index.extend(fh)
        return index



@dataclass(frozen=True)
class EntryQuery:
    """`find`'s filters, checked the same way whichever store the entries come from."""

    keys: frozenset[tuple[str, str]]  # (request_id | file_id | call_number, value)
    requester_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    kinds: frozenset[str] | None = None

    @classmethod
    def of(cls, *, request_id: str | None = None, file_id: str | None = None, call_number: str | None = None,
           requester_id: str | None = None, since: datetime | str | None = None,
           until: datetime | str | None = None, kinds: Iterable[str] | None = None) -> EntryQuery:
        """The query of `find`'s arguments; ValueError for an unknown kind."""
        wanted = None
        if kinds is not None:
            wanted = frozenset(kinds)
            unknown = wanted - set(KINDS)
            if unknown:
                raise ValueError(f"unknown audit entry kind(s): {', '.join(sorted(unknown))}")
        keys = frozenset((name, value) for name, value in
                         (("request_id", request_id), ("file_id", file_id), ("call_number", call_number))
                         if value is not None)
        return cls(keys, requester_id, as_utc(since) if since is not None else None,
                   as_utc(until) if until is not None else None, wanted)

    def matches(self, entry: Mapping[str, Any]) -> bool:
        """Whether `entry` passes every filter."""
        if self.kinds is not None and entry.get("kind") not in self.kinds:
            return False
        if self.keys and not self.keys <= entry_keys(entry):
            return False
        if self.requester_id is not None and self.requester_id not in _people(entry):
            return False
        if self.since or self.until:
            ts = parse_ts(entry["ts"])
            if (self.since and ts < self.since) or (self.until and ts >= self.until):
                return False
        return True

def _marks(kinds: frozenset[str] | None) -> tuple[bytes, ...] | None:
    return tuple(b'"' + kind.encode() + b'"' for kind in kinds) if kinds is not None else None


def _candidates(lines: Iterable[bytes], kinds: frozenset[str] | None) -> list[bytes]:
    """The complete `lines` that can hold an entry of `kinds`: a line whose bytes hold no `"kind"` value of theirs,
    quoted, cannot (JSON escapes every quote inside a string), so it is left out unparsed."""
    marks = _marks(kinds)
    if marks is None:
        return [raw for raw in lines if raw.endswith(b"\n")]
    if len(marks) == 1:  # the usual case, without a generator per line
        [mark] = marks
        return [raw for raw in lines if mark in raw and raw.endswith(b"\n")]
    return [raw for raw in lines if raw.endswith(b"\n") and any(m in raw for m in marks)]


def _parsed(lines: Iterable[bytes], kinds: frozenset[str] | None) -> list[dict]:
    """The entries of complete `lines` (as `entries()` reads them: the purge marker and unparseable lines skipped),
    skipping unparsed the lines that cannot be of `kinds` (most of a range's cost is parsing lines nobody asked for)."""
    out = []
    for raw in _candidates(lines, kinds):
        obj = _parse_line(raw)
        if obj is not None and obj.get("kind") != ANCHOR_KIND:
            out.append(obj)
    return out


def _people(entry: Mapping[str, Any]) -> set[str]:
    """Ids of whoever acted in an entry: the requester and/or the actor."""
    ids = set()
    for key in ("requester", "actor"):
        value = entry.get(key)
        if isinstance(value, dict) and isinstance(value.get("id"), str):
            ids.add(value["id"])
        elif isinstance(value, str):
            ids.add(value)
    return ids
