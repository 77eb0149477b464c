"""End to end: answering the dialog by plain thread replies (listeners/messages/thread_reply): re-asking,
the requester rule, cancel, face choice by number, and the inactivity timeout run by the background job."""
from __future__ import annotations

import pytest

from bot import wording

from .conftest import CASE, DISPATCH, JUSTIFICATION, OFFICER2, Clock, block_texts, payload

OBAMA = "people/obama/obama3.jpg"


async def test_an_invalid_call_number_is_read_back_in_one_line_and_a_valid_one_moves_on(harness):
    await harness.start(gallery=False)
    upload = await harness.upload(harness.face(OBAMA))
    await harness.wait_card("offered")
    await harness.reply(upload, "call 26-04512")  # digits: taken as a call number, which starts the request
    invalid = await harness.wait_kind("invalid", step="call_number")
    assert block_texts(invalid.params) == [wording.not_a_call_number("call 26-04512", "26-012345")]
    assert "‘call 26-04512’ is not a call number like 26-012345" in block_texts(invalid.params)[0]
    await harness.reply(upload, "It's 26-012345")
    await harness.wait_card("purpose")
    await harness.idle()
    # One card, updated in place; one short line for the typo: the question is never posted again.
    assert harness.kinds(upload) == ["card", "invalid"]
    [refusal] = [e for e in harness.rt.core.audit.entries() if e["kind"] == "refusal"]
    assert refusal["step"] == "call_number" and refusal["text"] == "call 26-04512"


async def test_a_call_number_pasted_with_an_en_dash_is_taken_with_a_hyphen(harness):
    await harness.start(gallery=False)
    upload = await harness.upload(harness.face(OBAMA))
    await harness.wait_card("offered")
    await harness.reply(upload, "26\u2013012345")  # as a CAD screen or a phone's autocorrect writes it
    await harness.wait_card("purpose")
    await harness.reply(upload, "cancel")
    await harness.wait_card("cancelled")
    await harness.idle()
    assert harness.kinds(upload) == ["card"]  # no "is not a call number" line
    [audited] = harness.audit()
    assert audited["outcome"] == "cancelled" and audited["call_number"] == "26-012345"


async def test_someone_else_answering_gets_an_ephemeral_note_and_the_dialog_is_unchanged(harness, slack):
    await harness.start(gallery=False)
    upload = await harness.upload(harness.face(OBAMA), text="photo for the file, call 26-012345")
    await harness.wait_card("purpose")
    await harness.reply(upload, "1", user=OFFICER2)
    await slack.wait_for("chat.postEphemeral", ok=True)
    [note] = slack.ephemerals(CASE, OFFICER2)
    assert note["thread_ts"] == upload["ts"] and wording.wrong_person("UOFFICER1") in note["text"]
    await harness.idle()
    assert harness.card(upload)["metadata"]["event_payload"]["step"] == "purpose"
    assert harness.kinds(upload) == ["card"]
    await harness.reply(upload, "1")  # the requester's own answer still counts
    await harness.wait_card("justification")


async def test_bot_replies_never_answer_a_dialog(harness, slack):
    await harness.start(gallery=False)
    upload = await harness.upload(harness.face(OBAMA), text="<@UBOT>")
    await harness.wait_card("call_number")
    # A bot (a workflow acting for the officer carries the officer's user id) is still a bot.
    event = slack.add_message(CASE, "26-012345", user=upload["user"], bot_id="BWORKFLOW", thread_ts=upload["ts"])
    await harness.send(event)
    await harness.reply(upload, "not a call number")
    await harness.wait_kind("invalid", step="call_number")  # the step was still the call number
    await harness.idle()
    assert harness.card(upload)["metadata"]["event_payload"]["step"] == "call_number"


async def test_cancel_by_reply_ends_the_dialog_and_is_audited(harness, slack):
    await harness.start(gallery=False)
    upload = await harness.upload(harness.face(OBAMA))
    await harness.wait_card("offered")
    await harness.reply(upload, "26-012345")
    await harness.wait_card("purpose")
    await harness.reply(upload, " Cancel ")
    await harness.wait_card("cancelled")
    await harness.idle()
    assert block_texts(harness.card(upload))[-1] == wording.card_outcome("cancelled")
    [audited] = harness.audit()
    assert audited["outcome"] == "cancelled" and audited["call_number"] == "26-012345"
    assert "cancel" in audited["answer_times"] and audited["requester"]["id"] == upload["user"]
    assert harness.thread(upload, "result") == []
    await harness.reply(upload, "1")  # chatter in an ended thread is not for the bot
    await harness.idle()
    assert harness.kinds(upload) == ["card"]


