"""Modal submissions: the request form."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.listeners.views import approval_reason, exam_note, form


def register(app: AsyncApp) -> None:
    """Register the form's submission."""
    form.register(app)
    exam_note.register(app)
    approval_reason.register(app)
