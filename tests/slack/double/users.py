"""Workspace members and user groups: `add_user` (members, guests, bots), `add_usergroup` (also to change a
group's members), `deactivate_user`, and users.info and usergroups.users.list."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .common import TEAM_ID, ApiError


class UsersMixin:
    """Members and user groups (state: `_users`, `_usergroups`)."""

    def add_user(
        self,
        id: str,
        name: str,
        restricted: bool = False,
        ultra: bool = False,
        is_bot: bool = False,
        *,
        display_name: str | None = None,
        real_name: str | None = None,
    ) -> dict[str, Any]:
        """Add a workspace member; `restricted`/`ultra` make a multi- or single-channel guest."""
        real = real_name if real_name is not None else name.replace(".", " ").title()
        display = display_name if display_name is not None else name
        user = {
            "id": id,
            "team_id": TEAM_ID,
            "name": name,
            "deleted": False,
            "real_name": real,
            "tz": "America/Los_Angeles",
            "is_admin": False,
            "is_owner": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "is_restricted": restricted or ultra,
            "is_ultra_restricted": ultra,
            "profile": {
                "real_name": real,
                "real_name_normalized": real,
                "display_name": display,
                "display_name_normalized": display,
            },
        }
        self._users[id] = user
        return dict(user)

    def add_usergroup(self, id: str, users: Iterable[str]) -> None:
        """Add a user group (subteam) with its members."""
        self._usergroups[id] = list(users)

    def deactivate_user(self, id: str) -> None:
        """Deactivate a member: users.info then says `deleted: true`, as Slack does for a removed account."""
        self._users[id]["deleted"] = True

    def _users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        user = self._users.get(str(p.get("user", "")))
        if user is None:
            raise ApiError("user_not_found")
        return {"user": user}

    def _usergroups_users_list(self, p: dict[str, Any]) -> dict[str, Any]:
        users = self._usergroups.get(str(p.get("usergroup", "")))
        if users is None:
            raise ApiError("no_such_subteam")
        return {"users": list(users)}
