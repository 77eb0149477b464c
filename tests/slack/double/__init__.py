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

`SlackDouble` is one class made of a mixin per concern; this module holds its state and the table of
Web API methods it answers, and re-exports the names tests import from `tests.slack.double`:

    server.py         the aiohttp server, request parsing, auth, scopes, fault injection, auth.test
    calls.py          Call and the call log: call_log, calls, clear_calls, wait_for
    conversations.py  channels, DMs, the message store, history and threads (conversations.*)
    chat.py           people's messages, the bot's posts, content checks (chat.*)
    files.py          shared files, downloads, files_upload_v2 (files.*), uploads
    users.py          members and user groups (users.info, usergroups.users.list)
    reactions.py      reactions.add / .remove
    views.py          views.open
    openid.py         Sign in with Slack: the authorize page, openid.connect.token and .userInfo
    checks.py         block_errors and metadata_error, Slack's content checks on their own
    common.py         the workspace's ids, ApiError, ts helpers
"""
from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from .calls import Call, CallsMixin
from .chat import MAX_MESSAGE_TEXT, ChatMixin
from .checks import (
    MAX_BLOCKS,
    MAX_BUTTON_TEXT,
    MAX_FIELD_TEXT,
    MAX_HEADER_TEXT,
    MAX_SECTION_TEXT,
    block_errors,
    metadata_error,
)
from .common import APP_ID, BOT_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID, TEAM_URL, TOKEN, ApiError
from .conversations import ConversationsMixin
from .files import LOGIN_PAGE, FilesMixin, UploadedFile, _FileEntry
from .openid import OpenIdMixin, jwt_shaped
from .reactions import ReactionsMixin
from .server import DISCONNECT, ServerMixin, _Fault
from .users import UsersMixin
from .views import ViewsMixin

__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "DISCONNECT",
    "LOGIN_PAGE",
    "MAX_BLOCKS",
    "MAX_BUTTON_TEXT",
    "MAX_FIELD_TEXT",
    "MAX_HEADER_TEXT",
    "MAX_MESSAGE_TEXT",
    "MAX_SECTION_TEXT",
    "TEAM_DOMAIN",
    "TEAM_ID",
    "TEAM_URL",
    "TOKEN",
    "ApiError",
    "Call",
    "SlackDouble",
    "UploadedFile",
    "block_errors",
    "jwt_shaped",
    "metadata_error",
]


class SlackDouble(
    ServerMixin, CallsMixin, ConversationsMixin, ChatMixin, FilesMixin, UsersMixin, ReactionsMixin, ViewsMixin,
    OpenIdMixin,
):
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
        self._openid_app: dict[str, Any] | None = None  # Sign in with Slack (openid.py)
        self._signed_in: tuple[str, str] | None = None
        self._codes: dict[str, dict[str, Any]] = {}
        self._user_tokens: dict[str, tuple[str, str]] = {}
        self.id_token_changes: dict[str, Any] = {}
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
        self._own_auth_methods: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
            "openid.connect.token": self._openid_token,
            "openid.connect.userInfo": self._openid_user_info,
        }
        self.add_user(BOT_USER_ID, "frbot", is_bot=True)
