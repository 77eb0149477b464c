"""What every console handler shares: the sub-application's keys, Jinja2 rendering, the signed-in person
(`viewer`), the security headers, and the one `audit_access` entry each page view writes (`record_view`).

Handlers reach the server's runtime as `request.app[RUNTIME]`. bot.console.app assembles the sub-application.
"""
from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import jinja2
from aiohttp import web

from bot import wording
from bot.console.session import Session, SessionCodec

log = logging.getLogger(__name__)

RUNTIME: web.AppKey[Any] = web.AppKey("console_runtime", object)
CODEC: web.AppKey[SessionCodec] = web.AppKey("console_codec", SessionCodec)
CONFIG: web.AppKey[Any] = web.AppKey("console_config", object)
TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("console_templates", jinja2.Environment)
SESSION_KEY: web.RequestKey[Session] = web.RequestKey("console_session", Session)
PREFIX = "/console"
# Pages anyone may reach signed out: the sign-in itself and its callback, and the stylesheet.
OPEN_PATHS = ("/console/signin", "/console/signin/start", "/console/auth/callback", "/console/signout",
              "/console/static/")

# No script at all is needed: nothing inline may run, nothing loads from elsewhere, nobody may frame the pages.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def enabled(env: Mapping[str, str]) -> bool:
    """Whether the console is on: both of the app's OAuth credentials are in the environment."""
    return bool(env.get("CONSOLE_CLIENT_ID", "").strip() and env.get("CONSOLE_CLIENT_SECRET", "").strip())


def templates() -> jinja2.Environment:
    """The console's Jinja2 templates, autoescaped (every value from the audit log is text, never markup)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bot.console", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def viewer(request: web.Request) -> Session:
    """The signed-in person (the middleware has checked the session and their roles)."""
    return request[SESSION_KEY]


def render(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    """A page from `template` with the layout's context (who is signed in, their CSRF token, where they are)."""
    session: Session | None = request.get(SESSION_KEY)
    html = request.app[TEMPLATES].get_template(template).render(
        session=session, csrf_token=session.csrf if session else "", path=request.path, **context
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


async def record_view(request: web.Request, page: str, query: Mapping[str, Any], **fields: Any) -> dict:
    """The `audit_access` entry of one page view that shows requests (exactly one per view; image fetches
    write none): who, which page, with which filters."""
    rt = request.app[RUNTIME]
    session = viewer(request)
    return await rt.io(rt.core.audit.record_access, session.actor, f"console_{page}", dict(query), **fields)


def chain_state(rt: Any) -> Any:
    """The chain as a page states it (bot.oversight.searches.ChainStatus), never clean on trust: the last full
    check on record (the leader's, hourly, or a person's), and the check of what was written since. The file
    log resumes after its verified prefix (cheap); with no prefix the tail check runs only while no full check
    is on record (a database's log is checked whole by the leader). Blocking: run it in `rt.io`."""
    from bot.oversight import chain_check
    from bot.oversight.searches import chain_status

    log = rt.core.audit
    record = chain_check.last(rt.core.backend.small_records())
    tail = log.verify(use_prefix=True) if (log.verified_prefix() is not None or record is None) else None
    return chain_status(record, tail, rt.settings.timezone)


class Refused(web.HTTPForbidden):
    """A console POST refused: a plain sentence, never a traceback."""

    def __init__(self, text: str) -> None:
        super().__init__(text=text, content_type="text/plain")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


async def checked_form(request: web.Request) -> tuple[Session, Mapping[str, str]]:
    """The form of a console POST (its only writes: *Reviewed*, a sample's checklist, sign-out, a chain check),
    after three checks (CONTRACTS ### 14): the browser says it came from the console's own origin, it carries
    the session's CSRF token, and the person still holds a console role as Slack says now (asked fresh).
    Raises `Refused` (403) otherwise. Returns the session (with the roles just asked) and the form."""
    from bot.slack import roles

    session = viewer(request)
    fields = await same_origin_form(request, session)
    held = await roles.console_roles(request.app[RUNTIME], session.user_id)
    if not held:
        raise Refused(wording.CONSOLE_ROLE_GONE if held == () else wording.CONSOLE_SLACK_UNREACHABLE)
    return replace(session, roles=held), fields


async def same_origin_form(request: web.Request, session: Session) -> Mapping[str, str]:
    """`checked_form`'s first two checks alone (the console's origin, the session's CSRF token): all sign-out
    needs, since ending one's own session takes no role (nor Slack answering). Raises `Refused` (403)."""
    origin = request.headers.get("Origin") or request.headers.get("Referer") or ""
    expected = request.app[CONFIG].public_url
    if not origin or not expected or _origin(origin) != _origin(expected):
        raise Refused(wording.CONSOLE_FOREIGN_ORIGIN)
    form = await request.post()
    token = form.get("csrf_token")
    if not isinstance(token, str) or not hmac.compare_digest(token, session.csrf):
        raise Refused(wording.CONSOLE_BAD_TOKEN)
    return {k: v for k, v in form.items() if isinstance(v, str)}


@web.middleware
async def security_headers(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if isinstance(response, web.HTTPException):
        raise response
    return response
