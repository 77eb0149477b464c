"""Every other message event (chatter, edits, deletions, other threads): acked so Slack never sees a 404."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp


async def ignored(ack) -> None:
    """Nothing to do."""
    await ack()


def register(app: AsyncApp) -> None:
    """Listen to all remaining message events (registered last)."""
    app.event("message")(ignored)
