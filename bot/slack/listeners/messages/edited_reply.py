"""An edited reply in a request thread: edits are not read as answers, so the editor is told to reply again."""
from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.slack import flow


async def is_edited_dialog_reply(event: dict[str, Any], context) -> bool:
    """A `message_changed` event for a threaded reply in a thread that holds a request dialog."""
    if event.get("subtype") != "message_changed":
        return False
    message = event.get("message") or {}
    thread_ts = message.get("thread_ts")
    if not thread_ts or thread_ts == message.get("ts"):
        return False
    return await context["runtime"].dialog_of_thread(event.get("channel"), thread_ts) is not None


async def edited_reply(body: dict[str, Any], context) -> None:
    """Acked already; the note is posted in the background."""
    rt = context["runtime"]
    rt.spawn(flow.handle_edit(rt, body), name="edit")


def register(app: AsyncApp) -> None:
    """Listen to edits of replies in request threads."""
    app.event("message", matchers=[is_edited_dialog_reply])(edited_reply)
