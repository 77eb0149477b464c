"""Button: use a call number dispatch never posted as typed, or a suggested recent call instead."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.request.transitions import ACTION_CALL
from bot.slack.listeners.actions.buttons import action_pattern, button_handler


def register(app: AsyncApp) -> None:
    """Listen to ACTION_CALL presses."""
    app.action(action_pattern(ACTION_CALL))(button_handler("call"))
