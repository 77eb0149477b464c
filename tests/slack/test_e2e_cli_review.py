"""End to end, the command line under second-person controls: `python -m bot search` in examiner mode or with
supervisor approval prints no candidate and exits 4; the server posts the card from the queue at its next tick;
the release (or, once approved, the result) goes to the Slack account the OS user is mapped to
(`[review] cli_slack_users`), else to the review channel; the mapped account can neither approve nor examine
its own search."""
from __future__ import annotations

import json
import os
import pwd

from bot import wording
from bot.cli.main import main as cli
from bot.slack import exam_card, flow
from tests.conftest import CLI_PERSON

from .conftest import JUSTIFICATION, OFFICER, block_texts
from .test_e2e_examination import (
    EXAMINER,
    FLAGGED,
    OBAMA,
    REVIEW,
    SUPERVISOR,
    approval_card,
    card,
    decide_approval,
    press,
    reviews,
)
from .test_e2e_frs import frs

ANALYST = "UANALYST1"  # the Slack account of the OS user running the tests
OS_USER = CLI_PERSON  # the person behind the account the tests run as (tests/conftest.py)
ACCOUNT = pwd.getpwuid(os.getuid()).pw_name


def write_config(harness, monkeypatch, review: dict) -> None:
    """A settings file for the CLI, the same [review] the server runs with (the data dir shared, and on
    PostgreSQL the database)."""
    def toml(value) -> str:
        if isinstance(value, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items()) + " }"
        return json.dumps(list(value) if isinstance(value, tuple) else value)

    lines = "\n".join(f"{k} = {toml(v)}" for k, v in review.items())
    config = harness.data_dir.parent / "cli.toml"
    config.write_text(f"[review]\n{lines}\n", encoding="utf-8")
    monkeypatch.setenv("BOT_CONFIG", str(config))
    harness.cli_env(monkeypatch)


async def start(harness, slack, monkeypatch, *, mapped: bool = True, **review):
    from dataclasses import replace

    from bot.config import ReviewSettings

    from .conftest import bot_settings

    slack.add_channel(REVIEW, "fr-review", is_private=True)
    for user, name in ((EXAMINER, "examiner.one"), (SUPERVISOR, "sgt.supervisor"), (ANALYST, "analyst.one")):
        slack.add_user(user, name, display_name=name)
    values = {"review_channel": REVIEW, **review}
    if mapped:
        values["cli_slack_users"] = {OS_USER: ANALYST}
    settings = replace(bot_settings(harness.data_dir), review=ReviewSettings(**values))
    write_config(harness, monkeypatch, values)
    return await harness.start(settings=settings, clock=review_clock(harness))


def review_clock(harness):
    from .conftest import Clock

    harness.clock = Clock()
    return harness.clock


def search(faces_dir, capsys, justification: str = JUSTIFICATION) -> tuple[int, dict]:
    capsys.readouterr()
    code = cli(["search", str(faces_dir / OBAMA), "--call-number", "26-012345", "--purpose", "1",
                "--justification", justification, "--attest", "--json"])
    return code, json.loads(capsys.readouterr().out)


def pending(harness):
    """The CLI requests kept for a supervisor, as the servers' store holds them."""
    store = harness.backend().approvals()
    try:
        return store.all()
    finally:
        store.close()


