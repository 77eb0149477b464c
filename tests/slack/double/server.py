"""The Slack double's HTTP side: the aiohttp server and its lifecycle, `/api/{method}` request parsing
(form, query or JSON parameters; JSON-encoded fields), bearer-token auth, bot scopes (`missing_scope`),
fault injection (`fail_next`: 429 with Retry-After, 5xx, DISCONNECT) and `auth.test`. Methods that check their own
credentials (`_own_auth_methods`: Sign in with Slack's, openid.py) are handed the Authorization header instead."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import web

from .calls import Call
from .common import BOT_ID, BOT_USER_ID, TEAM_ID, TEAM_URL, ApiError, _channel_kind

DISCONNECT = 0  # fail_next(status=DISCONNECT) drops the connection without an answer
# Parameters slack_sdk sends JSON-encoded inside form or query parameters.
_JSON_FIELDS = ("blocks", "attachments", "metadata", "files")
# Bot scopes each method needs (any one of them); channel methods depend on the channel kind.
_METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    "reactions.add": ("reactions:write",),
    "reactions.remove": ("reactions:write",),
    "users.info": ("users:read",),
    "usergroups.users.list": ("usergroups:read",),
    "files.info": ("files:read",),
    "files.getUploadURLExternal": ("files:write",),
    "files.completeUploadExternal": ("files:write",),
    "conversations.open": ("im:write", "mpim:write"),
}
_CHANNEL_SCOPES = {
    "conversations.info": {"public": "channels:read", "private": "groups:read", "im": "im:read"},
    "conversations.history": {"public": "channels:history", "private": "groups:history", "im": "im:history"},
    "conversations.replies": {"public": "channels:history", "private": "groups:history", "im": "im:history"},
}


@dataclass
class _Fault:
    status: int
    remaining: int
    retry_after: int
    match: Any = None  # params -> bool: only calls it accepts fail (None: every call)


class ServerMixin:
    """Serving, parsing, auth, scopes and faults (state: `token`, `host`, `scopes`, `port`, `_runner`,
    `_faults`; the method table `_methods` is SlackDouble's)."""

    # --- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> Self:
        """Start serving on an ephemeral port."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/v1/{file_id}", self._handle_upload)
        app.router.add_get("/files-pri/{key}/{tail:.*}", self._handle_download)
        app.router.add_route("*", "/openid/connect/authorize", self._handle_authorize)  # the browser's (openid.py)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """Root URL of the server, e.g. http://127.0.0.1:PORT."""
        if self.port is None:
            raise RuntimeError("SlackDouble is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The Web API base URL to give the bot as SLACK_API_URL."""
        return f"{self.url}/api/"

    # --- faults ----------------------------------------------------------------------------------------

    def fail_next(self, method: str, status: int = 429, times: int = 1, retry_after: int = 1,
                  match: Any = None) -> None:
        """Make the next `times` calls of `method` fail: 429 with Retry-After (seconds), 500/503 with an
        error body, or DISCONNECT (connection dropped). Failed calls are recorded but change nothing.
        `method` may be `files.upload` or `files.download` for the upload and file URLs. With `match`
        (params -> bool) only the calls it accepts fail, so a test need not race the bot to the right post."""
        self._faults.setdefault(method, []).append(_Fault(status, times, retry_after, match))

    def _take_fault(self, method: str, params: dict | None = None) -> _Fault | None:
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        if fault.match is not None and not fault.match(params or {}):
            return None
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.pop(0)
        return fault

    def _fault_response(self, request: web.Request, fault: _Fault) -> web.Response:
        if fault.status == DISCONNECT:
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)
        if fault.status == 429:
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(fault.retry_after)}
            )
        return web.json_response({"ok": False, "error": "fatal_error"}, status=fault.status)

    # --- the Web API endpoint --------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params, token = await self._parse(request)
        fault = self._take_fault(method, params)
        if fault is not None:
            self._record(Call(method, params, fault.status, {"ok": False, "error": "fault"}, token))
            return self._fault_response(request, fault)
        try:
            own = self._own_auth_methods.get(method)  # the app's or a user's credentials, not the bot token
            if own is not None:
                body = {"ok": True, **own(params, request.headers.get("Authorization", ""))}
            else:
                if token is None:
                    raise ApiError("not_authed")
                if token != self.token:
                    raise ApiError("invalid_auth")
                handler = self._methods.get(method)
                if handler is None:
                    raise ApiError("unknown_method")
                self._check_scope(method, params)
                body = {"ok": True, **handler(params)}
        except ApiError as exc:
            body = exc.body
        self._record(Call(method, params, 200, body, token))
        headers = {"x-oauth-scopes": ",".join(sorted(self.scopes))} if self.scopes is not None else None
        return web.json_response(body, headers=headers)

    async def _parse(self, request: web.Request) -> tuple[dict[str, Any], str | None]:
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    body = None
                if isinstance(body, dict):
                    params.update(body)
            elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.post()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
        auth = request.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        legacy = params.pop("token", None)
        token = token or legacy
        for key in _JSON_FIELDS:
            if isinstance(params.get(key), str):
                try:
                    params[key] = json.loads(params[key])
                except ValueError:
                    pass  # left as a string: the method reports the bad format
        return {k: v for k, v in params.items() if v is not None}, token

    def _check_scope(self, method: str, params: dict[str, Any]) -> None:
        if self.scopes is None:
            return
        needed = _METHOD_SCOPES.get(method, ())
        if method in _CHANNEL_SCOPES:
            channel = self._channels.get(str(params.get("channel", "")))
            needed = (_CHANNEL_SCOPES[method][_channel_kind(channel)],) if channel else ()
        if needed and not self.scopes.intersection(needed):
            raise ApiError("missing_scope", needed=",".join(needed), provided=",".join(sorted(self.scopes)))

    def _auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"url": TEAM_URL, "team": "Example", "user": "frbot", "team_id": TEAM_ID,
                "user_id": BOT_USER_ID, "bot_id": BOT_ID, "is_enterprise_install": False}
