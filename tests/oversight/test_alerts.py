"""The anomaly alert rules (bot.oversight.alerts): silent on an ordinary month, each injected anomaly raising its own
rule only, once per rule, key and window, and the review state the console lists."""
from __future__ import annotations

import statistics
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from bot import wording
from bot.audit.entries import checked_body
from bot.audit.heads import HeadAlarm
from bot.config import OversightSettings
from bot.oversight import alerts
from bot.oversight.chain_check import ChainCheck

from . import synthetic as syn

SETTINGS = OversightSettings()
FIRST = date(2026, 3, 1)  # the ordinary month: March 2026, after 56 baseline days
DAY_OFFICER, EVENING_OFFICER, NIGHT_OFFICER = "U0001SYN", "U0002SYN", "U0003SYN"
STRANGER = {"id": "USTRANGER", "name": "Not A Requester"}


@pytest.fixture(scope="module")
def month() -> tuple[list[dict], datetime]:
    log, end = syn.month()
    return log.entries(), end


def run(entries: list[dict], **kwargs) -> list[alerts.Alert]:
    return alerts.evaluate(entries, SETTINGS, syn.TZ, **kwargs)


def with_extra(entries: list[dict], make) -> list[dict]:
    """The month with entries added by `make(log)`, in time order."""
    log = syn.Log()
    log.extend(entries)
    make(log)
    return log.entries()


def working_day(entries: list[dict], who: str, after: date = date(2026, 3, 9)) -> date:
    """A day of the month on which `who` worked (searched)."""
    days = sorted({local_day(e) for e in entries if e["kind"] == "search" and e["requester"]["id"] == who})
    return next(d for d in days if d >= after)


def local_day(entry: dict) -> date:
    return datetime.fromisoformat(entry["ts"]).astimezone(syn.ZoneInfo(syn.TZ)).date()


def person(who: str) -> dict:
    return {"id": who, "name": f"Officer {who[1:5]}"}


# --- the ordinary month ----------------------------------------------------------------------------------------


def test_the_ordinary_month_is_a_department_month(month):
    entries, end = month
    start = end - timedelta(days=31)
    searches = [e for e in entries if e["kind"] == "search" and datetime.fromisoformat(e["ts"]) >= start]
    assert len({e["requester"]["id"] for e in searches}) >= 20
    assert len(searches) >= 500
    outcomes = Counter(e["outcome"] for e in searches)
    assert set(outcomes) == {"candidates", "no_candidate", "review", "denied", "cancelled", "expired", "error"}
    assert sum(1 for e in entries if e["kind"] == "refusal") > 20
    assert sum(1 for e in entries if e["kind"] == "review" and e.get("action") == "release") > 20
    first = min(datetime.fromisoformat(e["ts"]) for e in entries)
    assert first <= start - timedelta(days=55)  # the 56 baseline days are there too
    hours = Counter(datetime.fromisoformat(e["ts"]).astimezone(syn.ZoneInfo(syn.TZ)).hour for e in searches)
    assert len(hours) == 24  # three shifts: searches at every hour of the day, nights across midnight


def test_every_rule_stays_silent_on_the_ordinary_month_and_its_baseline(month):
    entries, _end = month
    assert run(entries) == []


# --- each injected anomaly raises its own rule only -------------------------------------------------------------


def only(found: list[alerts.Alert], rule: str) -> alerts.Alert:
    assert [a.rule for a in found] == [rule], [a.summary for a in found]
    return found[0]


def test_requester_day_fires_on_a_day_far_above_their_own(month):
    entries, _ = month
    day = working_day(entries, DAY_OFFICER)

    def busy(n):
        def make(log):
            for i in range(n):
                syn.search(log, syn.local(day, 8, 5 + 40 * i % 400), person(DAY_OFFICER), f"FR-BUSY{i:05d}",
                           "no_candidate")
        return make

    # Their own searches that day plus the injected ones: at least max(5, 3 x their median active day).
    own = [e for e in entries if e["kind"] == "search" and e["requester"]["id"] == DAY_OFFICER
           and e["outcome"] != "denied" and local_day(e) == day]
    alert = only(run(with_extra(entries, busy(9))), "requester_day")
    assert alert.key == DAY_OFFICER and alert.window == day.isoformat()
    assert alert.count == 9 + len(own) and alert.threshold >= SETTINGS.daily_min
    assert alert.requester == person(DAY_OFFICER)
    assert {f"FR-BUSY{i:05d}" for i in range(9)} <= set(alert.request_ids)
    assert alert.summary.startswith(f"Officer 0001 (U0001SYN) ran {alert.count} searches on {day.isoformat()}")
    assert run(with_extra(entries, busy(1))) == []


