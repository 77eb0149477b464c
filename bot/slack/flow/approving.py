"""The approving stage ([review] approval "flagged" | "always"): after the attestation a request waits for a
supervisor (never its requester) to approve or refuse it, with a reason, in the review channel; unanswered
within `approval_minutes` it expires. Every step is a `review` audit entry (approve, refuse, timeout)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_sdk.models.blocks import ButtonElement, InputBlock, PlainTextInputElement
from slack_sdk.models.views import View

from bot import policy, request, wording
from bot.request import Dialog
from bot.slack import blocks, roles
from bot.slack.calls import SLACK_ERRORS, error_text
from bot.slack.flow.effects import ephemeral, post_essential

if TYPE_CHECKING:
    from bot.slack.runtime import Runtime

log = logging.getLogger(__name__)
ACTION_APPROVE, ACTION_REFUSE = "fr_approval_approve", "fr_approval_refuse"
REASON_CALLBACK = "fr_approval_reason"
REASON_BLOCK, REASON_ACTION = "fr_approval_reason_text", "value"


def approval_message(dialog: Dialog, decided: str | None = None) -> blocks.Message:
    """The approval card in the review channel: the request and why it waits; the buttons until decided."""
    purpose = policy.purpose_by_code(dialog.purpose)
    reason = (dialog.approval or {}).get("reason", "")
    text = wording.approval_card(dialog.request_ids, dialog.requester_id, dialog.call_number or "",
                                 purpose.label if purpose else "", dialog.justification or "", reason)
    parts: list[Any] = [blocks._section(text)]
    if decided:
        parts.append(blocks._context(decided))
    else:
        parts.append(blocks._actions_block(f"approval:{dialog.dialog_id}", [
            ButtonElement(text=wording.APPROVE_BUTTON, action_id=ACTION_APPROVE, value=dialog.dialog_id, style="primary"),
            ButtonElement(text=wording.REFUSE_BUTTON, action_id=ACTION_REFUSE, value=dialog.dialog_id, style="danger"),
        ]))
    return blocks.Message(blocks._fallback(text), parts, blocks.meta("approval", dialog=dialog, reason=reason))


async def ask(rt: Runtime, dialog: Dialog, reason: str) -> None:
    """Post the approval card and tell the officer the request waits, and why."""
    rt.core.audit.append("review", request_id=dialog.request_ids[0], action="queued", by="system", stage="approval",
                         reason=reason, request_ids=list(dialog.request_ids))
    try:
        resp = await rt.client.chat_postMessage(channel=rt.settings.review.review_channel,
                                                **approval_message(dialog).kwargs())
        card_ts = str(resp["ts"])

        def keep(d: Dialog) -> tuple[Dialog, list]:  # with the dialog: a restart still updates the same card
            d = d.copy()
            d.approval = {**(d.approval or {}), "card_ts": card_ts}
            return d, []

        await rt.io(rt.store.update, dialog.dialog_id, keep)
    except SLACK_ERRORS as exc:
        log.error("approval card of %s: %s", dialog.dialog_id, error_text(exc))
    await post_essential(rt, dialog.channel, dialog.thread_ts, blocks.note(
        wording.approval_waiting(reason, rt.settings.review.approval_minutes), kind="approval_waiting", dialog=dialog))


async def handle_button(rt: Runtime, body: dict[str, Any], action: dict[str, Any]) -> None:
    """Approve or Refuse: a supervisor gets the reason form; anyone else a private note."""
    user = str((body.get("user") or {}).get("id") or "")
    dialog = await rt.io(rt.store.get, str(action.get("value") or ""))
    if dialog is None or not user:
        return
    channel = rt.settings.review.review_channel
    if not await roles.is_supervisor(rt, user):
        await ephemeral(rt, channel, user, None, blocks.note(wording.NOT_SUPERVISOR, kind="approval_refused"))
        return
    if user == dialog.requester_id:
        await ephemeral(rt, channel, user, None, blocks.note(wording.SUPERVISOR_IS_REQUESTER, kind="approval_refused"))
        return
    approve = str(action.get("action_id") or "").startswith(ACTION_APPROVE)
    view = View(type="modal", callback_id=REASON_CALLBACK, title=wording.APPROVAL_TITLE, submit=wording.APPROVAL_SUBMIT,
                close=wording.FORM_CLOSE, private_metadata=f"{dialog.dialog_id}|{'approve' if approve else 'refuse'}",
                blocks=[InputBlock(block_id=REASON_BLOCK, label=wording.APPROVAL_REASON_LABEL,
                                   element=PlainTextInputElement(action_id=REASON_ACTION, multiline=True,
                                                                 max_length=500))])
    try:
        await rt.client.views_open(trigger_id=str(body.get("trigger_id") or ""), view=view.to_dict())
    except SLACK_ERRORS as exc:
        log.warning("views.open for an approval failed: %s", error_text(exc))


async def submit_reason(rt: Runtime, body: dict[str, Any], view: dict[str, Any]) -> dict[str, str]:
    """The supervisor's decision with its reason; the request goes on (or ends) after the ack."""
    from bot.slack.flow.dialog import apply

    user = str((body.get("user") or {}).get("id") or "")
    dialog_id, _, verdict = str(view.get("private_metadata") or "").partition("|")
    values = ((view.get("state") or {}).get("values") or {}).get(REASON_BLOCK) or {}
    reason = " ".join(str((values.get(REASON_ACTION) or {}).get("value") or "").split())
    if not await roles.is_supervisor(rt, user):
        return {REASON_BLOCK: wording.NOT_SUPERVISOR}
    approved = verdict == "approve"
    async with rt.lock(dialog_id):
        outcome = await rt.io(rt.store.update, dialog_id, lambda d: request.on_approval(
            d, approved=approved, by=user, reason=reason, now=rt.now()))
    if outcome is None:
        return {REASON_BLOCK: wording.EXAM_CLOSED}
    dialog, effects = outcome
    if any(isinstance(e, request.NotRequester) for e in effects):
        return {REASON_BLOCK: wording.SUPERVISOR_IS_REQUESTER}
    if any(isinstance(e, request.Closed) for e in effects):
        return {REASON_BLOCK: wording.EXAM_CLOSED}

    async def after() -> None:
        for rid in dialog.request_ids:
            rt.core.audit.append("review", request_id=rid, action="approve" if approved else "refuse", by=user,
                                 reason=reason, stage="approval")
        ts = (dialog.approval or {}).get("card_ts")
        if ts:
            try:
                await rt.client.chat_update(channel=rt.settings.review.review_channel, ts=ts, **approval_message(
                    dialog, wording.approval_decided(approved, user, reason)).kwargs())
            except SLACK_ERRORS as exc:
                log.warning("approval card update: %s", error_text(exc))
        if not approved:
            await refused(rt, dialog, reason)
        async with rt.lock(dialog.dialog_id):
            await apply(rt, dialog, effects)

    rt.spawn(after(), name=f"approval-{dialog_id}")
    return {}


async def refused(rt: Runtime, dialog: Dialog, reason: str) -> None:
    """A supervisor refused: every image audited as denied, and the officer told why."""
    from bot import service
    from bot.slack.flow.effects import requester_of, source_fields

    permalink = await rt.permalink(dialog.channel, dialog.thread_ts)
    text = wording.approval_refused_line(reason)
    for image in dialog.images:
        await rt.io(service.record_denied, rt.core, request_id=image.request_id, answers=dialog.answers(),
                    reasons=[text], requester=requester_of(dialog),
                    source=await source_fields(rt, dialog, image, permalink))
        await rt.io(rt.probes.remove, image.request_id)
    await post_essential(rt, dialog.channel, dialog.thread_ts,
                         blocks.refusal(text, request_id=", ".join(dialog.request_ids), dialog=dialog))
