"""Sign in with Slack for the console (OpenID Connect, CONTRACTS ### 14) and the session cookie.

    GET  /console/signin            the page: "Sign in with Slack", and why you are here (`?reason=`)
    GET  /console/signin/start      -> Slack's authorize URL (a signed single-use state, a nonce, the team)
    GET  /console/auth/callback     <- Slack: the state checked, the code exchanged (openid.connect.token), the
                                    person read (openid.connect.userInfo), their roles asked of Slack; a session
    POST /console/signout           the session ends (its form's origin and CSRF token checked)

The decisions are bot.oversight.signin's (pure); this module signs the state, talks to Slack and sets cookies.
Every sign-in and every refusal of a known person is an `audit_access` entry (action console_signin). The
client secret, codes and tokens are never logged: the Web API client used here logs nothing below WARNING.
Helpers the middleware (bot.console.app) uses: `to_signin`, `signed_out`, `recheck`, `set_cookie`.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp
from aiohttp import web
from itsdangerous import BadSignature, URLSafeSerializer
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import wording
from bot.console.session import COOKIE, Session
from bot.console.web import CODEC, CONFIG, RUNTIME, SESSION_KEY, render, same_origin_form
from bot.oversight import signin
from bot.slack import roles
from bot.slack.client import normalise_api_url

log = logging.getLogger(__name__)
# slack_sdk logs request bodies and answers at DEBUG (the code, the tokens): this client's logger never does.
_QUIET = logging.getLogger("bot.console.slack_oidc")
_QUIET.setLevel(logging.WARNING)

BINDING_COOKIE = "frbot_console_signin"  # ties a sign-in's state to the browser that started it
CALLBACK = "/console/auth/callback"
SCOPE = "openid profile"
TEAM_KEY = "console_team_id"  # rt.state: the workspace's team id, from auth.test once per process


@dataclass(frozen=True)
class Oidc:
    """The app's credentials for Sign in with Slack and the signer of its states."""

    client_id: str
    client_secret: str = field(repr=False)
    states: URLSafeSerializer = field(repr=False)


OIDC: web.AppKey[Oidc] = web.AppKey("console_oidc", Oidc)
RECORDS: web.AppKey[Any] = web.AppKey("console_records", object)  # Backend.small_records(): every replica's
SIGNOUTS = "console_signouts"  # small records: per person, when they last signed out


def _signout_key(user_id: str) -> str:
    return user_id if re.fullmatch(r"[A-Za-z0-9]{1,64}", user_id) else hashlib.sha256(user_id.encode()).hexdigest()


async def ended(request: web.Request, session: Session) -> bool:
    """Whether the person signed out (on any device, on any replica) after this session began: a copied cookie
    dies with the sign-out, though the cookie itself holds no server state."""
    rt = request.app[RUNTIME]
    try:
        mark = await rt.io(request.app[RECORDS].get, SIGNOUTS, _signout_key(session.user_id))
    except ValueError:
        return True  # an unreadable mark: fail closed
    return mark is not None and session.signed_in <= float(mark.get("at", 0))


def _secure_cookie_args(request: web.Request, path: str = "/console") -> dict[str, Any]:
    # Secure always (browsers accept it over http on loopback, the only http origin public_url allows).
    return {"httponly": True, "secure": True, "samesite": "Lax", "path": path}


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
    response.del_cookie(COOKIE, **_secure_cookie_args(request))
    raise response


async def recheck(request: web.Request, session: Session, now: float) -> Session | None:
    """The session with its roles asked of Slack again; None when the person holds no console role any more
    (recorded: an `audit_access` entry, action console_recheck). When Slack cannot be asked the session ends
    too (fail closed), saying so."""
    rt = request.app[RUNTIME]
    held = await roles.console_roles(rt, session.user_id)
    if not held:
        gone = held == ()
        log.info("console session of %s ended: %s", session.user_id, "no console role" if gone else
                 "Slack could not be asked")
        await rt.io(rt.core.audit.append, "audit_access", **signin.signin_entry(
            session.user_id, session.name, allowed=False, outcome="revoked" if gone else "unverified",
            team_id=session.team_id, action="console_recheck", next_path=request.path))
        if not gone:
            signed_out(request, "unreachable")
        return None
    return session.rechecked(held, now)


