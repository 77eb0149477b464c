"""The examining stage ([review] mode "examiner"): a search's candidates go to the review channel, not to the
requester; examiners claim, decide and release there; the requester then gets the released leads, and the
call-thread log entry follows the release. Every step is a `review` audit entry.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from bot import service, wording
from bot.controls import examination as ex
from bot.faces.quality import level_of
from bot.faces.quality import problems as quality_problems
from bot.request.transitions import Dialog, ImageRequest
from bot.slack import blocks, exam_card, roles
from bot.slack.calls import SLACK_ERRORS, error_text
from bot.slack.flow.effects import (
    DONE_MARK,
    audited_result,
    ephemeral,
    log_call,
    post,
    post_essential,
    react,
    request_ended,
    to_cli_requester,
    upload,
)

if TYPE_CHECKING:
    from bot.slack.runtime import Runtime

log = logging.getLogger(__name__)


def _audit(rt: Runtime, exam: ex.Examination, effect: ex.Audit) -> None:
    fields: dict[str, Any] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in effect.fields}
    for key in ("subject_id", "decision", "note"):
        if getattr(effect, key) is not None:
            fields[key] = getattr(effect, key)
    rt.core.audit.append("review", request_id=exam.request_id, action=effect.action, by=effect.by,
                         call_number=exam.call_number, **fields)


async def queue_for_review(rt: Runtime, dialog: Dialog, image: ImageRequest, result: service.SearchResult,
                           probe_sheet: bytes | None) -> None:
    """Queue the search's candidates for an examiner (once: a resumed search finds its review), post the review
    card and its comparison sheet, and tell the requester a review is under way."""
    if await rt.io(rt.exams.get, image.request_id) is not None:
        return
    face = next((f for f in image.faces or [] if f.get("index") == image.face_index), None)
    note = None
    if face is not None and level_of(face) != "ok":
        note = wording.card_quality(level_of(face), quality_problems(face.get("quality") or {})
                                    if isinstance(face.get("quality"), dict) else ())
    exam, effects = await rt.io(
        service.queue_examination, rt.exams, result, dialog.answers(), requester_id=dialog.requester_id,
        reviewers_required=rt.settings.review.reviewers_required, now=rt.now(),
        source={"channel": dialog.channel, "thread_ts": dialog.thread_ts, "dialog_id": dialog.dialog_id,
                "quality_note": note, "approved_by": (dialog.approval or {}).get("by")})
    card_ts = await apply_exam(rt, exam, effects)
    if probe_sheet is not None and card_ts:
        await post_comparison(rt, card_ts, exam.request_id, probe_sheet)
    await post_essential(rt, dialog.channel, dialog.thread_ts, exam_card.waiting(dialog, image.request_id))


async def apply_exam(rt: Runtime, exam: ex.Examination, effects: list[ex.Effect], *,
                     actor: str | None = None) -> str | None:
    """Carry out an examination's effects, then redraw its review card; returns the card's ts."""
    channel = rt.settings.review.review_channel
    for effect in effects:
        try:
            if isinstance(effect, ex.Audit):
                await rt.io(_audit, rt, exam, effect)
                if effect.action == "decision" and effect.by == actor:
                    # Only the claimer sees their decision (the card shows none: the second review is blind).
                    c = next((c for c in exam.candidates if c["subject_id"] == effect.subject_id), {})
                    text = wording.exam_decision_recorded(int(c.get("rank") or 0), str(c.get("name") or effect.subject_id),
                                                          effect.decision or "")
                    await ephemeral(rt, channel, effect.by, exam.source.get("card_ts"),
                                    blocks.note(text, kind="examination_decision", request_id=exam.request_id))
            elif isinstance(effect, ex.Refused):
                await ephemeral(rt, channel, effect.user_id, exam.source.get("card_ts"),
                                blocks.note(effect.reason, kind="examination_refused", request_id=exam.request_id))
            elif isinstance(effect, ex.Ping):
                text = wording.exam_ping(rt.settings.review.examiner_groups, exam.request_id, exam.urgent)
                await post(rt, channel, exam.source.get("card_ts"),
                           blocks.note(text, kind="examination_ping", request_id=exam.request_id))
            elif isinstance(effect, ex.Released):
                await _released(rt, exam, effect)
            elif isinstance(effect, ex.Ended):
                await post_essential(rt, exam.source["channel"], exam.source["thread_ts"],
                                     exam_card.ended(None, exam.request_id))
        except Exception:
            log.exception("effect %s of review %s failed", type(effect).__name__, exam.request_id)
    if all(isinstance(effect, ex.Refused) for effect in effects):
        return exam.source.get("card_ts")  # a refused press changes nothing: its private note is all
    return await _show_card(rt, exam)


async def _show_card(rt: Runtime, exam: ex.Examination) -> str | None:
    """Post the review card, or redraw it (coalesced: see `_redraw`); returns the card's ts."""
    current = await rt.io(rt.exams.get, exam.request_id) or exam
    channel = rt.settings.review.review_channel
    ts = current.source.get("card_ts")
    if ts:
        await _redraw(rt, exam.request_id)
        return ts
    try:
        resp = await rt.client.chat_postMessage(channel=channel, **exam_card.review_card(current).kwargs())
    except SLACK_ERRORS as exc:
        log.error("review card of %s: %s", exam.request_id, error_text(exc))
        return ts

    def keep(e: ex.Examination) -> tuple[ex.Examination, list]:
        e = e.copy()
        e.source["card_ts"] = str(resp["ts"])
        return e, []

    await rt.io(rt.exams.update, exam.request_id, keep)
    return str(resp["ts"])


