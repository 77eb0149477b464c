"""Small records: one JSON document per (namespace, key), for state too small for a store of its own (the
pending refusal windows, bot.audit.refusals). Here each is a file, `data_dir/<namespace>/<key>.json` (0600,
written atomically); bot.store.pg.cache.PgSmallRecords keeps them in one table, so every replica sees them.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bot.store.disk import ensure_private_dir, write_private_atomic

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")


def checked_name(name: str) -> str:
    """`name` when it may be a namespace or a key (letters, digits, `_.-`, not starting with a dot)."""
    if not _NAME.fullmatch(name or ""):
        raise ValueError(f"not a record name: {name!r}")
    return name


class SmallRecords:
    """The small records of one data dir, as files."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir)

    def _path(self, namespace: str, key: str) -> Path:
        """The file of one record."""
        return self.root / checked_name(namespace) / f"{checked_name(key)}.json"

    def get(self, namespace: str, key: str) -> dict[str, Any] | None:
        """The record, or None when there is none; ValueError when it is unreadable or not a JSON object."""
        try:
            doc = json.loads(self._path(namespace, key).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self._path(namespace, key)} is unreadable") from exc
        if isinstance(doc, dict):
            return doc
        raise ValueError(f"{self._path(namespace, key)} is not a JSON object")

    def put(self, namespace: str, key: str, doc: dict[str, Any]) -> None:
        """Store (or replace) one record."""
        path = self._path(namespace, key)
        ensure_private_dir(path.parent)
        write_private_atomic(path, json.dumps(doc, sort_keys=True, ensure_ascii=False).encode("utf-8"))

    def remove(self, namespace: str, key: str) -> bool:
        """Forget one record; True when there was one."""
        try:
            self._path(namespace, key).unlink()
            return True
        except FileNotFoundError:
            return False
