"""The dispatch channel's call log against the local Slack double, through a real AsyncWebClient:
the call-number index, finding or starting a call's thread, the on-disk outbox, and backfill."""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator

from bot import wording
from bot.config import Settings, SlackSettings
from bot.slack import blocks, calls
from bot.slack.calls import CallLog, message_text
from bot.slack.client import MAX_RETRIES, make_web_client

from .double import DISCONNECT, TOKEN, SlackDouble

DISPATCH = "C0DISPATCH"
CALL = "26-012345"
CAD_BOT = "BCADFEED"


@pytest.fixture
async def slack():
    async with SlackDouble() as double:
        double.add_channel(DISPATCH, "dispatch")
        yield double


def settings_for(data_dir: Path, dispatch: str = DISPATCH) -> Settings:
    return replace(Settings().with_data_dir(data_dir), slack=SlackSettings(dispatch_channel=dispatch))


@pytest.fixture
def open_log(slack: SlackDouble, data_dir: Path):
    """Open a CallLog on the test data dir (again, to check what survives a restart)."""
    logs: list[CallLog] = []

    def _open(dispatch: str = DISPATCH) -> CallLog:
        client = make_web_client(TOKEN, slack.base_url)
        for handler in client.retry_handlers:  # the same retries, without the backoff waits
            handler.interval_calculator = FixedValueRetryIntervalCalculator(0.0)
        call_log = CallLog(data_dir, client, settings_for(data_dir, dispatch))
        logs.append(call_log)
        return call_log

    yield _open
    for call_log in logs:
        call_log.close()


def entry(text: str = "Search logged") -> blocks.Message:
    return blocks.note(text, kind="call_log")


def top_level(slack: SlackDouble) -> list[dict]:
    return [m for m in slack.messages(DISPATCH, include_users=True) if m.get("thread_ts") in (None, m["ts"])]


# --- the index ---------------------------------------------------------------------------------------------------


def test_index_keeps_the_earliest_message_as_the_calls_thread(open_log, data_dir):
    call_log = open_log()
    assert not call_log.known(CALL) and call_log.thread_ts(CALL) is None
    assert call_log.index_message(f"CAD: {CALL} robbery in progress, 5th & Main", "1700000100.000200") == [CALL]
    assert call_log.known(CALL) and call_log.thread_ts(CALL) == "1700000100.000200"
    call_log.index_message(f"Update on {CALL}: suspect fled", "1700000200.000100")  # later: not the thread
    assert call_log.thread_ts(CALL) == "1700000100.000200"
    call_log.index_message(f"CAD: {CALL} created", "1700000099.900000")  # earlier (backfill order): wins
    assert call_log.thread_ts(CALL) == "1700000099.900000"
    # Timestamps compare as numbers: "…99.9" is earlier than "…100.0" although it sorts later as text.
    call_log.index_message(f"{CALL}", "999999999.999999")
    assert call_log.thread_ts(CALL) == "999999999.999999"
    # The index is on disk: a restart knows the call.
    again = open_log()
    assert again.thread_ts(CALL) == "999999999.999999"
    stored = json.loads((data_dir / "slack" / "calls.json").read_text())
    (doc,) = stored["calls"].values()
    assert doc["call_number"] == CALL and doc["source"] == "dispatch" and doc["first_seen"].startswith("2001-")
    assert (data_dir / "slack" / "calls.json").stat().st_mode & 0o777 == 0o600


def test_only_word_bounded_call_numbers_are_indexed(open_log):
    call_log = open_log()
    assert call_log.index_message("126-0123456 and 26-0123456 and x26-012345 and 26-012345x", "1.000001") == []
    assert call_log.index_message("ref26-012345 26-012345-1", "1.000002") == []
    assert call_log.index_message("Call #26-012345. Linked: (26-000001), 26-000002;", "1.000003") == [
        "26-012345", "26-000001", "26-000002"]
    assert call_log.index_message("<https://cad.example/26-000003|26-000003> *26-000004*", "1.000004") == [
        "26-000003", "26-000004"]
    assert not call_log.known("26-0123456") and not call_log.known("6-012345")


