"""What every console handler shares: the sub-application's keys, Jinja2 rendering, the signed-in person
(`viewer`), the security headers, and the one `audit_access` entry each page view writes (`record_view`).

Handlers reach the server's runtime as `request.app[RUNTIME]`. bot.console.app assembles the sub-application.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import jinja2
from aiohttp import web

from bot.console.session import Session, SessionCodec

log = logging.getLogger(__name__)

RUNTIME: web.AppKey[Any] = web.AppKey("console_runtime", object)
CODEC: web.AppKey[SessionCodec] = web.AppKey("console_codec", SessionCodec)
CONFIG: web.AppKey[Any] = web.AppKey("console_config", object)
TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("console_templates", jinja2.Environment)
SESSION_KEY: web.RequestKey[Session] = web.RequestKey("console_session", Session)
PREFIX = "/console"
# Pages anyone may reach signed out: the sign-in itself and its callback, and the stylesheet.
OPEN_PATHS = ("/console/signin", "/console/auth/callback", "/console/signout", "/console/static/")

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
