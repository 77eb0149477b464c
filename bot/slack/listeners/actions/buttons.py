"""What every button listener shares: the action-id pattern and the ack-then-apply handler of the dialog's buttons."""
from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from bot.slack import flow

Handler = Callable[..., Awaitable[None]]


def action_pattern(action_id: str) -> re.Pattern[str]:
    """The action id, optionally with a ":suffix" (action ids must be unique within a block)."""
    return re.compile(rf"^{re.escape(action_id)}(:.*)?$")


def button_handler(name: str) -> Handler:
    """A listener that acks, then hands the press to the flow."""

    async def handler(ack, body: dict[str, Any], action: dict[str, Any], context) -> None:
        await ack()
        rt = context["runtime"]
        rt.spawn(flow.handle_action(rt, body, action, context.get("dialog_id")), name=f"action-{name}")

    handler.__name__ = f"on_{name}"
    return handler