async def test_an_approved_cli_search_runs_on_the_server_and_its_result_goes_to_the_mapped_slack_account(
        harness, slack, monkeypatch, faces_dir, capsys):
    bot = await start(harness, slack, monkeypatch, approval="always", supervisors=(SUPERVISOR, ANALYST))
    code, out = search(faces_dir, capsys)
    assert code == 4 and out["reason"] == "always" and out["awaiting_approval"].startswith("FR-")
    rid = out["awaiting_approval"]
    assert harness.audit() == []  # no search before the approval
    [waiting] = pending(harness)
    assert waiting.status == "pending" and len(waiting.encoding) == 128 and waiting.face_jpeg
    await flow.tick(bot.rt)  # the server's next tick posts the approval card
    await harness.idle()
    assert f"<@{ANALYST}>" in block_texts(approval_card(slack))[0]
    # The analyst is a supervisor too, but never of their own search (their Slack account is mapped).
    assert await decide_approval(harness, slack, "fr_approval_approve", ANALYST, "mine") is None
    assert wording.SUPERVISOR_IS_REQUESTER in slack.ephemerals(REVIEW, ANALYST)[0]["text"]
    await decide_approval(harness, slack, "fr_approval_approve", SUPERVISOR, "facts stand on their own")
    result = await harness.wait_kind("result", request_id=rid)
    assert result.params["channel"] == "D" + ANALYST  # a direct message to the mapped account
    texts = block_texts(result.params)
    assert texts[0] == wording.result_caveat(True)  # caveat first
    [entry] = harness.audit()
    assert entry["request_id"] == rid and entry["outcome"] == "candidates" and entry["source"] == "cli"
    assert entry["requester"]["id"] == f"os:{OS_USER}" and entry["image_name"] == "obama3.jpg"
    assert "requester_label" not in entry and "cli" not in entry  # the card's routing stays out of the record
    assert [(e["action"], e["by"]) for e in reviews(harness)] == [("queued", "system"), ("approve", SUPERVISOR)]
    [done] = pending(harness)
    assert done.status == "searched" and done.encoding is None and not done.face_jpeg  # no template kept
    capsys.readouterr()
    assert cli(["status", rid]) == 0 and f"Approved by {SUPERVISOR} and searched" in capsys.readouterr().out
    assert wording.approval_decided(True, SUPERVISOR, "facts stand on their own") in block_texts(approval_card(slack))
    await flow.tick(bot.rt)  # a later tick runs nothing again
    await harness.idle()
    assert len(harness.audit()) == 1


async def test_a_refused_cli_search_ends_denied_and_an_unanswered_one_expires_in_the_review_channel(
        harness, slack, monkeypatch, faces_dir, capsys):
    bot = await start(harness, slack, monkeypatch, mapped=False, approval="flagged", supervisors=(SUPERVISOR,),
                      approval_minutes=60)
    code, out = search(faces_dir, capsys, FLAGGED)  # names a protected class: flagged
    assert code == 4 and out["reason"] == "flagged"
    refused_id = out["awaiting_approval"]
    code, out = search(faces_dir, capsys, FLAGGED)
    expired_id = out["awaiting_approval"]
    assert search(faces_dir, capsys)[0] == 0  # not flagged: searched at once, as without approval
    await flow.tick(bot.rt)
    await harness.idle()
    cards = [m for m in slack.messages(REVIEW) if (m.get("metadata") or {}).get("event_payload", {}).get("kind")
             == "approval"]
    assert len(cards) == 2 and wording.cli_requester_label(wording.cli_person_name(OS_USER, ACCOUNT, os.getuid(), "sudo")) in block_texts(cards[0])[0]
    [status] = await frs(harness, "status", user=OFFICER)
    assert wording.approval_queue_status(2) in block_texts(status.params)[0]
    first = next(c for c in cards if c["metadata"]["event_payload"]["request_id"] == refused_id)
    block = next(b for b in first["blocks"] if b["type"] == "actions")
    from .signing import block_actions_payload, interaction_body, post, view_submission_payload

    body = block_actions_payload(action_id="fr_approval_refuse", value="cli:" + refused_id, user_id=SUPERVISOR,
                                 channel_id=REVIEW, message=first, block_id=block["block_id"])
    assert (await post(harness.http, harness.bot.events_url, interaction_body(body))).status == 200
    await harness.idle()
    values = {"fr_approval_reason_text": {"value": {"type": "plain_text_input", "value": "no nexus shown"}}}
    await post(harness.http, harness.bot.events_url,
               interaction_body(view_submission_payload(SUPERVISOR, slack.views()[-1], values)))
    ended = await harness.wait_kind("approval_ended", request_id=refused_id)
    assert ended.params["channel"] == REVIEW and ended.params["thread_ts"] == first["ts"]  # unmapped
    assert wording.approval_refused_line("no nexus shown") in block_texts(ended.params)[0]
    harness.clock.advance(minutes=61)
    await flow.tick(bot.rt)
    await harness.wait_kind("approval_ended", request_id=expired_id)
    await harness.idle()
    outcomes = {e["request_id"]: e["outcome"] for e in harness.audit()}
    assert (outcomes[refused_id], outcomes[expired_id]) == ("denied", "expired")
    actions = [(e["request_id"], e["action"]) for e in reviews(harness)]
    assert (refused_id, "refuse") in actions and (expired_id, "timeout") in actions
    assert all(p.encoding is None for p in pending(harness))  # refused or expired: no template kept


