"""Non-message events. Every subscribed event type is acked (Bolt answers 404 to an unhandled one)."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.listeners.events import file_shared


def register(app: AsyncApp) -> None:
    """Register the event listeners."""
    file_shared.register(app)
