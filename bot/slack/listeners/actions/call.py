"""Button: use a call number dispatch never posted as typed, or a suggested recent call instead."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.request import ACTION_CALL


def register(app: AsyncApp) -> None:
    """Listen to ACTION_CALL presses."""
    from bot.slack.listeners.actions import action_pattern, button_handler

    app.action(action_pattern(ACTION_CALL))(button_handler("call"))
