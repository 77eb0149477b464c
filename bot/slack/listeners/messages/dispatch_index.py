"""Top-level messages in the dispatch channel (bots included: the CAD feed usually is one) -> call-number index."""
from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.slack import flow


async def is_dispatch_top_level(event: dict[str, Any], context) -> bool:
    """A top-level message (or an edit of one) in the configured dispatch channel."""
    channel = context["runtime"].settings.slack.dispatch_channel
    if not channel or event.get("channel") != channel:
        return False
    message = event.get("message") if event.get("subtype") == "message_changed" else event
    message = message or {}
    return message.get("thread_ts") in (None, message.get("ts"))


async def dispatch_message(event: dict[str, Any], context) -> None:
    """Index the call numbers the message names."""
    rt = context["runtime"]
    rt.spawn(flow.index_dispatch(rt, event), name="index-dispatch")


def register(app: AsyncApp) -> None:
    """Listen to dispatch-channel messages."""
    app.event("message", matchers=[is_dispatch_top_level])(dispatch_message)
