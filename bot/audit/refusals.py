"""Refused attempts by people who hold no role, folded into one `denied` entry per person per window.

Someone on no list (not a requester, not command staff, not a gallery administrator) who keeps uploading photos
into a case channel or typing `/frs` commands must not be able to grow the audit log entry by entry. Their
first refused attempt is written at once, as a normal `denied` entry; the later ones by the same person (and of
the same entry kind: `search` for uploads, `audit_access` for `/frs`) within `[audit] refusal_window_minutes`
of it are folded into one entry with:

- `count`: how many attempts it stands for (the first, written on its own, is not among them);
- `first_at`, `last_at`: when the first and the last folded attempt happened; `window_opened_at`,
  `window_minutes`;
- `attempts`: for each of the first MAX_ATTEMPTS, when it happened and its own ids (request id, Slack file
  id, channel, thread, permalink, the `/frs` action and query); past that only the count grows and
  `attempts_not_listed` says how many are not listed;
- every other field as the last attempt had it (requester or actor, refusal reasons, outcome).

The folded entry is written when the window closes: by the next attempt after it, by the server's tick, and at
shutdown (every open window then). Nothing is lost on a crash: the open windows are kept, signed with the
audit key, in a small record (bot.store.small_records: the file `audit/refusals.pending.json`, 0600, written
atomically before the attempt is answered; or its row in PostgreSQL), and flushed after a restart. A pending file that does not verify with the key is still flushed, its entries
marked `pending_unverified`. A crash between writing a folded entry and updating the pending file can write
that window twice (same person and `window_opened_at`). Everyone else's refusals are each an entry, as before.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from bot.audit.entries import as_utc, iso_utc, normalise
from bot.store.audit_log import AuditLog
from bot.store.small_records import SmallRecords

log = logging.getLogger(__name__)

PENDING_NAME = "refusals.pending.json"
PENDING_RECORD = ("audit", PENDING_NAME.removesuffix(".json"))  # (namespace, key): audit/<PENDING_NAME>
PENDING_KIND = "pending_refusals"  # the side file's `kind`: never an entry kind
MAX_ATTEMPTS = 100
# Fields that differ from one attempt to the next: listed per attempt, not at the top of the folded entry.
PER_ATTEMPT = ("request_id", "file_id", "file_name", "channel", "thread_ts", "permalink", "uploaded_at", "action",
               "query")


def folded_count(entry: Mapping[str, Any]) -> int:
    """How many refused attempts an entry stands for: its `count` when folded, else 1."""
    count = entry.get("count")
    return count if isinstance(count, int) and not isinstance(count, bool) and count >= 1 else 1


def attempt_with(entry: Mapping[str, Any], name: str, value: str) -> Mapping[str, Any] | None:
    """The entry itself when its `name` field is `value`, else the folded attempt that has it (or None)."""
    if entry.get(name) == value:
        return entry
    for attempt in entry.get("attempts") or ():
        if isinstance(attempt, Mapping) and attempt.get(name) == value:
            return attempt
    return None


class RefusalAggregator:
    """The open windows of one audit log. Safe to share between threads (the server's I/O threads)."""

    def __init__(self, audit: AuditLog, window_minutes: int, records: SmallRecords | None = None) -> None:
        """`records`: where the open windows are kept (default: the files of the audit log's data dir)."""
        self.audit = audit
        self.window = timedelta(minutes=window_minutes)
        self.records = records if records is not None else SmallRecords(audit.dir.parent)
        self._lock = threading.Lock()
        self._windows: dict[str, dict[str, Any]] = self._load()

    def record(self, kind: str, person: str, fields: Mapping[str, Any], now: datetime) -> dict | None:
        """Record one refused attempt by `person` (who holds no role): the entry appended when it is the first
        in its window (or folding is off), else None (folded, and kept in the pending file)."""
        if not self.window:
            return self.audit.append(kind, **fields)
        key = f"{kind}:{person}"
        with self._lock:
            self._flush(now, everything=False)
            window = self._windows.get(key)
            if window is None:
                entry = self.audit.append(kind, **fields)
                self._windows[key] = {"kind": kind, "opened_at": iso_utc(now), "count": 0, "attempts": []}
                self._save()
                return entry
            body = normalise(fields)
            at = iso_utc(now)
            window["count"] += 1
            window.setdefault("first_at", at)
            window["last_at"] = at
            window["fields"] = {k: v for k, v in body.items() if k not in PER_ATTEMPT}
            if len(window["attempts"]) < MAX_ATTEMPTS:
                window["attempts"].append({"at": at, **{k: body[k] for k in PER_ATTEMPT if k in body}})
            self._save()
            return None

    def flush(self, now: datetime, *, everything: bool = False) -> int:
        """Write the folded entries of the windows closed by `now` (all open ones with `everything`, at
        shutdown); returns how many entries were written."""
        with self._lock:
            return self._flush(now, everything=everything)

    def pending(self) -> int:
        """Attempts folded and not yet written (in open windows)."""
        with self._lock:
            return sum(w["count"] for w in self._windows.values())

    def pending_attempt(self, name: str, value: str) -> Mapping[str, Any] | None:
        """The latest folded attempt not yet written whose `name` field is `value` (e.g. a Slack file id)."""
        with self._lock:
            found = [a for w in self._windows.values() for a in w["attempts"] if a.get(name) == value]
        return max(found, key=lambda a: a["at"]) if found else None

    def _flush(self, now: datetime, *, everything: bool) -> int:
        due = [key for key, w in self._windows.items()
               if everything or as_utc(now) >= as_utc(w["opened_at"]) + self.window]
        written = 0
        for key in due:
            window = self._windows[key]
            if window["count"]:
                self.audit.append(window["kind"], **self._folded(window))
                written += 1
            del self._windows[key]
        if due:
            self._save()
        return written

    def _folded(self, window: Mapping[str, Any]) -> dict[str, Any]:
        fields = dict(window["fields"])
        listed = len(window["attempts"])
        fields.update(count=window["count"], first_at=window["first_at"], last_at=window["last_at"],
                      window_opened_at=window["opened_at"], window_minutes=int(self.window.total_seconds() // 60),
                      attempts=window["attempts"])
        if listed < window["count"]:
            fields["attempts_not_listed"] = window["count"] - listed
        if window.get("unverified"):
            fields["pending_unverified"] = True
        return fields

    def _save(self) -> None:
        self.records.put(*PENDING_RECORD, self.audit.sign({"kind": PENDING_KIND, "windows": self._windows}))

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            obj = self.records.get(*PENDING_RECORD)
        except ValueError as exc:
            log.error("%s: refused attempts folded before a restart are lost", exc)
            return {}
        if obj is None:
            return {}
        windows = obj.get("windows") if isinstance(obj, dict) else None
        if not isinstance(windows, dict):
            log.error("the pending refusal windows are not a pending-refusals record; ignored")
            return {}
        windows = {key: w for key, w in windows.items() if isinstance(w, dict) and isinstance(w.get("kind"), str)
                   and isinstance(w.get("opened_at"), str) and isinstance(w.get("count"), int)
                   and isinstance(w.get("attempts"), list) and (not w["count"] or isinstance(w.get("fields"), dict))}
        if obj.get("kind") != PENDING_KIND or not self.audit.signed(obj):
            log.error("the pending refusal windows do not verify with the audit key: their folded refusals are "
                      "written marked pending_unverified")
            for window in windows.values():
                window["unverified"] = True
        return windows
