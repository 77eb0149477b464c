"""The audit log at scale, end to end: the chain head posted in [audit] head_channel (daily, with the purge, and at
start) and shown by `/frs status`; refused attempts by someone on no list folded into one entry per window."""
from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import psycopg
import pytest

from bot import wording
from bot.audit.refusals import folded_count
from bot.config import AuditSettings
from bot.oversight import monthly, review
from bot.slack import flow
from bot.store.audit_log import AuditLog

from .conftest import CASE, OFFICER, OFFICER2, SHARED, Clock, block_texts, bot_settings
from .test_e2e_frs import CALL, STAFF, TZ, edit_audit_entry, frs, seed_call, texts
from .test_e2e_frs import start as start_staff

HEAD_CHANNEL = "CAUDITHEAD"


def head_posts(slack) -> list:
    """The bot's successful posts in the head channel, oldest first."""
    return [c for c in slack.call_log("chat.postMessage") if c.ok and c.params.get("channel") == HEAD_CHANNEL]


def cut_audit_tail(harness, count: int) -> None:
    """The newest `count` entries removed behind the bot's back: cut off the end of the log file, or deleted from
    the database by a superuser who switched the append-only triggers off."""
    if harness.on_postgresql:
        with psycopg.connect(harness.request.getfixturevalue("pg_migrated").admin_url, autocommit=True) as admin:
            admin.execute("SET session_replication_role = replica")
            gone = admin.execute("DELETE FROM audit_entries WHERE seq > (SELECT max(seq) FROM audit_entries) - %s",
                                 (count,)).rowcount
        assert gone == count
        return
    path = harness.data_dir / "audit" / "audit.jsonl"
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-count]))


async def start_with_head_channel(harness, slack, **audit):
    slack.add_channel(HEAD_CHANNEL, "frs-audit-heads", is_private=True)
    settings = bot_settings(harness.data_dir)
    settings = dataclasses.replace(settings, audit=AuditSettings(head_channel=HEAD_CHANNEL, **audit))
    return await harness.start(settings=settings)


async def test_chain_head_is_posted_in_the_head_channel_at_start_and_by_the_daily_job(harness, slack):
    seed_call(harness, datetime.now(UTC))
    await start_with_head_channel(harness, slack)
    first = await slack.wait_for(lambda c: c.method == "chat.postMessage" and c.params.get("channel") == HEAD_CHANNEL,
                                 ok=True)
    log = harness.audit_log()
    head = log.head()
    assert head["seq"] == 4
    meta = first.params["metadata"]
    assert meta["event_type"] == "fr_audit"
    payload = dict(meta["event_payload"])
    assert payload.pop("post_id")  # every post carries one (CONTRACTS ### 13)
    assert payload == {"kind": "audit_head", "seq": 4, "mac": head["mac"], "verified": True}
    assert block_texts(first.params) == [wording.audit_head_text(4, head["mac"], head["ts"], harness.rt.settings.timezone)]
    assert f"`python -m bot audit verify --head 4:{head['mac']}`" in first.params["text"]

    log.append("gallery_change", actor="os:admin", action="remove", subject_id="S1")
    await flow.purge(harness.rt)  # the daily job (the server runs it every 24 h)
    posts = head_posts(slack)
    assert len(posts) == 2 and posts[1].params["metadata"]["event_payload"]["seq"] == 5
    assert posts[1].params["metadata"]["event_payload"]["mac"] == log.head()["mac"]
    assert slack.posts_without_metadata() == []


async def test_chain_head_post_of_a_broken_log_says_so_and_no_channel_means_no_post(harness, slack):
    seed_call(harness, datetime.now(UTC))
    edit_audit_entry(harness, 1, b"26-012345", b"26-012399")
    await start_with_head_channel(harness, slack)
    post = await slack.wait_for(lambda c: c.method == "chat.postMessage" and c.params.get("channel") == HEAD_CHANNEL,
                                ok=True)
    assert post.params["metadata"]["event_payload"]["verified"] is False
    assert block_texts(post.params)[0].startswith("WARNING: the audit log does not verify (entry 1")

    harness.rt.settings = dataclasses.replace(harness.rt.settings, audit=AuditSettings(head_channel=""))
    assert await flow.publish_head(harness.rt) is None and len(head_posts(slack)) == 1


