"""Sampled audits (CONTRACTS ### 14): each month a random sample of last month's searches that ran, drawn from a
fresh seed that is recorded, assigned to auditors, and reviewed against a short checklist.

Pure over audit entries. The leader (bot.slack.flow.sampling) appends the `sample_draw` entry this module
builds; the console (bot.console.samples) appends the `sample_review` entries. State lives only in those
entries, so anyone holding the log can re-check a draw (`recheck`).

The population: the month's search entries (by `ts`, in the configured timezone) whose search ran and whose
request has finished: outcome "candidates" or "no_candidate", or under examiner review once the review was
released (or cancelled after the gallery was searched). Refused, failed, cancelled and expired requests never
searched the gallery, so there is no use to audit against the checklist; a review still open on the day of
the draw is not finished and is left out (it belongs to no later month either).
"""
from __future__ import annotations

import hashlib
import math
import random
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot import wording
from bot.audit.entries import parse_ts
from bot.controls.examination import review_outcomes
from bot.oversight.review import local_midnight, month_days, parse_month, previous_month

RAN = ("candidates", "no_candidate")  # outcomes of a search that ran
# The checklist, in the order it is asked: (field, the question).
CHECKLIST: tuple[tuple[str, str], ...] = (
    ("purpose_fits", wording.SAMPLE_Q_PURPOSE),
    ("justification_states_facts", wording.SAMPLE_Q_JUSTIFICATION),
    ("call_documented", wording.SAMPLE_Q_CALL),
    ("lead_corroborated", wording.SAMPLE_Q_LEAD),
    ("caveat_kept", wording.SAMPLE_Q_CAVEAT),
)
ANSWERS = ("yes", "no", "cant_tell")
MAX_NOTE_CHARS = 2000


def population(entries: Iterable[Mapping[str, Any]], month: str, tz: str,
               through_seq: int | None = None) -> list[str]:
    """The sorted request ids of the month's finished searches that ran (see the module's docstring); only
    entries up to `through_seq` are read when given (what the log held when the draw was made)."""
    year, mon = parse_month(month)
    days = month_days(year, mon)
    start, end = local_midnight(days[0], tz), local_midnight(days[-1] + timedelta(days=1), tz)
    held = [e for e in entries if through_seq is None or int(e.get("seq") or 0) <= through_seq]
    reviewed = review_outcomes(held)
    ids = set()
    for entry in held:
        if entry.get("kind") != "search" or not entry.get("request_id"):
            continue
        if not start <= parse_ts(entry["ts"]) < end:
            continue
        outcome = entry.get("outcome")
        if outcome == "review":  # searched for an examiner: finished once released, or cancelled after the search
            outcome = reviewed.get(str(entry["request_id"]), {}).get("outcome", "review")
        if outcome in RAN or (entry.get("outcome") == "review" and outcome == "cancelled"):
            ids.add(str(entry["request_id"]))
    return sorted(ids)


def population_sha256(ids: Sequence[str]) -> str:
    """SHA-256 of the sorted request ids, one per line (UTF-8, each line ending in a newline)."""
    return hashlib.sha256("".join(f"{i}\n" for i in sorted(ids)).encode("utf-8")).hexdigest()


def sample_size(population_size: int, percent: float, minimum: int) -> int:
    """n = max(minimum, ceil(percent % of N)), never more than N."""
    return min(population_size, max(minimum, math.ceil(population_size * percent / 100)))


def draw(ids: Sequence[str], seed: int, n: int) -> list[str]:
    """The drawn request ids, in the order drawn: `random.Random(seed).sample(sorted(ids), n)`."""
    return random.Random(seed).sample(sorted(ids), n)


def new_seed() -> int:
    """A fresh 64-bit seed from the operating system's randomness: nobody can know it before the draw."""
    return secrets.randbits(64)


def person(value: Any) -> dict[str, str]:
    """{"id", "name"} from a dict with an id (and maybe a name) or a plain id."""
    if isinstance(value, Mapping):
        pid = str(value.get("id") or "")
        return {"id": pid, "name": str(value.get("name") or pid)}
    return {"id": str(value), "name": str(value)}


