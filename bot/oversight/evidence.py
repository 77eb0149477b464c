"""Evidence is never produced on trust: an export, a report or a discovery bundle checks the audit chain from
its first line, and is refused when it does not verify.

Interactive reads (`/frs audit`, status) may trust the verified prefix (bot.store.audit_cache): they resume the
check after it. What that cannot see is an entry before the prefix edited in place without changing its length;
a record handed to a court, an auditor or the public must not rest on that, so these three check every line.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict
from typing import Any

from bot import wording
from bot.audit.chain import VerifyResult
from bot.audit.entries import iso_utc
from bot.store.audit_log import AuditError, AuditLog


class ChainBroken(Exception):
    """The whole-chain check failed, so nothing was produced; str() is the sentence for the person who asked."""

    def __init__(self, what: str, result: VerifyResult) -> None:
        self.what = what
        self.result = result
        super().__init__(wording.evidence_refused(what, result.bad_seq, result.reason))


def require_whole_chain(log: AuditLog, actor: dict[str, str], action: str, query: dict[str, Any]) -> VerifyResult:
    """Check every line of the log (never from the verified prefix). When it does not verify, record the refused
    `action` ("export", "report", "bundle") as an `audit_access` entry and raise ChainBroken."""
    result = log.verify()
    if result.ok:
        return result
    # Refused either way; recorded when the log still takes entries (a break before its tail does not stop that).
    with contextlib.suppress(AuditError, OSError):
        log.record_access(actor, action, query, results=0, outcome="error", broken_at_seq=result.bad_seq)
    raise ChainBroken(action, result)


def verification_dict(log: AuditLog) -> dict[str, Any]:
    """A discovery bundle's verification.json, after `require_whole_chain` checked every line: the lines since
    (the bundle's own access entry) checked on top of that, so it covers every line. ChainBroken when it fails."""
    result = log.verify(use_prefix=True)
    if not result.ok:
        raise ChainBroken("bundle", result)
    data = {**asdict(result), "resumed_after_seq": None}  # the prefix it resumed after was checked just now
    data["checked_at"] = iso_utc()
    data["key_source"] = log.key_source
    return data
