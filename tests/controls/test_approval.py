"""bot.controls.approval: a command-line request waiting for a supervisor, as a pure state machine."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.controls import approval

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def pending(**over) -> approval.Pending:
    answers = {"call_number": "26-012345", "purpose": "investigation", "justification": "x" * 30, "attested": True}
    return approval.Pending(**{
        "request_id": "FR-1", "requester": {"id": "os:alice", "name": "alice (uid 1000)"}, "slack_user": "UALICE",
        "answers": answers, "reason": "always", "source": {"source": "cli"}, "probe_sha256": "ab" * 32,
        "faces": [{"index": 1}], "face_index": 1, "encoding": [0.1] * 128, "created_at": NOW.isoformat(),
        "face_jpeg": "/9j/", **over})


@pytest.mark.parametrize(("mode", "flags", "reason"), [
    ("never", ("protected_class",), None), ("flagged", (), None), ("flagged", ("protected_class",), "flagged"),
    ("always", (), "always"),
])
def test_approval_reason_follows_the_setting_and_the_screen(mode, flags, reason):
    assert approval.approval_reason(mode, flags) == reason


@pytest.mark.parametrize("by", ["os:alice", "UALICE"])
def test_the_requester_never_approves_their_own_search_by_os_or_slack_account(by):
    p = pending()
    new, effects = approval.decide(p, approved=True, by=by, reason="mine", now=NOW)
    assert new is p and effects == [approval.Refused(by, "requester")]


def test_approved_it_searches_and_keeps_the_template_until_searched():
    new, effects = approval.decide(pending(), approved=True, by="USUP", reason="facts", now=NOW)
    assert effects == [approval.Audit("approve", "USUP", "facts"), approval.Search()]
    assert new.status == approval.APPROVED and new.decided_by == "USUP" and new.encoding is not None and new.open
    done, _ = approval.searched(new, NOW)
    assert done.status == approval.SEARCHED and done.encoding is None and done.face_jpeg == "" and not done.open


def test_refused_it_ends_denied_with_the_reason_and_drops_the_template():
    new, effects = approval.decide(pending(), approved=False, by="USUP", reason="no nexus", now=NOW)
    assert effects == [approval.Audit("refuse", "USUP", "no nexus"), approval.Ended("denied", "no nexus")]
    assert new.status == approval.REFUSED and new.encoding is None and new.face_jpeg == ""
    again, effects = approval.decide(new, approved=True, by="USUP2", reason="", now=NOW)
    assert again is new and effects == [approval.Refused("USUP2", "closed")]


def test_unanswered_it_expires_after_approval_minutes_only():
    p = pending()
    assert approval.on_tick(p, NOW + timedelta(minutes=59), 60) == (p, [])
    new, effects = approval.on_tick(p, NOW + timedelta(minutes=60), 60)
    assert effects == [approval.Audit("timeout", "system"), approval.Ended("expired", "")]
    assert new.status == approval.EXPIRED and new.encoding is None
    assert approval.on_tick(new, NOW + timedelta(days=1), 60) == (new, [])  # once


def test_a_pending_request_round_trips_through_its_dict():
    p = pending()
    assert approval.Pending.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError):
        approval.decide(p, approved=True, by="USUP", reason="", now=datetime(2026, 12, 1))  # naive time


def test_only_the_requester_cancels_and_only_while_it_waits():
    p = pending()
    assert approval.cancel(p, "os:mallory", NOW) == (p, [approval.Refused("os:mallory", "not_requester")])
    new, effects = approval.cancel(p, "os:alice", NOW)
    assert effects == [approval.Audit("cancel", "os:alice"), approval.Ended("cancelled", "")]
    assert new.status == approval.CANCELLED and new.encoding is None and new.extra["card_stale"] and not new.open
    assert "card_stale" not in approval.card_shown(new)[0].extra
    approved, _ = approval.decide(p, approved=True, by="USUP", reason="", now=NOW)
    assert approval.cancel(approved, "os:alice", NOW)[1] == [approval.Refused("os:alice", "closed")]
