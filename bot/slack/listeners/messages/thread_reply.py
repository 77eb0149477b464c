"""A reply in a thread that holds a request dialog -> an answer to the dialog's current step."""
from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.slack import flow


async def is_dialog_reply(event: dict[str, Any], context) -> bool:
    """A threaded reply (thread_ts != ts) in a thread the middleware found a dialog id for."""
    thread_ts = event.get("thread_ts")
    return bool(thread_ts) and thread_ts != event.get("ts") and context.get("dialog_id") is not None


async def thread_reply(body: dict[str, Any], context) -> None:
    """Acked already; the answer is applied in the background."""
    rt = context["runtime"]
    rt.spawn(flow.handle_reply(rt, body, context.get("dialog_id")), name="reply")


def register(app: AsyncApp) -> None:
    """Listen to thread replies."""
    app.event("message", matchers=[is_dialog_reply])(thread_reply)
