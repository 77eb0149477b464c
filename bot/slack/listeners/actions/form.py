"""Button: Fill in a form. Opens the modal at once (the trigger id lasts 3 seconds), from the thread's dialog."""
from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.request.transitions import ACTION_FORM
from bot.slack import flow
from bot.slack.listeners.actions.buttons import action_pattern


async def open_form(ack, body: dict[str, Any], context) -> None:
    """Ack, then open the form for the requester (anyone else gets the usual private note)."""
    await ack()
    rt = context["runtime"]
    await flow.open_form(rt, body, context.get("dialog_id"))


def register(app: AsyncApp) -> None:
    """Listen to ACTION_FORM presses."""
    app.action(action_pattern(ACTION_FORM))(open_form)
