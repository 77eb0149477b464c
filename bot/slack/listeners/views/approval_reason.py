"""view_submission of a supervisor's decision and its reason."""
from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.slack.flow import approving, dialog


async def submit_reason(ack, body: dict[str, Any], view: dict[str, Any], context) -> None:
    errors = await dialog.submit_approval(context["runtime"], body, view)
    if errors:
        await ack(response_action="errors", errors=errors)
    else:
        await ack()


def register(app: AsyncApp) -> None:
    """Listen to the reason form's submission."""
    app.view(approving.REASON_CALLBACK)(submit_reason)