def test_requester_day_is_measured_against_their_own_busy_days_not_days_off():
    log = syn.Log()
    start = date(2026, 3, 2)
    for d in range(0, 40, 2):  # every other day, 3 searches: their median active day is 3 (days off not counted)
        for i in range(3):
            syn.search(log, syn.local(start + timedelta(days=d), 9 + i), person(DAY_OFFICER), f"FR-B{d:02d}{i}",
                       "no_candidate")
    day = start + timedelta(days=41)
    for n, expected in ((8, []), (9, ["requester_day"])):
        trial = syn.Log()
        trial.extend(log.entries())
        for i in range(n):
            syn.search(trial, syn.local(day, 9, i * 5), person(DAY_OFFICER), f"FR-D{i}", "no_candidate")
        found = run(trial.entries())
        assert [a.rule for a in found] == expected
    assert found[0].threshold == 9.0 and found[0].details == {"median": 3, "baseline_days": 20}


def test_subject_spread_fires_when_one_subject_reaches_three_requesters_within_30_days(month):
    entries, _ = month
    day = date(2026, 3, 10)

    def shown(gap_days):
        def make(log):
            for n, who in enumerate((DAY_OFFICER, EVENING_OFFICER, NIGHT_OFFICER)):
                when = syn.local(day + timedelta(days=n * gap_days), 12 if who == DAY_OFFICER else 18)
                if who == NIGHT_OFFICER:
                    when = syn.local(day + timedelta(days=n * gap_days), 2)
                syn.search(log, when, person(who), f"FR-SPREAD{n}", "candidates", subjects=("S-SPREAD",))
        return make

    alert = only(run(with_extra(entries, shown(10))), "subject_spread")
    assert alert.key == "S-SPREAD" and alert.count == 3 and alert.requester is None
    assert alert.request_ids == ("FR-SPREAD0", "FR-SPREAD1", "FR-SPREAD2")
    assert [p["id"] for p in alert.details["requesters"]] == sorted([DAY_OFFICER, EVENING_OFFICER, NIGHT_OFFICER])
    assert run(with_extra(entries, shown(16))) == []  # 32 days from the first to the third: never 3 in 30 days


def test_subject_spread_counts_only_what_examiners_released():
    log = syn.Log()
    t = datetime(2026, 3, 10, 18, tzinfo=UTC)
    for n, who in enumerate(("UA", "UB", "UC")):
        syn.search(log, t + timedelta(hours=n), {"id": who, "name": who}, f"FR-EX{n}", "review",
                   subjects=("S-EXAM", "S-OTHER"))
    syn.release(log, t + timedelta(hours=5), "FR-EX0", ("S-EXAM",))
    syn.release(log, t + timedelta(hours=5), "FR-EX1", ("S-EXAM",))
    syn.release(log, t + timedelta(hours=5), "FR-EX2", ())  # ruled out: the third requester never saw it
    assert run(log.entries()) == []
    syn.release(log, t + timedelta(hours=6), "FR-EX2", ("S-EXAM",))  # a later release shows it after all
    alert = only(run(log.entries()), "subject_spread")
    assert alert.key == "S-EXAM" and alert.at == (t + timedelta(hours=6)).isoformat().replace("+00:00", ".000000Z")


