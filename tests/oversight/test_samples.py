"""bot/oversight/samples.py: the monthly sample of searches that ran (size rule, seeded draw recorded and
re-checked), its assignment to auditors, the checklist and the month's counts in the monthly report."""
from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime

import pytest

from bot import wording
from bot.oversight import monthly, samples
from bot.store.audit_log import AuditLog

TZ = "America/Los_Angeles"
ENV = {"BOT_AUDIT_KEY": "samples-test-key-0123456789abcdef"}
STAFF = {"id": "U0AUDITOR", "name": "Auditor One"}
GOOD = {name: "yes" for name, _ in samples.CHECKLIST}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def a_month(log: AuditLog, clock: Clock, *, ran: int = 40, other: int = 6, month: int = 3) -> list[str]:
    """`ran` searches that ran in March 2026 (local), `other` that did not, a review released and one still
    open, and searches in the months around; returns the request ids that ran."""
    ids = []
    for i in range(ran):
        clock.now = datetime(2026, month, 1 + i % 28, 18, 0, tzinfo=UTC)
        rid = f"FR-R{i:04d}"
        log.append("search", outcome="candidates" if i % 2 else "no_candidate", request_id=rid,
                   requester={"id": f"U{i % 5}", "name": f"Officer {i % 5}"})
        ids.append(rid)
    for i, outcome in zip(range(other), ("denied", "error", "cancelled", "expired", "denied", "error")):
        clock.now = datetime(2026, month, 10, 18, i, tzinfo=UTC)
        log.append("search", outcome=outcome, request_id=f"FR-X{i:04d}", requester={"id": "U1", "name": "O"})
    clock.now = datetime(2026, month, 12, 18, 0, tzinfo=UTC)
    for rid in ("FR-REVIEWED", "FR-OPEN"):
        log.append("search", outcome="review", request_id=rid, requester={"id": "U2", "name": "O"})
        log.append("review", action="queued", request_id=rid)
    log.append("review", action="release", final=True, request_id="FR-REVIEWED", leads=["S1"], ruled_out=1)
    ids.append("FR-REVIEWED")
    clock.now = datetime(2026, month, 1, 7, 59, tzinfo=UTC)  # the last day of the month before, locally
    log.append("search", outcome="candidates", request_id="FR-BEFORE", requester={"id": "U1", "name": "O"})
    clock.now = datetime(2026, month + 1, 1, 8, 0, tzinfo=UTC)  # the 1st of the next month, locally
    log.append("search", outcome="candidates", request_id="FR-AFTER", requester={"id": "U1", "name": "O"})
    return sorted(ids)


@pytest.fixture
def log(tmp_path):
    clock = Clock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    log = AuditLog.open(tmp_path, ENV, clock=clock)
    log.clock = clock
    return log


def test_the_population_is_the_months_finished_searches_that_ran(log):
    ran = a_month(log, log.clock)
    assert samples.population(log.entries(), "2026-03", TZ) == ran
    assert "FR-OPEN" not in ran and "FR-X0000" not in ran  # an open review, a refusal: nothing to audit yet


@pytest.mark.parametrize(("n", "percent", "minimum", "expected"), [
    (0, 5.0, 10, 0), (4, 5.0, 10, 4), (10, 5.0, 10, 10), (199, 5.0, 10, 10), (201, 5.0, 10, 11), (1000, 5.0, 10, 50),
    (1001, 5.0, 10, 51),
])
def test_the_sample_size_is_the_minimum_or_the_share_rounded_up_and_never_more_than_there_are(
        n, percent, minimum, expected):
    assert samples.sample_size(n, percent, minimum) == expected


def test_the_draw_is_reproducible_from_its_recorded_seed(log):
    ran = a_month(log, log.clock)
    log.clock.now = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
    entries = list(log.entries())
    assert samples.due_month(log.clock.now, TZ, entries) == "2026-03"
    seed = samples.new_seed()
    fields = samples.draw_fields(entries, "2026-03", TZ, seed=seed, percent=5.0, minimum=10,
                                 auditors=[STAFF, {"id": "U0AUD2", "name": "Auditor Two"}], actor="bot")
    assert fields["population"] == len(ran) == 41 and fields["n"] == 10
    assert fields["request_ids"] == random.Random(seed).sample(ran, 10)
    assert fields["population_sha256"] == hashlib.sha256("".join(f"{r}\n" for r in ran).encode()).hexdigest()
    assert [a["auditor"]["id"] for a in fields["assignments"]] == ["U0AUDITOR", "U0AUD2"] * 5  # round robin
    drawn = log.append("sample_draw", **fields)
    # Later entries (a review released after the draw, next month's searches) do not change the re-check.
    log.append("review", action="release", final=True, request_id="FR-OPEN", leads=[], ruled_out=0)
    check = samples.recheck(list(log.entries()), drawn)
    assert check.ok, check.problems
    assert samples.due_month(log.clock.now, TZ, log.entries()) is None  # once a month
    assert samples.due_month(datetime(2026, 5, 1, 9, tzinfo=UTC), TZ, log.entries()) == "2026-04"


def test_a_draw_that_does_not_match_its_log_fails_the_recheck(log):
    a_month(log, log.clock)
    entries = list(log.entries())
    fields = samples.draw_fields(entries, "2026-03", TZ, seed=42, percent=5.0, minimum=10, auditors=[], actor="bot")
    swapped = {**fields, "request_ids": [*fields["request_ids"][1:], fields["request_ids"][0]]}
    assert samples.recheck(entries, swapped).problems == (wording.SAMPLE_RECHECK_IDS,)
    other_seed = {**fields, "seed": 43}
    assert not samples.recheck(entries, other_seed).ok
    fewer = [e for e in entries if e.get("request_id") != fields["request_ids"][0]]  # a search deleted
    problems = samples.recheck(fewer, fields).problems
    assert wording.SAMPLE_RECHECK_HASH in problems and len(problems) >= 2


