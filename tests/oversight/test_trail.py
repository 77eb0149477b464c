"""The console's request trail and open-work list, pure over audit entries and the controls' records."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot import wording
from bot.controls import approval, examination
from bot.oversight import trail
from bot.request.dialog import Dialog, ImageRequest, Step

TZ = "America/Los_Angeles"
T0 = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
POINT = {"method": "gallery", "gallery_size": 1630, "sample_size": 1630, "calibrated_at": "2026-03-01T00:00:00Z"}


def ts(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def search_entry(**changes) -> dict:
    entry = {
        "seq": 3, "ts": ts(2), "kind": "search", "outcome": "review", "request_id": "FR-1",
        "requester": {"id": "U1", "name": "Ofc. One"}, "call_number": "26-012345", "purpose": "investigation",
        "justification": "facts", "attestation": {"attested": True}, "permalink": "https://x.slack.com/archives/C1/p1",
        "faces": [{"index": 1, "size": 40, "quality": {"level": "low", "eye_px": 12, "sharpness": 0.5,
                                                       "exposure": 0.5, "yaw_deg": 0}},
                  {"index": 2, "size": 200, "quality": {"level": "ok"}}],
        "face_index": 2, "operating_point": POINT,
        "candidates": [{"rank": 2, "subject_id": "S2", "distance": 0.5, "fpir_estimate": 0.01},
                       {"rank": 1, "subject_id": "S1", "distance": 0.4, "fpir_estimate": 1e-4,
                        "below_resolution": True}],
    }
    return {**entry, **changes}


def entries() -> list[dict]:
    return [
        {"seq": 1, "ts": ts(0), "kind": "refusal", "request_id": "FR-1", "step": "call_number", "reason": "format",
         "text": "12"},
        search_entry(),
        {"seq": 4, "ts": ts(3), "kind": "review", "request_id": "FR-1", "action": "queued", "by": "system"},
        {"seq": 5, "ts": ts(4), "kind": "review", "request_id": "FR-1", "action": "claim", "by": "UEX"},
        {"seq": 6, "ts": ts(5), "kind": "review", "request_id": "FR-1", "action": "decision", "by": "UEX",
         "subject_id": "S1", "decision": "possible_lead", "note": "ears agree"},
        {"seq": 7, "ts": ts(6), "kind": "review", "request_id": "FR-1", "action": "release", "by": "UEX", "final": True,
         "leads": [{"subject_id": "S1"}], "ruled_out": 1, "shown": ["S1"]},
        {"seq": 8, "ts": ts(7), "kind": "alert", "request_id": "FR-1", "rule": "flagged"},
    ]


def test_a_trail_has_faces_in_words_candidates_with_estimates_decisions_steps_and_every_entry():
    t = trail.request_trail(entries(), tz=TZ, subjects={"S1": {"name": "Dana Doe", "record_ref": "R-1", "images": []},
                                                          "S2": None})
    assert t["searched"] and t["outcome"] == "candidates"  # the release's outcome, not "review"
    assert [f["quality"] for f in t["face_rows"]] == [
        wording.console_face_quality("low", ["eyes"]), "ok"] and [f["chosen"] for f in t["face_rows"]] == [False, True]
    first, second = t["candidate_rows"]
    assert (first["rank"], first["name"], first["record_ref"], first["enrolled"]) == (1, "Dana Doe", "R-1", True)
    assert first["estimate"] == wording.estimate_text(1e-4, True, POINT)
    assert [(d["by"], d["decision"], d["note"]) for d in first["decisions"]] == [("UEX", "possible_lead", "ears agree")]
    assert (second["name"], second["enrolled"], second["decisions"]) == ("", False, [])  # no longer in the gallery
    assert [s["action"] for s in t["steps"]] == ["queued", "claimed", "decided a candidate", "released"]
    assert t["steps"][2]["decision"] == "Possible lead" and t["steps"][0]["stage"] == "examiner review"
    assert [(r["step"], r["text"]) for r in t["refusals"]] == [("call_number", "12")]
    assert [e["kind"] for e in t["entries"]] == ["refusal", "search", "review", "review", "review", "review", "alert"]
    assert t["when"]["recorded"] == "2026-03-02 09:02:00"  # local time
    assert t["request_link"] == "https://x.slack.com/archives/C1/p1"
    assert trail.candidate_subjects(entries()) == ["S1", "S2"]


def test_a_link_that_is_not_http_is_never_given_to_a_page():
    t = trail.request_trail([search_entry(permalink="javascript:alert(1)")], tz=TZ)
    assert t["request_link"] is None


def test_a_request_not_searched_yet_says_so_and_takes_its_answers_from_the_running_dialog():
    queued = {"seq": 9, "ts": ts(1), "kind": "review", "request_id": "FR-2", "action": "queued", "by": "system",
              "stage": "approval", "reason": "always"}
    t = trail.request_trail([queued], tz=TZ)
    assert not t["searched"] and t["outcome_label"] == wording.CONSOLE_NOT_SEARCHED_YET
    assert t["steps"][0]["stage"] == "supervisor approval" and t["steps"][0]["note"] == "always"
    dialog = Dialog("D1", "C1", "1.2", "U1", "Ofc. One", ts(0), ts(1), Step.AWAITING_APPROVAL,
                    [ImageRequest("FR-2", "F1", "a.jpg")], call_number="26-012345", purpose="investigation",
                    justification="facts", attested=True, answer_times={"attestation": ts(1)},
                    approval={"status": "pending", "reason": "always", "at": ts(1)})
    running = trail.with_running_dialog(t, dialog, TZ)
    assert running["running"] and running["policy_answers"]["call_number"] == "26-012345"
    assert running["policy_answers"]["purpose_label"] and running["policy_answers"]["attestation"] == {"attested": True}
    assert running["requester"] == {"id": "U1", "name": "Ofc. One"}

    [row] = trail.open_work([], [], [dialog], tz=TZ)
    assert (row["request_id"], row["kind"], row["since"]) == ("FR-2", wording.CONSOLE_KIND_APPROVAL, "2026-03-02 09:01:00")
    assert row["waits_for"] == wording.console_waits_supervisor("always")


def test_open_work_lists_urgent_reviews_first_then_the_oldest_with_who_claimed_them():
    def queued(rid: str, purpose: str, minutes: float) -> examination.Examination:
        exam, _ = examination.queue(request_id=rid, requester_id="U1", call_number="26-1", purpose=purpose,
                                    justification="facts", candidates=[{"rank": 1, "subject_id": "S1"}],
                                    reviewers_required=1, now=T0 + timedelta(minutes=minutes))
        return exam

    old, urgent = queued("FR-OLD", "investigation", 0), queued("FR-URGENT", "threat", 10)
    claimed, _ = examination.claim(queued("FR-CLAIMED", "investigation", 5), "UEX", T0 + timedelta(minutes=6))
    released = queued("FR-DONE", "investigation", 1)
    released.status = examination.RELEASED
    pending = approval.Pending(request_id="FR-CLI", requester={"id": "os:alice", "name": "alice (uid 1000)"},
                               slack_user="", answers={"call_number": "26-2"}, reason="flagged", source={}, probe_sha256="ab" * 32,
                               faces=[], face_index=1, encoding=None, created_at=ts(2))
    rows = trail.open_work([old, urgent, claimed, released], [pending], [], tz=TZ)
    assert [r["request_id"] for r in rows] == ["FR-URGENT", "FR-OLD", "FR-CLI", "FR-CLAIMED"]
    assert rows[0]["urgent"] and rows[3]["claimed_by"] == "UEX"
    assert rows[3]["waits_for"] == wording.CONSOLE_WAITS_EXAMINER_RELEASE
    assert rows[1]["waits_for"] == wording.CONSOLE_WAITS_EXAMINER_CLAIM
    assert rows[2]["waits_for"] == wording.console_waits_supervisor("flagged") and rows[2]["requester"] == "alice (uid 1000)"
