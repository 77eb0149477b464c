"""Examiner review of a search's candidates before any reach the requester (GO 375.01 A.3, B.3): a pure state
machine, like bot.request.transitions. Named "examination" so it is never confused with command staff's audit review
(bot.oversight.review, `/frs audit`).

A search in `[review] mode = "examiner"` yields no candidates to the requester: its candidates within the looser
`review_fpir` (at most `review_candidates`) are queued for a trained examiner. An examiner claims the
examination (never the requester), decides each candidate (possible lead / not the same person /
inconclusive), writes a note for every possible lead (which features agree), and releases it. With
`reviewers_required = 2` a second examiner, never the first, decides each candidate blind (without seeing the
first decisions); a candidate becomes a lead only when both say possible lead, any disagreement is released as
inconclusive with both notes kept, and both ruling it out rules it out. Ruled-out candidates never reach the
requester.

Each input takes the current `Examination` and returns the new one plus effects (plain dataclasses the adapter
renders and audits as `review` entries). Time is passed in as `now`.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot import wording
from bot.controls.records import JsonRecord

POSSIBLE_LEAD, NOT_SAME, INCONCLUSIVE = "possible_lead", "not_same_person", "inconclusive"
DECISIONS = (POSSIBLE_LEAD, NOT_SAME, INCONCLUSIVE)
QUEUED, CLAIMED, RELEASED, CANCELLED = "queued", "claimed", "released", "cancelled"
OPEN_STATUSES = (QUEUED, CLAIMED)
MIN_NOTE_CHARS = 10  # a possible lead's note says which features agree: more than a word
MAX_NOTE_CHARS = 1000


def _iso(now: datetime) -> str:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("examination times must be timezone-aware (UTC)")
    return now.isoformat()


# --------------------------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class Effect:
    """Something the adapter must do (redraw the review card, tell the requester, audit)."""


@dataclass(frozen=True)
class Audit(Effect):
    """A `review` audit entry: `action` (queued, claim, give_back, decision, release, timeout, cancel) by `by`,
    and for a decision `subject_id`, `decision`, `note`; `fields` adds what the action needs."""

    action: str
    by: str
    subject_id: str | None = None
    decision: str | None = None
    note: str | None = None
    fields: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Refused(Effect):
    """An input that changes nothing, with the reason to tell only the person who sent it."""

    user_id: str
    reason: str


@dataclass(frozen=True)
class Ping(Effect):
    """No examiner claimed it in `claim_minutes`: remind the examiner group."""


@dataclass(frozen=True)
class Released(Effect):
    """The review is over: tell the requester (caveat first) the released leads and inconclusive candidates;
    ruled-out candidates are never shown. `leads` and `inconclusive` are candidate dicts with `notes`
    ([{"by", "decision", "note"}])."""

    leads: tuple[dict[str, Any], ...]
    inconclusive: tuple[dict[str, Any], ...]
    ruled_out: int


@dataclass(frozen=True)
class Ended(Effect):
    """Cancelled by the requester while unclaimed: the requester is told; nothing is released."""


# ------------------------------------------------------------------------------------------------ state


@dataclass
class Examination(JsonRecord):
    """One search's review, as persisted between inputs."""

    request_id: str
    requester_id: str
    call_number: str
    purpose: str
    justification: str
    candidates: list[dict[str, Any]]  # rank, subject_id, name, record_ref, distance, fpir_estimate, ...
    reviewers_required: int
    queued_at: str
    updated_at: str
    status: str = QUEUED
    claimed_by: str | None = None
    claimed_at: str | None = None
    # One per examiner who released: {"by", "released_at", "decisions": {subject_id: {"decision", "note", "at"}}}
    rounds: list[dict[str, Any]] = field(default_factory=list)
    current: dict[str, dict[str, str]] = field(default_factory=dict)  # the claimer's decisions so far
    pinged_at: str | None = None
    released_at: str | None = None
    source: dict[str, Any] = field(default_factory=dict)  # the adapter's: channel, thread, card ts, dialog id...

    @property
    def urgent(self) -> bool:
        """Purpose 2 (an imminent threat to health or safety): listed first, marked urgent."""
        return self.purpose == "threat"

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def ended_at(self) -> str | None:
        """When it was released or cancelled (None while open): retention counts from there."""
        return None if self.open else (self.released_at or self.updated_at)

    def examiners(self) -> list[str]:
        """Everyone who released a round, in order."""
        return [r["by"] for r in self.rounds]