def assign(request_ids: Sequence[str], auditors: Sequence[Any]) -> list[dict[str, Any]]:
    """Each drawn request with its auditor, round robin in the order drawn over `auditors` (people, each once,
    in the order given); the auditor is None when nobody is configured (any auditor may then take it)."""
    people, seen = [], set()
    for a in auditors:
        p = person(a)
        if p["id"] and p["id"] not in seen:
            seen.add(p["id"])
            people.append(p)
    return [{"request_id": rid, "auditor": people[i % len(people)] if people else None}
            for i, rid in enumerate(request_ids)]


# --- The draw -----------------------------------------------------------------------------------------------------


def draws(entries: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each month's `sample_draw` entry (the first, should a second ever be written), by month."""
    found: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if entry.get("kind") == "sample_draw" and entry.get("month"):
            found.setdefault(str(entry["month"]), dict(entry))
    return found


def due_month(now: datetime, tz: str, entries: Iterable[Mapping[str, Any]]) -> str | None:
    """Last month ("YYYY-MM", in the configured timezone) when it has no draw yet, else None: from the 1st on,
    once (a server down on the 1st draws when it is back)."""
    month = previous_month(now, tz)
    return None if month in draws(entries) else month


def draw_fields(entries: Sequence[Mapping[str, Any]], month: str, tz: str, *, seed: int, percent: float,
                minimum: int, auditors: Sequence[Any], actor: Any) -> dict[str, Any] | None:
    """The `sample_draw` entry's fields for `month` (None when no search ran that month: nothing to sample).

    `entries` is the log as read now; `through_seq` records how far, so a re-check reads the same population
    even after later entries (a review released after the draw) would change it."""
    through = max((int(e.get("seq") or 0) for e in entries), default=0)
    ids = population(entries, month, tz, through)
    if not ids:
        return None
    n = sample_size(len(ids), percent, minimum)
    drawn = draw(ids, seed, n)
    return {
        "month": month,
        "timezone": tz,
        "seed": seed,
        "population": len(ids),
        "population_sha256": population_sha256(ids),
        "through_seq": through,
        "sample_percent": percent,
        "sample_min": minimum,
        "n": n,
        "request_ids": drawn,
        "assignments": assign(drawn, auditors),
        "actor": person(actor),
    }


@dataclass(frozen=True)
class Recheck:
    """A recorded draw checked again against the log: ok, or the reasons it does not hold."""

    month: str
    ok: bool
    problems: tuple[str, ...]


def recheck(entries: Sequence[Mapping[str, Any]], draw_entry: Mapping[str, Any]) -> Recheck:
    """Re-check a recorded draw: the same population from the log (as far as it was read then, in the timezone
    recorded), the same hash, the same size rule, and the same request ids drawn from the recorded seed."""
    month = str(draw_entry.get("month"))
    through = draw_entry.get("through_seq")
    ids = population(entries, month, str(draw_entry.get("timezone")), int(through) if through is not None else None)
    problems = []
    first = min((int(e.get("seq") or 0) for e in entries), default=1)
    if first > 1 and len(ids) < int(draw_entry.get("population") or 0):
        # Entries were purged under [retention] since the draw: what is gone cannot be checked, nor called altered.
        return Recheck(month, False, (wording.SAMPLE_RECHECK_PURGED,))
    if len(ids) != draw_entry.get("population"):
        problems.append(wording.sample_recheck_population(len(ids), draw_entry.get("population")))
    if population_sha256(ids) != draw_entry.get("population_sha256"):
        problems.append(wording.SAMPLE_RECHECK_HASH)
    n = sample_size(len(ids), float(draw_entry.get("sample_percent") or 0), int(draw_entry.get("sample_min") or 0))
    if n != draw_entry.get("n"):
        problems.append(wording.sample_recheck_size(n, draw_entry.get("n")))
    if draw(ids, int(draw_entry.get("seed") or 0), min(n, len(ids))) != list(draw_entry.get("request_ids") or []):
        problems.append(wording.SAMPLE_RECHECK_IDS)
    return Recheck(month, not problems, tuple(problems))


# --- The checklist ------------------------------------------------------------------------------------------------


def reviews(entries: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Each sampled request's `sample_review` (the first one), by (month, request id)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in entries:
        if entry.get("kind") == "sample_review":
            found.setdefault((str(entry.get("month")), str(entry.get("request_id"))), dict(entry))
    return found


class ReviewRefused(ValueError):
    """A checklist that cannot be recorded; its message is a sentence for the person who sent it."""


def review_fields(entries: Sequence[Mapping[str, Any]], month: str, request_id: str, form: Mapping[str, str],
                  actor: Any) -> dict[str, Any]:
    """The `sample_review` entry's fields from a checklist form (each CHECKLIST field yes / no / cant_tell, and
    `note`). Refused (ReviewRefused) when the request is not in that month's sample, was reviewed already, was
    made by the reviewer (nobody audits their own search) or examined or approved by them, an answer is missing, or the request is found wanting
    without a note saying why."""
    drawn = draws(entries).get(month)
    if drawn is None or request_id not in (drawn.get("request_ids") or []):
        raise ReviewRefused(wording.sample_not_drawn(request_id, month))
    if (month, request_id) in reviews(entries):
        raise ReviewRefused(wording.sample_reviewed_already(request_id))
    who = person(actor)
    if who["id"] in requesters(entries, request_id):
        raise ReviewRefused(wording.SAMPLE_OWN_REQUEST)
    if who["id"] in deciders(entries, request_id):
        raise ReviewRefused(wording.SAMPLE_TOOK_PART)
    answers = {}
    for name, _question in CHECKLIST:
        value = form.get(name)
        if value not in ANSWERS:
            raise ReviewRefused(wording.SAMPLE_ANSWER_MISSING)
        answers[name] = value
    note = (form.get("note") or "").strip()
    if len(note) > MAX_NOTE_CHARS:
        raise ReviewRefused(wording.sample_note_too_long(MAX_NOTE_CHARS))
    wanting = "no" in answers.values()
    if wanting and not note:
        raise ReviewRefused(wording.SAMPLE_NOTE_NEEDED)
    return {"request_id": request_id, "month": month, "answers": answers, "note": note, "actor": who,
            "found_wanting": wanting}


def requesters(entries: Iterable[Mapping[str, Any]], request_id: str) -> set[str]:
    """The ids of whoever requested a request (its search entries' requester)."""
    out = set()
    for entry in entries:
        if entry.get("kind") == "search" and str(entry.get("request_id")) == request_id:
            who = entry.get("requester")
            out.add(str(who.get("id")) if isinstance(who, Mapping) else str(who))
    return out


def deciders(entries: Iterable[Mapping[str, Any]], request_id: str) -> set[str]:
    """The ids of whoever examined, released or approved a request (its `review` entries' `by`)."""
    return {str(e["by"]) for e in entries if e.get("kind") == "review" and str(e.get("request_id")) == request_id
            and e.get("by") and e.get("by") != "system"}


# --- Summaries ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonthSummary:
    """One month's sampled audit: how many were sampled, reviewed and found wanting (0s when not drawn yet)."""

    month: str
    drawn: bool
    population: int
    sampled: int
    reviewed: int
    found_wanting: int


def summary(entries: Iterable[Mapping[str, Any]], month: str) -> MonthSummary:
    """The month's sampled audit in numbers (reviews recorded so far)."""
    return summaries(entries).get(month) or MonthSummary(month, False, 0, 0, 0, 0)


def summaries(entries: Iterable[Mapping[str, Any]]) -> dict[str, MonthSummary]:
    """Every drawn month's sampled audit in numbers, read in one pass over the entries."""
    entries = list(entries)
    done = reviews(entries)
    out = {}
    for month, drawn in draws(entries).items():
        ids = set(drawn.get("request_ids") or [])
        found = [done[(month, rid)] for rid in ids if (month, rid) in done]
        out[month] = MonthSummary(month, True, int(drawn.get("population") or 0), len(ids), len(found),
                                  sum(1 for r in found if r.get("found_wanting")))
    return out


@dataclass(frozen=True)
class SampledRequest:
    """One sampled request as the console lists it."""

    request_id: str
    auditor: dict[str, str] | None
    review: dict[str, Any] | None

    @property
    def reviewed(self) -> bool:
        return self.review is not None

    @property
    def found_wanting(self) -> bool:
        return bool(self.review and self.review.get("found_wanting"))


def sampled_requests(entries: Iterable[Mapping[str, Any]], month: str) -> list[SampledRequest]:
    """The month's sampled requests in the order drawn, each with its auditor and review (None when not yet)."""
    entries = list(entries)
    drawn = draws(entries).get(month)
    if drawn is None:
        return []
    done = reviews(entries)
    auditors = {a.get("request_id"): a.get("auditor") for a in drawn.get("assignments") or []}
    return [SampledRequest(rid, auditors.get(rid), done.get((month, rid))) for rid in drawn.get("request_ids") or []]
