"""`file_shared`: acked and otherwise ignored. The upload's `message` (file_share) event starts the request;
this one arrives too and must not get a 404."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp


async def file_shared(ack) -> None:
    """Nothing to do: requests start from the message event of the upload."""
    await ack()


def register(app: AsyncApp) -> None:
    """Listen to file_shared."""
    app.event("file_shared")(file_shared)
