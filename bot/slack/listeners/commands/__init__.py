"""Slash commands: `/frs` (command-staff review: audit queries, monthly report, status, help), gated in
bot.slack.review by bot.slack.roles."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.listeners.commands import frs


def register(app: AsyncApp) -> None:
    """Register the slash commands."""
    frs.register(app)
