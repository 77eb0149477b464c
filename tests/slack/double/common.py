"""What every part of the Slack double shares: the test workspace's ids, `ApiError` (Slack's
`{"ok": false, "error": ...}` answer) and the ts and channel-kind helpers."""
from __future__ import annotations

import re
from typing import Any

TOKEN = "xoxb-test-token"  # Bolt treats only xoxb- tokens as bot tokens
TEAM_ID = "T0TEST"
TEAM_DOMAIN = "example"
TEAM_URL = f"https://{TEAM_DOMAIN}.slack.com/"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
APP_ID = "ABOT"
_TS = re.compile(r"\d+\.\d+")


class ApiError(Exception):
    """Raised by a method implementation: becomes Slack's `{"ok": false, "error": ...}` answer."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.body = {"ok": False, "error": error, **extra}


def _ts_key(ts: str) -> tuple[int, int]:
    secs, _, frac = str(ts).partition(".")
    return int(secs or 0), int((frac or "0").ljust(6, "0")[:6])


def _channel_kind(channel: dict[str, Any]) -> str:
    if channel.get("is_im"):
        return "im"
    return "private" if channel.get("is_private") else "public"
