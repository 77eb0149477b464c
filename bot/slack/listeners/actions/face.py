"""Button: a face-choice button (value request_id:k)."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.request.transitions import ACTION_FACE
from bot.slack.listeners.actions.buttons import action_pattern, button_handler


def register(app: AsyncApp) -> None:
    """Listen to ACTION_FACE presses."""
    app.action(action_pattern(ACTION_FACE))(button_handler("face"))