def test_probe_repeat_fires_on_one_photo_searched_three_times_within_seven_days(month):
    entries, _ = month
    day = working_day(entries, EVENING_OFFICER)

    def repeated(gap_days):
        def make(log):
            for n in range(3):
                syn.search(log, syn.local(day + timedelta(days=n * gap_days), 16, 30), person(EVENING_OFFICER),
                           f"FR-AGAIN{n}", "no_candidate", probe="ab" * 32)
        return make

    alert = only(run(with_extra(entries, repeated(3))), "probe_repeat")
    assert alert.key == "ab" * 32 and alert.count == 3 and alert.requester == person(EVENING_OFFICER)
    assert "SHA-256 abababababab…" in alert.summary and "by Officer 0002 (U0002SYN)" in alert.summary
    assert run(with_extra(entries, repeated(4))) == []  # 8 days from the first to the third


def test_refusals_fire_on_five_in_a_day_counting_folded_entries(month):
    entries, _ = month
    day = date(2026, 3, 12)

    def refused(folded):
        def make(log):
            first = syn.search(log, syn.local(day, 10), STRANGER, "FR-NO0", "denied")
            first["requester"] = dict(STRANGER)
            attempts = [{"at": syn.local(day, 10, 5 + i).astimezone(UTC).isoformat().replace("+00:00", "Z"),
                         "request_id": f"FR-NO{i + 1}"} for i in range(folded)]
            log.add(syn.local(day, 11), "search", outcome="denied", requester=dict(STRANGER), request_id="FR-NOX",
                    count=folded, attempts=attempts, denied=["not a requester"])
        return make

    alert = only(run(with_extra(entries, refused(4))), "refusals")
    assert alert.key == "USTRANGER" and alert.count == 5 and alert.window == day.isoformat()
    assert alert.requester == STRANGER and "was refused 5 times on 2026-03-12" in alert.summary
    assert run(with_extra(entries, refused(3))) == []


def test_refused_answers_in_running_requests_count_too():
    log = syn.Log()
    for i in range(5):
        log.add(syn.local(date(2026, 3, 3), 9, i), "refusal", request_id="FR-R1", step="justification",
                reason="protected_class_only", text="x", requester=person(DAY_OFFICER))
    assert only(run(log.entries()), "refusals").request_ids == ("FR-R1",)


def test_every_flagged_search_is_an_alert(month):
    entries, _ = month
    day = working_day(entries, DAY_OFFICER)
    alert = only(run(with_extra(entries, lambda log: syn.search(
        log, syn.local(day, 9, 30), person(DAY_OFFICER), "FR-FLAG1", "no_candidate", flags=("protected_class",)))),
        "flagged")
    assert alert.key == "FR-FLAG1" and alert.request_ids == ("FR-FLAG1",)
    assert alert.summary == wording.alert_flagged("Officer 0001", DAY_OFFICER, "FR-FLAG1")


def test_off_hours_fires_on_a_day_shift_search_in_the_night_and_not_on_a_night_shift_one(month):
    entries, _ = month
    day = working_day(entries, DAY_OFFICER)
    alert = only(run(with_extra(entries, lambda log: syn.search(
        log, syn.local(day, 2, 30), person(DAY_OFFICER), "FR-NIGHT1", "no_candidate"))), "off_hours")
    assert alert.key == DAY_OFFICER and alert.request_ids == ("FR-NIGHT1",)
    assert alert.details["usual_from"] in ("05:00", "06:00") and alert.details["usual_to"] in ("16:00", "17:00")
    assert "searched at 02:30" in alert.summary
    night = working_day(entries, NIGHT_OFFICER)  # 03:00 is the middle of their shift (23:00-07:00)
    assert run(with_extra(entries, lambda log: syn.search(
        log, syn.local(night, 3), person(NIGHT_OFFICER), "FR-NIGHT2", "no_candidate"))) == []
    assert only(run(with_extra(entries, lambda log: syn.search(
        log, syn.local(night, 14), person(NIGHT_OFFICER), "FR-NIGHT3", "no_candidate"))), "off_hours")