async def _redraw(rt: Runtime, request_id: str) -> None:
    """Redraw a review card at most once per `rt.status_interval`: a change within that window of the last
    redraw is drawn once, when it ends, with the state of that moment (so the last state is always drawn, and a
    burst of presses spends one chat.update, not one each: Slack's update budget is shared by every card)."""
    last: dict[str, float] = rt.state.setdefault("exam_card_drawn", {})
    due: set[str] = rt.state.setdefault("exam_card_due", set())
    if request_id in due:
        return  # a redraw is already due: it draws the newest state
    wait = last.get(request_id, float("-inf")) + rt.status_interval - time.monotonic()
    if wait > 0:
        due.add(request_id)
        rt.spawn(_redraw_later(rt, request_id, wait), name=f"exam-card-{request_id}")
        return
    async with rt.lock("exam-card:" + request_id):  # one redraw of a card at a time, in order
        now = last[request_id] = time.monotonic()
        for old in [k for k, at in last.items() if now - at > rt.status_interval]:  # they restrict nothing now
            del last[old]
        current = await rt.io(rt.exams.get, request_id)
        ts = current.source.get("card_ts") if current else None
        if current is None or not ts:
            return
        try:
            await rt.client.chat_update(channel=rt.settings.review.review_channel, ts=ts,
                                        **exam_card.review_card(current).kwargs())
        except SLACK_ERRORS as exc:
            log.error("review card of %s: %s", request_id, error_text(exc))


async def _redraw_later(rt: Runtime, request_id: str, wait: float) -> None:
    await asyncio.sleep(wait)
    rt.state["exam_card_due"].discard(request_id)
    await _redraw(rt, request_id)


async def post_comparison(rt: Runtime, card_ts: str, request_id: str, sheet: bytes) -> bool:
    """The comparison sheet (JPEG) in the review card's thread; False when the upload failed."""
    return await upload(rt, rt.settings.review.review_channel, card_ts, sheet, filename=f"{request_id}-comparison.jpg",
                        title=wording.comparison_upload_title(request_id), comment=None)