async def test_face_choice_in_a_group_photo_by_replying_the_number(harness, slack):
    await harness.start()
    upload = await harness.upload(harness.face("group/kit_with_rose.jpg"))
    await harness.answer_all(upload)
    await harness.wait_face_choice()
    # The photo with numbered boxes went into the thread as soon as the faces were found.
    [annotated] = slack.uploads(CASE, thread_ts=upload["ts"])
    assert annotated.filename.endswith("-faces.jpg") and annotated.data.startswith(b"\xff\xd8\xff")
    assert sum(1 for b in harness.card(upload)["blocks"] for e in b.get("elements") or []
               if str(e.get("action_id", "")).startswith("fr_face")) == 2
    await harness.reply(upload, "three")
    await harness.wait_kind("invalid", step="face_choice")
    await harness.reply(upload, "2")  # "three" is no face of two: said; "2" is
    result = await harness.wait_kind("result")
    await harness.idle()
    assert block_texts(result.params)[2].startswith("1. kit_harington")
    [audited] = harness.audit(request_id=payload(result)["request_id"])
    assert audited["face_index"] == 2 and len(audited["faces"]) == 2 and audited["face_chosen_at"]
    assert audited["candidates"][0]["subject_id"] == "kit_harington"


async def test_inactivity_past_the_timeout_expires_the_dialog_and_is_audited(harness, slack):
    clock = Clock()
    await harness.start(gallery=False, clock=clock, tick_interval=0.05)
    upload = await harness.upload(harness.face(OBAMA), text="26-012345")
    await harness.wait_card("purpose")
    clock.advance(minutes=4)
    await harness.reply(upload, "1")  # an answer restarts the timeout
    await harness.wait_card("justification")
    clock.advance(minutes=4)  # 4 minutes since the last answer: under the 5-minute timeout
    await harness.reply(upload, "short")
    await harness.wait_kind("invalid", step="justification")
    clock.advance(minutes=6)
    ended = await harness.wait_kind("ended")  # the background job ran on_tick
    await harness.idle()
    assert payload(ended)["outcome"] == "expired"
    assert block_texts(ended.params)[0] == wording.dialog_expired(5)
    [audited] = harness.audit()
    assert audited["outcome"] == "expired" and audited["purpose"] == "investigation"
    assert audited["justification"] is None
    await harness.reply(upload, JUSTIFICATION)
    await harness.idle()
    assert len(harness.thread(upload, "ended")) == 1 and len(harness.audit()) == 1


async def test_an_offer_nobody_takes_up_ends_quietly(harness, slack):
    clock = Clock()
    await harness.start(gallery=False, clock=clock, tick_interval=0.05)
    upload = await harness.upload(harness.face(OBAMA))
    await harness.wait_card("offered")
    assert block_texts(harness.card(upload)) == [wording.OFFER_TEXT]
    await harness.reply(upload, "nice, is that the van from yesterday?")  # chatter: not a start
    clock.advance(minutes=6)
    await harness.wait_card("expired")
    await harness.idle()
    assert block_texts(harness.card(upload)) == [wording.OFFER_ENDED]
    assert harness.kinds(upload) == ["card"]
    assert list(harness.rt.core.audit.entries()) == [] and slack.messages(DISPATCH) == []
    assert slack.downloads() == []  # nothing was read of a photo nobody asked to search


async def test_replies_sent_in_a_burst_are_applied_in_order(harness, slack):
    """A phone coming back online sends every answer at once, here in two requests' threads interleaved:
    each answer lands on its own step of its own request, in order."""
    await harness.start(cad_calls=("26-012345", "26-011111"))
    first = await harness.upload(harness.face("people/obama/obama3.jpg"))
    second = await harness.upload(harness.face("people/biden/biden2.jpg"))
    await harness.wait_card("offered", count=2)  # both threads exist; now everything at once
    for upload, text in [(first, "26-012345"), (second, "26-011111"), (second, "2"), (first, "1"),
                         (first, JUSTIFICATION), (second, JUSTIFICATION), (second, "I attest"),
                         (first, "I attest")]:
        await harness.reply(upload, text)
    await harness.done(first)
    await harness.done(second)
    audited = sorted((e["call_number"], e["purpose"]) for e in harness.audit())
    assert audited == [("26-011111", "threat"), ("26-012345", "investigation")]
    assert harness.thread(first, "invalid") == [] and harness.thread(second, "invalid") == []


