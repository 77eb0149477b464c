"""The console's status pages (CONTRACTS ### 14): the monthly report with its chart, the chain, and the requests
waiting on a second person.

- GET /console/report?month=YYYY-MM (default last month): the chain's state first (bot.console.web.chain_state:
  the leader's last full check and the entries written since, never clean on trust), then the month's counts
  (bot.oversight.monthly.summarise_month over the entries from the month's first day on, kept until something
  other than a page view is written) and its chart, GET /console/report/chart.png?month= (no audit entry).
- GET /console/chain: the last full check (bot.oversight.chain_check, kept where every replica reads it), the
  log's head, the verified prefix, the head posted last in `[audit] head_channel` and any head alarm; POST
  /console/chain/verify runs a full check now (bot.console.web.checked_form) and redirects back (303).
- GET /console/open: open examiner reviews and approvals (bot.oversight.trail.open_work).

Each GET page writes one `audit_access` entry; the chart image and the POST write none (the check's record
names who ran it).
"""
from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from bot import wording
from bot.console.web import RUNTIME, chain_state, checked_form, record_view, render
from bot.oversight import chain_check, monthly, review, trail

log = logging.getLogger(__name__)
# Each month's counts, kept with the log's last seq and the time they were counted: counting a month reads it from
# its first day on (a second or so on a 100,000-entry log); page views (audit_access) written since change nothing.
_REPORTS: web.AppKey[dict[str, tuple[int, str, Any]]] = web.AppKey("console_month_reports", dict)
KEPT_MONTHS = 12
SKEW = timedelta(minutes=5)


def _month(rt: Any, text: str | None) -> tuple[str, str | None]:
    """The month asked for ("YYYY-MM"), else last month; with the sentence for one that is not a month."""
    default = review.previous_month(rt.now(), rt.settings.timezone)
    if not text:
        return default, None
    try:
        year, month = review.parse_month(text)
    except ValueError:
        return default, wording.console_bad_month(text)
    return f"{year:04d}-{month:02d}", None


def _shift(month: str, by: int) -> str:
    year, mon = review.parse_month(month)
    index = year * 12 + mon - 1 + by
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_report(rt: Any, month: str, kept: dict[str, tuple[int, str, Any]]) -> Any:
    """The month's MonthlyReport, counted again only when an entry other than a page view (audit_access) was
    written since it was last counted. Blocking: run it in `rt.io`."""
    log = rt.core.audit
    last = log.last_seq()
    cached = kept.get(month)
    if cached is not None:
        seq, ts, report = cached
        # Read back a few minutes before the head it was counted at: replicas' clocks may differ a little, so an
        # entry with a higher seq can carry an earlier time.
        since = datetime.fromisoformat(ts) - SKEW
        if seq == last or all(e["seq"] <= seq or e["kind"] == "audit_access" for e in log.find(since=since)):
            kept[month] = (last, ts, report)
            return report
    head = log.head()
    year, mon = review.parse_month(month)
    since = review.local_midnight(date(year, mon, 1), rt.settings.timezone)
    report = monthly.summarise_month(log.find(since=since), month, rt.settings.timezone)
    kept[month] = (head["seq"] if head else 0, head["ts"] if head else since.isoformat(), report)
    for old in list(kept)[:-KEPT_MONTHS]:
        del kept[old]
    return report


async def report_page(request: web.Request) -> web.Response:
    """GET /console/report: the chain's state, then the month's report, its chart and the table of weeks."""
    rt = request.app[RUNTIME]
    month, problem = _month(rt, request.query.get("month"))
    report = await rt.io(month_report, rt, month, request.app[_REPORTS])
    await record_view(request, "report", {"month": month}, results=report.total)
    chain = await rt.io(chain_state, rt)
    return render(request, "report.html", title=f"Monthly report, {report.month_title}", report=report,
                  month=month, problem=problem, chain=chain,
                  previous=_shift(month, -1), following=_shift(month, 1), wording=wording,
                  outcome_title=_outcome_title)


