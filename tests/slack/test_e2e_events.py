"""End to end: every subscribed event is acked (listeners/messages/ignored), and the dispatch
channel's messages feed the call index (listeners/messages/dispatch_index) live and from history on start."""
from __future__ import annotations

from bot import wording

from .conftest import CASE, DISPATCH, JUSTIFICATION, OFFICER, block_texts, payload
from .signing import event_body, file_shared_event, post


async def test_message_events_that_start_nothing_are_acked_and_ignored(harness, slack):
    await harness.start(gallery=False)
    chatter = slack.add_message(CASE, "anyone seen the van?", user=OFFICER)
    await harness.send(chatter)
    await harness.send({**chatter, "subtype": "message_changed", "message": {"text": "edited", "ts": chatter["ts"]}})
    await harness.send({**chatter, "subtype": "message_deleted", "deleted_ts": chatter["ts"]})
    await harness.send(slack.add_message(CASE, "a reply in a thread with no request", user=OFFICER,
                                         thread_ts=chatter["ts"]))
    await harness.idle()
    assert slack.messages(CASE) == [] and harness.audit() == []
    assert slack.call_log("chat.postMessage") == []


async def test_file_shared_is_not_subscribed_and_nothing_listens_for_it(harness, slack):
    """The upload's message (subtype file_share) starts a request; file_shared was never used, so the manifest
    no longer subscribes to it and no listener acks it (Slack sends only what is subscribed)."""
    from .test_blocks import MANIFEST, yaml_list

    assert "file_shared" not in yaml_list(MANIFEST.read_text(encoding="utf-8"), "bot_events")
    await harness.start(gallery=False)
    file = slack.add_file("FSHARED1", "p.jpg", "image/jpeg", b"\xff\xd8", OFFICER)
    reply = await post(harness.http, harness.bot.events_url, event_body(file_shared_event(file["id"], OFFICER, CASE)))
    assert reply.status == 404  # Bolt's answer to an event type nobody listens to
    await harness.idle()
    assert slack.messages(CASE) == [] and harness.audit() == [] and slack.downloads() == []


async def test_a_live_dispatch_message_indexes_the_call_and_require_known_call_uses_it(harness, slack):
    await harness.start(require_known_call=True)
    cad = slack.add_message(DISPATCH, "CAD 26-054321 211 in progress, 5th and Main", user="UCAD", bot_id="BCAD")
    await harness.send(cad)  # bots' messages are indexed too: the CAD feed is usually one
    upload = await harness.upload(harness.face("people/obama/obama3.jpg"), text="26-099999")
    invalid = await harness.wait_kind("invalid", step="call_number")
    assert block_texts(invalid.params)[0] == wording.call_number_unknown("26-099999")
    await harness.wait_card()
    await harness.reply(upload, "26-054321")
    await harness.wait_card("purpose")
    await harness.reply(upload, "2")
    await harness.wait_card("justification")
    await harness.reply(upload, JUSTIFICATION)
    await harness.wait_card("attestation")
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
    await harness.wait_card("attestation")
    await harness.reply(upload, "I attest")
    await harness.wait_kind("call_log")
    await harness.idle()
    [entry] = [m for m in slack.messages(DISPATCH) if m.get("thread_ts") == cad["ts"]]
    assert entry["metadata"]["event_payload"]["outcome"] == "candidates"
    assert harness.audit()[0]["call_thread_ts"] == cad["ts"]


# --- who may open a call's thread (cad_bot_ids, dispatchers, dispatcher_groups) ----------------------------------


async def test_listed_dispatch_sources_only_a_cad_bot_or_dispatcher_makes_a_call_known(harness, slack):
    """With cad_bot_ids set, a stranger's chatter naming a call neither makes it known for require_known_call
    nor takes over its thread; the CAD feed does."""
    slack.add_user("UCHATTY", "chatty")
    await harness.start(require_known_call=True, cad_bot_ids=("BCAD",), dispatchers=("UDISPATCH",))
    await harness.send(slack.add_message(DISPATCH, "is 26-054321 the van from yesterday?", user="UCHATTY"))
    await harness.idle()
    assert not harness.rt.calls.known("26-054321")
    cad = slack.add_message(DISPATCH, "CAD 26-054321 211 in progress", user="UCAD", bot_id="BCAD")
    await harness.send(cad)
    await harness.idle()
    assert harness.rt.calls.thread_ts("26-054321") == cad["ts"]
    await harness.send(slack.add_message(DISPATCH, "26-054321", user="UCHATTY"))
    dispatcher = slack.add_message(DISPATCH, "26-000001 welfare check", user="UDISPATCH")
    await harness.send(dispatcher)
    await harness.idle()
    assert harness.rt.calls.thread_ts("26-054321") == cad["ts"]  # not taken over by the chatter
    assert harness.rt.calls.thread_ts("26-000001") == dispatcher["ts"]


async def test_listed_dispatch_sources_a_dispatcher_group_member_counts_and_backfill_obeys_the_list(harness, slack):
    slack.add_user("UDISP2", "dispatcher two")
    slack.add_usergroup("SDISPATCH", ["UDISP2"])
    history = slack.add_history(DISPATCH, [
        {"text": "Call 26-000777: welfare check", "user": "UDISP2"},
        {"text": "Call 26-000888: joke", "user": "UCHATTY"},
    ])
    await harness.start(dispatcher_groups=("SDISPATCH",), cad_calls=())
    await slack.wait_for("conversations.history", ok=True)
    await harness.idle()
    assert harness.rt.calls.thread_ts("26-000777") == history[0]["ts"]
    assert not harness.rt.calls.known("26-000888")


async def test_unlisted_dispatch_sources_warn_at_start(harness, caplog):
    await harness.start(gallery=False)
    assert any("cad_bot_ids, dispatchers or dispatcher_groups" in r.getMessage() for r in caplog.records)


async def test_a_deleted_call_thread_gets_a_new_thread(harness, slack):
    """Dispatch deletes the call's opening message: the next search's entry starts a new thread (saying the
    earlier one was deleted) instead of failing against the dead thread and being dropped."""
    await harness.start(cad_calls=())
    cad = slack.add_message(DISPATCH, "CAD 26-012345 burglary", user="UCAD", bot_id="BCAD")
    await harness.send(cad)
    await harness.idle()
    upload = await harness.upload(harness.face("people/biden/biden2.jpg"),
                                  text=f"26-012345 purpose: 1 justification: {JUSTIFICATION}")
    await harness.wait_card("attestation")
    await harness.send(slack.delete_message(DISPATCH, cad["ts"]))
    await harness.idle()
    await harness.reply(upload, "I attest")
    await harness.wait_kind("call_log")
    await harness.idle()
    [opening] = [m for m in slack.messages(DISPATCH) if "thread_ts" not in m]
    assert "earlier thread for this call was deleted" in opening["text"]
    [entry] = [m for m in slack.messages(DISPATCH) if m.get("thread_ts") == opening["ts"]]
    assert entry["metadata"]["event_payload"]["call_number"] == "26-012345"
    assert harness.audit()[0]["call_thread_ts"] == opening["ts"]
