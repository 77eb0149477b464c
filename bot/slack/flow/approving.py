"""The approving stage ([review] approval "flagged" | "always"): after the attestation a request waits for a
supervisor (never its requester) to approve or refuse it, with a reason, in the review channel; unanswered
within `approval_minutes` it expires. Every step is a `review` audit entry (approve, refuse, timeout)."""
from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from slack_sdk.models.blocks import ButtonElement, InputBlock, PlainTextInputElement
from slack_sdk.models.views import View

from bot import policy, service, wording
from bot.controls import approval
from bot.request import transitions
from bot.request.transitions import Dialog
from bot.slack import blocks, roles
from bot.slack.calls import SLACK_ERRORS, error_text
from bot.slack.flow.effects import Next, ephemeral, post_essential, update

if TYPE_CHECKING:
    from bot.slack.runtime import Runtime

log = logging.getLogger(__name__)
ACTION_APPROVE, ACTION_REFUSE = "fr_approval_approve", "fr_approval_refuse"
REASON_CALLBACK = "fr_approval_reason"
REASON_BLOCK, REASON_ACTION = "fr_approval_reason_text", "value"
CLI = "cli:"  # an approval button's value for a command-line request: "cli:FR-..." (a dialog's id otherwise)


def _card(text: str, value: str, decided: str | None, meta: Any) -> blocks.Message:
    parts: list[Any] = [blocks._section(text)]
    if decided:
        parts.append(blocks._context(decided))
    else:
        parts.append(blocks._actions_block(f"approval:{value}"[:255], [
            ButtonElement(text=wording.APPROVE_BUTTON, action_id=ACTION_APPROVE, value=value, style="primary"),
            ButtonElement(text=wording.REFUSE_BUTTON, action_id=ACTION_REFUSE, value=value, style="danger"),
        ]))
    return blocks.Message(blocks._fallback(text), parts, meta)


def approval_message(dialog: Dialog, decided: str | None = None) -> blocks.Message:
    """The approval card in the review channel: the request and why it waits; the buttons until decided."""
    purpose = policy.purpose_by_code(dialog.purpose)
    reason = (dialog.approval or {}).get("reason", "")
    text = wording.approval_card(dialog.request_ids, dialog.requester_id, dialog.call_number or "",
                                 purpose.label if purpose else "", dialog.justification or "", reason)
    return _card(text, dialog.dialog_id, decided, blocks.meta("approval", dialog=dialog, reason=reason))


def cli_approval_message(p: approval.Pending, decided: str | None = None) -> blocks.Message:
    """The approval card of a command-line request (its buttons carry "cli:" and the request id)."""
    purpose = policy.purpose_by_code(p.answers.get("purpose"))
    who = service.cli_source(str(p.requester.get("name") or p.requester.get("id")), p.slack_user)["requester_label"]
    text = wording.approval_card([p.request_id], who,
                                 str(p.answers.get("call_number") or ""), purpose.label if purpose else "",
                                 str(p.answers.get("justification") or ""), p.reason)
    return _card(text, CLI + p.request_id, decided, blocks.meta(
        "approval", request_id=p.request_id, call_number=p.answers.get("call_number"), reason=p.reason))


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
    value = str(action.get("value") or "")
    if value.startswith(CLI):
        pending = await rt.io(rt.approvals.get, value.removeprefix(CLI))
        requesters = (pending.requester.get("id"), pending.slack_user) if pending else ()
    else:
        dialog = await rt.io(rt.store.get, value)
        requesters = (dialog.requester_id,) if dialog else ()
    channel = rt.settings.review.review_channel
    if not user:
        return
    if not requesters:  # decided long ago and purged ([retention]): the card is history
        await ephemeral(rt, channel, user, None, blocks.note(wording.APPROVAL_CLOSED, kind="approval_refused"))
        return
    if not await roles.may_approve(rt, user):
        await ephemeral(rt, channel, user, None, blocks.note(wording.NOT_SUPERVISOR, kind="approval_refused"))
        return
    if user in requesters:
        await ephemeral(rt, channel, user, None, blocks.note(wording.SUPERVISOR_IS_REQUESTER, kind="approval_refused"))
        return
    approve = str(action.get("action_id") or "").startswith(ACTION_APPROVE)
    view = View(type="modal", callback_id=REASON_CALLBACK, title=wording.APPROVAL_TITLE, submit=wording.APPROVAL_SUBMIT,
                close=wording.FORM_CLOSE, private_metadata=f"{value}|{'approve' if approve else 'refuse'}",
                blocks=[InputBlock(block_id=REASON_BLOCK, label=wording.APPROVAL_REASON_LABEL,
                                   element=PlainTextInputElement(action_id=REASON_ACTION, multiline=True,
                                                                 max_length=500))])
    try:
        await rt.client.views_open(trigger_id=str(body.get("trigger_id") or ""), view=view.to_dict())
    except SLACK_ERRORS as exc:
        log.warning("views.open for an approval failed: %s", error_text(exc))


