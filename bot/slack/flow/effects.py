"""Slack calls of the request flow, each tolerating failure (logged), and the helpers every stage shares.

What the officer must not miss (result, an image's failure, the dialog's end, the face question) is queued on disk
when Slack is down (`post_essential`) and delivered by the next tick.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from slack_sdk.errors import SlackApiError

from bot import service
from bot.faces.gallery import Candidate
from bot.request.transitions import Dialog, ImageRequest, Result
from bot.slack import blocks, roles
from bot.slack.calls import SLACK_ERRORS, error_text
from bot.store.backend import is_database_outage
from bot.store.spool import SpoolFull

if TYPE_CHECKING:
    from bot.slack.runtime import Runtime

log = logging.getLogger(__name__)

T = TypeVar("T")

EYES = "eyes"  # the upload was seen and a request is open (removed when the request ends, however it ends)
HOURGLASS = "hourglass_flowing_sand"  # a search is running
# Every image has its result. A chequered flag says "finished" and nothing about the result: a ✅ (or a ☑,
# still a tick) on a face photo reads as "match confirmed", which GO 375.01 says a result never is.
DONE_MARK = "checkered_flag"
WARNING_MARK = "warning"  # every image has its outcome, and at least one could not be searched
IMAGE_TYPES = frozenset({"jpg", "jpeg", "png", "gif", "webp", "heic", "heif", "bmp", "tiff", "tif"})
# Message subtypes a person's thread reply can have (a reply also sent to the channel is thread_broadcast).
REPLY_SUBTYPES = (None, "thread_broadcast")


@dataclass(frozen=True)
class Next:
    """What a stage hands back when its work is done, for the dialog stage to carry out: run `step` on the stored
    dialog (read, transition, write under its lock) and apply the effects it returns, or apply `effects` already
    returned for `dialog`; then `then`, whatever happened before it. Stages never call the dialog stage: a
    stage that called it back would close an import circle (the dialog stage starts every stage)."""

    dialog_id: str
    step: Callable[[Dialog], Result] | None = None
    dialog: Dialog | None = None
    effects: tuple = ()
    then: Callable[[], Awaitable[object]] | None = None


class ImageFailure(Exception):
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


async def to_cli_requester(rt: Runtime, slack_user: str | None, card_ts: str | None, message: blocks.Message) -> None:
    """What a command-line requester must get (a release, an approved search's result): by direct message to the
    Slack account their OS account is mapped to ([review] cli_slack_users), else (or when that account is a guest
    or deactivated now, or the direct message cannot be opened) in the thread of its card in the review channel,
    for the examiners to pass on."""
    if slack_user and not await roles.is_member_account(rt, slack_user):
        log.warning("the Slack account mapped to a CLI requester is not a full member now: review channel instead")
        slack_user = None
    if slack_user:
        try:
            resp = await rt.client.conversations_open(users=slack_user)
            dm = str((resp.get("channel") or {}).get("id") or "")
        except SLACK_ERRORS as exc:
            log.error("conversations.open with a CLI requester failed: %s", error_text(exc))
            dm = ""
        if dm:
            await post_essential(rt, dm, None, message)
            return
    await post_essential(rt, rt.settings.review.review_channel, card_ts, message)


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


async def request_ended(rt: Runtime, dialog: Dialog) -> None:
    """The request is over (done, cancelled, expired or refused): the 👀 "request open" mark leaves the photo."""
    await react(rt, dialog.channel, dialog.thread_ts, EYES, remove=True)


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

    def __init__(self, rt: Runtime, channel: str, thread_ts: str, ts: str | None = None) -> None:
        self.rt, self.channel, self.thread_ts, self.interval = rt, channel, thread_ts, rt.status_interval
        self.ts: str | None = ts  # an existing message to update (a card posted before a restart)
        self._last = 0.0
        self._shown: dict[str, Any] | None = None
        self._held: blocks.Message | None = None
        self._pump: asyncio.Task | None = None
        self._first = asyncio.Lock()

    async def show(self, message: blocks.Message) -> str | None:
        """Post or update the message; returns its ts once posted (an update may follow later). The same
        content twice is not sent again."""
        async with self._first:
            if self.ts is None:
                self.ts = await post(self.rt, self.channel, self.thread_ts, message)
                self._last = time.monotonic()
                self._shown = message.kwargs()
                return self.ts
        if message.kwargs() == self._shown and self._held is None:
            return self.ts
        self._held = message
        if self._pump is None or self._pump.done():
            self._pump = self.rt.spawn(self._send_held(), name="status-update")
        return self.ts

    async def _send_held(self) -> None:
        while self._held is not None and self.ts is not None:
            wait = self._last + self.interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            message, self._held = self._held, None
            if message.kwargs() != self._shown:
                await update(self.rt, self.channel, self.ts, message)
                self._shown = message.kwargs()
            self._last = time.monotonic()


async def show_card(rt: Runtime, dialog: Dialog) -> None:
    """Draw the dialog's request card (the offer first): posted once, then updated in place at most once a
    second. Its ts is kept with the dialog, so a restart updates the same message."""
    from bot.slack import card  # card builds on blocks; imported here to keep this module's imports light

    cards: dict[str, StatusMessage] = rt.state.setdefault("cards", {})
    shown = cards.get(dialog.dialog_id)
    if shown is None:
        shown = cards[dialog.dialog_id] = StatusMessage(rt, dialog.channel, dialog.thread_ts, dialog.card_ts)
    ts = await shown.show(card.request_card(dialog, rt.settings))
    if ts and ts != dialog.card_ts:
        def keep(d: Dialog) -> tuple[Dialog, list]:
            d = d.copy()
            d.card_ts = ts
            return d, []

        await rt.io(rt.store.update, dialog.dialog_id, keep)


# ---------------------------------------------------------------------------------------------- helpers


def from_bot(rt: Runtime, event: dict[str, Any]) -> bool:
    """Bot messages (any bot, this one included) never start a request and never answer a dialog."""
    return bool(
        event.get("bot_id")
        or event.get("subtype") == "bot_message"
        or (rt.bot_user_id is not None and event.get("user") == rt.bot_user_id)
    )


def is_image(file: dict[str, Any]) -> bool:
    mimetype = str(file.get("mimetype") or "")
    if mimetype:
        return mimetype.startswith("image/")
    return str(file.get("filetype") or "").lower() in IMAGE_TYPES


def ts_time(ts: str) -> str:
    """A Slack ts as UTC ISO 8601."""
    try:
        return datetime.fromtimestamp(float(ts), UTC).isoformat()
    except (TypeError, ValueError):
        return ""


def requester_of(dialog: Dialog) -> service.Requester:
    return service.Requester(dialog.requester_id, dialog.requester_name)


async def source_fields(rt: Runtime, dialog: Dialog, image: ImageRequest, permalink: str | None) -> dict[str, Any]:
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
        "started_at": dialog.started_at,
        "flags": list(dialog.flags),
        "photo_source": dict(dialog.photo_source) if dialog.photo_source else None,
    }


# Keys claimed by the current attempt of a storage-retried entry point (`storage_retried`): its retry must not
# take its own earlier claims for a redelivery.
_OWNED_CLAIMS: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("owned_claims", default=None)


async def claim(rt: Runtime, key: str) -> bool:
    """True the first time `key` is seen (persisted; see DialogStore.claim), and again within a retry of the
    entry point that claimed it."""
    owned = _OWNED_CLAIMS.get()
    if owned is not None and key in owned:
        return True
    fresh = await rt.io(rt.store.claim, key, rt.now())
    if fresh and owned is not None:
        owned.add(key)
    return fresh


# errno values that mean the data dir cannot take a write now (full, over quota, read-only, failing disk).
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})
# Seconds between the retries of an upload, reply or button press whose state could not be saved (about an
# hour in all); the runtime may shorten them (tests).
STORAGE_RETRY_DELAYS: tuple[float, ...] = (30.0, 60.0, 120.0, 300.0, 600.0, 600.0, 600.0, 600.0)


def is_storage_error(exc: BaseException) -> bool:
    """A write to the data dir failed for lack of room or a failing disk (not a network error)."""
    return isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS


def _thread_of(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(channel, thread ts) an event or interaction payload belongs to, to tell the officer there."""
    event = body.get("event")
    if isinstance(event, dict):
        message = event.get("message") if event.get("subtype") == "message_changed" else event
        message = message or {}
        return event.get("channel"), message.get("thread_ts") or message.get("ts")
    message = body.get("message") or {}
    container = body.get("container") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
    return channel, message.get("thread_ts") or container.get("thread_ts") or message.get("ts")


# Entry points wrapped by `storage_retried`, by name: a spooled input names the one to run again after a restart.
_SPOOLABLE: dict[str, Callable[..., Awaitable[None]]] = {}


def storage_retried(handler: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Wrap an entry point `handler(rt, body, ...)`: when saving its state fails (disk full, I/O error), the
    input goes to the spool (space reserved at start, so it survives a restart) and the officer is told at once
    that nothing is lost; it is tried again later (and at the next start) until it is applied; after about an
    hour the officer is told to post again. When the spool has no room, the officer is told at once to post
    again. Claims the failed attempt made stay its own, so the retry is not taken for a redelivery."""
    name = f"{handler.__module__}.{handler.__qualname__}"

    @functools.wraps(handler)
    async def run(rt: Runtime, body: dict[str, Any], *args: Any, _spooled: int | None = None,
                  _claims: tuple[str, ...] = (), **kwargs: Any) -> None:
        token = _OWNED_CLAIMS.set(set(_claims))
        spooled = _spooled
        try:
            delays = getattr(rt, "storage_retry_delays", STORAGE_RETRY_DELAYS)
            for attempt in range(len(delays) + 1):
                try:
                    await handler(rt, body, *args, **kwargs)
                    if spooled is not None:
                        await rt.io(rt.spool.done, spooled)
                    return
                except Exception as exc:
                    outage = is_database_outage(exc)
                    if not (is_storage_error(exc) or outage):
                        raise
                    last = attempt == len(delays)
                    log.error("%s could not save its state (%s); %s", handler.__name__,
                              "the database did not answer" if outage else exc.strerror or exc,
                              "giving up" if last else f"retrying in {delays[attempt]:g} s")
                    channel, thread_ts = _thread_of(body)
                    if outage:
                        rt.database_back.clear()
                    if spooled is None:
                        record = {"handler": name, "body": body, "args": list(args), "kwargs": kwargs,
                                  "claims": sorted(_OWNED_CLAIMS.get() or ())}
                        try:
                            spooled = await rt.io(rt.spool.add, record)
                        except SpoolFull as full:
                            log.error("%s could not be spooled either (%s): the officer is told to post again",
                                      handler.__name__, full)
                            if channel and thread_ts:
                                await post(rt, channel, thread_ts, blocks.storage_failed(gave_up=True,
                                                                                         spool_full=True))
                            return
                        if channel and thread_ts and not (outage and _told_delayed(rt, channel, thread_ts)):
                            await post(rt, channel, thread_ts, blocks.storage_failed(gave_up=False, database=outage))
                    if last:
                        await rt.io(rt.spool.done, spooled)
                        if channel and thread_ts:
                            await post(rt, channel, thread_ts, blocks.storage_failed(gave_up=True))
                        return
                    if outage:  # woken as soon as the database answers again (bot.slack.server's beat)
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(rt.database_back.wait(), delays[attempt])
                    else:
                        await asyncio.sleep(delays[attempt])
        finally:
            _OWNED_CLAIMS.reset(token)

    _SPOOLABLE[name] = run
    return run


def _told_delayed(rt: Runtime, channel: str, thread_ts: str) -> bool:
    """Whether this thread was told of the database outage already (once per outage: the beat that sees the
    database back forgets them); marks it told."""
    told: set[tuple[str, str]] = rt.state.setdefault("told_delayed", set())
    if (channel, thread_ts) in told:
        return True
    told.add((channel, thread_ts))
    return False


async def replay_spool(rt: Runtime) -> int:
    """At start: run again every input an earlier process left in the spool (oldest first; this process retries
    its own), each as its own task with the claims its failed attempt made; returns how many."""
    pending = await rt.io(functools.partial(rt.spool.pending, inherited=True))
    for record_id, record in pending:
        run = _SPOOLABLE.get(str(record.get("handler")))
        if run is None:  # a handler renamed by an upgrade: nothing can apply it
            log.error("spooled input %d names an unknown handler %r: dropped", record_id, record.get("handler"))
            await rt.io(rt.spool.done, record_id)
            continue
        rt.spawn(run(rt, record["body"], *record.get("args") or (), _spooled=record_id,
                     _claims=tuple(record.get("claims") or ()), **record.get("kwargs") or {}),
                 name=f"spooled-{record_id}")
    return len(pending)


async def load_dialog(rt: Runtime, dialog_id: str | None) -> Dialog | None:
    """The dialog the middleware found for this thread, read after the ack."""
    return await rt.io(rt.store.get, dialog_id) if dialog_id else None


# ------------------------------------------------------------------------------ shared by the stages


async def say_failed(rt: Runtime, dialog: Dialog, image: ImageRequest, reason: str) -> None:
    """Tell the officer an image was not searched, in a new message (an edit notifies no one; queued when
    Slack is down); the card says it too."""
    await post_essential(rt, dialog.channel, dialog.thread_ts, blocks.image_failed(dialog, image, reason))


async def log_call(
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


def audited_result(rt: Runtime, request_id: str,
                   outcomes: tuple[str, ...] = ("candidates", "no_candidate")) -> service.SearchResult | None:
    """The result of a search the audit log already holds for this request (candidates or none), else None.

    Names and record references come from the gallery as it is now; a subject removed since shows its id.
    """
    entries = [
        e for e in rt.core.audit.find(request_id=request_id, kinds=["search"])
        if e.get("outcome") in outcomes
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
        operating_point=e.get("operating_point") or {}, for_review=e.get("outcome") == "review",
    )


async def private_channel_problem(rt: Runtime, setting: str, channel: str, what: str) -> str | None:
    """Why `channel` (the setting named `setting`, e.g. "[review] review_channel") may not hold what it is for, one
    sentence, or None: the bot must read it, and it must be private (`what` says why) and the department's own."""
    info = await rt.channel_info(channel)
    if not info:
        return f"{setting} {channel} cannot be read: invite the bot to that private channel (or fix the ID)"
    if info.get("is_ext_shared"):
        return f"{setting} {channel} is shared with another organisation: use one of the department's own"
    if not (info.get("is_private") or info.get("is_group")):
        return f"{setting} {channel} is public: {what}, so they need a private channel"
    return None
