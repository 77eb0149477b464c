"""The console's sampled-audits page (CONTRACTS ### 14): each month's draw (seed, population, n, re-checked
against the log on every view), the sampled requests with their auditor and review, and the checklist form of
each request not reviewed yet.

GET  /console/samples[?month=YYYY-MM]         the draws, and one month's sample (default: the latest drawn)
POST /console/samples/<month>/<request_id>    a checklist (bot.console.web.checked_form): a `sample_review`, 303 back

bot.oversight.samples decides; this reads the log in the I/O threads and renders.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from aiohttp import web

from bot import wording
from bot.console.web import RUNTIME, checked_form, record_view, render, viewer
from bot.oversight import samples
from bot.oversight.review import local_time, parse_month


def _draw_rows(entries: Sequence[Mapping[str, Any]], tz: str) -> list[dict[str, Any]]:
    """Every month's draw, newest first, with its counts."""
    rows = []
    counted = samples.summaries(entries)
    for month, drawn in sorted(samples.draws(entries).items(), reverse=True):
        s = counted[month]
        rows.append({"month": month, "seed": drawn.get("seed"), "population": s.population, "n": s.sampled,
                     "reviewed": s.reviewed, "found_wanting": s.found_wanting,
                     "drawn_at": local_time(drawn.get("ts"), tz)})
    return rows


def _month_view(entries: Sequence[Mapping[str, Any]], month: str, tz: str) -> dict[str, Any] | None:
    """One month's sample: its draw, the re-check, and each sampled request."""
    drawn = samples.draws(entries).get(month)
    if drawn is None:
        return None
    check = samples.recheck(entries, drawn)
    requests = []
    for item in samples.sampled_requests(entries, month):
        review = item.review or {}
        requests.append({
            "request_id": item.request_id,
            "href": "/console/requests/" + quote(item.request_id, safe=""),
            "action": f"/console/samples/{month}/" + quote(item.request_id, safe=""),
            "auditor": (item.auditor or {}).get("name") or wording.SAMPLE_UNASSIGNED,
            "reviewed": item.reviewed,
            "reviewed_by": (review.get("actor") or {}).get("name", ""),
            "reviewed_at": local_time(review.get("ts"), tz),
            "found_wanting": item.found_wanting,
            "answers": review.get("answers") or {},
        })
    return {"month": month, "drawn": drawn, "drawn_at": local_time(drawn.get("ts"), tz), "check": check,
            "requests": requests}


def _read(rt: Any, month: str | None) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    entries = list(rt.core.audit.entries())
    tz = rt.settings.timezone
    rows = _draw_rows(entries, tz)
    chosen = month or (rows[0]["month"] if rows else None)
    return rows, (_month_view(entries, chosen, tz) if chosen else None)


async def samples_page(request: web.Request) -> web.Response:
    """GET /console/samples: the draws and one month's sample with its checklists; one `audit_access` entry."""
    rt = request.app[RUNTIME]
    month = request.query.get("month") or None
    if month is not None:
        try:
            parse_month(month)
        except ValueError:
            month = None
    rows, view = await rt.io(_read, rt, month)
    shown = len(view["requests"]) if view else 0
    await record_view(request, "samples", {"month": view["month"] if view else month}, results=shown)
    return render(request, "samples.html", title="Sampled audits", draws=rows, view=view,
                  checklist=samples.CHECKLIST, answers=wording.SAMPLE_ANSWER_LABELS, w=wording,
                  me=viewer(request).user_id)


async def submit_review(request: web.Request) -> web.Response:
    """POST /console/samples/<month>/<request_id>: record the checklist as a `sample_review`, then 303 back."""
    session, form = await checked_form(request)
    rt = request.app[RUNTIME]
    month, request_id = request.match_info["month"], request.match_info["request_id"]
    back = f"/console/samples?month={quote(month, safe='')}"

    def record() -> dict[str, Any]:
        entries = list(rt.core.audit.entries())
        fields = samples.review_fields(entries, month, request_id, form, session.actor)
        return rt.core.audit.append("sample_review", **fields, roles=list(session.roles))

    try:
        await rt.io(record)
    except samples.ReviewRefused as exc:
        return render(request, "samples_refused.html", status=400, title="Sampled audits", message=str(exc),
                      back=back, back_text=wording.SAMPLE_BACK)
    raise web.HTTPSeeOther(back + "#" + quote(request_id, safe=""))


def register(app: web.Application) -> None:
    """The sampled-audits routes (relative to /console)."""
    app.router.add_get("/samples", samples_page)
    app.router.add_post("/samples/{month}/{request_id}", submit_review)
