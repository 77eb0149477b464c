"""A local Slack Web API double for end-to-end tests.

The bot reaches it through SLACK_API_URL (`double.base_url`) exactly as it reaches Slack: real HTTP, the
bot token as a Bearer header, form-encoded, query or JSON parameters, Slack's `{"ok": false, "error": ...}`
answers, 429 with Retry-After. It validates what Slack validates where the bot depends on it (Block Kit
limits, message metadata, known channels, users and messages) and records every call so tests can assert on
what the bot sent and *wait* for background work. It never pushes events: tests POST signed events to the
bot's own server (tests/slack/signing.py); `add_message` stores a user's message here and returns the event.

    async with SlackDouble() as slack:
        slack.add_channel("C1", "case-26-012345")
        client = make_web_client(TOKEN, slack.base_url)
        ...
        call = await slack.wait_for("chat.postMessage")
"""
from __future__ import annotations

import asyncio
import itertools
import json
import mimetypes
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import quote

from aiohttp import web

TOKEN = "xoxb-test-token"  # Bolt treats only xoxb- tokens as bot tokens
TEAM_ID = "T0TEST"
TEAM_DOMAIN = "example"
TEAM_URL = f"https://{TEAM_DOMAIN}.slack.com/"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
APP_ID = "ABOT"
DISCONNECT = 0  # fail_next(status=DISCONNECT) drops the connection without an answer
LOGIN_PAGE = (
    "<!DOCTYPE html>\n<html lang=\"en\"><head><title>Sign in | Slack</title></head>"
    "<body><h1>Sign in to example</h1></body></html>"
)

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_BUTTON_TEXT = 75
MAX_HEADER_TEXT = 150
MAX_MESSAGE_TEXT = 40_000
_EVENT_TYPE = re.compile(r"[A-Za-z0-9_]+")
_TS = re.compile(r"\d+\.\d+")
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
class Call:
    """One request the double received: an API method, or the pseudo-methods `files.upload` (the upload
    URL) and `files.download` (a file URL)."""

    method: str
    params: dict[str, Any]
    status: int
    response: dict[str, Any] | None
    token: str | None  # the bearer token the request carried, None when it carried none
    at: float = field(default_factory=time.monotonic)  # when it arrived (e.g. to check update spacing)

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response and self.response.get("ok"))

    @property
    def error(self) -> str | None:
        return (self.response or {}).get("error")


@dataclass
class UploadedFile:
    """A file the bot uploaded with files_upload_v2, as shared by files.completeUploadExternal."""

    id: str
    filename: str
    title: str
    data: bytes
    channel: str | None
    thread_ts: str | None
    initial_comment: str | None
    blocks: list | None = None
    alt_txt: str | None = None


@dataclass
class _Fault:
    status: int
    remaining: int
    retry_after: int
    match: Any = None  # params -> bool: only calls it accepts fail (None: every call)


@dataclass
class _FileEntry:
    obj: dict[str, Any]
    data: bytes
    html_instead: bool = False
    redirect_to: str | None = None


