"""The console's session: who signed in, which console roles Slack gave them and when, in one signed cookie
(itsdangerous: HMAC-SHA256 with a timestamp), so any replica reads it and nothing is stored server-side.

Pure apart from the clock: the sign-in (bot.console.auth) makes a `Session`; the middleware reads it back.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass, replace
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "frbot_console"
ROLES = ("command_staff", "auditor")


def session_secret(client_secret: str) -> bytes:
    """The key sessions are signed with, derived from the app's client secret: every replica has it, and it is
    never the secret itself (a leaked cookie key would not let anyone exchange codes)."""
    return hmac.new(client_secret.encode(), b"frbot console session v1", hashlib.sha256).digest()


@dataclass(frozen=True)
class Session:
    """A signed-in person: Slack user and team, display name, console roles, when they signed in and when their
    roles were last asked of Slack (epoch seconds), and the CSRF token their forms carry."""

    user_id: str
    team_id: str
    name: str
    roles: tuple[str, ...]
    signed_in: float
    checked: float
    csrf: str

    @classmethod
    def new(cls, user_id: str, team_id: str, name: str, roles: tuple[str, ...], now: float) -> Session:
        return cls(user_id, team_id, name, tuple(roles), now, now, secrets.token_urlsafe(24))

    def rechecked(self, roles: tuple[str, ...], now: float) -> Session:
        return replace(self, roles=tuple(roles), checked=now)

    def needs_check(self, now: float, recheck_minutes: int) -> bool:
        return now - self.checked >= recheck_minutes * 60

    def expired(self, now: float, session_hours: int) -> bool:
        return now - self.signed_in >= session_hours * 3600 or now < self.signed_in - 300

    @property
    def actor(self) -> dict[str, str]:
        """The person as audit entries name an actor."""
        return {"id": self.user_id, "name": self.name}

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "roles": list(self.roles)}


class SessionCodec:
    """Session <-> cookie value, signed; a value that does not verify, is malformed or is older than `max_age`
    seconds reads as None (signed out), never as an error."""

    def __init__(self, secret: bytes, salt: str = "frbot-console-session") -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=salt)

    def dumps(self, session: Session) -> str:
        return self._serializer.dumps(session.as_dict())

    def loads(self, value: str | None, max_age: float) -> Session | None:
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=max_age)
            return Session(
                user_id=str(data["user_id"]), team_id=str(data["team_id"]), name=str(data["name"]),
                roles=tuple(r for r in data["roles"] if r in ROLES), signed_in=float(data["signed_in"]),
                checked=float(data["checked"]), csrf=str(data["csrf"]),
            )
        except (BadSignature, KeyError, TypeError, ValueError):
            return None
