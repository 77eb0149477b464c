"""The request card and the form (bot.slack.card): what they show at each step, and buttons and form fields whose
ids and values the request machine accepts, within Slack's limits."""
from __future__ import annotations

import json

import pytest

from bot import wording
from bot.config import Settings
from bot.request import transitions
from bot.request.transitions import Step
from bot.slack import blocks, card

from .test_blocks import (
    CALL,
    JUSTIFICATION,
    OFFICER,
    POLICY,
    analysed,
    at,
    at_step,
    buttons,
    check_slack_limits,
    section_texts,
    start,
)

SETTINGS = Settings()


def draw(d: transitions.Dialog) -> dict:
    return check_slack_limits(card.request_card(d, SETTINGS))


def press(d: transitions.Dialog, button: dict, user: str = OFFICER):
    return transitions.on_action(d, user_id=user, action=button["action_id"], value=button["value"], now=at(1),
                             policy=POLICY)


def test_the_offer_has_start_and_the_form_and_start_starts_the_request():
    d, effects = start(ask=False)
    assert effects == [transitions.Offer()] and d.step is Step.OFFERED and not d.started
    kwargs = draw(d)
    assert section_texts(kwargs) == [wording.OFFER_TEXT]
    assert kwargs["metadata"]["event_payload"]["step"] == "offered"
    start_button, form_button = buttons(kwargs)
    assert (start_button["text"]["text"], form_button["action_id"]) == (wording.START_BUTTON, transitions.ACTION_FORM)
    _, others = press(d, start_button, user="U0COLLEAGUE")
    assert others == [transitions.NotRequester("U0COLLEAGUE")]  # only the uploader can press Start
    new, effects = press(d, start_button)
    assert new.started and new.step is Step.CALL_NUMBER
    assert effects[:2] == [transitions.Started(()), transitions.Analyse((d.images[0].request_id,))]


def test_the_card_shows_the_answers_as_read_and_asks_only_the_next_question():
    kwargs = draw(at_step(Step.JUSTIFICATION))
    lines = section_texts(kwargs)[1]
    assert wording.card_call_number(CALL) in lines and "✓ Purpose 1: Active investigation" in lines
    assert wording.card_ask_justification(POLICY.justification_min_chars) in lines
    assert wording.ATTESTATION not in json.dumps(kwargs)  # only after the three answers
    assert [b["action_id"] for b in buttons(kwargs)] == [transitions.ACTION_FORM, transitions.ACTION_CANCEL]
    attest = draw(at_step(Step.ATTESTATION))
    assert wording.card_justification(JUSTIFICATION) in section_texts(attest)[1]
    assert section_texts(attest)[2] == wording.ATTESTATION  # whole, after the answers as read


@pytest.mark.parametrize("number", [1, 2, 3])
def test_purpose_buttons_on_the_card_are_accepted_by_the_request_machine(number):
    d = at_step(Step.PURPOSE)
    purpose_buttons = [b for b in buttons(draw(d)) if b["action_id"].startswith(transitions.ACTION_PURPOSE)]
    assert len(purpose_buttons) == 3 and len({b["action_id"] for b in purpose_buttons}) == 3
    button = purpose_buttons[number - 1]
    assert button["text"]["text"].startswith(f"{number}. ")
    new, effects = press(d, button)
    assert new.step is Step.JUSTIFICATION and not any(isinstance(e, (transitions.Stale, transitions.Invalid)) for e in effects)


def test_the_attest_button_on_the_card_is_accepted_and_searches_a_photo_whose_face_is_known():
    d, _ = analysed(1)
    (attest,) = [b for b in buttons(draw(d)) if b["action_id"] == transitions.ACTION_ATTEST]
    assert attest["text"]["text"] == "I attest"
    new, effects = press(d, attest)
    rid = d.images[0].request_id
    assert new.attested and new.step is Step.SEARCHING
    assert effects == [transitions.Attested((rid,)), transitions.Search(rid, 1)]


@pytest.mark.parametrize("step", transitions.QUESTION_STEPS)
def test_the_cancel_button_on_the_card_is_accepted_by_the_request_machine(step):
    d = at_step(step)
    cancel = buttons(draw(d))[-1]
    assert cancel["style"] == "danger" and cancel["confirm"]["title"]["text"] == wording.CANCEL_CONFIRM_TITLE
    new, effects = press(d, cancel)
    assert new.step is Step.CANCELLED and effects == [transitions.Cancelled(d.request_ids)]


def test_face_buttons_on_the_card_are_numbered_and_accepted_before_the_attestation():
    d, effects = analysed(3, small=(3,))
    ask = next(e for e in effects if isinstance(e, transitions.AskFace))
    kwargs = draw(d)
    assert kwargs["metadata"]["event_payload"]["face_request"] == ask.request_id
    face_buttons = [b for b in buttons(kwargs) if b["action_id"].startswith(transitions.ACTION_FACE)]
    assert [b["text"]["text"] for b in face_buttons] == ["Face 1", "Face 2", "Face 3 (small)"]
    assert wording.card_photo_choose("one.jpg", 3) in section_texts(kwargs)[1]
    new, out = press(d, face_buttons[1])
    assert out == [] and new.image(ask.request_id).face_index == 2 and new.step is Step.ATTESTATION
    assert "face 2 of 3" in section_texts(draw(new))[1]


