"""Anomaly alerts end to end (CONTRACTS ### 14): a started server runs the alert rules and the full chain check at
start, appends each new alert as an `alert` entry and posts it once to [oversight] alert_channel; a restart reads
the entries back and posts nothing again; a tampered log line is a broken chain alert at start; a head that
disagrees with the one posted is a chain alert too."""
from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

from bot import wording
from bot.config import AuditSettings
from bot.oversight import chain_check
from bot.slack import flow

from .conftest import block_texts, bot_settings
from .test_e2e_audit import HEAD_CHANNEL, cut_audit_tail
from .test_e2e_frs import edit_audit_entry

ALERTS = "CALERTS"
PUBLIC_URL = "https://frbot.example.org"
STRANGER = {"id": "USTRANGER9", "name": "Not A Requester"}
OFFICER_X = {"id": "UOFFICERX", "name": "Ofc. Flagged"}


def alert_posts(slack) -> list:
    """The bot's successful posts in the alert channel, oldest first."""
    return [c for c in slack.call_log("chat.postMessage") if c.ok and c.params.get("channel") == ALERTS]


def alert_entries(harness) -> list[dict]:
    return [e for e in harness.audit_log().entries() if e.get("kind") == "alert"]


async def start(harness, slack, oversight=None, **audit):
    """A server with the alert channel (private) and the console's address set."""
    slack.add_channel(ALERTS, "frs-oversight", is_private=True)  # again on a restart: its history stays
    settings = bot_settings(harness.data_dir)
    settings = dataclasses.replace(
        settings, oversight=dataclasses.replace(settings.oversight, alert_channel=ALERTS, **(oversight or {})),
        console=dataclasses.replace(settings.console, public_url=PUBLIC_URL),
        audit=AuditSettings(**audit) if audit else settings.audit)
    bot = await harness.start(settings=settings)
    await harness.idle()  # the leader's start work: the chain check and the alert rules among it
    return bot


def craft(log) -> None:
    """A crafted log: a search whose justification names a protected class, and a stranger refused 5 times today."""
    log.append("search", outcome="no_candidate", request_id="FR-FLAGGED01", requester=OFFICER_X,
               call_number="26-012345", purpose="investigation", flags=["protected_class"],
               justification="Robbery suspect, a Somali man, seen on the pharmacy camera, report 26-4411.",
               probe_sha256="cd" * 32)
    for n in range(5):
        log.append("search", outcome="denied", request_id=f"FR-REFUSED{n:02d}", requester=STRANGER,
                   denied=["not a requester"])


async def test_a_crafted_log_is_posted_to_the_alert_channel_once_and_a_restart_posts_nothing_again(harness, slack):
    craft(harness.audit_log())
    first = await start(harness, slack)
    posts = alert_posts(slack)
    entries = alert_entries(harness)
    assert sorted(e["rule"] for e in entries) == ["flagged", "refusals"]
    assert len(posts) == 2
    by_rule = {e["rule"]: e for e in entries}
    flagged = by_rule["flagged"]
    assert flagged["request_ids"] == ["FR-FLAGGED01"] and flagged["requester"] == OFFICER_X
    assert flagged["summary"] == wording.alert_flagged("Ofc. Flagged", "UOFFICERX", "FR-FLAGGED01")
    refusals = by_rule["refusals"]
    assert refusals["count"] == 5 and refusals["requester"] == STRANGER and refusals["threshold"] == 5
    payloads = [p.params["metadata"]["event_payload"] for p in posts]
    assert {p["alert_id"] for p in payloads} == {e["alert_id"] for e in entries}
    assert all(p["kind"] == "oversight_alert" for p in payloads)
    post = next(p for p in posts if p.params["metadata"]["event_payload"]["rule"] == "flagged")
    texts = block_texts(post.params)
    assert texts[0] == wording.alert_post_header("flagged")
    assert texts[1] == wording.escape_slack(flagged["summary"])
    assert f"<{PUBLIC_URL}/console/alerts|" in texts[2] and flagged["alert_id"] in texts[2]
    check = chain_check.last(harness.backend().small_records())  # the full check at start, kept for every replica
    assert check is not None and check.ok and check.count >= 6

    assert await flow.check_alerts(first.rt) == []  # the periodic run: nothing new
    await first.stop()
    slack.clear_calls()
    await start(harness, slack)
    assert alert_posts(slack) == []
    assert len(alert_entries(harness)) == 2

    harness.audit_log().append("search", outcome="candidates", request_id="FR-FLAGGED02", requester=OFFICER_X,
                               flags=["protected_class"], candidates=[])
    [new] = await flow.check_alerts(harness.rt)
    assert new["rule"] == "flagged" and new["key"] == "FR-FLAGGED02"
    assert len(alert_posts(slack)) == 1 and await flow.check_alerts(harness.rt) == []
    assert harness.verify_audit()


