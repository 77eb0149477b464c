"""The intake stage: a photo posted in a case channel opens a request (after the guards); dispatch-channel
messages are indexed for call numbers.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot import service, wording
from bot.audit import refusals
from bot.request import transitions
from bot.request.transitions import Dialog
from bot.slack import blocks, roles
from bot.slack.calls import SLACK_ERRORS, error_text, message_text
from bot.slack.flow.dialog import apply, calls_of, refuse, transition
from bot.slack.flow.effects import claim, ephemeral, from_bot, is_image, post, storage_retried

if TYPE_CHECKING:
    from bot.slack.runtime import Runtime

log = logging.getLogger(__name__)

@storage_retried
async def handle_upload(rt: Runtime, body: dict[str, Any], dialog_id: str | None = None) -> None:
    """A message with files: one request per image in a case channel, after the guards.

    A requester's upload starts a request when it asks for one (an answer in its text, or a mention of the
    bot), else the bot offers one; someone who may not request gets nothing for a plain upload, and a
    private refusal (audited) when they mention the bot. Uploads posted as thread replies get a note and
    start nothing (`dialog_id` is then that thread's dialog).
    """
    event = body.get("event") or {}
    if from_bot(rt, event):
        return
    dialog_id = await rt.resolved(dialog_id, body)
    channel, user, ts = event.get("channel"), event.get("user"), event.get("ts")
    files = [f for f in event.get("files") or [] if isinstance(f, dict) and f.get("id")]
    if not (channel and user and ts and files):
        return
    if not await rt.is_case_channel(channel):
        return  # uploads outside case channels are none of the bot's business
    # Dedupe: Slack redelivers events (X-Slack-Retry-Num, Socket Mode reconnects); one event or one file
    # never starts a second request.
    event_id = body.get("event_id") or f"{channel}:{ts}"
    text = event.get("text") or ""
    asked = mentions_bot(rt, text) or transitions.asks_for_search(text, rt.settings.policy)
    if event.get("thread_ts") not in (None, ts):
        # A photo posted as a reply: a thread belongs to a running request or to someone's conversation, so
        # it never starts a request there. Asked for one, the bot says so once instead of staying silent.
        if asked and await claim(rt, f"message:{channel}:{ts}"):  # by message: a new envelope is still a redelivery
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
    if seen and first_delivery and asked:
        for f in seen:
            earlier = await rt.io(earlier_request_id, rt, f["id"])
            await post(rt, channel, thread_ts, blocks.note(wording.already_requested(earlier),
                                                           kind="already_requested", request_id=earlier))
    if not fresh:
        return
    allowed, reason = await roles.can_request(
        rt, user, await rt.channel_info(channel), ext_shared_hint=bool(body.get("is_ext_shared_channel"))
    )
    if not allowed and not mentions_bot(rt, text):
        return  # someone who may not request posted a photo, and did not ask the bot: not the bot's business
    fresh = [await _file_details(rt, f) for f in fresh]
    images = [f for f in fresh if is_image(f)]
    if asked:
        for f in fresh:
            if not is_image(f):
                await post(rt, channel, thread_ts, blocks.non_image(f.get("name") or f.get("title") or ""))
    if not images:
        return
    name = await rt.user_name(user)
    if not allowed:
        await refuse(rt, channel, thread_ts, ts, service.Requester(user, name), images, reason or "",
                     private_to=user)
        return
    await open_request(rt, channel=channel, thread_ts=thread_ts, user=user, name=name, images=images,
                       text=text, ask=asked, event_id=event_id)


def mentions_bot(rt: Runtime, text: str) -> bool:
    """Whether a message mentions this bot (`<@U…>` of its user id): asking it for a search."""
    return bool(rt.bot_user_id) and f"<@{rt.bot_user_id}" in (text or "")


async def open_request(
    rt: Runtime, *, channel: str, thread_ts: str, user: str, name: str, images: list[dict[str, Any]],
    text: str, ask: bool, event_id: str, photo_source: dict[str, str] | None = None,
) -> Dialog:
    """The dialog for these photos (started when asked for, else offered), stored, its card drawn."""
    urls: dict[str, str] = rt.state.setdefault("file_urls", {})
    for f in images:
        url = f.get("url_private_download") or f.get("url_private")
        if url:
            urls[f["id"]] = url
    new, effects = transitions.start_dialog(
        channel=channel, thread_ts=thread_ts, requester_id=user, requester_name=name,
        files=[(f["id"], f.get("name") or f.get("title") or f["id"]) for f in images],
        text=text, now=rt.now(), policy=rt.settings.policy, source_event_id=event_id,
        calls=calls_of(rt), ask=ask, photo_source=photo_source,
    )
    await rt.io(rt.store.put, new)
    rt.threads[(new.channel, new.thread_ts)] = new.dialog_id
    async with rt.lock(new.dialog_id):
        await apply(rt, new, effects)
    return new


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
    if event.get("subtype") == "message_deleted":
        # A call's opening message was deleted (Slack keeps a thread with replies as a tombstone, which is
        # an edit): its next entry starts a new thread instead of failing against a dead one.
        gone = rt.calls.forget_deleted_message(str(event.get("deleted_ts") or ""))
        if gone:
            log.info("call thread %s was deleted: %d call(s) get a new thread", event.get("deleted_ts"), len(gone))
        return
    edited = event.get("subtype") == "message_changed"
    message = (event.get("message") if edited else event) or {}
    ts = message.get("ts")
    if ts and not await rt.calls.counts(message):
        log.debug("dispatch message %s ignored for the call index: not from a listed CAD bot or dispatcher", ts)
        return
    if ts:
        source = "edit" if edited else "bot" if rt.calls.is_own(message) else "dispatch"
        await rt.calls.index(message_text(message), ts, source=source)


async def shortcut_search(rt: Runtime, body: dict[str, Any]) -> None:
    """The message shortcut: the invoker requests a search of the message's photo (someone else's, often).
    The poster is recorded as the photo's source; the form opens at once. Refusals are private and, for
    someone not authorised, audited (they asked explicitly)."""
    from bot.slack.flow.form import show_form

    user = str((body.get("user") or {}).get("id") or "")
    channel = str((body.get("channel") or {}).get("id") or "")
    message = body.get("message") or {}
    ts = str(message.get("ts") or body.get("message_ts") or "")
    if not (user and channel and ts):
        return
    thread_ts = str(message.get("thread_ts") or ts)
    say = lambda text, kind: ephemeral(rt, channel, user, thread_ts, blocks.note(text, kind=kind))
    if not await rt.is_case_channel(channel):
        await say(wording.SHORTCUT_NOT_CASE_CHANNEL, "shortcut_refused")
        return
    files = [await _file_details(rt, f) for f in message.get("files") or [] if isinstance(f, dict) and f.get("id")]
    images = [f for f in files if is_image(f)]
    if not images:
        await say(wording.SHORTCUT_NO_PHOTO, "shortcut_refused")
        return
    name = await rt.user_name(user)
    allowed, reason = await roles.can_request(rt, user, await rt.channel_info(channel))
    if not allowed:
        await refuse(rt, channel, thread_ts, ts, service.Requester(user, name), images, reason or "",
                     private_to=user)
        return
    current = await rt.io(rt.store.get, await rt.dialog_of_thread(channel, thread_ts) or "")
    if current is not None and not current.terminal:
        if current.started:
            await say(wording.shortcut_already_requested(current.request_ids), "shortcut_refused")
            return
        # The poster's own offer, never taken up: this request replaces it (quietly, as an offer ends).
        await transition(rt, current.dialog_id, lambda d: transitions.on_reply(
            d, user_id=d.requester_id, text="cancel", now=rt.now(), policy=rt.settings.policy))
    poster = str(message.get("user") or "")
    source = {"id": poster, "name": await rt.user_name(poster) if poster else "", "ts": ts} if poster != user else None
    dialog = await open_request(
        rt, channel=channel, thread_ts=thread_ts, user=user, name=name, images=images, text="", ask=True,
        event_id=f"shortcut:{channel}:{ts}:{body.get('action_ts') or ''}", photo_source=source,
    )
    await show_form(rt, str(body.get("trigger_id") or ""), dialog)