# --- Slack's side -------------------------------------------------------------------------------------------


def authorize_url(api_url: str | None) -> str:
    """Slack's authorize page on the sign-in host, which follows SLACK_API_URL: https://slack.com/api/ ->
    https://slack.com/openid/connect/authorize; http://127.0.0.1:P/api/ -> http://127.0.0.1:P/openid/..."""
    return urljoin(normalise_api_url(api_url), "../openid/connect/authorize")


def issuer(api_url: str | None) -> str:
    """The id_token's expected `iss`: the sign-in host's origin (https://slack.com for Slack itself)."""
    parts = urlsplit(normalise_api_url(api_url))
    return f"{parts.scheme}://{parts.netloc}"


def redirect_uri(public_url: str) -> str:
    """Where Slack sends the browser back: `[console] public_url` + /console/auth/callback (the manifest's)."""
    return public_url.rstrip("/") + CALLBACK


def _client(rt: Any, token: str | None = None) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=normalise_api_url(rt.api_url), session=rt.api_session, logger=_QUIET)


async def team_id(rt: Any) -> str | None:
    """The workspace's team id (auth.test with the bot token, asked once per process); None when Slack cannot
    say."""
    team = rt.state.get(TEAM_KEY)
    if team is None:
        try:
            team = str((await rt.client.auth_test())["team_id"])
        except (SlackApiError, aiohttp.ClientError, TimeoutError, KeyError) as exc:
            log.warning("console sign-in: auth.test failed (%s)", type(exc).__name__)
            return None
        rt.state[TEAM_KEY] = team
    return team


# --- the routes ---------------------------------------------------------------------------------------------


def _now(request: web.Request) -> float:
    return request.app[RUNTIME].now().timestamp()  # the server's clock (a test moves it)


async def signin_page(request: web.Request) -> web.Response:
    """The sign-in page: a real link to start, and a sentence for `?reason=`."""
    start = "/console/signin/start?" + urlencode({"next": signin.safe_next(request.query.get("next"))})
    return render(request, "signin.html", title=wording.CONSOLE_SIGNIN_TITLE, intro=wording.CONSOLE_SIGNIN_INTRO,
                  button=wording.CONSOLE_SIGNIN_BUTTON, start_url=start,
                  reason=wording.CONSOLE_SIGNIN_REASONS.get(request.query.get("reason", "")))


def _not_completed(request: web.Request, reason: str, why: str, *, keep_binding: bool = False) -> NoReturn:
    """Back to the sign-in page saying `reason`; `why` goes to the log (never a code, a token or a state). The
    browser's binding is kept when the state was not this browser's to spend (a forged or foreign callback must
    not break a sign-in under way)."""
    log.warning("console sign-in not completed: %s", why)
    response = web.HTTPSeeOther("/console/signin?" + urlencode({"reason": reason}))
    if not keep_binding:
        response.del_cookie(BINDING_COOKIE, **_secure_cookie_args(request, CALLBACK))
    raise response


