"""End to end: answering the dialog by plain thread replies (listeners/messages/thread_reply): re-asking,
the requester rule, cancel, face choice by number, and the inactivity timeout run by the background job."""
from __future__ import annotations

import pytest

from bot import wording

from .conftest import CASE, JUSTIFICATION, OFFICER2, Clock, block_texts, payload


async def test_an_invalid_call_number_is_re_asked_and_a_valid_one_moves_on(harness):
    await harness.start(gallery=False)
    upload = await harness.upload(("p.jpg", b"\xff\xd8"))
    await harness.wait_kind("prompt", step="call_number")
    await harness.reply(upload, "call 123")
    invalid = await harness.wait_kind("invalid", step="call_number")
    await harness.wait_kind("prompt", step="call_number", count=2)
    assert block_texts(invalid.params)[0].startswith("That call number is not in the department's")
    await harness.reply(upload, "It's 26-012345")
    await harness.wait_kind("prompt", step="purpose")


async def test_someone_else_answering_gets_an_ephemeral_note_and_the_dialog_is_unchanged(harness, slack):
    await harness.start(gallery=False)
    upload = await harness.upload(("p.jpg", b"\xff\xd8"))
    await harness.wait_kind("prompt", step="call_number")
    await harness.reply(upload, "26-012345", user=OFFICER2)
    await slack.wait_for("chat.postEphemeral", ok=True)
    [note] = slack.ephemerals(CASE, OFFICER2)
    assert note["thread_ts"] == upload["ts"] and wording.wrong_person("UOFFICER1") in note["text"]
    await harness.idle()
    assert harness.thread(upload, "prompt")[-1]["metadata"]["event_payload"]["step"] == "call_number"
    assert [p["metadata"]["event_payload"]["kind"] for p in harness.thread(upload)] == ["request_opened", "prompt"]
    await harness.reply(upload, "26-012345")  # the requester's own answer still counts
    await harness.wait_kind("prompt", step="purpose")


async def test_bot_replies_never_answer_a_dialog(harness, slack):
    await harness.start(gallery=False)
    upload = await harness.upload(("p.jpg", b"\xff\xd8"))
    await harness.wait_kind("prompt", step="call_number")
    # A bot (a workflow acting for the officer carries the officer's user id) is still a bot.
    event = slack.add_message(CASE, "26-012345", user=upload["user"], bot_id="BWORKFLOW", thread_ts=upload["ts"])
    await harness.send(event)
    await harness.reply(upload, "not a call number")
    await harness.wait_kind("invalid", step="call_number")  # the step was still the call number
    await harness.idle()
    assert harness.thread(upload, "prompt")[-1]["metadata"]["event_payload"]["step"] == "call_number"
    assert [p["metadata"]["event_payload"]["step"] for p in harness.thread(upload, "prompt")] == ["call_number"] * 2


async def test_cancel_by_reply_ends_the_dialog_and_is_audited(harness, slack):
    await harness.start(gallery=False)
    upload = await harness.upload(("p.jpg", b"\xff\xd8"))
    await harness.wait_kind("prompt", step="call_number")
    await harness.reply(upload, "26-012345")
    await harness.wait_kind("prompt", step="purpose")
    await harness.reply(upload, " Cancel ")
    ended = await harness.wait_kind("ended")
    await harness.idle()
    assert payload(ended)["outcome"] == "cancelled"
    assert block_texts(ended.params)[0] == wording.DIALOG_CANCELLED
    [audited] = harness.audit()
    assert audited["outcome"] == "cancelled" and audited["call_number"] == "26-012345"
    assert "cancel" in audited["answer_times"] and audited["requester"]["id"] == upload["user"]
    assert slack.downloads() == []
    await harness.reply(upload, "1")  # chatter in an ended thread is not for the bot
    await harness.idle()
    assert harness.thread(upload)[-1]["metadata"]["event_payload"]["kind"] == "ended"


