"""Sign in with Slack (OpenID Connect): the app's registration (`register_openid_app`), a browser signed in to
Slack (`sign_in_as`), the authorize page at GET /openid/connect/authorize (a consent page whose "Allow" sends the
browser back to the app's redirect URL with a code and the state; "Cancel" with error=access_denied), and the two
methods the app calls (each checks its own credentials, not the bot token): openid.connect.token (the app's client id and secret, a code it issued once, the same
redirect URL -> a user token and an id_token) and openid.connect.userInfo (Bearer that user token -> who).

Every step is recorded like any call: `openid.authorize` (the page shown and the decision) and the two methods.
The id_token's `iss` is the host that answers (Slack's is https://slack.com, where its sign-in lives);
`id_token_changes` overrides claims of the id_tokens issued next (a test's spoiled nonce or audience).
"""
from __future__ import annotations

import base64
import binascii
import html
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from .calls import Call
from .common import TEAM_DOMAIN, TEAM_ID, ApiError

CODE_TTL_S = 600  # Slack's codes expire after ten minutes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_shaped(claims: dict[str, Any]) -> str:
    """header.payload.signature, base64url, as Slack's id_token looks (the signature is random bytes here: the app
    receives the token straight from the token endpoint and need not check it, OIDC Core 3.1.3.7)."""
    header = {"typ": "JWT", "alg": "RS256", "kid": "double"}
    return ".".join((_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()),
                     _b64(secrets.token_bytes(32))))


def _page(title: str, body: str) -> web.Response:
    text = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} | Slack'
            f"</title></head><body><main>{body}</main></body></html>")
    return web.Response(text=text, content_type="text/html")