async def submit_reason(
    rt: Runtime, body: dict[str, Any], view: dict[str, Any]
) -> tuple[dict[str, str], Awaitable[Next | None] | None]:
    """The supervisor's decision with its reason: the form's errors now, and the work to run after the ack (the
    audit entries, the card, the officer told of a refusal), which hands back the dialog's effects."""
    user = str((body.get("user") or {}).get("id") or "")
    dialog_id, _, verdict = str(view.get("private_metadata") or "").partition("|")
    values = ((view.get("state") or {}).get("values") or {}).get(REASON_BLOCK) or {}
    reason = " ".join(str((values.get(REASON_ACTION) or {}).get("value") or "").split())
    if not await roles.may_approve(rt, user):
        return {REASON_BLOCK: wording.NOT_SUPERVISOR}, None
    approved = verdict == "approve"
    if dialog_id.startswith(CLI):
        return await _decide_cli(rt, dialog_id.removeprefix(CLI), approved=approved, by=user, reason=reason), None
    async with rt.lock(dialog_id):
        outcome = await rt.io(rt.store.update, dialog_id, lambda d: transitions.on_approval(
            d, approved=approved, by=user, reason=reason, now=rt.now()))
    if outcome is None:
        return {REASON_BLOCK: wording.APPROVAL_CLOSED}, None
    dialog, effects = outcome
    if any(isinstance(e, transitions.NotRequester) for e in effects):
        return {REASON_BLOCK: wording.SUPERVISOR_IS_REQUESTER}, None
    if any(isinstance(e, transitions.Closed) for e in effects):
        return {REASON_BLOCK: wording.APPROVAL_CLOSED}, None

    async def after() -> Next:
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
        return Next(dialog.dialog_id, dialog=dialog, effects=tuple(effects))

    return {}, after()


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


# --------------------------------------------------------------------------- command-line requests (bot.controls.approval)


async def _decide_cli(rt: Runtime, request_id: str, *, approved: bool, by: str, reason: str) -> dict[str, str]:
    async with rt.lock(CLI + request_id):
        outcome = await rt.io(rt.approvals.update, request_id, lambda p: approval.decide(
            p, approved=approved, by=by, reason=reason, now=rt.now()))
    if outcome is None:
        return {REASON_BLOCK: wording.APPROVAL_CLOSED}
    pending, effects = outcome
    refused = next((e for e in effects if isinstance(e, approval.Refused)), None)
    if refused is not None:
        return {REASON_BLOCK: wording.SUPERVISOR_IS_REQUESTER if refused.why == "requester" else wording.APPROVAL_CLOSED}
    rt.spawn(_apply_cli(rt, pending, effects), name=f"approval-{request_id}")
    return {}


async def _apply_cli(rt: Runtime, pending: approval.Pending, effects: list[approval.Effect]) -> None:
    """Audit the decision, redraw the card, then end the request or run its search."""
    from bot.slack.flow.effects import to_cli_requester

    rid = pending.request_id
    for effect in effects:
        if isinstance(effect, approval.Audit):
            await rt.io(rt.core.audit.append, "review", request_id=rid, action=effect.action, by=effect.by,
                        reason=effect.reason, stage="approval", call_number=pending.answers.get("call_number"))
            decided = (wording.approval_expired_line(rt.settings.review.approval_minutes) if effect.action == "timeout"
                       else wording.approval_decided(effect.action == "approve", effect.by, effect.reason))
            if pending.card_ts:
                try:
                    await rt.client.chat_update(channel=rt.settings.review.review_channel, ts=pending.card_ts,
                                                **cli_approval_message(pending, decided).kwargs())
                except SLACK_ERRORS as exc:
                    log.warning("approval card update: %s", error_text(exc))
        elif isinstance(effect, approval.Ended):
            if effect.outcome == "denied":
                text = wording.approval_refused_line(effect.reason)
                await rt.io(service.record_denied, rt.core, request_id=rid, answers=pending.policy_answers(), reasons=[text],
                            requester=_requester(pending), source=pending.source)
            else:
                text = wording.approval_expired_line(rt.settings.review.approval_minutes)
                await rt.io(service.record_ended, rt.core, outcome="expired", request_id=rid,
                            answers=pending.policy_answers(), requester=_requester(pending), source=pending.source,
                            probe_sha256=pending.probe_sha256, faces=pending.faces, face_index=pending.face_index)
            await to_cli_requester(rt, pending.slack_user, pending.card_ts, blocks.note(
                f"{text} ({rid})", kind="approval_ended", request_id=rid))
        elif isinstance(effect, approval.Search):
            await search_approved(rt, pending)


