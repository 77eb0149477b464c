"""Several servers on one PostgreSQL (issue 17, CONTRACTS ### 13): separate `python -m bot serve` processes
(tests/slack/replicas.py) sharing the test's database, each with its own data dir. One request's events alternate
between them; the same signed event reaches both; the leader is killed mid-search; an enrollment is seen by the
other replica's next search."""
from __future__ import annotations

import asyncio
import time

import pytest

from bot.cli.main import main
from bot.request.transitions import Dialog

from ..conftest import link_subjects
from .conftest import CAD_BOT, CAD_USER, CALL, CASE, DISPATCH, JUSTIFICATION, OFFICER, Harness, payload
from .replicas import Replica, leaders, start_replica
from .signing import event_body, new_event_id, post

pytestmark = pytest.mark.parametrize("store_kind", ["postgresql"])

OBAMA = "people/obama/obama3.jpg"
LEADER_NOTICE_S = 15  # CONTRACTS ### 13: a dead leader is replaced within 15 s


async def two_replicas(harness: Harness, enrolled_gallery) -> tuple[Replica, Replica]:
    """replica-a (started first: it leads) and replica-b on the harness's database, the gallery enrolled in it
    and the CAD feed's call posted in the dispatch channel."""
    harness._enroll_in_database(enrolled_gallery)
    harness.slack.add_history(DISPATCH, [{"text": f"CAD {CALL} incident", "user": CAD_USER, "bot_id": CAD_BOT}])
    a = await start_replica(harness, "replica-a")
    deadline = time.monotonic() + 30
    while await leaders(harness, [a]) != ["replica-a"]:
        assert time.monotonic() < deadline, "replica-a never led"
        await asyncio.sleep(0.2)
    b = await start_replica(harness, "replica-b")
    return a, b


async def answer_on(harness: Harness, upload: dict, replica: Replica, nth: int = 1) -> None:
    """The call number, purpose and justification, each reply sent to `replica` (`nth` request of the test)."""
    harness.target = replica
    await harness.reply(upload, CALL)
    await harness.wait_card("purpose", count=nth)
    await harness.reply(upload, "1")
    await harness.wait_card("justification", count=nth)
    await harness.reply(upload, JUSTIFICATION)
    await harness.wait_card("attestation", count=nth)


async def card_in(harness: Harness, upload: dict, timeout: float = 20.0) -> None:
    """Until the upload's thread holds its request card."""
    deadline = time.monotonic() + timeout
    while not harness.thread(upload, "card"):
        assert time.monotonic() < deadline, "no request card in the upload's thread"
        await asyncio.sleep(0.05)


def dialogs_of(harness: Harness, upload: dict) -> list[Dialog]:
    return [d for d in harness.backend().dialogs().all() if d.thread_ts == upload["ts"]]


async def finished(harness: Harness, upload: dict, timeout: float = 20.0) -> None:
    await harness.slack.wait_for(lambda c: c.method == "reactions.add" and c.params.get("name") == "checkered_flag"
                                 and c.params.get("timestamp") == upload["ts"], ok=True, timeout=timeout)


def post_ids(harness: Harness) -> list[str]:
    """The post_id of every message the bots posted (CONTRACTS ### 13: each post carries one)."""
    return [payload(c)["post_id"] for c in harness.slack.call_log("chat.postMessage") if c.ok and "post_id" in payload(c)]


async def test_one_request_alternating_between_two_replicas_is_searched_once_and_posted_once(harness, slack,
                                                                                            enrolled_gallery):
    a, b = await two_replicas(harness, enrolled_gallery)
    assert await leaders(harness, [a, b]) == ["replica-a"]  # exactly one leads
    harness.target = a
    upload = await harness.upload(harness.face(OBAMA))  # the upload on A
    await harness.wait_card()
    await answer_on(harness, upload, b)  # every reply on B
    harness.target = a
    await harness.press(upload, "fr_attest")  # the attestation button on A
    result = await harness.wait_kind("result")
    await finished(harness, upload)

    request_id = payload(result)["request_id"]
    [entry] = harness.audit(request_id=request_id)  # one search, one entry
    assert entry["outcome"] == "candidates" and entry["candidates"][0]["subject_id"] == "obama"
    assert entry["attestation"]["attested"] is True and entry["call_number"] == CALL
    assert len(harness.thread(upload, "result")) == 1 and len(dialogs_of(harness, upload)) == 1
    ids = post_ids(harness)
    assert len(ids) == len(set(ids))  # no post went out twice
    call_thread = [m for m in slack.messages(DISPATCH, include_users=True) if m.get("thread_ts")
                   and request_id in str(m.get("metadata") or "")]
    assert len(call_thread) == 1  # logged once in the call's thread
    assert harness.verify_audit()


