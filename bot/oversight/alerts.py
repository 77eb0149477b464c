"""Anomaly alerts (CONTRACTS ### 14): pure rules over audit entries that raise what an inspector general would ask
about, each once per (rule, key, window), with its state in the audit log itself (`alert`, `alert_review`).

Rules and their `[oversight]` settings:

| rule | key | window | fires when |
|---|---|---|---|
| `requester_day` | requester id | local day | their searches that day >= max(daily_min, daily_factor x the median of their active days over the baseline_days before) |
| `subject_spread` | subject id | first..last local day | one gallery subject released to >= subject_requesters requesters within subject_days |
| `probe_repeat` | probe SHA-256 | first..last local day | one probe photo searched >= probe_repeats times within probe_days |
| `refusals` | person id | local day | >= refusals_per_day refusals (denied searches, folded ones by their count, and refused answers) |
| `flagged` | request id | local day | every search whose justification names a protected class (`flags` holds "protected_class") |
| `off_hours` | requester id | local day | a search outside their usual hours, once they have >= hours_min_searches earlier searches |
| `chain` | "chain" / "head" | the bad entry / the head | the full chain check failed, or the head disagrees with the one posted |

Pure: no Slack, no web server, no store. The leader's job (bot.slack.flow.oversight) reads the entries, calls
`evaluate`, appends each new alert's `entry_fields()` as an `alert` entry and posts it; the console lists
`listed(entries)` and appends `review_fields(...)` as `alert_review` entries.
"""
from __future__ import annotations

import bisect
import gc
import hashlib
import math
import operator
import statistics
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot import wording
from bot.audit.entries import as_utc, iso_utc
from bot.audit.refusals import folded_count
from bot.config import OversightSettings

if TYPE_CHECKING:
    from bot.audit.heads import HeadAlarm
    from bot.oversight.chain_check import ChainCheck

RULES = ("requester_day", "subject_spread", "probe_repeat", "refusals", "flagged", "off_hours", "chain")
RAN = ("candidates", "no_candidate", "review")  # outcomes of a search that ran (a probe was compared)
# The leader looks back this far for anomalies (a server down for days still raises what happened meanwhile); older
# events were judged by earlier runs.
EVALUATE_DAYS = 7
# "Usual hours" are whole clock hours around the 5th-95th percentile band, widened by two hours either side: shifts
# run over, and a search an hour past the usual end is not what an auditor needs to read about.
HOURS_SLACK_MINUTES = 120
MAX_REQUEST_IDS = 50  # an alert lists at most this many request ids (the console's trail has the rest)
MAX_NOTE_CHARS = 2000
DAY_MINUTES = 24 * 60


def alert_id(rule: str, key: str, window: str) -> str:
    """The stable id of one alert: the same rule, key and window always give the same id (the dedupe key)."""
    digest = hashlib.sha256(f"{rule}\x1f{key}\x1f{window}".encode()).hexdigest()
    return f"AL-{digest[:12].upper()}"


@dataclass(frozen=True)
class Alert:
    """One anomaly: which rule, about what (`key`), over which `window`, when it happened (`at`, ISO UTC of the
    event that crossed the threshold), the count against its threshold, the requests involved, the one person
    concerned (when there is one), and the plain sentence that says it (bot.wording)."""

    rule: str
    key: str
    window: str
    at: str
    summary: str
    count: int
    threshold: float
    request_ids: tuple[str, ...] = ()
    requester: Mapping[str, str] | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def alert_id(self) -> str:
        return alert_id(self.rule, self.key, self.window)

    def entry_fields(self) -> dict[str, Any]:
        """The fields of its `alert` audit entry."""
        fields: dict[str, Any] = {
            "alert_id": self.alert_id, "rule": self.rule, "key": self.key, "window": self.window, "at": self.at,
            "summary": self.summary, "count": self.count, "threshold": self.threshold,
            "request_ids": list(self.request_ids[:MAX_REQUEST_IDS]),
        }
        if len(self.request_ids) > MAX_REQUEST_IDS:
            fields["request_ids_not_listed"] = len(self.request_ids) - MAX_REQUEST_IDS
        if self.requester:
            fields["requester"] = dict(self.requester)
        if self.details:
            fields["details"] = dict(self.details)
        return fields


