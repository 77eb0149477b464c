"""The audit log at scale, end to end: the chain head posted in [audit] head_channel (daily, with the purge, and at
start) and shown by `/frs status`."""
from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from bot import wording
from bot.audit import AuditLog
from bot.config import AuditSettings
from bot.slack import flow

from .conftest import OFFICER, block_texts, bot_settings
from .test_e2e_frs import frs, seed_call, texts

HEAD_CHANNEL = "CAUDITHEAD"


def head_posts(slack) -> list:
    """The bot's successful posts in the head channel, oldest first."""
    return [c for c in slack.call_log("chat.postMessage") if c.ok and c.params.get("channel") == HEAD_CHANNEL]


async def start_with_head_channel(harness, slack, **audit):
    slack.add_channel(HEAD_CHANNEL, "frs-audit-heads", is_private=True)
    settings = bot_settings(harness.data_dir)
    settings = dataclasses.replace(settings, audit=AuditSettings(head_channel=HEAD_CHANNEL, **audit))
    return await harness.start(settings=settings)


async def test_chain_head_is_posted_in_the_head_channel_at_start_and_by_the_daily_job(harness, slack):
    seed_call(harness.data_dir, datetime.now(UTC))
    await start_with_head_channel(harness, slack)
    first = await slack.wait_for(lambda c: c.method == "chat.postMessage" and c.params.get("channel") == HEAD_CHANNEL,
                                 ok=True)
    log = AuditLog.open(harness.data_dir, {})
    head = log.head()
    assert head["seq"] == 4
    meta = first.params["metadata"]
    assert meta["event_type"] == "fr_audit"
    assert meta["event_payload"] == {"kind": "audit_head", "seq": 4, "mac": head["mac"], "verified": True}
    assert block_texts(first.params) == [wording.audit_head_text(4, head["mac"], head["ts"], harness.rt.settings.timezone)]
    assert f"`python -m bot audit verify --head 4:{head['mac']}`" in first.params["text"]

    log.append("gallery_change", actor="os:admin", action="remove", subject_id="S1")
    await flow.purge(harness.rt)  # the daily job (the server runs it every 24 h)
    posts = head_posts(slack)
    assert len(posts) == 2 and posts[1].params["metadata"]["event_payload"]["seq"] == 5
    assert posts[1].params["metadata"]["event_payload"]["mac"] == log.head()["mac"]
    assert slack.posts_without_metadata() == []


async def test_chain_head_post_of_a_broken_log_says_so_and_no_channel_means_no_post(harness, slack):
    seed_call(harness.data_dir, datetime.now(UTC))
    path = harness.data_dir / "audit" / "audit.jsonl"
    path.write_bytes(path.read_bytes().replace(b"26-012345", b"26-012399", 1))
    await start_with_head_channel(harness, slack)
    post = await slack.wait_for(lambda c: c.method == "chat.postMessage" and c.params.get("channel") == HEAD_CHANNEL,
                                ok=True)
    assert post.params["metadata"]["event_payload"]["verified"] is False
    assert block_texts(post.params)[0].startswith("WARNING: the audit log does not verify (entry 1")

    harness.rt.settings = dataclasses.replace(harness.rt.settings, audit=AuditSettings(head_channel=""))
    assert await flow.publish_head(harness.rt) is None and len(head_posts(slack)) == 1


async def test_status_shows_the_chain_head(harness, slack):
    await start_with_head_channel(harness, slack)
    log = AuditLog.open(harness.data_dir, {})
    [empty] = await frs(harness, "status", user=OFFICER)
    assert "Audit log head: no entry yet" in texts(empty)[0].splitlines()
    entry = log.append("gallery_change", actor="os:admin", action="remove", subject_id="S1")
    [answer] = await frs(harness, "status", user=OFFICER)
    lines = texts(answer)[0].splitlines()
    assert wording.status_head_line(log.head()) in lines
    assert f"Audit log head: entry 1, MAC `{entry['mac']}`" in lines[-2]
