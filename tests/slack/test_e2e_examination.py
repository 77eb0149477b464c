"""End to end ([review] mode "examiner"): no candidate reaches the requester before a trained examiner claims,
decides (a note for each possible lead) and releases the review in a private review channel; ruled-out
candidates are never shown; the call-thread entry follows the release; every step is a `review` entry."""
from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from bot import wording
from bot.config import ReviewSettings
from bot.oversight import monthly, review
from bot.slack import exam_card
from bot.slack.server import review_channel_problem

from .conftest import CASE, DISPATCH, JUSTIFICATION, OFFICER, block_texts, bot_settings
from .signing import block_actions_payload, interaction_body, post, view_submission_payload

REVIEW = "CREVIEW"
EXAMINER, SECOND = "UEXAMINER1", "UEXAMINER2"
OBAMA = "people/obama/obama3.jpg"
NOTE = "ear shape, hairline and the mole under the left eye agree"


async def start(harness, slack, **review):
    slack.add_channel(REVIEW, "fr-review", is_private=True)
    slack.add_user(EXAMINER, "examiner.one", display_name="Examiner One")
    slack.add_user(SECOND, "examiner.two", display_name="Examiner Two")
    values = {"mode": "examiner", "examiners": (EXAMINER, SECOND, OFFICER), "review_channel": REVIEW}
    values.update(review)
    settings = replace(bot_settings(harness.data_dir), review=ReviewSettings(**values))
    return await harness.start(settings=settings)


def card(slack) -> dict:
    [message] = [m for m in slack.messages(REVIEW)
                 if (m.get("metadata") or {}).get("event_payload", {}).get("kind") == "examination"]
    return message


async def press(harness, slack, action: str, user: str, value_part: str = "") -> None:
    message = card(slack)
    for block in message["blocks"]:
        for el in block.get("elements") or []:
            if str(el.get("action_id", "")).startswith(action) and value_part in el.get("value", ""):
                body = block_actions_payload(action_id=el["action_id"], value=el["value"], user_id=user,
                                             channel_id=REVIEW, message=message, block_id=block["block_id"])
                reply = await post(harness.http, harness.bot.events_url, interaction_body(body))
                assert reply.status == 200
                await harness.idle()
                return
    raise AssertionError(f"no {action} {value_part} on the review card")


async def note(harness, slack, user: str, text: str):
    view = slack.views()[-1]
    values = {exam_card.NOTE_BLOCK: {exam_card.NOTE_ACTION: {"type": "plain_text_input", "value": text}}}
    reply = await post(harness.http, harness.bot.events_url,
                       interaction_body(view_submission_payload(user, view, values)))
    await harness.idle()
    return reply


async def searched(harness) -> dict:
    upload = await harness.upload(harness.face(OBAMA), text=f"26-012345 purpose: 1 justification: {JUSTIFICATION}")
    await harness.wait_card("attestation")
    await harness.reply(upload, "I attest")
    await harness.wait_kind("examination_queued")
    await harness.idle()
    return upload


def reviews(harness) -> list[dict]:
    """The `review` audit entries the servers wrote (the data dir's log, or the database's)."""
    return [e for e in harness.audit_log().entries() if e["kind"] == "review"]


