"""The console's wiring: an aiohttp sub-application mounted at /console when CONSOLE_CLIENT_ID and
CONSOLE_CLIENT_SECRET are set (else /console is 404), with its middleware (security headers, the session, the
role recheck). Routes: bot.console.auth (sign-in, callback, sign-out) and bot.console.pages (every page).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from bot import wording
from bot.console import auth, pages
from bot.console.session import COOKIE, SessionCodec, session_secret
from bot.console.web import (
    CODEC,
    CONFIG,
    OPEN_PATHS,
    PREFIX,
    RUNTIME,
    SESSION_KEY,
    TEMPLATES,
    enabled,
    security_headers,
    templates,
)

__all__ = ["PREFIX", "console_app", "enabled", "settings_problem"]


def settings_problem(settings: Any, env: Mapping[str, str]) -> str | None:
    """`python -m bot serve` refuses to start with the console on (its credentials in the environment) and
    nowhere for Slack to send people back to: one sentence naming the setting, or None."""
    if enabled(env) and not settings.console.public_url.strip():
        return wording.CONSOLE_NO_PUBLIC_URL
    return None


@web.middleware
async def session_middleware(request: web.Request,
                             handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Every page but the open ones needs a valid session; roles older than `recheck_minutes` are asked of
    Slack again (bot.console.auth.recheck), and someone who lost them is signed out there and then."""
    if any(request.path == p or (p.endswith("/") and request.path.startswith(p)) for p in OPEN_PATHS):
        return await handler(request)
    settings = request.app[CONFIG]
    now = request.app[RUNTIME].now().timestamp()  # the server's clock: a test moves it past a recheck or expiry
    session = request.app[CODEC].loads(request.cookies.get(COOKIE), max_age=settings.session_hours * 3600)
    if session is None:
        return auth.to_signin(request)
    if session.expired(now, settings.session_hours):
        return auth.signed_out(request, reason="expired")
    if await auth.ended(request, session):  # signed out since (this cookie may be a copy)
        return auth.signed_out(request, reason="signed_out")
    if session.needs_check(now, settings.recheck_minutes):
        session = await auth.recheck(request, session, now)
        if session is None:
            return auth.signed_out(request, reason="revoked")
    request[SESSION_KEY] = session
    response = await handler(request)
    if session.checked == now:  # rechecked just now: the cookie carries the new check time
        auth.set_cookie(request, response, session)
    return response


def console_app(rt: Any, env: Mapping[str, str]) -> web.Application:
    """The console as a sub-application for `app.add_subapp(PREFIX, ...)`."""
    app = web.Application(middlewares=[security_headers, session_middleware])
    app[RUNTIME] = rt
    app[CONFIG] = rt.settings.console
    app[CODEC] = SessionCodec(session_secret(env["CONSOLE_CLIENT_SECRET"]))
    app[TEMPLATES] = templates()
    auth.register(app, env)
    pages.register(app)
    app.router.add_static("/static/", Path(__file__).parent / "static", append_version=False)
    return app
