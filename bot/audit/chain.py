"""The audit chain's pure parts: the canonical line form and the streaming HMAC-chain check.

`bot.store.audit_log` writes and reads the file; this module only judges lines. `ChainCheck` can report its state after
any line (`state()`) and be resumed from it (`ChainCheck.resume`), so a reader that has verified a prefix of
the log once checks only what was appended since (see `bot.store.audit_cache`).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = ""  # `prev` of entry 1
ANCHOR_KIND = "purge_anchor"  # first line of a purged file; a marker, not an entry
TORN_TAIL = "incomplete final write (ignored)"
# The fields of ChainCheck.state(): what a resumed check needs to go on exactly as if it had read every line.
STATE_FIELDS = ("line", "expected_seq", "expected_prev", "count", "first_seq", "last_seq", "last_mac", "anchor",
                "anchor_confirmed")


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of `AuditLog.verify()`.

    ok: every entry's mac, seq and prev link check out. count: entries verified (before the failure, if any).
    bad_seq: the seq of the first bad entry (for an unparseable line: the seq expected there).
    reason: "mac mismatch", "seq gap: ...", "broken chain: ...", "unparseable line N", ...; when ok, ""
    or TORN_TAIL. line: 1-based line number of the failure.
    """

    ok: bool
    count: int
    bad_seq: int | None = None
    reason: str = ""
    line: int | None = None
    first_seq: int | None = None
    last_seq: int | None = None
    last_mac: str = ""
    torn_tail: bool = False
    anchor_seq: int | None = None
    # Set when only the tail was checked: the seq of the last entry of the verified prefix the check resumed
    # after (`AuditLog.verify(use_prefix=True)`); None when every line was checked from the start.
    resumed_after_seq: int | None = None


@dataclass(frozen=True)
class Damage:
    """What a failed check found, for a person: "edited" (an entry changed, replaced or unreadable), "deleted"
    (entries `first` to `last` missing) or "reordered" (entries out of their order)."""

    kind: str
    first: int | None = None
    last: int | None = None


_SEQ_GAP = re.compile(r"seq gap: expected (\d+), found (\d+)")


def damage(result: VerifyResult, seqs: Iterable[Any]) -> Damage:
    """Name what broke the chain. A seq gap is a deletion unless a missing seq turns up later in the file (then
    the entries were reordered); `seqs` are the seqs of the file's lines, in order. Anything else — a MAC that
    does not match, a line not in canonical form, a link to another chain, an unreadable line — is an edit."""
    gap = _SEQ_GAP.match(result.reason)
    if not gap:
        return Damage("edited")
    expected, found = int(gap.group(1)), int(gap.group(2))
    if found < expected or any(is_int(s) and expected <= s < found for s in seqs):
        return Damage("reordered")
    return Damage("deleted", expected, found - 1)


