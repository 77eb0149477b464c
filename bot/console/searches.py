"""The searches page and its exports (CONTRACTS ### 14), over bot.oversight.searches:

- GET /console/searches: the filter form, the matching searches newest first (PAGE_SIZE a page), each request id a
  link to its trail (/console/requests/<id>); the chain's state above them (a banner when it does not verify);
  one `audit_access` entry (`console_searches`) per view, with the filters.
- GET /console/searches/export.csv and .jsonl: every search the same filters match, as `audit export` writes
  them; one `audit_access` entry (action `export`), then the whole chain checked, its warning first in the file
  when it does not verify (bot.oversight.evidence).
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from bot import wording
from bot.console.web import RUNTIME, chain_state, record_view, render, viewer
from bot.oversight import evidence
from bot.oversight import searches as core

EXPORTS = {"csv": "text/csv", "jsonl": "application/x-ndjson"}


# The rows the list made of the lines it read, kept between views (bot.oversight.searches.RowCache), by timezone.
ROWS: web.AppKey[dict[str, core.RowCache]] = web.AppKey("console_search_rows", dict)


def _view(rt: Any, flt: core.SearchFilter, caches: dict[str, core.RowCache]) -> core.SearchPage:
    """The page's rows (blocking: the log is read)."""
    tz = rt.settings.timezone
    cache = caches.setdefault(tz, core.RowCache(tz))
    return core.page_of(core.list_rows(rt.core.audit, flt, tz, cache), flt)


def _filter(request: web.Request) -> tuple[core.SearchFilter, list[str]]:
    rt = request.app[RUNTIME]
    return core.parse_filter(request.query, today=core.today(rt.now(), rt.settings.timezone))


async def searches(request: web.Request) -> web.Response:
    """GET /console/searches."""
    rt = request.app[RUNTIME]
    flt, errors = _filter(request)
    page = None if errors else await rt.io(_view, rt, flt, request.app[ROWS])
    chain = await rt.io(chain_state, rt)
    fields: dict[str, Any] = {"results": page.total, "page_number": page.page} if page else {"refused": errors}
    await record_view(request, "searches", flt.query(), **fields)
    return render(
        request, "searches.html", status=400 if errors else 200, title=wording.CONSOLE_SEARCHES_TITLE,
        words=wording, flt=flt, form=flt.params(), errors=errors, page=page, chain=chain,
        purposes=core.purposes(), outcomes=core.outcomes(), query=flt.query_string(),
        default_range=wording.console_default_range(core.DEFAULT_DAYS) if flt.default_range else "",
        count=wording.console_searches_count(page.total, page.page, page.pages) if page else "",
    )


async def _export(request: web.Request, fmt: str) -> web.Response:
    rt = request.app[RUNTIME]
    tz = rt.settings.timezone
    flt, errors = _filter(request)
    if errors:
        raise web.HTTPBadRequest(text="\n".join(errors), content_type="text/plain")
    log = rt.core.audit
    found = await rt.io(core.load, log, flt, tz)
    entries = core.export_entries(found, flt, tz)
    name = "frbot-searches" + "".join(f"-{d.isoformat()}" for d in (flt.since, flt.until) if d) + f".{fmt}"
    await rt.io(log.record_access, viewer(request).actor, "export",
                {**flt.query(), "format": fmt, "kinds": ["search"]}, results=len(entries), out_file=f"console:{name}")
    # Judged by every line of the chain, its own access entry included, as the CLI's export is.
    result = await rt.work(evidence.whole_chain, log)
    data = core.export_file(entries, fmt, tz, evidence.warning(result))
    return web.Response(body=data, content_type=EXPORTS[fmt], charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def export_csv(request: web.Request) -> web.Response:
    """GET /console/searches/export.csv."""
    return await _export(request, "csv")


async def export_jsonl(request: web.Request) -> web.Response:
    """GET /console/searches/export.jsonl."""
    return await _export(request, "jsonl")


def register(app: web.Application) -> None:
    """The searches page and its exports (paths relative to /console)."""
    app[ROWS] = {}
    app.router.add_get("/searches", searches)
    app.router.add_get("/searches/export.csv", export_csv)
    app.router.add_get("/searches/export.jsonl", export_jsonl)