async def test_status_shows_the_chain_head(harness, slack):
    await start_with_head_channel(harness, slack)
    log = harness.audit_log()
    [empty] = await frs(harness, "status", user=OFFICER)
    assert "Audit log head: no entry yet" in texts(empty)[0].splitlines()
    entry = log.append("gallery_change", actor="os:admin", action="remove", subject_id="S1")
    [answer] = await frs(harness, "status", user=OFFICER)
    lines = texts(answer)[0].splitlines()
    assert wording.status_head_line(log.head()) in lines
    assert f"Audit log head: entry 1, MAC `{entry['mac']}`" in lines[-2]


# ------------------------------------------------------------------------------------ refusal aggregation


def access_refusals(harness, user: str) -> list[dict]:
    return [e for e in harness.audit_log().entries()
            if e.get("kind") == "audit_access" and e.get("allowed") is False and e["actor"]["id"] == user]


async def test_refusal_aggregation_50_frs_commands_by_a_stranger_are_two_entries_and_the_report_counts_50(
    harness, slack
):
    await start_staff(harness, slack)
    clock = Clock()
    harness.rt.clock = clock
    for _ in range(50):  # OFFICER2 is on no list at all
        [answer] = await frs(harness, f"audit {CALL}", user=OFFICER2)
        assert texts(answer) == [wording.FRS_STAFF_ONLY]  # every attempt is still answered
    assert [e.get("count") for e in access_refusals(harness, OFFICER2)] == [None]  # the first, at once
    clock.advance(minutes=11)
    await flow.tick(harness.rt)  # the window closed: the folded entry is written
    entries = access_refusals(harness, OFFICER2)
    assert len(entries) == 2 and sum(folded_count(e) for e in entries) == 50 and entries[1]["count"] == 49
    for _ in range(3):  # a requester's refusals are each an entry
        await frs(harness, f"audit {CALL}", user=OFFICER)
    assert [e.get("count") for e in access_refusals(harness, OFFICER)] == [None] * 3

    month = datetime.now(UTC).astimezone(review.zone(TZ)).strftime("%Y-%m")
    report = monthly.summarise_month(harness.audit_log().entries(), month, TZ)
    assert report.refused_commands == 53
    [answer] = await frs(harness, f"report {month}", user=STAFF)
    assert "Refused /frs commands (audit queries, reports, status): 53" in texts(answer)[0]
    assert harness.verify_audit()


async def test_refusal_aggregation_uploads_by_a_stranger_fold_and_a_requesters_are_each_an_entry(harness, slack):
    await harness.start(gallery=False)
    # Asked for (the bot is mentioned): each is told privately, with its request id.
    uploads = [await harness.upload((f"p{i}.jpg", b"\xff\xd8"), user=OFFICER2, text="<@UBOT>") for i in range(20)]
    await slack.wait_for("chat.postEphemeral", count=20, ok=True)
    await harness.idle()

    def request_ids_told(user: str) -> dict[str, str]:
        return {e["thread_ts"]: block_texts(e)[-1].removeprefix("Request ") for e in slack.ephemerals(CASE, user)}

    rid_of = request_ids_told(OFFICER2)
    assert len(rid_of) == 20
    [first] = harness.audit(outcome="denied")
    assert first["request_id"] in rid_of.values() and first["requester"]["id"] == OFFICER2
    for i in range(3):  # a requester, refused for the channel: each refusal is its own entry
        await harness.upload((f"s{i}.jpg", b"\xff\xd8"), user=OFFICER, channel=SHARED, text="<@UBOT>")
    await slack.wait_for("chat.postEphemeral", count=23, ok=True)
    await harness.idle()
    assert [e["requester"]["id"] for e in harness.audit(outcome="denied")] == [OFFICER2] + [OFFICER] * 3

    again = slack.add_message(CASE, "<@UBOT>", user=OFFICER2, files=uploads[7]["files"])  # shared again
    await harness.send(again)
    note = await harness.wait_kind("already_requested")
    assert block_texts(note.params) == [wording.already_requested(rid_of[uploads[7]["ts"]])]

    await harness.bot.stop()  # shutdown writes the open window
    stranger = [e for e in harness.audit(outcome="denied") if e["requester"]["id"] == OFFICER2]
    assert [folded_count(e) for e in stranger] == [1, 19]
    assert {a["request_id"] for a in stranger[1]["attempts"]} == set(rid_of.values()) - {first["request_id"]}
    month = datetime.now(UTC).astimezone(review.zone(TZ)).strftime("%Y-%m")
    report = monthly.summarise_month(harness.audit_log().entries(), month, TZ)
    assert report.by_outcome["denied"] == 23 and report.total == 23
    assert harness.verify_audit()