def _outcome_title(outcome: str) -> str:
    """An outcome's words starting with a capital (the rest kept: "GO 375.01" stays as it is)."""
    label = wording.outcome_label(outcome)
    return label[:1].upper() + label[1:]


async def report_chart(request: web.Request) -> web.Response:
    """GET /console/report/chart.png?month=: the month's chart (matplotlib, no audit entry: the page is the read),
    from the same counts the page shows."""
    rt = request.app[RUNTIME]
    month, _ = _month(rt, request.query.get("month"))
    report = await rt.io(month_report, rt, month, request.app[_REPORTS])
    return web.Response(body=await rt.io(monthly.report_chart_png, report), content_type="image/png")


async def _posted_head(rt: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The head posted last in `[audit] head_channel` (read back as the daily job reads it), or a sentence."""
    if not rt.settings.audit.head_channel:
        return None, wording.CONSOLE_HEAD_NOT_CONFIGURED
    from bot.slack.calls import SLACK_ERRORS, error_text
    from bot.slack.flow.jobs import _last_posted_head

    try:
        posted = await _last_posted_head(rt)
    except SLACK_ERRORS as exc:
        log.warning("the last posted audit head could not be read: %s", error_text(exc))
        return None, wording.console_head_unreadable(error_text(exc))
    return posted, None if posted else wording.CONSOLE_HEAD_NONE_POSTED


async def chain_page(request: web.Request) -> web.Response:
    """GET /console/chain: the last full check (BROKEN when it failed, never clean), the head, the verified prefix,
    the last posted head and any head alarm."""
    rt = request.app[RUNTIME]
    await record_view(request, "chain", {})
    check = await rt.io(chain_check.last, rt.core.backend.small_records())
    head = await rt.io(rt.core.audit.head)
    prefix = await rt.io(rt.core.audit.verified_prefix)
    posted, posted_note = await _posted_head(rt)
    return render(request, "chain.html", title="Audit chain", check=check, head=head, prefix=prefix, posted=posted,
                  posted_note=posted_note, alarm=rt.state.get("head_alarm"), wording=wording,
                  checked_at=review.local_time(check.checked_at, rt.settings.timezone) if check else "",
                  head_at=review.local_time(head["ts"], rt.settings.timezone) if head else "",
                  posted_at=_slack_time(posted, rt.settings.timezone))


def _slack_time(posted: dict[str, Any] | None, tz: str) -> str:
    """A Slack message ts ("1700000000.000100") in the configured timezone."""
    if not posted:
        return ""
    try:
        return review.local_time(datetime.fromtimestamp(float(posted["ts"]), UTC).isoformat(), tz)
    except (TypeError, ValueError, OverflowError):
        return ""


async def chain_verify(request: web.Request) -> web.Response:
    """POST /console/chain/verify: check the whole chain now, keep the result for every replica, back to the page."""
    rt = request.app[RUNTIME]
    session, _ = await checked_form(request)
    from bot.slack.flow.oversight import verify_chain

    # The leader's own check, run now: saved for every replica, and a broken chain raises the chain alert at once.
    await verify_chain(rt, by=f"{session.name} ({session.user_id}) on the console")
    raise web.HTTPSeeOther("/console/chain")


async def open_page(request: web.Request) -> web.Response:
    """GET /console/open: requests waiting on an examiner or a supervisor, oldest (urgent first)."""
    rt = request.app[RUNTIME]

    def gather() -> list[dict[str, Any]]:
        return trail.open_work(rt.exams.open(), rt.approvals.open(), rt.store.active(), tz=rt.settings.timezone)

    rows = await rt.io(gather)
    await record_view(request, "open", {}, results=len(rows))
    return render(request, "open.html", title="Open reviews and approvals", rows=rows, wording=wording,
                  timezone=rt.settings.timezone)


def register(app: web.Application) -> None:
    """The status pages' routes (paths relative to /console)."""
    app[_REPORTS] = {}
    app.router.add_get("/report", report_page)
    app.router.add_get("/report/chart.png", report_chart)
    app.router.add_get("/chain", chain_page)
    app.router.add_post("/chain/verify", chain_verify)
    app.router.add_get("/open", open_page)
