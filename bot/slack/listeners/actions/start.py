"""Button: Start, on the bot's offer for an upload that did not ask for a search."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.request import ACTION_START


def register(app: AsyncApp) -> None:
    """Listen to ACTION_START presses."""
    from bot.slack.listeners.actions import action_pattern, button_handler

    app.action(action_pattern(ACTION_START))(button_handler("start"))
