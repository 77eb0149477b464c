"""`/frs`: acked at once (Slack shows an error after 3 seconds), answered in the background by
bot.slack.review (audit queries and the report chart may take longer than that)."""
from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.slack import review

COMMAND = "/frs"


async def frs(ack, body: dict[str, Any], respond, context) -> None:
    """Ack with an empty body (nothing is echoed to the channel), then answer after the ack."""
    await ack()
    rt = context["runtime"]
    rt.spawn(review.handle(rt, body, respond), name="frs")


def register(app: AsyncApp) -> None:
    """Listen to /frs."""
    app.command(COMMAND)(frs)