async def test_an_examiner_claims_decides_with_a_note_and_releases_the_lead_to_the_requester(harness, slack):
    await start(harness, slack)
    upload = await searched(harness)
    assert harness.thread(upload, "result") == []  # no candidate before the release
    assert block_texts(harness.thread(upload, "examination_queued")[0]) == [wording.EXAM_WAITING_REQUESTER]
    [search] = harness.audit()
    assert search["outcome"] == "review"
    assert [m for m in slack.messages(DISPATCH) if m.get("thread_ts")] == []  # the log follows the release
    texts = block_texts(card(slack))
    assert texts[0] == wording.exam_card_header(search["request_id"], False) and "obama" in texts[2]

    await press(harness, slack, exam_card.ACTION_CLAIM, OFFICER)  # the requester never examines their own
    assert wording.EXAM_NOT_YOUR_OWN in slack.ephemerals(REVIEW, OFFICER)[0]["text"]
    await press(harness, slack, exam_card.ACTION_CLAIM, EXAMINER)
    assert f"Claimed by <@{EXAMINER}>" in block_texts(card(slack))[-1]
    await press(harness, slack, exam_card.ACTION_DECIDE, EXAMINER, "|possible_lead")
    short = await note(harness, slack, EXAMINER, "same")
    assert short.json()["response_action"] == "errors"  # a lead needs which features agree
    assert (await note(harness, slack, EXAMINER, NOTE)).text == ""
    recorded = slack.ephemerals(REVIEW, EXAMINER)[-1]["text"]
    assert recorded == wording.exam_decision_recorded(1, "obama", "possible_lead")  # only the claimer is told
    await press(harness, slack, exam_card.ACTION_RELEASE, EXAMINER)

    result = await harness.wait_kind("result")
    texts = block_texts(result.params)
    assert texts[0] == wording.result_caveat(True)  # the caveat first, as ever
    assert texts[1] == wording.exam_released_header(search["request_id"], 1)
    assert texts[2].startswith("1. obama") and NOTE in texts[3] and f"<@{EXAMINER}>" in texts[3]
    await harness.wait_kind("call_log")
    actions = [(e["action"], e["by"]) for e in reviews(harness)]
    assert actions == [("queued", "system"), ("claim", EXAMINER), ("decision", EXAMINER), ("release", EXAMINER)]
    decision = reviews(harness)[2]
    assert decision["decision"] == "possible_lead" and decision["note"] == NOTE and decision["subject_id"] == "obama"
    assert reviews(harness)[3]["shown"] == ["obama"]
    assert block_texts(card(slack))[-1] == wording.exam_status("released")
    # Command staff see the final outcome (the release's), each decision with who and the note.
    log = harness.audit_log()
    summary = review.request_summary(log.find(request_id=search["request_id"]))
    assert summary["outcome"] == "candidates" and summary["examination"]["leads"] == 1
    assert summary["examination"]["decisions"][0]["note"] == NOTE
    month = monthly.summarise_month(log.entries(), datetime.now(UTC).astimezone(review.zone("America/Los_Angeles"))
                                   .strftime("%Y-%m"), "America/Los_Angeles")
    assert month.by_outcome["candidates"] == 1 and month.by_outcome["review"] == 0
    assert (month.reviews_released, month.leads_released, month.candidates_ruled_out) == (1, 1, 0)
    assert "Examiner reviews released: 1 (1 leads released" in wording.report_text(month)
    assert set(slack.reactions(CASE, upload["ts"])) == {"checkered_flag"}  # finished once released


async def test_two_examiners_decide_blind_and_a_ruled_out_candidate_is_never_shown(harness, slack):
    await start(harness, slack, reviewers_required=2)
    upload = await searched(harness)
    await press(harness, slack, exam_card.ACTION_CLAIM, EXAMINER)
    await press(harness, slack, exam_card.ACTION_DECIDE, EXAMINER, "|not_same_person")
    await press(harness, slack, exam_card.ACTION_RELEASE, EXAMINER)
    assert harness.thread(upload, "result") == []  # one review is not enough
    assert "review 2 of 2" in block_texts(card(slack))[-1]
    await press(harness, slack, exam_card.ACTION_CLAIM, EXAMINER)  # not the same examiner twice
    assert wording.EXAM_SECOND_EXAMINER in slack.ephemerals(REVIEW, EXAMINER)[-1]["text"]
    await press(harness, slack, exam_card.ACTION_CLAIM, SECOND)
    # Blind: the card shows how many the claimer decided, never the first examiner's decisions.
    assert block_texts(card(slack))[-1] == wording.exam_status("claimed", claimed_by=SECOND, decided=0, total=1,
                                                              round_no=2, rounds=2)
    await press(harness, slack, exam_card.ACTION_DECIDE, SECOND, "|not_same_person")
    await press(harness, slack, exam_card.ACTION_RELEASE, SECOND)
    result = await harness.wait_kind("result")
    texts = block_texts(result.params)
    assert texts[1] == wording.exam_released_header(reviews(harness)[0]["request_id"], 0)
    assert "obama" not in " ".join(texts)  # ruled out by both: never shown
    assert reviews(harness)[-1]["ruled_out"] == 1


async def test_the_requester_can_cancel_a_review_nobody_claimed(harness, slack):
    await start(harness, slack)
    upload = await searched(harness)
    await harness.reply(upload, "cancel")
    note_call = await harness.wait_kind("examination_cancelled")
    assert block_texts(note_call.params) == [wording.EXAM_CANCELLED]
    await harness.idle()
    assert block_texts(card(slack))[-1] == wording.exam_status("cancelled")
    assert [e["action"] for e in reviews(harness)] == ["queued", "cancel"]


