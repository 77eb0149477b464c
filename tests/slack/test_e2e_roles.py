"""Who may do what (bot.slack.roles), asked of the Slack double over HTTP through the bot's runtime."""
from __future__ import annotations

import asyncio
from dataclasses import replace

from bot import wording
from bot.config import ReviewSettings
from bot.slack import exam_card, roles

from .conftest import (
    GROUP,
    GROUP_MEMBER,
    GUEST,
    JUSTIFICATION,
    OFFICER,
    OFFICER2,
    SHARED,
    block_texts,
    bot_settings,
)
from .signing import block_actions_payload, interaction_body, post, view_submission_payload
from .test_e2e_examination import (
    EXAMINER,
    OBAMA,
    REVIEW,
    SUPERVISOR,
    card,
    press,
    press_approval,
    reviews,
    searched,
)
from .test_e2e_examination import start as start_examiner


async def test_requesters_by_list_and_group_and_the_refusals(harness, slack):
    await harness.start(gallery=False)
    rt = harness.rt
    case = await rt.channel_info("CCASE1")
    assert await roles.can_request(rt, OFFICER, case) == (True, None)
    assert await roles.can_request(rt, GROUP_MEMBER, case) == (True, None)
    assert await roles.can_request(rt, OFFICER2, case) == (False, wording.NOT_AUTHORISED)
    assert await roles.can_request(rt, GUEST, case) == (False, wording.GUEST_REFUSED)
    assert await roles.can_request(rt, "UNKNOWN1", case) == (False, wording.GUEST_REFUSED)  # fail closed
    shared = await rt.channel_info(SHARED)
    assert await roles.can_request(rt, OFFICER, shared) == (False, wording.EXTERNAL_CHANNEL_REFUSED)
    assert (await roles.can_request(rt, OFFICER, None, ext_shared_hint=True))[0] is False


async def test_command_staff_and_gallery_admins(harness, slack):
    await harness.start(gallery=False, command_staff=(OFFICER,), gallery_admin_groups=(GROUP,),
                        command_staff_groups=(), gallery_admins=(GUEST,))
    rt = harness.rt
    assert await roles.is_command_staff(rt, OFFICER) and not await roles.is_command_staff(rt, OFFICER2)
    assert await roles.is_gallery_admin(rt, GROUP_MEMBER) and not await roles.is_gallery_admin(rt, OFFICER)
    assert not await roles.is_gallery_admin(rt, GUEST)  # a guest, whatever the list says


async def test_group_membership_is_cached(harness, slack):
    await harness.start(gallery=False)
    for _ in range(3):
        assert await roles.can_request(harness.rt, GROUP_MEMBER, {}) == (True, None)
    assert len(slack.call_log("usergroups.users.list")) == 1


async def test_a_requester_removed_before_attesting_gets_no_search(harness, slack):
    """Authority is checked again at the attestation, before any search (the faces were found already, nothing
    was encoded or searched)."""
    await harness.start()
    upload = await harness.upload(harness.face("people/obama/obama3.jpg"), text="26-012345 purpose: 1")
    await harness.wait_card("justification")
    await harness.reply(upload, JUSTIFICATION)
    await harness.wait_card("attestation")
    await harness.idle()  # the faces are found (one read of the photo) before the officer attests
    rt = harness.rt
    rt.settings = replace(rt.settings, slack=replace(rt.settings.slack, requesters=(), requester_groups=()))
    await harness.reply(upload, "I attest")
    refusal = await harness.wait_kind("refusal")
    await harness.idle()
    assert block_texts(refusal.params)[0] == wording.NOT_AUTHORISED_NOBODY_CONFIGURED
    [entry] = harness.audit()
    assert entry["outcome"] == "denied" and entry["justification"] == JUSTIFICATION
    assert len(slack.downloads()) == 1 and rt.store.active() == []  # read once to find faces; never encoded
    assert harness.thread(upload, "result") == [] and rt.probes.get(entry["request_id"]) is None


async def test_a_group_member_removed_and_made_a_guest_after_uploading_cannot_attest(harness, slack):
    """The re-check at the attestation asks Slack afresh (no cached user or group data): removed from the
    requester group and made a guest a minute after the upload, the officer gets no search."""
    await harness.start()
    upload = await harness.upload(harness.face("people/obama/obama3.jpg"), user=GROUP_MEMBER,
                                  text="26-012345 purpose: 1")
    await harness.wait_card("justification")
    await harness.reply(upload, JUSTIFICATION, user=GROUP_MEMBER)
    await harness.wait_card("attestation")
    await harness.idle()
    slack.add_usergroup(GROUP, [])  # removed from the group...
    slack.add_user(GROUP_MEMBER, "officer.grouped", restricted=True, display_name="Ofc. Grouped")  # ...and a guest
    await harness.reply(upload, "I attest", user=GROUP_MEMBER)
    refusal = await harness.wait_kind("refusal")
    await harness.idle()
    assert block_texts(refusal.params)[0] == wording.GUEST_REFUSED
    [entry] = harness.audit()
    assert entry["outcome"] == "denied"
    assert len(slack.downloads()) == 1 and harness.thread(upload, "result") == []


# --- examiners and supervisors: a fresh "yes" to act, a remembered "no" without a flood (issue 15, 3 and 5) ---

LOOKUPS = ("users.info", "usergroups.users.list")


