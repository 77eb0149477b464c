"""Button: Start, on the bot's offer for an upload that did not ask for a search."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.request.transitions import ACTION_START
from bot.slack.listeners.actions.buttons import action_pattern, button_handler


def register(app: AsyncApp) -> None:
    """Listen to ACTION_START presses."""
    app.action(action_pattern(ACTION_START))(button_handler("start"))