def test_message_text_reads_attachments_and_blocks():
    msg = {
        "text": "",
        "attachments": [{"fallback": "New call", "fields": [{"title": "Call", "value": "26-000010"}]}],
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "CAD 26-000011"}},
                   {"type": "rich_text", "elements": [{"type": "rich_text_section",
                                                       "elements": [{"type": "text", "text": "26-000012"}]}]}],
    }
    text = message_text(msg)
    for number in ("26-000010", "26-000011", "26-000012"):
        assert number in text


# --- logging in the call thread -----------------------------------------------------------------------------------


async def test_log_without_a_known_thread_starts_one_then_posts_in_it(slack, open_log):
    call_log = open_log()
    ts = await call_log.log(CALL, entry("First search"))
    (opening,) = top_level(slack)
    assert opening["text"] == wording.call_thread_opening(CALL) == "Call 26-012345 — facial recognition activity"
    assert opening["metadata"]["event_type"] == "fr_search"
    assert opening["metadata"]["event_payload"]["call_number"] == CALL
    replies = [m for m in slack.messages(DISPATCH, thread_ts=opening["ts"]) if m["ts"] != opening["ts"]]
    assert [m["text"] for m in replies] == ["First search"] and replies[0]["ts"] == ts
    assert call_log.thread_ts(CALL) == opening["ts"]
    assert slack.posts_without_metadata() == []
    # The next entry goes into the same thread, without a second opening.
    await call_log.log(CALL, entry("Second search"))
    assert len(top_level(slack)) == 1
    assert len(slack.messages(DISPATCH, thread_ts=opening["ts"])) == 3


async def test_log_goes_into_the_thread_the_cad_feed_started(slack, open_log):
    call_log = open_log()
    event = slack.add_message(DISPATCH, f"*New call* {CALL} 211 ROBBERY 500 MAIN ST", bot_id=CAD_BOT)
    assert call_log.index_message(event["text"], event["ts"]) == [CALL]
    ts = await call_log.log(CALL, entry())
    (post,) = slack.calls("chat.postMessage")
    assert post["thread_ts"] == event["ts"] and post["channel"] == DISPATCH
    assert post["metadata"]["event_type"] == "fr_search"
    assert ts is not None and len(top_level(slack)) == 1  # no opening of our own


async def test_two_searches_for_a_new_call_at_once_start_one_thread(slack, open_log):
    call_log = open_log()
    first, second = await asyncio.gather(call_log.log(CALL, entry("A")), call_log.log(CALL, entry("B")))
    assert first and second
    (opening,) = top_level(slack)
    assert len(slack.messages(DISPATCH, thread_ts=opening["ts"])) == 3


async def test_a_post_failing_beyond_retries_is_queued_on_disk_and_delivered_later(slack, open_log, data_dir):
    call_log = open_log()
    cad = slack.add_message(DISPATCH, f"CAD {CALL} assault", bot_id=CAD_BOT)
    call_log.index_message(cad["text"], cad["ts"])
    slack.fail_next("chat.postMessage", status=500, times=MAX_RETRIES + 1)
    assert await call_log.log(CALL, entry("Queued search")) is None  # never raises
    assert len(slack.calls("chat.postMessage")) == MAX_RETRIES + 1  # the client retried first
    assert call_log.outbox_depth() == 1
    on_disk = json.loads((data_dir / "slack" / "outbox.json").read_text())
    (queued,) = on_disk["outbox"].values()
    assert queued["call_number"] == CALL and queued["attempts"] == 1 and "500" in queued["last_error"]
    assert queued["message"]["text"] == "Queued search" and queued["message"]["metadata"]["event_type"]
    assert queued["queued_at"].endswith("Z")
    # A restart keeps the queue, and a flush delivers it in the call's thread.
    restarted = open_log()
    assert restarted.outbox_depth() == 1
    assert await restarted.flush_outbox() == 1
    assert restarted.outbox_depth() == 0
    delivered = [m for m in slack.messages(DISPATCH, thread_ts=cad["ts"]) if m.get("user") != cad.get("user")]
    assert [m["text"] for m in delivered if m["ts"] != cad["ts"]] == ["Queued search"]
    assert delivered[-1]["thread_ts"] == cad["ts"] and delivered[-1]["metadata"]["event_type"] == "fr_search"
    assert await restarted.flush_outbox() == 0


