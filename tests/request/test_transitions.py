"""The request dialog state machine (pure) and its persisted store."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import PolicySettings
from bot.request.transitions import (
    ACTION_ATTEST,
    ACTION_CANCEL,
    ACTION_FACE,
    ACTION_PURPOSE,
    ACTION_START,
    Analyse,
    AskFace,
    Attested,
    Busy,
    Calls,
    Cancelled,
    Closed,
    ConfirmCall,
    Dialog,
    Done,
    Expired,
    ImageFailed,
    Invalid,
    NeedsApproval,
    NotRequester,
    Offer,
    OfferEnded,
    Search,
    Stale,
    Started,
    Step,
    asks_for_search,
    on_action,
    on_analysed,
    on_approval,
    on_form,
    on_reply,
    on_searched,
    on_tick,
    resume,
    start_dialog,
)
from bot.store.dialogs import DialogStore

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


def start(text: str = "", files=(("F1", "one.jpg"),), ask: bool = True, **kw):
    return start_dialog(channel="C0CASE", thread_ts="1700000000.000100", requester_id=OFFICER,
                        requester_name="Ofc. Reyes", files=list(files), text=text, now=T0, policy=POLICY, ask=ask,
                        **kw)


def reply(d: Dialog, text: str, minutes: float = 1, user: str = OFFICER, **kw):
    return on_reply(d, user_id=user, text=text, now=at(minutes), policy=POLICY, **kw)


def press(d: Dialog, action: str, value: str = "", minutes: float = 1, user: str = OFFICER, **kw):
    return on_action(d, user_id=user, action=action, value=value, now=at(minutes), policy=POLICY, **kw)


def detected(d: Dialog, n: int = 1, minutes: float = 0.5, index: int = 0) -> tuple[Dialog, list]:
    return on_analysed(d, d.images[index].request_id, faces=faces(n), probe_sha256="ab" * 32, error=None,
                       now=at(minutes))


def at_step(step: Step) -> Dialog:
    """A one-image dialog driven by replies to `step` (one face found at once, two for FACE_CHOICE)."""
    d, _ = start()
    n = 2 if step is Step.FACE_CHOICE else 1
    if step is not Step.ANALYSING:
        d, _ = detected(d, n)
    for answer, reached in ((CALL, Step.PURPOSE), ("1", Step.JUSTIFICATION), (JUSTIFICATION, Step.ATTESTATION)):
        if d.step is step:
            return d
        d, _ = reply(d, answer)
        assert d.step is reached
    if step is Step.ATTESTATION:
        return d
    d, _ = reply(d, "I attest")
    assert d.step is step, d.step
    return d


# --- a deliberate start ---------------------------------------------------------------------------------------


def test_an_upload_that_does_not_ask_is_only_offered():
    d, effects = start(ask=False)
    assert effects == [Offer()] and d.step is Step.OFFERED and not d.started and d.started_at is None
    assert resume(d) == []  # nothing to find or search for an offer


def test_an_offer_starts_with_the_uploaders_call_number_or_start():
    d, _ = start(ask=False)
    rid = d.images[0].request_id
    started, effects = reply(d, f"  {CALL} ")
    assert started.started and started.call_number == CALL and started.step is Step.PURPOSE
    assert effects == [Started(()), Analyse((rid,))]
    by_word, effects = reply(d, "start")
    assert by_word.step is Step.CALL_NUMBER and effects == [Started(()), Analyse((rid,))]
    by_button, effects = press(d, ACTION_START, d.dialog_id)
    assert by_button.started and effects[0] == Started(())
    # A mistyped number starts it too, and is read back.
    typo, effects = reply(d, "26-04512")
    assert typo.started and typo.call_number is None and effects[-1].code == "call_number"
    assert effects[-1].text == "26-04512"


def test_chatter_in_an_offered_thread_is_not_for_the_bot():
    d, _ = start(ask=False)
    for text, user in (("nice, is that the van?", OFFICER), (CALL, OTHER), ("start", OTHER)):
        same, effects = reply(d, text, user=user)
        assert effects == [] and same.to_dict() == d.to_dict()
    _, effects = press(d, ACTION_START, d.dialog_id, user=OTHER)
    assert effects == [NotRequester(OTHER)]  # only the uploader can press Start


def test_an_offer_nobody_takes_up_ends_quietly():
    d, _ = start(ask=False)
    assert on_tick(d, at(29), 30)[1] == []
    ended, effects = on_tick(d, at(30), 30)
    assert effects == [OfferEnded()] and ended.step is Step.EXPIRED and not ended.started
    assert [i.outcome for i in ended.images] == [None]  # nothing to audit
    declined, effects = reply(d, "cancel")
    assert effects == [OfferEnded()] and declined.step is Step.CANCELLED


def test_asks_for_search_reads_answers_in_the_upload_text():
    assert asks_for_search(f"call {CALL}", POLICY) and asks_for_search("purpose: 2", POLICY)
    assert asks_for_search(f"justification: {JUSTIFICATION}", POLICY)
    assert not asks_for_search("photo for the file", POLICY) and not asks_for_search("", POLICY)


# --- happy paths ----------------------------------------------------------------------------------------------


def test_happy_path_by_replies_faces_found_first_searched_after_the_attestation():
    d, effects = start("<@UBOT>")
    rid = d.images[0].request_id
    assert effects == [Started(()), Analyse((rid,))]
    assert d.step is Step.CALL_NUMBER and d.started_at == T0.isoformat()
    d, effects = detected(d, 1, minutes=0.5)
    assert effects == [] and d.images[0].status == "ready" and d.step is Step.CALL_NUMBER  # no search yet
    d, effects = reply(d, f"  {CALL} ", minutes=1)
    assert (d.call_number, effects, d.step) == (CALL, [], Step.PURPOSE)
    d, effects = reply(d, "2", minutes=2)
    assert (d.purpose, effects, d.step) == ("threat", [], Step.JUSTIFICATION)
    d, effects = reply(d, JUSTIFICATION, minutes=3)
    assert d.justification == JUSTIFICATION and effects == [] and d.step is Step.ATTESTATION
    d, effects = reply(d, "I ATTEST.", minutes=4)
    assert d.attested and d.step is Step.SEARCHING
    assert effects == [Attested((rid,)), Search(rid, 1)]
    assert d.images[0].analysed_at == at(0.5).isoformat() and d.images[0].chosen_at == at(4).isoformat()
    d, effects = on_searched(d, rid, outcome="candidates", now=at(6), result_ts="1700000000.000900")
    assert effects == [Done((rid,))] and d.step is Step.DONE and d.terminal
    assert d.answer_times == {"call_number": at(1).isoformat(), "purpose": at(2).isoformat(),
                              "justification": at(3).isoformat(), "attestation": at(4).isoformat()}


def test_an_attestation_before_the_faces_are_found_waits_for_them():
    d, _ = start(f"call {CALL} purpose: 1 justification: {JUSTIFICATION}")
    rid = d.images[0].request_id
    d, effects = reply(d, "I attest")
    assert effects == [Attested((rid,))] and d.step is Step.ANALYSING
    assert reply(d, "hello")[1] == [Busy(Step.ANALYSING)]
    d, effects = detected(d, 1, minutes=2)
    assert effects == [Search(rid, 1)] and d.step is Step.SEARCHING


def test_a_group_photos_face_can_be_chosen_before_the_questions_are_done():
    d, _ = start("<@UBOT>")
    rid = d.images[0].request_id
    d, effects = detected(d, 3)
    assert effects == [AskFace(rid, tuple(faces(3)))] and d.step is Step.CALL_NUMBER
    d, effects = press(d, ACTION_FACE, f"{rid}:3")
    assert effects == [] and d.images[0].face_index == 3 and d.images[0].status == "ready"
    for text in (CALL, "1", JUSTIFICATION):
        d, _ = reply(d, text)
    d, effects = press(d, ACTION_ATTEST)
    assert effects == [Attested((rid,)), Search(rid, 3)]


def test_face_n_picks_a_face_at_any_question_and_a_bare_number_answers_the_question():
    d, _ = start(f"call {CALL}")
    d, _ = detected(d, 2)
    d, effects = reply(d, "2")
    assert d.purpose == "threat" and d.images[0].face_index is None  # "2" answered the purpose
    d, effects = reply(d, "face 2")
    assert d.images[0].face_index == 2 and d.step is Step.JUSTIFICATION and effects == []
    waiting = at_step(Step.FACE_CHOICE)  # after the attestation a bare number is the face
    d, effects = reply(waiting, "2")
    assert effects == [Search(waiting.images[0].request_id, 2)] and d.step is Step.SEARCHING


def test_transitions_never_change_the_dialog_they_are_given():
    d, _ = start()
    before = d.to_dict()
    reply(d, CALL)
    reply(d, "cancel")
    detected(d, 2)
    on_tick(d, at(999), 30)
    assert d.to_dict() == before


# --- pre-filled answers ---------------------------------------------------------------------------------------


def test_all_answers_in_the_upload_text_go_straight_to_the_attestation():
    text = f"Call {CALL}, purpose: investigation\nJustification: {JUSTIFICATION}"
    d, effects = start(text)
    assert (d.call_number, d.purpose, d.justification) == (CALL, "investigation", JUSTIFICATION)
    assert effects == [Started(("call_number", "purpose", "justification")), Analyse((d.images[0].request_id,))]
    assert d.step is Step.ATTESTATION and d.answer_times["call_number"] == T0.isoformat()


def test_an_invalid_value_in_the_upload_text_is_asked_with_the_reason():
    d, effects = start("call 26-12 please")
    assert d.call_number is None and d.step is Step.CALL_NUMBER and not any(isinstance(e, Invalid) for e in effects)
    d, effects = start(f"call {CALL}", calls=Calls(known=lambda n: False, require_known=True))
    assert d.call_number is None and effects[-1] == Invalid(Step.CALL_NUMBER, "unknown_call", None, value=CALL,
                                                           text=CALL)
    d, effects = start(f"call {CALL} purpose: 2 justification: he did it")
    assert (d.call_number, d.purpose, d.justification) == (CALL, "threat", None)
    assert effects[-1].step is Step.JUSTIFICATION and effects[-1].reason and d.step is Step.JUSTIFICATION


# --- invalid answers, refusals and the requester rule -----------------------------------------------------------


def test_invalid_answers_are_read_back_and_the_card_still_asks():
    d, _ = start("<@UBOT>")
    d2, effects = reply(d, "tomorrow", minutes=1)
    assert d2.step is Step.CALL_NUMBER and d2.call_number is None
    [invalid] = effects
    assert invalid.code == "call_number" and invalid.text == "tomorrow" and "26-012345" in invalid.reason
    assert "call_number" not in d2.answer_times and d2.updated_at == at(1).isoformat()

    d, _ = reply(d2, CALL)
    d2, effects = reply(d, "banana")
    assert d2.purpose is None and effects == [Invalid(Step.PURPOSE, "purpose", None, text="banana")]
    d2, effects = press(d, ACTION_PURPOSE, "curiosity")  # a code outside B.1
    assert d2.purpose is None and effects[0].code == "purpose" and effects[0].reason

    d, _ = reply(d, "1")
    d2, effects = reply(d, "he looks suspicious")
    assert d2.justification is None and effects[0].code == "justification" and effects[0].reason
    d2, effects = reply(d, "search because he is Hispanic")
    assert effects[0].reason.startswith("GO 375.01 C forbids")  # not "too short": C is the reason

    d, _ = reply(d, JUSTIFICATION)
    d2, effects = reply(d, "ok")
    assert not d2.attested and effects == [Invalid(Step.ATTESTATION, "attestation", None, text="ok")]


def test_a_justification_that_passes_but_names_a_protected_class_is_flagged():
    d = at_step(Step.JUSTIFICATION)
    padded = "He is Hispanic and young; armed robbery at the Main St store on 11/20, camera still of the suspect"
    d, _ = reply(d, padded)
    assert d.justification == padded and d.flags == ["protected_class"]
    d, _ = reply(at_step(Step.JUSTIFICATION), JUSTIFICATION)
    assert d.flags == []


def test_only_the_requester_answers():
    d, _ = start("<@UBOT>")
    d2, effects = reply(d, CALL, user=OTHER)
    assert effects == [NotRequester(OTHER)] and d2.to_dict() == d.to_dict()
    d = at_step(Step.PURPOSE)
    d2, effects = press(d, ACTION_PURPOSE, "threat", user=OTHER)
    assert effects == [NotRequester(OTHER)] and d2.purpose is None
    d = at_step(Step.ATTESTATION)
    d2, effects = reply(d, "cancel", user=OTHER)
    assert effects == [NotRequester(OTHER)] and d2.step is Step.ATTESTATION


def test_require_known_call_refuses_an_unknown_call():
    d, _ = start("<@UBOT>")
    refuse = Calls(known=lambda n: False, require_known=True)
    d2, effects = reply(d, CALL, calls=refuse)
    assert d2.call_number is None and effects == [Invalid(Step.CALL_NUMBER, "unknown_call", None, value=CALL,
                                                          text=CALL)]
    d2, effects = reply(d, CALL, calls=Calls(require_known=True))  # no way to check: refused (fail closed)
    assert d2.call_number is None and effects[0].code == "unknown_call"
    seen = []
    d2, effects = reply(d, f"call {CALL}", calls=Calls(known=lambda n: seen.append(n) or True, require_known=True))
    assert d2.call_number == CALL and seen == [CALL] and effects == []


def test_an_unknown_call_is_questioned_with_typo_suggestions_and_confirmed():
    calls = Calls(known=lambda n: n in ("26-012354", "26-102345"),
                  recent=lambda: ["26-012354", "26-102345", "26-999999", "26-012346"])
    d, _ = start("<@UBOT>")
    d2, effects = reply(d, CALL, calls=calls)
    # One digit different, or two adjacent digits swapped; never the unrelated call.
    assert effects == [ConfirmCall(CALL, ("26-012354", "26-102345", "26-012346"))]
    assert d2.call_number is None and d2.pending_call == CALL and d2.step is Step.CALL_NUMBER
    yes, effects = reply(d2, "Yes", calls=calls)
    assert yes.call_number == CALL and yes.pending_call is None and yes.step is Step.PURPOSE
    again, _ = reply(d2, CALL, calls=calls)  # the same number again confirms it too
    assert again.call_number == CALL
    other, _ = reply(d2, "26-012354", calls=calls)  # the right number instead
    assert other.call_number == "26-012354"
    # Without a dispatch channel there is nothing to check against: taken as typed.
    assert reply(d, CALL)[0].call_number == CALL


def test_buttons_out_of_turn_and_after_the_end():
    d = at_step(Step.PURPOSE)
    d2, effects = press(d, ACTION_ATTEST)
    assert effects == [Stale(ACTION_ATTEST, Step.PURPOSE)] and not d2.attested
    done = at_step(Step.SEARCHING)
    done, _ = on_searched(done, done.images[0].request_id, outcome="no_candidate", now=at(3))
    d2, effects = press(done, ACTION_CANCEL)
    assert effects == [Closed(Step.DONE)] and d2.step is Step.DONE
    assert reply(done, "thanks")[1] == [] and reply(done, "cancel", user=OTHER)[1] == []


def test_replies_during_the_bots_work_are_busy():
    for step in (Step.ANALYSING, Step.SEARCHING):
        d = at_step(step)
        d2, effects = reply(d, "2")
        assert effects == [Busy(step)] and d2.to_dict() == d.to_dict()


def test_face_detection_of_an_offer_or_an_ended_request_is_ignored():
    d, _ = start(ask=False)
    d2, effects = detected(d, 1)
    assert effects == [] and d2.images[0].faces is None
    d, _ = reply(at_step(Step.ANALYSING), "cancel")
    d2, effects = detected(d, 1)
    assert effects == [] and d2.images[0].outcome == "cancelled"


# --- the form -------------------------------------------------------------------------------------------------


def test_the_form_takes_the_answers_that_pass_and_refuses_the_rest():
    d, _ = start(ask=False)
    d2, effects = on_form(d, user_id=OFFICER, call_number="26-04512", purpose="threat",
                          justification=JUSTIFICATION, now=at(1), policy=POLICY)
    assert d2.started and d2.call_number is None and d2.purpose == "threat" and d2.justification == JUSTIFICATION
    assert [e.step for e in effects if isinstance(e, Invalid)] == [Step.CALL_NUMBER]
    d3, effects = on_form(d2, user_id=OFFICER, call_number=CALL, purpose="threat", justification=JUSTIFICATION,
                          now=at(2), policy=POLICY, calls=Calls(known=lambda n: False))
    assert d3.call_number == CALL and d3.step is Step.ATTESTATION  # submitting confirms an unknown call
    assert not any(isinstance(e, (Invalid, ConfirmCall)) for e in effects) and not d3.attested
    assert on_form(d3, user_id=OTHER, call_number=CALL, purpose="1", justification="x", now=at(3),
                   policy=POLICY)[1] == [NotRequester(OTHER)]
    attested, _ = reply(d3, "I attest")
    assert on_form(attested, user_id=OFFICER, call_number=CALL, purpose="threat", justification=JUSTIFICATION,
                   now=at(4), policy=POLICY)[1] == [Closed(attested.step)]


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
    assert effects == [Expired((rid,))] and d.step is Step.EXPIRED and d.images[0].outcome == "expired"
    assert on_tick(d, last + timedelta(days=1), 30)[1] == []  # expires once


@pytest.mark.parametrize("step", [Step.ANALYSING, Step.SEARCHING])
def test_the_bots_work_never_expires(step):
    d = at_step(step)
    d2, effects = on_tick(d, at(60 * 24), 30)
    assert effects == [] and d2.step is step


def test_an_answer_restarts_the_timeout_and_the_bots_face_work_does_not():
    d, _ = start("<@UBOT>")
    d, _ = reply(d, CALL, minutes=20)
    d, _ = detected(d, 1, minutes=40)  # the faces were found late: not the officer's activity
    assert on_tick(d, at(45), 30)[1] == []
    assert on_tick(d, at(50), 30)[1] == [Expired((d.images[0].request_id,))]


# --- faces ----------------------------------------------------------------------------------------------------


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


def test_an_unusable_photo_is_said_at_once_and_ends_a_request_with_nothing_left():
    d, _ = start("<@UBOT>", files=(("F1", "a.jpg"), ("F2", "b.jpg")))
    r1, r2 = d.request_ids
    d, effects = on_analysed(d, r1, faces=[], probe_sha256="ab" * 32, error=None, now=at(1))
    assert effects == [ImageFailed(r1, "no_face")] and d.step is Step.CALL_NUMBER  # before any question
    d, effects = on_analysed(d, r2, faces=None, probe_sha256=None, error="corrupt", now=at(2))
    assert effects == [ImageFailed(r2, "corrupt"), Done((r1, r2))] and d.step is Step.DONE
    assert [i.outcome for i in d.images] == ["error", "error"] and d.images[1].error == "corrupt"


def test_two_images_share_the_answers_and_each_is_searched_once_its_face_is_known():
    d, effects = start("<@UBOT>", files=(("F1", "a.jpg"), ("F2", "b.jpg")))
    r1, r2 = d.request_ids
    assert r1 != r2 and r1.startswith("FR-") and effects == [Started(()), Analyse((r1, r2))]
    d, _ = detected(d, 1, index=0)
    d, effects = detected(d, 2, index=1)
    assert effects == [AskFace(r2, tuple(faces(2)))]
    for text in (CALL, "1", JUSTIFICATION):
        d, _ = reply(d, text)
    d, effects = reply(d, "I attest")
    assert effects == [Attested((r1, r2)), Search(r1, 1)] and d.step is Step.FACE_CHOICE
    d, effects = reply(d, "2")
    assert effects == [Search(r2, 2)] and d.step is Step.SEARCHING
    d, effects = on_searched(d, r2, outcome="no_candidate", now=at(4))
    assert effects == [] and d.step is Step.SEARCHING
    d, effects = on_searched(d, r1, outcome="candidates", now=at(5))
    assert effects == [Done((r1, r2))] and d.step is Step.DONE


def test_two_images_with_several_faces_are_asked_one_at_a_time():
    d, _ = start(f"call {CALL} purpose: 1 justification: {JUSTIFICATION}", files=(("F1", "a.jpg"), ("F2", "b.jpg")))
    d, _ = reply(d, "I attest")
    r1, r2 = d.request_ids
    d, effects = on_analysed(d, r2, faces=faces(2), probe_sha256="22" * 32, error=None, now=at(2))
    assert effects == [AskFace(r2, tuple(faces(2)))]
    d, effects = on_analysed(d, r1, faces=faces(3), probe_sha256="11" * 32, error=None, now=at(3))
    assert effects == []  # held until the first question is answered
    d, effects = reply(d, "1")
    assert effects == [Search(r2, 1), AskFace(r1, tuple(faces(3)))] and d.step is Step.FACE_CHOICE
    d, effects = press(d, ACTION_FACE, f"{r1}:3")
    assert effects == [Search(r1, 3)] and d.step is Step.SEARCHING


def test_timeout_at_face_choice_lets_running_searches_finish():
    d, _ = start(f"call {CALL} purpose: 1 justification: {JUSTIFICATION}", files=(("F1", "a.jpg"), ("F2", "b.jpg")))
    r1, r2 = d.request_ids
    d, _ = on_analysed(d, r1, faces=faces(1), probe_sha256="11" * 32, error=None, now=at(1))
    d, _ = on_analysed(d, r2, faces=faces(2), probe_sha256="22" * 32, error=None, now=at(1))
    d, _ = reply(d, "I attest", minutes=2)
    d, effects = on_tick(d, at(40), 30)
    assert effects == [Expired((r2,))] and d.step is Step.EXPIRED
    d, effects = on_searched(d, r1, outcome="candidates", now=at(41))
    assert effects == [Done(d.request_ids)] and d.step is Step.EXPIRED and d.images[0].outcome == "candidates"


# --- persistence ----------------------------------------------------------------------------------------------


def test_to_dict_from_dict_round_trip():
    d, _ = start("<@UBOT>", files=(("F1", "a.jpg"), ("F2", "b.jpg")), photo_source={"id": "U0POSTER", "name": "P"})
    d, _ = detected(d, 2)
    d.card_ts, d.flags = "1700000000.000200", ["protected_class"]
    back = Dialog.from_dict(json.loads(json.dumps(d.to_dict())))  # JSON-safe
    assert back == d and back.images[0].faces == faces(2) and back.photo_source["id"] == "U0POSTER"


def test_a_dialog_stored_before_offers_existed_reads_as_started():
    d = at_step(Step.PURPOSE)
    old = d.to_dict()
    for key in ("started_at", "card_ts", "photo_source", "pending_call", "suggestions", "flags"):
        old.pop(key)
    back = Dialog.from_dict(old)
    assert back.started and back.started_at == back.created_at and back.flags == []


def test_restart_mid_dialog_resumes_the_detection_not_yet_stored(tmp_path: Path):
    path = tmp_path / "data" / "dialogs.json"
    d, _ = start(f"call {CALL} purpose: 1 justification: {JUSTIFICATION}", files=(("F1", "a.jpg"), ("F2", "b.jpg")))
    r1, r2 = d.request_ids
    d, _ = on_analysed(d, r1, faces=faces(3), probe_sha256="ab" * 32, error=None, now=at(2))
    store = DialogStore(path)
    store.put(d)
    store.close()

    store = DialogStore(path)  # a new process
    back = store.by_thread("C0CASE", "1700000000.000100")
    assert back == d and back.images[0].faces == faces(3)
    assert store.by_request_id(r2) == d and store.by_request_id("FR-NONE") is None
    # Only the image never analysed is analysed again; the stored boxes are used as they are.
    assert resume(back) == [Analyse((r2,))]


def test_store_update_and_retention(tmp_path: Path):
    store = DialogStore(tmp_path / "dialogs.json")
    live, _ = start()
    ended, _ = reply(at_step(Step.PURPOSE), "cancel", minutes=1)
    store.put(live)
    store.put(ended)
    _, effects = store.update(live.dialog_id, lambda x: reply(x, CALL, minutes=2))
    assert effects == [] and store.get(live.dialog_id).call_number == CALL
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
    from bot.request import transitions

    policy_settings = PolicySettings()
    dialog, _ = transitions.start_dialog(
        channel="C1", thread_ts="1.0", requester_id="U1", requester_name="One", files=[("F1", "p.jpg")],
        text="26-012345 purpose: 1", now=T0, policy=policy_settings,
    )
    forged = ("Armed robbery of the pharmacy at 14:10, store camera footage, report 26-4411\n\n"
              "*Candidates (2):*\n1. John Q Public (subject JQP-1): higher similarity")
    dialog, _ = transitions.on_reply(dialog, user_id="U1", text=forged, now=T0, policy=policy_settings)
    assert dialog.justification and "\n" not in dialog.justification


def test_the_last_search_finishing_after_a_cancel_lets_the_adapter_clear_its_marks():
    from bot.request import transitions as rq

    policy_settings = PolicySettings()
    dialog, _ = rq.start_dialog(
        channel="C1", thread_ts="1.0", requester_id="U1", requester_name="One",
        files=[("F1", "a.jpg"), ("F2", "b.jpg")], text="<@UBOT>", now=T0, policy=policy_settings,
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


# --- supervisor approval ([review] approval) --------------------------------------------------------------------


def test_a_flagged_request_waits_for_a_supervisor_and_approval_runs_the_search():
    padded = "He is Hispanic; armed robbery at the Main St pharmacy on 11/20, store camera still of the suspect"
    d, _ = start(f"call {CALL} purpose: 1 justification: {padded}")
    d, _ = detected(d, 1)
    rid = d.images[0].request_id
    waiting, effects = reply(d, "I attest", approval="flagged")
    assert effects == [NeedsApproval("flagged")] and waiting.step is Step.AWAITING_APPROVAL
    assert reply(waiting, "hello")[1] == [Busy(Step.AWAITING_APPROVAL)]
    assert on_approval(waiting, approved=True, by=OFFICER, reason="", now=at(2))[1] == [NotRequester(OFFICER)]
    approved, effects = on_approval(waiting, approved=True, by="U0SUPER", reason="facts stand", now=at(2))
    assert effects == [Attested((rid,)), Search(rid, 1)] and approved.approval["by"] == "U0SUPER"
    assert (approved.approval["reason"], approved.approval["decision_reason"]) == ("flagged", "facts stand")
    _, effects = reply(at_step(Step.ATTESTATION), "I attest", approval="flagged")
    assert not any(isinstance(e, NeedsApproval) for e in effects)  # only flagged ones wait


def test_a_refused_or_unanswered_approval_ends_the_request_without_a_search():
    d = at_step(Step.ATTESTATION)
    waiting, effects = reply(d, "I attest", approval="always")
    assert effects == [NeedsApproval("always")]
    refused, effects = on_approval(waiting, approved=False, by="U0SUPER", reason="no nexus", now=at(2))
    assert effects == [] and refused.step is Step.CANCELLED and refused.images[0].outcome == "denied"
    assert on_tick(waiting, at(60), 30, approval_minutes=90)[1] == []
    expired, effects = on_tick(waiting, at(200), 30, approval_minutes=90)
    assert effects == [Expired((d.images[0].request_id,))] and expired.approval["status"] == "expired"
    _, effects = reply(waiting, "cancel")
    assert isinstance(effects[0], Cancelled)  # the requester may still withdraw it