# ------------------------------------------------------------------------- a head that went backwards


async def test_a_truncated_log_is_an_alarm_not_a_new_head_until_accept_head(harness, slack, capsys, monkeypatch):
    from bot.cli import main as cli

    seed_call(harness, datetime.now(UTC))
    log = harness.audit_log()
    for n in range(6):
        log.append("gallery_change", actor="os:admin", action="remove", subject_id=f"S{n}")
    first = await start_with_head_channel(harness, slack)
    posted = await slack.wait_for(lambda c: c.method == "chat.postMessage" and c.params.get("channel") == HEAD_CHANNEL,
                                  ok=True)
    assert posted.params["metadata"]["event_payload"]["seq"] == 10
    await harness.idle()
    await first.stop()

    cut_audit_tail(harness, 4)
    slack.clear_calls()
    await start_with_head_channel(harness, slack)
    alarm = await slack.wait_for(lambda c: c.method == "chat.postMessage" and c.params.get("channel") == HEAD_CHANNEL,
                                 ok=True)
    await harness.idle()
    assert alarm.params["metadata"]["event_payload"]["kind"] == "audit_head_alarm"
    assert block_texts(alarm.params)[0] == wording.audit_head_alarm(10, "missing", 6)
    assert [p.params["metadata"]["event_payload"]["kind"] for p in head_posts(slack)] == ["audit_head_alarm"]
    [status] = await frs(harness, "status", user=OFFICER)
    assert wording.audit_head_alarm(10, "missing", 6) in texts(status)[0]
    assert await flow.publish_head(harness.rt) is None  # the daily job posts no head either

    head = harness.audit_log().head()
    harness.cli_env(monkeypatch)
    assert cli.main(["audit", "accept-head", f"{head['seq']}:{head['mac']}"]) == cli.EXIT_OK
    assert "accepted" in capsys.readouterr().out
    accepted = [e for e in harness.audit_log().entries() if e.get("action") == "accept_head"]
    # Entry 7 is the chain alert the alarm raised in [oversight] (bot.slack.flow.oversight), written after the cut.
    assert [e["kind"] for e in harness.audit_log().entries()][6] == "alert"
    assert [(e["seq_accepted"], e["mac_accepted"]) for e in accepted] == [(7, head["mac"])]
    await flow.publish_head(harness.rt)
    kinds = [p.params["metadata"]["event_payload"] for p in head_posts(slack)]
    assert kinds[-1]["kind"] == "audit_head" and kinds[-1]["seq"] == 8 and kinds[-1]["verified"] is True
    [status] = await frs(harness, "status", user=OFFICER)
    assert "ALARM" not in texts(status)[0]


def test_accept_head_refuses_a_head_that_is_not_in_the_log(tmp_path, monkeypatch, capsys):
    from bot.cli import main as cli

    log = AuditLog.open(tmp_path, {})
    log.append("gallery_change", actor="os:admin", action="remove", subject_id="S1")
    monkeypatch.setenv("BOT_DATA_DIR", str(tmp_path))
    assert cli.main(["audit", "accept-head", "1:" + "0" * 64]) == cli.EXIT_ERROR
    with pytest.raises(SystemExit) as info:  # a usage error: one line, exit 1
        cli.main(["audit", "accept-head", "nonsense"])
    assert info.value.code == cli.EXIT_ERROR
    assert [e["kind"] for e in AuditLog.open(tmp_path, {}).entries()] == ["gallery_change"]
