"""End to end: Slack failing beyond the client's retries (500s, dropped connections, a refused upload) never
strands a request. The request still finishes, the officer's essentials (result, an image's failure, the
dialog's end) are queued on disk and delivered on the next tick, the contact sheet and the numbered-faces
photo are best-effort, and the tick's watchdog restarts work that died. Also: the live dispatch index reads
blocks and attachment fields, the summary call log carries no justification, and redelivered replies or
buttons of an ended dialog never answer twice."""
from __future__ import annotations

import json

import pytest
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator

from bot import wording
from bot.config import ConfigError, Settings, SlackSettings, validate
from bot.request import transitions
from bot.slack import blocks, flow
from bot.slack.client import MAX_RETRIES

from .conftest import CASE, DISPATCH, JUSTIFICATION, OFFICER, Clock, block_texts, payload
from .double import DISCONNECT
from .signing import block_actions_payload, interaction_body, new_event_id, post

OBAMA = "people/obama/obama3.jpg"
ATTEMPTS = MAX_RETRIES + 1  # one call and its retries: a fault this many times outlasts the client
PREFILLED = f"26-012345 purpose: 1 justification: {JUSTIFICATION}"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """The client still retries every failed call MAX_RETRIES times; only the back-off sleeps are cut (these
    tests are about what happens once the retries are spent, not about their timing)."""
    monkeypatch.setattr(BackoffRetryIntervalCalculator, "calculate_sleep_duration", lambda _self, _n: 0.01)


def kinds(harness, upload) -> list[str | None]:
    """Metadata kinds of the bot's messages in the request thread, oldest first."""
    return [(m.get("metadata") or {}).get("event_payload", {}).get("kind") for m in harness.thread(upload)]


def call_logs(slack) -> list[dict]:
    return [m for m in slack.messages(DISPATCH)
            if (m.get("metadata") or {}).get("event_payload", {}).get("kind") == "call_log"]


def dialog_of(harness, upload) -> transitions.Dialog:
    return harness.rt.store.by_thread(CASE, upload["ts"])


def is_result(params: dict) -> bool:
    """The result post of a search (what the fault tests make fail, however fast the search ran)."""
    return ((params.get("metadata") or {}).get("event_payload") or {}).get("kind") == "result"


async def attested(harness, photo: str = OBAMA, **start) -> dict:
    """A running bot (the CAD feed posted the call, so no call thread is started mid-search) and an upload
    whose text answers every question; returns the upload once the attestation is asked and the photo's faces
    are found."""
    await harness.start(**start)
    upload = await harness.upload(harness.face(photo), text=PREFILLED)
    await harness.wait_card("attestation")
    await harness.idle()
    return upload


# --- 1. network errors beyond the retries -------------------------------------------------------------------


async def test_a_dropped_connection_on_the_card_update_does_not_stop_the_request(harness, slack):
    upload = await attested(harness)
    slack.fail_next("chat.update", DISCONNECT, times=ATTEMPTS)  # the card saying the search runs
    await harness.reply(upload, "I attest")
    result = await harness.wait_kind("result")
    await harness.done(upload)
    assert block_texts(result.params)[0] == wording.result_caveat(True)
    assert dialog_of(harness, upload).step is transitions.Step.DONE
    assert [c.status for c in slack.call_log("chat.update") if not c.ok] == [DISCONNECT] * ATTEMPTS
    assert block_texts(harness.card(upload))[-1] == wording.card_outcome("candidates")  # the next update landed


@pytest.mark.parametrize("fault", [500, DISCONNECT], ids=["http500", "disconnect"])
async def test_a_result_post_failing_beyond_retries_is_queued_and_delivered_on_the_next_tick(
    harness, slack, fault
):
    upload = await attested(harness)
    slack.fail_next("chat.postMessage", fault, times=ATTEMPTS, match=is_result)  # the result
    await harness.reply(upload, "I attest")
    await slack.wait_for(lambda c: c.method == "reactions.add" and c.params.get("name") == "checkered_flag",
                         ok=True)
    await harness.idle()

    failed = [payload(c).get("kind") for c in slack.call_log("chat.postMessage") if not c.ok]
    assert failed == ["result"] * ATTEMPTS
    dialog = dialog_of(harness, upload)
    assert dialog.step is transitions.Step.DONE and dialog.images[0].outcome == "candidates"
    assert [e["outcome"] for e in harness.audit()] == ["candidates"]
    assert len(call_logs(slack)) == 1  # dispatch still hears of the search
    assert "result" not in kinds(harness, upload)
    assert "contact_sheet" not in kinds(harness, upload)  # never before the result
    assert slack.uploads(CASE, upload["ts"]) == []
    assert harness.rt.calls.outbox_depth() == 1

    await flow.tick(harness.rt)  # the background job's next run
    [result] = harness.thread(upload, "result")
    assert block_texts(result)[0] == wording.result_caveat(True)  # the caveat first, as ever
    assert result["metadata"]["event_payload"]["request_id"] == dialog.images[0].request_id
    assert harness.rt.calls.outbox_depth() == 0


