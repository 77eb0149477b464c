"""`message` events. Bolt runs the first listener whose matchers pass, so the order here is the routing:
dispatch-channel index, upload, thread reply, edited thread reply, then everything else (acked, ignored)."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.listeners.messages import dispatch_index, edited_reply, ignored, thread_reply, upload


def register(app: AsyncApp) -> None:
    """Register the message listeners in routing order."""
    dispatch_index.register(app)
    upload.register(app)
    thread_reply.register(app)
    edited_reply.register(app)
    ignored.register(app)