async def test_300_presses_by_a_member_who_is_no_examiner_redraw_nothing_and_ask_slack_at_most_5_times(
        harness, slack):
    """Each refused press is a private note only: the card is not redrawn (Slack's chat.update budget stays
    for the officers' cards), and the first "no" from Slack is remembered (asked again at most once a minute)."""
    slack.add_usergroup("SEXAMINERS", [EXAMINER])
    await start_examiner(harness, slack, examiner_groups=("SEXAMINERS",))
    await searched(harness)
    await harness.idle()
    slack.clear_calls()
    message = card(slack)
    block = next(b for b in message["blocks"] if any(str(e.get("action_id", "")).startswith(exam_card.ACTION_CLAIM)
                                                     for e in b.get("elements") or []))
    claim = next(e for e in block["elements"] if str(e.get("action_id", "")).startswith(exam_card.ACTION_CLAIM))

    async def flood(n: int) -> None:
        for _ in range(n):
            body = block_actions_payload(action_id=claim["action_id"], value=claim["value"], user_id=OFFICER2,
                                         channel_id=message["channel"], message=message,
                                         block_id=block["block_id"])
            assert (await post(harness.http, harness.bot.events_url, interaction_body(body))).status == 200

    await asyncio.gather(*(flood(30) for _ in range(10)))  # 300 presses, ten at a time
    await harness.idle()
    await slack.wait_for("chat.postEphemeral", count=300, ok=True)
    assert len(slack.call_log("chat.update")) == 0
    assert sum(len(slack.call_log(m)) for m in LOOKUPS) <= 5
    assert all(wording.EXAM_NOT_EXAMINER in e["text"] for e in slack.ephemerals(message["channel"], OFFICER2))
    await press(harness, slack, exam_card.ACTION_CLAIM, EXAMINER)  # the examiner's card is redrawn as ever
    assert f"Claimed by <@{EXAMINER}>" in block_texts(card(slack))[-1]


async def test_an_examiner_removed_from_the_group_after_claiming_cannot_release(harness, slack):
    slack.add_usergroup("SEXAMINERS", [EXAMINER])
    await start_examiner(harness, slack, examiners=(), examiner_groups=("SEXAMINERS",))
    await searched(harness)
    await press(harness, slack, exam_card.ACTION_CLAIM, EXAMINER)
    await press(harness, slack, exam_card.ACTION_DECIDE, EXAMINER, "|inconclusive")
    slack.add_usergroup("SEXAMINERS", [])  # removed a moment ago: the group members cached say otherwise
    await press(harness, slack, exam_card.ACTION_RELEASE, EXAMINER)
    assert wording.EXAM_NOT_EXAMINER in slack.ephemerals(REVIEW, EXAMINER)[-1]["text"]
    assert [e["action"] for e in reviews(harness)] == ["queued", "claim", "decision"]


async def test_a_supervisor_removed_from_the_group_and_deactivated_is_refused_at_once(harness, slack):
    """The supervisor opened the reason form, then lost the role: the decision is refused, nothing approved."""
    slack.add_channel(REVIEW, "fr-review", is_private=True)
    slack.add_user(SUPERVISOR, "sgt.supervisor", display_name="Sgt. Supervisor")
    slack.add_usergroup("SSUPERVISORS", [SUPERVISOR])
    review_settings = ReviewSettings(approval="always", supervisor_groups=("SSUPERVISORS",), review_channel=REVIEW)
    await harness.start(settings=replace(bot_settings(harness.data_dir), review=review_settings))
    upload = await harness.upload(harness.face(OBAMA), text=f"26-012345 purpose: 1 justification: {JUSTIFICATION}")
    await harness.wait_card("attestation")
    await harness.reply(upload, "I attest")
    await harness.wait_kind("approval_waiting")
    await harness.idle()
    await press_approval(harness, slack, "fr_approval_approve", SUPERVISOR)
    [form] = slack.views()  # the reason form is open
    slack.add_usergroup("SSUPERVISORS", [])
    slack.deactivate_user(SUPERVISOR)
    values = {"fr_approval_reason_text": {"value": {"type": "plain_text_input", "value": "approved, robbery"}}}
    reply = await post(harness.http, harness.bot.events_url,
                       interaction_body(view_submission_payload(SUPERVISOR, form, values)))
    await harness.idle()
    assert reply.text and reply.json()["errors"] == {"fr_approval_reason_text": wording.NOT_SUPERVISOR}
    entries = [e for e in harness.audit_log().entries() if e["kind"] == "review"]
    assert [e["action"] for e in entries] == ["queued"] and harness.audit() == []
    await press_approval(harness, slack, "fr_approval_refuse", SUPERVISOR)  # the button: a note, no form
    assert len(slack.views()) == 1
    assert wording.NOT_SUPERVISOR in slack.ephemerals(REVIEW, SUPERVISOR)[-1]["text"]


async def test_a_remembered_no_is_asked_again_once_it_lapses(harness, slack):
    """A member refused a moment ago and then added to the examiners' group is refused without a look-up until
    the remembered "no" lapses (a minute; shortened here), then Slack is asked and says yes."""
    slack.add_usergroup("SEXAMINERS", [EXAMINER])
    await start_examiner(harness, slack, examiner_groups=("SEXAMINERS",))
    await searched(harness)
    harness.rt.role_refusals.ttl = 0.5
    await press(harness, slack, exam_card.ACTION_CLAIM, OFFICER2)
    slack.add_usergroup("SEXAMINERS", [EXAMINER, OFFICER2])
    slack.clear_calls()
    await press(harness, slack, exam_card.ACTION_CLAIM, OFFICER2)
    assert [c for c in slack.call_log() if c.method in LOOKUPS] == []
    assert len(slack.ephemerals(REVIEW, OFFICER2)) == 2 and reviews(harness)[-1]["action"] == "queued"
    await asyncio.sleep(0.6)
    await press(harness, slack, exam_card.ACTION_CLAIM, OFFICER2)
    assert reviews(harness)[-1]["action"] == "claim" and reviews(harness)[-1]["by"] == OFFICER2
