"""Buttons of a supervisor's approval card: Approve, Refuse (each asks the reason)."""
from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.slack.flow import approving
from bot.slack.listeners.actions.buttons import action_pattern


async def approval_button(ack, body: dict[str, Any], action: dict[str, Any], context) -> None:
    await ack()
    rt = context["runtime"]
    rt.spawn(approving.handle_button(rt, body, action), name="approval-button")


def register(app: AsyncApp) -> None:
    """Listen to the approval card's buttons."""
    for action_id in (approving.ACTION_APPROVE, approving.ACTION_REFUSE):
        app.action(action_pattern(action_id))(approval_button)
