"""The request card (one message per upload, updated in place) and the form (a Slack modal).

The card is drawn from the dialog alone, so any process can redraw it after a restart: the offer while the
upload only has one; then the answers as read (✓), the question that is out (•), each photo's state (faces
found, the face chosen, a problem said at once), the attestation with its button once the three answers are
in, and the outcome. Replies and the buttons answer it; the form answers the three questions at once, with
inline errors (`response_action: errors`), and the card then shows them before the attestation.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    InputBlock,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    RadioButtonsElement,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot import policy as _policy
from bot import wording
from bot.config import Settings
from bot.faces.quality import level_of
from bot.faces.quality import problems as quality_problems
from bot.request import transitions
from bot.request.transitions import Dialog, ImageRequest, Step
from bot.slack.blocks import (
    ACTIONS_LIMIT,
    MAX_FACE_BUTTON_BLOCKS,
    Message,
    _actions,
    _cancel_button,
    _context,
    _fallback,
    _section,
    invalid_text,
    meta,
)

FORM_CALLBACK = "fr_form_submit"
FORM_FIELDS = {  # field -> (block id, action id): the ids view_submission errors and values use
    "call_number": ("fr_form_call", "value"),
    "purpose": ("fr_form_purpose", "value"),
    "justification": ("fr_form_justification", "value"),
}
STEP_FIELDS = {Step.CALL_NUMBER: "call_number", Step.PURPOSE: "purpose", Step.JUSTIFICATION: "justification"}


# --- the card -------------------------------------------------------------------------------------------------


def _face_note(face: dict[str, Any] | None) -> str | None:
    if face is None:
        return None
    return wording.card_quality(level_of(face), quality_problems(face.get("quality") or {})
                                if isinstance(face.get("quality"), dict) else ())


def _photo_line(image: ImageRequest) -> str:
    faces = list(image.faces or ())
    name = image.file_name
    if image.status == transitions.PENDING:
        return wording.CARD_PHOTO_READING
    if image.status == transitions.DONE and image.outcome == "error" and (image.error and not image.face_index):
        return wording.card_photo_problem(name, wording.card_problem(image.error))
    if image.status == transitions.NEEDS_FACE:
        return wording.card_photo_choose(name, len(faces))
    chosen = next((f for f in faces if f.get("index") == image.face_index), None)
    if len(faces) > 1 and image.face_index:
        return wording.card_photo_chosen(name, image.face_index, len(faces), _face_note(chosen))
    if faces:
        return wording.card_photo_one_face(name, _face_note(chosen or faces[0]))
    return wording.card_photo_problem(name, wording.card_problem(image.error or "no_face"))


def _face_buttons(dialog: Dialog, image: ImageRequest, first_block: int) -> list[Block]:
    buttons = [
        ButtonElement(
            text=wording.face_button(int(f.get("index", k)), level_of(f) == "too_small"),
            action_id=f"{transitions.ACTION_FACE}:{f.get('index', k)}",
            value=f"{image.request_id}:{f.get('index', k)}",
        )
        for k, f in enumerate(image.faces or (), start=1)
    ]
    chunks = [buttons[i:i + ACTIONS_LIMIT] for i in range(0, len(buttons), ACTIONS_LIMIT)][:MAX_FACE_BUTTON_BLOCKS]
    return [_actions(dialog, first_block + n, chunk) for n, chunk in enumerate(chunks)]


def _when(value: str | None, timezone: str) -> str:
    try:
        return datetime.fromisoformat(value or "").astimezone(ZoneInfo(timezone)).strftime("%H:%M")
    except (ValueError, KeyError):
        return ""


def _answer_lines(dialog: Dialog, settings: Settings) -> list[str]:
    """✓ for each answer as read, • for the one asked now (the later ones are not shown yet)."""
    example = _policy.example_call_number(settings.policy.call_number_pattern)
    lines: list[str] = []
    if dialog.call_number:
        lines.append(wording.card_call_number(dialog.call_number))
    elif dialog.pending_call:
        lines.append(wording.card_confirm_call(dialog.pending_call, dialog.suggestions,
                                               settings.slack.recent_call_hours))
        return lines
    else:
        lines.append(wording.card_ask_call_number(example))
        return lines
    purpose = _policy.purpose_by_code(dialog.purpose)
    if purpose:
        lines.append(wording.card_purpose(purpose.number, purpose.label))
    else:
        lines.append(wording.CARD_ASK_PURPOSE)
        return lines
    if dialog.justification:
        lines.append(wording.card_justification(dialog.justification))
        if "protected_class" in dialog.flags:
            lines.append(wording.CARD_FLAG_PROTECTED)
    else:
        lines.append(wording.card_ask_justification(settings.policy.justification_min_chars))
        return lines
    if dialog.attested:
        lines.append(wording.card_attested(_when(dialog.answer_times.get("attestation"), settings.timezone)))
    return lines


def _question_buttons(dialog: Dialog) -> list[ButtonElement]:
    if dialog.step is Step.CALL_NUMBER and dialog.pending_call:
        return [ButtonElement(text=wording.use_call_button(c), action_id=f"{transitions.ACTION_CALL}:{k}", value=c)
                for k, c in enumerate([dialog.pending_call, *dialog.suggestions], start=1)]
    if dialog.step is Step.PURPOSE:
        return [ButtonElement(text=wording.purpose_button(p.number, p.label),
                              action_id=f"{transitions.ACTION_PURPOSE}:{p.number}", value=p.code)
                for p in _policy.PURPOSES]
    return []


def _form_button() -> ButtonElement:
    return ButtonElement(text=wording.FORM_BUTTON, action_id=transitions.ACTION_FORM, value="form")


def _outcome_line(dialog: Dialog) -> str | None:
    if dialog.step is Step.SEARCHING:
        return wording.CARD_SEARCHING
    if dialog.step is Step.ANALYSING:
        return wording.CARD_WAITING_FACES
    if dialog.step is Step.AWAITING_APPROVAL:
        return wording.CARD_AWAITING_APPROVAL
    if not dialog.terminal:
        return None
    outcomes = [i.outcome for i in dialog.images if i.outcome]
    if dialog.step is Step.CANCELLED and "denied" in outcomes:
        return wording.card_outcome("denied")
    if dialog.step in (Step.CANCELLED, Step.EXPIRED):
        return wording.card_outcome("cancelled" if dialog.step is Step.CANCELLED else "expired")
    if "review" in outcomes:
        return wording.card_outcome("review")
    if any(o in ("candidates", "no_candidate") for o in outcomes):
        return wording.card_outcome("candidates")
    return wording.card_outcome("error")


def offer(dialog: Dialog) -> Message:
    """The single offer on an upload that did not ask for a search: Start, the form, or a reply."""
    if dialog.terminal:
        text = wording.OFFER_ENDED
        return Message(_fallback(text), [_context(text)], meta("card", dialog=dialog, step=dialog.step,
                                                                 started=False))
    text = wording.OFFER_TEXT
    start = ButtonElement(text=wording.START_BUTTON, action_id=transitions.ACTION_START, value=dialog.dialog_id,
                          style="primary")
    blocks: list[Block] = [_section(text), _actions(dialog, 1, [start, _form_button()])]
    return Message(_fallback(text), blocks, meta("card", dialog=dialog, step=dialog.step, started=False))


def request_card(dialog: Dialog, settings: Settings) -> Message:
    """The request card as the dialog stands now (the offer, before the request started)."""
    if not dialog.started:
        return offer(dialog)
    header = wording.card_header(dialog.request_ids, dialog.requester_id,
                                 (dialog.photo_source or {}).get("id"))
    blocks: list[Block] = [_section(header)]
    lines = [_photo_line(i) for i in dialog.images] + _answer_lines(dialog, settings)
    blocks.append(_section("\n".join(lines)))
    n = 1
    for image in dialog.images:
        if image.status == transitions.NEEDS_FACE and not dialog.terminal:
            face_blocks = _face_buttons(dialog, image, n)
            blocks += face_blocks
            n += len(face_blocks)
    if dialog.step is Step.ATTESTATION:
        blocks.append(_section(wording.ATTESTATION))
        blocks.append(_context(wording.CARD_ASK_ATTESTATION))
        attest = ButtonElement(text=wording.ATTEST_BUTTON, action_id=transitions.ACTION_ATTEST, value="attest",
                               style="primary")
        blocks.append(_actions(dialog, n, [attest, _cancel_button(dialog)]))
    elif dialog.step in (Step.CALL_NUMBER, Step.PURPOSE, Step.JUSTIFICATION):
        blocks.append(_actions(dialog, n, [*_question_buttons(dialog), _form_button(), _cancel_button(dialog)]))
    elif dialog.step is Step.FACE_CHOICE:
        blocks.append(_actions(dialog, n, [_cancel_button(dialog)]))
    outcome = _outcome_line(dialog)
    if outcome:
        blocks.append(_context(outcome))
    asked = next((i.request_id for i in dialog.images if i.status == transitions.NEEDS_FACE and i.face_asked), None)
    return Message(_fallback(header, *lines), blocks[:50],
                   meta("card", dialog=dialog, step=dialog.step, started=True,
                        flags=",".join(dialog.flags) or None, face_request=asked))


# --- the form ---------------------------------------------------------------------------------------------------


def form_view(dialog: Dialog, settings: Settings, errors: dict[str, str] | None = None) -> dict[str, Any]:
    """The modal: call number, purpose and justification, pre-filled with what the card already holds.
    `private_metadata` is the dialog id, so the submission finds its request."""
    example = _policy.example_call_number(settings.policy.call_number_pattern)
    options = [Option(value=p.code, text=wording.purpose_button(p.number, p.label)) for p in _policy.PURPOSES]
    chosen = next((o for o in options if o.value == dialog.purpose), None)
    call_block, call_action = FORM_FIELDS["call_number"]
    purpose_block, purpose_action = FORM_FIELDS["purpose"]
    just_block, just_action = FORM_FIELDS["justification"]
    blocks: list[Block] = [
        SectionBlock(text=PlainTextObject(text=wording.FORM_INTRO)),
        InputBlock(block_id=call_block, label=wording.FORM_CALL_LABEL,
                   element=PlainTextInputElement(action_id=call_action, initial_value=dialog.call_number
                                                 or dialog.pending_call or None,
                                                 placeholder=example or None, max_length=100)),
        InputBlock(block_id=purpose_block, label=wording.FORM_PURPOSE_LABEL,
                   element=RadioButtonsElement(action_id=purpose_action, options=options, initial_option=chosen)),
        InputBlock(block_id=just_block, label=wording.FORM_JUSTIFICATION_LABEL, hint=wording.FORM_JUSTIFICATION_HINT,
                   element=PlainTextInputElement(action_id=just_action, multiline=True, max_length=2000,
                                                 initial_value=dialog.justification or None)),
    ]
    view = View(type="modal", callback_id=FORM_CALLBACK, title=wording.FORM_TITLE, submit=wording.FORM_SUBMIT,
                close=wording.FORM_CLOSE, private_metadata=dialog.dialog_id, blocks=blocks)
    return view.to_dict()


def form_values(view: dict[str, Any]) -> dict[str, str]:
    """The three answers of a submitted form (empty strings for what was left out)."""
    values = (view.get("state") or {}).get("values") or {}
    out: dict[str, str] = {}
    for field, (block, action) in FORM_FIELDS.items():
        element = (values.get(block) or {}).get(action) or {}
        if element.get("type") == "radio_buttons" or "selected_option" in element:
            out[field] = str(((element.get("selected_option") or {}).get("value")) or "")
        else:
            out[field] = str(element.get("value") or "")
    return out


def form_errors(effects: list[transitions.Effect], settings: Settings) -> dict[str, str]:
    """Inline errors for the form, keyed by block id, from the refused answers of `on_form`."""
    errors: dict[str, str] = {}
    for effect in effects:
        if isinstance(effect, transitions.Invalid) and effect.step in STEP_FIELDS:
            block = FORM_FIELDS[STEP_FIELDS[effect.step]][0]
            text = wording.FORM_PURPOSE_MISSING if effect.step is Step.PURPOSE and effect.reason is None \
                else invalid_text(effect, None, settings.policy)
            errors[block] = _plain(text)[:150]
    return errors


def _plain(text: str) -> str:
    """mrkdwn to plain text for an input's error (Slack shows it as is)."""
    return text.replace("*", "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


__all__ = ["FORM_CALLBACK", "form_errors", "form_values", "form_view", "offer", "request_card"]