async def test_a_cli_review_gets_its_comparison_sheet_and_its_release_goes_to_the_mapped_account(
        harness, slack, monkeypatch, faces_dir, capsys, tmp_path):
    bot = await start(harness, slack, monkeypatch, mode="examiner", examiners=(EXAMINER, ANALYST))
    if harness.on_postgresql:  # the analyst's workstation is another machine: the sheet reaches the server by the database
        monkeypatch.setenv("BOT_DATA_DIR", str(tmp_path / "workstation"))
    code, out = search(faces_dir, capsys)
    assert code == 4 and out == {"queued_for_review": out["queued_for_review"]}
    rid = out["queued_for_review"]
    sheets = harness.backend().sheets()  # beside the cached probe faces (files), or in the database
    sheet = sheets.get(rid)
    assert sheet[:3] == b"\xff\xd8\xff"  # made by the CLI, where the photo is
    await flow.tick(bot.rt)
    await harness.idle()
    [upload] = slack.uploads(REVIEW, thread_ts=card(slack)["ts"])
    assert upload.filename == f"{rid}-comparison.jpg" and upload.data == sheet  # the CLI's sheet, posted
    assert sheets.get(rid) is None  # then not kept
    assert f"<@{ANALYST}>" in " ".join(block_texts(card(slack)))
    await press(harness, slack, exam_card.ACTION_CLAIM, ANALYST)  # the requester's own Slack account
    assert wording.EXAM_NOT_YOUR_OWN in slack.ephemerals(REVIEW, ANALYST)[-1]["text"]
    await press(harness, slack, exam_card.ACTION_CLAIM, EXAMINER)
    capsys.readouterr()
    assert cli(["status", rid]) == 0 and f"Claimed by {EXAMINER}: 0 of 1" in capsys.readouterr().out  # no <@…>
    await press(harness, slack, exam_card.ACTION_DECIDE, EXAMINER, "|inconclusive")
    await press(harness, slack, exam_card.ACTION_RELEASE, EXAMINER)
    released = await harness.wait_kind("result", request_id=rid)
    assert released.params["channel"] == "D" + ANALYST
    assert wording.exam_inconclusive(1) in block_texts(released.params)


async def test_an_approved_cli_search_in_examiner_mode_is_queued_and_its_approver_cannot_examine_it(
        harness, slack, monkeypatch, faces_dir, capsys):
    bot = await start(harness, slack, monkeypatch, mode="examiner", examiners=(EXAMINER, SUPERVISOR),
                      approval="always", supervisors=(SUPERVISOR,))
    code, out = search(faces_dir, capsys)
    assert code == 4 and "awaiting_approval" in out
    await flow.tick(bot.rt)
    await harness.idle()
    await decide_approval(harness, slack, "fr_approval_approve", SUPERVISOR, "approved: robbery series")
    await harness.wait_kind("examination", request_id=out["awaiting_approval"])
    await harness.idle()
    [entry] = harness.audit()
    assert entry["outcome"] == "review"
    assert slack.uploads(REVIEW, thread_ts=card(slack)["ts"])  # the comparison sheet, from the kept face crop
    await press(harness, slack, exam_card.ACTION_CLAIM, SUPERVISOR)
    assert wording.EXAM_APPROVER in slack.ephemerals(REVIEW, SUPERVISOR)[-1]["text"]


