"""The dialog stage: transitions of the request state machine, its effects turned into Slack calls, and the
entry points for replies, edits and buttons in a request thread.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bot import policy, service, wording
from bot.request import transitions
from bot.request.transitions import Dialog, Effect
from bot.slack import blocks, roles
from bot.slack.flow import approving, examining, searching
from bot.slack.flow.effects import (
    DONE_MARK,
    EYES,
    HOURGLASS,
    REPLY_SUBTYPES,
    WARNING_MARK,
    Next,
    claim,
    ephemeral,
    from_bot,
    load_dialog,
    post,
    post_essential,
    react,
    request_ended,
    requester_of,
    say_failed,
    show_card,
    source_fields,
    storage_retried,
    ts_time,
    upload,
)

if TYPE_CHECKING:
    from bot.slack.runtime import Runtime

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------- transitions


async def transition(
    rt: Runtime, dialog_id: str, step: Callable[[Dialog], transitions.Result], *, actor: str | None = None
) -> Dialog | None:
    """Apply one input to a dialog (read, transition, write as one locked step) and carry out its effects.

    The per-dialog lock keeps the messages of one transition together and in order. `actor` is who sent
    the input (a reply or a button), for the brief notes only they see.
    """
    async with rt.lock(dialog_id):
        return await _transition_locked(rt, dialog_id, step, actor=actor)


async def _transition_locked(
    rt: Runtime, dialog_id: str, step: Callable[[Dialog], transitions.Result], *, actor: str | None = None
) -> Dialog | None:
    """`transition` for a caller that already holds the dialog's lock."""
    outcome = await rt.io(rt.store.update, dialog_id, step)
    if outcome is None:
        return None
    dialog, effects = outcome
    await apply(rt, dialog, effects, actor=actor)
    return dialog


async def follow(rt: Runtime, work: Awaitable[Next | None]) -> None:
    """Run a stage's work, then carry out what it hands back (`effects.Next`): the dialog's transition (or the
    effects already returned), then its `then` step. A failing transition is logged and `then` still runs."""
    nxt = await work
    if nxt is None:
        return
    try:
        if nxt.step is not None:
            await transition(rt, nxt.dialog_id, nxt.step)
        elif nxt.dialog is not None:
            async with rt.lock(nxt.dialog_id):
                await apply(rt, nxt.dialog, list(nxt.effects))
    except Exception:
        log.exception("what follows the work on dialog %s failed", nxt.dialog_id)
    if nxt.then is not None:
        await nxt.then()


async def submit_approval(rt: Runtime, body: dict[str, Any], view: dict[str, Any]) -> dict[str, str]:
    """A supervisor's decision and reason (checked before the ack); the request goes on after the ack with what
    the approving stage hands back."""
    errors, after = await approving.submit_reason(rt, body, view)
    if after is not None:
        rt.spawn(follow(rt, after), name="approval-decided")
    return errors


def calls_of(rt: Runtime) -> transitions.Calls:
    """What the request dialog may know of dispatch's calls in this server (nothing without a dispatch channel)."""
    slack = rt.settings.slack
    if not slack.dispatch_channel:
        return transitions.Calls(require_known=slack.require_known_call)
    return transitions.Calls(known=rt.calls.known, recent=lambda: rt.calls.recent(slack.recent_call_hours),
                         require_known=slack.require_known_call)


async def apply(rt: Runtime, dialog: Dialog, effects: list[Effect], *, actor: str | None = None) -> None:
    """Carry out effects in order, then redraw the request card; one failing effect is logged and does not
    stop the rest."""
    for effect in effects:
        try:
            if await _apply(rt, dialog, effect, actor) is _STOP:
                break  # the dialog was ended (requester no longer authorised): nothing after it runs
        except Exception:
            log.exception("effect %s of dialog %s failed", type(effect).__name__, dialog.dialog_id)
    current = await rt.io(rt.store.get, dialog.dialog_id) or dialog
    try:
        await show_card(rt, current)
    except Exception:
        log.exception("the card of dialog %s could not be drawn", dialog.dialog_id)
    if current.terminal:
        _forget(rt, current)