async def test_a_queued_post_that_fails_again_stays_with_one_more_attempt(slack, open_log):
    call_log = open_log()
    slack.fail_next("chat.postMessage", status=500, times=MAX_RETRIES + 1)
    assert await call_log.log(CALL, entry("Needs a thread")) is None  # the thread could not even be started
    assert not call_log.known(CALL)
    slack.fail_next("chat.postMessage", status=DISCONNECT, times=MAX_RETRIES + 1)  # connection dropped
    assert await call_log.flush_outbox() == 0
    (queued,) = call_log.outbox()
    assert queued["attempts"] == 2 and "Disconnected" in queued["last_error"]
    assert await call_log.flush_outbox() == 1
    (opening,) = top_level(slack)
    assert opening["text"] == wording.call_thread_opening(CALL)
    thread = slack.messages(DISPATCH, thread_ts=opening["ts"])
    assert [m["text"] for m in thread][1:] == ["Needs a thread"]


async def test_queued_posts_are_delivered_before_a_new_one_for_the_same_call(slack, open_log):
    call_log = open_log()
    call_log.index_message(f"CAD {CALL}", slack.add_message(DISPATCH, f"CAD {CALL}", bot_id=CAD_BOT)["ts"])
    slack.fail_next("chat.postMessage", status=500, times=MAX_RETRIES + 1)
    assert await call_log.log(CALL, entry("Earlier")) is None
    assert await call_log.log(CALL, entry("Later"))
    thread = slack.messages(DISPATCH, thread_ts=call_log.thread_ts(CALL))
    assert [m["text"] for m in thread if m.get("user") == "UBOT"] == ["Earlier", "Later"]
    assert call_log.outbox_depth() == 0


async def test_several_queued_posts_are_flushed_in_the_order_they_were_queued(slack, open_log):
    call_log = open_log()
    call_log.index_message(f"CAD {CALL}", slack.add_message(DISPATCH, f"CAD {CALL}", bot_id=CAD_BOT)["ts"])
    # First post; then, for the second, a flush of the first and the second's own post: all fail.
    slack.fail_next("chat.postMessage", status=503, times=3 * (MAX_RETRIES + 1))
    assert await call_log.log(CALL, entry("One")) is None
    assert await call_log.log(CALL, entry("Two")) is None
    assert [(q["message"]["text"], q["attempts"]) for q in call_log.outbox()] == [("One", 2), ("Two", 1)]
    assert await call_log.flush_outbox() == 2
    thread = slack.messages(DISPATCH, thread_ts=call_log.thread_ts(CALL))
    assert [m["text"] for m in thread] == ["One", "Two"]  # the bot's own posts, oldest first


async def test_a_slack_error_is_queued_not_raised(slack, open_log):
    call_log = open_log("C0GONE")  # a channel the bot cannot post to
    assert await call_log.log(CALL, entry()) is None
    (queued,) = call_log.outbox()
    assert "channel_not_found" in queued["last_error"]


# --- request-thread essentials share the outbox ---------------------------------------------------------------

CASE = "C0CASE"
THREAD = "1700000000.000100"


