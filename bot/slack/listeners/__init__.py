"""Every Bolt listener, one small module per callback; `register(app)` adds them all in matching order."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.listeners import actions, commands, messages, shortcuts, views


def register(app: AsyncApp) -> None:
    """Register messages, actions, modal submissions, shortcuts and commands (the only events subscribed are
    messages: see the manifest)."""
    messages.register(app)
    actions.register(app)
    views.register(app)
    shortcuts.register(app)
    commands.register(app)
