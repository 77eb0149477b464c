"""Buttons of the examiner's review card: claim, give back, decide a candidate, release."""
from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.slack import exam_card, flow
from bot.slack.listeners.actions.buttons import action_pattern


async def exam_button(ack, body: dict[str, Any], action: dict[str, Any], context) -> None:
    """Ack, then apply the press (a possible lead opens its note form at once: the trigger lasts 3 s)."""
    await ack()
    rt = context["runtime"]
    rt.spawn(flow.examining.handle_exam_action(rt, body, action), name="exam-action")


def register(app: AsyncApp) -> None:
    """Listen to the review card's buttons."""
    for action_id in (exam_card.ACTION_CLAIM, exam_card.ACTION_GIVE_BACK, exam_card.ACTION_DECIDE,
                      exam_card.ACTION_RELEASE):
        app.action(action_pattern(action_id))(exam_button)