async def test_a_thread_post_failing_beyond_retries_is_queued_and_flushed_into_its_thread(slack, open_log):
    slack.add_channel(CASE, "case-1")
    call_log = open_log()
    slack.fail_next("chat.postMessage", status=DISCONNECT, times=MAX_RETRIES + 1)
    assert await call_log.post_in_thread(CASE, THREAD, entry("The result")) is None  # never raises
    (queued,) = call_log.outbox()
    assert (queued["channel"], queued["thread_ts"], queued.get("call_number")) == (CASE, THREAD, None)
    assert queued["message"]["text"] == "The result" and "Disconnected" in queued["last_error"]
    # A later post for the same thread is queued behind it while Slack is still down...
    slack.fail_next("chat.postMessage", status=500, times=MAX_RETRIES + 1)
    assert await call_log.post_in_thread(CASE, THREAD, entry("Later")) is None
    assert [q["message"]["text"] for q in call_log.outbox()] == ["The result", "Later"]
    # ...and a restart keeps both; the flush delivers them into the thread, in order.
    restarted = open_log()
    assert await restarted.flush_outbox() == 2
    assert [(m["text"], m["thread_ts"]) for m in slack.messages(CASE)] == [("The result", THREAD),
                                                                            ("Later", THREAD)]
    assert restarted.outbox_depth() == 0


async def test_a_thread_post_goes_out_after_what_is_queued_for_that_thread(slack, open_log):
    slack.add_channel(CASE, "case-1")
    call_log = open_log()
    slack.fail_next("chat.postMessage", status=500, times=MAX_RETRIES + 1)
    assert await call_log.post_in_thread(CASE, THREAD, entry("First")) is None
    assert await call_log.post_in_thread(CASE, THREAD, entry("Second"))
    assert [m["text"] for m in slack.messages(CASE)] == ["First", "Second"]
    assert call_log.outbox_depth() == 0


async def test_a_thread_post_slack_refuses_for_good_is_not_queued(slack, open_log):
    call_log = open_log()
    assert await call_log.post_in_thread("C0GONE", THREAD, entry()) is None  # channel_not_found
    assert call_log.outbox_depth() == 0


async def test_no_dispatch_channel_still_flushes_thread_posts(slack, open_log):
    slack.add_channel(CASE, "case-1")
    call_log = open_log(dispatch="")
    slack.fail_next("chat.postMessage", status=503, times=MAX_RETRIES + 1)
    assert await call_log.post_in_thread(CASE, THREAD, entry("Result")) is None
    assert await call_log.flush_outbox() == 1
    assert [m["text"] for m in slack.messages(CASE)] == ["Result"]


async def test_no_dispatch_channel_means_no_post_no_queue_and_one_warning(slack, open_log, caplog):
    call_log = open_log(dispatch="")
    with caplog.at_level(logging.WARNING, logger="bot.slack.calls"):
        assert await call_log.log(CALL, entry()) is None
        assert await call_log.log(CALL, entry()) is None
    assert slack.call_log() == []
    assert call_log.outbox_depth() == 0
    warnings = [r for r in caplog.records if "dispatch_channel" in r.getMessage()]
    assert len(warnings) == 1
    assert await call_log.backfill() == 0


# --- backfill -----------------------------------------------------------------------------------------------------


async def test_backfill_indexes_top_level_history_including_bot_messages(slack, open_log, monkeypatch):
    monkeypatch.setattr(calls, "HISTORY_PAGE", 2)  # several pages from a short history
    cad = slack.add_history(DISPATCH, [
        {"text": "CAD 26-000001 burglary", "bot_id": CAD_BOT, "subtype": "bot_message"},
        {"text": "Dispatcher: units to 26-000002", "user": "U0DISPATCH"},
        {"text": "", "bot_id": CAD_BOT, "subtype": "bot_message",
         "attachments": [{"fallback": "New call 26-000003", "fields": [{"title": "Call", "value": "26-000003"}]}]},
        {"text": "shift change, no calls", "user": "U0DISPATCH"},
        {"text": "CAD 26-000001 update", "bot_id": CAD_BOT, "subtype": "bot_message"},
    ])
    thread_parent = cad[1]["ts"]
    slack.add_history(DISPATCH, [{"text": "reply naming 26-000009", "user": "U0X", "thread_ts": thread_parent}])
    call_log = open_log()
    assert await call_log.backfill() == 4
    assert call_log.thread_ts("26-000001") == cad[0]["ts"]  # the earliest message, not the update
    assert call_log.thread_ts("26-000002") == cad[1]["ts"]
    assert call_log.thread_ts("26-000003") == cad[2]["ts"]
    assert not call_log.known("26-000009")  # thread replies are not a call's thread
    pages = slack.calls("conversations.history")
    assert len(pages) >= 3 and all(p["channel"] == DISPATCH for p in pages)
    assert pages[1]["cursor"]