async def test_examiner_mode_needs_a_private_review_channel_of_the_department(harness, slack):
    slack.add_channel("CPUBLIC", "fr-review-public")
    await start(harness, slack, review_channel="CPUBLIC")
    assert "is public" in (await review_channel_problem(harness.rt))
    slack.add_channel("CSHAREDREV", "fr-review-joint", is_private=True, is_ext_shared=True)
    harness.rt.settings = replace(harness.rt.settings, review=replace(harness.rt.settings.review,
                                                                      review_channel="CSHAREDREV"))
    assert "shared with another organisation" in (await review_channel_problem(harness.rt))
    harness.rt.settings = replace(harness.rt.settings, review=replace(harness.rt.settings.review,
                                                                      review_channel=REVIEW))
    assert await review_channel_problem(harness.rt) is None


async def test_a_cli_search_queued_for_review_gets_its_card_at_the_next_tick_and_its_release_in_the_thread(
        harness, slack, monkeypatch, faces_dir):
    from bot.cli.main import main as cli
    from bot.slack import flow

    bot = await start(harness, slack)
    config = harness.data_dir.parent / "examiner.toml"
    text = (harness.request.config.rootpath / "config" / "settings.toml").read_text(encoding="utf-8")
    config.write_text(text.replace('mode = "direct"', 'mode = "examiner"')
                      .replace("examiners = []", f'examiners = ["{EXAMINER}"]')
                      .replace('review_channel = ""', f'review_channel = "{REVIEW}"'), encoding="utf-8")
    monkeypatch.setenv("BOT_CONFIG", str(config))
    harness.cli_env(monkeypatch)  # the servers' data dir, and on PostgreSQL their database and audit key
    argv = ["search", str(faces_dir / OBAMA), "--call-number", "26-012345", "--purpose", "1",
            "--justification", JUSTIFICATION, "--attest"]
    assert cli(argv) == 4
    assert slack.messages(REVIEW) == []
    await flow.tick(bot.rt)  # the server's next tick posts the card
    await harness.idle()
    await press(harness, slack, exam_card.ACTION_CLAIM, EXAMINER)
    await press(harness, slack, exam_card.ACTION_DECIDE, EXAMINER, "|inconclusive")
    await press(harness, slack, exam_card.ACTION_RELEASE, EXAMINER)
    released = await harness.wait_kind("result")
    assert released.params["channel"] == REVIEW and released.params["thread_ts"] == card(slack)["ts"]
    assert wording.exam_inconclusive(1) in block_texts(released.params)


SUPERVISOR = "USUPERVISOR1"
FLAGGED = "He is Hispanic; armed robbery at the Main St pharmacy on 11/20, store camera still of the suspect"


async def start_approval(harness, slack, approval: str = "flagged"):
    slack.add_channel(REVIEW, "fr-review", is_private=True)
    slack.add_user(SUPERVISOR, "sgt.supervisor", display_name="Sgt. Supervisor")
    review_settings = ReviewSettings(approval=approval, supervisors=(SUPERVISOR, OFFICER), review_channel=REVIEW)
    return await harness.start(settings=replace(bot_settings(harness.data_dir), review=review_settings))


def approval_card(slack) -> dict:
    [message] = [m for m in slack.messages(REVIEW)
                 if (m.get("metadata") or {}).get("event_payload", {}).get("kind") == "approval"]
    return message


async def press_approval(harness, slack, action: str, user: str) -> None:
    """Press Approve or Refuse on the approval card in the review channel (the reason form opens, or a note)."""
    message = approval_card(slack)
    block = next(b for b in message["blocks"] if b["type"] == "actions")
    button = next(e for e in block["elements"] if e["action_id"] == action)
    body = block_actions_payload(action_id=action, value=button["value"], user_id=user, channel_id=REVIEW,
                                 message=message, block_id=block["block_id"])
    assert (await post(harness.http, harness.bot.events_url, interaction_body(body))).status == 200
    await harness.idle()