def _requester(p: approval.Pending) -> service.Requester:
    return service.Requester(id=str(p.requester.get("id") or ""), name=str(p.requester.get("name") or ""))


async def search_approved(rt: Runtime, pending: approval.Pending) -> None:
    """An approved command-line request: the search from its kept template (once: a search already in the audit
    log is not run again), then the examiner queue or, in direct mode, the result to the requester."""
    import base64

    import numpy as np

    from bot import contact_sheet
    from bot.slack.flow.effects import to_cli_requester
    from bot.slack.flow.examining import apply_exam, post_comparison

    rid = pending.request_id
    async with rt.lock(CLI + rid):
        current = await rt.io(rt.approvals.get, rid)
        if current is None or current.status != approval.APPROVED or current.encoding is None:
            return
        examiner = rt.settings.review.mode == "examiner"
        if await rt.io(rt.core.audit.find, request_id=rid, kinds=["search"]):  # searched before a restart
            await rt.io(rt.approvals.update, rid, lambda p: approval.searched(p, rt.now()))
            return
        try:
            result = await rt.work(
                service.search_face, rt.core, request_id=rid, answers=current.policy_answers(), requester=_requester(current),
                source=current.source, probe_sha256=current.probe_sha256, faces=current.faces,
                encoding=np.asarray(current.encoding, dtype=np.float32), face_index=current.face_index,
                for_review=examiner)
        except Exception as exc:  # noqa: BLE001 - every way the search can fail ends the request audited
            error = str(exc) if isinstance(exc, (service.SearchUnavailable, PermissionError)) else (
                f"{type(exc).__name__}: {exc}"[:500])
            await rt.io(service.record_ended, rt.core, outcome="error", request_id=rid, answers=current.policy_answers(),
                        requester=_requester(current), source=current.source, error=error,
                        probe_sha256=current.probe_sha256, faces=current.faces, face_index=current.face_index)
            result = None
        face_jpeg = base64.b64decode(current.face_jpeg) if current.face_jpeg else None
        await rt.io(rt.approvals.update, rid, lambda p: approval.searched(p, rt.now()))
    if result is None:
        await to_cli_requester(rt, current.slack_user, current.card_ts, blocks.note(
            wording.cli_search_failed(rid), kind="image_failed", request_id=rid))
        return
    if result.outcome != "review":
        await to_cli_requester(rt, current.slack_user, current.card_ts, blocks.result(
            None, None, result, None, min_face_px=rt.settings.images.min_face_px))
        return
    source = service.cli_source(_requester(current).name, current.slack_user)
    exam, effects = await rt.io(
        service.queue_examination, rt.exams, result, current.policy_answers(), requester_id=_requester(current).id,
        reviewers_required=rt.settings.review.reviewers_required, now=rt.now(),
        source={**source, "approved_by": current.decided_by})
    card_ts = await apply_exam(rt, exam, effects)
    if card_ts:
        sheet = await rt.work(contact_sheet.comparison_for, rt.core.gallery, result, face_jpeg)
        await post_comparison(rt, card_ts, rid, sheet)


async def tick(rt: Runtime) -> None:
    """Command-line requests: post the approval card of each new one, expire those unanswered, and run the
    search of any approved one whose search did not run (a restart between the approval and the search)."""
    for pending in await rt.io(rt.approvals.all):
        if pending.extra.get("card_stale"):  # cancelled from the command line: the card says so, buttons gone
            if pending.card_ts:
                await update(rt, rt.settings.review.review_channel, pending.card_ts,
                             cli_approval_message(pending, wording.APPROVAL_CANCELLED))
            await rt.io(rt.approvals.update, pending.request_id, approval.card_shown)
        if not pending.open:
            continue
        if pending.status == approval.APPROVED:
            await search_approved(rt, pending)
            continue
        if not pending.card_ts and rt.settings.review.review_channel:
            try:
                resp = await rt.client.chat_postMessage(channel=rt.settings.review.review_channel,
                                                        **cli_approval_message(pending).kwargs())
                ts = str(resp["ts"])

                def keep(p: approval.Pending, ts: str = ts) -> tuple[approval.Pending, list]:
                    p = p.copy()
                    p.card_ts = ts
                    return p, []

                await rt.io(rt.approvals.update, pending.request_id, keep)
            except SLACK_ERRORS as exc:
                log.error("approval card of %s: %s", pending.request_id, error_text(exc))
        async with rt.lock(CLI + pending.request_id):
            outcome = await rt.io(rt.approvals.update, pending.request_id, lambda p: approval.on_tick(
                p, rt.now(), rt.settings.review.approval_minutes))
        if outcome is not None and outcome[1]:
            await _apply_cli(rt, *outcome)
