"""Shortcuts: "Facial recognition search" on a message with a photo."""
from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.listeners.shortcuts import search_photo


def register(app: AsyncApp) -> None:
    """Register the message shortcut."""
    search_photo.register(app)