async def test_backfill_reads_at_most_the_limit_newest_first(slack, open_log):
    slack.add_history(DISPATCH, [{"text": f"CAD 26-00010{i}", "bot_id": CAD_BOT} for i in range(5)])
    call_log = open_log()
    assert await call_log.backfill(limit=2) == 2
    assert [call_log.known(f"26-00010{i}") for i in range(5)] == [False, False, False, True, True]


async def test_backfill_survives_a_slack_error(slack, open_log):
    call_log = open_log("C0GONE")
    assert await call_log.backfill() == 0


async def test_thread_permalink(slack, open_log):
    call_log = open_log()
    assert await call_log.thread_permalink(CALL) is None
    await call_log.log(CALL, entry())
    link = await call_log.thread_permalink(CALL)
    assert link and link.startswith("https://") and call_log.thread_ts(CALL).replace(".", "") in link


async def test_indexing_from_worker_threads_loses_no_call(open_log):
    # The flow may index from worker threads (asyncio.to_thread) while the event loop posts.
    call_log = open_log()
    numbers = [f"26-{i:06d}" for i in range(40)]
    await asyncio.gather(*(asyncio.to_thread(call_log.index_message, f"CAD {n}", f"17000000{i:02d}.000100")
                           for i, n in enumerate(numbers)))
    assert [n for n in numbers if not call_log.known(n)] == []


async def test_a_call_log_post_slack_refuses_for_good_is_dropped_after_a_few_tries(slack, open_log):
    from bot.slack.calls import MAX_PERMANENT_ATTEMPTS

    call_log = open_log()
    call_log.index_message(f"CAD: {CALL} robbery", "1700000100.000200")
    slack.fail_next("chat.postMessage", status=500, times=MAX_RETRIES + 1)
    assert await call_log.log(CALL, entry("Queued")) is None
    slack._channels.pop(DISPATCH)  # the dispatch channel is gone: channel_not_found from now on
    for _ in range(MAX_PERMANENT_ATTEMPTS - 2):
        assert await call_log.flush_outbox() == 0
    assert call_log.outbox_depth() == 1  # kept while an admin may still fix it
    assert await call_log.flush_outbox() == 0
    assert call_log.outbox_depth() == 0  # then dropped: it would never go out


def test_an_edit_never_moves_a_calls_thread(open_log):
    call_log = open_log()
    call_log.index_message(f"CAD: {CALL} robbery", "1700000100.000200")
    call_log.index_message(f"old chat, edited to mention {CALL}", "1600000000.000100", source="edit")
    assert call_log.thread_ts(CALL) == "1700000100.000200"
    assert call_log.index_message("edited: 26-777777 new", "1600000000.000100", source="edit") == ["26-777777"]
    assert call_log.known("26-777777")  # an edit may still introduce a call nobody posted yet


async def test_the_logged_before_note_links_to_the_earlier_thread_as_slack_renders_it(slack, open_log):
    call_log = open_log()
    await call_log.log(CALL, entry("First search"))
    (opening,) = top_level(slack)
    cad = slack.add_message(DISPATCH, f"CAD: {CALL} robbery in progress", user="UCADFEED")
    await call_log.index(f"CAD: {CALL} robbery in progress", cad["ts"])
    [note] = slack.messages(DISPATCH, thread_ts=cad["ts"])
    [asked] = [c for c in slack.call_log("chat.getPermalink") if c.params.get("message_ts") == opening["ts"]]
    earlier = asked.response["permalink"]
    expected = (f"Facial recognition activity for call {CALL} logged before this message is in "
                f"<{earlier}|this earlier thread>; new entries follow here.")
    assert note["text"] == expected and note["blocks"][0]["text"]["text"] == expected  # markup, not &lt;…&gt;


