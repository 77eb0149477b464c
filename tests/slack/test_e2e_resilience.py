"""End to end: Slack redelivery never starts a second request or search; a restart resumes where the dialog
stood without re-detecting faces; 429 and 500 answers are retried; a call-thread post that still fails is
queued on disk, the audit records the search anyway, and the queue is delivered later."""
from __future__ import annotations

import asyncio
import errno
import os
from datetime import UTC, datetime

import numpy as np

from bot import wording
from bot.request import transitions
from bot.slack import flow
from bot.store.probes import CachedProbe

from .conftest import CASE, DISPATCH, JUSTIFICATION, OFFICER, Clock, block_texts, payload
from .signing import new_event_id

OBAMA = "people/obama/obama3.jpg"


async def test_redelivered_events_start_one_request_and_run_one_search(harness, slack):
    await harness.start()
    name, data = harness.face(OBAMA)
    file = slack.add_file("FDUP01", name, "image/jpeg", data, OFFICER)
    upload = slack.add_message(CASE, "", user=OFFICER, files=[file])
    event_id = new_event_id()
    # Slack's retry (X-Slack-Retry-Num) arriving while the first delivery is still being handled...
    await asyncio.gather(harness.send(upload, event_id=event_id), harness.send(upload, event_id=event_id, retry_num=1))
    # ...and the same file again under a new envelope (a Socket Mode reconnect).
    await harness.send(upload)
    await harness.wait_card()
    await harness.reply(upload, "26-012345")
    await harness.wait_card("purpose")
    purpose = slack.add_message(CASE, "1", user=OFFICER, thread_ts=upload["ts"])
    purpose_id = new_event_id()
    await harness.send(purpose, event_id=purpose_id)
    await harness.wait_card("justification")
    await harness.idle()
    # Slack's retry of the purpose reply, after the dialog moved on: "1" must not become the justification.
    await harness.send(purpose, event_id=purpose_id, retry_num=2)
    await harness.idle()
    await harness.reply(upload, JUSTIFICATION)
    await harness.wait_card("attestation")
    attest = slack.add_message(CASE, "I attest", user=OFFICER, thread_ts=upload["ts"])
    attest_id = new_event_id()
    await asyncio.gather(harness.send(attest, event_id=attest_id), harness.send(attest, event_id=attest_id, retry_num=1))
    await harness.wait_kind("result")
    await harness.done(upload)

    assert harness.kinds(upload) == ["card", "result", "contact_sheet"]  # one request, nothing answered twice
    assert len(slack.downloads()) == 2  # faces found once, the face encoded once
    assert [e["outcome"] for e in harness.audit()] == ["candidates"]


async def test_restart_mid_dialog_resumes_where_it_stood(harness, slack):
    first = await harness.start()
    upload = await harness.upload(harness.face(OBAMA))
    await harness.wait_card()
    await harness.reply(upload, "26-012345")
    await harness.wait_card("purpose")
    await harness.reply(upload, "1")
    await harness.wait_card("justification")
    await first.stop()

    second = await harness.start()  # same data dir, new process state, new port
    assert second.base != first.base
    await harness.reply(upload, JUSTIFICATION)
    await harness.wait_card("attestation")
    await harness.reply(upload, "I attest")
    result = await harness.wait_kind("result")
    await harness.done(upload)

    assert harness.kinds(upload) == ["card", "result", "contact_sheet"]  # the same card, redrawn after the restart
    [audited] = harness.audit()
    assert audited["request_id"] == payload(result)["request_id"]
    assert audited["outcome"] == "candidates" and audited["purpose"] == "investigation"
    assert set(audited["answer_times"]) == {"call_number", "purpose", "justification", "attestation"}


async def test_restart_at_the_face_choice_never_detects_again(harness, slack):
    first = await harness.start()
    upload = await harness.upload(harness.face("group/kit_with_rose.jpg"))
    await harness.answer_all(upload)
    await harness.wait_face_choice()
    await harness.idle()
    await first.stop()

    await harness.start()
    await harness.reply(upload, "1")
    result = await harness.wait_kind("result")
    await harness.idle()
    assert block_texts(result.params)[2].startswith("1. rose_leslie")
    # The stored boxes were used: the second read only encodes the chosen face, it detects nothing.
    assert len(slack.downloads()) == 2


