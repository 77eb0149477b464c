"""What the oversight console shows of one request and of the work waiting on a second person (CONTRACTS ### 14):
pure over audit entries and the controls' records, rendered by bot.console.trail and bot.console.status.

`request_trail` builds on the discovery bundle's summary (bot.oversight.review.request_summary) and adds what a
reader of a page needs: each face with its quality in words, the candidates with their calibrated false-match
estimates in words and the examiners' decisions on each, every review step (examiner review and supervisor
approval), refused answers, the audit entries, and times in the configured timezone.

`open_work` lists open examiner reviews, command-line requests waiting for a supervisor and Slack requests
waiting for one: request id, waiting since, who claimed it, what it waits for.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot import wording
from bot.controls.examination import CLAIMED, Examination
from bot.oversight.review import local_time, request_summary

# Kinds whose entries make up a request's record; any other kind carrying the request id (an alert, a sampled
# audit's review) is listed among the entries only.
RECORD_KINDS = ("search", "review", "refusal")


def _quality(face: Mapping[str, Any]) -> str:
    """A face's quality in words: "ok", "too small", or "low: the face is small, ..."."""
    from bot.faces.quality import level_of, problems

    level = level_of(dict(face))
    found = problems(face["quality"]) if isinstance(face.get("quality"), Mapping) else ()
    return wording.console_face_quality(level, list(found))


def faces_of(faces: Sequence[Mapping[str, Any]], chosen: Any) -> list[dict[str, Any]]:
    """The photo's faces as rows: number, size in pixels, quality in words, whether it is the one searched."""
    return [{"index": f.get("index"), "size": f.get("size"), "quality": _quality(f),
             "chosen": f.get("index") == chosen} for f in faces if isinstance(f, Mapping)]


def _candidates(summary: Mapping[str, Any], subjects: Mapping[str, Mapping[str, Any] | None]) -> list[dict[str, Any]]:
    """Candidates in rank order with their estimate in words, the subject's name and record as the gallery holds
    them now (audit entries keep the subject id only: names change), and every examiner decision on each."""
    decisions = ((summary.get("examination") or {}).get("decisions")) or []
    point = summary.get("operating_point") or {}
    rows = []
    for c in summary.get("candidates") or []:
        subject = subjects.get(str(c.get("subject_id"))) or {}
        rows.append({
            "rank": c.get("rank"), "subject_id": c.get("subject_id") or "",
            "name": c.get("name") or subject.get("name") or "", "record_ref": c.get("record_ref") or
            subject.get("record_ref") or "", "enrolled": bool(subject), "distance": c.get("distance"),
            "estimate": wording.estimate_text(c.get("fpir_estimate"), bool(c.get("below_resolution")), point),
            "decisions": [d for d in decisions if d.get("subject_id") == c.get("subject_id")],
        })
    return rows


def _steps(entries: Iterable[Mapping[str, Any]], tz: str) -> list[dict[str, Any]]:
    """Every `review` entry (examiner review and supervisor approval) in log order, in words."""
    steps = []
    for e in entries:
        if e.get("kind") != "review":
            continue
        steps.append({
            "seq": e.get("seq"), "when": local_time(e.get("ts"), tz),
            "stage": wording.console_review_stage(str(e.get("stage") or "")),
            "action": wording.console_review_action(str(e.get("action") or "")),
            "by": str(e.get("by") or ""), "subject_id": e.get("subject_id") or "",
            "decision": wording.console_decision(str(e.get("decision") or "")) if e.get("decision") else "",
            "note": e.get("note") or e.get("reason") or "",
        })
    return steps


def _safe_link(url: Any) -> str | None:
    """A link a page may carry: http(s) only (never javascript: or data:)."""
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


