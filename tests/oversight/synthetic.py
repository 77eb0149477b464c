"""An ordinary month of a department's audit log, made up from a seed (CONTRACTS ### 14): the month on which every
alert rule stays silent, and the haystack the tests inject one anomaly into at a time. The bench
(bench/oversight.py) makes a year of it.

What makes it ordinary: each requester works a fixed shift (days 07-15, evenings 15-23, nights 23-07, across
midnight) on five days a week and runs 0-3 searches a shift (nights at most 2, so no local day holds more than
4); the outcomes are a department's mix (leads, no candidate, a few refused, cancelled, expired, failed, and a
share under examiner review with its release); about one request in ten has one refused answer; candidates come
from a gallery of a million subjects; a photo is at most searched twice (a second face on it); no justification
names a protected class. Entries are plain dicts as the log holds them (kind, seq, ts and the fields), in log
order.
"""
from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

TZ = "America/Los_Angeles"
SHIFTS = {"day": 7, "evening": 15, "night": 23}  # start hour; each lasts 8 hours
GALLERY = 1_000_000
PURPOSES = ("investigation", "identify_victim", "missing_person", "imminent_threat")
JUSTIFICATIONS = (
    "Armed robbery at the Main Street pharmacy; store camera shows the suspect at the register, report {n}.",
    "Burglary of a garage on Elm Avenue; doorbell camera caught the person carrying tools, report {n}.",
    "Assault outside the transit centre; a witness filmed the attacker on a phone, report {n}.",
    "Unidentified victim found unconscious near the river trail; no identification on them, report {n}.",
    "Reported missing adult; family gave a recent photo, last seen at the bus depot, report {n}.",
)
# Outcomes of a request and their share of an ordinary month.
OUTCOME_WEIGHTS = {"candidates": 33, "no_candidate": 42, "review": 8, "denied": 5, "cancelled": 6, "expired": 4,
                   "error": 2}
PER_SHIFT = (0, 1, 1, 2, 2, 3)  # searches in one shift, drawn uniformly (nights drop the 3)


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    shift: str
    days_off: tuple[int, int]  # weekdays (0 = Monday) they do not work


def people(count: int, rng: random.Random) -> list[Person]:
    """`count` requesters, a third on each shift, each with two days off a week."""
    out = []
    for i in range(count):
        off = rng.randrange(7)
        out.append(Person(f"U{i + 1:04d}SYN", f"Officer {i + 1:04d}", tuple(SHIFTS)[i % 3], (off, (off + 1) % 7)))
    return out


class Log:
    """Entries being made up, kept in time order when `entries()` is read."""

    def __init__(self) -> None:
        self._items: list[tuple[datetime, int, dict[str, Any]]] = []

    def add(self, at: datetime, kind: str, /, **fields: Any) -> dict[str, Any]:
        entry = {"kind": kind, "ts": at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
                 **fields}
        self._items.append((at, len(self._items), entry))
        return entry

    def extend(self, entries: Iterable[dict[str, Any]]) -> None:
        for entry in entries:
            self._items.append((datetime.fromisoformat(entry["ts"]), len(self._items), dict(entry)))

    def entries(self) -> list[dict[str, Any]]:
        """Every entry in time order, numbered from 1."""
        out = []
        for seq, (_at, _n, entry) in enumerate(sorted(self._items, key=lambda item: item[:2]), start=1):
            entry["seq"] = seq
            out.append(entry)
        return out


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def search(log: Log, at: datetime, who: Person | dict, rid: str, outcome: str, *, probe: str | None = None,
           subjects: tuple[str, ...] = (), flags: tuple[str, ...] = (), rng: random.Random | None = None
           ) -> dict[str, Any]:
    """One `search` entry as the bot writes it (the fields the rules and the console read)."""
    rng = rng or random.Random(rid)
    requester = {"id": who.id, "name": who.name} if isinstance(who, Person) else dict(who)
    fields: dict[str, Any] = {
        "outcome": outcome, "request_id": rid, "requester": requester, "source": "slack",
        "call_number": f"26-{rng.randrange(10**6):06d}", "purpose": rng.choice(PURPOSES),
        "justification": rng.choice(JUSTIFICATIONS).format(n=f"26-{rng.randrange(10**4):04d}"),
        "attestation": {"attested": outcome != "denied", "text": "I attest"}, "flags": list(flags),
    }
    if outcome == "denied":
        fields["denied"] = ["the justification does not state facts (GO 375.01 B.1)"]
    if outcome in ("candidates", "no_candidate", "review", "error"):
        fields["probe_sha256"] = probe or sha(rid)
        fields["face_index"] = 1
    if outcome in ("candidates", "review"):
        fields["candidates"] = [{"rank": n + 1, "subject_id": s, "distance": round(0.3 + 0.05 * n, 4)}
                                for n, s in enumerate(subjects)]
    return log.add(at, "search", **fields)