async def test_the_same_signed_event_delivered_to_both_replicas_is_applied_once(harness, slack, enrolled_gallery):
    a, b = await two_replicas(harness, enrolled_gallery)
    name, data = harness.face(OBAMA)
    file = slack.add_file("F0000REPL1", name, "image/jpeg", data, OFFICER)
    event = slack.add_message(CASE, CALL, user=OFFICER, files=[file])
    body = event_body(event, new_event_id())
    replies = await asyncio.gather(post(harness.http, a.events_url, body), post(harness.http, b.events_url, body))
    assert [r.status for r in replies] == [200, 200]  # both acked (Slack would retry otherwise)
    await harness.wait_card("purpose")
    await asyncio.sleep(2)  # time for a second dialog to appear, were the event applied twice
    assert len(dialogs_of(harness, event)) == 1
    assert len(harness.thread(event, "card")) == 1 and len(slack.downloads()) == 1


async def test_kill_9_of_the_leader_mid_search_hands_over_and_the_request_ends(harness, slack, enrolled_gallery):
    a, b = await two_replicas(harness, enrolled_gallery)
    harness.target = b
    upload = await harness.upload(harness.face(OBAMA))
    await harness.wait_card()
    await answer_on(harness, upload, b)
    # A's result post is held back by Slack (rate limited for 20 s): A has searched and audited, and dies before
    # the officer sees anything.
    slack.fail_next("chat.postMessage", 429, retry_after=20,
                    match=lambda p: ((p.get("metadata") or {}).get("event_payload") or {}).get("kind") == "result")
    harness.target = a
    await harness.press(upload, "fr_attest")  # the search runs on A, the leader...
    await slack.wait_for(lambda c: c.method == "chat.postMessage" and c.status == 429, timeout=30)
    a.kill9()  # ...which dies mid-work
    killed = time.monotonic()
    while await leaders(harness, [b]) != ["replica-b"]:
        assert time.monotonic() - killed < LEADER_NOTICE_S, "replica-b did not take over within 15 s"
        await asyncio.sleep(0.25)

    # The request ends: a result (or a clear error), posted once, audited once, whichever replica finished it.
    ended = await slack.wait_for(lambda c: c.method in ("chat.postMessage", "chat.update")
                                 and payload(c).get("kind") in ("result", "image_failed"), ok=True, timeout=120)
    await finished(harness, upload, timeout=60)
    request_id = payload(ended)["request_id"] if payload(ended).get("kind") == "result" else None
    searches = harness.audit()
    assert len(searches) == 1 and (request_id is None or searches[0]["request_id"] == request_id)  # not run again
    assert len(harness.thread(upload, "result")) == 1 and harness.verify_audit()  # posted once, by B
    ids = post_ids(harness)
    assert len(ids) == len(set(ids))


async def test_an_enrollment_is_seen_by_the_other_replicas_next_search(harness, slack, enrolled_gallery, faces_dir,
                                                                      monkeypatch, tmp_path):
    _a, b = await two_replicas(harness, enrolled_gallery)
    probe = "people/alex_lacamoire/img1.jpg"

    async def search_on(replica: Replica, nth: int) -> dict:
        harness.target = replica
        upload = await harness.upload(harness.face(probe))
        await card_in(harness, upload)
        await answer_on(harness, upload, replica, nth)
        await harness.press(upload, "fr_attest")
        await finished(harness, upload)
        [result] = harness.thread(upload, "result")
        [entry] = harness.audit(request_id=result["metadata"]["event_payload"]["request_id"])
        return entry

    before = await search_on(b, 1)
    assert "alex_lacamoire" not in [c["subject_id"] for c in before["candidates"]]
    # Enrolled from the command line against the same database, while both replicas run (A's machine, say).
    people = link_subjects(faces_dir, {"alex_lacamoire": ["alex-lacamoire.png", "alex_lacamoire1.jpg"]},
                           tmp_path / "new-people")
    harness.cli_env(monkeypatch)
    assert main(["gallery", "enroll", str(people), "--no-progress"]) == 0
    after = await search_on(b, 2)  # B's very next search
    assert after["candidates"][0]["subject_id"] == "alex_lacamoire"
    assert after["gallery_subjects"] == before["gallery_subjects"] + 1
