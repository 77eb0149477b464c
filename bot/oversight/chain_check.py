"""The full chain check oversight relies on (CONTRACTS ### 14): never taken on trust. The leader runs a whole
`audit verify` (never resumed after the verified prefix) at start and every `[oversight] verify_minutes`, and
the console's chain page can run one now; the last result is a small record every replica reads.

Pure apart from the log it is handed (`run`) and the record store (`save`, `last`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from bot.audit.entries import iso_utc
from bot.oversight.evidence import whole_chain

NAMESPACE = "oversight"
KEY = "chain_check"


@dataclass(frozen=True)
class ChainCheck:
    """One full check: `ok`, entries checked (`count`), where the log ended (`last_seq`, `last_mac`), the first
    bad entry and why when it failed, when (`checked_at`, ISO UTC) and by whom (`by`: a replica or a person)."""

    ok: bool
    count: int
    last_seq: int | None
    last_mac: str | None
    bad_seq: int | None
    reason: str
    checked_at: str
    by: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, doc: dict[str, Any]) -> ChainCheck:
        return cls(**{k: doc.get(k) for k in cls.__dataclass_fields__})


def run(log: Any, now: datetime, by: str) -> ChainCheck:
    """Check the whole chain of `log` now."""
    head = log.head()
    result = whole_chain(log)
    return ChainCheck(
        ok=result.ok, count=result.count, last_seq=head["seq"] if head else None,
        last_mac=head["mac"] if head else None, bad_seq=result.bad_seq, reason=result.reason,
        checked_at=iso_utc(now), by=by,
    )


def save(records: Any, check: ChainCheck) -> None:
    """Keep `check` as the last full check (replaces the one before)."""
    records.put(NAMESPACE, KEY, check.as_dict())


def last(records: Any) -> ChainCheck | None:
    """The last full check any replica or person ran, or None when none ran yet (or its record is unreadable)."""
    try:
        doc = records.get(NAMESPACE, KEY)
    except ValueError:
        return None
    return ChainCheck.of(doc) if doc else None
