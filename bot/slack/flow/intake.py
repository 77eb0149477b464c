"""The intake stage: a photo posted in a case channel opens a request (after the guards); dispatch-channel
messages are indexed for call numbers.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot import refusals, request, service, wording
from bot.slack import blocks, roles
from bot.slack.calls import SLACK_ERRORS, error_text, message_text
from bot.slack.flow.dialog import apply, refuse
from bot.slack.flow.effects import EYES, claim, from_bot, is_image, post, react

if TYPE_CHECKING:
    from bot.slack.runtime import Runtime

log = logging.getLogger(__name__)

async def handle_upload(rt: Runtime, body: dict[str, Any], dialog_id: str | None = None) -> None:
    """A message with files: one request per image in a case channel, after the guards.

    Uploads posted as thread replies get a note and start nothing (`dialog_id` is then that thread's dialog).
    """
    event = body.get("event") or {}
    if from_bot(rt, event):
        return
    channel, user, ts = event.get("channel"), event.get("user"), event.get("ts")
    files = [f for f in event.get("files") or [] if isinstance(f, dict) and f.get("id")]
    if not (channel and user and ts and files):
        return
    if not await rt.is_case_channel(channel):
        return  # uploads outside case channels are none of the bot's business
    # Dedupe: Slack redelivers events (X-Slack-Retry-Num, Socket Mode reconnects); one event or one file
    # never starts a second request.
    event_id = body.get("event_id") or f"{channel}:{ts}"
    if event.get("thread_ts") not in (None, ts):
        # A photo posted as a reply: a thread belongs to a running request or to someone's conversation, so
        # it never starts a request there. Say so once, instead of staying silent.
        if await claim(rt, f"message:{channel}:{ts}"):  # by message: a new envelope is still a redelivery
            await post(rt, channel, event["thread_ts"], blocks.note(wording.UPLOAD_IN_THREAD, kind="upload_in_thread"))
        return
    if not await claim(rt, f"event:{event_id}"):
        return
    # The same message under a new envelope (a Socket Mode reconnect) is a redelivery: silent. A new message
    # sharing a file that already had its request gets a note naming that request.
    first_delivery = await claim(rt, f"message:{channel}:{ts}")
    fresh, seen = [], []
    for f in files:
        (fresh if await claim(rt, "file:" + f["id"]) else seen).append(f)
    thread_ts = event.get("thread_ts") or ts
    if seen and first_delivery:
        for f in seen:
            earlier = await rt.io(earlier_request_id, rt, f["id"])
            await post(rt, channel, thread_ts, blocks.note(wording.already_requested(earlier),
                                                           kind="already_requested", request_id=earlier))
    if not fresh:
        return
    fresh = [await _file_details(rt, f) for f in fresh]
    images = [f for f in fresh if is_image(f)]
    for f in fresh:
        if not is_image(f):
            await post(rt, channel, thread_ts, blocks.non_image(f.get("name") or f.get("title") or ""))
    if not images:
        return
    name = await rt.user_name(user)
    allowed, reason = await roles.can_request(
        rt, user, await rt.channel_info(channel), ext_shared_hint=bool(body.get("is_ext_shared_channel"))
    )
    if not allowed:
        await refuse(rt, channel, thread_ts, ts, service.Requester(user, name), images, reason or "")
        return
    urls: dict[str, str] = rt.state.setdefault("file_urls", {})
    for f in images:
        url = f.get("url_private_download") or f.get("url_private")
        if url:
            urls[f["id"]] = url
    slack = rt.settings.slack
    new, effects = request.start_dialog(
        channel=channel, thread_ts=thread_ts, requester_id=user, requester_name=name,
        files=[(f["id"], f.get("name") or f.get("title") or f["id"]) for f in images],
        text=event.get("text") or "", now=rt.now(), policy=rt.settings.policy, source_event_id=event_id,
        known_call=rt.calls.known, require_known_call=slack.require_known_call,
    )
    await rt.io(rt.store.put, new)
    rt.threads[(new.channel, new.thread_ts)] = new.dialog_id
    async with rt.lock(new.dialog_id):
        await react(rt, channel, ts, EYES)
        await post(rt, channel, thread_ts, blocks.request_opened(new))
        await apply(rt, new, effects)


def earlier_request_id(rt: Runtime, file_id: str) -> str | None:
    """The request id an earlier upload of this Slack file had: from its dialog, else (a refused request
    has no dialog) from the audit log; None when neither remembers it."""
    dialog = rt.store.by_file_id(file_id)
    for image in dialog.images if dialog else ():
        if image.file_id == file_id:
            return image.request_id
    for entry in reversed(rt.core.audit.find(file_id=file_id, kinds=["search"])):  # the index: no scan
        attempt = refusals.attempt_with(entry, "file_id", file_id)  # a folded refusal lists its attempts
        if attempt is not None:
            return attempt.get("request_id")
    attempt = rt.core.refusals.pending_attempt("file_id", file_id)  # folded, its window still open
    return attempt.get("request_id") if attempt else None


async def _file_details(rt: Runtime, file: dict[str, Any]) -> dict[str, Any]:
    """The full file object: events may carry only an id (`file_access: check_file_info`)."""
    if file.get("mimetype") and file.get("file_access") != "check_file_info":
        return file
    try:
        return (await rt.client.files_info(file=file["id"])).get("file") or file
    except SLACK_ERRORS as exc:
        log.warning("files.info for %s failed: %s", file["id"], error_text(exc))
        return file



async def index_dispatch(rt: Runtime, event: dict[str, Any]) -> None:
    """Index call numbers in a top-level dispatch-channel message (the CAD feed is usually a bot): its text,
    attachment fields and Block Kit text, as the backfill reads them (an edit: the edited message)."""
    edited = event.get("subtype") == "message_changed"
    message = (event.get("message") if edited else event) or {}
    ts = message.get("ts")
    if ts:
        source = "edit" if edited else "bot" if rt.calls.is_own(message) else "dispatch"
        await rt.calls.index(message_text(message), ts, source=source)
