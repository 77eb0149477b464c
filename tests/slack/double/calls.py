"""The call log: `Call` (one request the double received) and what tests read from it - `call_log`,
`calls`, `clear_calls`, and `wait_for`, which waits for the bot's background work instead of sleeping."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Call:
    """One request the double received: an API method, or the pseudo-methods `files.upload` (the upload
    URL) and `files.download` (a file URL)."""

    method: str
    params: dict[str, Any]
    status: int
    response: dict[str, Any] | None
    token: str | None  # the bearer token the request carried, None when it carried none
    at: float = field(default_factory=time.monotonic)  # when it arrived (e.g. to check update spacing)

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response and self.response.get("ok"))

    @property
    def error(self) -> str | None:
        return (self.response or {}).get("error")


class CallsMixin:
    """Recording every request, and reading the record back (state: `_log`, `_changed`)."""

    def call_log(self, method: str | None = None) -> list[Call]:
        """Every recorded request (of one method when given), in arrival order, failed ones included."""
        return [c for c in self._log if method is None or c.method == method]

    def calls(self, method: str) -> list[dict[str, Any]]:
        """The parsed parameters of every call of `method`, in order (failed calls included)."""
        return [c.params for c in self.call_log(method)]

    def clear_calls(self) -> None:
        """Forget recorded calls (fixture data and messages stay)."""
        self._log.clear()

    async def wait_for(
        self,
        match: str | Callable[[Call], bool],
        *,
        count: int = 1,
        ok: bool | None = None,
        timeout: float = 10.0,
    ) -> Call:
        """Wait until `count` recorded calls match, and return the `count`-th one.

        `match` is a method name or a predicate on Call; `ok=True` counts only successful calls. The bot
        works in the background after acking, so tests wait for its calls instead of sleeping. On timeout
        raises AssertionError listing what was recorded.
        """

        def matching() -> list[Call]:
            found = []
            for c in self._log:
                if isinstance(match, str) and c.method != match:
                    continue
                if callable(match) and not match(c):
                    continue
                if ok is not None and c.ok != ok:
                    continue
                found.append(c)
            return found

        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed = self._changed  # taken before the check, so no record is missed
                    found = matching()
                    if len(found) >= count:
                        return found[count - 1]
                    await changed.wait()
        except TimeoutError:
            seen = ", ".join(f"{c.method}({c.error or c.status})" if not c.ok else c.method for c in self._log)
            raise AssertionError(
                f"no {count} call(s) matching {match!r} within {timeout}s; recorded: {seen or 'nothing'}"
            ) from None

    def _record(self, call: Call) -> None:
        self._log.append(call)
        self._changed.set()
        self._changed = asyncio.Event()
