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

Pure data and file helpers: `bot.audit` owns the locking and the checks.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.storage import write_private_atomic

PREFIX_NAME = "audit.verified.json"
PREFIX_KIND = "verified_prefix"  # the side file's `kind`: never an entry kind, so never mistaken for one


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
