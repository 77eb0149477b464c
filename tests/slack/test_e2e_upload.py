"""End to end, over real HTTP: an upload in a case channel -> a request dialog -> a caveated result, the
contact sheet, the call-thread log and the audit entry; and every guard on the upload (listeners/messages/upload).
"""
from __future__ import annotations

import hashlib
import io
from itertools import pairwise

import pytest
from PIL import Image

from bot import wording
from bot.audit.entries import OUTCOMES

from .conftest import (
    CASE,
    CASE_LISTED,
    DISPATCH,
    GENERAL,
    GROUP_MEMBER,
    GUEST,
    JUSTIFICATION,
    OFFICER,
    OFFICER2,
    SHARED,
    block_texts,
    payload,
)

OBAMA = "people/obama/obama3.jpg"


async def test_happy_path_by_thread_replies(harness, slack):
    await harness.start(status_interval=1.0)  # the production spacing of in-place updates
    name, data = harness.face(OBAMA)
    upload = await harness.upload((name, data))
    await harness.answer_all(upload)
    result = await harness.wait_kind("result")
    await harness.done(upload)
    rid = payload(result)["request_id"]

    # The result: the caveat first, then the ranked candidate, the reminder quoting the request id.
    texts = block_texts(result.params)
    assert texts[0] == wording.result_caveat(True)
    assert texts[1] == wording.result_header(1, rid, 0.01)
    assert texts[2].startswith("1. obama (subject obama)")
    assert any(wording.document_reminder(rid) == t for t in texts)
    assert payload(result)["outcome"] == "candidates" and payload(result)["call_number"] == "26-012345"
    assert result.params["thread_ts"] == upload["ts"]

    # The contact sheet: a message with metadata, then the PNG uploaded into the request thread.
    assert harness.thread(upload, "contact_sheet")
    [sheet] = slack.uploads(CASE, thread_ts=upload["ts"])
    image = Image.open(io.BytesIO(sheet.data))
    assert image.format == "PNG" and image.width > 2 * 224  # the probe tile beside at least one candidate

    # The call thread in the dispatch channel (the CAD feed's message), with the log entry linking back.
    dispatch = slack.messages(DISPATCH)
    [opening] = [m for m in slack.messages(DISPATCH, include_users=True) if "thread_ts" not in m]
    assert opening["text"] == "CAD 26-012345 incident" and opening.get("bot_id") == "BCAD"
    [entry] = [m for m in dispatch if (m.get("metadata") or {}).get("event_payload", {}).get("kind") == "call_log"]
    assert entry["thread_ts"] == opening["ts"]
    assert entry["metadata"]["event_payload"]["request_id"] == rid
    assert entry["metadata"]["event_payload"]["outcome"] == "candidates"
    assert f"/archives/{CASE}/p{upload['ts'].replace('.', '')}" in " ".join(block_texts(entry))
    assert any(t == wording.result_caveat(True) for t in block_texts(entry))  # call_log_detail "full"

    # The audit entry: written when things happened, with every Slack field.
    [audited] = harness.audit(request_id=rid)
    assert audited["outcome"] == "candidates"
    assert audited["source"] == "slack" and audited["channel"] == CASE and audited["thread_ts"] == upload["ts"]
    assert audited["permalink"].startswith(f"https://example.slack.com/archives/{CASE}/")
    assert audited["file_id"] == upload["files"][0]["id"]
    assert audited["requester"] == {"id": OFFICER, "name": "Ofc. One"}
    assert audited["call_number"] == "26-012345" and audited["call_thread_ts"] == opening["ts"]
    assert audited["purpose"] == "investigation" and audited["justification"] == JUSTIFICATION
    assert audited["attestation"]["attested"] is True
    assert audited["probe_sha256"] == hashlib.sha256(data).hexdigest()
    assert len(audited["faces"]) == 1 and audited["face_index"] == 1
    assert audited["candidates"][0]["subject_id"] == "obama" and audited["candidates"][0]["rank"] == 1
    assert set(audited["answer_times"]) == {"call_number", "purpose", "justification", "attestation"}
    assert audited["uploaded_at"] <= audited["answer_times"]["call_number"] <= audited["answer_times"]["attestation"]
    assert audited["result_at"] and audited["gallery_subjects"] == 4 and audited["threshold"] == 0.55
    assert harness.verify_audit()

    # Visible progress: reactions, and one request card updated in place at most once a second.
    assert set(slack.reactions(CASE, upload["ts"])) == {"checkered_flag"}  # 👀 leaves when the request ends
    card = harness.card(upload)
    assert block_texts(card)[-1] == wording.card_outcome("candidates")
    posted = [c for c in slack.call_log("chat.postMessage") if c.ok and c.response["ts"] == card["ts"]]
    updates = [c for c in slack.call_log("chat.update") if c.ok and c.params["ts"] == card["ts"]]
    times = [posted[0].at] + [u.at for u in updates]
    assert len(updates) >= 4 and all(b - a >= 0.99 for a, b in pairwise(times))
    assert harness.kinds(upload) == [
        "card", "result", "contact_sheet"]

    # Every post and update carried machine-readable metadata; the token went only to the double.
    assert slack.posts_without_metadata() == []
    # Read twice: faces found when the request started, the chosen face encoded after the attestation.
    assert [d.token for d in slack.downloads()] == [slack.token] * 2


