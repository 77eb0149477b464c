"""A persisted record of the pure core (an examination, a CLI request awaiting approval): a dataclass that
round-trips through a plain dict (tinydb's JSON), deep-copied both ways so a stored record is never aliased."""
from __future__ import annotations

import copy
from typing import Any, Self


class JsonRecord:
    """Mixin for dataclasses: to_dict / from_dict (unknown keys ignored, missing ones defaulted) / copy."""

    __dataclass_fields__: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy({k: getattr(self, k) for k in self.__dataclass_fields__})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(**{k: copy.deepcopy(data[k]) for k in cls.__dataclass_fields__ if k in data})

    def copy(self) -> Self:
        return self.from_dict(self.to_dict())
