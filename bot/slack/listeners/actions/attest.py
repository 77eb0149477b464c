"""Button: the I attest button."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.request import ACTION_ATTEST


def register(app: AsyncApp) -> None:
    """Listen to ACTION_ATTEST presses."""
    from bot.slack.listeners.actions import action_pattern, button_handler

    app.action(action_pattern(ACTION_ATTEST))(button_handler("attest"))