_STOP = object()
QUESTION_STEP_VALUES = {s.value for s in transitions.QUESTION_STEPS}


async def _apply(rt: Runtime, dialog: Dialog, effect: Effect, actor: str | None) -> object:
    p = rt.settings.policy
    here = (dialog.channel, dialog.thread_ts)
    if isinstance(effect, transitions.Invalid):
        if dialog.started and effect.step in transitions.QUESTION_STEPS:
            await audit_refusal(rt, dialog, effect)
        await post(rt, *here, blocks.invalid(effect, dialog, p))
    elif isinstance(effect, transitions.ConfirmCall):
        await post(rt, *here, blocks.confirm_call(effect, dialog))
    elif isinstance(effect, transitions.Started):
        message_ts = dialog.photo_source.get("ts") if dialog.photo_source else None
        await react(rt, dialog.channel, message_ts or dialog.thread_ts, EYES)
    elif isinstance(effect, transitions.UnderReview):
        if effect.action == "cancel":
            await examining.cancel_review(rt, dialog, dialog.requester_id)
        else:
            await examining.review_status(rt, dialog, dialog.requester_id)
    elif isinstance(effect, transitions.NeedsApproval):
        await approving.ask(rt, dialog, effect.reason)
    elif isinstance(effect, transitions.Attested):
        # Authority is checked again now, before any search: a requester removed from the lists (or made a
        # guest) since the upload gets no search.
        if not await _still_authorised(rt, dialog):
            return _STOP
    elif isinstance(effect, transitions.Analyse):
        for rid in effect.request_ids:
            rt.spawn(follow(rt, rt.leased(f"work:{rid}", searching.analyse(rt, dialog.dialog_id, rid))),
                     name=f"analyse-{rid}")
    elif isinstance(effect, transitions.AskFace):
        await _show_faces(rt, dialog, effect)
    elif isinstance(effect, transitions.ImageFailed):
        await _image_failed(rt, dialog, effect)
    elif isinstance(effect, transitions.Search):
        work = searching.search(rt, dialog.dialog_id, effect.request_id, effect.face_index)
        rt.spawn(follow(rt, rt.leased(f"work:{effect.request_id}", work)), name=f"search-{effect.request_id}")
    elif isinstance(effect, transitions.NotRequester):
        await ephemeral(rt, dialog.channel, effect.user_id, dialog.thread_ts,
                        blocks.not_requester(dialog, effect.user_id))
    elif isinstance(effect, transitions.Cancelled):
        await _ended(rt, dialog, "cancelled", effect.request_ids)
    elif isinstance(effect, transitions.Expired):
        if (dialog.approval or {}).get("status") == "expired":  # no supervisor answered in approval_minutes
            for rid in effect.request_ids:
                await rt.io(rt.core.audit.append, "review", request_id=rid, action="timeout", by="system",
                            stage="approval")
        await _ended(rt, dialog, "expired", effect.request_ids)
    elif isinstance(effect, transitions.Done):
        await react(rt, dialog.channel, dialog.thread_ts, HOURGLASS, remove=True)
        if any(i.outcome == "review" for i in dialog.images):
            return None  # an examiner has it: the request is still open (👀 stays) until the release
        await request_ended(rt, dialog)
        # The flag would read "all searched": an image that failed, or was not searched, gets a ⚠ instead.
        failed = any(i.outcome in ("error", "cancelled", "expired", "denied") for i in dialog.images)
        await react(rt, dialog.channel, dialog.thread_ts, WARNING_MARK if failed else DONE_MARK)
    elif actor and isinstance(effect, (transitions.Busy, transitions.Stale, transitions.Closed)):
        # Only the person who replied or pressed needs to know their input changed nothing.
        note = {transitions.Busy: blocks.busy, transitions.Stale: blocks.stale, transitions.Closed: blocks.closed}
        await ephemeral(rt, dialog.channel, actor, dialog.thread_ts, note[type(effect)](dialog))
    else:  # Offer, OfferEnded: the card says it; nothing is audited for an offer
        log.debug("dialog %s: %s", dialog.dialog_id, effect)
    return None


