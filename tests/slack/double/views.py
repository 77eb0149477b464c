"""Modals: views.open (trigger id, modal type, title and block limits), and `views` to read them back."""
from __future__ import annotations

import json
from typing import Any

from .common import ApiError


class ViewsMixin:
    """Modals the bot opened (state: `_views`; view ids come from `_ids`)."""

    def views(self) -> list[dict[str, Any]]:
        """The modals the bot opened (views.open), oldest first, with the trigger id each used."""
        return [dict(v) for v in self._views]

    def _views_open(self, p: dict[str, Any]) -> dict[str, Any]:
        trigger = str(p.get("trigger_id") or "")
        if not trigger:
            raise ApiError("invalid_trigger_id")
        view = p.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        if not isinstance(view, dict) or view.get("type") != "modal" or not view.get("title"):
            raise ApiError("invalid_arguments")
        if len(view.get("title", {}).get("text", "")) > 24 or len(view.get("blocks") or []) > 100:
            raise ApiError("invalid_arguments")
        stored = {**view, "id": f"V{next(self._ids):08d}", "trigger_id": trigger}
        self._views.append(stored)
        return {"view": stored}
