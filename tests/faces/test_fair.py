"""Face workers are shared per requester: one officer's 300 uploads never make another officer's photo wait
behind them. The scheduler is pure (ordering tested exactly); the engine test runs it with the real pool."""

from __future__ import annotations

import asyncio
import time

from bot.config import ImageSettings
from bot.faces.engine import FaceEngine
from bot.faces.fair import FairQueue


def _drain(queue: FairQueue) -> list:
    out = []
    while (nxt := queue.pop()) is not None:
        out.append(nxt)
    return out


def test_a_requester_with_one_photo_is_served_within_the_first_two_after_300_of_another():
    queue: FairQueue[str, int] = FairQueue()
    for i in range(300):
        queue.push("A", i)
    queue.push("B", 0)
    assert len(queue) == 301
    served = _drain(queue)
    assert ("B", 0) in served[:2]
    assert [i for key, i in served if key == "A"] == list(range(300))  # each requester's own order kept
    assert len(queue) == 0 and queue.pop() is None


def test_waiting_requesters_take_turns_each_in_its_own_order():
    queue: FairQueue[str, str] = FairQueue()
    for key, n in (("A", 3), ("B", 2), ("C", 1)):
        for i in range(1, n + 1):
            queue.push(key, f"{key}{i}")
    assert [item for _, item in _drain(queue)] == ["A1", "B1", "C1", "A2", "B2", "A3"]


def test_work_still_running_counts_so_a_newcomer_goes_before_a_busy_requester():
    """A's first photo is in a worker (popped, not done): B, who has nothing running, is next; once A's is done
    and B's is running, A is next again."""
    queue: FairQueue[str, str] = FairQueue()
    queue.push("A", "A1")
    assert queue.pop() == ("A", "A1")
    for i in range(2, 6):
        queue.push("A", f"A{i}")
    queue.push("B", "B1")
    assert queue.pop() == ("B", "B1")
    assert queue.out == 2
    queue.done("A")
    assert queue.pop() == ("A", "A2")


def test_a_withdrawn_photo_is_never_served():
    queue: FairQueue[str, str] = FairQueue()
    queue.push("A", "A1")
    queue.push("A", "A2")
    queue.push("B", "B1")
    assert queue.discard("A", "A1") and not queue.discard("A", "A1")
    assert queue.discard("B", "B1")
    assert len(queue) == 1 and _drain(queue) == [("A", "A2")]


def test_nothing_is_remembered_of_a_requester_with_nothing_waiting_or_running():
    queue: FairQueue[str, int] = FairQueue()
    for i in range(1000):
        queue.push(f"U{i}", i)
        queue.pop()
        queue.done(f"U{i}")
    assert queue.remembered() == 0


async def test_through_the_real_pool_another_requesters_photo_overtakes_a_backlog():
    """One worker, A's eight slow tasks queued first, then B's one: B's ends second (after the A task already in
    the worker), not ninth."""
    engine = FaceEngine(ImageSettings(), workers=1, deadline=60)
    try:
        engine.start()
        ended: list[str] = []

        async def one(requester: str, name: str) -> None:
            await engine.run(time.sleep, 0.2, requester=requester)
            ended.append(name)

        tasks = [asyncio.create_task(one("A", f"A{i}")) for i in range(8)]
        await asyncio.sleep(0.05)  # A's tasks are all submitted before B's
        tasks.append(asyncio.create_task(one("B", "B1")))
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        assert ended.index("B1") <= 1, ended
        assert [n for n in ended if n != "B1"] == [f"A{i}" for i in range(8)]
    finally:
        engine.close()


async def test_a_cancelled_waiting_task_never_runs_and_frees_its_place():
    engine = FaceEngine(ImageSettings(), workers=1, deadline=60)
    try:
        engine.start()
        first = asyncio.create_task(engine.run(time.sleep, 0.3, requester="A"))
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(engine.run(time.sleep, 30, requester="A"))
        await asyncio.sleep(0.05)
        waiting.cancel()
        started = time.monotonic()
        await first
        await asyncio.wait_for(engine.run(time.sleep, 0, requester="B"), 20)
        assert time.monotonic() - started < 10  # not behind the 30 s task that was withdrawn
    finally:
        engine.close()
