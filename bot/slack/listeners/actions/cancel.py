"""Button: the cancel button."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.request import ACTION_CANCEL


def register(app: AsyncApp) -> None:
    """Listen to ACTION_CANCEL presses."""
    from bot.slack.listeners.actions import action_pattern, button_handler

    app.action(action_pattern(ACTION_CANCEL))(button_handler("cancel"))