Result = tuple[Examination, list[Effect]]


def review_candidates(candidates: list[dict[str, Any]], review_fpir: float, limit: int) -> list[dict[str, Any]]:
    """The candidates an examiner sees: false-match estimate within `review_fpir` (a candidate with no estimate
    is kept: a person decides), best first, at most `limit`."""
    kept = [c for c in candidates if c.get("fpir_estimate") is None or float(c["fpir_estimate"]) <= review_fpir]
    return sorted(kept, key=lambda c: c.get("rank") or 0)[:limit]


def queue(*, request_id: str, requester_id: str, call_number: str, purpose: str, justification: str,
          candidates: list[dict[str, Any]], reviewers_required: int, now: datetime,
          source: dict[str, Any] | None = None) -> Result:
    """A search's candidates wait for an examiner."""
    if reviewers_required not in (1, 2):
        raise ValueError("reviewers_required is 1 or 2")
    stamp = _iso(now)
    exam = Examination(request_id=request_id, requester_id=requester_id, call_number=call_number, purpose=purpose,
                       justification=justification, candidates=copy.deepcopy(candidates),
                       reviewers_required=reviewers_required, queued_at=stamp, updated_at=stamp,
                       source=dict(source or {}))
    fields = (("candidates", len(candidates)), ("reviewers_required", reviewers_required),
              ("urgent", exam.urgent))
    return exam, [Audit("queued", "system", fields=fields)]


def claim(exam: Examination, examiner: str, now: datetime) -> Result:
    """An examiner takes the review; others see who has it. Never the requester, never the same examiner for
    a second blind round."""
    if not exam.open:
        return exam, [Refused(examiner, wording.EXAM_CLOSED)]
    if examiner in (exam.requester_id, exam.source.get("requester_slack")):  # a CLI requester's Slack account too
        return exam, [Refused(examiner, wording.EXAM_NOT_YOUR_OWN)]
    if examiner in exam.examiners():
        return exam, [Refused(examiner, wording.EXAM_SECOND_EXAMINER)]
    if examiner == exam.source.get("approved_by"):
        return exam, [Refused(examiner, wording.EXAM_APPROVER)]
    if exam.status == CLAIMED:
        if exam.claimed_by == examiner:
            return exam, []
        return exam, [Refused(examiner, wording.exam_claimed_by(exam.claimed_by or ""))]
    e = exam.copy()
    e.status, e.claimed_by, e.claimed_at, e.updated_at, e.current = CLAIMED, examiner, _iso(now), _iso(now), {}
    return e, [Audit("claim", examiner, fields=(("round", len(e.rounds) + 1),))]


def give_back(exam: Examination, examiner: str, now: datetime) -> Result:
    """The claimer returns it to the queue; their decisions so far are dropped (the next examiner starts fresh)."""
    if exam.status != CLAIMED or exam.claimed_by != examiner:
        return exam, [Refused(examiner, wording.EXAM_NOT_CLAIMED_BY_YOU)]
    e = _unclaim(exam, now)
    return e, [Audit("give_back", examiner)]


def _unclaim(exam: Examination, now: datetime) -> Examination:
    e = exam.copy()
    e.status, e.claimed_by, e.claimed_at, e.current, e.updated_at = QUEUED, None, None, {}, _iso(now)
    return e