async def test_queued_posts_of_a_thread_go_out_before_its_next_essential(harness, slack):
    upload = await attested(harness)
    slack.fail_next("chat.postMessage", 500, times=ATTEMPTS, match=is_result)
    await harness.reply(upload, "I attest")
    await slack.wait_for(lambda c: c.method == "reactions.add" and c.params.get("name") == "checkered_flag",
                         ok=True)
    await harness.idle()
    assert harness.rt.calls.outbox_depth() == 1
    dialog = dialog_of(harness, upload)
    # Another essential for the same thread (here the end notice of the dialog, as a stand-in) flushes first.
    await flow.post_essential(harness.rt, CASE, upload["ts"], blocks.ended(dialog, "cancelled"))
    assert kinds(harness, upload)[-2:] == ["result", "ended"]
    assert harness.rt.calls.outbox_depth() == 0


# --- 2. the contact sheet is best-effort --------------------------------------------------------------------


async def test_a_contact_sheet_upload_that_fails_still_finishes_the_request(harness, slack):
    upload = await attested(harness)
    slack.fail_next("files.upload", 500, times=ATTEMPTS)
    await harness.reply(upload, "I attest")
    await slack.wait_for(lambda c: c.method == "reactions.add" and c.params.get("name") == "checkered_flag",
                         ok=True)
    await harness.idle()

    assert dialog_of(harness, upload).step is transitions.Step.DONE
    assert [e["outcome"] for e in harness.audit()] == ["candidates"]
    [entry] = call_logs(slack)
    assert entry["metadata"]["event_payload"]["outcome"] == "candidates"
    thread = [k for k in kinds(harness, upload) if k]
    assert thread == ["card", "result", "contact_sheet", "contact_sheet_failed"]
    [note] = harness.thread(upload, "contact_sheet_failed")
    assert block_texts(note) == [wording.CONTACT_SHEET_NOT_ATTACHED]


# --- 3. the face question without its picture ---------------------------------------------------------------


async def test_the_face_question_is_asked_when_the_numbered_photo_cannot_be_attached(harness, slack):
    await harness.start()
    slack.fail_next("files.upload", 500, times=ATTEMPTS)
    upload = await harness.upload(harness.face("group/kit_with_rose.jpg"), text=PREFILLED)
    await harness.wait_face_choice()
    note = await harness.wait_kind("faces_not_attached")
    assert block_texts(note.params) == [wording.FACE_IMAGE_NOT_ATTACHED]
    assert slack.uploads(CASE, upload["ts"]) == []
    await harness.reply(upload, "I attest")
    await harness.wait_card("face_choice")
    await harness.reply(upload, "1")
    result = await harness.wait_kind("result")
    await harness.idle()
    assert block_texts(result.params)[2].startswith("1. rose_leslie")


# --- 4. request-thread essentials are queued, not lost ------------------------------------------------------


async def test_an_image_failed_notice_is_a_new_message_queued_when_slack_is_down(harness, slack):
    await harness.start(gallery=False)
    # A damaged photo: said as soon as the request starts, before any question is answered.
    slack.fail_next("chat.postMessage", 500, times=ATTEMPTS, match=lambda p: (
        (p.get("metadata") or {}).get("event_payload") or {}).get("kind") == "image_failed")
    upload = await harness.upload(("p.jpg", b"\xff\xd8"), text=PREFILLED)
    await slack.wait_for(lambda c: c.method == "reactions.add" and c.params.get("name") == "warning", ok=True)
    await harness.idle()

    assert harness.thread(upload, "image_failed") == []
    assert harness.rt.calls.outbox_depth() == 1
    assert wording.card_problem("not_image") in block_texts(harness.card(upload))[1]  # the card says it too
    reactions = slack.reactions(CASE, upload["ts"])
    assert "warning" in reactions and "checkered_flag" not in reactions  # not "all searched"
    assert [e["outcome"] for e in harness.audit()] == ["error"]
    assert call_logs(slack) == []  # never searched: nothing in the call's thread

    await flow.tick(harness.rt)
    [notice] = harness.thread(upload, "image_failed")
    assert block_texts(notice)[0] == wording.image_problem("not_image")
    assert harness.rt.calls.outbox_depth() == 0


