"""Who may do what in Slack: requesters, command staff, gallery admins.

Guests (multi- and single-channel) and channels shared with another organisation are refused whatever
the lists say (CONTRACTS "Who may request"). Someone on no list at all (`holds_no_role`) has refused attempts
folded in the audit log (bot.audit.refusals). With nobody configured, nobody may request: the refusal says
an administrator must authorise requesters. Refusal texts come from `bot.wording`.
"""
from __future__ import annotations

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
                  fresh: bool = False) -> bool:
    if user_id in set(users):
        return True
    for group in groups:
        if user_id in await rt.group_members(group, fresh=fresh):
            return True
    return False


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
    """A trained facial examiner: listed in [review] examiners or an examiner_groups member (never a guest)."""
    review = rt.settings.review
    if await _is_guest(rt, user_id):
        return False
    return await _member(rt, user_id, review.examiners, review.examiner_groups)


async def is_supervisor(rt: Runtime, user_id: str) -> bool:
    """A supervisor who may approve searches: [review] supervisors or a supervisor_groups member (never a guest)."""
    review = rt.settings.review
    if await _is_guest(rt, user_id):
        return False
    return await _member(rt, user_id, review.supervisors, review.supervisor_groups)


async def is_gallery_admin(rt: Runtime, user_id: str) -> bool:
    """Gallery administrators (enroll, remove): listed in gallery_admins or a gallery_admin_groups member."""
    slack = rt.settings.slack
    if await _is_guest(rt, user_id):
        return False
    return await _member(rt, user_id, slack.gallery_admins, slack.gallery_admin_groups)
