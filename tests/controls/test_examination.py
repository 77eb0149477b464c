"""Examiner review (bot.controls.examination), pure: claims, blind second reviews, notes, release, timeouts, order."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot import wording
from bot.controls import examination as ex

T0 = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
OFFICER, EXAMINER, SECOND, THIRD = "U0OFFICER", "U0EXAMINER", "U0SECOND", "U0THIRD"
NOTE = "ear shape and the scar over the left eyebrow agree"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def cands(n: int = 2) -> list[dict]:
    return [{"rank": i, "subject_id": f"S-{i}", "name": f"Person {i}", "record_ref": "", "distance": 0.4,
             "fpir_estimate": 0.001 * i} for i in range(1, n + 1)]


def queued(reviewers: int = 1, purpose: str = "investigation", n: int = 2) -> ex.Examination:
    exam, effects = ex.queue(request_id="FR-1", requester_id=OFFICER, call_number="26-012345", purpose=purpose,
                             justification="robbery", candidates=cands(n), reviewers_required=reviewers, now=T0)
    assert [type(e) for e in effects] == [ex.Audit] and effects[0].action == "queued"
    return exam


def decide_all(exam, who, decisions, minutes=1):
    exam, _ = ex.claim(exam, who, at(minutes))
    for sid, d in decisions.items():
        exam, effects = ex.decide(exam, who, sid, d, NOTE if d == ex.POSSIBLE_LEAD else "", at(minutes))
        assert not any(isinstance(e, ex.Refused) for e in effects), effects
    return ex.release(exam, who, at(minutes + 1))


def test_review_candidates_keep_the_looser_estimate_and_the_limit():
    many = cands(12)
    many[3]["fpir_estimate"] = 0.5  # far outside review_fpir
    kept = ex.review_candidates(many, 0.10, 10)
    assert len(kept) == 10 and "S-4" not in {c["subject_id"] for c in kept}
    assert [c["rank"] for c in kept] == sorted(c["rank"] for c in kept)


def test_one_examiner_claims_decides_with_a_note_and_releases():
    exam = queued()
    exam, effects = ex.claim(exam, EXAMINER, at(1))
    assert exam.status == ex.CLAIMED and exam.claimed_by == EXAMINER and effects[0].action == "claim"
    _, effects = ex.decide(exam, EXAMINER, "S-1", ex.POSSIBLE_LEAD, "same", at(2))
    assert effects == [ex.Refused(EXAMINER, wording.exam_note_needed(ex.MIN_NOTE_CHARS))]
    exam, effects = ex.decide(exam, EXAMINER, "S-1", ex.POSSIBLE_LEAD, NOTE, at(2))
    assert effects[0].decision == ex.POSSIBLE_LEAD and effects[0].note == NOTE and effects[0].subject_id == "S-1"
    _, effects = ex.release(exam, EXAMINER, at(3))
    assert effects == [ex.Refused(EXAMINER, wording.exam_undecided(1))]  # S-2 still undecided
    exam, _ = ex.decide(exam, EXAMINER, "S-2", ex.NOT_SAME, "", at(3))
    exam, effects = ex.release(exam, EXAMINER, at(4))
    assert exam.status == ex.RELEASED and exam.released_at == at(4).isoformat()
    audit, released = effects
    assert audit.action == "release" and dict(audit.fields)["shown"] == ("S-1",)
    assert [c["subject_id"] for c in released.leads] == ["S-1"] and released.inconclusive == ()
    assert released.ruled_out == 1  # never shown to the requester
    assert released.leads[0]["notes"] == [{"by": EXAMINER, "decision": ex.POSSIBLE_LEAD, "note": NOTE}]


def test_the_requester_never_examines_their_own_search_and_a_claim_is_exclusive():
    exam = queued()
    assert ex.claim(exam, OFFICER, at(1))[1] == [ex.Refused(OFFICER, wording.EXAM_NOT_YOUR_OWN)]
    exam, _ = ex.claim(exam, EXAMINER, at(1))
    assert ex.claim(exam, SECOND, at(2))[1] == [ex.Refused(SECOND, wording.exam_claimed_by(EXAMINER))]
    assert isinstance(ex.decide(exam, SECOND, "S-1", ex.NOT_SAME, "", at(2))[1][0], ex.Refused)


def test_a_give_back_returns_the_review_to_the_queue_with_nothing_decided():
    exam = queued()
    exam, _ = ex.claim(exam, EXAMINER, at(1))
    exam, _ = ex.decide(exam, EXAMINER, "S-1", ex.NOT_SAME, "", at(1))
    exam, effects = ex.give_back(exam, EXAMINER, at(2))
    assert exam.status == ex.QUEUED and exam.claimed_by is None and exam.current == {}
    assert effects[0].action == "give_back"
    assert isinstance(ex.give_back(exam, SECOND, at(3))[1][0], ex.Refused)


@pytest.mark.parametrize(("first", "second", "result"), [
    (ex.POSSIBLE_LEAD, ex.POSSIBLE_LEAD, "lead"),
    (ex.POSSIBLE_LEAD, ex.NOT_SAME, "inconclusive"),
    (ex.POSSIBLE_LEAD, ex.INCONCLUSIVE, "inconclusive"),
    (ex.NOT_SAME, ex.NOT_SAME, "ruled_out"),
])
def test_two_examiners_decide_blind_and_only_agreement_makes_a_lead(first, second, result):
    exam = queued(reviewers=2, n=1)
    exam, effects = decide_all(exam, EXAMINER, {"S-1": first})
    assert exam.status == ex.QUEUED and len(exam.rounds) == 1 and dict(effects[0].fields)["final"] is False
    assert not any(isinstance(e, ex.Released) for e in effects)  # nothing reaches the requester yet
    assert ex.claim(exam, EXAMINER, at(5))[1] == [ex.Refused(EXAMINER, wording.EXAM_SECOND_EXAMINER)]
    exam, _ = ex.claim(exam, SECOND, at(5))
    assert ex.blind_view(exam, SECOND) == {}  # the first decisions are not shown
    exam, _ = ex.give_back(exam, SECOND, at(5))
    exam, effects = decide_all(exam, SECOND, {"S-1": second}, minutes=6)
    released = next(e for e in effects if isinstance(e, ex.Released))
    got = "lead" if released.leads else "inconclusive" if released.inconclusive else "ruled_out"
    assert got == result
    if result != "ruled_out":
        item = (released.leads or released.inconclusive)[0]
        assert [n["by"] for n in item["notes"]] == [EXAMINER, SECOND]  # both notes kept


def test_the_requester_can_cancel_only_while_unclaimed():
    exam = queued()
    assert ex.cancel(exam, SECOND, at(1))[1] == [ex.Refused(SECOND, wording.EXAM_CANCEL_REQUESTER_ONLY)]
    claimed, _ = ex.claim(exam, EXAMINER, at(1))
    assert ex.cancel(claimed, OFFICER, at(2))[1] == [ex.Refused(OFFICER, wording.EXAM_CANCEL_TOO_LATE)]
    cancelled, effects = ex.cancel(exam, OFFICER, at(2))
    assert cancelled.status == ex.CANCELLED and effects[0].action == "cancel" and isinstance(effects[1], ex.Ended)
    assert ex.claim(cancelled, EXAMINER, at(3))[1] == [ex.Refused(EXAMINER, wording.EXAM_CLOSED)]
    # Cancelled twice: it says so, not that an examiner started it (nobody did).
    assert ex.cancel(cancelled, OFFICER, at(3))[1] == [ex.Refused(OFFICER, wording.EXAM_CANCEL_ALREADY)]


def test_an_idle_claim_returns_to_the_queue_and_an_unclaimed_review_pings_again():
    exam = queued()
    _, effects = ex.on_tick(exam, at(14), claim_minutes=15, claim_timeout_minutes=30)
    assert effects == []
    pinged, effects = ex.on_tick(exam, at(15), claim_minutes=15, claim_timeout_minutes=30)
    assert effects == [ex.Ping()] and pinged.pinged_at == at(15).isoformat()
    assert ex.on_tick(pinged, at(20), claim_minutes=15, claim_timeout_minutes=30)[1] == []  # not every tick
    assert ex.on_tick(pinged, at(30), claim_minutes=15, claim_timeout_minutes=30)[1] == [ex.Ping()]
    claimed, _ = ex.claim(exam, EXAMINER, at(1))
    assert ex.on_tick(claimed, at(30), claim_minutes=15, claim_timeout_minutes=30)[1] == []
    back, effects = ex.on_tick(claimed, at(31), claim_minutes=15, claim_timeout_minutes=30)
    assert back.status == ex.QUEUED and effects[0].action == "timeout"


def test_urgent_reviews_are_listed_first_then_the_oldest():
    old = queued()
    urgent = queued(purpose="threat")
    urgent.queued_at = at(10).isoformat()
    done, _ = decide_all(queued(), EXAMINER, {"S-1": ex.NOT_SAME, "S-2": ex.NOT_SAME})
    assert urgent.urgent and not old.urgent
    assert [e.urgent for e in ex.queue_order([old, done, urgent])] == [True, False]


def test_an_examination_round_trips_through_a_dict():
    exam, _ = decide_all(queued(reviewers=2), EXAMINER, {"S-1": ex.POSSIBLE_LEAD, "S-2": ex.INCONCLUSIVE})
    assert ex.Examination.from_dict(exam.to_dict()) == exam