# --- reading the entries ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Event:
    """One thing a rule counts: when (UTC, local, its local day and minute past midnight), who, which request."""

    at: datetime
    local: datetime
    day: date
    minute: int
    who: str
    request_id: str


_at = operator.attrgetter("at")


def _event(at: datetime, zone: ZoneInfo, who: str, rid: str) -> _Event:
    local = at.astimezone(zone)
    return _Event(at, local, local.date(), local.hour * 60 + local.minute, who, rid)


@dataclass
class _Facts:
    """What the rules need from the entries, read in one pass."""

    names: dict[str, str] = field(default_factory=dict)
    ran: dict[str, list[_Event]] = field(default_factory=lambda: defaultdict(list))  # requester -> searches
    probes: dict[str, list[_Event]] = field(default_factory=lambda: defaultdict(list))  # sha256 -> searches
    releases: dict[str, list[_Event]] = field(default_factory=lambda: defaultdict(list))  # subject -> shown
    refused: dict[str, list[_Event]] = field(default_factory=lambda: defaultdict(list))  # person -> refusals
    flagged: list[_Event] = field(default_factory=list)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # alert_id -> its entry
    fired: dict[tuple[str, str], list[datetime]] = field(default_factory=lambda: defaultdict(list))


def _person(value: Any) -> tuple[str, str]:
    if type(value) is dict or isinstance(value, Mapping):  # the exact type first: the ABC check is slow
        return str(value.get("id") or ""), str(value.get("name") or "")
    return (str(value), "") if isinstance(value, str) else ("", "")


def _read(entries: Iterable[Mapping[str, Any]], zone: ZoneInfo) -> _Facts:
    facts = _Facts()
    searched: dict[str, str] = {}  # request id -> requester, for examiner releases
    releases: list[tuple[datetime, str, tuple[str, ...]]] = []
    # Local names for what the loop touches per entry: a year is over 100,000 entries (bench/oversight.py).
    names, ran, probes, shown_to, refused, flagged = (facts.names, facts.ran, facts.probes, facts.releases,
                                                      facts.refused, facts.flagged)
    parse = datetime.fromisoformat  # the log writes UTC with Z (bot.audit.entries.iso_utc)

    for entry in entries:
        kind = entry.get("kind")
        if kind == "search" or kind == "refusal":
            pass
        elif kind == "review":
            if entry.get("action") == "release" and entry.get("final"):
                releases.append((parse(entry["ts"]), str(entry.get("request_id")),
                                 tuple(str(s) for s in entry.get("shown") or ())))
            continue
        elif kind == "alert":
            facts.alerts[str(entry.get("alert_id"))] = dict(entry)
            when = entry.get("at") or entry["ts"]
            facts.fired[(str(entry.get("rule")), str(entry.get("key")))].append(as_utc(when))
            continue
        else:
            continue
        rid = entry.get("request_id") or f"#{entry.get('seq')}"
        if type(rid) is not str:
            rid = str(rid)
        requester = entry.get("requester")
        if type(requester) is dict:  # as the log holds it; _person for anything else
            who, name = str(requester.get("id") or ""), requester.get("name")
        else:
            who, name = _person(requester)
        if name:
            names[who] = name
        this = _event(parse(entry["ts"]), zone, who, rid)
        if kind == "refusal":
            refused[who].append(this)
            continue
        outcome = entry.get("outcome")
        if "protected_class" in (entry.get("flags") or ()):
            flagged.append(this)
        if outcome == "denied":
            _refusal_events(facts, entry, this, zone)
            continue
        searched[rid] = who
        ran[who].append(this)
        if outcome in RAN and entry.get("probe_sha256"):
            probes[str(entry["probe_sha256"])].append(this)
        if outcome == "candidates":  # shown to the requester at once (no examiner in between)
            for c in entry.get("candidates") or ():
                if type(c) is dict and c.get("subject_id"):
                    shown_to[str(c["subject_id"])].append(this)
    for at, rid, shown in releases:  # examiner mode: only what the examiners released reached the requester
        who = searched.get(rid)
        if who is not None:
            for subject in shown:
                shown_to[subject].append(_event(at, zone, who, rid))
    return facts


