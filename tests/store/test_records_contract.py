"""One contract, two stores: the file ExaminationStore / ApprovalStore and their PostgreSQL twins
(tests/pg_fixtures.py, as the app's role) answer every call the same way (issue 17: the store seam). Each test
runs on both, with real reviews and approvals from bot.controls."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from bot.controls import approval, examination
from bot.store.pg.records import PgApprovalStore, PgExaminationStore
from bot.store.records import ApprovalStore, ExaminationStore

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OFFICER = "U0OFFICER1"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture(params=["file", "postgresql"])
def stores(request, tmp_path):
    """stores() -> (examinations, approvals): new handles on the parametrised kind of store."""
    if request.param == "file":
        return lambda: (ExaminationStore(tmp_path / "examinations.json"), ApprovalStore(tmp_path / "approvals.json"))
    db = request.getfixturevalue("pg_migrated")
    return lambda: (PgExaminationStore(lambda: psycopg.connect(db.app_url)),
                    PgApprovalStore(lambda: psycopg.connect(db.app_url)))


def queued(request_id: str, minutes: float = 0) -> examination.Examination:
    exam, _ = examination.queue(request_id=request_id, requester_id=OFFICER, call_number="26-012345",
                                purpose="investigation", justification="Armed robbery, store camera",
                                candidates=[{"subject_id": "S-1", "rank": 1, "fpir_estimate": 0.01}],
                                reviewers_required=1, now=at(minutes))
    return exam


def pending(request_id: str, minutes: float = 0) -> approval.Pending:
    return approval.Pending(request_id=request_id, requester={"id": "os:alice", "name": "alice (uid 1000)"},
                            slack_user="", answers={"call_number": "26-012345", "purpose": "investigation"},
                            reason="always", source={"cli": True}, probe_sha256="ab" * 32, faces=[{"index": 1}],
                            face_index=1, encoding=[0.125, -0.3333333333333333, 1e-07], created_at=at(minutes).isoformat())


def test_reviews_are_stored_stepped_and_listed_alike(stores):
    exams, _ = stores()
    first, second = queued("FR-EXAM00001"), queued("FR-EXAM00002", minutes=1)
    exams.put(first)
    exams.put(second)
    exams.put(first)  # put replaces
    assert exams.get("FR-EXAM00001") == first and exams.get("FR-NONE") is None
    assert exams.all() == [first, second] and exams.open() == [first, second]
    claimed, effects = exams.update("FR-EXAM00001", lambda e: examination.claim(e, "U0EXAMINER", at(2)))
    assert claimed.status == examination.CLAIMED and [type(e).__name__ for e in effects] == ["Audit"]
    again = stores()[0]  # another process, or another replica
    assert again.get("FR-EXAM00001") == claimed
    # A refused step changes nothing and still answers.
    same, effects = exams.update("FR-EXAM00001", lambda e: examination.claim(e, OFFICER, at(3)))
    assert same == claimed and [type(e).__name__ for e in effects] == ["Refused"]
    assert exams.update("FR-NONE", lambda e: (e, [])) is None
    ended, _ = exams.update("FR-EXAM00002", lambda e: examination.cancel(e, OFFICER, at(4)))
    assert not ended.open and ended.ended_at == at(4).isoformat()
    assert again.open() == [claimed] and again.all() == [claimed, ended]
    exams.close()


def test_approvals_round_trip_their_template_and_step_alike(stores):
    _, approvals = stores()
    waiting = pending("FR-APPR00001")
    approvals.put(waiting)
    back = approvals.get("FR-APPR00001")
    assert back == waiting and back.encoding == [0.125, -0.3333333333333333, 1e-07]  # every float bit kept
    approved, effects = approvals.update("FR-APPR00001", lambda p: approval.decide(
        p, approved=True, by="U0SUPER", reason="ok", now=at(5)))
    assert approved.status == approval.APPROVED and [type(e).__name__ for e in effects] == ["Audit", "Search"]
    assert stores()[1].open() == [approved]  # approved but not yet searched: still open
    searched, _ = approvals.update("FR-APPR00001", lambda p: approval.searched(p, at(6)))
    assert approvals.get("FR-APPR00001") == searched and searched.encoding is None and approvals.open() == []


def test_retention_removes_ended_records_only(stores):
    exams, approvals = stores()
    old_open, old_ended, new_ended = queued("FR-EXAMOPEN1"), queued("FR-EXAMOLD01"), queued("FR-EXAMNEW01")
    old_ended, _ = examination.cancel(old_ended, OFFICER, at(10))
    new_ended, _ = examination.cancel(new_ended, OFFICER, at(100))
    for exam in (old_open, old_ended, new_ended):
        exams.put(exam)
    refused, _ = approval.decide(pending("FR-APPRREF01"), approved=False, by="U0SUPER", reason="no", now=at(10))
    for p in (refused, pending("FR-APPRWAIT1")):
        approvals.put(p)
    assert exams.delete_ended_before(at(10)) == 0  # ended at minute 10: not before the cutoff
    assert exams.delete_ended_before(at(50)) == 1 and approvals.delete_ended_before(at(50)) == 1
    assert [e.request_id for e in exams.all()] == ["FR-EXAMOPEN1", "FR-EXAMNEW01"]
    assert [p.request_id for p in approvals.all()] == ["FR-APPRWAIT1"]