def candidate_subjects(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """The subject ids of the candidates a request's final search entry records, in rank order."""
    searches = [e for e in entries if e.get("kind") == "search"]
    ranked = sorted(searches[-1].get("candidates") or [], key=lambda c: c.get("rank") or 0) if searches else []
    return [str(c["subject_id"]) for c in ranked if isinstance(c, Mapping) and c.get("subject_id")]


def request_trail(entries: Sequence[Mapping[str, Any]], *, tz: str, dispatch_channel: str = "",
                  subjects: Mapping[str, Mapping[str, Any] | None] | None = None) -> dict[str, Any]:
    """One request's trail from its audit entries (`AuditLog.find(request_id=...)`, non-empty), for a page;
    `subjects`: the candidates' gallery subjects as the gallery holds them now (None: no longer enrolled).

    `searched` is False while no `search` entry exists (the request still runs, e.g. waits for a supervisor):
    the outcome then says so, and the faces come from the probe cache if it still holds them (the caller's).
    """
    record = [e for e in entries if e.get("kind") in RECORD_KINDS] or list(entries)
    summary = request_summary(record, dispatch_channel=dispatch_channel)
    searched = any(e.get("kind") == "search" for e in entries)
    times = summary["times_utc"]
    slack = summary["slack"]
    return {
        **summary,
        "searched": searched,
        "running": False,  # with_running_dialog: answers from the dialog still running
        "outcome_label": summary["outcome_label"] if searched else wording.CONSOLE_NOT_SEARCHED_YET,
        "face_rows": faces_of(summary["faces"], summary["face_index"]),
        "candidate_rows": _candidates(summary, subjects or {}),
        "steps": _steps(entries, tz),
        "refusals": [{**r, "when": local_time(r.get("ts"), tz)} for r in summary["refused_answers"]],
        "entries": [{"seq": e.get("seq"), "when": local_time(e.get("ts"), tz), "kind": e.get("kind"),
                     "what": e.get("outcome") or e.get("action") or ""} for e in entries],
        "when": {"uploaded": local_time(times.get("uploaded_at"), tz),
                 "answers": {k: local_time(v, tz) for k, v in (times.get("answer_times") or {}).items()},
                 "result": local_time(times.get("result_at"), tz),
                 "recorded": local_time(times.get("recorded_at"), tz)},
        "request_link": _safe_link(slack.get("request_thread_link")),
        "call_link": _safe_link(slack.get("call_thread_link")),
        "caveat": wording.result_caveat(bool(summary["candidates"])),
    }


def with_running_dialog(data: dict[str, Any], dialog: Any, tz: str) -> dict[str, Any]:
    """A trail not searched yet, completed from its running dialog (bot.request.dialog.Dialog): the requester
    and the answers so far, which the audit log records only with the search."""
    from bot import policy

    purpose = policy.purpose_by_code(dialog.purpose)
    answers = {**data["policy_answers"], "call_number": dialog.call_number, "purpose": dialog.purpose,
               "purpose_label": purpose.label if purpose else None, "purpose_clause": purpose.clause if purpose else None,
               "justification": dialog.justification, "attestation": {"attested": bool(dialog.attested)}}
    when = {**data["when"], "uploaded": local_time(dialog.created_at, tz),
            "answers": {k: local_time(v, tz) for k, v in (dialog.answer_times or {}).items()}}
    return {**data, "policy_answers": answers, "when": when, "running": True,
            "requester": {"id": dialog.requester_id, "name": dialog.requester_name}}


# --- Open reviews and approvals ----------------------------------------------------------------------------------


def _exam_waits_for(exam: Examination) -> str:
    if exam.status == CLAIMED:
        return wording.CONSOLE_WAITS_EXAMINER_RELEASE
    if exam.rounds and len(exam.rounds) < exam.reviewers_required:
        return wording.CONSOLE_WAITS_SECOND_EXAMINER
    return wording.CONSOLE_WAITS_EXAMINER_CLAIM


def open_work(exams: Iterable[Examination], cli_approvals: Iterable[Any], dialogs: Iterable[Any], *,
              tz: str) -> list[dict[str, Any]]:
    """Every request waiting on a second person, oldest first: open examiner reviews (urgent ones marked),
    command-line requests awaiting a supervisor (bot.controls.approval.Pending) and Slack requests awaiting one
    (dialogs at the awaiting_approval step). Each row: request_id, kind, since (local time), claimed_by,
    waits_for, requester, call_number, urgent."""
    rows: list[tuple[str, dict[str, Any]]] = []
    for exam in exams:
        if not exam.open:
            continue
        rows.append((exam.queued_at, {
            "request_id": exam.request_id, "kind": wording.CONSOLE_KIND_EXAMINATION, "since": exam.queued_at,
            "claimed_by": exam.claimed_by or "", "waits_for": _exam_waits_for(exam), "requester": exam.requester_id,
            "call_number": exam.call_number, "urgent": exam.urgent}))
    for p in cli_approvals:
        if not p.open:
            continue
        rows.append((p.created_at, {
            "request_id": p.request_id, "kind": wording.CONSOLE_KIND_APPROVAL, "since": p.created_at, "claimed_by": "",
            "waits_for": wording.console_waits_supervisor(p.reason), "requester": str(p.requester.get("name") or ""),
            "call_number": str(p.answers.get("call_number") or ""), "urgent": False}))
    for d in dialogs:
        approval = d.approval or {}
        if d.step.value != "awaiting_approval" or approval.get("status") != "pending":
            continue
        since = approval.get("at") or d.updated_at
        for rid in d.request_ids:
            rows.append((since, {
                "request_id": rid, "kind": wording.CONSOLE_KIND_APPROVAL, "since": since, "claimed_by": "",
                "waits_for": wording.console_waits_supervisor(str(approval.get("reason") or "")),
                "requester": d.requester_name or d.requester_id, "call_number": d.call_number or "",
                "urgent": False}))
    rows.sort(key=lambda r: (not r[1]["urgent"], r[0]))
    return [{**row, "since": local_time(row["since"], tz)} for _, row in rows]