def _rewind_to_searching(harness, face_index: int) -> transitions.Dialog:
    """Simulate a crash after the face choice was stored but before the search finished."""
    store = harness.backend().dialogs()
    [dialog] = store.active() or [max(store.all(), key=lambda d: d.created_at)]
    image = dialog.images[0]
    image.status, image.face_index, image.outcome, image.result_at = transitions.SEARCHING, face_index, None, None
    dialog.step, dialog.ended_at = transitions.Step.SEARCHING, None
    store.put(dialog)
    store.close()
    return dialog


async def test_a_search_interrupted_by_a_restart_runs_when_the_bot_starts(harness, slack):
    first = await harness.start()
    upload = await harness.upload(harness.face("group/kit_with_rose.jpg"))
    await harness.answer_all(upload)
    await harness.wait_face_choice()
    await harness.idle()
    await first.stop()
    _rewind_to_searching(harness, face_index=2)

    await harness.start()  # resume() finds the search that never ran; no one has to answer anything
    result = await harness.wait_kind("result")
    await harness.idle()
    assert block_texts(result.params)[2].startswith("1. kit_harington")
    assert len(slack.downloads()) == 2
    assert [e["outcome"] for e in harness.audit()] == ["candidates"]


async def test_a_search_already_audited_before_a_crash_is_posted_again_not_run_again(harness, slack):
    first = await harness.start()
    upload = await harness.upload(harness.face(OBAMA))
    await harness.answer_all(upload)
    await harness.wait_kind("result")
    await harness.done(upload)
    await first.stop()
    _rewind_to_searching(harness, face_index=1)  # as if the process died right after the audit entry

    await harness.start()
    again = await harness.wait_kind("result", count=2)
    await harness.idle()
    assert block_texts(again.params)[0] == wording.result_caveat(True)
    assert block_texts(again.params)[2].startswith("1. obama")
    assert len(harness.audit()) == 1  # one search, one audit entry


async def test_a_search_audited_as_an_error_before_a_crash_ends_as_that_error_and_is_not_run_again(harness, slack):
    first = await harness.start(gallery=False)  # an empty gallery: the search fails, and is audited as an error
    upload = await harness.upload(harness.face(OBAMA))
    await harness.answer_all(upload)
    await harness.wait_kind("image_failed")
    await harness.idle()
    await first.stop()
    _rewind_to_searching(harness, face_index=1)  # as if the process died right after the error's audit entry

    await harness.start(gallery=False)
    told = await harness.wait_kind("image_failed", count=2)  # told again...
    await harness.idle()
    assert block_texts(told.params)[0] == wording.image_problem("gallery_empty")
    [entry] = harness.audit()  # ...but one request, one audit entry: nothing searched or recorded twice
    assert entry["outcome"] == "error" and "SearchUnavailable" in entry["error"]
    assert harness.rt.store.active() == [] and harness.thread(upload, "result") == []


async def test_429_and_500_from_chat_post_message_are_retried_and_the_result_arrives(harness, slack):
    await harness.start()
    slack.fail_next("chat.postMessage", 429, retry_after=1)
    slack.fail_next("chat.postMessage", 500)
    upload = await harness.upload(harness.face(OBAMA))
    await harness.wait_card()
    await harness.reply(upload, "26-012345")
    await harness.wait_card("purpose")
    await harness.reply(upload, "1")
    await harness.wait_card("justification")
    await harness.reply(upload, JUSTIFICATION)
    await harness.wait_card("attestation")
    slack.fail_next("chat.postMessage", 500)  # the first post after the attestation fails once too
    await harness.reply(upload, "I attest")
    await harness.wait_kind("result")
    await harness.done(upload)

    failed = [c.status for c in slack.call_log("chat.postMessage") if not c.ok]
    assert failed == [429, 500, 500]
    assert harness.kinds(upload) == ["card", "result", "contact_sheet"]  # retried, not duplicated
    assert [e["outcome"] for e in harness.audit()] == ["candidates"]