async def test_dispatch_posting_a_call_after_the_bot_opened_its_thread_takes_it_over(slack, open_log):
    """The search came first (the bot started the call's thread); then the CAD feed posts the call: later
    entries go to the CAD thread, which links to the earlier one."""
    call_log = open_log()
    assert await call_log.log(CALL, entry("First search")) is not None
    (opening,) = top_level(slack)
    cad = slack.add_message(DISPATCH, f"CAD: {CALL} robbery in progress", user="UCADFEED")
    await call_log.index(f"CAD: {CALL} robbery in progress", cad["ts"])
    assert call_log.thread_ts(CALL) == cad["ts"]
    [link] = slack.messages(DISPATCH, thread_ts=cad["ts"])  # the bot's posts there
    assert "earlier thread" in link["text"]
    await call_log.log(CALL, entry("Second search"))
    assert [m["text"] for m in slack.messages(DISPATCH, thread_ts=cad["ts"])][-1] == "Second search"
    assert open_log().thread_ts(CALL) == cad["ts"]  # persisted
    await call_log.index(wording.call_thread_opening(CALL), opening["ts"], source="bot")
    assert call_log.thread_ts(CALL) == cad["ts"]  # the bot's own message never takes it back


async def test_a_restart_keeps_dispatchs_thread_after_a_take_over(slack, open_log):
    """The bot's own opening message, read again by the backfill, never takes a call back."""
    call_log = open_log()
    call_log.own_ids = {"UBOT", "BBOT"}
    await call_log.log(CALL, entry("First search"))
    cad = slack.add_message(DISPATCH, f"CAD: {CALL} robbery in progress", user="UCADFEED")
    await call_log.index(f"CAD: {CALL} robbery in progress", cad["ts"])
    restarted = open_log()
    restarted.own_ids = {"UBOT", "BBOT"}
    await restarted.backfill()
    assert restarted.thread_ts(CALL) == cad["ts"]


def test_the_file_follows_memory_whatever_order_writes_finish_in(open_log):
    call_log = open_log()
    _, newer = call_log._remember_all(f"{CALL}", "1700000200.000000", "dispatch")
    _, older = call_log._remember_all(f"{CALL}", "1700000100.000000", "dispatch")
    call_log._persist(older)
    call_log._persist(newer)  # the slower write lands last
    assert open_log().thread_ts(CALL) == "1700000100.000000"


def test_a_message_naming_thousands_of_calls_indexes_the_first_twenty_in_one_write(open_log, data_dir, monkeypatch):
    """A 40,000-character message naming 3,999 call numbers stalled the next search (every number rewrote the
    whole index under the lock a search needs): now the first 20 are indexed, written in one batch."""
    from bot.store.disk import AtomicJSONStorage

    call_log = open_log()
    writes = []
    real_write = AtomicJSONStorage.write
    monkeypatch.setattr(AtomicJSONStorage, "write", lambda self, data: (writes.append(1), real_write(self, data)))
    text = " ".join(f"26-{n:06d}" for n in range(1, 4000))
    assert len(text) > 39_000
    found = call_log.index_message(text, "1700000100.000200")
    assert found == [f"26-{n:06d}" for n in range(1, 21)]
    assert call_log.known("26-000020") and not call_log.known("26-000021")
    assert len(writes) <= 2  # one batch, not one rewrite per call number
    stored = json.loads((data_dir / "slack" / "calls.json").read_text())
    assert len(stored["calls"]) == 20


def test_calls_older_than_call_index_days_are_pruned_from_memory_and_disk(open_log, data_dir):
    from datetime import UTC, datetime

    call_log = open_log()
    call_log.index_message("CAD: 26-000001 burglary", "1700000000.000100")  # 2023-11-14
    call_log.index_message("CAD: 26-000002 collision", "1790000000.000100")  # 2026-09-21
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert call_log.prune(now) == 1
    assert not call_log.known("26-000001") and call_log.known("26-000002")
    assert call_log.prune(now) == 0
    again = open_log()  # the file followed
    assert not again.known("26-000001") and again.known("26-000002")


