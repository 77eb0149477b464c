"""Sharing the face workers between requesters (pure: no threads, no clock, no pool).

One officer who uploads 300 photos must not make another officer's single photo wait behind all of them. Work
waits in one first-in-first-out queue per key (the requester); each `pop` serves the key with the least work out
(popped and not yet `done`), ties going to the key served longest ago, then to the first to arrive. Keys that
keep work waiting therefore take turns (round-robin), and a requester with nothing running goes before one whose
photos already fill the workers. Nothing is kept of a key with nothing waiting and nothing out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class FairQueue(Generic[K, T]):
    """Per-key FIFO queues served in turn; see the module docstring. Not thread-safe: callers lock."""

    def __init__(self) -> None:
        self._waiting: dict[K, deque[T]] = {}  # insertion order: who arrived first among those waiting
        self._out: dict[K, int] = {}  # popped, not yet done
        self._served: dict[K, int] = {}  # when each key was last popped (a counter)
        self._tick = 0

    def __len__(self) -> int:
        """How many items wait (popped ones are not counted)."""
        return sum(len(q) for q in self._waiting.values())

    @property
    def out(self) -> int:
        """How many items were popped and are not done yet (all keys)."""
        return sum(self._out.values())

    def push(self, key: K, item: T) -> None:
        """Queue `item` behind `key`'s earlier items."""
        self._waiting.setdefault(key, deque()).append(item)

    def pop(self) -> tuple[K, T] | None:
        """The next (key, item) to serve, counted as out until `done(key)`; None when nothing waits."""
        if not self._waiting:
            return None
        key = min(self._waiting, key=lambda k: (self._out.get(k, 0), self._served.get(k, -1)))
        queue = self._waiting[key]
        item = queue.popleft()
        if not queue:
            del self._waiting[key]
        self._tick += 1
        self._served[key] = self._tick
        self._out[key] = self._out.get(key, 0) + 1
        return key, item

    def done(self, key: K) -> None:
        """One item popped for `key` has ended (however it ended)."""
        left = self._out.get(key, 0) - 1
        if left > 0:
            self._out[key] = left
        else:
            self._out.pop(key, None)
        self._forget(key)

    def discard(self, key: K, item: T) -> bool:
        """Withdraw a waiting item (its caller gave up); False when it is not waiting (popped, or unknown)."""
        queue = self._waiting.get(key)
        if queue is None:
            return False
        for i, waiting in enumerate(queue):
            if waiting is item:
                del queue[i]
                break
        else:
            return False
        if not queue:
            del self._waiting[key]
            self._forget(key)
        return True

    def remembered(self) -> int:
        """How many keys the queue keeps anything of (bounded by those waiting or out)."""
        return len(set(self._waiting) | set(self._out) | set(self._served))

    def _forget(self, key: K) -> None:
        if key not in self._waiting and key not in self._out:
            self._served.pop(key, None)