async def test_values_in_the_upload_text_skip_their_steps(harness, slack):
    await harness.start()
    text = f"Call 26-012345 purpose: threat justification: {JUSTIFICATION}"
    upload = await harness.upload(harness.face(OBAMA), text=text)
    await harness.wait_card("attestation")
    texts = block_texts(harness.card(upload))
    assert wording.card_call_number("26-012345") in texts[1] and wording.card_justification(JUSTIFICATION) in texts[1]
    assert wording.ATTESTATION in texts  # whole, after the answers as read
    await harness.reply(upload, "  i ATTEST ")  # matched case-insensitively, trimmed, by the core
    result = await harness.wait_kind("result")
    await harness.done(upload)
    [first] = [c for c in slack.call_log("chat.postMessage") if c.ok and payload(c).get("kind") == "card"]
    assert payload(first)["step"] == "attestation"  # no question was asked: straight to the attestation
    [audited] = harness.audit(request_id=payload(result)["request_id"])
    assert audited["purpose"] == "threat" and audited["call_number"] == "26-012345"
    assert audited["answer_times"]["call_number"] == audited["uploaded_at"]


async def test_a_requester_group_member_in_a_listed_case_channel_may_request(harness):
    await harness.start()
    upload = await harness.upload(harness.face(OBAMA), user=GROUP_MEMBER, channel=CASE_LISTED)
    offer = await harness.wait_card("offered")
    assert offer.params["channel"] == CASE_LISTED and offer.params["thread_ts"] == upload["ts"]
    assert harness.audit() == []


async def test_a_person_not_enrolled_gets_no_candidate_with_the_caveat(harness, slack):
    await harness.start()
    upload = await harness.upload(harness.face("people/lin_manuel_miranda/lin-manuel-miranda.png"))
    await harness.answer_all(upload)
    result = await harness.wait_kind("result")
    await harness.done(upload)
    texts = block_texts(result.params)
    assert texts[0] == wording.result_caveat(False)  # leads-only caveat plus "not an exclusion"
    assert texts[1] == wording.result_header(0, payload(result)["request_id"], 0.01)
    assert payload(result)["outcome"] == "no_candidate"
    [audited] = harness.audit(request_id=payload(result)["request_id"])
    assert audited["outcome"] == "no_candidate" and audited["candidates"] == []
    assert len(slack.uploads(CASE, thread_ts=upload["ts"])) == 1  # the contact sheet says "No candidate"


REFUSALS = [
    pytest.param({"user": OFFICER2}, {}, wording.NOT_AUTHORISED, id="not-authorised"),
    pytest.param({}, {"requesters": (), "requester_groups": ()}, wording.NOT_AUTHORISED_NOBODY_CONFIGURED,
                 id="nobody-configured"),
    pytest.param({"user": GUEST}, {}, wording.GUEST_REFUSED, id="guest-on-the-list"),
    pytest.param({"channel": SHARED}, {}, wording.EXTERNAL_CHANNEL_REFUSED, id="externally-shared-channel"),
]


@pytest.mark.parametrize(("upload_kwargs", "slack_settings", "reason"), REFUSALS)
async def test_refusals_are_private_audited_as_denied_and_only_for_an_explicit_ask(
    harness, slack, upload_kwargs, slack_settings, reason
):
    await harness.start(gallery=False, **slack_settings)
    # A plain upload by someone who may not request gets nothing at all, numbers in its text or not...
    plain = await harness.upload(("photo.jpg", b"\xff\xd8 not even decoded"), text="26-012345", **upload_kwargs)
    # ...a mention of the bot is an ask: a private refusal, audited.
    upload = await harness.upload(("photo.jpg", b"\xff\xd8 not even decoded"), text="<@UBOT> search this",
                                  **upload_kwargs)
    await slack.wait_for("chat.postEphemeral", ok=True)
    await harness.idle()
    [refusal] = slack.ephemerals(upload["channel"], upload["user"])
    assert refusal["thread_ts"] == upload["ts"] and reason in refusal["text"]
    [denied] = harness.audit()
    assert denied["outcome"] == "denied" and denied["denied"] == [reason]
    assert denied["requester"]["id"] == upload["user"] and denied["source"] == "slack"
    assert denied["file_id"] == upload["files"][0]["id"] and denied["thread_ts"] == upload["ts"]
    assert denied["request_id"] in " ".join(block_texts(refusal))
    assert slack.downloads() == []  # a refused photo is never fetched
    assert slack.messages(upload["channel"]) == []  # nothing public, for either upload
    assert harness.thread(plain) == [] and "denied" in OUTCOMES