async def decide_approval(harness, slack, action: str, user: str, reason: str):
    """Press the button, then submit the reason form if one opened (None when none did)."""
    await press_approval(harness, slack, action, user)
    if not slack.views():
        return None
    view = slack.views()[-1]
    values = {"fr_approval_reason_text": {"value": {"type": "plain_text_input", "value": reason}}}
    reply = await post(harness.http, harness.bot.events_url, interaction_body(view_submission_payload(user, view, values)))
    await harness.idle()
    return reply


async def test_a_flagged_request_waits_for_a_supervisor_who_approves_it_with_a_reason(harness, slack):
    await start_approval(harness, slack)
    upload = await harness.upload(harness.face(OBAMA), text=f"26-012345 purpose: 1 justification: {FLAGGED}")
    await harness.wait_card("attestation")
    await harness.reply(upload, "I attest")
    waiting = await harness.wait_kind("approval_waiting")
    assert wording.APPROVAL_REASONS["flagged"] in block_texts(waiting.params)[0]
    await harness.wait_card("awaiting_approval")
    assert harness.thread(upload, "result") == [] and harness.audit() == []  # no search before the approval
    assert await decide_approval(harness, slack, "fr_approval_approve", OFFICER, "mine") is None  # never the requester
    assert wording.SUPERVISOR_IS_REQUESTER in slack.ephemerals(REVIEW, OFFICER)[0]["text"]
    await decide_approval(harness, slack, "fr_approval_approve", SUPERVISOR, "facts stand apart from the description")
    decided = block_texts(approval_card(slack))  # why it waited stays; the decision has its own line
    assert wording.APPROVAL_REASONS["flagged"] in decided[0] and "facts stand apart" not in decided[0]
    assert decided[1:] == [wording.approval_decided(True, SUPERVISOR, "facts stand apart from the description")]
    await harness.wait_kind("result")
    await harness.done(upload)
    [search] = harness.audit()
    assert search["outcome"] == "candidates"
    approvals = reviews(harness)
    assert [(e["action"], e["by"]) for e in approvals] == [("queued", "system"), ("approve", SUPERVISOR)]
    assert approvals[1]["reason"] == "facts stand apart from the description"
    month = monthly.summarise_month(harness.audit_log().entries(), datetime.now(UTC).astimezone(
        review.zone("America/Los_Angeles")).strftime("%Y-%m"), "America/Los_Angeles")
    assert (month.approvals, month.approval_refusals) == (1, 0)
    assert "Supervisor approvals: 1 approved, 0 refused" in wording.report_text(month)


async def test_a_supervisor_refusal_ends_the_request_denied_with_the_reason(harness, slack):
    await start_approval(harness, slack, approval="always")
    upload = await harness.upload(harness.face(OBAMA), text=f"26-012345 purpose: 1 justification: {JUSTIFICATION}")
    await harness.wait_card("attestation")
    await harness.reply(upload, "I attest")
    await harness.wait_kind("approval_waiting")
    await decide_approval(harness, slack, "fr_approval_refuse", SUPERVISOR, "no nexus to the robbery")
    refusal = await harness.wait_kind("refusal")
    assert block_texts(refusal.params)[0] == wording.approval_refused_line("no nexus to the robbery")
    await harness.idle()
    [denied] = harness.audit()
    assert denied["outcome"] == "denied" and harness.thread(upload, "result") == []


async def test_frs_review_lists_open_reviews_urgent_first_for_examiners_only(harness, slack):
    from .signing import command_body

    await start(harness, slack)
    first = await searched(harness)
    urgent = await harness.upload(harness.face(OBAMA),
                                  text=f"26-012345 purpose: 2 justification: {JUSTIFICATION}")
    await harness.wait_card("attestation", count=2)
    await harness.idle()
    await harness.reply(urgent, "I attest")
    await harness.wait_kind("examination_queued", count=2)
    await harness.idle()
    reply = await post(harness.http, harness.bot.events_url, command_body("/frs", "review", EXAMINER, REVIEW))
    assert reply.status == 200
    await slack.wait_for("chat.postEphemeral", ok=True)
    await harness.idle()
    [answer] = slack.ephemerals(REVIEW, EXAMINER)
    lines = block_texts(answer)[0].splitlines()
    assert lines[0].startswith("Open examiner reviews (2)") and lines[1].startswith("URGENT · ")
    assert first["ts"] != urgent["ts"]
    await post(harness.http, harness.bot.events_url, command_body("/frs", "review", "UGROUPED1", REVIEW))
    await slack.wait_for("chat.postEphemeral", count=2, ok=True)
    await harness.idle()
    assert wording.EXAM_NOT_EXAMINER in slack.ephemerals(REVIEW, "UGROUPED1")[0]["text"]