async def audit_refusal(rt: Runtime, dialog: Dialog, effect: transitions.Invalid) -> None:
    """A refused answer, audited under each of the dialog's request ids (`refusal`, CONTRACTS)."""
    reason = blocks.invalid_text(effect, dialog, rt.settings.policy)
    for image in dialog.images:
        if image.status == transitions.DONE:
            continue
        await rt.io(
            service.record_refusal, rt.core, request_id=image.request_id, step=effect.step.value,
            reason=reason, text=effect.text or "", requester=requester_of(dialog),
            source={"source": "slack", "channel": dialog.channel, "thread_ts": dialog.thread_ts,
                    "dialog_id": dialog.dialog_id, "file_id": image.file_id},
        )


def _forget(rt: Runtime, dialog: Dialog) -> None:
    """Drop what this process kept in memory for an ended dialog (tasks still running keep their own refs)."""
    for image in dialog.images:
        for key in ("file_urls", "failures"):
            rt.state.get(key, {}).pop(image.request_id if key != "file_urls" else image.file_id, None)
    rt.state.get("permalinks", {}).pop(f"{dialog.channel}:{dialog.thread_ts}", None)
    rt.state.get("watchdog", {}).pop(dialog.dialog_id, None)
    rt.state.get("cards", {}).pop(dialog.dialog_id, None)
    rt.locks.pop(dialog.dialog_id, None)


async def _show_faces(rt: Runtime, dialog: Dialog, effect: transitions.AskFace) -> None:
    """Upload the photo with numbered boxes into the thread (the face buttons are on the card); when it
    cannot be attached, the numbers still match the faces left to right."""
    image = dialog.image(effect.request_id)
    if image is None:
        return
    cached = await rt.io(rt.probes.get, effect.request_id)
    attached = False
    if cached is not None and cached.annotated:
        # A JPEG (contact_sheet.annotate_faces); a probe cached before that change may still hold a PNG.
        ext = "png" if cached.annotated.startswith(b"\x89PNG") else "jpg"
        attached = await upload(
            rt, dialog.channel, dialog.thread_ts, cached.annotated,
            filename=f"{effect.request_id}-faces.{ext}", title=f"Faces found in {image.file_name}"[:200],
            comment=None,
        )
    if not attached:
        await post(rt, dialog.channel, dialog.thread_ts,
                   blocks.note(wording.FACE_IMAGE_NOT_ATTACHED, kind="faces_not_attached", dialog=dialog,
                               request_id=image.request_id))


async def _ended(rt: Runtime, dialog: Dialog, kind: str, request_ids: tuple[str, ...]) -> None:
    """A cancel or a timeout: audit each unfinished image, say so once, forget the probes."""
    permalink = await rt.permalink(dialog.channel, dialog.thread_ts)
    for rid in request_ids:
        image = dialog.image(rid)
        if image is None:
            continue
        await rt.io(
            service.record_ended, rt.core, outcome=kind, request_id=rid, answers=dialog.answers(),
            requester=requester_of(dialog), source=await source_fields(rt, dialog, image, permalink), faces=image.faces,
        )
        await rt.io(rt.probes.remove, rid)
    if kind == "expired":
        # The card says it too, but an edit notifies no one: the officer learns it from a new line.
        ended = blocks.ended(dialog, kind, timeout_minutes=rt.settings.slack.dialog_timeout_minutes,
                             request_ids=request_ids)
        await post_essential(rt, dialog.channel, dialog.thread_ts, ended)
    elif any(i.request_id not in request_ids and i.status == transitions.SEARCHING for i in dialog.images):
        await post(rt, dialog.channel, dialog.thread_ts, blocks.ended(dialog, kind, request_ids=request_ids))
    await request_ended(rt, dialog)


