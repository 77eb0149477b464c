"""A purge of the audit log's oldest entries, as data (pure): which entries go, the `purge` entry that records them
and the purge marker (the anchor) the kept chain starts from.

Both stores build them here (bot.store.audit_log for the file, bot.store.pg.audit for the database), so a purge
writes the same bytes wherever the log lives. Removal is a contiguous prefix: feeding stops at the first entry at
or after the cutoff, so an entry stamped earlier behind it (the clock stepped back) waits for a later purge and the
chain never has a hole in the middle.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from bot.audit.chain import ANCHOR_KIND
from bot.audit.entries import as_utc, iso_utc, parse_ts

# What an earlier `purge` entry leaves in the next one's `earlier_purges` when it is itself removed.
SUMMARY_KEYS = ("seq", "ts", "actor", "cutoff", "removed", "first_seq", "through_seq")


class PurgeTally:
    """Entries fed in log order (the purge marker excluded); those before the cutoff, up to the first that is not,
    are the ones a purge removes. `removed` counts them."""

    def __init__(self, cutoff_ts: datetime) -> None:
        self.cutoff = as_utc(cutoff_ts)
        self.removed = 0
        self._kinds: Counter[str] = Counter()
        self._earlier: list[dict] = []
        self._first: Mapping[str, Any] | None = None
        self._last: Mapping[str, Any] | None = None
        self._closed = False

    def feed(self, entry: Mapping[str, Any]) -> bool:
        """Whether `entry` (the next in seq order) goes; once one stays, every later one does too."""
        if self._closed or parse_ts(entry["ts"]) >= self.cutoff:
            self._closed = True
            return False
        if entry["kind"] == "purge":
            self._earlier.extend(entry.get("earlier_purges") or [])
            self._earlier.append({k: entry[k] for k in SUMMARY_KEYS if k in entry})
        self._kinds[entry["kind"]] += 1
        self._first = self._first or entry
        self._last = entry
        self.removed += 1
        return True

    def nothing(self, actor: str) -> dict:
        """What `purge_before` returns when nothing goes (no entry is written)."""
        return {"kind": "purge", "removed": 0, "cutoff": iso_utc(self.cutoff), "actor": actor}

    def records(self, actor: str, head_seq: int, head_mac: str, now: datetime,
                sign: Callable[[Mapping[str, Any]], dict]) -> tuple[dict, dict]:
        """(the `purge` entry, chained after the head `head_seq`/`head_mac`; the signed purge marker naming the last
        entry removed and that purge entry). `sign` adds the log key's `mac`. Only when `removed` > 0."""
        if self._first is None or self._last is None:
            raise ValueError("nothing to purge")
        stamp = iso_utc(now)
        purge = {
            "kind": "purge",
            "actor": actor,
            "cutoff": iso_utc(self.cutoff),
            "removed": self.removed,
            "removed_kinds": dict(sorted(self._kinds.items())),
            "first_seq": self._first["seq"],
            "through_seq": self._last["seq"],
            "through_mac": self._last["mac"],
            "seq": head_seq + 1,
            "ts": stamp,
            "prev": head_mac,
        }
        if self._earlier:
            purge["earlier_purges"] = list(self._earlier)
        anchor = {"kind": ANCHOR_KIND, "anchor_seq": purge["through_seq"], "anchor_mac": purge["through_mac"],
                  "purge_seq": purge["seq"], "ts": stamp}
        return sign(purge), sign(anchor)
