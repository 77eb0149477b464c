"""The examiner's review card (in the review channel, updated in place), its note form, and what the requester is
told: "an examiner is reviewing", then the released leads, caveat first. Metadata type stays "fr_search";
kinds are "examination*" so nobody confuses them with command staff's `/frs` review answers."""
from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import Block, ButtonElement, DividerBlock, InputBlock, PlainTextInputElement
from slack_sdk.models.views import View

from bot import policy, wording
from bot.controls import examination as ex
from bot.slack.blocks import Message, _actions_block, _context, _fallback, _section, meta

ACTION_CLAIM = "fr_exam_claim"
ACTION_GIVE_BACK = "fr_exam_give_back"
ACTION_DECIDE = "fr_exam_decide"
ACTION_RELEASE = "fr_exam_release"
NOTE_CALLBACK = "fr_exam_note"
NOTE_BLOCK, NOTE_ACTION = "fr_exam_note_text", "value"


def _estimate(c: dict[str, Any], point: dict[str, Any]) -> str:
    return wording.estimate_text(c.get("fpir_estimate"), bool(c.get("below_resolution")), point)


def _candidate_text(c: dict[str, Any], point: dict[str, Any]) -> str:
    return wording.candidate_line(int(c.get("rank") or 0), str(c.get("name") or c["subject_id"]),
                                       str(c["subject_id"]), str(c.get("record_ref") or ""),
                                       float(c.get("distance") or 0.0), _estimate(c, point))


def review_card(exam: ex.Examination) -> Message:
    """The card as the review stands: the request, the candidates, who has it, the buttons of its state."""
    purpose = policy.purpose_by_code(exam.purpose)
    point = exam.source.get("operating_point") or {}
    blocks: list[Block] = [
        _section(wording.exam_card_header(exam.request_id, exam.urgent)),
        _section(wording.exam_card_request(exam.call_number, purpose.label if purpose else exam.purpose,
                                           exam.source.get("requester_label") or exam.requester_id,
                                           exam.justification)),
    ]
    if exam.source.get("quality_note"):
        blocks.append(_context(str(exam.source["quality_note"])))
    blocks.append(_section("\n".join(_candidate_text(c, point) for c in exam.candidates)))
    decided = len(exam.current)
    blocks.append(_context(wording.exam_status(exam.status, claimed_by=exam.claimed_by, decided=decided,
                                               total=len(exam.candidates), round_no=len(exam.rounds) + 1,
                                               rounds=exam.reviewers_required)))
    rid = exam.request_id
    if exam.status == ex.QUEUED:
        blocks.append(_actions_block(f"exam:{rid}:claim", [
            ButtonElement(text=wording.EXAM_CLAIM_BUTTON, action_id=ACTION_CLAIM, value=rid, style="primary")]))
    elif exam.status == ex.CLAIMED:
        for c in exam.candidates:
            buttons = [ButtonElement(text=f"{c.get('rank')}. {label}"[:75], action_id=f"{ACTION_DECIDE}:{k}",
                                     value=f"{rid}|{c['subject_id']}|{decision}")
                       for k, (decision, label) in enumerate(wording.EXAM_DECISION_BUTTONS.items())]
            blocks.append(_actions_block(f"exam:{rid}:{c['subject_id']}"[:255], buttons))
        blocks.append(_actions_block(f"exam:{rid}:end", [
            ButtonElement(text=wording.EXAM_RELEASE_BUTTON, action_id=ACTION_RELEASE, value=rid, style="primary"),
            ButtonElement(text=wording.EXAM_GIVE_BACK_BUTTON, action_id=ACTION_GIVE_BACK, value=rid)]))
    text = wording.exam_card_header(exam.request_id, exam.urgent)
    return Message(_fallback(text), blocks[:50],
                   meta("examination", request_id=rid, call_number=exam.call_number, status=exam.status,
                        urgent=exam.urgent))


def note_view(request_id: str, subject_id: str, error: str | None = None) -> dict[str, Any]:
    """The modal asking a possible lead's note (which features agree)."""
    view = View(type="modal", callback_id=NOTE_CALLBACK, title=wording.EXAM_NOTE_TITLE,
                submit=wording.EXAM_NOTE_SUBMIT, close=wording.FORM_CLOSE,
                private_metadata=f"{request_id}|{subject_id}",
                blocks=[InputBlock(block_id=NOTE_BLOCK, label=wording.EXAM_NOTE_LABEL,
                                   element=PlainTextInputElement(action_id=NOTE_ACTION, multiline=True,
                                                                 max_length=ex.MAX_NOTE_CHARS))])
    return view.to_dict()


def waiting(dialog: Any, request_id: str) -> Message:
    """In the request thread, instead of candidates: an examiner reviews them first."""
    text = wording.EXAM_WAITING_REQUESTER
    return Message(_fallback(wording.CAVEAT_SHORT, text), [_section(text)],
                   meta("examination_queued", dialog=dialog, request_id=request_id, outcome="review"))


def released(dialog: Any, exam: ex.Examination, effect: ex.Released, call_link: str | None) -> Message:
    """The requester's result after review: the caveat first, the released leads with the examiner's name and
    note, the inconclusive count; ruled-out candidates are never shown."""
    point = exam.source.get("operating_point") or {}
    blocks: list[Block] = [_section(wording.result_caveat(bool(effect.leads))),
                           _section(wording.exam_released_header(exam.request_id, len(effect.leads)))]
    for c in effect.leads:
        blocks.append(_section(_candidate_text(c, point)))
        blocks.append(_context(wording.exam_lead_note(c.get("notes") or [])))
    if effect.inconclusive:
        blocks.append(_context(wording.exam_inconclusive(len(effect.inconclusive))))
    blocks += [DividerBlock(), _section(wording.document_reminder(exam.request_id))]
    if call_link:
        blocks.append(_context(wording.call_thread_logged(call_link)))
    outcome = "candidates" if effect.leads else "no_candidate"
    return Message(_fallback(wording.CAVEAT_SHORT, wording.exam_released_header(exam.request_id, len(effect.leads))),
                   blocks[:50], meta("result", dialog=dialog, request_id=exam.request_id, outcome=outcome,
                                     candidate_count=len(effect.leads), examined=True))


def ended(dialog: Any, request_id: str) -> Message:
    text = wording.EXAM_CANCELLED
    return Message(_fallback(text), [_section(text)],
                   meta("examination_cancelled", dialog=dialog, request_id=request_id, outcome="cancelled"))