def test_a_crowd_gets_rows_of_face_buttons_within_slacks_limits():
    d, _ = analysed(60)
    face_buttons = [b for b in buttons(draw(d)) if b["action_id"].startswith(transitions.ACTION_FACE)]
    assert len(face_buttons) == 60


def test_every_actions_block_of_the_card_names_its_dialog():
    for d in (at_step(Step.PURPOSE), at_step(Step.ATTESTATION), analysed(30)[0], start(ask=False)[0]):
        ids = [b["block_id"] for b in draw(d)["blocks"] if b["type"] == "actions"]
        assert ids and len(set(ids)) == len(ids)  # unique within the message, as Slack requires
        assert {blocks.button_dialog_id(i) for i in ids} == {d.dialog_id}


def test_an_unknown_call_is_questioned_with_suggestions_and_buttons_for_each():
    calls = transitions.Calls(known=lambda n: n == "26-012354", recent=lambda: ["26-012354", "26-099999"])
    d, effects = transitions.on_reply(at_step(Step.CALL_NUMBER), user_id=OFFICER, text="26-012345", now=at(1),
                                  policy=POLICY, calls=calls)
    assert effects == [transitions.ConfirmCall("26-012345", ("26-012354",))]
    assert d.call_number is None and d.pending_call == "26-012345"
    kwargs = draw(d)
    assert "Did you mean 26-012354?" in section_texts(kwargs)[1]
    use_typed, use_suggested = [b for b in buttons(kwargs) if b["action_id"].startswith(transitions.ACTION_CALL)]
    assert use_typed["text"]["text"] == "Use 26-012345" and use_suggested["value"] == "26-012354"
    taken, _ = transitions.on_action(d, user_id=OFFICER, action=use_suggested["action_id"],
                                 value=use_suggested["value"], now=at(2), policy=POLICY, calls=calls)
    assert taken.call_number == "26-012354" and taken.step is Step.PURPOSE
    confirmed, _ = transitions.on_reply(d, user_id=OFFICER, text="yes", now=at(2), policy=POLICY, calls=calls)
    assert confirmed.call_number == "26-012345"


def test_a_flagged_justification_says_so_on_the_card():
    padded = "He is Hispanic and young; robbery at the Main St store on 11/20, camera still of the suspect"
    d, _ = start(f"call {CALL} purpose: 1 justification: {padded}")
    assert d.flags == ["protected_class"]
    kwargs = draw(d)
    assert wording.CARD_FLAG_PROTECTED in section_texts(kwargs)[1]
    assert kwargs["metadata"]["event_payload"]["flags"] == "protected_class"


# --- the form ---------------------------------------------------------------------------------------------------


def test_the_form_is_a_modal_prefilled_from_the_card_with_the_dialog_in_private_metadata():
    d = at_step(Step.JUSTIFICATION)
    view = card.form_view(d, SETTINGS)
    assert view["type"] == "modal" and view["callback_id"] == card.FORM_CALLBACK
    assert view["private_metadata"] == d.dialog_id and len(view["title"]["text"]) <= 24
    by_block = {b.get("block_id"): b for b in view["blocks"]}
    assert by_block["fr_form_call"]["element"]["initial_value"] == CALL
    assert by_block["fr_form_purpose"]["element"]["initial_option"]["value"] == "investigation"
    assert "initial_value" not in by_block["fr_form_justification"]["element"]


def _state(call: str, purpose: str | None, justification: str) -> dict:
    return {"state": {"values": {
        "fr_form_call": {"value": {"type": "plain_text_input", "value": call}},
        "fr_form_purpose": {"value": {"type": "radio_buttons",
                                      "selected_option": {"value": purpose} if purpose else None}},
        "fr_form_justification": {"value": {"type": "plain_text_input", "value": justification}},
    }}}


def test_the_form_submission_reads_back_and_refused_answers_are_inline_errors():
    values = card.form_values(_state("26-04512", None, "because he is Hispanic"))
    assert values == {"call_number": "26-04512", "purpose": "", "justification": "because he is Hispanic"}
    d = at_step(Step.CALL_NUMBER)
    _, effects = transitions.on_form(d, user_id=OFFICER, call_number=values["call_number"], purpose=None,
                                   justification=values["justification"], now=at(1), policy=POLICY)
    errors = card.form_errors(effects, SETTINGS)
    assert set(errors) == {"fr_form_call", "fr_form_purpose", "fr_form_justification"}
    assert errors["fr_form_call"].startswith("‘26-04512’ is not a call number")
    assert errors["fr_form_justification"].startswith("GO 375.01 C forbids")
    assert all(len(e) <= 150 for e in errors.values())
    good, effects = transitions.on_form(d, user_id=OFFICER, call_number=CALL, purpose="threat",
                                    justification=JUSTIFICATION, now=at(2), policy=POLICY)
    assert card.form_errors(effects, SETTINGS) == {} and good.step is Step.ATTESTATION
    assert wording.ATTESTATION in section_texts(draw(good))  # the attestation follows the summary on the card
