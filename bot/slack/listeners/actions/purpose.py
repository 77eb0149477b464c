"""Button: the purpose buttons (GO 375.01 B.1)."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.request.transitions import ACTION_PURPOSE
from bot.slack.listeners.actions.buttons import action_pattern, button_handler


def register(app: AsyncApp) -> None:
    """Listen to ACTION_PURPOSE presses."""
    app.action(action_pattern(ACTION_PURPOSE))(button_handler("purpose"))
