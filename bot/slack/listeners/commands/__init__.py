"""Slash commands. None yet: `/frs` (audit review, gallery admin) registers here when it lands, gated by
bot.slack.roles.is_command_staff / is_gallery_admin."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp


def register(app: AsyncApp) -> None:
    """Register slash commands (none yet)."""