async def test_a_call_thread_post_failing_beyond_retries_is_queued_and_delivered_later(harness, slack):
    await harness.start()
    upload = await harness.upload(harness.face(OBAMA), text="26-012345")
    await harness.wait_card("purpose")
    await harness.reply(upload, "1")
    await harness.wait_card("justification")
    await harness.reply(upload, JUSTIFICATION)
    await harness.wait_card("attestation")
    await harness.reply(upload, "I attest")
    # The contact sheet is the last thing before the call-thread entry: from then on Slack is down.
    await slack.wait_for("files.completeUploadExternal", ok=True)
    slack.fail_next("chat.postMessage", 500, times=3)
    await harness.done(upload)

    def entries() -> list[dict]:
        return [m for m in slack.messages(DISPATCH)
                if (m.get("metadata") or {}).get("event_payload", {}).get("kind") == "call_log"]

    assert entries() == []
    assert harness.rt.calls.outbox_depth() == 1
    assert (await harness.healthz())["outbox_depth"] == 1
    [audited] = harness.audit()
    assert audited["outcome"] == "candidates"  # the audit has the search whatever happened in dispatch

    await flow.tick(harness.rt)  # the background job's next run
    [entry] = entries()
    assert entry["metadata"]["event_payload"]["request_id"] == audited["request_id"]
    assert entry["thread_ts"] == audited["call_thread_ts"]
    assert harness.rt.calls.outbox_depth() == 0


async def test_a_search_that_fails_is_audited_as_error_and_told_to_the_officer(harness, slack):
    first = await harness.start()
    upload = await harness.upload(harness.face("group/kit_with_rose.jpg"))
    await harness.answer_all(upload)
    ask = await harness.wait_face_choice()
    await harness.idle()
    await first.stop()
    # Retention removed the stored analysis while the officer was choosing: the search cannot run.
    assert harness.backend().probes().remove(payload(ask)["face_request"])

    await harness.start()
    await harness.reply(upload, "1")
    failed = await slack.wait_for(
        lambda c: c.method in ("chat.postMessage", "chat.update") and payload(c).get("kind") == "image_failed",
        ok=True,
    )
    await harness.idle()
    assert block_texts(failed.params)[0] == wording.SEARCH_FAILED
    [audited] = harness.audit()
    assert audited["outcome"] == "error" and "no longer stored" in audited["error"]
    assert audited["face_index"] == 1 and harness.thread(upload, "result") == []
    [entry] = [m for m in slack.messages(DISPATCH)
               if (m.get("metadata") or {}).get("event_payload", {}).get("kind") == "call_log"]
    assert entry["metadata"]["event_payload"]["outcome"] == "error"


async def test_retention_removes_ended_dialogs_and_cached_probes(harness):
    clock = Clock()
    await harness.start(clock=clock)
    upload = await harness.upload(harness.face(OBAMA))
    await harness.answer_all(upload)
    await harness.wait_kind("result")
    await harness.done(upload)
    assert harness.cached_probes() == []  # removed once the result was recorded
    left = CachedProbe("ab" * 32, 10, 10, [], np.zeros((0, 128), dtype=np.float32), [])
    harness.backend().probes().put("FR-LEFTOVER01", left)  # left by a crash: what retention is for
    # A post Slack never took (it holds names and a justification), queued now.
    harness.rt.calls._outbox.add({"channel": CASE, "thread_ts": upload["ts"], "attempts": 9, "last_error": "x",
                                  "queued_at": datetime.now(UTC).isoformat(), "message": {"text": "undelivered"}})
    assert await flow.purge(harness.rt) == {"dialogs": 0, "probes": 0}  # within the 30 days
    assert len(harness.rt.calls.outbox()) == 1
    clock.advance(days=31)
    assert await flow.purge(harness.rt) == {"dialogs": 1, "probes": 1}
    assert harness.cached_probes() == [] and harness.rt.store.by_thread(CASE, upload["ts"]) is None
    assert harness.rt.calls.outbox() == [] and harness.rt.calls.outbox_depth() == 0
    assert len(harness.audit()) == 1  # the audit log keeps its own, longer retention


