"""Signed requests already handled, remembered across a restart, so a captured request replayed within Slack's
5-minute signature window is acked and not applied again.

Keys (CONTRACTS): an event's `event_id` (Slack's own redeliveries carry the same one), else SHA-256 of the request's
timestamp and signature (button presses, forms and slash commands). Kept `ttl` seconds (10 minutes: twice the
window). One line per claim, `<epoch seconds> <key>`, appended and fsynced (`data_dir/slack/replays.log`, 0600); a
torn last line is ignored; the file is rewritten without expired lines when most of it has expired.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from bot.store.disk import ensure_private_dir, open_private_append, write_private_atomic

log = logging.getLogger(__name__)

TTL_S = 600.0
COMPACT_AFTER = 256  # appended lines before expired ones are worth rewriting the file for


def replay_key(body: bytes, headers: Mapping[str, str]) -> str:
    """What identifies one signed request: the Events API `event_id`, else SHA-256 of timestamp + signature.
    Only for a request whose signature was verified (the body is parsed here)."""
    if headers.get("Content-Type", "").startswith("application/json"):
        try:
            event_id = json.loads(body).get("event_id")
        except (ValueError, AttributeError):
            event_id = None
        if isinstance(event_id, str) and event_id.isalnum() and len(event_id) <= 64:
            return f"event:{event_id}"
    stamp = headers.get("X-Slack-Request-Timestamp", "") + headers.get("X-Slack-Signature", "")
    return "sig:" + hashlib.sha256(stamp.encode("utf-8")).hexdigest()


def check_key(key: str) -> None:
    """ValueError unless `key` may be a replay claim's key (not empty, no white space: a line holds one)."""
    if not key or any(c.isspace() for c in key):
        raise ValueError("a replay key has no white space")


class ReplayClaims:
    """`seen(key, now)` and `claim(key, now)`, thread-safe, persisted; `now` in epoch seconds."""

    def __init__(self, path: Path, ttl: float = TTL_S) -> None:
        self.path = Path(path)
        self.ttl = ttl
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}
        self._appended = 0
        ensure_private_dir(self.path.parent)
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            text = ""
        for line in text.splitlines(keepends=True):
            if not line.endswith("\n"):
                break  # torn by a crash mid-write: never acknowledged
            at, _, key = line.strip().partition(" ")
            try:
                self._seen[key] = float(at)
            except ValueError:
                continue

    def seen_here(self, key: str, now: float) -> bool:
        """`seen`: this process holds every claim of its data dir in memory."""
        return self.seen(key, now)

    def seen(self, key: str, now: float) -> bool:
        """Whether `key` was claimed within the last `ttl` seconds."""
        with self._lock:
            return self._fresh(key, now)

    def _fresh(self, key: str, now: float) -> bool:
        at = self._seen.get(key)
        return at is not None and now - at <= self.ttl

    def claim(self, key: str, now: float) -> bool:
        """`remember` then `persist`: handled now, in memory and on disk. True when this is the key's first claim
        within `ttl` (False: another claimed it first, and nothing changes)."""
        check_key(key)
        with self._lock:
            if self._fresh(key, now):
                return False
            self._seen[key] = now
        self.persist(key, now)
        return True

    def remember(self, key: str, now: float) -> None:
        """Handled now, in memory (cheap: the ack path calls it; `persist` follows in a thread)."""
        check_key(key)
        with self._lock:
            self._seen[key] = now

    def persist(self, key: str, now: float) -> None:
        """Write the claim to disk (fsynced), so a restart remembers it. A disk that cannot take the line leaves
        the claim in memory only (logged): refusing the request instead would lose an officer's input."""
        with self._lock:
            try:
                fd = open_private_append(self.path)
                try:
                    os.write(fd, f"{now:.3f} {key}\n".encode())
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                log.error("a replay claim could not be saved (%s): it holds until this process stops",
                          exc.strerror or exc)
                return
            self._appended += 1
            if self._appended >= COMPACT_AFTER:
                self._compact(now)

    def _compact(self, now: float) -> None:
        live = {k: at for k, at in self._seen.items() if now - at <= self.ttl}
        try:
            write_private_atomic(self.path, "".join(f"{at:.3f} {k}\n" for k, at in live.items()).encode())
        except OSError as exc:
            log.warning("the replay claims could not be compacted (%s)", exc.strerror or exc)
            return
        self._seen = live
        self._appended = 0
