"""Every Bolt listener, one small module per callback; `register(app)` adds them all in matching order."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.listeners import actions, commands, messages


def register(app: AsyncApp) -> None:
    """Register messages, actions and commands (the only events subscribed are messages: see the manifest)."""
    messages.register(app)
    actions.register(app)
    commands.register(app)