async def test_the_comparison_sheet_goes_into_the_review_cards_thread(harness, slack):
    await start(harness, slack)
    await searched(harness)
    [sheet] = slack.uploads(REVIEW, thread_ts=card(slack)["ts"])
    assert sheet.filename.endswith("-comparison.jpg") and sheet.data.startswith(b"\xff\xd8\xff")


async def test_a_review_survives_a_restart_and_is_released_from_the_same_card(harness, slack):
    first = await start(harness, slack)
    upload = await searched(harness)
    await press(harness, slack, exam_card.ACTION_CLAIM, EXAMINER)
    await first.stop()
    settings = first.rt.settings
    await harness.start(settings=settings)  # a new process: the review and its card come from the data dir
    await press(harness, slack, exam_card.ACTION_DECIDE, EXAMINER, "|inconclusive")
    await press(harness, slack, exam_card.ACTION_RELEASE, EXAMINER)
    result = await harness.wait_kind("result")
    assert result.params["thread_ts"] == upload["ts"] and wording.exam_inconclusive(1) in block_texts(result.params)
    assert len([m for m in slack.messages(REVIEW) if (m.get("metadata") or {}).get("event_payload", {}).get(
        "kind") == "examination"]) == 1  # the same card, updated


async def test_an_unclaimed_review_pings_the_examiners_and_an_idle_claim_returns_to_the_queue(harness, slack):
    from .conftest import Clock

    clock = Clock()
    slack.add_channel(REVIEW, "fr-review", is_private=True)
    slack.add_user(EXAMINER, "examiner.one", display_name="Examiner One")
    settings = replace(bot_settings(harness.data_dir), review=ReviewSettings(
        mode="examiner", examiners=(EXAMINER,), examiner_groups=("SEXAMINERS",), review_channel=REVIEW))
    await harness.start(settings=settings, clock=clock)
    upload = await searched(harness)
    from bot.slack import flow

    clock.advance(minutes=16)
    await flow.tick(harness.rt)
    await harness.idle()
    [ping] = [m for m in slack.messages(REVIEW) if (m.get("metadata") or {}).get("event_payload", {}).get(
        "kind") == "examination_ping"]
    assert "<!subteam^SEXAMINERS>" in ping["text"]
    await press(harness, slack, exam_card.ACTION_CLAIM, EXAMINER)
    await press(harness, slack, exam_card.ACTION_GIVE_BACK, EXAMINER)
    assert block_texts(card(slack))[-1] == wording.exam_status("queued")
    await press(harness, slack, exam_card.ACTION_CLAIM, EXAMINER)
    clock.advance(minutes=31)
    await flow.tick(harness.rt)
    await harness.idle()
    assert block_texts(card(slack))[-1] == wording.exam_status("queued")  # the idle claim went back
    assert [e["action"] for e in reviews(harness)][-4:] == ["claim", "give_back", "claim", "timeout"]
    await harness.reply(upload, "status")  # the requester asks where it stands
    await slack.wait_for("chat.postEphemeral", ok=True)
    told = slack.ephemerals(CASE, OFFICER)[-1]["text"]
    assert wording.exam_status_requester("queued") in told and "Press Claim" not in told  # not the examiners' words


async def test_an_approval_nobody_gives_expires_and_says_so(harness, slack):
    from bot.slack import flow

    from .conftest import Clock

    clock = Clock()
    slack.add_channel(REVIEW, "fr-review", is_private=True)
    settings = replace(bot_settings(harness.data_dir), review=ReviewSettings(
        approval="always", supervisors=(SUPERVISOR,), review_channel=REVIEW, approval_minutes=60))
    await harness.start(settings=settings, clock=clock)
    upload = await harness.upload(harness.face(OBAMA), text=f"26-012345 purpose: 1 justification: {JUSTIFICATION}")
    await harness.wait_card("attestation")
    await harness.reply(upload, "I attest")
    await harness.wait_kind("approval_waiting")
    await harness.idle()
    clock.advance(minutes=61)
    await flow.tick(harness.rt)
    await harness.wait_kind("ended")
    await harness.idle()
    [expired] = harness.audit()
    assert expired["outcome"] == "expired"
    assert [e["action"] for e in reviews(harness)] == ["queued", "timeout"]


