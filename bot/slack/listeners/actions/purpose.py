"""Button: the purpose buttons (GO 375.01 B.1)."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.request import ACTION_PURPOSE


def register(app: AsyncApp) -> None:
    """Listen to ACTION_PURPOSE presses."""
    from bot.slack.listeners.actions import action_pattern, button_handler

    app.action(action_pattern(ACTION_PURPOSE))(button_handler("purpose"))