def decide(exam: Examination, examiner: str, subject_id: str, decision: str, note: str, now: datetime) -> Result:
    """The claimer's decision on one candidate. A possible lead needs a note saying which features agree."""
    if exam.status != CLAIMED or exam.claimed_by != examiner:
        return exam, [Refused(examiner, wording.EXAM_NOT_CLAIMED_BY_YOU)]
    if decision not in DECISIONS:
        return exam, [Refused(examiner, wording.EXAM_UNKNOWN_DECISION)]
    if subject_id not in {c["subject_id"] for c in exam.candidates}:
        return exam, [Refused(examiner, wording.EXAM_UNKNOWN_CANDIDATE)]
    note = " ".join(str(note or "").split())[:MAX_NOTE_CHARS]
    if decision == POSSIBLE_LEAD and len(note) < MIN_NOTE_CHARS:
        return exam, [Refused(examiner, wording.exam_note_needed(MIN_NOTE_CHARS))]
    e = exam.copy()
    e.current[subject_id] = {"decision": decision, "note": note, "at": _iso(now)}
    e.updated_at = _iso(now)
    return e, [Audit("decision", examiner, subject_id=subject_id, decision=decision, note=note or None,
                     fields=(("round", len(e.rounds) + 1),))]


def undecided(exam: Examination) -> list[str]:
    """Subject ids the claimer has not decided yet."""
    return [c["subject_id"] for c in exam.candidates if c["subject_id"] not in exam.current]


def release(exam: Examination, examiner: str, now: datetime) -> Result:
    """The claimer releases their decisions. With a second examiner required and only one round done, the
    review goes back to the queue, blind; otherwise the requester is told what the decisions allow."""
    if exam.status != CLAIMED or exam.claimed_by != examiner:
        return exam, [Refused(examiner, wording.EXAM_NOT_CLAIMED_BY_YOU)]
    missing = undecided(exam)
    if missing:
        return exam, [Refused(examiner, wording.exam_undecided(len(missing)))]
    e = exam.copy()
    e.rounds.append({"by": examiner, "released_at": _iso(now), "decisions": copy.deepcopy(e.current)})
    e = _unclaim(e, now)
    if len(e.rounds) < e.reviewers_required:
        return e, [Audit("release", examiner, fields=(("round", len(e.rounds)), ("final", False)))]
    leads, inconclusive, ruled_out = outcome(e)
    e.status, e.released_at = RELEASED, _iso(now)
    shown = tuple(c["subject_id"] for c in leads + inconclusive)
    audit = Audit("release", examiner, fields=(("round", len(e.rounds)), ("final", True), ("shown", shown),
                                                ("leads", tuple(c["subject_id"] for c in leads)),
                                                ("ruled_out", ruled_out)))
    return e, [audit, Released(tuple(leads), tuple(inconclusive), ruled_out)]


def outcome(exam: Examination) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """(leads, inconclusive, ruled-out count) from the released rounds: a lead when every examiner said
    possible lead; ruled out when every examiner said not the same person; else inconclusive. Each candidate
    carries every examiner's `notes`."""
    leads, inconclusive, ruled_out = [], [], 0
    for c in exam.candidates:
        said = [(r["by"], r["decisions"][c["subject_id"]]) for r in exam.rounds]
        decisions = {d["decision"] for _, d in said}
        item = {**c, "notes": [{"by": by, "decision": d["decision"], "note": d.get("note") or ""} for by, d in said]}
        if decisions == {POSSIBLE_LEAD}:
            leads.append(item)
        elif decisions == {NOT_SAME}:
            ruled_out += 1
        else:
            inconclusive.append(item)
    return leads, inconclusive, ruled_out


def cancel(exam: Examination, user: str, now: datetime) -> Result:
    """The requester withdraws the request while no examiner has claimed it."""
    if user != exam.requester_id:
        return exam, [Refused(user, wording.EXAM_CANCEL_REQUESTER_ONLY)]
    if exam.status == CANCELLED:
        return exam, [Refused(user, wording.EXAM_CANCEL_ALREADY)]
    if exam.status == RELEASED:
        return exam, [Refused(user, wording.EXAM_CANCEL_RELEASED)]
    if exam.status != QUEUED or exam.rounds:  # claimed, or back in the queue for its second examiner
        return exam, [Refused(user, wording.EXAM_CANCEL_TOO_LATE)]
    e = exam.copy()
    e.status, e.updated_at = CANCELLED, _iso(now)
    return e, [Audit("cancel", user), Ended()]


