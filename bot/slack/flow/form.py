"""The form stage: the request form (a Slack modal) opened from the card or the shortcut, and its submission.

The submission is checked before Slack's 3-second ack, so refused answers show inline under their fields
(`response_action: errors`); the answers that pass are kept on the card either way, and every refused one is
audited like a refused reply. The attestation is never in the form: it follows the summary on the card.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot import wording
from bot.request import transitions
from bot.slack import blocks, card
from bot.slack.calls import SLACK_ERRORS, error_text
from bot.slack.flow.dialog import apply, audit_refusal, calls_of
from bot.slack.flow.effects import ephemeral, load_dialog

if TYPE_CHECKING:
    from bot.slack.runtime import Runtime

log = logging.getLogger(__name__)


async def show_form(rt: Runtime, trigger_id: str, dialog: transitions.Dialog) -> bool:
    """views.open with the form for this dialog; False when Slack refuses (an expired trigger)."""
    try:
        await rt.client.views_open(trigger_id=trigger_id, view=card.form_view(dialog, rt.settings))
        return True
    except SLACK_ERRORS as exc:
        log.warning("views.open failed: %s", error_text(exc))
        return False


async def open_form(rt: Runtime, body: dict[str, Any], dialog_id: str | None) -> None:
    """The card's Fill in a form button: the form for the requester; anyone else a private note."""
    user = (body.get("user") or {}).get("id")
    dialog = await load_dialog(rt, dialog_id)
    if dialog is None or not user:
        return
    if user != dialog.requester_id:
        await ephemeral(rt, dialog.channel, user, dialog.thread_ts, blocks.not_requester(dialog, user))
        return
    if dialog.terminal or dialog.attested:
        await ephemeral(rt, dialog.channel, user, dialog.thread_ts, blocks.closed(dialog))
        return
    await show_form(rt, str(body.get("trigger_id") or ""), dialog)


async def submit_form(rt: Runtime, body: dict[str, Any], view: dict[str, Any]) -> dict[str, str]:
    """Apply a submitted form to its dialog; returns the inline errors (block id -> text), empty when every
    answer was taken. The card is redrawn (and refused answers audited) after the ack."""
    user = str((body.get("user") or {}).get("id") or "")
    dialog_id = str(view.get("private_metadata") or "")
    values = card.form_values(view)
    first_block = card.FORM_FIELDS["call_number"][0]
    if not dialog_id or await load_dialog(rt, dialog_id) is None:
        return {first_block: wording.FORM_CLOSED}
    async with rt.lock(dialog_id):
        outcome = await rt.io(rt.store.update, dialog_id, lambda d: transitions.on_form(
            d, user_id=user, call_number=values["call_number"], purpose=values["purpose"] or None,
            justification=values["justification"], now=rt.now(), policy=rt.settings.policy, calls=calls_of(rt)))
    if outcome is None:
        return {first_block: wording.FORM_CLOSED}
    dialog, effects = outcome
    if any(isinstance(e, (transitions.Closed, transitions.NotRequester)) for e in effects):
        return {first_block: wording.FORM_CLOSED}
    rt.spawn(_after_form(rt, dialog, effects), name=f"form-{dialog_id}")
    return card.form_errors(effects, rt.settings)


async def _after_form(rt: Runtime, dialog: transitions.Dialog, effects: list[transitions.Effect]) -> None:
    """The form's effects once acked: refused answers audited (shown inline, not posted), the rest applied."""
    async with rt.lock(dialog.dialog_id):
        for effect in effects:
            if isinstance(effect, transitions.Invalid) and effect.step in transitions.QUESTION_STEPS:
                await audit_refusal(rt, dialog, effect)
        await apply(rt, dialog, [e for e in effects if not isinstance(e, transitions.Invalid)])
