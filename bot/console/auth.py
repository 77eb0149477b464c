"""Sign in with Slack for the console (OpenID Connect, CONTRACTS ### 14) and the session cookie.

Helpers the middleware (bot.console.web) uses: `to_signin`, `signed_out`, `recheck`, `set_cookie`.
"""
from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bot.console.session import COOKIE, Session
from bot.console.web import CODEC, CONFIG, RUNTIME

log = logging.getLogger(__name__)


def _secure_cookie_args(request: web.Request) -> dict[str, Any]:
    # Secure always (browsers accept it over http on loopback, the only http origin public_url allows).
    return {"httponly": True, "secure": True, "samesite": "Lax", "path": "/console"}


def set_cookie(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    """Put the signed session on `response`."""
    max_age = request.app[CONFIG].session_hours * 3600
    response.set_cookie(COOKIE, request.app[CODEC].dumps(session), max_age=max_age, **_secure_cookie_args(request))


def to_signin(request: web.Request) -> web.Response:
    """A signed-out visitor: to the sign-in page, coming back here afterwards."""
    target = request.path_qs if request.method == "GET" else "/console"
    raise web.HTTPSeeOther("/console/signin?" + urlencode({"next": target}))


def signed_out(request: web.Request, reason: str) -> web.Response:
    """The session ends now (its cookie is cleared) and the sign-in page says why."""
    response = web.HTTPSeeOther("/console/signin?" + urlencode({"reason": reason}))
    response.del_cookie(COOKIE, path="/console")
    raise response


async def recheck(request: web.Request, session: Session, now: float) -> Session | None:
    """The session with its roles asked of Slack again; None when the person holds no console role any more
    or Slack cannot be asked (fail closed)."""
    from bot.slack import roles

    held = await roles.console_roles(request.app[RUNTIME], session.user_id)
    if not held:
        log.info("console session of %s ended: %s", session.user_id, "no console role" if held == () else
                 "Slack could not be asked")
        return None
    return session.rechecked(held, now)


def register(app: web.Application, env: dict[str, str] | Any) -> None:
    """The sign-in routes: /console/signin, /console/auth/callback, /console/signout."""
    del app, env  # filled by the sign-in work