async def test_an_audit_entry_lost_to_a_crash_is_written_at_the_next_start(harness, slack, monkeypatch):
    """The dialog records the cancel, then the audit write fails (a crash at that moment): the next start
    writes the missing `cancelled` entry, so the request is documented."""
    first = await harness.start(gallery=False)
    upload = await harness.upload(harness.face(OBAMA), text="26-012345")
    await harness.wait_card("purpose")

    def failing(self, kind, **fields):
        if fields.get("outcome") == "cancelled":
            raise OSError("disk gone at the wrong moment")
        return real_append(self, kind, **fields)

    log_class = type(harness.rt.core.audit)  # the file log, or the database's
    real_append = log_class.append
    monkeypatch.setattr(log_class, "append", failing)
    await harness.reply(upload, "cancel")
    await harness.idle()
    assert harness.rt.store.active() == []  # the dialog saved its end...
    assert harness.audit() == []  # ...but the entry was never written
    await first.stop()
    monkeypatch.setattr(log_class, "append", real_append)

    await harness.start(gallery=False)
    await harness.idle()
    for _ in range(50):
        if harness.audit():
            break
        await asyncio.sleep(0.05)
    [entry] = harness.audit()
    assert entry["outcome"] == "cancelled" and entry["recorded_at_restart"] is True
    await harness.start(gallery=False)  # a second restart writes nothing more
    await harness.idle()
    await asyncio.sleep(0.2)
    assert len(harness.audit()) == 1


async def test_probe_faces_are_removed_once_the_result_is_recorded(harness, slack):
    await harness.start()
    upload = await harness.upload(harness.face(OBAMA))
    await harness.answer_all(upload)
    await harness.done(upload)
    assert harness.cached_probes() == []


async def test_faces_found_after_a_cancel_are_not_kept(harness, slack, monkeypatch):
    from bot.slack.flow import searching as flow_module

    release = asyncio.Event()
    real = flow_module._find_faces

    async def slow(rt, image, data, *rest):
        await release.wait()
        return await real(rt, image, data, *rest)

    monkeypatch.setattr(flow_module, "_find_faces", slow)
    await harness.start()
    upload = await harness.upload(harness.face(OBAMA), text=f"26-012345 purpose: 1 justification: {JUSTIFICATION}")
    await slack.wait_for(lambda c: c.method == "files.download" or "download" in c.method, timeout=10)
    await harness.reply(upload, "cancel")  # while the faces are still being found
    await harness.wait_card("cancelled")
    release.set()
    await harness.idle()
    assert harness.cached_probes() == []
    assert [e["outcome"] for e in harness.audit()] == ["cancelled"]


# --- a full disk (ENOSPC) or a failing one: the officer is told, and the input is retried ----------------------


def _fail_writes(monkeypatch, store, method: str, times: int, code: int = errno.ENOSPC) -> list[int]:
    """Make the dialog store's `method` raise a storage error the next `times` calls; returns a call counter."""
    real = getattr(store, method)
    calls = [0]

    def flaky(*args, **kwargs):
        calls[0] += 1
        if calls[0] <= times:
            raise OSError(code, os.strerror(code))
        return real(*args, **kwargs)

    monkeypatch.setattr(store, method, flaky)
    return calls


async def test_enospc_on_upload_tells_the_officer_and_the_retry_opens_the_request(harness, slack, monkeypatch):
    await harness.start()
    harness.rt.storage_retry_delays = (0.05, 0.05, 0.05)
    # The claims are written, then saving the dialog fails twice: the retry must not take its own claims for
    # a redelivery (that would drop the upload silently).
    _fail_writes(monkeypatch, harness.rt.store, "put", times=2)
    upload = await harness.upload(harness.face(OBAMA))
    note = await harness.wait_kind("storage_retrying")
    assert block_texts(note.params)[0] == wording.STORAGE_RETRYING
    await harness.wait_card()
    await harness.idle()
    assert len(harness.thread(upload, "storage_retrying")) == 1  # told once, not at every retry
    assert len(harness.thread(upload, "card")) == 1
    assert len(harness.rt.store.active()) == 1


async def test_enospc_on_a_reply_is_retried_and_the_answer_is_not_lost(harness, slack, monkeypatch):
    await harness.start()
    harness.rt.storage_retry_delays = (0.05,)
    upload = await harness.upload(harness.face(OBAMA))
    await harness.wait_card()
    _fail_writes(monkeypatch, harness.rt.store, "claim", times=1, code=errno.EIO)
    await harness.reply(upload, "26-012345")
    await harness.wait_kind("storage_retrying")
    await harness.wait_card("purpose")
    dialog = harness.rt.store.active()[0]
    assert dialog.call_number == "26-012345"


