"""Reactions on messages: reactions.add / .remove (as the bot), and `reactions` to read them back."""
from __future__ import annotations

from typing import Any

from .common import BOT_USER_ID, ApiError


class ReactionsMixin:
    """Reactions, stored on the messages themselves."""

    def reactions(self, channel: str, ts: str) -> dict[str, list[str]]:
        """Reaction name -> users, on one message."""
        msg = self._find(channel, ts)
        if msg is None:
            raise KeyError(f"no message {ts} in {channel}")
        return {r["name"]: list(r["users"]) for r in msg.get("reactions", [])}

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