async def _post_cli_card(rt: Runtime, exam: ex.Examination) -> None:
    """The card of a review the CLI queued, and the comparison sheet the CLI left in the store (then deleted:
    the photo's face is not kept once it is in the review channel)."""
    card_ts = await _show_card(rt, exam)
    if not card_ts or not exam.source.get("sheet"):
        return
    sheets = rt.core.backend.sheets()
    sheet = await rt.io(sheets.get, exam.request_id)
    if sheet is not None and await post_comparison(rt, card_ts, exam.request_id, sheet):
        await rt.io(sheets.remove, exam.request_id)


async def _released(rt: Runtime, exam: ex.Examination, effect: ex.Released) -> None:
    """The requester's result after review, then the call-thread log entry (the log follows the release)."""
    if exam.source.get("cli"):  # no request thread: the mapped Slack account, else the review card's thread
        await to_cli_requester(rt, exam.source.get("requester_slack"), exam.source.get("card_ts"),
                               exam_card.released(None, exam, effect, None))
        return
    dialog = await rt.io(rt.store.get, exam.source.get("dialog_id") or "")
    call_link = await rt.calls.thread_permalink(exam.call_number) if exam.call_number else None
    await post_essential(rt, exam.source["channel"], exam.source["thread_ts"],
                         exam_card.released(dialog, exam, effect, call_link))
    if dialog is not None:  # the request is over now: 👀 leaves, the neutral finished mark goes on the photo
        await request_ended(rt, dialog)
        await react(rt, dialog.channel, dialog.thread_ts, DONE_MARK)
    result = await rt.io(audited_result, rt, exam.request_id, ("review",))
    image = dialog.image(exam.request_id) if dialog else None
    if dialog is None or image is None or result is None:
        return
    leads = {c["subject_id"] for c in effect.leads}
    shown = [c for c in result.candidates if c.subject_id in leads]
    result.candidates, result.for_review = shown, False
    permalink = await rt.permalink(dialog.channel, dialog.thread_ts)
    await log_call(rt, dialog, image, outcome=result.outcome, result=result, permalink=permalink)


async def handle_exam_action(rt: Runtime, body: dict[str, Any], action: dict[str, Any]) -> None:
    """Claim, give back, decide, release: examiners only (a private note to anyone else)."""
    user = str((body.get("user") or {}).get("id") or "")
    action_id = str(action.get("action_id") or "").partition(":")[0]
    value = str(action.get("value") or "")
    request_id, _, rest = value.partition("|")
    exam = await rt.io(rt.exams.get, request_id)
    if exam is None or not user:
        return
    if not await roles.may_examine(rt, user):
        await apply_exam(rt, exam, [ex.Refused(user, wording.EXAM_NOT_EXAMINER)])
        return
    now = rt.now()
    if action_id == exam_card.ACTION_DECIDE:
        subject_id, _, decision = rest.partition("|")
        if decision == ex.POSSIBLE_LEAD:  # a lead needs its note: the form opens (the trigger lasts 3 s)
            if exam.claimed_by != user:
                await apply_exam(rt, exam, [ex.Refused(user, wording.EXAM_NOT_CLAIMED_BY_YOU)])
                return
            try:
                await rt.client.views_open(trigger_id=str(body.get("trigger_id") or ""),
                                           view=exam_card.note_view(request_id, subject_id))
            except SLACK_ERRORS as exc:
                log.warning("views.open for a lead's note failed: %s", error_text(exc))
            return
        step = lambda e: ex.decide(e, user, subject_id, decision, "", now)
    else:
        step = {exam_card.ACTION_CLAIM: lambda e: ex.claim(e, user, now),
                exam_card.ACTION_GIVE_BACK: lambda e: ex.give_back(e, user, now),
                exam_card.ACTION_RELEASE: lambda e: ex.release(e, user, now)}.get(action_id)
        if step is None:
            return
    async with rt.lock("exam:" + request_id):
        outcome = await rt.io(rt.exams.update, request_id, step)
        if outcome is not None:
            await apply_exam(rt, *outcome, actor=user)