def test_off_hours_waits_for_enough_earlier_searches():
    log = syn.Log()
    for d in range(SETTINGS.hours_min_searches - 1):
        syn.search(log, syn.local(date(2026, 3, 1) + timedelta(days=d), 10), person(DAY_OFFICER), f"FR-H{d}",
                   "no_candidate")
    syn.search(log, syn.local(date(2026, 3, 25), 3), person(DAY_OFFICER), "FR-H-LATE", "no_candidate")
    assert run(log.entries()) == []  # 19 earlier searches: no usual hours yet
    syn.search(log, syn.local(date(2026, 3, 24), 10), person(DAY_OFFICER), "FR-H20", "no_candidate")
    assert only(run(log.entries()), "off_hours").request_ids == ("FR-H-LATE",)


def test_usual_hours_are_a_band_on_the_circle_of_the_day():
    days = [9 * 60, 10 * 60, 11 * 60, 14 * 60]
    assert alerts.usual_hours(sorted(days), 5, 95) == (7 * 60, 9 * 60)  # 07:00 for 9 hours (to 16:00)
    nights = sorted([23 * 60, 23 * 60 + 30, 60, 3 * 60, 5 * 60])
    start, length = alerts.usual_hours(nights, 5, 95)
    assert start == 21 * 60 and length == 10 * 60  # 21:00 to 07:00, across midnight
    assert alerts.usual_hours(sorted(range(0, 1440, 60)), 5, 95) is None  # every hour usual


# --- once per rule, key and window ------------------------------------------------------------------------------


def logged(log: syn.Log, found: list[alerts.Alert]) -> None:
    for a in found:
        log.add(datetime.fromisoformat(a.at) + timedelta(minutes=15), "alert", **a.entry_fields())


def test_running_twice_raises_nothing_new_and_a_windowed_rule_stays_quiet_for_its_window():
    log = syn.Log()
    t = datetime(2026, 3, 10, 18, tzinfo=UTC)
    for n, who in enumerate(("UA", "UB", "UC")):
        syn.search(log, t + timedelta(days=n), {"id": who, "name": who}, f"FR-W{n}", "candidates",
                   subjects=("S-W",))
    first = run(log.entries())
    assert [a.rule for a in first] == ["subject_spread"]
    logged(log, first)
    assert run(log.entries()) == []
    syn.search(log, t + timedelta(days=5), {"id": "UD", "name": "UD"}, "FR-W3", "candidates", subjects=("S-W",))
    assert run(log.entries()) == []  # the same episode: a fourth requester within the window raises nothing new
    # Read from a later horizon (the first release cut off), the episode is still the one raised.
    later = [e for e in log.entries() if e["ts"] >= (t + timedelta(hours=1)).isoformat()[:19]]
    assert run(later) == []
    for n, who in enumerate(("UE", "UF", "UG")):  # a new episode, past the window of the first
        syn.search(log, t + timedelta(days=40 + n), {"id": who, "name": who}, f"FR-W{n + 10}", "candidates",
                   subjects=("S-W",))
    again = run(log.entries())
    assert [a.rule for a in again] == ["subject_spread"] and again[0].alert_id != first[0].alert_id


def test_since_judges_only_anomalies_that_happened_after_it(month):
    entries, end = month
    day = working_day(entries, DAY_OFFICER)
    crafted = with_extra(entries, lambda log: syn.search(
        log, syn.local(day, 9, 30), person(DAY_OFFICER), "FR-FLAG2", "no_candidate", flags=("protected_class",)))
    assert run(crafted, since=syn.local(day, 9, 0)) and run(crafted, since=syn.local(day, 10, 0)) == []
    assert alerts.horizon(SETTINGS, end) == end - timedelta(days=alerts.EVALUATE_DAYS + 56 + 1)


def test_the_alert_id_is_stable_and_the_entry_holds_what_the_contract_lists(month):
    entries, _ = month
    day = working_day(entries, DAY_OFFICER)
    crafted = with_extra(entries, lambda log: syn.search(
        log, syn.local(day, 9, 30), person(DAY_OFFICER), "FR-FLAG3", "no_candidate", flags=("protected_class",)))
    [a] = run(crafted)
    [b] = run(crafted)
    assert a.alert_id == b.alert_id == alerts.alert_id("flagged", "FR-FLAG3", day.isoformat())
    body = checked_body("alert", a.entry_fields())  # what the log accepts, JSON-clean
    assert {"alert_id", "rule", "key", "window", "at", "summary", "count", "threshold", "request_ids",
            "requester"} <= set(body)
    assert body["requester"] == person(DAY_OFFICER)