def _refusal_events(facts: _Facts, entry: Mapping[str, Any], first: _Event, zone: ZoneInfo) -> None:
    """A denied search entry as the refusals it stands for: one, or a folded entry's `count` at their own times
    (bot.audit.refusals: the listed attempts, the rest at `last_at`)."""
    count = folded_count(entry)
    if count == 1 and not entry.get("attempts"):
        facts.refused[first.who].append(first)
        return
    times = []
    for attempt in entry.get("attempts") or ():
        if isinstance(attempt, Mapping) and attempt.get("at"):
            times.append((as_utc(attempt["at"]), str(attempt.get("request_id") or first.request_id)))
    last = as_utc(entry["last_at"]) if entry.get("last_at") else first.at
    times += [(last, first.request_id)] * max(0, count - len(times))
    for at, rid in times[:count]:
        facts.refused[first.who].append(_event(at, zone, first.who, rid))


# --- the rules ---------------------------------------------------------------------------------------------------


def _requester_day(facts: _Facts, s: OversightSettings, since: datetime | None) -> Iterable[Alert]:
    for who, events in facts.ran.items():
        by_day: dict[date, list[_Event]] = defaultdict(list)
        for e in events:
            by_day[e.day].append(e)
        days = sorted(by_day)
        for i, day in enumerate(days):
            todays = by_day[day]
            if len(todays) < s.daily_min or (since and todays[-1].at < since):
                continue  # a day below daily_min can never fire: no baseline is worked out for it
            start = day - timedelta(days=s.baseline_days)
            # Only days they searched count: an officer's days off are not "zero-search workdays", and counting
            # them would put the median of anyone searching less than every other day at 0, so a detective with
            # four searches on each shift would be raised on every fifth search.
            baseline = [len(by_day[d]) for d in days[bisect.bisect_left(days, start):i]]
            median = statistics.median(baseline) if baseline else None
            threshold = max(float(s.daily_min), s.daily_factor * (median or 0))
            need = math.ceil(threshold)
            if len(todays) < need:
                continue
            trigger = todays[need - 1]
            if since and trigger.at < since:
                continue
            yield Alert(
                "requester_day", who, day.isoformat(), iso_utc(trigger.at),
                wording.alert_requester_day(facts.names.get(who, ""), who, day.isoformat(), len(todays), threshold,
                                            median, s.baseline_days),
                len(todays), threshold, tuple(e.request_id for e in todays), _who(facts, who),
                {"median": median, "baseline_days": len(baseline)},
            )


def _windowed(facts: _Facts, rule: str, groups: Mapping[str, list[_Event]], days: int, threshold: int,
              distinct: bool, since: datetime | None) -> Iterable[tuple[str, list[_Event], _Event]]:
    """(key, events in the window, the event that crossed) for each key whose events within `days` reach
    `threshold` (distinct requesters when `distinct`). A key that fired (now or in an `alert` entry) is quiet for
    `days` either side of that firing: one episode, one alert, whatever the horizon of the run."""
    span = timedelta(days=days)
    for key, events in groups.items():
        if len(events) < threshold:
            continue
        events = sorted(events, key=_at)
        fired = sorted(facts.fired.get((rule, key), ()))
        window: deque[_Event] = deque()
        people: dict[str, int] = defaultdict(int)
        for e in events:
            window.append(e)
            people[e.who] += 1
            while window[0].at <= e.at - span:
                gone = window.popleft()
                people[gone.who] -= 1
                if not people[gone.who]:
                    del people[gone.who]
            reached = len(people) if distinct else len(window)
            if reached < threshold or (since and e.at < since):
                continue
            if any(abs((e.at - f).total_seconds()) < span.total_seconds() for f in fired):
                continue
            fired.append(e.at)
            yield key, list(window), e