def release(log: Log, at: datetime, rid: str, shown: tuple[str, ...], examiner: str = "UEXAM01") -> None:
    """An examiner review's queued and final release entries: `shown` reached the requester."""
    log.add(at - timedelta(minutes=20), "review", action="queued", request_id=rid, by={"id": examiner})
    log.add(at, "review", action="release", final=True, request_id=rid, shown=list(shown), leads=list(shown),
            ruled_out=0, by={"id": examiner, "name": "Examiner One"})


def ordinary(start: date, days: int, *, requesters: int = 24, seed: int = 18, tz: str = TZ,
             log: Log | None = None) -> Log:
    """`days` ordinary days from local day `start` (the baseline days included: pass start - 56 days)."""
    rng = random.Random(seed)
    zone = ZoneInfo(tz)
    log = log or Log()
    staff = people(requesters, rng)
    outcomes, weights = zip(*OUTCOME_WEIGHTS.items(), strict=True)
    n = 0
    for offset in range(days):
        day = start + timedelta(days=offset)
        for person in staff:
            if day.weekday() in person.days_off:
                continue
            begin = datetime.combine(day, time(SHIFTS[person.shift]), tzinfo=zone)
            count = rng.choice(PER_SHIFT[:-1] if person.shift == "night" else PER_SHIFT)
            last_probe = None
            for at in sorted(begin + timedelta(minutes=rng.randrange(5, 8 * 60 - 5)) for _ in range(count)):
                n += 1
                rid = f"FR-S{seed:02d}{n:07d}"
                outcome = rng.choices(outcomes, weights)[0]
                # Now and then a second face of the photo searched just before (never a third time).
                probe = last_probe if last_probe and rng.random() < 0.05 else None
                last_probe = None if probe else sha(rid)
                subjects = tuple(f"S{rng.randrange(GALLERY):06d}" for _ in range(rng.randint(1, 3)))
                if outcome != "denied" and rng.random() < 0.1:
                    log.add(at - timedelta(minutes=3), "refusal", request_id=rid, step="justification",
                            reason="too_short", text="suspect", requester={"id": person.id, "name": person.name})
                search(log, at, person, rid, outcome, probe=probe or sha(rid), subjects=subjects, rng=rng)
                if outcome == "review":
                    shown = subjects[: rng.randint(0, len(subjects))]
                    release(log, at + timedelta(minutes=rng.randint(30, 180)), rid, shown)
    return log


def month(seed: int = 18, *, first: date = date(2026, 3, 1), days: int = 31, baseline_days: int = 56,
          requesters: int = 24) -> tuple[Log, datetime]:
    """The ordinary month (with its `baseline_days` before) and the moment just after it ends (UTC)."""
    log = ordinary(first - timedelta(days=baseline_days), baseline_days + days, requesters=requesters, seed=seed)
    end = datetime.combine(first + timedelta(days=days), time(0), tzinfo=ZoneInfo(TZ)).astimezone(UTC)
    return log, end


def local(day: date, hour: int, minute: int = 0) -> datetime:
    """A local time on `day` in the synthetic department's timezone (`minute` may run past the hour)."""
    return datetime.combine(day, time(hour), tzinfo=ZoneInfo(TZ)) + timedelta(minutes=minute)
