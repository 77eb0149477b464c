"""Evidence is never produced on trust: an export, a report or a discovery bundle is judged by a check of the
audit chain from its first line, never only the tail after the verified prefix.

Interactive reads (`/frs audit`, status) may trust the verified prefix (bot.store.audit_cache): they resume the
check after it. What that cannot see is an entry before the prefix edited in place without changing its length;
a record handed to a court, an auditor or the public must not rest on that. So these three check every line
(after their own `audit_access` entry is written, so the check covers it too) and, when the chain does not
verify, still give their output with the warning first and exit 4 (CONTRACTS, CLI): the broken record is itself
what an auditor must see.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bot import wording
from bot.audit.chain import VerifyResult
from bot.audit.entries import iso_utc
from bot.store.audit_log import AuditLog


def whole_chain(log: AuditLog) -> VerifyResult:
    """The chain checked from its first line (never resumed after the verified prefix)."""
    return log.verify()


def warning(result: VerifyResult) -> str | None:
    """The line that starts an output drawn from a log that does not verify, else None."""
    return None if result.ok else wording.audit_chain_broken(result.bad_seq, result.reason)


def verification_dict(log: AuditLog) -> dict[str, Any]:
    """A discovery bundle's verification.json: the whole chain checked at bundling time, after the bundle's own
    access entry was written, so it covers the record of the bundle's making."""
    result = whole_chain(log)
    data = {**asdict(result), "resumed_after_seq": None}
    data["checked_at"] = iso_utc()
    data["key_source"] = log.key_source
    return data
