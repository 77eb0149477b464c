"""view_submission of the request form: checked before the ack, so errors show inline under their fields."""
from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.slack import flow
from bot.slack.card import FORM_CALLBACK


async def submit_form(ack, body: dict[str, Any], view: dict[str, Any], context) -> None:
    """Apply the answers; refused ones come back as `response_action: errors`, the rest stay on the card."""
    rt = context["runtime"]
    errors = await flow.submit_form(rt, body, view)
    if errors:
        await ack(response_action="errors", errors=errors)
    else:
        await ack()


def register(app: AsyncApp) -> None:
    """Listen to the form's submission."""
    app.view(FORM_CALLBACK)(submit_form)
