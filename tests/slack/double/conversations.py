"""Channels, DMs and the message store behind them: `add_channel`, `add_history`, the store helpers
(ts allocation, lookup, resolving a channel or user ID to a postable channel, opening a DM) and the
conversations.info / .history / .replies / .open methods (thread fields, cursor paging)."""
from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from .common import TEAM_ID, ApiError, _ts_key


def _flag(value: Any) -> bool:
    return value is True or value in ("true", "1", 1)


class ConversationsMixin:
    """Channels, DMs, history and threads (state: `_channels`, `_history`, `_last_us`)."""

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

    # --- Web API methods -------------------------------------------------------------------------------

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
            shown = self._with_thread_fields(channel, msg)
            if not _flag(p.get("include_all_metadata")):  # Slack returns message metadata only when asked
                shown = {k: v for k, v in shown.items() if k != "metadata"}
            top.append(shown)
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