async def test_face_choice_in_a_group_photo_by_replying_the_number(harness, slack):
    await harness.start()
    upload = await harness.upload(harness.face("group/kit_with_rose.jpg"))
    await harness.answer_all(upload)
    ask = await harness.wait_kind("face_choice")
    # The photo with numbered boxes went into the thread before the question.
    [annotated] = slack.uploads(CASE, thread_ts=upload["ts"])
    assert annotated.filename.endswith("-faces.jpg") and annotated.data.startswith(b"\xff\xd8\xff")
    assert payload(ask)["face_count"] == 2
    await harness.reply(upload, "two")
    await harness.reply(upload, "2")  # "two" is not understood: re-asked; "2" is
    result = await harness.wait_kind("result")
    await harness.idle()
    assert block_texts(result.params)[2].startswith("1. kit_harington")
    [audited] = harness.audit(request_id=payload(result)["request_id"])
    assert audited["face_index"] == 2 and len(audited["faces"]) == 2 and audited["face_chosen_at"]
    assert audited["candidates"][0]["subject_id"] == "kit_harington"


async def test_inactivity_past_the_timeout_expires_the_dialog_and_is_audited(harness, slack):
    clock = Clock()
    await harness.start(gallery=False, clock=clock, tick_interval=0.05)
    upload = await harness.upload(("p.jpg", b"\xff\xd8"), text="26-012345")
    await harness.wait_kind("prompt", step="purpose")
    clock.advance(minutes=4)
    await harness.reply(upload, "1")  # an answer restarts the timeout
    await harness.wait_kind("prompt", step="justification")
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


async def test_replies_sent_in_a_burst_are_applied_in_order(harness, slack):
    """A phone coming back online sends every answer at once, here in two requests' threads interleaved:
    each answer lands on its own step of its own request, in order."""
    await harness.start()
    first = await harness.upload(harness.face("people/obama/obama3.jpg"))
    second = await harness.upload(harness.face("people/biden/biden2.jpg"))
    await harness.wait_kind("prompt", step="call_number", count=2)  # both threads exist; now everything at once
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
    await harness.wait_kind("prompt", step="purpose")
    await harness.reply(upload, "2 men robbed the pharmacy at 3 pm, store camera footage, report 26-4411")
    await harness.wait_kind("invalid")
    await harness.idle()
    [dialog] = harness.rt.store.active()
    assert dialog.purpose is None and dialog.step.value == "purpose"


async def test_an_edited_reply_is_not_read_and_the_requester_is_told(harness, slack):
    await harness.start(gallery=False)
    upload = await harness.upload(harness.face("people/obama/obama3.jpg"))
    await harness.wait_kind("prompt", step="call_number")
    reply = await harness.reply(upload, "26-012345")
    await harness.wait_kind("prompt", step="purpose")
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
    await harness.wait_kind("prompt", step="call_number")
    reply = await harness.reply(upload, "26-012345 see https://example.org/cad")
    await harness.wait_kind("prompt", step="purpose")
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
    await harness.wait_kind("prompt", step="attestation")
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
    upload = await harness.upload(("p.jpg", b"\xff\xd8"), text="26-012345")
    await harness.wait_kind("prompt", step="purpose")
    assert set(slack.reactions(CASE, upload["ts"])) == {"eyes"}
    if ending == "cancelled":
        await harness.reply(upload, "cancel")
    else:
        clock.advance(minutes=6)
    ended = await harness.wait_kind("ended")
    await harness.idle()
    assert payload(ended)["outcome"] == ending and slack.reactions(CASE, upload["ts"]) == {}


async def test_the_eyes_leave_the_photo_when_the_request_is_refused(harness, slack):
    from dataclasses import replace

    await harness.start(gallery=False)
    upload = await harness.upload(("p.jpg", b"\xff\xd8"), text=f"26-012345 purpose: 1 justification: {JUSTIFICATION}")
    await harness.wait_kind("prompt", step="attestation")
    rt = harness.rt  # the requester loses authority before attesting: the re-check refuses
    rt.settings = replace(rt.settings, slack=replace(rt.settings.slack, requesters=(), requester_groups=()))
    await harness.reply(upload, "I attest")
    await harness.wait_kind("refusal")
    await harness.idle()
    assert slack.reactions(CASE, upload["ts"]) == {}
