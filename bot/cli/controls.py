"""The command line under second-person controls ([review]): a search queued for an examiner (with the comparison
sheet, since the photo is only here), a request kept for a supervisor's approval, and the requester's own
`status` and `cancel` of either. The server picks both up at its next tick (bot.slack.flow.examining, approving).
"""
from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from bot import wording
from bot.cli import common
from bot.cli.common import EXIT_ERROR, EXIT_OK, emit, text_arg
from bot.config import Settings


def await_approval(core: Any, settings: Settings, *, request_id: str, answers: Any, requester: Any, slack_user: str,
                   reason: str, source: dict[str, Any], probe: Any, face: Any, data: bytes) -> None:
    """Keep the request (and the chosen face's template, made after the attestation, and its crop) for a
    supervisor: the server posts the approval card at its next tick and, once approved, runs the search."""
    import base64

    from bot.controls import approval

    pending = approval.Pending(
        request_id=request_id, requester=requester.as_dict(), slack_user=slack_user,
        answers={"call_number": answers.call_number, "purpose": answers.purpose,
                 "justification": answers.justification, "attested": answers.attested},
        reason=reason, source=source, probe_sha256=probe.sha256,
        faces=[f.as_dict() for f in probe.faces], face_index=face.index,
        encoding=[float(x) for x in face.encoding], created_at=datetime.now(UTC).isoformat(),
        face_jpeg=base64.b64encode(_face_crop(settings, data, face)).decode("ascii"))
    core.audit.append("review", request_id=request_id, action="queued", by="system", stage="approval",
                      reason=reason, request_ids=[request_id], call_number=answers.call_number)
    store = core.backend.approvals()
    try:
        store.put(pending)
    finally:
        store.close()


def _face_crop(settings: Settings, data: bytes, face: Any) -> bytes:
    """The chosen face at the size examiners compare at (the photo already decoded safely in a face worker)."""
    from bot import contact_sheet
    from bot.faces.images import decode_image

    images = settings.images
    rgb = decode_image(data, max_bytes=images.max_bytes, max_pixels=images.max_pixels,
                       max_aspect_ratio=images.max_aspect_ratio)
    return contact_sheet.face_crop_jpeg(rgb, face.box.as_dict())


def queue_for_examiner(core: Any, settings: Settings, result: Any, answers: Any, requester: Any, slack_user: str,
                       data: bytes, face: Any) -> None:
    """Queue a CLI search for an examiner: the server posts its review card, and the comparison sheet made here
    (the photo is only here), at its next tick; the release goes to the mapped Slack account or the review
    channel."""
    from bot import contact_sheet
    from bot.controls import examination
    from bot.service import cli_source, queue_examination
    from bot.store.probes import SHEET_SUFFIX

    sheet_name = f"{result.request_id}{SHEET_SUFFIX}"
    try:  # stored before the review is queued, so the server never posts the card without it
        sheet = contact_sheet.comparison_for(core.gallery, result, _face_crop(settings, data, face))
        # In the store, for a server maybe on another machine; with the cached probe faces: purged with them
        # ([retention] dialog_state_days) if never posted.
        core.backend.sheets().put(result.request_id, sheet)
    except Exception as exc:  # noqa: BLE001 - a missing sheet must not lose the search: the examiner still gets the card
        print(wording.cli_sheet_failed(f"{type(exc).__name__}: {exc}"), file=sys.stderr)
        sheet_name = ""
    store = core.backend.examinations()
    try:
        exam, effects = queue_examination(
            store, result, answers, requester_id=requester.id, reviewers_required=settings.review.reviewers_required,
            now=datetime.now(UTC), source={**cli_source(requester.name, slack_user), "sheet": sheet_name})
    finally:
        store.close()
    for effect in effects:
        if isinstance(effect, examination.Audit):
            core.audit.append("review", request_id=exam.request_id, action=effect.action, by=effect.by,
                              call_number=exam.call_number, **dict(effect.fields))


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    """`cancel REQUEST_ID`: withdraw your own command-line request while it waits for a supervisor or, once
    searched (directly or after an approval), while no examiner has claimed its review (exit 1 otherwise, saying
    why). Audited; the server redraws its card. Someone else's request is not confirmed to exist."""
    from bot.store.audit_log import AuditError

    request_id, who, now = text_arg(args.request_id) or "", common.os_requester(settings), datetime.now(UTC)
    core = common.core(settings)
    approvals, exams = core.backend.approvals(), core.backend.examinations()
    try:
        core.audit.check_writable()
        exam, pending = exams.get(request_id), approvals.get(request_id)
        if exam is not None and exam.requester_id == who.id:
            # Searched, directly or once a supervisor approved it: what is left to withdraw is its review.
            error = _cancel_review(core, exams, request_id, who, now)
        elif pending is not None and pending.requester.get("id") == who.id:
            error = _cancel_approval(core, approvals, request_id, who, now)
        else:
            error = wording.cli_unknown_request(request_id)
    except (AuditError, OSError) as exc:
        error = wording.audit_unwritable(str(exc))
    finally:
        approvals.close()
        exams.close()
        core.close()
    if error:
        emit(args, {"request_id": request_id, "error": error}, f"error: {error}", stream=sys.stderr)
        return EXIT_ERROR
    emit(args, {"cancelled": request_id}, wording.cli_cancelled(request_id))
    return EXIT_OK