class ApiError(Exception):
    """Raised by a method implementation: becomes Slack's `{"ok": false, "error": ...}` answer."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.body = {"ok": False, "error": error, **extra}


def _flag(value: Any) -> bool:
    return value is True or value in ("true", "1", 1)


def _ts_key(ts: str) -> tuple[int, int]:
    secs, _, frac = str(ts).partition(".")
    return int(secs or 0), int((frac or "0").ljust(6, "0")[:6])


def _channel_kind(channel: dict[str, Any]) -> str:
    if channel.get("is_im"):
        return "im"
    return "private" if channel.get("is_private") else "public"


class SlackDouble:
    """The Slack Web API on 127.0.0.1 with an ephemeral port; an async context manager."""

    def __init__(self, *, token: str = TOKEN, host: str = "127.0.0.1", scopes: Iterable[str] | None = None):
        """`scopes`, when given, are the bot scopes granted: a method needing another answers missing_scope
        and file downloads get the login page (as Slack does without files:read). None grants everything."""
        self.token = token
        self.host = host
        self.scopes = frozenset(scopes) if scopes is not None else None
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._log: list[Call] = []
        self._changed = asyncio.Event()
        self._faults: dict[str, list[_Fault]] = {}
        self._channels: dict[str, dict[str, Any]] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._usergroups: dict[str, list[str]] = {}
        self._files: dict[str, _FileEntry] = {}
        self._pending_uploads: dict[str, dict[str, Any]] = {}
        self._history: dict[str, list[dict[str, Any]]] = {}
        self._deleted: set[tuple[str, str]] = set()  # (channel, ts) of deleted messages
        self._views: list[dict[str, Any]] = []
        self._ephemerals: list[dict[str, Any]] = []
        self._uploads: list[UploadedFile] = []
        self._ids = itertools.count(1)
        self._last_us = 0
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "conversations.info": self._conversations_info,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "conversations.open": self._conversations_open,
            "users.info": self._users_info,
            "usergroups.users.list": self._usergroups_users_list,
            "files.info": self._files_info,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "views.open": self._views_open,
        }
        self.add_user(BOT_USER_ID, "frbot", is_bot=True)

    # --- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> SlackDouble:
        """Start serving on an ephemeral port."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/v1/{file_id}", self._handle_upload)
        app.router.add_get("/files-pri/{key}/{tail:.*}", self._handle_download)
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

    # --- fixture data ----------------------------------------------------------------------------------

    def add_channel(
        self, id: str, name: str, is_private: bool = False, is_ext_shared: bool = False
    ) -> dict[str, Any]:
        """Add a channel the bot is a member of; returns the conversations.info channel object."""
        channel = {
            "id": id,
            "name": name,
            "is_channel": not is_private,
            "is_group": is_private,
            "is_im": False,
            "is_private": is_private,
            "is_archived": False,
            "is_member": True,
            "is_shared": is_ext_shared,
            "is_ext_shared": is_ext_shared,
            "is_org_shared": False,
            "context_team_id": TEAM_ID,
            "created": int(time.time()),
        }
        self._channels[id] = channel
        self._history.setdefault(id, [])
        return dict(channel)

    def add_user(
        self,
        id: str,
        name: str,
        restricted: bool = False,
        ultra: bool = False,
        is_bot: bool = False,
        *,
        display_name: str | None = None,
        real_name: str | None = None,
    ) -> dict[str, Any]:
        """Add a workspace member; `restricted`/`ultra` make a multi- or single-channel guest."""
        real = real_name if real_name is not None else name.replace(".", " ").title()
        display = display_name if display_name is not None else name
        user = {
            "id": id,
            "team_id": TEAM_ID,
            "name": name,
            "deleted": False,
            "real_name": real,
            "tz": "America/Los_Angeles",
            "is_admin": False,
            "is_owner": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "is_restricted": restricted or ultra,
            "is_ultra_restricted": ultra,
            "profile": {
                "real_name": real,
                "real_name_normalized": real,
                "display_name": display,
                "display_name_normalized": display,
            },
        }
        self._users[id] = user
        return dict(user)

    def add_usergroup(self, id: str, users: Iterable[str]) -> None:
        """Add a user group (subteam) with its members."""
        self._usergroups[id] = list(users)

    def add_file(
        self,
        id: str,
        name: str,
        mimetype: str,
        data: bytes,
        user: str,
        html_instead: bool = False,
        *,
        redirect_to: str | None = None,
    ) -> dict[str, Any]:
        """Register a file shared by `user`; returns the Slack file object (url_private_download points here).

        `html_instead` serves Slack's login page instead of the bytes, as Slack does when the app lacks
        files:read; `redirect_to` answers an authorised download with a 302 to that URL.
        """
        obj = self._file_object(id, name, name, mimetype, len(data), user)
        self._files[id] = _FileEntry(obj, data, html_instead, redirect_to)
        return dict(obj)

    def add_history(self, channel: str, messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store earlier messages in a channel (e.g. CAD posts in the dispatch channel for backfill).

        Each message needs at least `text`; `ts` is assigned when missing. Returns the stored messages.
        """
        self._require_channel(channel)
        stored = []
        for message in messages:
            msg = {"type": "message", **message}
            msg.setdefault("ts", self._next_ts())
            msg.setdefault("text", "")
            self._store(channel, msg)
            stored.append(dict(msg))
        return stored

    def add_message(
        self,
        channel: str,
        text: str = "",
        *,
        user: str | None = None,
        thread_ts: str | None = None,
        files: list[dict[str, Any]] | None = None,
        bot_id: str | None = None,
        subtype: str | None = None,
    ) -> dict[str, Any]:
        """Store a message as if a person (or another bot, with `bot_id`) posted it, and return the
        `message` event Slack would send for it (wrap it with signing.event_body). With `files` (file
        objects from add_file) the subtype is `file_share`, as for an upload."""
        self._require_channel(channel)
        ts = self._next_ts()
        msg: dict[str, Any] = {"type": "message", "text": text, "ts": ts}
        if user is not None:
            msg["user"] = user
        if bot_id is not None:
            msg["bot_id"] = bot_id
            msg.setdefault("subtype", "bot_message")
        if files:
            msg["files"] = [dict(f) for f in files]
            msg["upload"] = True
            msg["subtype"] = "file_share"
        if subtype is not None:
            msg["subtype"] = subtype
        if thread_ts is not None:
            msg["thread_ts"] = thread_ts
        self._store(channel, msg)
        event = {
            **msg,
            "channel": channel,
            "channel_type": {"public": "channel", "private": "group", "im": "im"}[
                _channel_kind(self._channels[channel])
            ],
            "event_ts": ts,
            "team": TEAM_ID,
        }
        return event

    def views(self) -> list[dict[str, Any]]:
        """The modals the bot opened (views.open), oldest first, with the trigger id each used."""
        return [dict(v) for v in self._views]

    def delete_message(self, channel: str, ts: str) -> dict[str, Any]:
        """Delete a message as its poster would; return the `message_deleted` event Slack sends. A reply
        posted to it afterwards fails with `thread_not_found`, as in Slack."""
        msg = self._find(channel, ts)
        if msg is None:
            raise KeyError(f"no message {ts} in {channel}")
        self._history[channel].remove(msg)
        self._deleted.add((channel, ts))
        return {"type": "message", "subtype": "message_deleted", "channel": channel, "ts": self._next_ts(),
                "deleted_ts": ts, "hidden": True, "previous_message": dict(msg), "event_ts": ts,
                "channel_type": "channel", "team": TEAM_ID}

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

    # --- what the bot did --------------------------------------------------------------------------------

    def call_log(self, method: str | None = None) -> list[Call]:
        """Every recorded request (of one method when given), in arrival order, failed ones included."""
        return [c for c in self._log if method is None or c.method == method]

    def calls(self, method: str) -> list[dict[str, Any]]:
        """The parsed parameters of every call of `method`, in order (failed calls included)."""
        return [c.params for c in self.call_log(method)]

    def clear_calls(self) -> None:
        """Forget recorded calls (fixture data and messages stay)."""
        self._log.clear()

    def messages(
        self, channel: str | None = None, thread_ts: str | None = None, *, include_users: bool = False
    ) -> list[dict[str, Any]]:
        """Messages as they stand now (after chat.update), oldest first, each with its `channel`.

        Only the bot's own unless `include_users`. With `thread_ts`: that thread (parent and replies).
        """
        out = []
        for ch, msgs in self._history.items():
            if channel is not None and ch != channel:
                continue
            for msg in msgs:
                if thread_ts is not None and thread_ts not in (msg.get("ts"), msg.get("thread_ts")):
                    continue
                if not include_users and msg.get("user") != BOT_USER_ID:
                    continue
                out.append({**msg, "channel": ch})
        out.sort(key=lambda m: _ts_key(m["ts"]))
        return out

    def ephemerals(self, channel: str | None = None, user: str | None = None) -> list[dict[str, Any]]:
        """Ephemeral messages posted by the bot, oldest first."""
        return [
            dict(e)
            for e in self._ephemerals
            if (channel is None or e["channel"] == channel) and (user is None or e["user"] == user)
        ]

    def uploads(self, channel: str | None = None, thread_ts: str | None = None) -> list[UploadedFile]:
        """Files the bot uploaded (files_upload_v2), in order."""
        return [
            u
            for u in self._uploads
            if (channel is None or u.channel == channel) and (thread_ts is None or u.thread_ts == thread_ts)
        ]

    def downloads(self, file_id: str | None = None) -> list[Call]:
        """Requests for file URLs; `.token` says which bearer token each carried."""
        return [c for c in self.call_log("files.download") if file_id is None or c.params["file_id"] == file_id]

    def reactions(self, channel: str, ts: str) -> dict[str, list[str]]:
        """Reaction name -> users, on one message."""
        msg = self._find(channel, ts)
        if msg is None:
            raise KeyError(f"no message {ts} in {channel}")
        return {r["name"]: list(r["users"]) for r in msg.get("reactions", [])}

    def posts_without_metadata(self) -> list[Call]:
        """Successful chat.postMessage / chat.update calls that carried no message metadata."""
        return [
            c
            for c in self._log
            if c.method in ("chat.postMessage", "chat.update") and c.ok and not c.params.get("metadata")
        ]

    async def wait_for(
        self,
        match: str | Callable[[Call], bool],
        *,
        count: int = 1,
        ok: bool | None = None,
        timeout: float = 10.0,
    ) -> Call:
        """Wait until `count` recorded calls match, and return the `count`-th one.

        `match` is a method name or a predicate on Call; `ok=True` counts only successful calls. The bot
        works in the background after acking, so tests wait for its calls instead of sleeping. On timeout
        raises AssertionError listing what was recorded.
        """

        def matching() -> list[Call]:
            found = []
            for c in self._log:
                if isinstance(match, str) and c.method != match:
                    continue
                if callable(match) and not match(c):
                    continue
                if ok is not None and c.ok != ok:
                    continue
                found.append(c)
            return found

        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed = self._changed  # taken before the check, so no record is missed
                    found = matching()
                    if len(found) >= count:
                        return found[count - 1]
                    await changed.wait()
        except TimeoutError:
            seen = ", ".join(f"{c.method}({c.error or c.status})" if not c.ok else c.method for c in self._log)
            raise AssertionError(
                f"no {count} call(s) matching {match!r} within {timeout}s; recorded: {seen or 'nothing'}"
            ) from None

    def _record(self, call: Call) -> None:
        self._log.append(call)
        self._changed.set()
        self._changed = asyncio.Event()

    # --- HTTP handlers ---------------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params, token = await self._parse(request)
        fault = self._take_fault(method, params)
        if fault is not None:
            self._record(Call(method, params, fault.status, {"ok": False, "error": "fault"}, token))
            return self._fault_response(request, fault)
        try:
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

    async def _handle_upload(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file_id"]
        if request.content_type == "multipart/form-data":
            form = await request.post()
            part = next((v for v in form.values() if hasattr(v, "file")), None)
            data = part.file.read() if part is not None else b""
        else:
            data = await request.read()
        params = {"file_id": file_id, "length": len(data)}
        fault = self._take_fault("files.upload")
        if fault is not None:
            self._record(Call("files.upload", params, fault.status, {"ok": False, "error": "fault"}, None))
            return self._fault_response(request, fault)
        pending = self._pending_uploads.get(file_id)
        if pending is None:
            self._record(Call("files.upload", params, 404, {"ok": False, "error": "unknown_upload"}, None))
            return web.Response(status=404, text="unknown upload", content_type="text/plain")
        pending["data"] = data
        self._record(Call("files.upload", params, 200, {"ok": True}, None))
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["key"].partition("-")[2]
        auth = request.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        params = {"file_id": file_id, "path": request.path}
        fault = self._take_fault("files.download")
        if fault is not None:
            self._record(Call("files.download", params, fault.status, {"ok": False, "error": "fault"}, token))
            return self._fault_response(request, fault)
        entry = self._files.get(file_id)
        if entry is None:
            self._record(Call("files.download", params, 404, {"ok": False, "error": "file_not_found"}, token))
            return web.Response(status=404, text="not found", content_type="text/plain")
        authorised = token == self.token and (self.scopes is None or "files:read" in self.scopes)
        if not authorised or entry.html_instead:
            # Slack answers 200 with its login page, not 401, when the token cannot read the file.
            self._record(Call("files.download", params, 200, {"ok": False, "error": "login_page"}, token))
            return web.Response(text=LOGIN_PAGE, content_type="text/html")
        if entry.redirect_to:
            self._record(Call("files.download", params, 302, {"ok": False, "error": "redirect"}, token))
            raise web.HTTPFound(entry.redirect_to)
        self._record(Call("files.download", params, 200, {"ok": True}, token))
        return web.Response(body=entry.data, content_type=entry.obj["mimetype"])

    def _check_scope(self, method: str, params: dict[str, Any]) -> None:
        if self.scopes is None:
            return
        needed = _METHOD_SCOPES.get(method, ())
        if method in _CHANNEL_SCOPES:
            channel = self._channels.get(str(params.get("channel", "")))
            needed = (_CHANNEL_SCOPES[method][_channel_kind(channel)],) if channel else ()
        if needed and not self.scopes.intersection(needed):
            raise ApiError("missing_scope", needed=",".join(needed), provided=",".join(sorted(self.scopes)))

    # --- store helpers ---------------------------------------------------------------------------------

    def _next_ts(self) -> str:
        # Unique and increasing, like Slack's: microseconds since the epoch written as seconds.micro.
        self._last_us = max(time.time_ns() // 1000, self._last_us + 1)
        return f"{self._last_us // 1_000_000}.{self._last_us % 1_000_000:06d}"

    def _require_channel(self, channel: str) -> None:
        if channel not in self._channels:
            raise KeyError(f"unknown channel {channel}: call add_channel first")

    def _store(self, channel: str, msg: dict[str, Any]) -> None:
        msgs = self._history.setdefault(channel, [])
        msgs.append(msg)
        msgs.sort(key=lambda m: _ts_key(m["ts"]))

    def _find(self, channel: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self._history.get(channel, []) if m["ts"] == ts), None)

    def _resolve_channel(self, value: Any) -> str:
        """A channel ID the bot can post to: a known channel or DM, or a user ID (the bot's DM with them)."""
        channel = str(value or "")
        if channel in self._channels:
            return channel
        if channel in self._users:
            return self._open_dm(channel)
        raise ApiError("channel_not_found")

    def _open_dm(self, user: str) -> str:
        dm = "D" + user
        if dm not in self._channels:
            self._channels[dm] = {"id": dm, "is_im": True, "user": user, "is_private": True, "is_ext_shared": False}
            self._history.setdefault(dm, [])
        return dm

    def _file_object(
        self, id: str, name: str, title: str, mimetype: str, size: int, user: str
    ) -> dict[str, Any]:
        path = f"{self.url}/files-pri/{TEAM_ID}-{id}"
        filetype = (mimetypes.guess_extension(mimetype) or ".bin").lstrip(".")
        return {
            "id": id,
            "created": int(time.time()),
            "timestamp": int(time.time()),
            "name": name,
            "title": title,
            "mimetype": mimetype,
            "filetype": {"jpeg": "jpg", "jpe": "jpg"}.get(filetype, filetype),
            "user": user,
            "user_team": TEAM_ID,
            "size": size,
            "mode": "hosted",
            "is_external": False,
            "is_public": True,
            "url_private": f"{path}/{quote(name)}",
            "url_private_download": f"{path}/download/{quote(name)}",
            "permalink": f"{TEAM_URL}files/{user}/{id}/{quote(name)}",
        }

    def _bot_message(self, ts: str) -> dict[str, Any]:
        return {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "app_id": APP_ID, "team": TEAM_ID,
                "ts": ts}

    def _check_content(self, params: dict[str, Any], *, metadata: bool = True) -> None:
        """Slack's checks on text, blocks and metadata of a message."""
        text, blocks = params.get("text"), params.get("blocks")
        if blocks is not None:
            if not isinstance(blocks, list):
                raise ApiError("invalid_blocks_format")
            errors = block_errors(blocks)
            if errors:
                raise ApiError("invalid_blocks", errors=errors,
                               response_metadata={"messages": [f"[ERROR] {e}" for e in errors]})
        if not text and not blocks and not params.get("attachments"):
            raise ApiError("no_text")
        if text and len(text) > MAX_MESSAGE_TEXT:
            raise ApiError("msg_too_long")
        if metadata and "metadata" in params:
            problem = metadata_error(params["metadata"])
            if problem:
                raise ApiError("invalid_metadata_format", response_metadata={"messages": [f"[ERROR] {problem}"]})

    # --- Web API methods -------------------------------------------------------------------------------

    def _auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"url": TEAM_URL, "team": "Example", "user": "frbot", "team_id": TEAM_ID,
                "user_id": BOT_USER_ID, "bot_id": BOT_ID, "is_enterprise_install": False}

    def _chat_post_message(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(p.get("channel"))
        self._check_content(p)
        thread_ts = p.get("thread_ts")
        if thread_ts is not None and not _TS.fullmatch(str(thread_ts)):
            raise ApiError("invalid_thread_ts")
        if thread_ts is not None and (channel, str(thread_ts)) in self._deleted:
            raise ApiError("thread_not_found")
        msg = self._bot_message(self._next_ts())
        msg["text"] = p.get("text", "")
        for key in ("blocks", "attachments", "metadata"):
            if key in p:
                msg[key] = p[key]
        if thread_ts is not None:
            msg["thread_ts"] = str(thread_ts)
        self._store(channel, msg)
        return {"channel": channel, "ts": msg["ts"], "message": msg}

    def _chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(p.get("channel"))
        msg = self._find(channel, str(p.get("ts", "")))
        if msg is None:
            raise ApiError("message_not_found")
        if msg.get("user") != BOT_USER_ID:
            raise ApiError("cant_update_message")
        self._check_content(p)
        # Fields left out keep their previous value, as in Slack.
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in p:
                msg[key] = p[key]
        msg["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
        return {"channel": channel, "ts": msg["ts"], "text": msg.get("text", ""), "message": msg}

    def _views_open(self, p: dict[str, Any]) -> dict[str, Any]:
        trigger = str(p.get("trigger_id") or "")
        if not trigger:
            raise ApiError("invalid_trigger_id")
        view = p.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        if not isinstance(view, dict) or view.get("type") != "modal" or not view.get("title"):
            raise ApiError("invalid_arguments")
        if len(view.get("title", {}).get("text", "")) > 24 or len(view.get("blocks") or []) > 100:
            raise ApiError("invalid_arguments")
        stored = {**view, "id": f"V{next(self._ids):08d}", "trigger_id": trigger}
        self._views.append(stored)
        return {"view": stored}

    def _chat_post_ephemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(p.get("channel"))
        user = str(p.get("user", ""))
        if user not in self._users:
            raise ApiError("user_not_in_channel")
        self._check_content(p, metadata=False)
        ts = self._next_ts()
        self._ephemerals.append({"channel": channel, "user": user, "ts": ts, "text": p.get("text", ""),
                                 "blocks": p.get("blocks"), "thread_ts": p.get("thread_ts")})
        return {"message_ts": ts}

    def _chat_get_permalink(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(p.get("channel"))
        ts = str(p.get("message_ts", ""))
        if not _TS.fullmatch(ts):
            raise ApiError("message_not_found")
        link = f"{TEAM_URL}archives/{channel}/p{ts.replace('.', '')}"
        msg = self._find(channel, ts)
        if msg is not None and msg.get("thread_ts") not in (None, ts):
            link += f"?thread_ts={msg['thread_ts']}&cid={channel}"
        return {"channel": channel, "permalink": link}

    def _reaction_target(self, p: dict[str, Any]) -> tuple[dict[str, Any], str]:
        channel = self._resolve_channel(p.get("channel"))
        msg = self._find(channel, str(p.get("timestamp", "")))
        if msg is None:
            raise ApiError("message_not_found")
        name = str(p.get("name", "")).strip(":")
        if not name:
            raise ApiError("invalid_name")
        return msg, name

    def _reactions_add(self, p: dict[str, Any]) -> dict[str, Any]:
        msg, name = self._reaction_target(p)
        reactions = msg.setdefault("reactions", [])
        entry = next((r for r in reactions if r["name"] == name), None)
        if entry is None:
            entry = {"name": name, "users": [], "count": 0}
            reactions.append(entry)
        if BOT_USER_ID in entry["users"]:
            raise ApiError("already_reacted")
        entry["users"].append(BOT_USER_ID)
        entry["count"] = len(entry["users"])
        return {}

    def _reactions_remove(self, p: dict[str, Any]) -> dict[str, Any]:
        msg, name = self._reaction_target(p)
        reactions = msg.get("reactions", [])
        entry = next((r for r in reactions if r["name"] == name), None)
        if entry is None or BOT_USER_ID not in entry["users"]:
            raise ApiError("no_reaction")
        entry["users"].remove(BOT_USER_ID)
        entry["count"] = len(entry["users"])
        if not entry["users"]:
            reactions.remove(entry)
        return {}

    def _conversations_info(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channels.get(str(p.get("channel", "")))
        if channel is None:
            raise ApiError("channel_not_found")
        return {"channel": dict(channel)}

    def _with_thread_fields(self, channel: str, msg: dict[str, Any]) -> dict[str, Any]:
        replies = [m for m in self._history[channel] if m.get("thread_ts") == msg["ts"] and m["ts"] != msg["ts"]]
        if not replies:
            return dict(msg)
        return {**msg, "thread_ts": msg["ts"], "reply_count": len(replies),
                "reply_users": sorted({r.get("user") or r.get("bot_id") or "" for r in replies}),
                "latest_reply": replies[-1]["ts"]}

    @staticmethod
    def _page(items: list[dict[str, Any]], p: dict[str, Any]) -> dict[str, Any]:
        limit = max(1, min(int(p.get("limit") or 100), 999))
        cursor = str(p.get("cursor") or "")
        start = int(cursor.partition(":")[2]) if cursor.startswith("offset:") else 0
        page = items[start:start + limit]
        more = start + limit < len(items)
        return {"messages": page, "has_more": more,
                "response_metadata": {"next_cursor": f"offset:{start + limit}" if more else ""}}

    def _conversations_history(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = str(p.get("channel", ""))
        if channel not in self._channels:
            raise ApiError("channel_not_found")
        inclusive = _flag(p.get("inclusive"))
        oldest = _ts_key(str(p["oldest"])) if p.get("oldest") else None
        latest = _ts_key(str(p["latest"])) if p.get("latest") else None
        top = []
        for msg in reversed(self._history[channel]):  # newest first, as Slack answers
            if msg.get("thread_ts") not in (None, msg["ts"]):
                continue
            key = _ts_key(msg["ts"])
            if oldest is not None and (key < oldest or (key == oldest and not inclusive)):
                continue
            if latest is not None and (key > latest or (key == latest and not inclusive)):
                continue
            top.append(self._with_thread_fields(channel, msg))
        return self._page(top, p)

    def _conversations_replies(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = str(p.get("channel", ""))
        if channel not in self._channels:
            raise ApiError("channel_not_found")
        ts = str(p.get("ts", ""))
        parent = self._find(channel, ts)
        if parent is None:
            raise ApiError("thread_not_found")
        root = parent.get("thread_ts") or ts  # a reply's ts gives its whole thread, as in Slack
        thread = [self._with_thread_fields(channel, m) for m in self._history[channel]
                  if m["ts"] == root or m.get("thread_ts") == root]
        return self._page(thread, p)

    def _conversations_open(self, p: dict[str, Any]) -> dict[str, Any]:
        users = [u for u in str(p.get("users", "")).split(",") if u]
        if len(users) != 1 or users[0] not in self._users:
            raise ApiError("user_not_found")
        dm = self._open_dm(users[0])
        return {"channel": {"id": dm}}

    def _users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        user = self._users.get(str(p.get("user", "")))
        if user is None:
            raise ApiError("user_not_found")
        return {"user": user}

    def _usergroups_users_list(self, p: dict[str, Any]) -> dict[str, Any]:
        users = self._usergroups.get(str(p.get("usergroup", "")))
        if users is None:
            raise ApiError("no_such_subteam")
        return {"users": list(users)}

    def _files_info(self, p: dict[str, Any]) -> dict[str, Any]:
        entry = self._files.get(str(p.get("file", "")))
        if entry is None:
            raise ApiError("file_not_found")
        return {"file": dict(entry.obj)}

    def _files_get_upload_url(self, p: dict[str, Any]) -> dict[str, Any]:
        filename = p.get("filename")
        try:
            length = int(p.get("length", ""))
        except ValueError:
            raise ApiError("invalid_arguments") from None
        if not filename or length < 1:
            raise ApiError("invalid_arguments")
        file_id = f"FUP{next(self._ids):05d}"
        self._pending_uploads[file_id] = {"filename": str(filename), "length": length,
                                          "alt_txt": p.get("alt_txt"), "data": None}
        return {"upload_url": f"{self.url}/upload/v1/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, p: dict[str, Any]) -> dict[str, Any]:
        files = p.get("files")
        if not isinstance(files, list) or not files or not all(isinstance(f, dict) and f.get("id") for f in files):
            raise ApiError("invalid_arguments")
        channel = p.get("channel_id") or (str(p.get("channels", "")).split(",")[0] or None)
        if channel is not None:
            channel = self._resolve_channel(channel)
        thread_ts = p.get("thread_ts")
        if thread_ts is not None and (channel is None or not _TS.fullmatch(str(thread_ts))):
            raise ApiError("invalid_thread_ts")
        blocks = p.get("blocks")
        if blocks is not None:
            errors = block_errors(blocks) if isinstance(blocks, list) else ["blocks must be an array"]
            if errors:
                raise ApiError("invalid_blocks", errors=errors)
        for f in files:
            pending = self._pending_uploads.get(f["id"])
            if pending is None or pending["data"] is None:
                raise ApiError("file_not_found")
        shared = []
        for f in files:
            pending = self._pending_uploads.pop(f["id"])
            title = f.get("title") or pending["filename"]
            mimetype = mimetypes.guess_type(pending["filename"])[0] or "application/octet-stream"
            obj = self._file_object(f["id"], pending["filename"], title, mimetype, len(pending["data"]),
                                    BOT_USER_ID)
            self._files[f["id"]] = _FileEntry(obj, pending["data"])
            self._uploads.append(UploadedFile(
                id=f["id"], filename=pending["filename"], title=title, data=pending["data"], channel=channel,
                thread_ts=thread_ts, initial_comment=p.get("initial_comment"), blocks=blocks,
                alt_txt=pending["alt_txt"],
            ))
            shared.append(obj)
        if channel is not None:
            # Sharing posts a message from the bot that carries the files.
            msg = self._bot_message(self._next_ts())
            msg.update({"text": p.get("initial_comment", ""), "files": shared, "upload": True})
            if blocks is not None:
                msg["blocks"] = blocks
            if thread_ts is not None:
                msg["thread_ts"] = str(thread_ts)
            self._store(channel, msg)
        return {"files": [{"id": o["id"], "title": o["title"]} for o in shared]}


# --- Slack's checks, usable on their own ------------------------------------------------------------------


def metadata_error(metadata: Any) -> str | None:
    """Why Slack would refuse this message metadata, or None when it is valid."""
    if not isinstance(metadata, dict):
        return "metadata must be an object"
    event_type = metadata.get("event_type")
    if not isinstance(event_type, str) or not _EVENT_TYPE.fullmatch(event_type):
        return "event_type must match [A-Za-z0-9_]+"
    if not isinstance(metadata.get("event_payload"), dict):
        return "event_payload must be an object"
    return None


def _text_errors(obj: Any, where: str, limit: int, kinds: tuple[str, ...] = ("plain_text", "mrkdwn")) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        return [f"must be a text object of type {' or '.join(kinds)} [json-pointer:{where}]"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"must be more than 0 characters [json-pointer:{where}/text]"]
    if len(text) > limit:
        return [f"must be less than {limit + 1} characters [json-pointer:{where}/text]"]
    return []


def _element_errors(el: Any, where: str) -> list[str]:
    if not isinstance(el, dict) or not isinstance(el.get("type"), str):
        return [f"missing required field: type [json-pointer:{where}]"]
    errors: list[str] = []
    if el["type"] == "button":
        errors += _text_errors(el.get("text"), f"{where}/text", MAX_BUTTON_TEXT, ("plain_text",))
        if len(str(el.get("value", ""))) > 2000:
            errors.append(f"must be less than 2001 characters [json-pointer:{where}/value]")
        if el.get("style") not in (None, "primary", "danger"):
            errors.append(f"must be primary or danger [json-pointer:{where}/style]")
    elif el["type"] == "image":
        if not el.get("image_url") and not el.get("slack_file"):
            errors.append(f"missing required field: image_url [json-pointer:{where}]")
        if not isinstance(el.get("alt_text"), str):
            errors.append(f"missing required field: alt_text [json-pointer:{where}]")
    if len(str(el.get("action_id", ""))) > 255:
        errors.append(f"must be less than 256 characters [json-pointer:{where}/action_id]")
    return errors


def block_errors(blocks: list[Any]) -> list[str]:
    """Slack's Block Kit checks for a message (50 blocks, 3,000 characters per section text, 75 per
    button, ...), as messages in Slack's `[json-pointer:...]` style; [] when the blocks are valid."""
    errors: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(f"must provide no more than {MAX_BLOCKS} items [json-pointer:/blocks]")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(f"missing required field: type [json-pointer:{where}]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or len(block_id) > 255:
                errors.append(f"must be a string of at most 255 characters [json-pointer:{where}/block_id]")
            elif block_id in block_ids:
                errors.append(f"duplicate block_id [json-pointer:{where}/block_id]")
            else:
                block_ids.add(block_id)
        kind = block["type"]
        if kind == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"must provide text or fields [json-pointer:{where}]")
            if "text" in block:
                errors += _text_errors(block["text"], f"{where}/text", MAX_SECTION_TEXT)
            fields = block.get("fields", [])
            if not isinstance(fields, list) or len(fields) > 10:
                errors.append(f"must provide no more than 10 items [json-pointer:{where}/fields]")
            else:
                for j, f in enumerate(fields):
                    errors += _text_errors(f, f"{where}/fields/{j}", MAX_FIELD_TEXT)
            if "accessory" in block:
                errors += _element_errors(block["accessory"], f"{where}/accessory")
        elif kind == "header":
            errors += _text_errors(block.get("text"), f"{where}/text", MAX_HEADER_TEXT, ("plain_text",))
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                errors.append(f"must provide 1 to 10 elements [json-pointer:{where}/elements]")
            else:
                for j, el in enumerate(elements):
                    if isinstance(el, dict) and el.get("type") == "image":
                        errors += _element_errors(el, f"{where}/elements/{j}")
                    else:
                        errors += _text_errors(el, f"{where}/elements/{j}", MAX_SECTION_TEXT)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
                errors.append(f"must provide 1 to 25 elements [json-pointer:{where}/elements]")
            else:
                action_ids: set[str] = set()
                for j, el in enumerate(elements):
                    errors += _element_errors(el, f"{where}/elements/{j}")
                    action_id = el.get("action_id") if isinstance(el, dict) else None
                    if action_id is not None and action_id in action_ids:
                        errors.append(f"duplicate action_id [json-pointer:{where}/elements/{j}/action_id]")
                    action_ids.add(action_id)
        elif kind == "image":
            errors += _element_errors(block, where)
            if "title" in block:
                errors += _text_errors(block["title"], f"{where}/title", 2000, ("plain_text",))
        elif kind not in ("divider", "rich_text", "markdown", "file", "video", "input"):
            errors.append(f"unsupported block type {kind!r} [json-pointer:{where}/type]")
    return errors