async def test_the_unclaimed_review_of_an_approved_cli_request_can_be_cancelled_once(
        harness, slack, monkeypatch, faces_dir, capsys):
    bot = await start(harness, slack, monkeypatch, mode="examiner", examiners=(EXAMINER,), approval="always",
                      supervisors=(SUPERVISOR,))
    rid = search(faces_dir, capsys)[1]["awaiting_approval"]
    await flow.tick(bot.rt)
    await harness.idle()
    await decide_approval(harness, slack, "fr_approval_approve", SUPERVISOR, "approved: robbery series")
    await harness.wait_kind("examination", request_id=rid)
    await harness.idle()
    capsys.readouterr()
    assert cli(["status", rid]) == 0  # the requester is told where it stands in their own words
    said = capsys.readouterr().out
    assert "Press Claim" not in said and said.strip() == f"{rid}: {wording.exam_status_requester('queued')}"
    assert cli(["cancel", rid]) == 0, capsys.readouterr().err  # searched and waiting unclaimed: withdrawable
    assert wording.cli_cancelled(rid) in capsys.readouterr().out
    assert cli(["cancel", rid]) == 1  # once: and nobody "started" it
    err = capsys.readouterr().err
    assert wording.EXAM_CANCEL_TOO_LATE not in err and wording.EXAM_CANCEL_ALREADY in err
    await flow.tick(bot.rt)
    await harness.idle()
    assert wording.exam_status("cancelled") in block_texts(card(slack))
    assert not [b for b in card(slack)["blocks"] if b["type"] == "actions"]
    cancels = [(e["request_id"], e["by"]) for e in reviews(harness) if e["action"] == "cancel"]
    assert cancels == [(rid, f"os:{OS_USER}")]


async def test_an_approval_recorded_just_before_a_restart_is_searched_by_the_next_tick_once(
        harness, slack, monkeypatch, faces_dir, capsys):
    from datetime import UTC, datetime

    from bot.controls import approval

    bot = await start(harness, slack, monkeypatch, approval="always", supervisors=(SUPERVISOR,))
    code, out = search(faces_dir, capsys)
    rid = out["awaiting_approval"]
    assert code == 4
    store = harness.backend().approvals()
    try:  # the approval was stored, then the server stopped before its search ran
        store.update(rid, lambda p: approval.decide(p, approved=True, by=SUPERVISOR, reason="ok",
                                                    now=datetime.now(UTC)))
    finally:
        store.close()
    await flow.tick(bot.rt)
    result = await harness.wait_kind("result", request_id=rid)
    assert result.params["channel"] == "D" + ANALYST
    await flow.tick(bot.rt)
    await harness.idle()
    assert [e["request_id"] for e in harness.audit()] == [rid]  # searched once
    assert [p.status for p in pending(harness)] == ["searched"]


async def test_a_result_for_a_mapped_account_that_became_a_guest_goes_to_the_review_channel(
        harness, slack, monkeypatch, faces_dir, capsys):
    bot = await start(harness, slack, monkeypatch, approval="always", supervisors=(SUPERVISOR,))
    slack.add_user(ANALYST, "analyst.one", restricted=True)  # made a guest since the mapping was written
    code, out = search(faces_dir, capsys)
    assert code == 4
    await flow.tick(bot.rt)
    await harness.idle()
    await decide_approval(harness, slack, "fr_approval_approve", SUPERVISOR, "ok")
    result = await harness.wait_kind("result", request_id=out["awaiting_approval"])
    assert result.params["channel"] == REVIEW and result.params["thread_ts"] == approval_card(slack)["ts"]
    assert slack.calls("conversations.open") == []  # no direct message to a guest


