"""A message with files (subtype file_share) -> a request per image, after the guards (in bot.slack.flow)."""
from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.slack import flow


async def is_upload(event: dict[str, Any]) -> bool:
    """A file_share message that carries files."""
    return event.get("subtype") == "file_share" and bool(event.get("files"))


async def upload(body: dict[str, Any], context) -> None:
    """Acked already; the request starts in the background."""
    rt = context["runtime"]
    rt.spawn(flow.handle_upload(rt, body, context.get("dialog_id")), name="upload")


def register(app: AsyncApp) -> None:
    """Listen to uploads."""
    app.event("message", matchers=[is_upload])(upload)
