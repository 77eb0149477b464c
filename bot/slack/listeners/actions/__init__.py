"""Block actions (buttons) of the request dialog. Each is acked at once and applied in the background."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.listeners.actions import (
    approval,
    attest,
    call,
    cancel,
    examination,
    face,
    form,
    purpose,
    start,
)


def register(app: AsyncApp) -> None:
    """Register the dialog's buttons."""
    start.register(app)
    examination.register(app)
    approval.register(app)
    call.register(app)
    form.register(app)
    purpose.register(app)
    attest.register(app)
    face.register(app)
    cancel.register(app)
