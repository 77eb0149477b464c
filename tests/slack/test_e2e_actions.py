"""End to end: the dialog answered with buttons (listeners/actions): purpose, attestation, face choice,
cancel; presses by someone else, on an earlier question, or after the end change nothing."""
from __future__ import annotations

from bot import wording
from bot.slack import flow

from .conftest import CASE, JUSTIFICATION, OFFICER2, block_texts, payload

OBAMA = "people/obama/obama3.jpg"


async def test_happy_path_with_buttons(harness, slack):
    await harness.start()
    upload = await harness.upload(harness.face(OBAMA), text="26-012345")
    await harness.wait_card("purpose")
    reply = await harness.press(upload, "fr_purpose", value="threat")
    assert reply.status == 200  # acked at once; the answer is applied after the ack
    await harness.wait_card("justification")
    await harness.reply(upload, JUSTIFICATION)
    await harness.wait_card("attestation")
    await harness.press(upload, "fr_attest")
    result = await harness.wait_kind("result")
    await harness.idle()
    assert block_texts(result.params)[0] == wording.result_caveat(True)
    [audited] = harness.audit(request_id=payload(result)["request_id"])
    assert audited["purpose"] == "threat" and audited["attestation"]["attested"] is True
    assert audited["outcome"] == "candidates" and audited["candidates"][0]["subject_id"] == "obama"
    assert slack.posts_without_metadata() == []


async def test_face_choice_by_button(harness):
    await harness.start()
    upload = await harness.upload(harness.face("group/kit_with_rose.jpg"))
    await harness.answer_all(upload)
    ask = await harness.wait_face_choice()
    rid = payload(ask)["face_request"]
    await harness.press(upload, "fr_face", value=f"{rid}:1")
    result = await harness.wait_kind("result")
    await harness.idle()
    assert block_texts(result.params)[2].startswith("1. rose_leslie")
    [audited] = harness.audit(request_id=rid)
    assert audited["face_index"] == 1 and audited["candidates"][0]["subject_id"] == "rose_leslie"


async def test_cancel_button_ends_the_dialog_and_is_audited(harness, slack):
    await harness.start()
    upload = await harness.upload(harness.face(OBAMA), text="26-012345")
    await harness.wait_card("purpose")
    await harness.press(upload, "fr_cancel")
    await harness.wait_card("cancelled")
    await harness.idle()
    assert block_texts(harness.card(upload))[-1] == wording.card_outcome("cancelled")
    [audited] = harness.audit()
    assert audited["outcome"] == "cancelled" and audited["call_number"] == "26-012345"
    assert harness.thread(upload, "result") == [] and harness.rt.probes.get(audited["request_id"]) is None


async def test_presses_by_someone_else_or_on_an_old_question_change_nothing(harness, slack):
    await harness.start()
    upload = await harness.upload(harness.face(OBAMA), text="26-012345")
    await harness.wait_card("purpose")
    await harness.press(upload, "fr_purpose", value="identify", user=OFFICER2)
    await slack.wait_for("chat.postEphemeral", ok=True)
    assert wording.wrong_person("UOFFICER1") in slack.ephemerals(CASE, OFFICER2)[0]["text"]
    at_purpose = harness.card(upload)
    await harness.press(upload, "fr_purpose", value="investigation")
    await harness.wait_card("justification")
    # The purpose button again, on the card as a phone still showed it.
    await harness.press(upload, "fr_purpose", value="threat", message=at_purpose)
    await slack.wait_for("chat.postEphemeral", count=2, ok=True)
    assert slack.ephemerals(CASE, "UOFFICER1")[0]["text"] == wording.STALE_NOTE
    await harness.press(upload, "fr_cancel")
    await harness.wait_card("cancelled")
    await harness.press(upload, "fr_cancel", message=at_purpose)  # after the end, on an old view of the card
    await slack.wait_for("chat.postEphemeral", count=3, ok=True)
    await harness.idle()
    assert slack.ephemerals(CASE, "UOFFICER1")[-1]["text"] == wording.CLOSED_NOTE
    [audited] = harness.audit()
    assert audited["outcome"] == "cancelled" and audited["purpose"] == "investigation"


async def test_crops_and_the_numbered_picture_are_made_in_the_face_worker(harness, slack, face_engine, monkeypatch):
    """Decoding and drawing a photo happen in the face worker, under its deadline: the server process itself
    never decodes the photo (here its decoder and drawing raise, and the dialog still gets both)."""
    from bot import contact_sheet
    from bot.faces import images

    face_engine.start()  # the worker exists before the patches, so it keeps the real functions

    def refuse(*args, **kwargs):
        raise AssertionError("decoded or drawn in the server process")

    for module, name in ((images, "decode_image"), (contact_sheet, "decode_image"),
                         (contact_sheet, "annotate_faces"), (contact_sheet, "face_crop_jpeg")):
        monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(flow.searching, "decode_image", refuse, raising=False)  # the server stage's own import
    await harness.start()
    upload = await harness.upload(harness.face("group/kit_with_rose.jpg"))
    await harness.answer_all(upload)
    ask = await harness.wait_face_choice()
    cached = harness.rt.probes.get(payload(ask)["face_request"])
    assert len(cached.crops) == len(cached.faces) == 2 and cached.annotated.startswith(b"\xff\xd8\xff")
