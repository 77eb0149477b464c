"""Button: a face-choice button (value request_id:k)."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.request import ACTION_FACE


def register(app: AsyncApp) -> None:
    """Listen to ACTION_FACE presses."""
    from bot.slack.listeners.actions import action_pattern, button_handler

    app.action(action_pattern(ACTION_FACE))(button_handler("face"))
