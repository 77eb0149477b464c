"""End to end: every subscribed event is acked (listeners/events, listeners/messages/ignored), and the dispatch
channel's messages feed the call index (listeners/messages/dispatch_index) live and from history on start."""
from __future__ import annotations

from bot import wording

from .conftest import CASE, DISPATCH, JUSTIFICATION, OFFICER, block_texts, payload
from .signing import file_shared_event


async def test_file_shared_and_other_message_events_are_acked_and_ignored(harness, slack):
    await harness.start(gallery=False)
    file = slack.add_file("FSHARED1", "p.jpg", "image/jpeg", b"\xff\xd8", OFFICER)
    await harness.send(file_shared_event(file["id"], OFFICER, CASE))
    chatter = slack.add_message(CASE, "anyone seen the van?", user=OFFICER)
    await harness.send(chatter)
    await harness.send({**chatter, "subtype": "message_changed", "message": {"text": "edited", "ts": chatter["ts"]}})
    await harness.send({**chatter, "subtype": "message_deleted", "deleted_ts": chatter["ts"]})
    await harness.send(slack.add_message(CASE, "a reply in a thread with no request", user=OFFICER,
                                         thread_ts=chatter["ts"]))
    await harness.idle()
    assert slack.messages(CASE) == [] and harness.audit() == []
    assert slack.call_log("chat.postMessage") == []


async def test_a_live_dispatch_message_indexes_the_call_and_require_known_call_uses_it(harness, slack):
    await harness.start(require_known_call=True)
    cad = slack.add_message(DISPATCH, "CAD 26-054321 211 in progress, 5th and Main", user="UCAD", bot_id="BCAD")
    await harness.send(cad)  # bots' messages are indexed too: the CAD feed is usually one
    upload = await harness.upload(harness.face("people/obama/obama3.jpg"), text="26-099999")
    invalid = await harness.wait_kind("invalid", step="call_number")
    assert block_texts(invalid.params)[0] == wording.call_number_unknown("26-099999")
    await harness.wait_kind("prompt", step="call_number")
    await harness.reply(upload, "26-054321")
    await harness.wait_kind("prompt", step="purpose")
    await harness.reply(upload, "2")
    await harness.wait_kind("prompt", step="justification")
    await harness.reply(upload, JUSTIFICATION)
    await harness.wait_kind("prompt", step="attestation")
    await harness.reply(upload, "I attest")
    result = await harness.wait_kind("result")
    await harness.wait_kind("call_log")
    await harness.idle()
    [entry] = [m for m in slack.messages(DISPATCH) if m.get("thread_ts") == cad["ts"]]
    assert entry["metadata"]["event_payload"]["request_id"] == payload(result)["request_id"]
    assert [m for m in slack.messages(DISPATCH) if "thread_ts" not in m] == []  # no thread of its own
    [audited] = harness.audit()
    assert audited["call_thread_ts"] == cad["ts"] and audited["purpose"] == "threat"


async def test_the_call_index_is_backfilled_from_dispatch_history_on_start(harness, slack):
    [cad] = slack.add_history(DISPATCH, [{"text": "Call 26-000777: welfare check", "user": "UCAD", "bot_id": "BCAD"}])
    await harness.start()
    await slack.wait_for("conversations.history", ok=True)
    upload = await harness.upload(harness.face("people/biden/biden2.jpg"),
                                  text=f"26-000777 purpose: 1 justification: {JUSTIFICATION}")
    await harness.wait_kind("prompt", step="attestation")
    await harness.reply(upload, "I attest")
    await harness.wait_kind("call_log")
    await harness.idle()
    [entry] = [m for m in slack.messages(DISPATCH) if m.get("thread_ts") == cad["ts"]]
    assert entry["metadata"]["event_payload"]["outcome"] == "candidates"
    assert harness.audit()[0]["call_thread_ts"] == cad["ts"]
