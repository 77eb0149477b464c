"""Who may do what in Slack: requesters, command staff, gallery admins.

Guests (multi- and single-channel) and channels shared with another organisation are refused whatever
the lists say (CONTRACTS "Who may request"). Someone on no list at all (`holds_no_role`) has refused attempts
folded in the audit log (bot.audit.refusals). Examiners and supervisors act only on a fresh "yes" from Slack
(`may_examine`, `may_approve`), as requesters are re-checked at the attestation. With nobody configured, nobody
may request: the refusal says an administrator must authorise requesters. Refusal texts come from `bot.wording`.
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bot import wording
from bot.slack.client import LookupFailed

if TYPE_CHECKING:
    from bot.slack.runtime import Runtime


async def _account(rt: Runtime, user_id: str, fresh: bool = False) -> str:
    """"member", "guest" (guests, deactivated accounts, and users Slack does not know) or "unverified" (Slack
    could not be asked): the last two are refused, fail closed."""
    try:
        info = await rt.user_info(user_id, strict=True, fresh=fresh)
    except LookupFailed:
        return "unverified"
    if info is None or info.get("is_restricted") or info.get("is_ultra_restricted") or info.get("deleted"):
        return "guest"
    return "member"


async def _is_guest(rt: Runtime, user_id: str) -> bool:
    return await _account(rt, user_id) != "member"


async def is_member_account(rt: Runtime, user_id: str) -> bool:
    """A full member of the workspace, as Slack says now (never a guest, a deactivated or an unknown account)."""
    return await _account(rt, user_id, fresh=True) == "member"


async def _member(rt: Runtime, user_id: str, users: Iterable[str], groups: Iterable[str],
                  fresh: bool = False, strict: bool = False) -> bool:
    if user_id in set(users):
        return True
    for group in groups:
        if user_id in await rt.group_members(group, fresh=fresh, strict=strict):
            return True
    return False


async def _may_act(rt: Runtime, role: str, user_id: str, users: Iterable[str], groups: Iterable[str]) -> bool:
    """Whether `user_id` holds `role` as Slack says now: a fresh "yes" (users.info and the groups asked again) is
    needed to act; a "no" is remembered for ROLE_NO_TTL_S, refusing further presses without asking. Presses
    arriving while Slack is being asked share that answer, so a burst costs one look-up."""
    key = f"{role}:{user_id}"
    if rt.role_refusals.get(key):
        return False
    checks: dict[str, asyncio.Future[bool]] = rt.state.setdefault("role_checks", {})
    check = checks.get(key)
    if check is None:
        check = checks[key] = asyncio.ensure_future(_ask_role(rt, key, user_id, tuple(users), tuple(groups)))
        check.add_done_callback(lambda done: checks.pop(key) if checks.get(key) is done else None)
    return await asyncio.shield(check)


async def _ask_role(rt: Runtime, key: str, user_id: str, users: tuple[str, ...], groups: tuple[str, ...]) -> bool:
    account = await _account(rt, user_id, fresh=True)
    if account == "unverified":
        return False  # Slack could not be asked: refused now, asked again at the next press (not a "no")
    try:
        allowed = account == "member" and await _member(rt, user_id, users, groups, fresh=True, strict=True)
    except LookupFailed:
        return False
    if not allowed:
        rt.role_refusals.put(key, True)
    return allowed


async def can_request(
    rt: Runtime, user_id: str, channel_info: dict[str, Any] | None, *, ext_shared_hint: bool = False,
    fresh: bool = False,
) -> tuple[bool, str | None]:
    """Whether `user_id` may request a search in this channel: (True, None) or (False, refusal text).

    `ext_shared_hint` is the Events API envelope's `is_ext_shared_channel`, used when conversations.info
    is unavailable. `fresh` asks Slack again for the user and the groups (the re-check at the attestation:
    someone removed from the group, or made a guest, since the upload is refused at once).
    """
    slack = rt.settings.slack
    if ext_shared_hint or (channel_info or {}).get("is_ext_shared"):
        return False, wording.EXTERNAL_CHANNEL_REFUSED
    account = await _account(rt, user_id, fresh)
    if account == "unverified":
        return False, wording.ACCOUNT_NOT_VERIFIED  # Slack could not say who this is: not "you are a guest"
    if account == "guest":
        return False, wording.GUEST_REFUSED
    if not slack.requesters and not slack.requester_groups:
        return False, wording.NOT_AUTHORISED_NOBODY_CONFIGURED
    if await _member(rt, user_id, slack.requesters, slack.requester_groups, fresh):
        return True, None
    return False, wording.NOT_AUTHORISED


async def is_command_staff(rt: Runtime, user_id: str) -> bool:
    """Command staff (audit review, reports): listed in command_staff or a command_staff_groups member."""
    slack = rt.settings.slack
    if await _is_guest(rt, user_id):
        return False
    return await _member(rt, user_id, slack.command_staff, slack.command_staff_groups)


async def is_dispatch_source(rt: Runtime, message: dict[str, Any]) -> bool:
    """Whether a dispatch-channel message may open or take over a call's thread: from a listed CAD bot
    (`cad_bot_ids`, its bot or bot-user id), a listed dispatcher, or a `dispatcher_groups` member. With none
    of the three set, every message may (today's behaviour; the server warns at start)."""
    slack = rt.settings.slack
    if not slack.dispatch_sources_listed:
        return True
    bot_ids = set(slack.cad_bot_ids)
    if message.get("bot_id") in bot_ids or (message.get("bot_profile") or {}).get("id") in bot_ids:
        return True
    user = message.get("user")
    if not user:
        return False
    if user in bot_ids:
        return True
    return await _member(rt, str(user), slack.dispatchers, slack.dispatcher_groups)


async def holds_no_role(rt: Runtime, user_id: str) -> bool:
    """Whether `user_id` is on no list at all: not a requester, command staff or gallery admin (by id or user
    group, whatever their account). Such a person's refused attempts may be folded (bot.audit.refusals)."""
    slack = rt.settings.slack
    for users, groups in ((slack.requesters, slack.requester_groups),
                          (slack.command_staff, slack.command_staff_groups),
                          (slack.gallery_admins, slack.gallery_admin_groups)):
        if await _member(rt, user_id, users, groups):
            return False
    return True


async def is_examiner(rt: Runtime, user_id: str) -> bool:
    """A trained facial examiner: listed in [review] examiners or an examiner_groups member (never a guest), from
    cached look-ups: enough to read the queue; acting on a review asks `may_examine`."""
    review = rt.settings.review
    if await _is_guest(rt, user_id):
        return False
    return await _member(rt, user_id, review.examiners, review.examiner_groups)


async def may_examine(rt: Runtime, user_id: str) -> bool:
    """An examiner as Slack says now (claim, decision, give back, release): listed in [review] examiners or an
    examiner_groups member, a full member of the workspace (never a guest or a deactivated account)."""
    review = rt.settings.review
    return await _may_act(rt, "examiner", user_id, review.examiners, review.examiner_groups)


async def may_approve(rt: Runtime, user_id: str) -> bool:
    """A supervisor as Slack says now (approval, refusal): listed in [review] supervisors or a supervisor_groups
    member, a full member of the workspace (never a guest or a deactivated account)."""
    review = rt.settings.review
    return await _may_act(rt, "supervisor", user_id, review.supervisors, review.supervisor_groups)


async def is_gallery_admin(rt: Runtime, user_id: str) -> bool:
    """Gallery administrators (enroll, remove): listed in gallery_admins or a gallery_admin_groups member."""
    slack = rt.settings.slack
    if await _is_guest(rt, user_id):
        return False
    return await _member(rt, user_id, slack.gallery_admins, slack.gallery_admin_groups)


async def console_roles(rt: Runtime, user_id: str) -> tuple[str, ...] | None:
    """The console roles `user_id` holds as Slack says now ("command_staff", "auditor"; empty: none, or not a
    full member); None when Slack could not be asked (the caller keeps the person out and says why)."""
    account = await _account(rt, user_id, fresh=True)  # asked once: a blip is "unverified", never a revocation
    if account == "unverified":
        return None
    if account != "member":
        return ()
    slack, oversight = rt.settings.slack, rt.settings.oversight
    try:
        held = [role for role, users, groups in (
            ("command_staff", slack.command_staff, slack.command_staff_groups),
            ("auditor", oversight.auditors, oversight.auditor_groups),
        ) if await _member(rt, user_id, users, groups, fresh=True, strict=True)]
    except LookupFailed:
        return None
    return tuple(held)