async def test_a_tampered_audit_line_is_a_broken_chain_alert_at_start_and_only_once(harness, slack):
    log = harness.audit_log()
    for n in range(3):
        log.append("gallery_change", actor="os:admin", action="remove", subject_id=f"S{n}")
    edit_audit_entry(harness, 2, b'"S1"', b'"S7"')
    first = await start(harness, slack)
    [post] = alert_posts(slack)
    assert post.params["metadata"]["event_payload"]["rule"] == "chain"
    text = block_texts(post.params)[1]
    assert text.startswith("The audit log does not verify: entry 2:")
    [entry] = alert_entries(harness)
    assert entry["rule"] == "chain" and entry["key"] == "chain" and entry["details"]["bad_seq"] == 2
    check = chain_check.last(harness.backend().small_records())
    assert check is not None and not check.ok and check.bad_seq == 2  # never shown as clean

    again = await flow.verify_chain(first.rt)  # the hourly check finds the same break: no second alert
    assert not again.ok and len(alert_posts(slack)) == 1
    await first.stop()
    slack.clear_calls()
    await start(harness, slack)
    assert alert_posts(slack) == [] and len(alert_entries(harness)) == 1


async def test_a_head_that_disagrees_with_the_posted_one_is_a_chain_alert(harness, slack):
    slack.add_channel(HEAD_CHANNEL, "frs-audit-heads", is_private=True)
    log = harness.audit_log()
    for n in range(6):
        log.append("gallery_change", actor="os:admin", action="remove", subject_id=f"S{n}")
    first = await start(harness, slack, head_channel=HEAD_CHANNEL)
    assert alert_posts(slack) == []
    await first.stop()
    cut_audit_tail(harness, 3)
    slack.clear_calls()
    await start(harness, slack, head_channel=HEAD_CHANNEL)
    [post] = alert_posts(slack)
    assert post.params["metadata"]["event_payload"]["rule"] == "chain"
    assert block_texts(post.params)[1] == wording.escape_slack(wording.audit_head_alarm(6, "missing", 3))
    [entry] = alert_entries(harness)
    assert entry["key"] == "head" and entry["details"]["problem"] == "missing"
    assert datetime.fromisoformat(entry["at"]) <= datetime.now(UTC)


async def test_a_public_alert_channel_gets_no_post_and_the_alert_is_still_an_entry(harness, slack, caplog):
    craft(harness.audit_log())
    settings = bot_settings(harness.data_dir)
    slack.add_channel("CPUBLIC", "oversight-public")
    settings = dataclasses.replace(settings, oversight=dataclasses.replace(settings.oversight,
                                                                           alert_channel="CPUBLIC"))
    await harness.start(settings=settings)
    await harness.idle()
    assert [c for c in slack.call_log("chat.postMessage") if c.params.get("channel") == "CPUBLIC"] == []
    assert sorted(e["rule"] for e in alert_entries(harness)) == ["flagged", "refusals"]
    assert "[oversight] alert_channel CPUBLIC is public" in caplog.text


async def test_the_leader_runs_the_rules_every_check_minutes_by_itself(harness, slack):
    # 0.005 minutes (0.3 s): the settings file takes whole minutes; the schedule is what is tested here.
    await start(harness, slack, oversight={"check_minutes": 0.005})
    assert alert_posts(slack) == []
    harness.audit_log().append("search", outcome="no_candidate", request_id="FR-FLAGGED03", requester=OFFICER_X,
                               flags=["protected_class"])
    post = await slack.wait_for(lambda c: c.method == "chat.postMessage" and c.params.get("channel") == ALERTS,
                                ok=True)
    assert post.params["metadata"]["event_payload"]["key"] == "FR-FLAGGED03"
    await asyncio.sleep(1.0)  # three more runs: nothing new
    assert len(alert_posts(slack)) == 1 and len(alert_entries(harness)) == 1


async def test_the_leader_checks_the_whole_chain_every_verify_minutes_and_a_break_is_an_alert_at_once(harness, slack):
    log = harness.audit_log()
    for n in range(3):
        log.append("gallery_change", actor="os:admin", action="remove", subject_id=f"S{n}")
    await start(harness, slack, oversight={"verify_minutes": 0.005})
    assert alert_posts(slack) == [] and chain_check.last(harness.backend().small_records()).ok
    edit_audit_entry(harness, 1, b'"S0"', b'"S5"')  # behind the running server's back
    post = await slack.wait_for(lambda c: c.method == "chat.postMessage" and c.params.get("channel") == ALERTS,
                                ok=True)
    assert block_texts(post.params)[1].startswith("The audit log does not verify: entry 1:")
    check = chain_check.last(harness.backend().small_records())
    assert not check.ok and check.bad_seq == 1