def canonical(obj: Any) -> bytes:
    """The one serialisation that is MAC'd and written: sorted keys, compact, UTF-8, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def entry_mac(key: bytes, obj: Any) -> str:
    """The MAC of an entry (or a signed side record): HMAC-SHA256 with `key` of its canonical form without `mac`."""
    body = {k: v for k, v in obj.items() if k != "mac"}
    return hmac.new(key, canonical(body), hashlib.sha256).hexdigest()


def signed_copy(key: bytes, body: Mapping[str, Any]) -> dict[str, Any]:
    """`body` with a `mac` made with `key`: for a log's side records, which are not entries (they carry a `kind`
    no entry has, so one can never pass for the other)."""
    out = {k: v for k, v in body.items() if k != "mac"}
    out["mac"] = entry_mac(key, out)
    return out


def mac_matches(key: bytes, obj: Any) -> bool:
    """Whether `obj` carries the MAC `key` makes of it (compared in constant time)."""
    mac = obj.get("mac")
    return isinstance(mac, str) and hmac.compare_digest(mac.encode("utf-8"), entry_mac(key, obj).encode())


def head_matches(actual_mac: str, published: str) -> bool:
    """Whether a published head's MAC (cut to at least its first 16 characters) is `actual_mac`'s."""
    return len(published) >= 16 and hmac.compare_digest(actual_mac[:len(published)].encode(), published.encode())


def parse_line(raw: bytes) -> dict | None:
    """A line's JSON object, or None when it is not one we could ever have written (bad UTF-8, lone
    surrogates, absurd nesting, not an object)."""
    try:
        obj = json.loads(raw)
        canonical(obj)  # must re-encode, or the MAC cannot even be computed
    except (ValueError, RecursionError):  # ValueError covers Unicode errors
        return None
    return obj if isinstance(obj, dict) else None


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class ChainCheck:
    """Streaming verifier: feed complete lines (without the newline) in file order, then finish()."""

    def __init__(self, mac: Callable[[dict], str]) -> None:
        self._mac = mac
        self.line = 0
        self.expected_seq = 1
        self.expected_prev = GENESIS
        self.count = 0
        self.first_seq: int | None = None
        self.last_seq: int | None = None
        self.last_mac = ""
        self.anchor: dict | None = None
        self.anchor_confirmed = False

    def state(self) -> dict[str, Any]:
        """Everything the check has learnt so far (JSON-safe): `resume` goes on from it."""
        return {name: getattr(self, name) for name in STATE_FIELDS}

    @classmethod
    def resume(cls, mac: Callable[[dict], str], state: dict[str, Any]) -> ChainCheck:
        """A check that goes on after the lines `state` (from `state()`) summarised."""
        check = cls(mac)
        for name in STATE_FIELDS:
            setattr(check, name, state[name])
        return check

    def _fail(self, bad_seq: int | None, reason: str) -> VerifyResult:
        return VerifyResult(
            ok=False, count=self.count, bad_seq=bad_seq, reason=reason, line=self.line,
            first_seq=self.first_seq, last_seq=self.last_seq, last_mac=self.last_mac,
            anchor_seq=self.anchor["anchor_seq"] if self.anchor else None,
        )

    def _signature_problem(self, obj: dict, raw: bytes) -> str | None:
        mac = obj.get("mac")
        if not isinstance(mac, str) or not hmac.compare_digest(mac.encode("utf-8"), self._mac(obj).encode()):
            return "mac mismatch"
        if canonical(obj) != raw:
            # Same content, different bytes (e.g. a duplicated key that some readers would see): still edited.
            return "line altered (not in canonical form)"
        return None

    def feed(self, raw: bytes) -> VerifyResult | None:
        """Check one line; return a failed VerifyResult at the first problem, else None."""
        self.line += 1
        obj = parse_line(raw)
        if obj is None:
            return self._fail(self.expected_seq, f"unparseable line {self.line}")
        if obj.get("kind") == ANCHOR_KIND:
            return self._feed_anchor(obj, raw)
        seq = obj.get("seq")
        if not (is_int(seq) and isinstance(obj.get("prev"), str) and isinstance(obj.get("ts"), str)):
            return self._fail(self.expected_seq, f"unparseable line {self.line}")
        problem = self._signature_problem(obj, raw)
        if problem:
            return self._fail(seq, problem)
        if seq != self.expected_seq:
            return self._fail(seq, f"seq gap: expected {self.expected_seq}, found {seq}")
        if obj["prev"] != self.expected_prev:
            return self._fail(seq, "broken chain: prev is not the previous entry's mac")
        if self.anchor and not self.anchor_confirmed and seq == self.anchor["purge_seq"]:
            if not (obj.get("kind") == "purge" and obj.get("through_seq") == self.anchor["anchor_seq"]
                    and obj.get("through_mac") == self.anchor["anchor_mac"]):
                return self._fail(seq, "purge entry does not match the purge marker on line 1")
            self.anchor_confirmed = True
        if self.first_seq is None:
            self.first_seq = seq
        self.count += 1
        self.last_seq = seq
        self.last_mac = obj["mac"]
        self.expected_seq = seq + 1
        self.expected_prev = obj["mac"]
        return None

    def _feed_anchor(self, obj: dict, raw: bytes) -> VerifyResult | None:
        anchor_seq = obj.get("anchor_seq")
        if self.line != 1:
            return self._fail(self.expected_seq, f"purge marker out of place on line {self.line}")
        if not (is_int(anchor_seq) and anchor_seq >= 1 and is_int(obj.get("purge_seq"))
                and isinstance(obj.get("anchor_mac"), str)):
            return self._fail(self.expected_seq, f"unparseable line {self.line}")
        problem = self._signature_problem(obj, raw)
        if problem:
            return self._fail(anchor_seq, f"purge marker on line 1: {problem}")
        # Entries 1..anchor_seq were purged; the chain resumes after the last removed entry.
        self.anchor = obj
        self.expected_seq = anchor_seq + 1
        self.expected_prev = obj["anchor_mac"]
        return None

    def finish(self, torn_tail: bool) -> VerifyResult:
        """The result once every complete line has been fed without failure."""
        if self.anchor and not self.anchor_confirmed:
            self.line += 1
            return self._fail(self.anchor["purge_seq"], "purge marker has no matching purge entry (log cut short?)")
        return VerifyResult(
            ok=True, count=self.count, reason=TORN_TAIL if torn_tail else "", first_seq=self.first_seq,
            last_seq=self.last_seq, last_mac=self.last_mac, torn_tail=torn_tail,
            anchor_seq=self.anchor["anchor_seq"] if self.anchor else None,
        )

