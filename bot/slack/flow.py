"""The request flow: Slack events in, core transitions, effects out as Slack calls.

The only place that maps the dialog's effects (bot.request) to Slack: messages built by bot.slack.blocks,
face work in the engine's process pool, searches through bot.service, audit entries, the call-thread log.
Decisions stay in the core. Every Slack call here tolerates failure, also beyond the client's retries (it is
logged): the state machine and the audit log are the record; a lost message never loses a request. What the
officer must not miss (result, an image's failure, the dialog's end, the face question) is queued on disk
when Slack is down (`post_essential`) and delivered by the next tick.

Entry points (called by the listeners after they ack): `handle_upload`, `handle_reply`, `handle_action`,
`index_dispatch`; background jobs: `tick` (timeouts, `watchdog`, outbox), `resume_all`, `purge`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from slack_sdk.errors import SlackApiError

from bot import contact_sheet, policy, request, retention, service, wording
from bot.faces.engine import Probe
from bot.faces.gallery import Candidate
from bot.faces.images import ImageError, decode_image
from bot.request import Dialog, Effect, ImageRequest
from bot.slack import blocks, roles
from bot.slack.calls import SLACK_ERRORS, error_text, message_text
from bot.slack.client import DownloadError, FileTooLarge, MissingFilesScope, download_file
from bot.slack.probe_cache import CachedProbe

if TYPE_CHECKING:
    from bot.config import ImageSettings
    from bot.slack.runtime import Runtime

log = logging.getLogger(__name__)
T = TypeVar("T")

EYES = "eyes"  # the upload was seen and a request opened
HOURGLASS = "hourglass_flowing_sand"  # a search is running
DONE_MARK = "white_check_mark"  # every image has its result
WARNING_MARK = "warning"  # every image has its outcome, and at least one could not be searched
IMAGE_TYPES = frozenset({"jpg", "jpeg", "png", "gif", "webp", "heic", "heif", "bmp", "tiff", "tif"})
# Message subtypes a person's thread reply can have (a reply also sent to the channel is thread_broadcast).
REPLY_SUBTYPES = (None, "thread_broadcast")


class _Failure(Exception):
    """An image could not be analysed. `reason` is what blocks.image_failed words (a code such as
    "missing_files_scope", or the image module's sentence); `detail` is the technical cause for the audit."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# --------------------------------------------------------------------------------------- Slack calls


# Every helper below catches calls.SLACK_ERRORS: what slack_sdk raises once its retry handlers gave up
# (Slack's refusal, a dropped connection, a timeout, the upload step of files_upload_v2). A Slack call that
# fails never ends the request work that made it.


async def post(rt: Runtime, channel: str, thread_ts: str | None, message: blocks.Message) -> str | None:
    """chat.postMessage in a thread (with the message's metadata); the new ts, or None when it failed."""
    try:
        resp = await rt.client.chat_postMessage(channel=channel, thread_ts=thread_ts, **message.kwargs())
    except SLACK_ERRORS as exc:
        log.error("chat.postMessage to %s failed: %s", channel, error_text(exc))
        return None
    return resp.get("ts")


async def post_essential(
    rt: Runtime, channel: str, thread_ts: str | None, message: blocks.Message
) -> str | None:
    """Post what the officer must not miss (a result, an image's failure, the dialog's end, the face
    question): when Slack still fails after retries it is queued on disk (the call log's outbox) and
    delivered by the next tick, after anything queued earlier for the same thread. The ts, or None when
    queued or refused."""
    return await rt.calls.post_in_thread(channel, thread_ts, message)


async def update(rt: Runtime, channel: str, ts: str, message: blocks.Message) -> bool:
    """chat.update of one of the bot's messages (with metadata); False when it failed."""
    try:
        await rt.client.chat_update(channel=channel, ts=ts, **message.kwargs())
    except SLACK_ERRORS as exc:
        log.error("chat.update in %s failed: %s", channel, error_text(exc))
        return False
    return True


async def ephemeral(rt: Runtime, channel: str, user: str, thread_ts: str | None, message: blocks.Message) -> None:
    """A brief note only `user` sees (never used for anything essential: phones lose them)."""
    try:
        await rt.client.chat_postEphemeral(
            channel=channel, user=user, thread_ts=thread_ts, **message.ephemeral_kwargs()
        )
    except SLACK_ERRORS as exc:
        log.warning("chat.postEphemeral failed: %s", error_text(exc))


async def react(rt: Runtime, channel: str, ts: str, name: str, *, remove: bool = False) -> None:
    """Add (or remove) one of the bot's reactions; already there / already gone is fine."""
    try:
        if remove:
            await rt.client.reactions_remove(channel=channel, timestamp=ts, name=name)
        else:
            await rt.client.reactions_add(channel=channel, timestamp=ts, name=name)
    except SlackApiError as exc:
        if exc.response.get("error") not in ("already_reacted", "no_reaction"):
            log.warning("reactions.%s failed: %s", "remove" if remove else "add", error_text(exc))
    except SLACK_ERRORS as exc:
        log.warning("reactions.%s failed: %s", "remove" if remove else "add", error_text(exc))


async def upload(
    rt: Runtime, channel: str, thread_ts: str, data: bytes, *, filename: str, title: str, comment: str | None
) -> bool:
    """files_upload_v2 of an image into a thread; False when it failed."""
    try:
        await rt.client.files_upload_v2(
            channel=channel, thread_ts=thread_ts, file=data, filename=filename, title=title,
            initial_comment=comment, alt_txt=title,
        )
    except SLACK_ERRORS as exc:
        log.error("files_upload_v2 of %s failed: %s", filename, error_text(exc))
        return False
    return True


class StatusMessage:
    """One status message in a request thread, updated in place at most once a second.

    The first `show` posts it; later ones update it. An update that comes too soon is held and sent when the
    second has passed; only the latest held update is sent.
    """

    def __init__(self, rt: Runtime, channel: str, thread_ts: str) -> None:
        self.rt, self.channel, self.thread_ts, self.interval = rt, channel, thread_ts, rt.status_interval
        self.ts: str | None = None
        self._last = 0.0
        self._held: blocks.Message | None = None
        self._pump: asyncio.Task | None = None
        self._first = asyncio.Lock()

    async def show(self, message: blocks.Message) -> None:
        """Post or update the status; returns once posted (an update may follow later)."""
        async with self._first:
            if self.ts is None:
                self.ts = await post(self.rt, self.channel, self.thread_ts, message)
                self._last = time.monotonic()
                return
        self._held = message
        if self._pump is None or self._pump.done():
            self._pump = self.rt.spawn(self._send_held(), name="status-update")

    async def _send_held(self) -> None:
        while self._held is not None and self.ts is not None:
            wait = self._last + self.interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            message, self._held = self._held, None
            await update(self.rt, self.channel, self.ts, message)
            self._last = time.monotonic()


def _status(rt: Runtime, dialog: Dialog, request_id: str) -> StatusMessage:
    statuses: dict[str, StatusMessage] = rt.state.setdefault("status", {})
    status = statuses.get(request_id)
    if status is None:
        status = statuses[request_id] = StatusMessage(rt, dialog.channel, dialog.thread_ts)
    return status


# ---------------------------------------------------------------------------------------------- helpers


def _from_bot(rt: Runtime, event: dict[str, Any]) -> bool:
    """Bot messages (any bot, this one included) never start a request and never answer a dialog."""
    return bool(
        event.get("bot_id")
        or event.get("subtype") == "bot_message"
        or (rt.bot_user_id is not None and event.get("user") == rt.bot_user_id)
    )


def _is_image(file: dict[str, Any]) -> bool:
    mimetype = str(file.get("mimetype") or "")
    if mimetype:
        return mimetype.startswith("image/")
    return str(file.get("filetype") or "").lower() in IMAGE_TYPES


def _ts_time(ts: str) -> str:
    """A Slack ts as UTC ISO 8601."""
    try:
        return datetime.fromtimestamp(float(ts), UTC).isoformat()
    except (TypeError, ValueError):
        return ""


def _requester(dialog: Dialog) -> service.Requester:
    return service.Requester(dialog.requester_id, dialog.requester_name)


async def _source(rt: Runtime, dialog: Dialog, image: ImageRequest, permalink: str | None) -> dict[str, Any]:
    """The Slack fields of every audit entry written for one image of a dialog."""
    call_ts = await rt.io(rt.calls.thread_ts, dialog.call_number) if dialog.call_number else None
    return {
        "source": "slack",
        "channel": dialog.channel,
        "thread_ts": dialog.thread_ts,
        "permalink": permalink,
        "file_id": image.file_id,
        "file_name": image.file_name,
        "dialog_id": dialog.dialog_id,
        "uploaded_at": dialog.created_at,
        "answer_times": dict(dialog.answer_times),
        "analysed_at": image.analysed_at,
        "face_chosen_at": image.chosen_at,
        "call_thread_ts": call_ts,
    }


async def _claim(rt: Runtime, key: str) -> bool:
    return await rt.io(rt.store.claim, key, rt.now())


# ----------------------------------------------------------------------------------------- transitions


async def transition(
    rt: Runtime, dialog_id: str, step: Callable[[Dialog], request.Result], *, actor: str | None = None
) -> Dialog | None:
    """Apply one input to a dialog (read, transition, write as one locked step) and carry out its effects.

    The per-dialog lock keeps the messages of one transition together and in order. `actor` is who sent
    the input (a reply or a button), for the brief notes only they see.
    """
    async with rt.lock(dialog_id):
        return await _transition_locked(rt, dialog_id, step, actor=actor)


async def _transition_locked(
    rt: Runtime, dialog_id: str, step: Callable[[Dialog], request.Result], *, actor: str | None = None
) -> Dialog | None:
    """`transition` for a caller that already holds the dialog's lock."""
    outcome = await rt.io(rt.store.update, dialog_id, step)
    if outcome is None:
        return None
    dialog, effects = outcome
    await apply(rt, dialog, effects, actor=actor)
    return dialog


async def apply(rt: Runtime, dialog: Dialog, effects: list[Effect], *, actor: str | None = None) -> None:
    """Carry out effects in order; one failing effect is logged and does not stop the rest."""
    for effect in effects:
        try:
            if await _apply(rt, dialog, effect, actor) is _STOP:
                break  # the dialog was ended (requester no longer authorised): nothing after it runs
        except Exception:
            log.exception("effect %s of dialog %s failed", type(effect).__name__, dialog.dialog_id)


_STOP = object()


async def _apply(rt: Runtime, dialog: Dialog, effect: Effect, actor: str | None) -> object:
    p = rt.settings.policy
    here = (dialog.channel, dialog.thread_ts)
    if isinstance(effect, request.Prompt):
        await post(rt, *here, blocks.prompt(effect.step, dialog, p))
    elif isinstance(effect, request.Prefilled):
        await post(rt, *here, blocks.prefilled(effect, dialog))
    elif isinstance(effect, request.Invalid):
        await post(rt, *here, blocks.invalid(effect, dialog, p))
    elif isinstance(effect, request.Summary):
        await post(rt, *here, blocks.summary(dialog))
    elif isinstance(effect, request.Analyse):
        # Authority is checked again now, before any face work: a requester removed from the lists (or made
        # a guest) since the upload gets no search.
        if not await _still_authorised(rt, dialog):
            return _STOP
        for rid in effect.request_ids:
            rt.spawn(analyse(rt, dialog.dialog_id, rid), name=f"analyse-{rid}")
    elif isinstance(effect, request.AskFace):
        await _ask_face(rt, dialog, effect)
    elif isinstance(effect, request.ImageFailed):
        await _image_failed(rt, dialog, effect)
    elif isinstance(effect, request.Search):
        rt.spawn(search(rt, dialog.dialog_id, effect.request_id, effect.face_index), name=f"search-{effect.request_id}")
    elif isinstance(effect, request.NotRequester):
        await ephemeral(rt, dialog.channel, effect.user_id, dialog.thread_ts,
                        blocks.not_requester(dialog, effect.user_id))
    elif isinstance(effect, request.Cancelled):
        await _ended(rt, dialog, "cancelled", effect.request_ids)
        _forget(rt, dialog)
    elif isinstance(effect, request.Expired):
        await _ended(rt, dialog, "expired", effect.request_ids)
        _forget(rt, dialog)
    elif isinstance(effect, request.Done):
        await react(rt, dialog.channel, dialog.thread_ts, HOURGLASS, remove=True)
        # A ✅ would read "all searched": an image that failed, or was not searched, gets a ⚠ instead.
        failed = any(i.outcome in ("error", "cancelled", "expired", "denied") for i in dialog.images)
        await react(rt, dialog.channel, dialog.thread_ts, WARNING_MARK if failed else DONE_MARK)
        _forget(rt, dialog)
    elif actor and isinstance(effect, (request.Busy, request.Stale, request.Closed)):
        # Only the person who replied or pressed needs to know their input changed nothing.
        note = {request.Busy: blocks.busy, request.Stale: blocks.stale, request.Closed: blocks.closed}
        await ephemeral(rt, dialog.channel, actor, dialog.thread_ts, note[type(effect)](dialog))
    else:
        log.debug("dialog %s: %s", dialog.dialog_id, effect)


def _forget(rt: Runtime, dialog: Dialog) -> None:
    """Drop what this process kept in memory for an ended dialog (tasks still running keep their own refs)."""
    for image in dialog.images:
        for key in ("status", "file_urls", "failures"):
            rt.state.get(key, {}).pop(image.request_id if key != "file_urls" else image.file_id, None)
    rt.state.get("permalinks", {}).pop(f"{dialog.channel}:{dialog.thread_ts}", None)
    rt.state.get("watchdog", {}).pop(dialog.dialog_id, None)
    rt.locks.pop(dialog.dialog_id, None)


async def _ask_face(rt: Runtime, dialog: Dialog, effect: request.AskFace) -> None:
    """Post the photo with numbered boxes, then the face question with a button per face. The question is
    posted even when the photo could not be attached (it says so): buttons and numbers still work."""
    image = dialog.image(effect.request_id)
    if image is None:
        return
    cached = await rt.io(rt.probes.get, effect.request_id)
    attached = False
    if cached is not None and cached.annotated:
        attached = await upload(
            rt, dialog.channel, dialog.thread_ts, cached.annotated,
            filename=f"{effect.request_id}-faces.png", title=f"Faces found in {image.file_name}"[:200],
            comment=None,
        )
    await post_essential(rt, dialog.channel, dialog.thread_ts,
                         blocks.ask_face(dialog, image, image_attached=attached))


async def _ended(rt: Runtime, dialog: Dialog, kind: str, request_ids: tuple[str, ...]) -> None:
    """A cancel or a timeout: audit each unfinished image, say so once, forget the probes."""
    permalink = await rt.permalink(dialog.channel, dialog.thread_ts)
    for rid in request_ids:
        image = dialog.image(rid)
        if image is None:
            continue
        await rt.io(
            service.record_ended, rt.core, outcome=kind, request_id=rid, answers=dialog.answers(),
            requester=_requester(dialog), source=await _source(rt, dialog, image, permalink), faces=image.faces,
        )
        await rt.io(rt.probes.remove, rid)
    minutes = rt.settings.slack.dialog_timeout_minutes if kind == "expired" else None
    ended = blocks.ended(dialog, kind, timeout_minutes=minutes, request_ids=request_ids)
    await post_essential(rt, dialog.channel, dialog.thread_ts, ended)


async def _say_failed(rt: Runtime, dialog: Dialog, image: ImageRequest, reason: str) -> None:
    """Tell the officer an image was not searched, in a new message (an edit notifies no one; queued when
    Slack is down); the status message, when there is one, stops saying the work goes on."""
    status = rt.state.setdefault("status", {}).get(image.request_id)
    if status is not None and status.ts is not None:
        await status.show(blocks.progress(dialog, image, "not_searched"))
    await post_essential(rt, dialog.channel, dialog.thread_ts, blocks.image_failed(dialog, image, reason))


async def _image_failed(rt: Runtime, dialog: Dialog, effect: request.ImageFailed) -> None:
    """An image that cannot be searched: audit it as error, say why, log it on the call."""
    image = dialog.image(effect.request_id)
    if image is None:
        return
    # The failure's own words when this process saw it happen, else the dialog's code ("no_face", ...).
    reason, detail = rt.state.setdefault("failures", {}).pop(effect.request_id, (effect.reason, effect.reason))
    permalink = await rt.permalink(dialog.channel, dialog.thread_ts)
    source = {**(await _source(rt, dialog, image, permalink)), "probe_sha256": image.probe_sha256,
              "error_code": effect.reason}
    await rt.io(
        service.record_ended, rt.core, outcome="error", request_id=image.request_id, answers=dialog.answers(),
        requester=_requester(dialog), source=source, error=f"{wording.image_problem(reason)} ({detail})",
        faces=image.faces,
    )
    await _say_failed(rt, dialog, image, reason)
    await _log_call(rt, dialog, image, outcome="error", result=None, permalink=permalink)
    await rt.io(rt.probes.remove, image.request_id)


async def _log_call(
    rt: Runtime, dialog: Dialog, image: ImageRequest, *, outcome: str, result: service.SearchResult | None,
    permalink: str | None,
) -> None:
    """Post the log entry in the call's thread in the dispatch channel (queued there when Slack fails)."""
    if not rt.settings.slack.dispatch_channel or not dialog.call_number:
        return
    message = blocks.call_log_entry(
        dialog, image, outcome=outcome, result=result, request_link=permalink,
        detail=rt.settings.slack.call_log_detail, timezone=rt.settings.timezone,
    )
    try:
        await rt.calls.log(dialog.call_number, message)
    except Exception:
        log.exception("call-thread log for %s failed", image.request_id)


# ------------------------------------------------------------------------------------- entry points


async def _load(rt: Runtime, dialog_id: str | None) -> Dialog | None:
    """The dialog the middleware found for this thread, read after the ack."""
    return await rt.io(rt.store.get, dialog_id) if dialog_id else None


async def handle_upload(rt: Runtime, body: dict[str, Any], dialog_id: str | None = None) -> None:
    """A message with files: one request per image in a case channel, after the guards.

    Uploads posted as thread replies get a note and start nothing (`dialog_id` is then that thread's dialog).
    """
    event = body.get("event") or {}
    if _from_bot(rt, event):
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
        if await _claim(rt, f"message:{channel}:{ts}"):  # by message: a new envelope is still a redelivery
            await post(rt, channel, event["thread_ts"], blocks.note(wording.UPLOAD_IN_THREAD, kind="upload_in_thread"))
        return
    if not await _claim(rt, f"event:{event_id}"):
        return
    # The same message under a new envelope (a Socket Mode reconnect) is a redelivery: silent. A new message
    # sharing a file that already had its request gets a note naming that request.
    first_delivery = await _claim(rt, f"message:{channel}:{ts}")
    fresh, seen = [], []
    for f in files:
        (fresh if await _claim(rt, "file:" + f["id"]) else seen).append(f)
    thread_ts = event.get("thread_ts") or ts
    if seen and first_delivery:
        for f in seen:
            earlier = await rt.io(earlier_request_id, rt, f["id"])
            await post(rt, channel, thread_ts, blocks.note(wording.already_requested(earlier),
                                                           kind="already_requested", request_id=earlier))
    if not fresh:
        return
    fresh = [await _file_details(rt, f) for f in fresh]
    images = [f for f in fresh if _is_image(f)]
    for f in fresh:
        if not _is_image(f):
            await post(rt, channel, thread_ts, blocks.non_image(f.get("name") or f.get("title") or ""))
    if not images:
        return
    name = await rt.user_name(user)
    allowed, reason = await roles.can_request(
        rt, user, await rt.channel_info(channel), ext_shared_hint=bool(body.get("is_ext_shared_channel"))
    )
    if not allowed:
        await _refuse(rt, channel, thread_ts, ts, service.Requester(user, name), images, reason or "")
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
    found = None
    for entry in rt.core.audit.entries():
        if entry.get("kind") == "search" and entry.get("file_id") == file_id:
            found = entry.get("request_id")
    return found


async def _file_details(rt: Runtime, file: dict[str, Any]) -> dict[str, Any]:
    """The full file object: events may carry only an id (`file_access: check_file_info`)."""
    if file.get("mimetype") and file.get("file_access") != "check_file_info":
        return file
    try:
        return (await rt.client.files_info(file=file["id"])).get("file") or file
    except SLACK_ERRORS as exc:
        log.warning("files.info for %s failed: %s", file["id"], error_text(exc))
        return file


async def _still_authorised(rt: Runtime, dialog: Dialog) -> bool:
    """Re-check the requester; when refused, audit every image not yet searched as denied, say why and end
    the dialog. A Slack outage is no refusal here: the requester was verified at the upload."""
    allowed, reason = await roles.can_request(rt, dialog.requester_id, await rt.channel_info(dialog.channel))
    if allowed:
        return True
    if reason == wording.ACCOUNT_NOT_VERIFIED:
        log.warning("could not re-check %s for dialog %s; verified at upload, going on",
                    dialog.requester_id, dialog.dialog_id)
        return True
    request_ids = tuple(i.request_id for i in dialog.images if i.status in (request.PENDING, request.NEEDS_FACE))
    permalink = await rt.permalink(dialog.channel, dialog.thread_ts)
    for rid in request_ids:
        image = dialog.image(rid)
        if image is not None:
            await rt.io(
                service.record_denied, rt.core, request_id=rid, answers=dialog.answers(), reasons=[reason or ""],
                requester=_requester(dialog), source=await _source(rt, dialog, image, permalink),
            )
    await post_essential(rt, dialog.channel, dialog.thread_ts,
                         blocks.refusal(reason or "", request_id=", ".join(request_ids), dialog=dialog))
    # Inside the caller's transition (it holds the lock): write the ending directly.
    await rt.io(rt.store.update, dialog.dialog_id, lambda d: request.on_refused(d, rt.now()))
    return False


async def _refuse(
    rt: Runtime, channel: str, thread_ts: str, ts: str, requester: service.Requester,
    images: list[dict[str, Any]], reason: str,
) -> None:
    """Refuse a request (who asked, or where): audit each image as denied, then say why in the thread."""
    permalink = await rt.permalink(channel, ts)
    request_ids = []
    for f in images:
        rid = service.new_request_id()
        request_ids.append(rid)
        source = {
            "source": "slack", "channel": channel, "thread_ts": thread_ts, "permalink": permalink,
            "file_id": f["id"], "file_name": f.get("name"), "uploaded_at": _ts_time(ts),
        }
        await rt.io(
            service.record_denied, rt.core, request_id=rid, answers=policy.Answers(), reasons=[reason],
            requester=requester, source=source,
        )
    await post(rt, channel, thread_ts, blocks.refusal(reason, request_id=", ".join(request_ids)))


async def handle_reply(rt: Runtime, body: dict[str, Any], dialog_id: str | None) -> None:
    """A person's reply in a request thread: an answer to the current step (only the requester's count)."""
    event = body.get("event") or {}
    if dialog_id is None or _from_bot(rt, event) or event.get("subtype") not in REPLY_SUBTYPES:
        return
    user = event.get("user")
    if not user:
        return
    event_id = body.get("event_id") or f"{event.get('channel')}:{event.get('ts')}"
    text = event.get("text") or ""
    slack = rt.settings.slack
    # The dialog's lock is taken first, before any await: replies sent in a burst (a phone coming back
    # online) are applied in the order they arrived, never an answer on the wrong step.
    async with rt.lock(dialog_id):
        if not await _claim(rt, f"event:{event_id}"):
            return  # a redelivered reply must not answer the next question too
        if not await _claim(rt, f"message:{event.get('channel')}:{event.get('ts')}"):
            return  # the same reply under another envelope: answered once already
        await _transition_locked(
            rt, dialog_id,
            lambda d: request.on_reply(
                d, user_id=user, text=text, now=rt.now(), policy=rt.settings.policy,
                known_call=rt.calls.known, require_known_call=slack.require_known_call,
            ),
            actor=user,
        )


async def handle_edit(rt: Runtime, body: dict[str, Any]) -> None:
    """The requester edited a reply in a running request: edits are not read (the answer was taken as first
    sent), so say so privately, once per edit."""
    event = body.get("event") or {}
    message = event.get("message") or {}
    channel, user = event.get("channel"), message.get("user")
    dialog = await _load(rt, rt.threads.get((channel, message.get("thread_ts"))))
    if dialog is None or dialog.terminal or user != dialog.requester_id or _from_bot(rt, message):
        return
    previous = event.get("previous_message") or {}
    if not message.get("edited") and message.get("text") == previous.get("text", message.get("text")):
        return  # Slack adding a link preview (unfurl) is not an edit
    if not await _claim(rt, f"edit:{channel}:{message.get('ts')}:{event.get('event_ts') or event.get('ts')}"):
        return
    await ephemeral(rt, dialog.channel, user, dialog.thread_ts,
                    blocks.note(wording.EDIT_NOT_READ, kind="edit_not_read", dialog=dialog))


async def handle_action(
    rt: Runtime, body: dict[str, Any], action: dict[str, Any], dialog_id: str | None
) -> None:
    """A button press in a request thread (purpose, attest, face, cancel); acked already.

    A button of an ended dialog never acts on a newer dialog in the same thread: the dialog id its actions
    block carries must be the thread's current dialog (else the presser gets the "request has ended" note).
    """
    if dialog_id is None:
        return
    user = (body.get("user") or {}).get("id")
    if not user:
        return
    if not await _claim(rt, f"action:{action.get('action_ts')}:{user}:{action.get('action_id')}"):
        return
    owner = blocks.button_dialog_id(action.get("block_id"))
    if owner is None and str(action.get("action_id") or "").startswith(request.ACTION_CANCEL):
        owner = str(action.get("value") or "") or None  # the cancel button's value is its dialog id
    if owner is not None and owner != dialog_id:
        ended = await rt.io(rt.store.get, owner) or await _load(rt, dialog_id)
        if ended is not None:
            await ephemeral(rt, ended.channel, user, ended.thread_ts, blocks.closed(ended))
        return
    await transition(
        rt, dialog_id,
        lambda d: request.on_action(
            d, user_id=user, action=str(action.get("action_id") or ""), value=str(action.get("value") or ""),
            now=rt.now(), policy=rt.settings.policy,
        ),
        actor=user,
    )


async def index_dispatch(rt: Runtime, event: dict[str, Any]) -> None:
    """Index call numbers in a top-level dispatch-channel message (the CAD feed is usually a bot): its text,
    attachment fields and Block Kit text, as the backfill reads them (an edit: the edited message)."""
    edited = event.get("subtype") == "message_changed"
    message = (event.get("message") if edited else event) or {}
    ts = message.get("ts")
    if ts:
        source = "edit" if edited else "bot" if rt.calls.is_own(message) else "dispatch"
        await rt.calls.index(message_text(message), ts, source=source)


# -------------------------------------------------------------------------------------- face work


async def analyse(rt: Runtime, dialog_id: str, request_id: str) -> None:
    """Download one image and find its faces (once: the result is cached and stored with the request)."""
    running: set[str] = rt.state.setdefault("analysing", set())
    if request_id in running:
        return
    running.add(request_id)
    try:
        dialog = await rt.io(rt.store.get, dialog_id)
        image = dialog.image(request_id) if dialog else None
        if dialog is None or image is None or dialog.terminal or image.status != request.PENDING:
            return
        cached = await rt.io(rt.probes.get, request_id)  # a restart after analysis: never detect again
        error = None
        if cached is None:
            status = _status(rt, dialog, request_id)
            await status.show(blocks.progress(dialog, image, "downloading"))
            try:
                data = await _download(rt, image)
                await status.show(blocks.progress(dialog, image, "finding_faces"))
                cached = await _find_faces(rt, image, data)
                async with rt.lock(dialog_id):  # no cancel between the check and the write
                    current = await rt.io(rt.store.get, dialog_id)
                    if current is None or current.terminal:
                        return  # cancelled or expired meanwhile: the faces of this photo are not kept
                    await rt.io(rt.probes.put, request_id, cached)
            except _Failure as failure:
                error = failure.reason
                rt.state.setdefault("failures", {})[request_id] = (failure.reason, failure.detail)
        faces = cached.faces if cached else None
        sha = cached.sha256 if cached else None
        await transition(
            rt, dialog_id,
            lambda d: request.on_analysed(d, request_id, faces=faces, probe_sha256=sha, error=error, now=rt.now()),
        )
    finally:
        running.discard(request_id)


async def _download_url(rt: Runtime, file_id: str) -> str:
    url = rt.state.setdefault("file_urls", {}).get(file_id)
    if url:
        return url
    try:
        file = (await rt.client.files_info(file=file_id)).get("file") or {}
    except SLACK_ERRORS as exc:
        raise _Failure("download_failed", f"files.info: {error_text(exc)}") from None
    url = file.get("url_private_download") or file.get("url_private")
    if not url:
        raise _Failure("download_failed", "files.info gave no download URL")
    return url


async def _download(rt: Runtime, image: ImageRequest) -> bytes:
    """The photo's bytes, with the bot token sent only to the API host and the configured file hosts."""
    url = await _download_url(rt, image.file_id)
    assert rt.download_session is not None, "Runtime.start() opens the download session"
    try:
        return await download_file(
            rt.download_session, url, rt.token, allowed_hosts=rt.token_hosts,
            max_bytes=rt.settings.images.max_bytes,
        )
    except MissingFilesScope as exc:
        raise _Failure("missing_files_scope", exc.message) from None
    except FileTooLarge as exc:
        raise _Failure("too_large", exc.message) from None
    except DownloadError as exc:
        raise _Failure("download_failed", f"{exc.code}: {exc.message}") from None


async def _find_faces(rt: Runtime, image: ImageRequest, data: bytes) -> CachedProbe:
    """Faces on the photo, in the engine's process pool; crops and numbered boxes drawn in a thread."""
    try:
        probe = await rt.engine.analyse(data)
        return await rt.work(prepare_probe, data, probe, rt.settings.images)
    except ImageError as exc:
        reason = exc.code if exc.code in wording.IMAGE_PROBLEMS else exc.message
        raise _Failure(reason, f"{exc.code}: {exc.message}") from None
    except Exception as exc:
        log.exception("face analysis of %s failed", image.request_id)
        raise _Failure("error", f"face analysis failed: {type(exc).__name__}: {exc}"[:500]) from exc


def prepare_probe(data: bytes, probe: Probe, images: ImageSettings) -> CachedProbe:
    """What the dialog keeps of an analysed photo: encodings, a crop per face, numbered boxes when several."""
    faces = [f.as_dict() for f in probe.faces]
    encodings = (
        np.stack([np.asarray(f.encoding, dtype=np.float32) for f in probe.faces])
        if probe.faces else np.zeros((0, 128), dtype=np.float32)
    )
    crops: list[bytes] = []
    annotated = None
    if probe.faces:
        rgb = decode_image(data, max_bytes=images.max_bytes, max_pixels=images.max_pixels)
        crops = [contact_sheet.face_crop_jpeg(rgb, f.box.as_dict()) for f in probe.faces]
        if len(faces) > 1:
            annotated = contact_sheet.annotate_faces(rgb, faces)
    return CachedProbe(probe.sha256, probe.width, probe.height, faces, encodings, crops, annotated)


async def search(rt: Runtime, dialog_id: str, request_id: str, face_index: int) -> None:
    """Run one image's search, post the caveated result and the contact sheet, log it on the call."""
    running: set[str] = rt.state.setdefault("searching", set())
    if request_id in running:
        return
    running.add(request_id)
    try:
        first = await _claim(rt, "search:" + request_id)
        dialog = await rt.io(rt.store.get, dialog_id)
        image = dialog.image(request_id) if dialog else None
        if dialog is None or image is None or image.status != request.SEARCHING:
            return
        # Claimed before: a previous process started this search. If the audit has its result, post that
        # result again rather than search a second time.
        result = None if first else await rt.io(audited_result, rt, request_id)
        await react(rt, dialog.channel, dialog.thread_ts, HOURGLASS)
        status = _status(rt, dialog, request_id)
        await status.show(blocks.progress(dialog, image, "searching"))
        permalink = await rt.permalink(dialog.channel, dialog.thread_ts)
        cached = await rt.io(rt.probes.get, request_id)
        if result is None:
            # Started now, so the search's audit entry records the call-thread ts (fields are written when
            # things happen); None without a dispatch channel or when Slack refuses.
            await rt.calls.ensure_thread(dialog.call_number or "")
            try:
                if cached is None or not 1 <= face_index <= len(cached.faces):
                    raise LookupError("the probe analysis is no longer stored")
                result = await rt.work(
                    service.search_face, rt.core, request_id=request_id, answers=dialog.answers(),
                    requester=_requester(dialog), source=await _source(rt, dialog, image, permalink),
                    probe_sha256=image.probe_sha256 or cached.sha256, faces=image.faces or cached.faces,
                    encoding=cached.encoding(face_index), face_index=face_index,
                )
            except Exception as exc:
                log.exception("search %s failed", request_id)
                await _search_failed(rt, dialog, image, exc, permalink)
                return
        probe_crop = cached.crop(face_index) if cached else None
        await _finish_search(rt, dialog, image, result, probe_crop, permalink, status)
    finally:
        running.discard(request_id)


async def _best_effort(what: str, request_id: str, step: Awaitable[T]) -> T | None:
    """Await one step of finishing a request; a failure is logged and does not stop the steps after it."""
    try:
        return await step
    except Exception:
        log.exception("%s of %s failed", what, request_id)
        return None


async def _finish_search(
    rt: Runtime, dialog: Dialog, image: ImageRequest, result: service.SearchResult, probe_crop: bytes | None,
    permalink: str | None, status: StatusMessage,
) -> None:
    """After the search (audited already): the result (caveat first), the contact sheet, the call-thread
    log, then the dialog's record of the outcome and the final status. Each step runs whatever happened to
    the one before: the officer's result is queued on disk when Slack is down, the contact sheet is
    best-effort, and the dialog always learns the search finished."""
    rid = image.request_id
    result_ts = await _best_effort("result post", rid, _post_result(rt, dialog, image, result))
    if result_ts:
        await _best_effort("contact sheet", rid, _post_contact_sheet(rt, dialog, image, result, probe_crop))
    else:
        # The result waits in the outbox: a contact sheet now would come before it. It is left out.
        log.warning("result of %s not posted yet (queued): contact sheet skipped", rid)
    await _best_effort("call-thread log", rid, _log_call(
        rt, dialog, image, outcome=result.outcome, result=result, permalink=permalink))
    outcome = result.outcome
    await _best_effort("search outcome", rid, transition(
        rt, dialog.dialog_id,
        lambda d: request.on_searched(d, rid, outcome=outcome, now=rt.now(), result_ts=result_ts),
    ))
    await _best_effort("status", rid, status.show(blocks.progress(dialog, image, "done")))
    # The result is audited and posted (or queued): the faces of this photo are no longer needed.
    await rt.io(rt.probes.remove, rid)


async def _post_result(
    rt: Runtime, dialog: Dialog, image: ImageRequest, result: service.SearchResult
) -> str | None:
    """The result in the request thread, caveat first (queued when Slack is down); its ts once posted."""
    call_link = await rt.calls.thread_permalink(dialog.call_number) if dialog.call_number else None
    message = blocks.result(dialog, image, result, call_link, min_face_px=rt.settings.images.min_face_px)
    return await post_essential(rt, dialog.channel, dialog.thread_ts, message)


async def _search_failed(
    rt: Runtime, dialog: Dialog, image: ImageRequest, exc: Exception, permalink: str | None
) -> None:
    error = f"{type(exc).__name__}: {exc}"[:500]
    source = {**(await _source(rt, dialog, image, permalink)), "probe_sha256": image.probe_sha256}
    await rt.io(
        service.record_ended, rt.core, outcome="error", request_id=image.request_id, answers=dialog.answers(),
        requester=_requester(dialog), source=source, error=error, faces=image.faces,
        face_index=image.face_index,
    )
    await _say_failed(rt, dialog, image,
                      "gallery_empty" if isinstance(exc, service.SearchUnavailable) else "search_failed")
    await _log_call(rt, dialog, image, outcome="error", result=None, permalink=permalink)
    rid = image.request_id
    await transition(
        rt, dialog.dialog_id,
        lambda d: request.on_searched(d, rid, outcome="error", now=rt.now(), error=error),
    )


def sheet_png(rt: Runtime, result: service.SearchResult, probe_crop: bytes | None) -> bytes:
    """The contact sheet: the searched face beside each candidate's gallery thumbnail, labelled by rank."""
    gallery = rt.core.gallery
    tiles = [
        contact_sheet.SheetCandidate(
            rank=c.rank,
            label=f"{c.name} · {c.subject_id}" + (f" · {c.record_ref}" if c.record_ref else ""),
            distance_band=wording.estimate_short(c.fpir_estimate, c.below_resolution, result.operating_point),
            thumbnail_jpeg=gallery.thumbnail(c.image_sha256) if c.image_sha256 else None,
        )
        for c in result.candidates
    ]
    title = f"Request {result.request_id} · call {result.call_number}"
    return contact_sheet.contact_sheet(probe_crop or b"", tiles, title=title, footer=result.caveat)


async def _post_contact_sheet(
    rt: Runtime, dialog: Dialog, image: ImageRequest, result: service.SearchResult, probe_crop: bytes | None
) -> None:
    """The message carrying the contact sheet (with metadata), then the sheet itself, in the request thread;
    a short note when Slack does not take the upload."""
    png = await rt.work(sheet_png, rt, result, probe_crop)
    await post(rt, dialog.channel, dialog.thread_ts, blocks.contact_sheet(dialog, image))
    uploaded = await upload(
        rt, dialog.channel, dialog.thread_ts, png, filename=f"{result.request_id}-contact-sheet.png",
        title=f"Contact sheet {result.request_id}", comment=None,
    )
    if not uploaded:
        await post(rt, dialog.channel, dialog.thread_ts, blocks.note(
            wording.CONTACT_SHEET_NOT_ATTACHED, kind="contact_sheet_failed", dialog=dialog,
            request_id=image.request_id))


def audited_result(rt: Runtime, request_id: str) -> service.SearchResult | None:
    """The result of a search the audit log already holds for this request (candidates or none), else None.

    Names and record references come from the gallery as it is now; a subject removed since shows its id.
    """
    entries = [
        e for e in rt.core.audit.find(request_id=request_id, kinds=["search"])
        if e.get("outcome") in ("candidates", "no_candidate")
    ]
    if not entries:
        return None
    e = entries[-1]
    subjects = {s["subject_id"]: s for s in rt.core.gallery.subjects()}
    candidates = [
        Candidate(
            int(c["rank"]), c["subject_id"], subjects.get(c["subject_id"], {}).get("name", c["subject_id"]),
            subjects.get(c["subject_id"], {}).get("record_ref", "") or "", float(c["distance"]), "",
            margin=c.get("margin"), score=c.get("score"), fpir_estimate=c.get("fpir_estimate"),
            below_resolution=bool(c.get("below_resolution")),
        )
        for c in e.get("candidates") or []
    ]
    return service.SearchResult(
        request_id=request_id, call_number=e.get("call_number") or "", purpose=e.get("purpose") or "",
        faces=e.get("faces") or [], face_index=int(e.get("face_index") or 1), candidates=candidates,
        threshold=float(e.get("threshold") or rt.settings.search.threshold),
        gallery_size=int(e.get("gallery_subjects") or 0), gallery_images=int(e.get("gallery_images") or 0),
        model=e.get("model") or "", versions=e.get("versions") or {}, audit_seq=int(e.get("seq") or 0),
        operating_point=e.get("operating_point") or {}, nearest=e.get("nearest_distances") or [],
    )


# ------------------------------------------------------------------------------------------------ jobs


async def tick(rt: Runtime) -> int:
    """End dialogs left unanswered past the timeout (audited as expired); restart the work of dialogs stuck
    with nothing running (`watchdog`); deliver queued posts (call log and request threads).

    Returns how many dialogs expired.
    """
    minutes = rt.settings.slack.dialog_timeout_minutes
    limit = timedelta(minutes=minutes)
    expired = 0
    for dialog in await rt.io(rt.store.active):
        if dialog.step not in request.INPUT_STEPS:
            continue
        if rt.now() - datetime.fromisoformat(dialog.updated_at) < limit:
            continue  # checked here first so quiet dialogs take no lock and no write
        new = await transition(rt, dialog.dialog_id, lambda d: request.on_tick(d, rt.now(), minutes))
        if new is not None and new.step is request.Step.EXPIRED:
            expired += 1
    await watchdog(rt)
    if rt.calls.outbox_depth():
        await rt.calls.flush_outbox()
    return expired


def _working_on(rt: Runtime, dialog: Dialog) -> bool:
    """Whether this process has analysis or a search running (or about to start) for one of the dialog's
    images."""
    running: set[str] = rt.state.get("analysing", set()) | rt.state.get("searching", set())
    names = {t.get_name() for t in rt.tasks if not t.done()}
    return any(
        rid in running or f"analyse-{rid}" in names or f"search-{rid}" in names for rid in dialog.request_ids
    )


async def watchdog(rt: Runtime) -> int:
    """Restart the work of dialogs stuck finding faces or searching: no change for `rt.stuck_after` and no
    task running for any of their images (a task that died on an unexpected error). `request.resume` is
    applied again, as after a restart: analysis only of what was never analysed, and a search already in
    the audit log is posted again, not run again (search() checks its claim). A dialog is re-armed at most
    once per `stuck_after`. Returns how many dialogs were restarted."""
    now = rt.now()
    rearmed: dict[str, datetime] = rt.state.setdefault("watchdog", {})
    restarted = 0
    for dialog in await rt.io(rt.store.active):
        if dialog.step not in request.WORK_STEPS:
            continue
        since = max([datetime.fromisoformat(dialog.updated_at)]
                    + ([rearmed[dialog.dialog_id]] if dialog.dialog_id in rearmed else []))
        if now - since < rt.stuck_after or _working_on(rt, dialog):
            continue
        async with rt.lock(dialog.dialog_id):
            current = await rt.io(rt.store.get, dialog.dialog_id)
            effects = request.resume(current) if current is not None and not current.terminal else []
            if not effects:
                continue
            log.warning("dialog %s stuck at %s with nothing running since %s: resuming its work",
                        dialog.dialog_id, current.step.value, since.isoformat())
            rearmed[dialog.dialog_id] = now
            await apply(rt, current, effects)
        restarted += 1
    return restarted


ENDED_UNSEARCHED = ("cancelled", "expired", "error", "denied")


def audit_gaps(rt: Runtime) -> list[tuple[Dialog, ImageRequest]]:
    """Images whose dialog recorded an end (cancelled, expired, error) that the audit log does not hold: the
    dialog was saved, then the process stopped (or the audit write failed) before the entry was written."""
    audited = {e.get("request_id") for e in rt.core.audit.entries() if e.get("kind") == "search"}
    return [
        (dialog, image)
        for dialog in rt.store.all()
        for image in dialog.images
        if image.outcome in ENDED_UNSEARCHED and image.request_id not in audited
    ]


async def reconcile_audit(rt: Runtime) -> int:
    """At start: write the audit entries an interrupted run left unwritten (every use is documented)."""
    gaps = await rt.io(audit_gaps, rt)
    written = 0
    for dialog, image in gaps:
        async with rt.lock(dialog.dialog_id):
            # A transition that saved the ending may be writing its entry right now (it holds this lock).
            if await rt.io(rt.core.audit.find, request_id=image.request_id, kinds=["search"]):
                continue
            await _write_missing_entry(rt, dialog, image)
            written += 1
    if written:
        log.warning("wrote %d audit entries an interrupted run had left unwritten", written)
    return written


async def _write_missing_entry(rt: Runtime, dialog: Dialog, image: ImageRequest) -> None:
    """The audit entry of an image whose dialog recorded its end without one (marked recorded_at_restart)."""
    permalink = await rt.permalink(dialog.channel, dialog.thread_ts)
    await rt.io(
        service.record_ended, rt.core, outcome=image.outcome, request_id=image.request_id,
        answers=dialog.answers(), requester=_requester(dialog),
        source={**(await _source(rt, dialog, image, permalink)), "recorded_at_restart": True},
        error=image.error or None, faces=image.faces,
    )


async def resume_all(rt: Runtime) -> int:
    """After a restart: restart analysis not yet stored and searches not yet finished. Returns dialogs resumed."""
    resumed = 0
    for dialog in await rt.io(rt.store.active):
        effects = request.resume(dialog)
        if effects:
            async with rt.lock(dialog.dialog_id):
                await apply(rt, dialog, effects)
            resumed += 1
    return resumed


async def purge(rt: Runtime) -> dict[str, int]:
    """The daily retention job: `bot.retention.purge_expired` with this server's stores (dialog state and
    cached probes past `dialog_state_days`; audit entries only past `audit_retention_days`)."""
    report = await rt.io(
        retention.purge_expired, rt.settings, now=rt.now(), audit=rt.core.audit, dialog_store=rt.store,
    )
    rt.threads = await rt.io(rt.store.threads)  # forget the threads of purged dialogs
    if report.dialogs_removed or report.probe_files_removed or report.audit_removed or not report.ok:
        log.info("%s", report.text())
    return {"dialogs": report.dialogs_removed, "probes": report.probe_files_removed}