def _span(window: list[_Event]) -> str:
    return f"{window[0].day.isoformat()}/{window[-1].day.isoformat()}"


def _subject_spread(facts: _Facts, s: OversightSettings, since: datetime | None) -> Iterable[Alert]:
    for subject, window, e in _windowed(facts, "subject_spread", facts.releases, s.subject_days,
                                        s.subject_requesters, True, since):
        people = sorted({w.who for w in window})
        first, last = _span(window).split("/")
        yield Alert("subject_spread", subject, _span(window), iso_utc(e.at),
                    wording.alert_subject_spread(subject, len(people), first, last, s.subject_days),
                    len(people), float(s.subject_requesters), _unique(w.request_id for w in window), None,
                    {"requesters": [_who(facts, p) for p in people], "days": s.subject_days})


def _probe_repeat(facts: _Facts, s: OversightSettings, since: datetime | None) -> Iterable[Alert]:
    for sha, window, e in _windowed(facts, "probe_repeat", facts.probes, s.probe_days, s.probe_repeats, False,
                                    since):
        people = sorted({w.who for w in window})
        one = _who(facts, people[0]) if len(people) == 1 else None
        first, last = _span(window).split("/")
        yield Alert("probe_repeat", sha, _span(window), iso_utc(e.at),
                    wording.alert_probe_repeat(sha, len(window), first, last,
                                               (one["name"], one["id"]) if one else None),
                    len(window), float(s.probe_repeats), _unique(w.request_id for w in window), one,
                    {"requesters": [_who(facts, p) for p in people], "days": s.probe_days})


def _refusals(facts: _Facts, s: OversightSettings, since: datetime | None) -> Iterable[Alert]:
    for who, events in facts.refused.items():
        by_day: dict[date, list[_Event]] = defaultdict(list)
        for e in sorted(events, key=_at):
            by_day[e.day].append(e)
        for day, todays in by_day.items():
            if len(todays) < s.refusals_per_day:
                continue
            trigger = todays[s.refusals_per_day - 1]
            if since and trigger.at < since:
                continue
            yield Alert("refusals", who, day.isoformat(), iso_utc(trigger.at),
                        wording.alert_refusals(facts.names.get(who, ""), who, day.isoformat(), len(todays)),
                        len(todays), float(s.refusals_per_day), _unique(e.request_id for e in todays),
                        _who(facts, who))


def _flagged(facts: _Facts, _s: OversightSettings, since: datetime | None) -> Iterable[Alert]:
    for e in facts.flagged:
        if since and e.at < since:
            continue
        yield Alert("flagged", e.request_id, e.day.isoformat(), iso_utc(e.at),
                    wording.alert_flagged(facts.names.get(e.who, ""), e.who, e.request_id), 1, 1.0,
                    (e.request_id,), _who(facts, e.who))


def usual_hours(ordered: list[int], low_pct: float, high_pct: float) -> tuple[int, int] | None:
    """A person's usual hours from the minutes past local midnight of their searches, sorted: (start, length) in
    minutes, None when every hour is usual. The day is a circle: it is cut at the longest stretch with no search,
    so a night shift from 22:00 to 06:00 is one band, not the whole day."""
    n = len(ordered)
    if ordered[0] + DAY_MINUTES - ordered[-1] >= DAY_MINUTES // 2:
        cut = 0  # half a day without a search across midnight: no other stretch can be longer
    else:
        diffs = list(map(operator.sub, ordered[1:], ordered[:-1]))
        diffs.append(ordered[0] + DAY_MINUTES - ordered[-1])  # the stretch across midnight
        cut = (diffs.index(max(diffs)) + 1) % n  # the first search after the longest stretch without one
    origin = ordered[cut]

    bounds = []
    for pct in (low_pct, high_pct):  # each percentile of the minutes counted from `origin` (linear, as numpy's)
        pos = (n - 1) * pct / 100
        lo = int(pos)
        a = (ordered[(cut + lo) % n] - origin) % DAY_MINUTES
        b = (ordered[(cut + min(lo + 1, n - 1)) % n] - origin) % DAY_MINUTES
        bounds.append(origin + a + (b - a) * (pos - lo))
    low, high = bounds
    start = math.floor(low / 60) * 60 - HOURS_SLACK_MINUTES
    end = math.ceil(high / 60) * 60 + HOURS_SLACK_MINUTES
    if end - start >= DAY_MINUTES:
        return None
    return start % DAY_MINUTES, end - start


