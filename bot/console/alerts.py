"""The console's alerts page (CONTRACTS ### 14): every anomaly alert the leader raised (bot.oversight.alerts), the
unreviewed first, then the newest; each with its sentence, time, rule and the requests it concerns (linked to their
trails), and a *Reviewed* form that records who looked and their note as an `alert_review` audit entry.

    GET  /console/alerts                       the list (one `audit_access` entry per view)
    POST /console/alerts/<alert_id>/review     csrf_token, note -> an `alert_review` entry, 303 back to the list
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from bot import wording
from bot.console.web import RUNTIME, checked_form, record_view, render
from bot.oversight import alerts
from bot.oversight.review import local_time

PATH = "/alerts"


def _row(alert: dict[str, Any], tz: str) -> dict[str, Any]:
    """What the template shows of one listed alert: times in the department's timezone, the rule's label."""
    return {
        **alert,
        "label": wording.ALERT_RULE_LABELS.get(str(alert.get("rule")), str(alert.get("rule"))),
        "raised": local_time(alert.get("ts"), tz),
        "request_ids": [str(r) for r in alert.get("request_ids") or ()],
        "request_ids_not_listed": alert.get("request_ids_not_listed") or 0,
        "summary": str(alert.get("summary") or ""),
        "reviews": [{**r, "when": local_time(r.get("at"), tz)} for r in alert["reviews"]],
    }


async def alerts_page(request: web.Request) -> web.Response:
    """The list of alerts with their review state."""
    rt = request.app[RUNTIME]
    entries = await rt.io(rt.core.audit.find, kinds=["alert", "alert_review"])
    rows = [_row(a, rt.settings.timezone) for a in alerts.listed(entries)]
    await record_view(request, "alerts", {}, results=len(rows),
                      unreviewed=sum(1 for r in rows if not r["reviewed"]))
    return render(request, "alerts.html", title="Alerts", alerts=rows, timezone=rt.settings.timezone,
                  none_text=wording.ALERTS_NONE, note_label=wording.ALERT_NOTE_LABEL,
                  button=wording.ALERT_REVIEWED_BUTTON)


async def review(request: web.Request) -> web.Response:
    """*Reviewed*: after `checked_form` (Origin, CSRF token, roles asked of Slack again), one `alert_review`
    entry with the note and the person; then back to the list (303)."""
    session, form = await checked_form(request)
    rt = request.app[RUNTIME]
    alert_id = request.match_info["alert_id"]
    found = [e for e in await rt.io(rt.core.audit.find, kinds=["alert"]) if e.get("alert_id") == alert_id]
    if not found:
        raise web.HTTPNotFound(text=wording.ALERT_NOT_FOUND, content_type="text/plain")
    try:
        fields = alerts.review_fields(alert_id, session.actor, form.get("note", ""), found[0])
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc), content_type="text/plain") from None
    await rt.io(rt.core.audit.append, "alert_review", **fields)
    raise web.HTTPSeeOther(location=f"/console{PATH}#{alert_id}")


def register(app: web.Application) -> None:
    """The alerts page's routes on the console sub-application (paths relative to /console)."""
    app.router.add_get(PATH, alerts_page)
    app.router.add_post(PATH + "/{alert_id}/review", review)