async def test_changes_within_a_second_give_one_redraw_of_the_card_showing_the_last_state(harness, slack):
    """Redraws of a review card are coalesced (at most one chat.update a second, the last state drawn)."""
    slack.add_channel(REVIEW, "fr-review", is_private=True)
    slack.add_user(EXAMINER, "examiner.one", display_name="Examiner One")
    settings = replace(bot_settings(harness.data_dir), review=ReviewSettings(
        mode="examiner", examiners=(EXAMINER,), review_channel=REVIEW))
    await harness.start(settings=settings, status_interval=1.0)
    await searched(harness)
    await press(harness, slack, exam_card.ACTION_CLAIM, EXAMINER)
    def card_updates() -> int:
        return len([c for c in slack.call_log("chat.update") if c.params.get("channel") == REVIEW])

    updates = card_updates()
    message = card(slack)
    block = next(b for b in message["blocks"]
                 if any("|inconclusive" in str(e.get("value")) for e in b.get("elements") or []))
    for decision in ("not_same_person", "inconclusive", "not_same_person", "inconclusive", "inconclusive"):
        button = next(e for e in block["elements"] if e["value"].endswith("|" + decision))
        body = block_actions_payload(action_id=button["action_id"], value=button["value"], user_id=EXAMINER,
                                     channel_id=REVIEW, message=message, block_id=block["block_id"])
        assert (await post(harness.http, harness.bot.events_url, interaction_body(body))).status == 200
    await harness.idle()
    assert len([e for e in reviews(harness) if e["action"] == "decision"]) == 5
    assert card_updates() - updates <= 2  # five changes, at most two redraws
    assert block_texts(card(slack))[-1] == wording.exam_status("claimed", claimed_by=EXAMINER, decided=1, total=1,
                                                              round_no=1, rounds=1)


async def test_frs_audit_counts_what_was_released_to_the_requester(harness, slack, faces_dir, face_engine, tmp_path):
    """Two candidates reach the examiner (a second photo of the same man enrolled as another subject); one lead
    is released and one ruled out: `/frs audit` says one candidate, and that one was ruled out."""
    import os

    from bot.faces.enroll import enroll

    from .signing import command_body

    slack.add_channel(REVIEW, "fr-review", is_private=True)
    slack.add_user(EXAMINER, "examiner.one", display_name="Examiner One")
    slack.add_user("UCAPTAIN1", "captain.reyes", display_name="Capt. Reyes")
    settings = replace(bot_settings(harness.data_dir, command_staff=("UCAPTAIN1",)), review=ReviewSettings(
        mode="examiner", examiners=(EXAMINER,), review_channel=REVIEW))
    await harness.start(settings=settings)
    (tmp_path / "more" / "obama_twin").mkdir(parents=True)
    os.symlink(faces_dir / "people" / "obama" / "obama1.jpg", tmp_path / "more" / "obama_twin" / "obama1.jpg")
    # Enrolled into the servers' gallery (its files, or the database's) while they run: the next search sees it.
    with harness.backend().gallery() as gallery:
        assert enroll(gallery, face_engine, tmp_path / "more", progress=False).added == 1
    await searched(harness)
    assert sorted(c["subject_id"] for c in harness.audit()[0]["candidates"]) == ["obama", "obama_twin"]
    await press(harness, slack, exam_card.ACTION_CLAIM, EXAMINER)
    await press(harness, slack, exam_card.ACTION_DECIDE, EXAMINER, "obama|possible_lead")
    await note(harness, slack, EXAMINER, NOTE)
    await press(harness, slack, exam_card.ACTION_DECIDE, EXAMINER, "obama_twin|not_same_person")
    await press(harness, slack, exam_card.ACTION_RELEASE, EXAMINER)
    await harness.wait_kind("result")
    reply = await post(harness.http, harness.bot.events_url, command_body("/frs", "audit 26-012345", "UCAPTAIN1", CASE))
    assert reply.status == 200
    answer = await slack.wait_for(lambda c: c.method == "chat.postEphemeral" and c.params.get("user") == "UCAPTAIN1",
                                  ok=True)
    [line] = block_texts(answer.params)[1].splitlines()
    assert line.endswith("candidates returned, 1 candidate, 1 ruled out by the examiners")