async def test_the_cli_requester_cancels_a_request_waiting_for_approval_or_an_unclaimed_review(
        harness, slack, monkeypatch, faces_dir, capsys):
    bot = await start(harness, slack, monkeypatch, mode="examiner", examiners=(EXAMINER,), approval="flagged",
                      supervisors=(SUPERVISOR,))
    waiting = search(faces_dir, capsys, FLAGGED)[1]["awaiting_approval"]
    queued = search(faces_dir, capsys)[1]["queued_for_review"]
    await flow.tick(bot.rt)
    await harness.idle()
    sheets = harness.backend().sheets()
    sheets.put(queued, b"left behind")  # as if the server had not posted it yet
    capsys.readouterr()
    assert cli(["status", waiting, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"request_id": waiting, "approval": "pending", "decided_by": None}
    assert cli(["status", queued]) == 0
    assert capsys.readouterr().out.strip() == f"{queued}: {wording.exam_status_requester('queued')}"
    assert cli(["cancel", waiting, "--json"]) == 0 and json.loads(capsys.readouterr().out) == {"cancelled": waiting}
    assert cli(["cancel", queued]) == 0 and sheets.get(queued) is None  # the photo's face is not kept
    assert cli(["cancel", waiting]) == 1  # once
    assert wording.cli_cancel_too_late("cancelled") in capsys.readouterr().err
    assert cli(["cancel", queued]) == 1  # once: no examiner ever started it
    assert wording.EXAM_CANCEL_ALREADY in capsys.readouterr().err
    assert cli(["cancel", "FR-NOSUCH0000"]) == 1
    assert cli(["status", "FR-NOSUCH0000"]) == 1
    capsys.readouterr()
    assert cli(["status", waiting]) == 0 and wording.cli_approval_status("cancelled", "", "") in capsys.readouterr().out
    await flow.tick(bot.rt)  # the server redraws both cards: no buttons left
    await harness.idle()
    assert block_texts(approval_card(slack))[-1] == wording.APPROVAL_CANCELLED
    assert not [b for b in approval_card(slack)["blocks"] if b["type"] == "actions"]
    assert not [b for b in card(slack)["blocks"] if b["type"] == "actions"]
    assert wording.exam_status("cancelled") in block_texts(card(slack))
    # A press that was already on its way (an old client still showing the buttons) records nothing.
    from .signing import block_actions_payload, interaction_body, post, view_submission_payload

    body = block_actions_payload(action_id="fr_approval_approve", value="cli:" + waiting, user_id=SUPERVISOR,
                                 channel_id=REVIEW, message=approval_card(slack), block_id="approval")
    assert (await post(harness.http, harness.bot.events_url, interaction_body(body))).status == 200
    await harness.idle()
    values = {"fr_approval_reason_text": {"value": {"type": "plain_text_input", "value": "late"}}}
    reply = await post(harness.http, harness.bot.events_url,
                       interaction_body(view_submission_payload(SUPERVISOR, slack.views()[-1], values)))
    assert wording.APPROVAL_CLOSED in reply.text
    # The waiting one never searched and ends cancelled; the queued one's search stays, and its review is cancelled.
    assert sorted((e["request_id"], e["outcome"]) for e in harness.audit()) == sorted(
        [(waiting, "cancelled"), (queued, "review")])
    cancels = [(e["request_id"], e["action"], e["by"]) for e in reviews(harness) if e["action"] == "cancel"]
    assert cancels == [(waiting, "cancel", f"os:{OS_USER}"), (queued, "cancel", f"os:{OS_USER}")]
    assert [p.encoding for p in pending(harness)] == [None]
