"""Who may sign in to the console, decided purely (CONTRACTS ### 14): where a person may be sent back to after
signing in (`safe_next`: a local path under /console, never elsewhere), whether a sign-in's `state` still holds
(`state_problem`: its age, the browser it was made for), whether Slack's answers are about the person this
sign-in was for, in this workspace (`identity_problem`), who gets in (`admitted`), and the `audit_access`
entry every sign-in and every refusal writes (`signin_entry`).

The adapter (bot.console.auth) signs the state, talks to Slack and sets the cookie; nothing here does I/O.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

HOME = "/console"
STATE_MAX_AGE_S = 600  # a sign-in must come back from Slack within ten minutes
ROLES = ("command_staff", "auditor")
TEAM_CLAIM = "https://slack.com/team_id"
USER_CLAIM = "https://slack.com/user_id"
# Paths a person is never sent back to: the sign-in itself (a loop) and sign-out (a POST).
_NOT_NEXT = ("/console/signin", "/console/auth", "/console/signout", "/console/static")
_MAX_NEXT = 2000
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")


def safe_next(target: str | None) -> str:
    """Where to go after signing in: `target` when it is a path of this console (/console or below it, with its
    query kept), else /console. Never another site (`//evil.example`, `https://…`, a backslash a browser reads
    as a slash), never a path that leaves /console through dot segments (`%2e%2e` counts: browsers decode it)."""
    if not target or len(target) > _MAX_NEXT or _UNSAFE.search(target):
        return HOME
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//") or parts.fragment:
        return HOME
    path = parts.path
    segments = unquote(path).split("/")
    if any(s in (".", "..") for s in segments) or "%2f" in path.lower():
        return HOME
    if not (path == HOME or path.startswith(HOME + "/")):
        return HOME
    if any(path == p or path.startswith(p + "/") for p in _NOT_NEXT):
        return HOME
    return path + (f"?{parts.query}" if parts.query else "")


def new_binding() -> str:
    """The secret this browser holds (in a short-lived cookie) for one sign-in; the state carries its hash."""
    return secrets.token_urlsafe(24)


def binding_hash(binding: str) -> str:
    return hashlib.sha256(binding.encode("utf-8")).hexdigest()


def new_state(now: float, binding: str, next_path: str) -> dict[str, Any]:
    """The claims a sign-in's `state` carries (signed by the adapter): a unique id (it is claimed once), when it
    was made, the nonce the id_token must bring back, this browser's binding hash, and where to go after."""
    return {"id": secrets.token_urlsafe(16), "t": now, "nonce": secrets.token_urlsafe(16),
            "b": binding_hash(binding), "next": safe_next(next_path)}


def state_problem(state: Mapping[str, Any], now: float, binding: str | None) -> str | None:
    """Why a signed state may not complete a sign-in now ("expired": older than ten minutes, or from the future;
    "browser": not this browser's), or None. Whether it was used already is the claim store's to say."""
    try:
        age = now - float(state["t"])
        expected = str(state["b"])
        str(state["id"]), str(state["nonce"])
    except (KeyError, TypeError, ValueError):
        return "malformed"
    if not -60 <= age <= STATE_MAX_AGE_S:
        return "expired"
    if not binding or not hmac.compare_digest(binding_hash(binding), expected):
        return "browser"
    return None


def read_id_token(token: str) -> dict[str, Any]:
    """The claims of a JWT's payload, read without checking its signature: only for an id_token this server
    received straight from Slack's token endpoint over TLS (OIDC Core 3.1.3.7: the TLS server validation may
    stand in for the signature then). ValueError when it is not a JWT."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise ValueError("not a JWT")
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        claims = None
    if not isinstance(claims, dict):
        raise ValueError("not a JWT")  # noqa: TRY004 - a malformed answer, whatever the type inside
    return claims


def identity_problem(claims: Mapping[str, Any], info: Mapping[str, Any], *, nonce: str, client_id: str,
                     issuer: str, team_id: str) -> str | None:
    """Why Slack's id_token `claims` and userInfo `info` do not name a person of this workspace signing in to this
    app in this sign-in, or None. "nonce": the token was not made for this sign-in (a replayed or injected one);
    "audience"/"issuer": made for another app or by another issuer; "user": the two answers disagree; "team":
    the person belongs to another workspace than the bot's (auth.test's team)."""
    if not hmac.compare_digest(str(claims.get("nonce") or ""), nonce):
        return "nonce"
    audience = claims.get("aud")
    if client_id not in (audience if isinstance(audience, list) else [audience]):
        return "audience"
    if str(claims.get("iss") or "").rstrip("/") != issuer.rstrip("/"):
        return "issuer"
    user = str(info.get(USER_CLAIM) or info.get("sub") or "")
    if not user or user != str(claims.get(USER_CLAIM) or claims.get("sub") or ""):
        return "user"
    if info.get(TEAM_CLAIM) != team_id or claims.get(TEAM_CLAIM) != team_id:
        return "team"
    return None


def admitted(roles: Iterable[str] | None) -> bool:
    """Whether console roles Slack gave (None: Slack could not be asked) let a person in: command staff or an
    auditor, nothing else."""
    return bool(roles) and any(r in ROLES for r in roles or ())


def signin_entry(user_id: str, name: str, *, allowed: bool, outcome: str, roles: Iterable[str] = (),
                 team_id: str = "", action: str = "console_signin", next_path: str = "") -> dict[str, Any]:
    """The `audit_access` fields of a sign-in (`outcome` "signed_in") or a refusal ("not_listed",
    "other_workspace", "unverified"), or of a session ended at a recheck (action console_recheck, "revoked")."""
    return {"actor": {"id": user_id, "name": name}, "action": action, "query": {"next": next_path} if next_path else {},
            "allowed": allowed, "outcome": outcome, "roles": [r for r in roles if r in ROLES], "team_id": team_id,
            "source": "console"}
