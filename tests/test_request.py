"""The request dialog state machine (pure) and its persisted store."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import PolicySettings
from bot.dialog_store import DialogStore
from bot.request import (
    ACTION_ATTEST,
    ACTION_CANCEL,
    ACTION_FACE,
    ACTION_PURPOSE,
    Analyse,
    AskFace,
    Busy,
    Cancelled,
    Closed,
    Dialog,
    Done,
    Expired,
    ImageFailed,
    Invalid,
    NotRequester,
    Prefilled,
    Prompt,
    Search,
    Stale,
    Step,
    Summary,
    on_action,
    on_analysed,
    on_reply,
    on_searched,
    on_tick,
    resume,
    start_dialog,
)

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
POLICY = PolicySettings()
OFFICER = "U0OFFICER"
OTHER = "U0OTHER"
CALL = "26-012345"
JUSTIFICATION = "Armed robbery at the Fifth Street market; store camera shows him pointing a handgun at the clerk."


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def face(index: int, quality: str = "ok") -> dict:
    left = 10 + 100 * (index - 1)
    return {"index": index, "box": {"top": 10, "right": left + 80, "bottom": 90, "left": left},
            "size": 80, "quality": quality}


def faces(n: int) -> list[dict]:
    return [face(i) for i in range(1, n + 1)]


def start(text: str = "", files=(("F1", "one.jpg"),), **kw):
    return start_dialog(channel="C0CASE", thread_ts="1700000000.000100", requester_id=OFFICER,
                        requester_name="Ofc. Reyes", files=list(files), text=text, now=T0, policy=POLICY, **kw)


def reply(d: Dialog, text: str, minutes: float = 1, user: str = OFFICER, **kw):
    return on_reply(d, user_id=user, text=text, now=at(minutes), policy=POLICY, **kw)


def press(d: Dialog, action: str, value: str = "", minutes: float = 1, user: str = OFFICER):
    return on_action(d, user_id=user, action=action, value=value, now=at(minutes), policy=POLICY)


def attested(files=(("F1", "one.jpg"),)) -> Dialog:
    """A dialog whose four answers are given: at ANALYSING."""
    d, _ = start(f"call {CALL} purpose: 1 justification: {JUSTIFICATION}", files=files)
    d, effects = reply(d, "I attest")
    assert d.step is Step.ANALYSING, effects
    return d


def at_step(step: Step) -> Dialog:
    """A one-image dialog driven by replies to `step`."""
    d, _ = start()
    for answer, reached in ((CALL, Step.PURPOSE), ("1", Step.JUSTIFICATION), (JUSTIFICATION, Step.ATTESTATION),
                            ("I attest", Step.ANALYSING)):
        if d.step is step:
            return d
        d, _ = reply(d, answer)
        assert d.step is reached
    if step is Step.ANALYSING:
        return d
    rid = d.images[0].request_id
    n = 2 if step is Step.FACE_CHOICE else 1
    d, _ = on_analysed(d, rid, faces=faces(n), probe_sha256="ab" * 32, error=None, now=at(2))
    assert d.step is step
    return d


# --- happy paths ---------------------------------------------------------------------------------------------


def test_happy_path_by_replies():
    d, effects = start()
    assert effects == [Prompt(Step.CALL_NUMBER)]
    assert d.step is Step.CALL_NUMBER and len(d.images) == 1

    d, effects = reply(d, f"  {CALL} ", minutes=1)
    assert (d.call_number, effects) == (CALL, [Prompt(Step.PURPOSE)])
    d, effects = reply(d, "2", minutes=2)
    assert (d.purpose, effects) == ("threat", [Prompt(Step.JUSTIFICATION)])
    d, effects = reply(d, JUSTIFICATION, minutes=3)
    assert d.justification == JUSTIFICATION
    assert effects == [Summary(CALL, "threat", JUSTIFICATION), Prompt(Step.ATTESTATION)]
    d, effects = reply(d, "I ATTEST.", minutes=4)
    rid = d.images[0].request_id
    assert d.attested and d.step is Step.ANALYSING
    assert effects == [Analyse((rid,))]

    d, effects = on_analysed(d, rid, faces=faces(1), probe_sha256="cd" * 32, error=None, now=at(5))
    assert effects == [Search(rid, 1)]
    assert d.step is Step.SEARCHING and d.images[0].face_index == 1 and d.images[0].faces == faces(1)
    assert d.images[0].probe_sha256 == "cd" * 32

    d, effects = on_searched(d, rid, outcome="candidates", now=at(6), result_ts="1700000000.000900")
    assert effects == [Done((rid,))]
    assert d.step is Step.DONE and d.terminal
    img = d.images[0]
    assert (img.status, img.outcome, img.result_ts) == ("done", "candidates", "1700000000.000900")
    # The time of each answer is kept for the audit.
    assert d.answer_times == {"call_number": at(1).isoformat(), "purpose": at(2).isoformat(),
                              "justification": at(3).isoformat(), "attestation": at(4).isoformat()}
    assert d.updated_at == at(6).isoformat() and d.ended_at == at(6).isoformat()
    assert d.answers().attested and d.answers().call_number == CALL


def test_happy_path_by_buttons():
    d, _ = start()
    d, _ = reply(d, CALL)
    d, effects = press(d, f"{ACTION_PURPOSE}:identify", "identify", minutes=2)
    assert (d.purpose, effects) == ("identify", [Prompt(Step.JUSTIFICATION)])
    assert d.answer_times["purpose"] == at(2).isoformat()
    d, effects = reply(d, f"justification: {JUSTIFICATION}", minutes=3)
    assert d.justification == JUSTIFICATION  # the label is not part of the answer
    assert effects[0] == Summary(CALL, "identify", JUSTIFICATION)
    d, effects = press(d, ACTION_ATTEST, minutes=4)
    rid = d.images[0].request_id
    assert d.attested and effects == [Analyse((rid,))]
    assert d.answer_times["attestation"] == at(4).isoformat()
    d, _ = on_analysed(d, rid, faces=faces(3), probe_sha256="ef" * 32, error=None, now=at(5))
    d, effects = press(d, ACTION_FACE, f"{rid}:3", minutes=6)
    assert effects == [Search(rid, 3)] and d.step is Step.SEARCHING
    d, effects = on_searched(d, rid, outcome="no_candidate", now=at(7))
    assert d.step is Step.DONE and d.images[0].outcome == "no_candidate" and effects == [Done((rid,))]


def test_transitions_never_change_the_dialog_they_are_given():
    d, _ = start()
    before = d.to_dict()
    reply(d, CALL)
    reply(d, "cancel")
    on_tick(d, at(999), 30)
    assert d.to_dict() == before


# --- pre-filled answers ---------------------------------------------------------------------------------------


def test_all_answers_in_the_upload_text_go_straight_to_the_attestation():
    text = f"Call {CALL}, purpose: investigation\nJustification: {JUSTIFICATION}"
    d, effects = start(text)
    assert (d.call_number, d.purpose, d.justification) == (CALL, "investigation", JUSTIFICATION)
    assert effects == [Prefilled(("call_number", "purpose", "justification")),
                       Summary(CALL, "investigation", JUSTIFICATION), Prompt(Step.ATTESTATION)]
    assert d.step is Step.ATTESTATION
    assert d.answer_times["call_number"] == T0.isoformat()  # given with the upload
    assert d.prefilled == ["call_number", "purpose", "justification"]


def test_a_prefilled_call_number_skips_only_its_step():
    d, effects = start(f"photo from call {CALL}")
    assert d.call_number == CALL and d.purpose is None
    assert effects == [Prefilled(("call_number",)), Prompt(Step.PURPOSE)]


def test_an_invalid_value_in_the_upload_text_is_asked():
    # Not a call number of the configured form: nothing is pre-filled, the step is asked.
    d, effects = start("call 26-12 please")
    assert d.call_number is None and effects == [Prompt(Step.CALL_NUMBER)]
    # A call number never seen in dispatch, with require_known_call: asked, and the reason is given.
    d, effects = start(f"call {CALL}", known_call=lambda n: False, require_known_call=True)
    assert d.call_number is None and d.step is Step.CALL_NUMBER
    assert effects == [Invalid(Step.CALL_NUMBER, "unknown_call", None, value=CALL), Prompt(Step.CALL_NUMBER)]
    # A justification too short to pass: the other answers are kept, the justification is asked.
    d, effects = start(f"call {CALL} purpose: 2 justification: he did it")
    assert (d.call_number, d.purpose, d.justification) == (CALL, "threat", None)
    assert effects[0] == Prefilled(("call_number", "purpose"))
    assert isinstance(effects[1], Invalid) and effects[1].step is Step.JUSTIFICATION and effects[1].reason
    assert effects[-1] == Prompt(Step.JUSTIFICATION)


# --- invalid answers and the requester rule ---------------------------------------------------------------


def test_invalid_answers_are_asked_again_with_the_reason():
    d, _ = start()
    d2, effects = reply(d, "tomorrow", minutes=1)
    assert d2.step is Step.CALL_NUMBER and d2.call_number is None
    assert effects[0].code == "call_number" and "26-012345" in effects[0].reason
    assert effects[1] == Prompt(Step.CALL_NUMBER)
    assert "call_number" not in d2.answer_times
    assert d2.updated_at == at(1).isoformat()  # the requester is active: the timeout restarts

    d, _ = reply(d2, CALL)
    d2, effects = reply(d, "banana")
    assert d2.step is Step.PURPOSE and d2.purpose is None
    assert effects == [Invalid(Step.PURPOSE, "purpose", None), Prompt(Step.PURPOSE)]
    d2, effects = press(d, ACTION_PURPOSE, "curiosity")  # a code outside B.1
    assert d2.purpose is None and effects[0].code == "purpose" and effects[0].reason

    d, _ = reply(d, "1")
    d2, effects = reply(d, "he looks suspicious")
    assert d2.step is Step.JUSTIFICATION and d2.justification is None
    assert effects[0].code == "justification" and effects[0].reason
    assert effects[1] == Prompt(Step.JUSTIFICATION)

    d, _ = reply(d, JUSTIFICATION)
    d2, effects = reply(d, "ok")
    assert d2.step is Step.ATTESTATION and not d2.attested
    assert effects == [Invalid(Step.ATTESTATION, "attestation", None), Prompt(Step.ATTESTATION)]


def test_only_the_requester_answers():
    d, _ = start()
    d2, effects = reply(d, CALL, user=OTHER)
    assert effects == [NotRequester(OTHER)] and d2.to_dict() == d.to_dict()
    d = at_step(Step.PURPOSE)
    d2, effects = press(d, ACTION_PURPOSE, "threat", user=OTHER)
    assert effects == [NotRequester(OTHER)] and d2.purpose is None
    d = at_step(Step.ATTESTATION)
    d2, effects = reply(d, "cancel", user=OTHER)
    assert effects == [NotRequester(OTHER)] and d2.step is Step.ATTESTATION


def test_require_known_call_refuses_an_unknown_call():
    d, _ = start()
    d2, effects = reply(d, CALL, known_call=lambda n: False, require_known_call=True)
    assert d2.call_number is None and d2.step is Step.CALL_NUMBER
    assert effects == [Invalid(Step.CALL_NUMBER, "unknown_call", None, value=CALL), Prompt(Step.CALL_NUMBER)]
    # No way to check is a refusal too (fail closed).
    d2, effects = reply(d, CALL, known_call=None, require_known_call=True)
    assert d2.call_number is None and effects[0].code == "unknown_call"
    seen = []
    d2, effects = reply(d, f"call {CALL}", known_call=lambda n: seen.append(n) or True, require_known_call=True)
    assert d2.call_number == CALL and seen == [CALL] and effects == [Prompt(Step.PURPOSE)]
    # Off: any well-formed call number is accepted.
    d2, _ = reply(d, CALL, known_call=lambda n: False, require_known_call=False)
    assert d2.call_number == CALL


def test_buttons_out_of_turn_and_after_the_end():
    d = at_step(Step.PURPOSE)
    d2, effects = press(d, ACTION_ATTEST)
    assert effects == [Stale(ACTION_ATTEST, Step.PURPOSE)] and not d2.attested
    done = at_step(Step.SEARCHING)
    done, _ = on_searched(done, done.images[0].request_id, outcome="no_candidate", now=at(3))
    d2, effects = press(done, ACTION_CANCEL)
    assert effects == [Closed(Step.DONE)] and d2.step is Step.DONE
    # Chatter in a finished thread gets no answer at all.
    assert reply(done, "thanks")[1] == [] and reply(done, "cancel", user=OTHER)[1] == []


def test_replies_during_face_work_are_busy():
    for step in (Step.ANALYSING, Step.SEARCHING):
        d = at_step(step)
        d2, effects = reply(d, "2")
        assert effects == [Busy(step)] and d2.to_dict() == d.to_dict()


def test_face_work_before_the_attestation_is_ignored():
    d = at_step(Step.JUSTIFICATION)
    d2, effects = on_analysed(d, d.images[0].request_id, faces=faces(1), probe_sha256="x", error=None, now=at(2))
    assert effects == [] and d2.step is Step.JUSTIFICATION and d2.images[0].faces is None


# --- cancel and timeout -------------------------------------------------------------------------------------


@pytest.mark.parametrize("step", [Step.CALL_NUMBER, Step.PURPOSE, Step.JUSTIFICATION, Step.ATTESTATION,
                                  Step.ANALYSING, Step.FACE_CHOICE])
@pytest.mark.parametrize("how", ["reply", "button"])
def test_cancel_at_each_step(step, how):
    d = at_step(step)
    rid = d.images[0].request_id
    if how == "reply":
        d, effects = reply(d, "  Cancel ", minutes=9)
    else:
        d, effects = press(d, ACTION_CANCEL, minutes=9)
    assert effects == [Cancelled((rid,))]
    assert d.step is Step.CANCELLED and d.terminal
    assert (d.images[0].status, d.images[0].outcome) == ("done", "cancelled")
    assert d.answer_times["cancel"] == at(9).isoformat() and d.ended_at == at(9).isoformat()
    # Late face work for a cancelled image is dropped: it was audited as cancelled already.
    d2, effects = on_analysed(d, rid, faces=faces(1), probe_sha256="x", error=None, now=at(10))
    assert effects == [] and d2.images[0].outcome == "cancelled"


def test_cancel_while_searching_is_too_late():
    d = at_step(Step.SEARCHING)
    d2, effects = reply(d, "cancel")
    assert effects == [Busy(Step.SEARCHING)] and d2.step is Step.SEARCHING


@pytest.mark.parametrize("step", [Step.CALL_NUMBER, Step.PURPOSE, Step.JUSTIFICATION, Step.ATTESTATION,
                                  Step.FACE_CHOICE])
def test_input_steps_expire_after_the_timeout(step):
    d = at_step(step)
    last = datetime.fromisoformat(d.updated_at)
    same, effects = on_tick(d, last + timedelta(minutes=29), 30)
    assert effects == [] and same.step is step
    d, effects = on_tick(d, last + timedelta(minutes=30), 30)
    rid = d.images[0].request_id
    assert effects == [Expired((rid,))] and d.step is Step.EXPIRED
    assert d.images[0].outcome == "expired"
    assert on_tick(d, last + timedelta(days=1), 30)[1] == []  # expires once


@pytest.mark.parametrize("step", [Step.ANALYSING, Step.SEARCHING])
def test_face_work_never_expires(step):
    d = at_step(step)
    d2, effects = on_tick(d, at(60 * 24), 30)
    assert effects == [] and d2.step is step


def test_an_answer_restarts_the_timeout():
    d, _ = start()
    d, _ = reply(d, CALL, minutes=20)
    assert on_tick(d, at(45), 30)[1] == []
    assert on_tick(d, at(50), 30)[1] == [Expired((d.images[0].request_id,))]


# --- faces ----------------------------------------------------------------------------------------------------


def test_several_faces_are_asked_and_chosen_by_reply():
    d = attested()
    rid = d.images[0].request_id
    d, effects = on_analysed(d, rid, faces=faces(3), probe_sha256="ab" * 32, error=None, now=at(2))
    assert effects == [AskFace(rid, tuple(faces(3)))]
    assert d.step is Step.FACE_CHOICE and d.images[0].status == "needs_face"
    d, effects = reply(d, "2", minutes=3)
    assert effects == [Search(rid, 2)]
    assert d.images[0].face_index == 2 and d.images[0].chosen_at == at(3).isoformat()
    assert d.step is Step.SEARCHING


def test_out_of_range_face_choice_is_refused():
    d = at_step(Step.FACE_CHOICE)  # two faces
    rid = d.images[0].request_id
    for text in ("3", "0", "the left one"):
        d2, effects = reply(d, text)
        assert effects == [Invalid(Step.FACE_CHOICE, "face_choice", None, rid)]
        assert d2.step is Step.FACE_CHOICE and d2.images[0].face_index is None
    d2, effects = press(d, ACTION_FACE, f"{rid}:9")
    assert effects == [Invalid(Step.FACE_CHOICE, "face_choice", None, rid)] and d2.images[0].face_index is None
    d2, effects = press(d, ACTION_FACE, "FR-NOSUCHID:1")
    assert isinstance(effects[0], Stale) and d2.images[0].face_index is None


def test_an_image_without_a_face_or_unreadable_fails_alone():
    d = attested(files=(("F1", "a.jpg"), ("F2", "b.jpg")))
    r1, r2 = d.request_ids
    d, effects = on_analysed(d, r1, faces=[], probe_sha256="ab" * 32, error=None, now=at(2))
    assert effects == [ImageFailed(r1, "no_face")] and d.step is Step.ANALYSING
    assert (d.images[0].status, d.images[0].outcome) == ("done", "error")
    d, effects = on_analysed(d, r2, faces=None, probe_sha256=None, error="corrupt", now=at(3))
    assert effects == [ImageFailed(r2, "corrupt"), Done((r1, r2))] and d.step is Step.DONE
    assert d.images[1].error == "corrupt"


def test_two_images_share_the_answers_and_only_one_asks_for_a_face():
    d, effects = start(files=(("F1", "a.jpg"), ("F2", "b.jpg")))
    r1, r2 = d.request_ids
    assert r1 != r2 and r1.startswith("FR-")
    assert effects == [Prompt(Step.CALL_NUMBER)]  # asked once for both
    for text in (CALL, "1", JUSTIFICATION):
        d, _ = reply(d, text)
    d, effects = reply(d, "I attest")
    assert effects == [Analyse((r1, r2))]
    d, effects = on_analysed(d, r1, faces=faces(1), probe_sha256="11" * 32, error=None, now=at(2))
    assert effects == [Search(r1, 1)] and d.step is Step.ANALYSING  # b.jpg is still being looked at
    d, effects = on_analysed(d, r2, faces=faces(2), probe_sha256="22" * 32, error=None, now=at(3))
    assert effects == [AskFace(r2, tuple(faces(2)))] and d.step is Step.FACE_CHOICE
    d, effects = reply(d, "2")
    assert effects == [Search(r2, 2)] and d.step is Step.SEARCHING
    assert [i.face_index for i in d.images] == [1, 2]
    d, effects = on_searched(d, r2, outcome="no_candidate", now=at(4))
    assert effects == [] and d.step is Step.SEARCHING
    d, effects = on_searched(d, r1, outcome="candidates", now=at(5))
    assert effects == [Done((r1, r2))] and d.step is Step.DONE
    assert [i.outcome for i in d.images] == ["candidates", "no_candidate"]


def test_two_images_with_several_faces_are_asked_one_at_a_time():
    d = attested(files=(("F1", "a.jpg"), ("F2", "b.jpg")))
    r1, r2 = d.request_ids
    # The second image is analysed first: its question goes out first, and a bare number answers it.
    d, effects = on_analysed(d, r2, faces=faces(2), probe_sha256="22" * 32, error=None, now=at(2))
    assert effects == [AskFace(r2, tuple(faces(2)))]
    d, effects = on_analysed(d, r1, faces=faces(3), probe_sha256="11" * 32, error=None, now=at(3))
    assert effects == []  # held until the first question is answered
    d, effects = reply(d, "1")
    assert effects == [Search(r2, 1), AskFace(r1, tuple(faces(3)))] and d.step is Step.FACE_CHOICE
    d, effects = press(d, ACTION_FACE, f"{r1}:3")
    assert effects == [Search(r1, 3)] and d.step is Step.SEARCHING


def test_timeout_at_face_choice_lets_running_searches_finish():
    d = attested(files=(("F1", "a.jpg"), ("F2", "b.jpg")))
    r1, r2 = d.request_ids
    d, _ = on_analysed(d, r1, faces=faces(1), probe_sha256="11" * 32, error=None, now=at(2))
    d, _ = on_analysed(d, r2, faces=faces(2), probe_sha256="22" * 32, error=None, now=at(2))
    d, effects = on_tick(d, at(40), 30)
    assert effects == [Expired((r2,))] and d.step is Step.EXPIRED
    d, effects = on_searched(d, r1, outcome="candidates", now=at(41))
    # The ending stays; Done only lets the adapter clear its progress marks (the last search is over).
    assert effects == [Done(d.request_ids)] and d.step is Step.EXPIRED and d.images[0].outcome == "candidates"


# --- persistence ----------------------------------------------------------------------------------------------


def test_to_dict_from_dict_round_trip():
    d = attested(files=(("F1", "a.jpg"), ("F2", "b.jpg")))
    d, _ = on_analysed(d, d.request_ids[0], faces=faces(2), probe_sha256="ab" * 32, error=None, now=at(2))
    data = json.loads(json.dumps(d.to_dict()))  # JSON-safe
    back = Dialog.from_dict(data)
    assert back == d and back.step is Step.FACE_CHOICE and back.images[0].faces == faces(2)


def test_restart_mid_dialog_resumes_at_the_same_step_with_stored_faces(tmp_path: Path):
    path = tmp_path / "data" / "dialogs.json"
    d = attested(files=(("F1", "a.jpg"), ("F2", "b.jpg")))
    r1, r2 = d.request_ids
    d, _ = on_analysed(d, r1, faces=faces(3), probe_sha256="ab" * 32, error=None, now=at(2))
    store = DialogStore(path)
    store.put(d)
    store.close()

    store = DialogStore(path)  # a new process
    back = store.by_thread("C0CASE", "1700000000.000100")
    assert back == d and back.step is Step.FACE_CHOICE and back.images[0].faces == faces(3)
    assert store.by_request_id(r2) == d and store.by_request_id("FR-NONE") is None
    assert [x.dialog_id for x in store.active()] == [d.dialog_id]
    # Only the image never analysed is analysed again; the stored boxes are used as they are.
    assert resume(back) == [Analyse((r2,))]
    back, effects = reply(back, "3")
    assert effects == [Search(r1, 3)]
    store.put(back)
    assert DialogStore(path).get(d.dialog_id).images[0].face_index == 3


def test_store_update_and_retention(tmp_path: Path):
    store = DialogStore(tmp_path / "dialogs.json")
    live, _ = start()
    ended, _ = reply(at_step(Step.PURPOSE), "cancel", minutes=1)
    store.put(live)
    store.put(ended)
    _, effects = store.update(live.dialog_id, lambda x: reply(x, CALL, minutes=2))
    assert effects == [Prompt(Step.PURPOSE)] and store.get(live.dialog_id).call_number == CALL
    assert store.update("D-none", lambda x: (x, [])) is None
    assert [x.dialog_id for x in store.active()] == [live.dialog_id]
    # Retention removes ended dialogs only, however old an active one is.
    assert store.delete_older_than(at(1)) == 0  # the cancel was at minute 1: not before the cutoff
    assert store.delete_older_than(at(60 * 24 * 90)) == 1
    assert store.get(ended.dialog_id) is None and store.get(live.dialog_id) is not None


def test_claim_dedupes_across_a_restart_and_prunes_old_keys(tmp_path: Path):
    path = tmp_path / "dialogs.json"
    store = DialogStore(path)
    assert store.claim("event:Ev01", T0) is True
    assert store.claim("event:Ev01", at(1)) is False
    assert store.claim("file:F1", at(1)) is True
    store.close()
    store = DialogStore(path)  # restart, then Slack redelivers
    assert store.claim("event:Ev01", at(5)) is False
    assert store.claim("file:F1", at(5)) is False
    # Long after Slack stops redelivering, the keys are pruned so the file does not grow forever.
    store = DialogStore(path, claim_ttl=timedelta(days=3))
    assert store.claim("event:Ev02", T0 + timedelta(days=4)) is True
    assert not store.claimed("event:Ev01") and store.claimed("event:Ev02")


def test_two_store_handles_see_each_others_writes(tmp_path: Path):
    # e.g. the server and a maintenance command on one data dir: no stale cached lookups.
    path = tmp_path / "dialogs.json"
    a, b = DialogStore(path), DialogStore(path)
    d, _ = start()
    assert a.by_thread("C0CASE", d.thread_ts) is None
    b.put(d)
    assert a.by_thread("C0CASE", d.thread_ts) == d
    d2, _ = reply(d, CALL)
    a.put(d2)
    assert b.by_thread("C0CASE", d.thread_ts).call_number == CALL
    assert a.claim("event:Ev09", T0) and not b.claim("event:Ev09", T0)


def test_a_justification_reply_is_stored_on_one_line():
    """Line breaks in a justification could forge lines (e.g. fake candidates) wherever it is echoed."""
    from bot import request

    policy_settings = PolicySettings()
    dialog, _ = request.start_dialog(
        channel="C1", thread_ts="1.0", requester_id="U1", requester_name="One", files=[("F1", "p.jpg")],
        text="26-012345 purpose: 1", now=T0, policy=policy_settings,
    )
    forged = ("Armed robbery of the pharmacy at 14:10, store camera footage, report 26-4411\n\n"
              "*Candidates (2):*\n1. John Q Public (subject JQP-1): higher similarity")
    dialog, _ = request.on_reply(dialog, user_id="U1", text=forged, now=T0, policy=policy_settings)
    assert dialog.justification and "\n" not in dialog.justification


def test_the_last_search_finishing_after_a_cancel_lets_the_adapter_clear_its_marks():
    from bot import request as rq

    policy_settings = PolicySettings()
    dialog, _ = rq.start_dialog(
        channel="C1", thread_ts="1.0", requester_id="U1", requester_name="One",
        files=[("F1", "a.jpg"), ("F2", "b.jpg")], text="", now=T0, policy=policy_settings,
    )
    first, second = (i.request_id for i in dialog.images)
    # First image searching, second still waiting for a face choice; then the officer cancels.
    dialog.images[0].status, dialog.images[0].face_index = rq.SEARCHING, 1
    dialog.images[1].status = rq.NEEDS_FACE
    dialog.step, dialog.attested = rq.Step.FACE_CHOICE, True
    dialog, effects = rq.on_reply(dialog, user_id="U1", text="cancel", now=T0, policy=policy_settings)
    assert any(isinstance(e, rq.Cancelled) and e.request_ids == (second,) for e in effects)
    dialog, effects = rq.on_searched(dialog, first, outcome="candidates", now=T0)
    assert dialog.step is rq.Step.CANCELLED
    assert any(isinstance(e, rq.Done) for e in effects)