async def test_a_justification_typed_at_the_purpose_step_does_not_set_a_purpose(harness, slack):
    await harness.start(gallery=False)
    upload = await harness.upload(harness.face("people/obama/obama3.jpg"), text="26-012345")
    await harness.wait_card("purpose")
    await harness.reply(upload, "2 men robbed the pharmacy at 3 pm, store camera footage, report 26-4411")
    await harness.wait_kind("invalid")
    await harness.idle()
    [dialog] = harness.rt.store.active()
    assert dialog.purpose is None and dialog.step.value == "purpose"


async def test_an_edited_reply_is_not_read_and_the_requester_is_told(harness, slack):
    await harness.start(gallery=False)
    upload = await harness.upload(harness.face("people/obama/obama3.jpg"))
    await harness.wait_card()
    reply = await harness.reply(upload, "26-012345")
    await harness.wait_card("purpose")
    edit = {"type": "message", "subtype": "message_changed", "channel": CASE, "ts": f"{reply['ts']}9",
            "event_ts": f"{reply['ts']}9",
            "message": {**reply, "text": "26-099999", "edited": {"user": reply["user"], "ts": "1"}}}
    await harness.send(edit)
    await slack.wait_for("chat.postEphemeral", ok=True)
    await harness.send(edit)  # the same edit delivered again: no second note
    await harness.idle()
    [note] = slack.ephemerals(CASE, reply["user"])
    assert note["text"] == wording.EDIT_NOT_READ
    [dialog] = harness.rt.store.active()
    assert dialog.call_number == "26-012345"  # the edit changed nothing


async def test_a_link_preview_added_by_slack_is_not_taken_for_an_edit(harness, slack):
    await harness.start(gallery=False)
    upload = await harness.upload(harness.face("people/obama/obama3.jpg"))
    await harness.wait_card()
    reply = await harness.reply(upload, "26-012345 see https://example.org/cad")
    await harness.wait_card("purpose")
    unfurl = {"type": "message", "subtype": "message_changed", "channel": CASE, "ts": f"{reply['ts']}8",
              "message": {**reply, "attachments": [{"title": "CAD"}]}, "previous_message": dict(reply)}
    await harness.send(unfurl)
    await harness.idle()
    assert slack.ephemerals(CASE, reply["user"]) == []


# --- the marks on the officer's photo (issue 9) -------------------------------------------------------------------


async def test_a_finished_request_marks_the_photo_with_a_neutral_flag_not_a_check_mark(harness, slack):
    await harness.start()
    upload = await harness.upload(harness.face("people/obama/obama3.jpg"),
                                  text=f"26-012345 purpose: 1 justification: {JUSTIFICATION}")
    await harness.wait_card("attestation")
    await harness.idle()
    assert set(slack.reactions(CASE, upload["ts"])) == {"eyes"}
    await harness.reply(upload, "I attest")
    await harness.done(upload)
    # "checkered_flag": finished, saying nothing about the result; a ✅ on a face reads "match confirmed".
    assert set(slack.reactions(CASE, upload["ts"])) == {"checkered_flag"}
    assert not [c for c in slack.call_log("reactions.add") if c.params.get("name") == "white_check_mark"]


@pytest.mark.parametrize("ending", ["cancelled", "expired"])
async def test_the_eyes_leave_the_photo_when_the_request_is_cancelled_or_expires(harness, slack, ending):
    clock = Clock()
    await harness.start(gallery=False, clock=clock, tick_interval=0.05)
    upload = await harness.upload(harness.face(OBAMA), text="26-012345")
    await harness.wait_card("purpose")
    await harness.idle()
    assert set(slack.reactions(CASE, upload["ts"])) == {"eyes"}
    if ending == "cancelled":
        await harness.reply(upload, "cancel")
    else:
        clock.advance(minutes=6)
    await harness.wait_card(ending)
    await harness.idle()
    assert slack.reactions(CASE, upload["ts"]) == {}


async def test_the_eyes_leave_the_photo_when_the_request_is_refused(harness, slack):
    from dataclasses import replace

    await harness.start(gallery=False)
    upload = await harness.upload(harness.face(OBAMA), text=f"26-012345 purpose: 1 justification: {JUSTIFICATION}")
    await harness.wait_card("attestation")
    rt = harness.rt  # the requester loses authority before attesting: the re-check refuses
    rt.settings = replace(rt.settings, slack=replace(rt.settings.slack, requesters=(), requester_groups=()))
    await harness.reply(upload, "I attest")
    await harness.wait_kind("refusal")
    await harness.idle()
    assert slack.reactions(CASE, upload["ts"]) == {}