class OpenIdMixin:
    """Sign in with Slack (state: `_openid_app`, `_signed_in`, `_codes`, `_user_tokens`, `id_token_changes`)."""

    def register_openid_app(self, client_id: str, client_secret: str, redirect_urls: list[str]) -> None:
        """The app's credentials and its registered redirect URLs (the manifest's `oauth_config.redirect_urls`)."""
        self._openid_app = {"client_id": client_id, "client_secret": client_secret,
                            "redirect_urls": list(redirect_urls)}

    def sign_in_as(self, user_id: str | None, team_id: str | None = None) -> None:
        """The browser is signed in to Slack as `user_id` (None: signed out), in `team_id` (default: the user's
        own workspace; another one stands for a person of another workspace)."""
        team = team_id or (self._users.get(user_id or "", {}).get("team_id") or TEAM_ID)
        self._signed_in = (user_id, team) if user_id else None

    # --- the browser's side ------------------------------------------------------------------------------

    def _authorize_problem(self, q: Any) -> str | None:
        app = self._openid_app
        if app is None or q.get("client_id") != app["client_id"]:
            return "invalid_client_id"
        if q.get("redirect_uri") not in app["redirect_urls"]:
            return "bad_redirect_uri"
        if q.get("response_type") != "code":
            return "unsupported_response_type"
        if "openid" not in str(q.get("scope", "")).split():
            return "invalid_scope"
        return None

    async def _handle_authorize(self, request: web.Request) -> web.StreamResponse:
        """GET: the consent page (or Slack's sign-in page when nobody is signed in); POST: the person's choice."""
        q = dict(request.query) if request.method == "GET" else {
            k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        params = {k: v for k, v in q.items() if k != "decision"}
        problem = self._authorize_problem(q)
        if problem is not None:
            self._record(Call("openid.authorize", params, 400, {"ok": False, "error": problem}, None))
            return _page("Error", f"<h1>Something went wrong</h1><p>{html.escape(problem)}</p>")
        if self._signed_in is None:
            self._record(Call("openid.authorize", params, 200, {"ok": False, "error": "not_signed_in"}, None))
            return _page("Sign in", f"<h1>Sign in to {TEAM_DOMAIN}</h1>")
        if request.method == "GET":
            self._record(Call("openid.authorize", params, 200, {"ok": True, "shown": "consent"}, None))
            hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                             for k, v in params.items())
            return _page("Authorize", (
                f"<h1>Sign in to the app as {html.escape(self._signed_in[0])}?</h1>"
                f'<form method="post" action="/openid/connect/authorize">{hidden}'
                '<button type="submit" name="decision" value="allow">Allow</button> '
                '<button type="submit" name="decision" value="cancel">Cancel</button></form>'))
        back = {"state": q["state"]} if q.get("state") else {}
        if q.get("decision") != "allow":
            self._record(Call("openid.authorize", params, 302, {"ok": False, "error": "access_denied"}, None))
            raise web.HTTPFound(f"{q['redirect_uri']}?{urlencode({'error': 'access_denied', **back})}")
        code = f"{secrets.token_hex(6)}.{secrets.token_hex(16)}"
        user, team = self._signed_in
        self._codes[code] = {"client_id": q["client_id"], "redirect_uri": q["redirect_uri"], "user": user,
                             "team": team, "nonce": q.get("nonce"), "at": time.time()}
        self._record(Call("openid.authorize", params, 302, {"ok": True, "code": code, "user": user}, None))
        raise web.HTTPFound(f"{q['redirect_uri']}?{urlencode({'code': code, **back})}")

    # --- the app's side: the two Web API methods ---------------------------------------------------------------

    def _client_credentials(self, p: dict[str, Any], authorization: str) -> tuple[str, str]:
        if authorization.startswith("Basic "):
            try:
                pair = base64.b64decode(authorization[6:], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise ApiError("invalid_auth") from None
            client_id, _, secret = pair.partition(":")
            return client_id, secret
        return str(p.get("client_id", "")), str(p.get("client_secret", ""))

    def _openid_token(self, p: dict[str, Any], authorization: str) -> dict[str, Any]:
        app = self._openid_app
        client_id, secret = self._client_credentials(p, authorization)
        if app is None or client_id != app["client_id"]:
            raise ApiError("invalid_client_id")
        if not secrets.compare_digest(secret, app["client_secret"]):
            raise ApiError("bad_client_secret")
        grant = self._codes.pop(str(p.get("code", "")), None)  # once only, whatever happens next
        if grant is None or grant["client_id"] != client_id or time.time() - grant["at"] > CODE_TTL_S:
            raise ApiError("invalid_code")
        if p.get("redirect_uri") != grant["redirect_uri"]:
            raise ApiError("bad_redirect_uri")
        access = f"xoxp-{secrets.token_hex(4)}-{secrets.token_hex(12)}"
        self._user_tokens[access] = (grant["user"], grant["team"])
        now = int(time.time())
        claims = {"iss": self.url, "sub": grant["user"], "aud": client_id, "exp": now + 3600, "iat": now,
                  "auth_time": now, "nonce": grant["nonce"], "at_hash": _b64(secrets.token_bytes(16)),
                  "https://slack.com/team_id": grant["team"], "https://slack.com/user_id": grant["user"],
                  **self._profile(grant["user"]), **self.id_token_changes}
        return {"access_token": access, "token_type": "Bearer", "id_token": jwt_shaped(claims)}

    def _openid_user_info(self, p: dict[str, Any], authorization: str) -> dict[str, Any]:
        token = authorization[7:] if authorization.startswith("Bearer ") else None
        if token is None:
            raise ApiError("not_authed")
        who = self._user_tokens.get(token)
        if who is None:
            raise ApiError("invalid_auth")
        user, team = who
        return {"sub": user, "https://slack.com/user_id": user, "https://slack.com/team_id": team,
                "https://slack.com/team_domain": TEAM_DOMAIN, **self._profile(user)}

    def _profile(self, user_id: str) -> dict[str, Any]:
        user = self._users.get(user_id) or {}
        real = (user.get("profile") or {}).get("real_name") or user.get("real_name") or user_id
        given, _, family = real.partition(" ")
        return {"name": real, "given_name": given, "family_name": family, "locale": "en-US"}