async def test_a_deleted_call_thread_gets_a_new_thread_when_a_post_finds_it_gone(slack, open_log):
    """No message_deleted event reached the bot: the post to the dead thread fails with thread_not_found, the
    call gets a new thread (saying why) and the entry lands there; nothing is queued or dropped."""
    call_log = open_log()
    cad = slack.add_message(DISPATCH, f"CAD {CALL} burglary", user="UCAD", bot_id=CAD_BOT)
    await call_log.index(cad["text"], cad["ts"])
    slack.delete_message(DISPATCH, cad["ts"])
    ts = await call_log.log(CALL, entry("After the delete"))
    assert ts is not None and call_log.outbox_depth() == 0
    [opening] = top_level(slack)
    assert opening["text"] == wording.call_thread_opening(CALL, replaces_deleted=True)
    assert call_log.thread_ts(CALL) == opening["ts"] and open_log().thread_ts(CALL) == opening["ts"]
    assert [m["text"] for m in slack.messages(DISPATCH, thread_ts=opening["ts"])][-1] == "After the delete"


async def test_a_queued_entry_for_a_deleted_call_thread_is_delivered_to_a_new_thread(slack, open_log):
    call_log = open_log()
    cad = slack.add_message(DISPATCH, f"CAD {CALL} burglary", user="UCAD", bot_id=CAD_BOT)
    await call_log.index(cad["text"], cad["ts"])
    slack.fail_next("chat.postMessage", status=503, times=MAX_RETRIES + 1)
    assert await call_log.log(CALL, entry("Queued")) is None
    slack.delete_message(DISPATCH, cad["ts"])
    assert await call_log.flush_outbox() == 1
    [opening] = top_level(slack)
    assert [m["text"] for m in slack.messages(DISPATCH, thread_ts=opening["ts"])][-1] == "Queued"


# --- exactly once: post ids and leases (CONTRACTS ### 13) --------------------------------------------------------


def post_ids(messages: list[dict]) -> list[str]:
    return [((m.get("metadata") or {}).get("event_payload") or {}).get("post_id") for m in messages]


async def test_every_post_carries_a_post_id_and_a_queued_one_keeps_its_first_tries(slack, open_log):
    call_log = open_log()
    call_log.index_message(f"CAD {CALL}", slack.add_message(DISPATCH, f"CAD {CALL}", bot_id=CAD_BOT)["ts"])
    assert await call_log.log(CALL, entry("Direct"))
    slack.fail_next("chat.postMessage", status=500, times=MAX_RETRIES + 1)
    assert await call_log.log(CALL, entry("Queued")) is None
    tried = slack.calls("chat.postMessage")[-1]["metadata"]["event_payload"]["post_id"]
    (queued,) = call_log.outbox()
    assert queued["post_id"] == tried  # the first try's id: a try that did reach Slack is found by it
    assert await call_log.flush_outbox() == 1
    ids = post_ids(slack.messages(DISPATCH, thread_ts=call_log.thread_ts(CALL)))  # the bot's: Direct, Queued
    assert ids[1] == tried and all(ids) and len(set(ids)) == 2


async def test_a_lapsed_claim_already_in_its_thread_is_not_posted_again(slack, open_log):
    call_log = open_log()
    call_log.index_message(f"CAD {CALL}", slack.add_message(DISPATCH, f"CAD {CALL}", bot_id=CAD_BOT)["ts"])
    slack.fail_next("chat.postMessage", status=500, times=MAX_RETRIES + 1)
    assert await call_log.log(CALL, entry("Once")) is None
    (queued,) = call_log.outbox()
    # Another sender claimed it, posted it, and died before removing it: its lease lapses.
    assert call_log._outbox.claim(datetime.now(UTC) - timedelta(seconds=31), "dead-replica")
    await call_log.client.chat_postMessage(channel=DISPATCH, thread_ts=call_log.thread_ts(CALL), **queued["message"])
    assert await call_log.flush_outbox() == 1 and call_log.outbox_depth() == 0
    thread = slack.messages(DISPATCH, thread_ts=call_log.thread_ts(CALL))
    assert [m["text"] for m in thread if m.get("user") == "UBOT"] == ["Once"]
    assert slack.calls("conversations.replies")  # it looked before posting