async def signin_start(request: web.Request) -> web.Response:
    """To Slack's authorize page with a signed state (bound to this browser by a short-lived cookie) and a nonce."""
    rt, oidc = request.app[RUNTIME], request.app[OIDC]
    public_url = request.app[CONFIG].public_url
    if not public_url:
        _not_completed(request, "failed", "[console] public_url is empty")
    team = await team_id(rt)
    if team is None:
        _not_completed(request, "unreachable", "the workspace's team id is unknown")
    binding = signin.new_binding()
    state = signin.new_state(_now(request), binding, request.query.get("next", ""))
    query = {"response_type": "code", "scope": SCOPE, "client_id": oidc.client_id,
             "redirect_uri": redirect_uri(public_url), "state": oidc.states.dumps(state), "nonce": state["nonce"],
             "team": team}
    response = web.HTTPSeeOther(authorize_url(rt.api_url) + "?" + urlencode(query))
    response.set_cookie(BINDING_COOKIE, binding, max_age=signin.STATE_MAX_AGE_S,
                        **_secure_cookie_args(request, CALLBACK))
    raise response


async def _checked_state(request: web.Request) -> dict[str, Any]:
    """The state Slack sent back, after its checks: signed by this console, at most ten minutes old, made for
    this browser, and used for the first time (claimed in the store every replica shares)."""
    rt, oidc = request.app[RUNTIME], request.app[OIDC]
    try:
        state = oidc.states.loads(request.query.get("state", ""))
    except BadSignature:
        _not_completed(request, "failed", "the state is not one this console signed", keep_binding=True)
    if not isinstance(state, dict):
        _not_completed(request, "failed", "the state is malformed", keep_binding=True)
    now = _now(request)
    problem = signin.state_problem(state, now, request.cookies.get(BINDING_COOKIE))
    if problem is not None:
        _not_completed(request, "expired" if problem == "expired" else "failed", f"state: {problem}",
                       keep_binding=problem != "expired")
    if not await rt.io(rt.replays.claim, "console-state:" + str(state["id"]), now):
        _not_completed(request, "failed", "state: used already", keep_binding=True)
    return state


