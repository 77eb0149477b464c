"""Button: the I attest button."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.request.transitions import ACTION_ATTEST
from bot.slack.listeners.actions.buttons import action_pattern, button_handler


def register(app: AsyncApp) -> None:
    """Listen to ACTION_ATTEST presses."""
    app.action(action_pattern(ACTION_ATTEST))(button_handler("attest"))
