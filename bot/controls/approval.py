"""Supervisor approval of a command-line search ([review] approval "flagged" | "always"): a pure state machine.

A Slack request waits for approval inside its dialog (bot.request.transitions, Step.AWAITING_APPROVAL). A CLI request has no
dialog and no thread, so it waits here: the answers, who asked, the chosen face's template (made after the
attestation, as in Slack) and why it waits. The server posts the approval card at its next tick; a supervisor
(never the requester, by OS account or by the Slack account it is mapped to) approves or refuses with a reason;
unanswered within `approval_minutes` it expires. The template (and the face's crop) is dropped as soon as the request is decided: a
refused or expired request keeps no biometric data, and an approved one keeps it only until its search ran.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot import policy
from bot.controls.records import JsonRecord

PENDING, APPROVED, REFUSED, EXPIRED, SEARCHED, CANCELLED = (
    "pending", "approved", "refused", "expired", "searched", "cancelled")


def approval_reason(approval: str, flags: tuple[str, ...] | list[str]) -> str | None:
    """Why a request must wait for a supervisor ("always" or "flagged"), or None when it need not."""
    if approval == "always":
        return "always"
    if approval == "flagged" and flags:
        return "flagged"
    return None


# --------------------------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class Effect:
    """Something the adapter must do."""


@dataclass(frozen=True)
class Audit(Effect):
    """A `review` audit entry (stage "approval"): `action` approve, refuse or timeout, by `by`, with `reason`."""

    action: str
    by: str
    reason: str = ""


@dataclass(frozen=True)
class Search(Effect):
    """Approved: run the search from the kept template (the requester's authority checked again first)."""


@dataclass(frozen=True)
class Ended(Effect):
    """Refused ("denied") or expired ("expired"): the request ends with that outcome and `reason`."""

    outcome: str
    reason: str


@dataclass(frozen=True)
class Refused(Effect):
    """An answer that changes nothing, for the person who gave it only."""

    user_id: str
    why: str  # "requester" (a supervisor who asked), "closed" (decided already), "not_requester" (a cancel)


# ------------------------------------------------------------------------------------------------ state


@dataclass
class Pending(JsonRecord):
    """One CLI request waiting for a supervisor, as persisted."""

    request_id: str
    requester: dict[str, Any]  # {"id": "os:alice", "name": "alice (uid 1000)"}
    slack_user: str  # the Slack account the OS user is mapped to ([review] cli_slack_users), or ""
    answers: dict[str, Any]  # call_number, purpose, justification, attested
    reason: str  # "always" | "flagged"
    source: dict[str, Any]  # the search entry's source fields (cli, uploaded_at, image_name)
    probe_sha256: str
    faces: list[dict[str, Any]]
    face_index: int
    encoding: list[float] | None
    created_at: str
    face_jpeg: str = ""  # base64 of the chosen face's 320 px crop, for an examiner's comparison sheet
    status: str = PENDING
    decided_by: str = ""
    decision_reason: str = ""
    decided_at: str = ""
    card_ts: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return self.status in (PENDING, APPROVED)

    @property
    def ended_at(self) -> str | None:
        """When it was decided, expired or cancelled (None while open): retention counts from there."""
        return None if self.open else (self.decided_at or self.created_at)

    def policy_answers(self) -> policy.Answers:
        """The answers as the policy checks and the audit record them."""
        a = self.answers
        return policy.Answers(call_number=a.get("call_number"), purpose=a.get("purpose"),
                              justification=a.get("justification"), attested=bool(a.get("attested")))


Result = tuple[Pending, list[Effect]]


def _iso(now: datetime) -> str:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("approval times must be timezone-aware (UTC)")
    return now.isoformat()


def decide(p: Pending, *, approved: bool, by: str, reason: str, now: datetime) -> Result:
    """A supervisor's answer. Never the requester; only while pending."""
    if p.status != PENDING:
        return p, [Refused(by, "closed")]
    if by in (p.requester.get("id"), p.slack_user):
        return p, [Refused(by, "requester")]
    d = p.copy()
    d.status, d.decided_by, d.decision_reason, d.decided_at = (APPROVED if approved else REFUSED), by, reason, _iso(now)
    if approved:
        return d, [Audit("approve", by, reason), Search()]
    d.encoding, d.face_jpeg = None, ""
    return d, [Audit("refuse", by, reason), Ended("denied", reason)]


def cancel(p: Pending, by: str, now: datetime) -> Result:
    """The requester (by OS account) withdraws it while no supervisor has decided; the card shows it at the
    server's next tick (`card_stale`)."""
    if by != p.requester.get("id"):
        return p, [Refused(by, "not_requester")]
    if p.status != PENDING:
        return p, [Refused(by, "closed")]
    d = p.copy()
    d.status, d.decided_at, d.encoding, d.face_jpeg = CANCELLED, _iso(now), None, ""
    d.extra = {**d.extra, "card_stale": True}
    return d, [Audit("cancel", by), Ended("cancelled", "")]


def on_tick(p: Pending, now: datetime, approval_minutes: int) -> Result:
    """Unanswered within `approval_minutes`: it expires (the template dropped)."""
    if p.status != PENDING or now - datetime.fromisoformat(p.created_at) < timedelta(minutes=approval_minutes):
        return p, []
    d = p.copy()
    d.status, d.decided_at, d.encoding, d.face_jpeg = EXPIRED, _iso(now), None, ""
    return d, [Audit("timeout", "system"), Ended("expired", "")]


def card_shown(p: Pending) -> Result:
    """The server redrew the card after a change made elsewhere (a cancel from the command line)."""
    d = p.copy()
    d.extra = {k: v for k, v in d.extra.items() if k != "card_stale"}
    return d, []


def searched(p: Pending, now: datetime) -> Result:
    """The approved search ran: the template is no longer kept here."""
    d = p.copy()
    d.status, d.encoding, d.face_jpeg = SEARCHED, None, ""
    d.extra = {**d.extra, "searched_at": _iso(now)}
    return d, []
