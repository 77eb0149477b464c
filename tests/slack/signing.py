"""Signed requests to the bot's own server, as Slack sends them (events, interactivity, slash commands).

Slack signs `v0:{timestamp}:{raw body}` with HMAC-SHA256 keyed by the app's signing secret; Bolt checks it
and refuses requests older than five minutes. These helpers build the bodies Slack sends and POST them.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

from .double import APP_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID

SIGNING_SECRET = "test-signing-secret"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def sign(secret: str, body: bytes | str, timestamp: int | None = None) -> dict[str, str]:
    """The X-Slack-Request-Timestamp and X-Slack-Signature headers for `body` (timestamp: now)."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode("utf-8"), b"v0:" + ts.encode() + b":" + raw, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def new_event_id() -> str:
    """A fresh Events API event id (Slack's look: Ev + 10 upper-case characters)."""
    return "Ev" + uuid.uuid4().hex[:10].upper()


def event_body(
    event: dict[str, Any],
    event_id: str | None = None,
    team_id: str = TEAM_ID,
    *,
    event_time: int | None = None,
) -> bytes:
    """The Events API `event_callback` envelope around `event`, as JSON bytes. Reuse `event_id` to
    simulate Slack redelivering the same event."""
    envelope = {
        "token": "legacy-verification-token",
        "team_id": team_id,
        "context_team_id": team_id,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or new_event_id(),
        "event_time": int(time.time()) if event_time is None else event_time,
        "authorizations": [
            {"enterprise_id": None, "team_id": team_id, "user_id": BOT_USER_ID, "is_bot": True,
             "is_enterprise_install": False}
        ],
        "is_ext_shared_channel": False,
    }
    return json.dumps(envelope).encode("utf-8")


def file_shared_event(file_id: str, user_id: str, channel_id: str, event_ts: str | None = None) -> dict[str, Any]:
    """The `file_shared` event Slack sends next to the `message` (file_share) event of an upload."""
    ts = event_ts or f"{time.time():.6f}"
    return {"type": "file_shared", "file_id": file_id, "user_id": user_id, "file": {"id": file_id},
            "channel_id": channel_id, "event_ts": ts}


def interaction_body(payload: dict[str, Any]) -> bytes:
    """An interactivity request body: form-encoded `payload=<JSON>`."""
    return urlencode({"payload": json.dumps(payload)}).encode("utf-8")


def block_actions_payload(
    *,
    action_id: str,
    value: str,
    user_id: str,
    channel_id: str,
    message: dict[str, Any],
    block_id: str = "actions",
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """A `block_actions` payload for a button press on `message` (a message dict as the double stores it,
    e.g. from `double.messages(...)`), the way Slack sends it."""
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": team_id},
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel_id,
                      "is_ephemeral": False},
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**10}.{uuid.uuid4().hex[:32]}",
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_id.lower()},
        "message": {k: v for k, v in message.items() if k != "channel"},
        "state": {"values": {}},
        "response_url": f"https://hooks.slack.com/actions/{team_id}/1/{uuid.uuid4().hex[:24]}",
        "actions": [
            {"action_id": action_id, "block_id": block_id, "value": value, "type": "button",
             "action_ts": f"{time.time():.6f}", "text": {"type": "plain_text", "text": value}}
        ],
    }


def view_submission_payload(user_id: str, view: dict[str, Any], values: dict[str, dict[str, Any]],
                            team_id: str = TEAM_ID) -> dict[str, Any]:
    """A `view_submission` payload for a modal the bot opened (`view` as the double stored it), with the
    input values as Slack sends them: {block_id: {action_id: {"type": ..., "value"|"selected_option": ...}}}."""
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": team_id},
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**10}.{uuid.uuid4().hex[:32]}",
        "view": {**view, "state": {"values": values}, "team_id": team_id, "app_id": APP_ID,
                 "hash": uuid.uuid4().hex[:20]},
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def message_shortcut_payload(callback_id: str, user_id: str, channel_id: str, message: dict[str, Any],
                             team_id: str = TEAM_ID) -> dict[str, Any]:
    """A `message_action` payload: a message shortcut invoked on `message` (as the double stores it)."""
    return {
        "type": "message_action",
        "token": "legacy-verification-token",
        "action_ts": f"{time.time():.6f}",
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": team_id},
        "channel": {"id": channel_id, "name": channel_id.lower()},
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**10}.{uuid.uuid4().hex[:32]}",
        "response_url": f"https://hooks.slack.com/app/{team_id}/1/{uuid.uuid4().hex[:24]}",
        "message_ts": message["ts"],
        "message": {k: v for k, v in message.items() if k != "channel"},
    }


def command_body(
    command: str,
    text: str,
    user_id: str,
    channel_id: str,
    *,
    user_name: str | None = None,
    channel_name: str = "general",
    team_id: str = TEAM_ID,
) -> bytes:
    """A slash-command request body (form-encoded), e.g. command_body("/frs", "audit 26-012345", "U1", "C1")."""
    fields = {
        "token": "legacy-verification-token",
        "team_id": team_id,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name or user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": f"https://hooks.slack.com/commands/{team_id}/1/{uuid.uuid4().hex[:24]}",
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**10}.{uuid.uuid4().hex[:32]}",
    }
    return urlencode(fields).encode("utf-8")


@dataclass(frozen=True)
class Reply:
    """The bot server's answer to a signed POST."""

    status: int
    text: str
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.text)


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    secret: str = SIGNING_SECRET,
    *,
    content_type: str | None = None,
    retry_num: int | None = None,
    retry_reason: str | None = None,
    timestamp: int | None = None,
) -> Reply:
    """POST `body` signed with `secret` to the bot (e.g. http://127.0.0.1:PORT/slack/events).

    `content_type` defaults to JSON for a body starting with `{`, form otherwise. `retry_num` and
    `retry_reason` add Slack's X-Slack-Retry-Num / X-Slack-Retry-Reason redelivery headers; `timestamp`
    signs as of another time (e.g. ten minutes ago, which Bolt must refuse).
    """
    if content_type is None:
        content_type = JSON if body.lstrip().startswith(b"{") else FORM
    headers = {"Content-Type": content_type, **sign(secret, body, timestamp)}
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
    if retry_reason is not None:
        headers["X-Slack-Retry-Reason"] = retry_reason
    async with session.post(url, data=body, headers=headers) as resp:
        text = await resp.text()
        return Reply(resp.status, text, dict(resp.headers))