async def _image_failed(rt: Runtime, dialog: Dialog, effect: transitions.ImageFailed) -> None:
    """An image that cannot be searched: audit it as error, say why, log it on the call."""
    image = dialog.image(effect.request_id)
    if image is None:
        return
    # The failure's own words when this process saw it happen, else the dialog's code ("no_face", ...).
    reason, detail = rt.state.setdefault("failures", {}).pop(effect.request_id, (effect.reason, effect.reason))
    permalink = await rt.permalink(dialog.channel, dialog.thread_ts)
    source = {**(await source_fields(rt, dialog, image, permalink)), "probe_sha256": image.probe_sha256,
              "error_code": effect.reason}
    await rt.io(
        service.record_ended, rt.core, outcome="error", request_id=image.request_id, answers=dialog.answers(),
        requester=requester_of(dialog), source=source, error=f"{wording.image_problem(reason)} ({detail})",
        faces=image.faces,
    )
    await say_failed(rt, dialog, image, reason)
    # Never searched: nothing goes to the call's thread in the dispatch channel.
    await rt.io(rt.probes.remove, image.request_id)


async def _still_authorised(rt: Runtime, dialog: Dialog) -> bool:
    """Re-check the requester; when refused, audit every image not yet searched as denied, say why and end
    the dialog. A Slack outage is no refusal here: the requester was verified at the upload."""
    allowed, reason = await roles.can_request(rt, dialog.requester_id, await rt.channel_info(dialog.channel),
                                              fresh=True)
    if allowed:
        return True
    if reason == wording.ACCOUNT_NOT_VERIFIED:
        log.warning("could not re-check %s for dialog %s; verified at upload, going on",
                    dialog.requester_id, dialog.dialog_id)
        return True
    request_ids = tuple(i.request_id for i in dialog.images if i.status != transitions.DONE)
    permalink = await rt.permalink(dialog.channel, dialog.thread_ts)
    for rid in request_ids:
        image = dialog.image(rid)
        if image is not None:
            await rt.io(
                service.record_denied, rt.core, request_id=rid, answers=dialog.answers(), reasons=[reason or ""],
                requester=requester_of(dialog), source=await source_fields(rt, dialog, image, permalink),
            )
            await rt.io(rt.probes.remove, rid)  # never searched: its faces are not kept
    await post_essential(rt, dialog.channel, dialog.thread_ts,
                         blocks.refusal(reason or "", request_id=", ".join(request_ids), dialog=dialog))
    # Inside the caller's transition (it holds the lock): write the ending directly.
    await rt.io(rt.store.update, dialog.dialog_id, lambda d: transitions.on_refused(d, rt.now()))
    await request_ended(rt, dialog)
    return False


async def refuse(
    rt: Runtime, channel: str, thread_ts: str, ts: str, requester: service.Requester,
    images: list[dict[str, Any]], reason: str, *, private_to: str | None = None,
) -> None:
    """Refuse a request (who asked, or where): audit each image as denied, then say why in the thread (only
    to `private_to` when given: a colleague's refusal is nobody else's business). From someone on no list at
    all, the refusals are folded with that person's others (bot.audit.refusals)."""
    permalink = await rt.permalink(channel, ts)
    fold_at = rt.now() if await roles.holds_no_role(rt, requester.id) else None
    request_ids = []
    for f in images:
        rid = service.new_request_id()
        request_ids.append(rid)
        source = {
            "source": "slack", "channel": channel, "thread_ts": thread_ts, "permalink": permalink,
            "file_id": f["id"], "file_name": f.get("name"), "uploaded_at": ts_time(ts),
        }
        await rt.io(
            service.record_denied, rt.core, request_id=rid, answers=policy.Answers(), reasons=[reason],
            requester=requester, source=source, fold_at=fold_at,
        )
    message = blocks.refusal(reason, request_id=", ".join(request_ids))
    if private_to:
        await ephemeral(rt, channel, private_to, thread_ts, message)
    else:
        await post(rt, channel, thread_ts, message)


