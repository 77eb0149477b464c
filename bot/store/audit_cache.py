"""What the audit log remembers between reads, so a read costs the new tail, not the whole log.

- **Verified prefix.** After a chain check, `AuditLog` keeps how far the log verified: the file's inode, the
  byte offset just after the last verified line and the checker's state there (last seq and MAC, count, purge
  marker). It is kept in memory and in a small side file, `audit/audit.verified.json` (0600, written
  atomically, itself MAC'd with the audit key so it cannot be forged without the key). A read trusts it only
  while the file is the same one (inode), at least that long, and the line ending at the offset is still the
  entry with that seq and MAC (and that MAC verifies); otherwise it checks from the start. A purge rewrites the
  log and drops the prefix. What a read cannot see: an entry *before* the prefix edited without changing the
  bytes' length or the line at the offset. That is what `python -m bot audit verify` is for: it always checks
  every line.
- **Lookup index.** Byte offsets of the lines carrying each request id, Slack file id and call number, built
  from the file once per process and then extended from the tail. Every entry kind is indexed by its fields,
  so kinds added later (`refusal`, `review`, ...) need nothing here; the ids in the objects of a top-level list
  (e.g. folded attempts) count too. Kept in memory only: a process builds it on its first lookup. A lookup
  re-reads and re-checks only the lines indexed for the key; an index the file no longer matches (another
  inode, shorter, a different last line, a line that is not what was indexed) is rebuilt.
- **Time index.** The same pass keeps every line's start and the latest `ts` up to it (microseconds), so a date
  range (`find(since=, until=)`) reads only the bytes between two bisections, not the whole log. Entries are
  written in time order, but a clock stepped back can put one behind an earlier `ts`: those lines (and any whose
  `ts` cannot be read) are listed as `late` and checked one by one, so the answer is the whole scan's exactly.

Pure data and file helpers: `bot.store.audit_log` owns the locking and the checks.
"""
from __future__ import annotations

import json
import os
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.audit.chain import ANCHOR_KIND
from bot.audit.entries import parse_ts
from bot.store.disk import write_private_atomic

PREFIX_NAME = "audit.verified.json"
PREFIX_KIND = "verified_prefix"  # the side file's `kind`: never an entry kind, so never mistaken for one
# Fields looked up by value (AuditLog.find): at the top level of an entry, or in the objects of a top-level list.
INDEXED_FIELDS = ("request_id", "file_id", "call_number")


@dataclass(frozen=True)
class Prefix:
    """How far the log verified: `offset` bytes of the file with this inode, ending with entry `seq`."""

    inode: int
    offset: int
    state: dict[str, Any]  # ChainCheck.state() after the last verified line

    @property
    def seq(self) -> int:
        return int(self.state["last_seq"])

    @property
    def mac(self) -> str:
        return str(self.state["last_mac"])

    def body(self) -> dict[str, Any]:
        return {"kind": PREFIX_KIND, "inode": self.inode, "offset": self.offset, "state": self.state}


def load_prefix(path: Path, signed: Callable[[Mapping[str, Any]], bool]) -> Prefix | None:
    """The prefix in the side file, or None when it is missing, unreadable or not signed with the log's key."""
    try:
        obj = json.loads(path.read_bytes())
        if not (isinstance(obj, dict) and obj.get("kind") == PREFIX_KIND and signed(obj)):
            return None
        prefix = Prefix(int(obj["inode"]), int(obj["offset"]), dict(obj["state"]))
        _ = prefix.seq, prefix.mac
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return prefix


def save_prefix(path: Path, prefix: Prefix, sign: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Write the side file (0600, temp + fsync + rename)."""
    write_private_atomic(path, json.dumps(sign(prefix.body()), sort_keys=True).encode("utf-8"))


def drop_prefix(path: Path) -> None:
    """Remove the side file (after a purge rewrote the log)."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _values(container: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for name in INDEXED_FIELDS:
        value = container.get(name)
        if isinstance(value, str):
            yield name, value


def entry_keys(entry: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The (field, value) pairs an entry is found by: INDEXED_FIELDS at its top level and in the objects of any
    top-level list (e.g. the `attempts` of folded refusals)."""
    keys = set(_values(entry))
    for value in entry.values():
        if isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    keys.update(_values(item))
    return keys


@dataclass
class OffsetIndex:
    """Line offsets by (field, value) for the first `end` bytes of the file with `inode`."""

    inode: int | None = None
    end: int = 0
    tail: bytes | None = None  # the last indexed line (without its newline): checked before extending
    offsets: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    starts: list[int] = field(default_factory=list)  # every complete line's offset, in file order
    latest: list[int] = field(default_factory=list)  # the latest `ts` (µs since the epoch) up to each line
    late: list[tuple[int, int | None]] = field(default_factory=list)  # (line, ts µs or None): behind `latest`

    def reset(self, inode: int | None) -> None:
        self.inode, self.end, self.tail, self.offsets = inode, 0, None, {}
        self.starts, self.latest, self.late = [], [], []

    def add(self, offset: int, raw: bytes) -> None:
        """Index one complete line (with its newline) starting at `offset`; lines that are not entries are
        skipped (the lookup re-checks every line it reads anyway)."""
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        latest = self.latest[-1] if self.latest else _NEVER
        if isinstance(obj, dict) and obj.get("kind") != ANCHOR_KIND:
            for key in entry_keys(obj):
                self.offsets.setdefault(key, []).append(offset)
            ts = _micros(obj.get("ts"))
            if ts is None or ts < latest:
                self.late.append((len(self.starts), ts))
            else:
                latest = ts
        self.starts.append(offset)
        self.latest.append(latest)
        self.end = offset + len(raw)
        self.tail = raw[:-1]

    def extend(self, fh: Any) -> None:
        """Index the complete lines from `end` on (`fh` a binary file); a torn last line waits."""
        fh.seek(self.end)
        offset = self.end
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            self.add(offset, raw)
            offset += len(raw)

    def lookup(self, name: str, value: str) -> list[int]:
        return list(self.offsets.get((name, value), ()))

    def span(self, since: int | None, until: int | None) -> tuple[int, int, list[int]]:
        """The lines an entry with since <= ts < until (µs, None = open) can be on: the contiguous run of lines
        [first, stop) and, after it, the late lines that may fall in the range (indices). Every line before
        `first` has ts < since; every line from `stop` on that is not late has ts >= until."""
        first = bisect_left(self.latest, since) if since is not None else 0
        stop = bisect_left(self.latest, until) if until is not None else len(self.starts)
        after = [i for i, ts in self.late if (i >= stop or i < first) and (
            ts is None or ((since is None or ts >= since) and (until is None or ts < until)))]
        return first, stop, sorted(after)

    def line_end(self, i: int) -> int:
        """The offset just after line `i`."""
        return self.starts[i + 1] if i + 1 < len(self.starts) else self.end


_NEVER = -(2 ** 63)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(value: datetime) -> int:
    """An aware datetime as whole microseconds since the epoch (exact, unlike a float timestamp)."""
    return (value - _EPOCH) // timedelta(microseconds=1)


def _micros(ts: Any) -> int | None:
    try:
        return micros(parse_ts(ts))
    except (TypeError, ValueError):
        return None


def read_line_at(fd: int, offset: int, chunk: int = 4096) -> bytes:
    """The line (with its newline) starting at `offset`; b"" past the end."""
    out = b""
    while True:
        data = os.pread(fd, chunk, offset + len(out))
        if not data:
            return out
        nl = data.find(b"\n")
        if nl != -1:
            return out + data[:nl + 1]
        out += data
        chunk *= 2
