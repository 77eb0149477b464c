"""Messages: people's messages (`add_message`, `delete_message`), the bot's posts as they stand now
(`messages`, `ephemerals`, `posts_without_metadata`), the content checks every post passes (text length,
Block Kit, metadata) and chat.postMessage / .update / .postEphemeral / .getPermalink."""
from __future__ import annotations

from typing import Any

from .calls import Call
from .checks import block_errors, metadata_error
from .common import _TS, APP_ID, BOT_ID, BOT_USER_ID, TEAM_ID, TEAM_URL, ApiError, _channel_kind, _ts_key

MAX_MESSAGE_TEXT = 40_000


class ChatMixin:
    """Posting, editing and deleting messages (state: `_deleted`, `_ephemerals`; messages live in the
    conversations store)."""

    # --- fixture data ----------------------------------------------------------------------------------

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

    # --- what the bot did ------------------------------------------------------------------------------

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

    def posts_without_metadata(self) -> list[Call]:
        """Successful chat.postMessage / chat.update calls that carried no message metadata."""
        return [
            c
            for c in self._log
            if c.method in ("chat.postMessage", "chat.update") and c.ok and not c.params.get("metadata")
        ]

    # --- helpers ---------------------------------------------------------------------------------------

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