# --- the chain ----------------------------------------------------------------------------------------------------


def test_a_broken_chain_and_a_head_that_disagrees_are_chain_alerts_once_each():
    ok = ChainCheck(True, 10, 10, "ab", None, "", "2026-03-10T10:00:00.000000Z", "r1")
    assert alerts.chain_alert(ok) is None
    broken = ChainCheck(False, 10, 10, "ab", 4, "MAC mismatch", "2026-03-10T10:00:00.000000Z", "r1")
    alert = alerts.chain_alert(broken)
    assert alert.rule == "chain" and alert.key == "chain" and alert.window == "seq 4"
    assert alert.summary.startswith("The audit log does not verify: entry 4: MAC mismatch")
    later = ChainCheck(False, 12, 12, "cd", 4, "MAC mismatch", "2026-03-10T11:00:00.000000Z", "r2")
    assert alerts.chain_alert(later).alert_id == alert.alert_id  # the hourly check of the same break: same alert
    head = alerts.head_alert(HeadAlarm(10, "ab" * 32, "missing", 6), datetime(2026, 3, 10, tzinfo=UTC))
    assert head.key == "head" and head.summary == wording.audit_head_alarm(10, "missing", 6)
    assert head.alert_id != alert.alert_id


# --- reviews -------------------------------------------------------------------------------------------------------


def test_listed_puts_unreviewed_alerts_first_then_newest_with_who_when_and_the_note():
    log = syn.Log()
    t = datetime(2026, 3, 10, tzinfo=UTC)
    for n in range(3):
        log.add(t + timedelta(hours=n), "alert", alert_id=f"AL-{n}", rule="flagged", key=f"FR-{n}", window="d",
                summary=f"alert {n}")
    log.add(t + timedelta(hours=5), "alert_review",
            **alerts.review_fields("AL-2", {"id": "UCHIEF1", "name": "Chief One"}, "  Checked the report.  "))
    rows = alerts.listed(log.entries())
    assert [r["alert_id"] for r in rows] == ["AL-1", "AL-0", "AL-2"]
    assert [r["reviewed"] for r in rows] == [False, False, True]
    [review] = rows[2]["reviews"]
    assert review["by"] == {"id": "UCHIEF1", "name": "Chief One"} and review["note"] == "Checked the report."
    assert review["at"].startswith("2026-03-10T05:00")
    with pytest.raises(ValueError, match="write a note"):
        alerts.review_fields("AL-1", {"id": "U1", "name": "x"}, "   ")
    assert alerts.raised(log.entries()) == {"AL-0", "AL-1", "AL-2"}


def test_the_month_has_the_busy_and_quiet_days_the_baseline_needs(month):
    entries, _ = month
    per_day = Counter((e["requester"]["id"], e["ts"][:10]) for e in entries if e["kind"] == "search")
    assert max(per_day.values()) <= 4 and statistics.mean(per_day.values()) > 1


def test_nobody_reviews_an_alert_about_themselves():
    """The requester an alert names, or any requester in its details (a subject shown to several), is refused;
    someone else may review it."""
    about_one = {"alert_id": "AL-1", "rule": "requester_day", "requester": {"id": "UCHIEF1", "name": "Chief One"}}
    about_many = {"alert_id": "AL-2", "rule": "subject_spread",
                  "details": {"requesters": [{"id": "U1", "name": "a"}, {"id": "UCHIEF1", "name": "Chief One"}]}}
    for alert in (about_one, about_many):
        with pytest.raises(ValueError) as exc:
            alerts.review_fields(alert["alert_id"], {"id": "UCHIEF1", "name": "Chief One"}, "looked", alert)
        assert str(exc.value) == wording.ALERT_OWN
        fields = alerts.review_fields(alert["alert_id"], {"id": "UAUDIT", "name": "Auditor"}, "looked", alert)
        assert fields["actor"]["id"] == "UAUDIT" and fields["note"] == "looked"
    assert alerts.concerned(about_many) == {"U1", "UCHIEF1"}