def _cancel_approval(core: Any, approvals: Any, request_id: str, who: Any, now: datetime) -> str | None:
    """Withdraw a request waiting for a supervisor: a `review` cancel and the `cancelled` search entry of a request
    never searched. The reason it cannot be, or None."""
    from bot.controls import approval
    from bot.service import Requester, record_ended

    done = approvals.update(request_id, lambda p: approval.cancel(p, who.id, now))
    if done is None:  # purged since it was read
        return wording.cli_unknown_request(request_id)
    pending, effects = done
    why = next((e.why for e in effects if isinstance(e, approval.Refused)), None)
    if why is not None:
        return wording.EXAM_CANCEL_REQUESTER_ONLY if why == "not_requester" else wording.cli_cancel_too_late(
            pending.status)
    core.audit.append("review", request_id=request_id, action="cancel", by=who.id, stage="approval",
                      call_number=pending.answers.get("call_number"))
    record_ended(core, outcome="cancelled", request_id=request_id, requester=Requester(**pending.requester),
                 answers=pending.policy_answers(), source=pending.source, probe_sha256=pending.probe_sha256,
                 faces=pending.faces, face_index=pending.face_index)
    return None


def _cancel_review(core: Any, exams: Any, request_id: str, who: Any, now: datetime) -> str | None:
    """Withdraw a searched request's review no examiner has claimed (its comparison sheet dropped if the server has
    not posted it yet). The reason it cannot be, or None."""
    from bot.controls import examination

    def step(e: examination.Examination) -> examination.Result:
        new, effects = examination.cancel(e, who.id, now)
        if new.status == examination.CANCELLED and e.status != examination.CANCELLED:
            new.source["card_stale"] = True  # the server redraws the card at its next tick
        return new, effects

    done = exams.update(request_id, step)
    if done is None:  # purged since it was read
        return wording.cli_unknown_request(request_id)
    exam, effects = done
    error = next((e.reason for e in effects if isinstance(e, examination.Refused)), None)
    if error is None:
        core.audit.append("review", request_id=request_id, action="cancel", by=who.id, call_number=exam.call_number)
        if exam.source.get("sheet"):  # a sheet the server has not posted (and deleted) yet is not kept
            core.backend.sheets().remove(request_id)
    return error


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """`status REQUEST_ID`: where your own command-line request stands (with a supervisor, with an examiner,
    released); what `status` in a request thread tells a Slack requester. Reads no audit entry."""
    import re

    from bot.controls import examination

    request_id, who = text_arg(args.request_id) or "", common.os_requester(settings)
    backend = common.core(settings).backend
    exams, approvals = backend.examinations(), backend.approvals()
    try:
        exam, pending = exams.get(request_id), approvals.get(request_id)
    finally:
        exams.close()
        approvals.close()
    if exam is not None and exam.requester_id == who.id:
        obj = {"request_id": request_id, "review": exam.status, "claimed_by": exam.claimed_by}
        text = examination.requester_status(exam)
    elif pending is not None and pending.requester.get("id") == who.id:
        obj = {"request_id": request_id, "approval": pending.status, "decided_by": pending.decided_by or None}
        text = wording.cli_approval_status(pending.status, pending.reason, pending.decided_by)
    else:  # someone else's request is not confirmed to exist either
        error = wording.cli_unknown_request(request_id)
        emit(args, {"request_id": request_id, "error": error}, f"error: {error}", stream=sys.stderr)
        return EXIT_ERROR
    emit(args, obj, f"{request_id}: " + re.sub(r"<@([UW][A-Z0-9]+)>", r"\1", text))
    return EXIT_OK


def register(sub: Any) -> None:
    """`cancel` and `status` on the top-level parser's subparsers."""
    c = sub.add_parser("cancel", help="withdraw your own search waiting for approval or an examiner (unclaimed)")
    c.add_argument("request_id", metavar="REQUEST-ID", help="request id, e.g. FR-3F9A0C12D4")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=cmd_cancel)

    st = sub.add_parser("status", help="where your own search waiting for approval or an examiner stands")
    st.add_argument("request_id", metavar="REQUEST-ID", help="request id, e.g. FR-3F9A0C12D4")
    st.add_argument("--json", action="store_true", help="print one JSON object")
    st.set_defaults(func=cmd_status)