async def test_uploads_outside_case_channels_and_bot_uploads_are_ignored(harness, slack):
    await harness.start(gallery=False)
    await harness.upload(("photo.jpg", b"\xff\xd8"), channel=GENERAL, text="<@UBOT>")
    file = slack.add_file("FBOT01", "bot.jpg", "image/jpeg", b"\xff\xd8", "UOTHERBOT")
    bot_upload = slack.add_message(CASE, "a bot's photo <@UBOT>", user="UOTHERBOT", bot_id="BOTHER", files=[file])
    await harness.send(bot_upload)
    # A real request afterwards proves the events above were processed, not just not yet seen.
    after = await harness.upload(harness.face(OBAMA))
    await harness.wait_card("offered")
    await harness.idle()
    assert slack.messages(GENERAL) == []
    assert [m["thread_ts"] for m in slack.messages(CASE)] == [after["ts"]]  # only the offer on the last upload
    assert harness.audit() == [] and slack.downloads() == []


async def test_a_file_that_is_not_an_image_gets_nothing_unless_the_bot_was_asked(harness, slack):
    await harness.start(gallery=False)
    quiet = await harness.upload(("report.pdf", b"%PDF-1.4"), mimetype="application/pdf")
    upload = await harness.upload(("report.pdf", b"%PDF-1.4"), mimetype="application/pdf",
                                  text="26-012345 <@UBOT>")
    note = await harness.wait_kind("non_image")
    await harness.idle()
    assert note.params["thread_ts"] == upload["ts"]
    assert block_texts(note.params)[0] == wording.non_image_note("report.pdf")
    assert harness.thread(quiet) == [] and harness.kinds(upload) == ["non_image"] and harness.audit() == []


async def test_a_login_page_instead_of_the_photo_says_files_read_is_missing_and_is_audited(harness, slack):
    await harness.start()
    await harness.upload(harness.face(OBAMA), html_instead=True, text="26-012345")
    # Said as soon as the request starts, before any question is answered.
    failed = await harness.slack.wait_for(
        lambda c: c.method in ("chat.postMessage", "chat.update") and payload(c).get("kind") == "image_failed",
        ok=True,
    )
    await harness.idle()
    assert block_texts(failed.params)[0] == wording.FILES_READ_MISSING
    [audited] = harness.audit()
    assert audited["outcome"] == "error" and audited["error_code"] == "missing_files_scope"
    assert wording.FILES_READ_MISSING in audited["error"]
    assert harness.audit(outcome="candidates") == []
    assert harness.rt.store.active() == []  # nothing left to answer: the only photo cannot be searched
    assert [m for m in slack.messages(DISPATCH) if m.get("thread_ts")] == []  # never searched: not logged on the call


async def test_several_files_in_one_upload_share_the_answers_with_one_request_per_image(harness, slack):
    await harness.start()
    files = []
    for i, rel in enumerate(["people/obama/obama3.jpg", "group/kit_with_rose.jpg"]):
        name, data = harness.face(rel)
        files.append(slack.add_file(f"FMULTI{i}", name, "image/jpeg", data, OFFICER))
    files.append(slack.add_file("FMULTI9", "notes.pdf", "application/pdf", b"%PDF-1.4", OFFICER))
    upload = slack.add_message(CASE, "<@UBOT>", user=OFFICER, files=files)
    await harness.send(upload)
    card = await harness.wait_card("call_number")
    rids = payload(card)["request_ids"].split(",")
    assert len(rids) == 2  # the PDF is not a request...
    await harness.wait_kind("non_image")  # ...it gets a note
    ask = await harness.wait_face_choice()  # the group photo's face can be chosen before the questions
    assert payload(ask)["face_request"] == rids[1]
    await harness.press(upload, "fr_face", value=f"{rids[1]}:2")
    await harness.answer_all(upload)  # answered once for both photos
    first = await harness.wait_kind("result")
    second = await harness.wait_kind("result", count=2)
    await harness.done(upload)
    assert {payload(first)["request_id"], payload(second)["request_id"]} == set(rids)
    second = first if payload(first)["request_id"] == rids[1] else second
    assert block_texts(second.params)[2].startswith("1. kit_harington")
    audited = {e["request_id"]: e for e in harness.audit()}
    assert set(audited) == set(rids)
    assert {audited[r]["file_id"] for r in rids} == {"FMULTI0", "FMULTI1"}
    assert {audited[r]["justification"] for r in rids} == {JUSTIFICATION}
    assert audited[rids[1]]["face_index"] == 2 and audited[rids[0]]["face_index"] == 1
    assert len(harness.thread(upload, "call_log")) == 0  # call log entries go to dispatch, one per image
    assert len([m for m in slack.messages(DISPATCH)
                if (m.get("metadata") or {}).get("event_payload", {}).get("kind") == "call_log"]) == 2