async def test_storage_still_full_after_the_retries_says_to_post_again(harness, slack, monkeypatch):
    await harness.start()
    harness.rt.storage_retry_delays = (0.01, 0.01)
    _fail_writes(monkeypatch, harness.rt.store, "claim", times=100)
    upload = await harness.upload(harness.face(OBAMA))
    final = await harness.wait_kind("storage_gave_up")
    assert block_texts(final.params)[0] == wording.STORAGE_GAVE_UP
    await harness.idle()
    assert harness.kinds(upload) == [
        "storage_retrying", "storage_gave_up"]


async def test_a_network_oserror_is_not_taken_for_a_full_disk(harness, slack, monkeypatch):
    await harness.start()
    harness.rt.storage_retry_delays = (0.01,)
    _fail_writes(monkeypatch, harness.rt.store, "claim", times=1, code=errno.ECONNRESET)
    upload = await harness.upload(harness.face(OBAMA))
    await harness.idle()
    assert harness.thread(upload, "storage_retrying") == []


# --- nothing promised is lost to a restart: replay claims and the spool are on disk ------------------------------


async def _send_raw(harness, body: bytes, headers: dict[str, str]) -> int:
    async with harness.http.post(harness.bot.events_url, data=body, headers=headers) as resp:
        return resp.status


async def test_a_press_captured_and_replayed_after_a_restart_is_not_applied_again(harness, slack):
    from .signing import FORM, SIGNING_SECRET, block_actions_payload, interaction_body, sign

    first = await harness.start()
    upload = await harness.upload(harness.face(OBAMA))
    await harness.wait_card()
    await harness.reply(upload, "26-012345")
    card = await harness.wait_card("purpose")
    message = next(m for m in reversed(harness.slack.messages(CASE, thread_ts=upload["ts"])) if m["ts"] == card.response["ts"])
    button = next(el for block in message["blocks"] for el in block.get("elements") or []
                  if el.get("type") == "button" and str(el.get("action_id", "")).startswith("fr_form"))
    block_id = next(b.get("block_id") for b in message["blocks"] if button in (b.get("elements") or []))
    body = interaction_body(block_actions_payload(action_id=button["action_id"], value=button["value"],
                                                  user_id=OFFICER, channel_id=CASE, message=message,
                                                  block_id=block_id or "b"))
    headers = {"Content-Type": FORM, **sign(SIGNING_SECRET, body)}  # captured once, replayed as it is
    assert await _send_raw(harness, body, headers) == 200
    await harness.slack.wait_for("views.open", ok=True)  # "Fill in a form" opens the form
    await harness.idle()
    await first.stop()

    await harness.start()  # same data dir, within the 5-minute window
    await harness.idle()
    harness.slack.clear_calls()
    assert await _send_raw(harness, body, headers) == 200  # acked, so Slack would not retry it
    await harness.idle()
    answered = [c.method for c in harness.slack.call_log() if c.method.startswith(("chat.", "views."))]
    assert answered == []  # not applied again: no second form, no note


async def test_an_upload_waiting_for_a_full_disk_is_applied_after_a_restart(harness, slack, monkeypatch):
    first = await harness.start()
    harness.rt.storage_retry_delays = (3600.0,)  # the retry would come long after the restart
    _fail_writes(monkeypatch, harness.rt.store, "put", times=10**6)
    upload = await harness.upload(harness.face(OBAMA))
    await harness.wait_kind("storage_retrying")
    assert harness.rt.store.active() == []
    await first.stop()
    monkeypatch.undo()  # the disk has room again

    await harness.start()
    await harness.wait_card()  # the upload the officer was told is safe opens its request
    await harness.idle()
    assert len(harness.rt.store.active()) == 1
    assert len(harness.thread(upload, "card")) == 1


async def test_a_full_spool_tells_the_officer_at_once_to_post_again(harness, slack, monkeypatch):
    await harness.start()
    harness.rt.storage_retry_delays = (3600.0,)
    harness.rt.spool.capacity = 64  # a spool with no room for one upload (the real class, made small)
    _fail_writes(monkeypatch, harness.rt.store, "put", times=10**6)
    upload = await harness.upload(harness.face(OBAMA))
    final = await harness.wait_kind("storage_gave_up")
    assert block_texts(final.params)[0] == wording.STORAGE_SPOOL_FULL
    await harness.idle()
    assert harness.kinds(upload) == ["storage_gave_up"]
