"""Button: the cancel button."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.request.transitions import ACTION_CANCEL
from bot.slack.listeners.actions.buttons import action_pattern, button_handler


def register(app: AsyncApp) -> None:
    """Listen to ACTION_CANCEL presses."""
    app.action(action_pattern(ACTION_CANCEL))(button_handler("cancel"))