def test_no_search_ran_means_nothing_to_draw_and_nobody_configured_leaves_it_unassigned(log):
    assert samples.draw_fields([], "2026-03", TZ, seed=1, percent=5.0, minimum=10, auditors=[], actor="bot") is None
    a_month(log, log.clock, ran=3, other=0)
    fields = samples.draw_fields(list(log.entries()), "2026-03", TZ, seed=1, percent=5.0, minimum=10,
                                 auditors=[], actor="bot")
    assert fields["n"] == fields["population"] == 4  # three plus the released review: all of them
    assert all(a["auditor"] is None for a in fields["assignments"])


def _drawn(log: AuditLog) -> dict:
    a_month(log, log.clock)
    fields = samples.draw_fields(list(log.entries()), "2026-03", TZ, seed=7, percent=5.0, minimum=10,
                                 auditors=[STAFF], actor="bot")
    return log.append("sample_draw", **fields)


def test_the_checklist_records_answers_and_found_wanting_and_refuses_what_it_must(log):
    drawn = _drawn(log)
    first, second, third = drawn["request_ids"][:3]
    entries = list(log.entries())
    ok = samples.review_fields(entries, "2026-03", first, {**GOOD, "note": "call 26-1 on CAD; lead corroborated"},
                               STAFF)
    assert ok["found_wanting"] is False and ok["answers"] == GOOD and ok["actor"] == STAFF
    log.append("sample_review", **ok)
    wanting = {**GOOD, "justification_states_facts": "no", "lead_corroborated": "cant_tell"}
    refused = [
        ("2026-03", first, GOOD, STAFF, wording.sample_reviewed_already(first)),
        ("2026-02", second, GOOD, STAFF, wording.sample_not_drawn(second, "2026-02")),
        ("2026-03", "FR-X0000", GOOD, STAFF, wording.sample_not_drawn("FR-X0000", "2026-03")),
        ("2026-03", second, {**GOOD, "caveat_kept": "maybe"}, STAFF, wording.SAMPLE_ANSWER_MISSING),
        ("2026-03", second, {k: v for k, v in GOOD.items() if k != "purpose_fits"}, STAFF,
         wording.SAMPLE_ANSWER_MISSING),
        ("2026-03", second, wanting, STAFF, wording.SAMPLE_NOTE_NEEDED),
        ("2026-03", second, {**GOOD, "note": "x" * 2001}, STAFF, wording.sample_note_too_long(2000)),
    ]
    requester = next(e["requester"] for e in log.entries() if e.get("request_id") == second)
    refused.append(("2026-03", second, GOOD, requester, wording.SAMPLE_OWN_REQUEST))
    examiner = {"id": "UEXAMINER9", "name": "Examiner Nine"}  # released `second`: may not audit it either
    log.append("review", request_id=second, action="release", by=examiner["id"], stage="", final=True)
    refused.append(("2026-03", second, GOOD, examiner, wording.SAMPLE_TOOK_PART))
    entries = list(log.entries())
    for month, rid, form, who, said in refused:
        with pytest.raises(samples.ReviewRefused) as exc:
            samples.review_fields(entries, month, rid, form, who)
        assert str(exc.value) == said
    log.append("sample_review", **samples.review_fields(entries, "2026-03", second,
                                                        {**wanting, "note": "a label, no facts"}, STAFF))
    s = samples.summary(log.entries(), "2026-03")
    assert (s.sampled, s.reviewed, s.found_wanting) == (10, 2, 1)
    listed = samples.sampled_requests(log.entries(), "2026-03")
    assert [r.request_id for r in listed] == drawn["request_ids"]
    assert [(r.reviewed, r.found_wanting) for r in listed[:3]] == [(True, False), (True, True), (False, False)]
    assert third == listed[2].request_id and listed[2].auditor == STAFF


def test_the_monthly_report_states_how_many_were_sampled_reviewed_and_found_wanting(log):
    drawn = _drawn(log)
    before = monthly.summarise_month(log.entries(), "2026-03", TZ)
    assert before.sample_drawn and (before.sampled, before.sample_reviewed) == (10, 0)
    review = samples.review_fields(list(log.entries()), "2026-03", drawn["request_ids"][0],
                                   {**GOOD, "purpose_fits": "no", "note": "not a permitted purpose"}, STAFF)
    log.append("sample_review", **review)
    report = monthly.summarise_month(log.entries(), "2026-03", TZ)
    assert (report.sample_population, report.sampled, report.sample_reviewed, report.sample_found_wanting) == (
        41, 10, 1, 1)
    assert report.as_json()["sample_found_wanting"] == 1
    text = wording.report_text(report, for_slack=False)
    assert "Sampled audit: 10 of 41 searches that ran sampled, 1 reviewed, 1 found wanting" in text
    april = monthly.summarise_month(log.entries(), "2026-04", TZ)
    assert not april.sample_drawn and "Sampled audit: not drawn yet" in wording.report_text(april)


def test_a_draw_whose_months_entries_were_purged_says_it_can_no_longer_be_rechecked(log):
    drawn = _drawn(log)
    kept = [e for e in log.entries() if e["seq"] > 5]  # the oldest entries purged under [retention]
    assert samples.recheck(kept, drawn).problems == (wording.SAMPLE_RECHECK_PURGED,)
