"""view_submission of a possible lead's note: checked before the ack, so a missing note shows inline."""
from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.slack import exam_card, flow


async def submit_note(ack, body: dict[str, Any], view: dict[str, Any], context) -> None:
    errors = await flow.examining.submit_exam_note(context["runtime"], body, view)
    if errors:
        await ack(response_action="errors", errors=errors)
    else:
        await ack()


def register(app: AsyncApp) -> None:
    """Listen to the note form's submission."""
    app.view(exam_card.NOTE_CALLBACK)(submit_note)