async def test_the_expired_notice_is_queued_when_slack_is_down_and_delivered_later(harness, slack):
    clock = Clock()
    await harness.start(gallery=False, clock=clock)
    upload = await harness.upload(harness.face(OBAMA), text="26-012345")
    await harness.wait_card("purpose")
    await harness.idle()
    # Down for the notice and for the same tick's outbox round after it.
    slack.fail_next("chat.postMessage", DISCONNECT, times=2 * ATTEMPTS)
    clock.advance(minutes=6)
    await flow.tick(harness.rt)
    await harness.idle()
    assert dialog_of(harness, upload).step is transitions.Step.EXPIRED
    assert [e["outcome"] for e in harness.audit()] == ["expired"]
    assert harness.thread(upload, "ended") == [] and harness.rt.calls.outbox_depth() == 1

    await flow.tick(harness.rt)
    [ended] = harness.thread(upload, "ended")
    assert block_texts(ended) == [wording.dialog_expired(5)]


# --- the watchdog -------------------------------------------------------------------------------------------


async def test_the_watchdog_restarts_face_work_that_died(harness, slack, monkeypatch):
    clock = Clock()
    await harness.start(clock=clock)
    probes = harness.rt.probes
    real_put = probes.put
    failures = []

    def disk_full_once(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise OSError(28, "No space left on device")
        return real_put(*args, **kwargs)

    monkeypatch.setattr(probes, "put", disk_full_once)
    upload = await harness.upload(harness.face(OBAMA), text=PREFILLED)
    await slack.wait_for("files.download", ok=True)
    await harness.idle()  # the analysis task died on the error
    await harness.reply(upload, "I attest")
    await harness.wait_card("analysing")
    await harness.idle()
    assert dialog_of(harness, upload).step is transitions.Step.ANALYSING and failures

    clock.advance(minutes=1)
    await flow.tick(harness.rt)
    await harness.idle()
    assert len(slack.downloads()) == 1  # not stuck long enough yet: left alone

    clock.advance(minutes=5)
    await flow.tick(harness.rt)
    result = await harness.wait_kind("result")
    await harness.idle()
    assert block_texts(result.params)[0] == wording.result_caveat(True)
    assert dialog_of(harness, upload).step is transitions.Step.DONE
    assert [e["outcome"] for e in harness.audit()] == ["candidates"]


async def test_the_watchdog_posts_an_audited_search_again_rather_than_running_it_again(
    harness, slack, monkeypatch
):
    clock = Clock()
    upload = await attested(harness, clock=clock)
    real_finish = flow.searching._finish_search
    crashes = []

    async def crash_once(*args, **kwargs):
        if not crashes:
            crashes.append(1)
            raise RuntimeError("the process lost its way right after the audit entry")
        return await real_finish(*args, **kwargs)

    monkeypatch.setattr(flow.searching, "_finish_search", crash_once)
    await harness.reply(upload, "I attest")
    await harness.slack.wait_for(lambda c: c.method == "reactions.add" and c.params.get("name") == "hourglass_flowing_sand", ok=True)
    await harness.idle()
    assert crashes and dialog_of(harness, upload).step is transitions.Step.SEARCHING
    assert [e["outcome"] for e in harness.audit()] == ["candidates"]

    clock.advance(minutes=6)
    await flow.tick(harness.rt)
    result = await harness.wait_kind("result")
    await harness.idle()
    assert block_texts(result.params)[2].startswith("1. obama")
    assert len(harness.audit()) == 1  # posted again from the audit, not searched twice
    assert dialog_of(harness, upload).step is transitions.Step.DONE


# --- 5. the live dispatch index reads what the backfill reads -----------------------------------------------


async def test_live_dispatch_messages_are_indexed_from_blocks_attachment_fields_and_edits(harness, slack):
    await harness.start(gallery=False, require_known_call=True)
    in_blocks = slack.add_message(DISPATCH, "New CAD incident", user="UCAD", bot_id="BCAD")
    in_blocks["blocks"] = [{"type": "section", "text": {"type": "mrkdwn", "text": "Incident 26-054321 211"}}]
    in_fields = slack.add_message(DISPATCH, "New CAD incident", user="UCAD", bot_id="BCAD")
    in_fields["attachments"] = [{"fields": [{"title": "Call", "value": "26-054322"}]}]
    edited = slack.add_message(DISPATCH, "New CAD incident", user="UCAD", bot_id="BCAD")
    edit = {"type": "message", "subtype": "message_changed", "channel": DISPATCH, "ts": f"{edited['ts']}1",
            "hidden": True, "message": {**edited, "attachments": [{"text": "Call 26-054323"}]}}
    for event in (in_blocks, in_fields, edit):
        await harness.send(event)
    await harness.idle()
    calls = harness.rt.calls
    assert calls.known("26-054321") and calls.thread_ts("26-054321") == in_blocks["ts"]
    assert calls.known("26-054322") and calls.thread_ts("26-054322") == in_fields["ts"]
    assert calls.known("26-054323") and calls.thread_ts("26-054323") == edited["ts"]


# --- 6. the summary call log --------------------------------------------------------------------------------


async def test_a_summary_call_log_entry_gives_outcome_count_and_link_only(harness, slack):
    upload = await attested(harness, call_log_detail="summary")
    await harness.reply(upload, "I attest")
    result = await harness.wait_kind("result")
    await harness.idle()
    [entry] = call_logs(slack)
    text = "\n".join(block_texts(entry)) + entry["text"]
    rid = payload(result)["request_id"]
    assert rid in text and f"<@{OFFICER}>" in text and "request thread>" in text
    count = payload(result)["candidate_count"]
    assert wording.outcome_label("candidates") in text and f"{count} candidate" in text
    assert JUSTIFICATION[:40] not in text and "Justification" not in text
    assert "Active investigation" not in text and "obama" not in text  # no purpose text, no candidate


# --- redelivery and old buttons -----------------------------------------------------------------------------


async def test_a_redelivered_purpose_reply_is_not_taken_as_the_justification(harness, slack):
    await harness.start(gallery=False)
    upload = await harness.upload(harness.face(OBAMA), text="26-012345")
    await harness.wait_card("purpose")
    answer = slack.add_message(CASE, "1", user=OFFICER, thread_ts=upload["ts"])
    event_id = new_event_id()
    await harness.send(answer, event_id=event_id)
    await harness.wait_card("justification")
    await harness.idle()
    await harness.send(answer, event_id=event_id, retry_num=1)  # Slack's retry, after the step moved on
    await harness.send(answer)  # and the same message under a new envelope
    await harness.idle()
    assert harness.thread(upload, "invalid") == [] and kinds(harness, upload) == ["card"]
    dialog = dialog_of(harness, upload)
    assert dialog.step is transitions.Step.JUSTIFICATION and dialog.justification is None


async def test_a_reshared_photo_gets_a_note_naming_its_earlier_request(harness, slack):
    await harness.start(gallery=False)
    upload = await harness.upload(harness.face(OBAMA), text="26-012345")
    opened = await harness.wait_card("purpose")
    await harness.reply(upload, "cancel")
    await harness.wait_card("cancelled")
    await harness.send(upload)  # the same message redelivered under a new envelope: silent
    await harness.idle()
    assert harness.thread(upload, "already_requested") == []

    again = slack.add_message(CASE, "26-012345", user=OFFICER, files=upload["files"])  # the file shared again
    await harness.send(again)
    note = await harness.wait_kind("already_requested")
    await harness.idle()
    rid = payload(opened)["request_ids"]
    assert block_texts(note.params) == [wording.already_requested(rid)] and rid in block_texts(note.params)[0]
    assert note.params["thread_ts"] == again["ts"]
    assert len(harness.rt.store.active()) == 0


async def test_buttons_of_an_ended_dialog_change_nothing(harness, slack):
    await harness.start(gallery=False)
    upload = await harness.upload(harness.face(OBAMA), text="26-012345")
    await harness.wait_card("purpose")
    old_prompt = harness.card(upload)  # as a phone still shows it
    await harness.reply(upload, "cancel")
    await harness.wait_card("cancelled")
    await harness.idle()
    ended = dialog_of(harness, upload)
    # A new photo in the same thread starts nothing there (a thread is one request).
    file = slack.add_file("FNEWER", "q.jpg", "image/jpeg", b"\xff\xd8", OFFICER)  # asked for, in its text
    await harness.send(slack.add_message(CASE, "26-012345", user=OFFICER, thread_ts=upload["ts"], files=[file]))
    await slack.wait_for(lambda c: c.method == "chat.postMessage" and c.params.get("text") == wording.UPLOAD_IN_THREAD)

    for action_id in ("fr_cancel", "fr_purpose:2"):  # the old question's Cancel, and one of its purposes
        block = next(b for b in old_prompt["blocks"] if b["type"] == "actions"
                     and any(e["action_id"] == action_id for e in b["elements"]))
        button = next(e for e in block["elements"] if e["action_id"] == action_id)
        body = block_actions_payload(action_id=button["action_id"], value=button["value"], user_id=OFFICER,
                                     channel_id=CASE, message=old_prompt, block_id=block["block_id"])
        assert (await post(harness.http, harness.bot.events_url, interaction_body(body))).status == 200
    await slack.wait_for("chat.postEphemeral", count=2, ok=True)
    await harness.idle()
    current = harness.rt.store.get(ended.dialog_id)
    assert current.step is transitions.Step.CANCELLED and current.purpose is None
    assert [e["text"] for e in slack.ephemerals(CASE, OFFICER)] == [wording.CLOSED_NOTE] * 2
    assert len(harness.rt.store.threads()) == 1  # no second dialog


# --- refusals and configuration -----------------------------------------------------------------------------


async def test_a_failed_account_lookup_is_refused_as_unverified_not_as_a_guest(harness, slack):
    await harness.start(gallery=False)
    # users.info is asked twice (the role check, then the display name), each with its retries.
    slack.fail_next("users.info", 500, times=2 * ATTEMPTS)
    upload = await harness.upload(("p.jpg", b"\xff\xd8"), text="<@UBOT>")
    await slack.wait_for("chat.postEphemeral", ok=True)
    await harness.idle()
    [refusal] = slack.ephemerals(CASE, OFFICER)
    assert block_texts(refusal)[0] == wording.ACCOUNT_NOT_VERIFIED
    assert wording.GUEST_REFUSED not in refusal["text"]
    [denied] = harness.audit()
    assert denied["outcome"] == "denied" and denied["file_id"] == upload["files"][0]["id"]


def test_require_known_call_without_a_dispatch_channel_is_refused_at_start(tmp_path):
    settings = Settings(data_dir=tmp_path, slack=SlackSettings(require_known_call=True, dispatch_channel=" "))
    with pytest.raises(ConfigError, match="require_known_call.*dispatch_channel"):
        validate(settings)
    validate(Settings(data_dir=tmp_path, slack=SlackSettings(require_known_call=True, dispatch_channel="C1")))
    validate(Settings(data_dir=tmp_path, slack=SlackSettings(require_known_call=False, dispatch_channel="")))



async def test_a_photo_posted_as_a_thread_reply_starts_nothing_and_says_so(harness, slack):
    await harness.start()
    chat = slack.add_message(CASE, "anyone seen this car?", user=OFFICER)
    name, data = harness.face("people/obama/obama2.jpg")
    file = slack.add_file("FTHREAD1", name, "image/jpeg", data, OFFICER)
    quiet = slack.add_message(CASE, "", user=OFFICER, files=[file], thread_ts=chat["ts"])
    await harness.send(quiet)  # not asked for: nothing at all
    event = slack.add_message(CASE, "<@UBOT> this one", user=OFFICER, files=[file], thread_ts=chat["ts"])
    await harness.send(event)
    await slack.wait_for(lambda c: c.method == "chat.postMessage" and c.params.get("thread_ts") == chat["ts"])
    await harness.idle()
    [note] = slack.messages(CASE, thread_ts=chat["ts"])
    assert note["text"] == wording.UPLOAD_IN_THREAD
    assert slack.downloads() == [] and harness.rt.store.active() == []
    await harness.send(event)  # a redelivery says nothing more
    await harness.idle()
    assert len(slack.messages(CASE, thread_ts=chat["ts"])) == 1


async def test_an_empty_gallery_tells_the_officer_and_is_audited_as_error(harness, slack):
    await harness.start(gallery=False)
    upload = await harness.upload(harness.face("people/obama/obama2.jpg"))
    await harness.answer_all(upload)
    await slack.wait_for(lambda c: c.method == "chat.postMessage" and wording.GALLERY_EMPTY in str(c.params))
    await harness.idle()
    [entry] = harness.audit()
    assert entry["outcome"] == "error" and "SearchUnavailable" in entry["error"]
    assert harness.thread(upload, "result") == []


async def test_a_dispatch_channel_shared_with_another_organisation_gets_summaries_only(harness, slack):
    slack._channels[DISPATCH]["is_ext_shared"] = True
    await harness.start()
    await harness.idle()
    upload = await harness.upload(harness.face("people/obama/obama3.jpg"))
    await harness.answer_all(upload)
    await harness.done(upload)
    [entry] = [m for m in slack.messages(DISPATCH)
               if (m.get("metadata") or {}).get("event_payload", {}).get("kind") == "call_log"]
    assert JUSTIFICATION not in json.dumps(entry) and "obama" not in json.dumps(entry["blocks"])
    assert harness.audit()[0]["outcome"] == "candidates"  # the search itself is unaffected


# --- bounded face work ---------------------------------------------------------------------------------------


async def test_a_chosen_face_too_slow_to_encode_is_said_in_the_photos_words_not_as_an_internal_error(
        harness, slack, monkeypatch, faces_dir):
    """The faces were found in time; encoding the chosen one after the attestation runs past the deadline: the
    officer reads why (as when finding faces is too slow), and the audit records the image's reason code."""
    import io

    from PIL import Image

    im = Image.open(faces_dir / "people" / "obama" / "obama.jpg").convert("RGB").resize((5000, 5000))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    await harness.start()
    upload = await harness.upload(("doorbell.jpg", buf.getvalue()), text=PREFILLED)
    await harness.wait_card("attestation")
    await harness.idle()  # the faces are found and stored: only the encoding is left
    assert harness.cached_probes()
    monkeypatch.setattr(harness.request.getfixturevalue("face_engine"), "deadline", 0.01)
    await harness.reply(upload, "I attest")
    notice = await harness.wait_kind("image_failed")
    await harness.idle()
    assert "takes too long to read" in " ".join(block_texts(notice.params))
    [entry] = harness.audit()
    assert entry["outcome"] == "error" and entry["error"] == "too_slow"


async def test_a_photo_past_the_face_deadline_is_said_audited_and_not_read_again_after_a_restart(
        harness, slack, monkeypatch, faces_dir):
    """A slow photo (here: a real face upscaled to 5,000 px, with a deadline far below what it needs) stops
    its worker, tells the officer why, is audited as an error, and a restart does not try it again."""
    import io

    from PIL import Image

    im = Image.open(faces_dir / "people" / "obama" / "obama.jpg").convert("RGB").resize((5000, 5000))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    first = await harness.start()
    await harness.send(slack.add_message(DISPATCH, "CAD 26-012345 211 in progress", user="UCAD", bot_id="BCAD"))
    upload = await harness.upload(("doorbell.jpg", buf.getvalue()), text=PREFILLED)
    await harness.wait_card("attestation")
    engine = harness.request.getfixturevalue("face_engine")
    monkeypatch.setattr(engine, "deadline", 0.05)
    await harness.reply(upload, "I attest")
    notice = await harness.wait_kind("image_failed")
    await harness.idle()
    text = " ".join(block_texts(notice.params))
    assert "takes too long to read" in text
    [entry] = harness.audit()
    assert entry["outcome"] == "error" and "too_slow" in entry["error"]
    downloads = len(slack.call_log("files.download"))
    await first.stop()

    monkeypatch.setattr(engine, "deadline", 60.0)
    await harness.start()  # same data dir: resume
    await harness.idle()
    assert len(slack.call_log("files.download")) == downloads  # never fetched nor read again
    assert len(harness.thread(upload, "image_failed")) == 1
    assert [e["outcome"] for e in harness.audit()] == ["error"]