def _clock(minutes: int) -> str:
    minutes %= DAY_MINUTES
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _off_hours(facts: _Facts, s: OversightSettings, since: datetime | None) -> Iterable[Alert]:
    for who, events in facts.ran.items():
        if len(events) <= s.hours_min_searches:
            continue
        events = sorted(events, key=_at)
        days = [e.day for e in events]
        window: list[int] = []  # the minutes of their searches over the baseline days before `day`, sorted
        added = removed = i = 0
        while i < len(events):
            day = days[i]
            j = bisect.bisect_right(days, day, i)
            todays = events[i:j]
            for e in events[added:i]:
                bisect.insort(window, e.minute)
            added = i
            first = bisect.bisect_left(days, day - timedelta(days=s.baseline_days), removed)
            for e in events[removed:first]:
                del window[bisect.bisect_left(window, e.minute)]
            removed = first
            i = j  # their usual hours come from the days before, never the day itself
            if len(window) < s.hours_min_searches or (since and todays[-1].at < since):
                continue
            band = usual_hours(window, s.hours_low_pct, s.hours_high_pct)
            if band is None:
                continue
            start, length = band
            outside = [e for e in todays if (e.minute - start) % DAY_MINUTES > length]
            if not outside or (since and outside[0].at < since):
                continue
            at = outside[0].local.strftime("%H:%M")
            yield Alert("off_hours", who, day.isoformat(), iso_utc(outside[0].at),
                        wording.alert_off_hours(facts.names.get(who, ""), who, day.isoformat(), at, _clock(start),
                                                _clock(start + length), len(window)),
                        len(outside), float(s.hours_min_searches), _unique(e.request_id for e in outside),
                        _who(facts, who),
                        {"usual_from": _clock(start), "usual_to": _clock(start + length), "earlier": len(window)})


def _who(facts: _Facts, who: str) -> dict[str, str]:
    return {"id": who, "name": facts.names.get(who, who)}


def _unique(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(ids))


RULE_FUNCTIONS = (_requester_day, _subject_spread, _probe_repeat, _refusals, _flagged, _off_hours)


# --- what the leader and the console call ----------------------------------------------------------------------


def horizon(settings: OversightSettings, now: datetime) -> datetime:
    """How far back the leader reads entries: the events it judges (EVALUATE_DAYS) and the history they are
    judged against (the longest of the rules' windows). Every `alert` entry about them is newer still."""
    longest = max(settings.baseline_days, settings.subject_days, settings.probe_days)
    return as_utc(now) - timedelta(days=EVALUATE_DAYS + longest + 1)


def evaluate(entries: Iterable[Mapping[str, Any]], settings: OversightSettings, tz: str, *,
             since: datetime | None = None, rules: Iterable[str] = RULES) -> list[Alert]:
    """The new alerts in `entries` (any kinds, in log order): those not already raised by an `alert` entry among
    them, oldest first. `since`: only anomalies whose crossing event is at or after it (the leader passes now -
    EVALUATE_DAYS and the entries since `horizon`); None judges everything (a year's bench, the tests)."""
    since = as_utc(since) if since is not None else None
    wanted = set(rules)
    found = []
    # The rules make no reference cycles, but they make a few hundred thousand small objects next to the caller's
    # entries: the collector's full passes over those were half the time of a year's run (bench/oversight.py).
    collecting = gc.isenabled()
    gc.disable()
    try:
        facts = _read(entries, ZoneInfo(tz))
        for rule in RULE_FUNCTIONS:
            if rule.__name__.lstrip("_") in wanted:
                found += [a for a in rule(facts, settings, since) if a.alert_id not in facts.alerts]
    finally:
        if collecting:
            gc.enable()
    unique = {a.alert_id: a for a in found}
    return sorted(unique.values(), key=lambda a: (a.at, a.rule, a.key))