async def test_a_lapsed_claim_missing_from_its_thread_is_posted_once(slack, open_log):
    slack.add_channel(CASE, "case-1")
    call_log = open_log()
    slack.fail_next("chat.postMessage", status=500, times=MAX_RETRIES + 1)
    assert await call_log.post_in_thread(CASE, THREAD, entry("The result")) is None
    (queued,) = call_log._outbox.claim(datetime.now(UTC) - timedelta(seconds=31), "dead-replica")  # died first
    assert await call_log.flush_outbox() == 1 and call_log.outbox_depth() == 0
    assert [m["text"] for m in slack.messages(CASE)] == ["The result"]
    assert post_ids(slack.messages(CASE)) == [queued["post_id"]]


async def test_a_post_another_sender_holds_is_left_to_it_with_the_later_posts_to_its_thread(slack, open_log):
    slack.add_channel(CASE, "case-1")
    call_log = open_log()
    slack.fail_next("chat.postMessage", status=500, times=3 * (MAX_RETRIES + 1))
    for thread_ts, text in ((THREAD, "First"), (THREAD, "Second"), ("1700000000.000900", "Elsewhere")):
        assert await call_log.post_in_thread(CASE, thread_ts, entry(text)) is None
    first = call_log.outbox()[0]
    assert call_log._outbox.claim(datetime.now(UTC), "other-replica", ids=[first["_id"]])  # in flight there
    assert await call_log.flush_outbox() == 1
    assert [m["text"] for m in slack.messages(CASE)] == ["Elsewhere"]
    assert [q["message"]["text"] for q in call_log.outbox()] == ["First", "Second"]


async def test_on_a_database_another_replica_knows_the_call_and_delivers_what_one_queued(slack, pg_migrated,
                                                                                       tmp_path):
    from psycopg_pool import ConnectionPool

    from bot.store.pg.slack import PgCallIndexStore, PgOutboxStore

    pool = ConnectionPool(pg_migrated.app_url, min_size=1, max_size=4, open=True)

    def replica(name: str) -> CallLog:
        client = make_web_client(TOKEN, slack.base_url)
        for handler in client.retry_handlers:
            handler.interval_calculator = FixedValueRetryIntervalCalculator(0.0)
        data = tmp_path / name
        return CallLog(data, client, settings_for(data), index=PgCallIndexStore(pool.connection),
                       outbox=PgOutboxStore(pool.connection), shared=True)

    try:
        a, b = replica("a"), replica("b")
        cad = slack.add_message(DISPATCH, f"CAD {CALL} assault", bot_id=CAD_BOT)
        a.index_message(cad["text"], cad["ts"])  # the dispatch message reached replica A
        assert await asyncio.to_thread(b.known, CALL) and b.thread_ts(CALL) == cad["ts"]  # B asks the database
        slack.fail_next("chat.postMessage", status=500, times=MAX_RETRIES + 1)
        assert await a.log(CALL, entry("Queued on A")) is None  # A queues it (Slack down)...
        assert b.outbox_depth() == 0
        await asyncio.to_thread(b.reload)  # ...B's tick sees it...
        assert b.outbox_depth() == 1
        assert await b.flush_outbox() == 1  # ...and delivers it, once
        assert await a.flush_outbox() == 0
        delivered = [m["text"] for m in slack.messages(DISPATCH, thread_ts=cad["ts"]) if m["ts"] != cad["ts"]]
        assert delivered == ["Queued on A"]
    finally:
        pool.close()