def requester_status(exam: Examination) -> str:
    """Where the review stands, as its requester is told (`status` in Slack or on the command line)."""
    return wording.exam_status_requester(exam.status, claimed_by=exam.claimed_by, decided=len(exam.current),
                                         total=len(exam.candidates), round_no=len(exam.rounds) + 1,
                                         rounds=exam.reviewers_required)


def on_tick(exam: Examination, now: datetime, *, claim_minutes: int, claim_timeout_minutes: int) -> Result:
    """A claim left idle for `claim_timeout_minutes` returns to the queue; a review unclaimed for
    `claim_minutes` (since it was queued or last pinged) pings the examiner group again."""
    if exam.status == CLAIMED and now - datetime.fromisoformat(exam.updated_at) >= timedelta(
            minutes=claim_timeout_minutes):
        e = _unclaim(exam, now)
        return e, [Audit("timeout", "system", fields=(("idle_claim_of", exam.claimed_by),))]
    if exam.status == QUEUED:
        since = datetime.fromisoformat(exam.pinged_at or exam.updated_at)
        if now - since >= timedelta(minutes=claim_minutes):
            e = exam.copy()
            e.pinged_at = _iso(now)
            return e, [Ping()]
    return exam, []


def queue_order(exams: list[Examination]) -> list[Examination]:
    """Open reviews as examiners should take them: urgent (purpose 2) first, then oldest first."""
    return sorted((e for e in exams if e.open), key=lambda e: (not e.urgent, e.queued_at))


def blind_view(exam: Examination, examiner: str) -> dict[str, dict[str, str]]:
    """The decisions `examiner` may see: only their own, while they hold the claim (never another round's)."""
    return copy.deepcopy(exam.current) if exam.claimed_by == examiner else {}


def review_outcomes(entries: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per request id under examiner review: its final outcome (a release with leads -> "candidates", without ->
    "no_candidate"; a cancel -> "cancelled"; still open -> "review"), when it was queued and released, and the
    leads and ruled-out counts of its release."""
    out: dict[str, dict[str, Any]] = {}
    for e in entries:
        if e.get("kind") != "review" or not e.get("request_id"):
            continue
        item = out.setdefault(str(e["request_id"]), {"outcome": "review", "queued_at": None, "released_at": None,
                                                     "leads": 0, "ruled_out": 0, "decisions": []})
        action = e.get("action")
        if action == "queued":
            item["queued_at"] = e.get("ts")
        elif action == "decision":
            item["decisions"].append({"ts": e.get("ts"), "by": e.get("by"), "subject_id": e.get("subject_id"),
                                      "decision": e.get("decision"), "note": e.get("note")})
        elif action == "release" and e.get("final"):
            item["outcome"] = "candidates" if e.get("leads") else "no_candidate"
            item.update(released_at=e.get("ts"), leads=len(e.get("leads") or []), ruled_out=int(e.get("ruled_out") or 0),
                        shown=list(e.get("shown") or []))
        elif action == "cancel":
            item["outcome"] = "cancelled"
    return out


def as_listed(reviewed: Mapping[str, Any]) -> dict[str, Any]:
    """What a search entry under review is listed by (one item of `review_outcomes`): its final outcome and, once
    released, how many candidates the requester was shown (`released`) and how many the examiners ruled out.
    The search entry's own `candidates` are what the examiner saw, never what the requester got."""
    if not reviewed.get("released_at"):
        return {"outcome": reviewed["outcome"]}
    return {"outcome": reviewed["outcome"], "released": len(reviewed.get("shown") or []),
            "ruled_out": int(reviewed.get("ruled_out") or 0)}