async def _identity(request: web.Request, code: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The id_token's claims and userInfo's answer for `code` (exchanged with the app's credentials)."""
    rt, oidc = request.app[RUNTIME], request.app[OIDC]
    try:
        # The client's credentials go in the form body, which Slack accepts as well as Basic auth (slack_sdk's
        # openid_connect_token sends aiohttp's BasicAuth, deprecated and gone in aiohttp 4).
        token = await _client(rt).api_call("openid.connect.token", data={
            "client_id": oidc.client_id, "client_secret": oidc.client_secret, "code": code,
            "redirect_uri": redirect_uri(request.app[CONFIG].public_url)})
        # The id_token came straight from Slack's token endpoint over TLS, so its payload is read without checking
        # its signature (OIDC Core 3.1.3.7); its nonce ties it to this sign-in's state.
        claims = signin.read_id_token(str(token.get("id_token") or ""))
        info = await _client(rt, str(token["access_token"])).openid_connect_userInfo()
    except SlackApiError as exc:
        _not_completed(request, "failed", f"Slack answered {exc.response.get('error')!s:.40}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        _not_completed(request, "failed", f"Slack could not be reached ({type(exc).__name__})")
    except (KeyError, ValueError):
        _not_completed(request, "failed", "Slack's answer is not an OpenID Connect one")
    return claims, dict(info.data)


async def _record(request: web.Request, **fields: Any) -> None:
    rt = request.app[RUNTIME]
    await rt.io(rt.core.audit.append, "audit_access", **fields)


def _refused(request: web.Request, text: str) -> web.Response:
    """The 403 page of someone Slack signed in who may not use the console: that sentence, nothing else."""
    response = render(request, "refused.html", status=403, title=wording.CONSOLE_REFUSED_TITLE, text=text)
    response.del_cookie(BINDING_COOKIE, **_secure_cookie_args(request, CALLBACK))
    return response


async def callback(request: web.Request) -> web.Response:
    """Slack sends the browser back here: checks, then a new session and the way back to `next`; or a refusal."""
    rt, oidc = request.app[RUNTIME], request.app[OIDC]
    state = await _checked_state(request)
    if request.query.get("error") or not request.query.get("code"):
        _not_completed(request, "refused", f"Slack sent no code ({request.query.get('error', 'none')!s:.40})")
    claims, info = await _identity(request, request.query["code"])
    team = await team_id(rt)
    if team is None:
        _not_completed(request, "unreachable", "the workspace's team id is unknown")
    user = str(info.get(signin.USER_CLAIM) or info.get("sub") or "")
    name = str(info.get("name") or user)[:200]
    problem = signin.identity_problem(claims, info, nonce=str(state["nonce"]), client_id=oidc.client_id,
                                      issuer=issuer(rt.api_url), team_id=team)
    if problem == "team":
        await _record(request, **signin.signin_entry(user, name, allowed=False, outcome="other_workspace",
                                                     team_id=str(info.get(signin.TEAM_CLAIM) or ""),
                                                     next_path=state["next"]))
        return _refused(request, wording.CONSOLE_OTHER_WORKSPACE)
    if problem is not None:
        _not_completed(request, "failed", f"identity: {problem}")
    held = await roles.console_roles(rt, user)
    if not signin.admitted(held):
        outcome = "unverified" if held is None else "not_listed"
        await _record(request, **signin.signin_entry(user, name, allowed=False, outcome=outcome, team_id=team,
                                                     next_path=state["next"]))
        if held is None:
            _not_completed(request, "unreachable", "Slack could not say which roles the person holds")
        log.info("console sign-in refused: %s holds no console role", user)
        return _refused(request, wording.CONSOLE_NOT_LISTED)
    session = Session.new(user, team, name, tuple(held or ()), _now(request))
    await _record(request, **signin.signin_entry(user, name, allowed=True, outcome="signed_in", roles=session.roles,
                                                 team_id=team, next_path=state["next"]))
    log.info("console sign-in: %s (%s)", user, ", ".join(session.roles))
    response = web.HTTPSeeOther(signin.safe_next(state["next"]))
    set_cookie(request, response, session)
    response.del_cookie(BINDING_COOKIE, **_secure_cookie_args(request, CALLBACK))
    raise response


async def signout(request: web.Request) -> web.Response:
    """POST: the session ends, here and wherever a copy of its cookie is (every session of the person signed in
    before now: `ended`). Its form must come from the console's own page with the session's CSRF token; no role
    is needed to end one's own session."""
    settings = request.app[CONFIG]
    session = request.app[CODEC].loads(request.cookies.get(COOKIE), max_age=settings.session_hours * 3600)
    if session is not None:
        request[SESSION_KEY] = session
        await same_origin_form(request, session)
        rt = request.app[RUNTIME]
        await rt.io(request.app[RECORDS].put, SIGNOUTS, _signout_key(session.user_id), {"at": _now(request)})
        await _record(request, **signin.signin_entry(session.user_id, session.name, allowed=True,
                                                     outcome="signed_out", roles=session.roles,
                                                     team_id=session.team_id, action="console_signout"))
    return signed_out(request, "signed_out")


def state_signer(client_secret: str) -> URLSafeSerializer:
    """Signs sign-in states with a key derived from the client secret (never the secret itself, and not the
    session key: a state can never pass for a session, nor the reverse)."""
    key = hmac.new(client_secret.encode(), b"frbot console sign-in state v1", hashlib.sha256).digest()
    return URLSafeSerializer(key, salt="frbot-console-state")


def register(app: web.Application, env: dict[str, str] | Any) -> None:
    """The sign-in routes: /console/signin, /console/signin/start, /console/auth/callback, /console/signout."""
    secret = env["CONSOLE_CLIENT_SECRET"].strip()
    app[OIDC] = Oidc(env["CONSOLE_CLIENT_ID"].strip(), secret, state_signer(secret))
    app[RECORDS] = app[RUNTIME].core.backend.small_records()
    app.router.add_get("/signin", signin_page)
    app.router.add_get("/signin/start", signin_start)
    app.router.add_get("/auth/callback", callback)
    app.router.add_post("/signout", signout)
