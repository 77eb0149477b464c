"""The public transparency report as HTML (bot.oversight.transparency counts it), and its console page.

`render_html(report, standalone=True)` is the file `python -m bot audit report --public` writes: one
self-contained page, its stylesheet inlined (print rules included, for a tidy PDF). With `standalone=False` it
is the console's page inside the console's layout, styled by the linked stylesheet (the console's CSP forbids
inline style). Route: GET /console/public?year=YYYY (default: the last complete year); one `audit_access`
entry per view.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from bot import wording
from bot.console.web import RUNTIME, record_view, render, templates
from bot.oversight import transparency

STYLESHEET = Path(__file__).parent / "static" / "public.css"


def _context(report: transparency.PublicReport, standalone: bool) -> dict[str, Any]:
    """What the template shows: titles and rows in words, every count as published (suppressed or not)."""
    tables = []
    for table in report.tables:
        rows = [{"label": transparency.label(table.name, c.category), "shown": c.shown(report.min_cell),
                 "total": c.category == transparency.TOTAL} for c in table.rows()]
        if table.name.startswith("alerts_") and not table.cells:
            rows = []
        tables.append({"name": table.name, "title": wording.PUBLIC_TABLE_TITLES[table.name], "rows": rows})
    return {
        "title": wording.public_report_title(report.year),
        "report": report,
        "tables": tables,
        "standalone": standalone,
        "suppression_note": wording.public_suppression_note(report.min_cell),
        "chain_line": wording.public_chain_line(report.chain_ok, report.checked_at),
        "w": wording,
    }


def render_html(report: transparency.PublicReport, *, standalone: bool = True) -> str:
    """The report as one HTML page: self-contained (CSS inlined) when `standalone`, else the console's body."""
    context = _context(report, standalone)
    context.update(layout="public_standalone.html", css=STYLESHEET.read_text(encoding="utf-8"))
    return templates().get_template("public_report.html").render(**context)


async def public_page(request: web.Request) -> web.Response:
    """GET /console/public?year=YYYY: the year's public report as the public will see it."""
    rt = request.app[RUNTIME]
    tz = rt.settings.timezone
    try:
        year = int(request.query.get("year") or transparency.year_default(rt.now(), tz))
    except ValueError:
        year = transparency.year_default(rt.now(), tz)
    year = min(max(year, 2000), 2999)
    chain = await rt.io(_chain_status, rt)
    report = await rt.io(_build, rt, year)
    report = _with_chain(report, chain)
    await record_view(request, "public", {"year": year}, results=report.table("requests_by_month").total.count)
    return render(request, "public_report.html", **_context(report, False), layout="base.html")


def _build(rt: Any, year: int) -> transparency.PublicReport:
    return transparency.build(rt.core.audit.entries(), year, rt.settings.timezone, rt.settings.oversight.min_cell)


def _chain_status(rt: Any) -> tuple[bool, str] | None:
    """The last full chain check the leader recorded (bot.oversight.chain_check), or None before the first."""
    from bot.oversight import chain_check

    last = chain_check.last(rt.core.backend.small_records())
    return (last.ok, last.checked_at) if last is not None else None


def _with_chain(report: transparency.PublicReport, chain: tuple[bool, str] | None) -> transparency.PublicReport:
    from dataclasses import replace

    return report if chain is None else replace(report, chain_ok=chain[0], checked_at=chain[1])


def register(app: web.Application) -> None:
    """The public report's console route (relative to /console)."""
    app.router.add_get("/public", public_page)