async def submit_exam_note(rt: Runtime, body: dict[str, Any], view: dict[str, Any]) -> dict[str, str]:
    """The note of a possible lead: recorded with the decision, or an inline error."""
    user = str((body.get("user") or {}).get("id") or "")
    request_id, _, subject_id = str(view.get("private_metadata") or "").partition("|")
    values = ((view.get("state") or {}).get("values") or {}).get(exam_card.NOTE_BLOCK) or {}
    note = str((values.get(exam_card.NOTE_ACTION) or {}).get("value") or "")
    if not await roles.may_examine(rt, user):
        return {exam_card.NOTE_BLOCK: wording.EXAM_NOT_EXAMINER}
    async with rt.lock("exam:" + request_id):
        outcome = await rt.io(rt.exams.update, request_id,
                              lambda e: ex.decide(e, user, subject_id, ex.POSSIBLE_LEAD, note, rt.now()))
    if outcome is None:
        return {exam_card.NOTE_BLOCK: wording.EXAM_CLOSED}
    exam, effects = outcome
    refused = [e for e in effects if isinstance(e, ex.Refused)]
    if refused:
        return {exam_card.NOTE_BLOCK: refused[0].reason[:150]}
    rt.spawn(apply_exam(rt, exam, effects, actor=user), name=f"exam-note-{request_id}")
    return {}


async def cancel_review(rt: Runtime, dialog: Dialog, user: str) -> None:
    """The requester's `cancel` in the thread of a search under review: withdrawn while unclaimed."""
    for image in dialog.images:
        if image.outcome != "review":
            continue
        async with rt.lock("exam:" + image.request_id):
            outcome = await rt.io(rt.exams.update, image.request_id, lambda e: ex.cancel(e, user, rt.now()))
        if outcome is not None:
            exam, effects = outcome
            for e in effects:
                if isinstance(e, ex.Refused):  # tell the requester in their thread, not the review channel
                    await ephemeral(rt, dialog.channel, user, dialog.thread_ts,
                                    blocks.note(e.reason, kind="examination_refused", request_id=exam.request_id))
            await apply_exam(rt, exam, [e for e in effects if not isinstance(e, ex.Refused)])


async def review_status(rt: Runtime, dialog: Dialog, user: str) -> None:
    """`status` from the requester: where each review of the thread stands, privately."""
    for image in dialog.images:
        exam = await rt.io(rt.exams.get, image.request_id) if image.outcome == "review" else None
        if exam is not None:
            await ephemeral(rt, dialog.channel, user, dialog.thread_ts, blocks.note(
                ex.requester_status(exam), kind="examination_status", request_id=exam.request_id))


def _card_shown(exam: ex.Examination) -> ex.Result:
    e = exam.copy()
    e.source.pop("card_stale", None)
    return e, []


async def tick(rt: Runtime) -> None:
    """Idle claims back to the queue; unclaimed reviews ping the examiners again."""
    review = rt.settings.review
    for exam in await rt.io(rt.exams.all):
        if exam.source.get("card_stale"):  # cancelled from the command line: the card is redrawn
            await _show_card(rt, exam)
            await rt.io(rt.exams.update, exam.request_id, _card_shown)
        if not exam.open:
            continue
        if not exam.source.get("card_ts"):  # queued by the CLI: its card (and comparison sheet) is posted now
            await _post_cli_card(rt, exam)
        async with rt.lock("exam:" + exam.request_id):
            outcome = await rt.io(rt.exams.update, exam.request_id, lambda e: ex.on_tick(
                e, rt.now(), claim_minutes=review.claim_minutes, claim_timeout_minutes=review.claim_timeout_minutes))
        if outcome is not None and outcome[1]:
            await apply_exam(rt, *outcome)
