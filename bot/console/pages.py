"""The console's pages (CONTRACTS ### 14): /console and the pages it links to. Each handler reads through
bot.oversight (pure over audit entries) and renders a template; a view that shows requests writes one
`audit_access` entry (bot.console.web.record_view)."""
from __future__ import annotations

from aiohttp import web

from bot.console import alerts, public, samples, searches, status, trail
from bot.console.web import record_view, render


async def index(request: web.Request) -> web.Response:
    """The console's front page: where each page is (a page view like any other: one audit_access entry)."""
    await record_view(request, "index", {})
    return render(request, "index.html", title="Oversight console")


def register(app: web.Application) -> None:
    """The pages' routes on the console sub-application (paths relative to /console)."""
    app.router.add_get("", index)
    app.router.add_get("/", index)
    samples.register(app)  # /samples and its checklists (sampled audits)
    public.register(app)  # /public: the year's transparency report
    searches.register(app)
    trail.register(app)  # /requests/<id> and its crops
    status.register(app)  # /report, /chain, /open
    alerts.register(app)
