"""What an audit entry holds (GO 375.01 D): its kinds, the closed list of search outcomes, the fields the log
itself adds, timestamps, and the JSON round-trip that makes what is MAC'd exactly what a reader parses.

Pure: the file that holds the log is bot.store.audit_log; the chain's line form and check are bot.audit.chain.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import Any

from bot.audit.chain import canonical

# "review": a search in examiner mode, waiting for its review (the request's final outcome is its release's).
OUTCOMES = ("candidates", "no_candidate", "denied", "error", "cancelled", "expired", "review")
# "refusal": a refused answer in a running request; "review": examiner review and supervisor approval;
# "alert", "alert_review", "sample_draw", "sample_review": oversight's own state (CONTRACTS ### 14).
KINDS = ("search", "gallery_change", "purge", "audit_access", "refusal", "review", "alert", "alert_review",
         "sample_draw", "sample_review")

RESERVED_FIELDS = frozenset({"kind", "seq", "ts", "prev", "mac"})


def iso_utc(dt: datetime | None = None) -> str:
    """UTC ISO 8601 with microseconds and 'Z' (now when dt is None; a naive dt is taken as UTC)."""
    dt = datetime.now(UTC) if dt is None else as_utc(dt)
    return dt.isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_ts(text: str) -> datetime:
    """Parse an ISO 8601 timestamp (as written in `ts`) into an aware UTC datetime."""
    return as_utc(datetime.fromisoformat(text))


def as_utc(value: datetime | str) -> datetime:
    """An aware UTC datetime from a datetime (naive means UTC) or an ISO 8601 string."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        # A bare date is ambiguous (whose midnight?): convert it with the configured timezone first.
        raise TypeError(f"expected a datetime or an ISO 8601 string, got {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays (distances, boxes) as plain numbers
        return value.tolist()
    raise TypeError(f"a value of type {type(value).__name__} cannot go into the audit log")


def normalise(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Round-trip the caller's fields through JSON so what we MAC is exactly what a reader will parse."""
    try:
        text = json.dumps(fields, default=json_default, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"audit fields must be JSON-serialisable: {exc}") from None
    body = json.loads(text)
    try:
        canonical(body)
    except ValueError as exc:  # e.g. a lone surrogate from a badly decoded message
        raise ValueError(f"audit fields must be valid Unicode text: {exc}") from None
    return body


def checked_body(kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a new entry of `kind`, normalised; ValueError for an unknown kind, a search without a valid
    outcome, a reserved field name or a value JSON cannot hold (every store appends only what passes)."""
    if kind not in KINDS:
        raise ValueError(f"unknown audit entry kind {kind!r}; expected one of {', '.join(KINDS)}")
    reserved = sorted(RESERVED_FIELDS & fields.keys())
    if reserved:
        raise ValueError(f"audit fields {', '.join(reserved)} are set by the log itself")
    if kind == "search" and fields.get("outcome") not in OUTCOMES:
        raise ValueError(f"search outcome {fields.get('outcome')!r} is not one of {', '.join(OUTCOMES)}")
    return normalise(fields)
