"""Message shortcut "Facial recognition search": whoever invokes it is the requester for the message's photo;
the poster is recorded as the photo's source. The form opens at once (the trigger id lasts 3 seconds)."""
from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.slack import flow

SHORTCUT_CALLBACK = "fr_search_photo"


async def search_photo(ack, body: dict[str, Any], context) -> None:
    """Ack, then start the request (or say privately why not)."""
    await ack()
    rt = context["runtime"]
    await flow.shortcut_search(rt, body)


def register(app: AsyncApp) -> None:
    """Listen to the message shortcut."""
    app.message_shortcut(SHORTCUT_CALLBACK)(search_photo)