@storage_retried
async def handle_reply(rt: Runtime, body: dict[str, Any], dialog_id: str | None) -> None:
    """A person's reply in a request thread: an answer to the current step (only the requester's count)."""
    event = body.get("event") or {}
    dialog_id = await rt.resolved(dialog_id, body)
    if dialog_id is None or from_bot(rt, event) or event.get("subtype") not in REPLY_SUBTYPES:
        return
    user = event.get("user")
    if not user:
        return
    event_id = body.get("event_id") or f"{event.get('channel')}:{event.get('ts')}"
    text = event.get("text") or ""
    # The dialog's lock is taken first, before any await: replies sent in a burst (a phone coming back
    # online) are applied in the order they arrived, never an answer on the wrong step.
    async with rt.lock(dialog_id):
        if not await claim(rt, f"event:{event_id}"):
            return  # a redelivered reply must not answer the next question too
        if not await claim(rt, f"message:{event.get('channel')}:{event.get('ts')}"):
            return  # the same reply under another envelope: answered once already
        await _transition_locked(
            rt, dialog_id,
            lambda d: transitions.on_reply(
                d, user_id=user, text=text, now=rt.now(), policy=rt.settings.policy, calls=calls_of(rt),
                approval=rt.settings.review.approval,
            ),
            actor=user,
        )


@storage_retried
async def handle_edit(rt: Runtime, body: dict[str, Any]) -> None:
    """The requester edited a reply in a running request: edits are not read (the answer was taken as first
    sent), so say so privately, once per edit."""
    event = body.get("event") or {}
    message = event.get("message") or {}
    channel, user = event.get("channel"), message.get("user")
    dialog = await load_dialog(rt, await rt.dialog_of_thread(channel, message.get("thread_ts"), strict=True))
    if dialog is None or dialog.terminal or user != dialog.requester_id or from_bot(rt, message):
        return
    previous = event.get("previous_message") or {}
    if not message.get("edited") and message.get("text") == previous.get("text", message.get("text")):
        return  # Slack adding a link preview (unfurl) is not an edit
    if not await claim(rt, f"edit:{channel}:{message.get('ts')}:{event.get('event_ts') or event.get('ts')}"):
        return
    await ephemeral(rt, dialog.channel, user, dialog.thread_ts,
                    blocks.note(wording.EDIT_NOT_READ, kind="edit_not_read", dialog=dialog))


@storage_retried
async def handle_action(
    rt: Runtime, body: dict[str, Any], action: dict[str, Any], dialog_id: str | None
) -> None:
    """A button press in a request thread (purpose, attest, face, cancel); acked already.

    A button of an ended dialog never acts on a newer dialog in the same thread: the dialog id its actions
    block carries must be the thread's current dialog (else the presser gets the "request has ended" note).
    """
    dialog_id = await rt.resolved(dialog_id, body)
    if dialog_id is None:
        return
    user = (body.get("user") or {}).get("id")
    if not user:
        return
    if not await claim(rt, f"action:{action.get('action_ts')}:{user}:{action.get('action_id')}"):
        return
    owner = blocks.button_dialog_id(action.get("block_id"))
    if owner is None and str(action.get("action_id") or "").startswith(transitions.ACTION_CANCEL):
        owner = str(action.get("value") or "") or None  # the cancel button's value is its dialog id
    if owner is not None and owner != dialog_id:
        ended = await rt.io(rt.store.get, owner) or await load_dialog(rt, dialog_id)
        if ended is not None:
            await ephemeral(rt, ended.channel, user, ended.thread_ts, blocks.closed(ended))
        return
    await transition(
        rt, dialog_id,
        lambda d: transitions.on_action(
            d, user_id=user, action=str(action.get("action_id") or ""), value=str(action.get("value") or ""),
            now=rt.now(), policy=rt.settings.policy, calls=calls_of(rt),
                approval=rt.settings.review.approval,
        ),
        actor=user,
    )