def chain_alert(check: ChainCheck) -> Alert | None:
    """The chain alert for a full check that failed (None when it verified): once per first bad entry."""
    if check.ok:
        return None
    return Alert("chain", "chain", f"seq {check.bad_seq}", check.checked_at,
                 wording.alert_chain_broken(check.bad_seq, check.reason, check.checked_at), 1, 1.0,
                 details={"bad_seq": check.bad_seq, "reason": check.reason, "by": check.by,
                          "last_seq": check.last_seq})


def head_alert(alarm: HeadAlarm, now: datetime) -> Alert:
    """The chain alert for a log that no longer reaches the head the bot posted (bot.audit.heads)."""
    return Alert("chain", "head", f"{alarm.problem} seq {alarm.seq}", iso_utc(now),
                 wording.audit_head_alarm(alarm.seq, alarm.problem, alarm.last_seq), 1, 1.0,
                 details={"seq": alarm.seq, "mac": alarm.mac, "problem": alarm.problem, "last_seq": alarm.last_seq})


def raised(entries: Iterable[Mapping[str, Any]]) -> set[str]:
    """The ids of the alerts already in `entries`."""
    return {str(e.get("alert_id")) for e in entries if e.get("kind") == "alert"}


def concerned(alert: Mapping[str, Any]) -> set[str]:
    """The people an `alert` entry is about: its requester, and the requesters named in its details."""
    people = set()
    requester = alert.get("requester")
    if isinstance(requester, Mapping) and requester.get("id"):
        people.add(str(requester["id"]))
    details = alert.get("details")
    for person in (details.get("requesters") or []) if isinstance(details, Mapping) else []:
        people.add(str(person.get("id", "")) if isinstance(person, Mapping) else str(person))
    return people - {""}


def review_fields(alert_id: str, actor: Mapping[str, str], note: str,
                  alert: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The fields of an `alert_review` entry: which alert, who looked, their note (kept as written, capped).
    ValueError when the note is empty (a review says what was looked at) or when the reviewer is someone the
    alert is about (`alert`, its entry): nobody clears their own alert."""
    note = str(note or "").strip()
    if alert is not None and str(actor.get("id", "")) in concerned(alert):
        raise ValueError(wording.ALERT_OWN)
    if not note:
        raise ValueError(wording.ALERT_NOTE_MISSING)
    return {"alert_id": alert_id, "actor": {"id": str(actor.get("id", "")), "name": str(actor.get("name", ""))},
            "note": note[:MAX_NOTE_CHARS]}


def listed(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every alert with its reviews (who, when, note; oldest review first) for the console: the unreviewed
    first, then the reviewed, newest first within each."""
    alerts: dict[str, dict[str, Any]] = {}
    reviews: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in entries:
        if e.get("kind") == "alert":
            alerts.setdefault(str(e.get("alert_id")), dict(e))
        elif e.get("kind") == "alert_review":
            reviews[str(e.get("alert_id"))].append({"by": dict(e.get("actor") or {}), "at": e.get("ts"),
                                                    "note": e.get("note") or ""})
    out = [{**a, "reviews": reviews.get(aid, []), "reviewed": bool(reviews.get(aid))} for aid, a in alerts.items()]
    out.sort(key=lambda a: a.get("ts") or "", reverse=True)
    out.sort(key=lambda a: a["reviewed"])  # stable: newest first within each group
    return out


__all__ = ["EVALUATE_DAYS", "RULES", "Alert", "alert_id", "chain_alert", "evaluate", "head_alert", "horizon",
           "listed", "raised", "review_fields", "usual_hours"]
