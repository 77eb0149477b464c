"""Leases on work in flight (CONTRACTS ### 13): one contract, two stores (a SQLite file in the data dir; PostgreSQL
as the app's role, tests/pg_fixtures.py). Each test runs on both; two handles on one store stand for two replicas
(or a process and the same process after a restart)."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from bot.store.leases import TTL_S, FileLeases
from bot.store.pg.leases import PgLeases

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


@pytest.fixture(params=["file", "postgresql"])
def open_leases(request, tmp_path):
    """open_leases() -> a new handle on the test's one lease store."""
    if request.param == "file":
        handles: list[FileLeases] = []

        def make_file() -> FileLeases:
            handles.append(FileLeases(tmp_path / "leases.sqlite3"))
            return handles[-1]

        yield make_file
        for handle in handles:
            handle.close()
        return
    db = request.getfixturevalue("pg_migrated")
    yield lambda: PgLeases(lambda: psycopg.connect(db.app_url))


def test_a_lease_is_taken_only_when_free_or_expired(open_leases):
    a, b = open_leases(), open_leases()
    assert a.take("FR-1", "replica-a", NOW) is True
    assert b.take("FR-1", "replica-b", later(10)) is False  # held
    assert a.take("FR-1", "replica-a", later(10)) is False  # held, even by its holder: renew extends a lease
    assert b.take("FR-2", "replica-b", later(10)) is True  # another key is free
    assert b.take("FR-1", "replica-b", later(TTL_S - 0.001)) is False
    assert b.take("FR-1", "replica-b", later(TTL_S)) is True  # expired: the 30 s lease ran out
    assert a.take("FR-1", "replica-a", later(TTL_S + 1)) is False  # now b's


def test_only_the_holder_renews_and_only_before_its_lease_runs_out(open_leases):
    a, b = open_leases(), open_leases()
    assert a.take("FR-1", "replica-a", NOW, ttl_s=30)
    assert b.renew("FR-1", "replica-b", later(5)) is False
    assert a.renew("FR-1", "replica-a", later(20), ttl_s=30) is True  # now held until +50 s
    assert b.take("FR-1", "replica-b", later(40)) is False and b.expired(later(40)) == []
    assert a.renew("FR-1", "replica-a", later(50)) is False  # ran out: it may be resumed elsewhere, so stop
    assert a.renew("FR-9", "replica-a", NOW) is False  # never taken


def test_a_released_lease_is_free_at_once_and_only_its_holder_releases_it(open_leases):
    a, b = open_leases(), open_leases()
    assert a.take("FR-1", "replica-a", NOW)
    assert b.release("FR-1", "replica-b") is False and b.take("FR-1", "replica-b", later(1)) is False
    assert a.release("FR-1", "replica-a") is True and a.release("FR-1", "replica-a") is False
    assert b.take("FR-1", "replica-b", later(1)) is True and a.expired(later(TTL_S)) == []


def test_held_says_whether_work_on_a_key_is_in_flight_anywhere(open_leases):
    a, b = open_leases(), open_leases()
    assert b.held("FR-1", NOW) is False
    assert a.take("FR-1", "replica-a", NOW)
    assert b.held("FR-1", later(TTL_S - 1)) is True  # the other replica sees it
    assert b.held("FR-1", later(TTL_S)) is False  # its holder stopped renewing: free to resume
    assert a.release("FR-1", "replica-a") and b.held("FR-1", NOW) is False


def test_expired_lists_only_leases_that_ran_out_oldest_first(open_leases):
    a, b = open_leases(), open_leases()
    assert a.take("FR-1", "replica-a", later(5)) and a.take("FR-2", "replica-a", NOW)
    assert a.take("FR-3", "replica-a", NOW) and a.take("FR-4", "replica-a", NOW, ttl_s=120)
    a.renew("FR-3", "replica-a", later(10))
    a.release("FR-4", "replica-a")
    assert b.expired(later(TTL_S - 1)) == []
    assert b.expired(later(TTL_S + 5)) == ["FR-2", "FR-1"]  # FR-3 renewed, FR-4 released
    assert b.expired(later(TTL_S + 10)) == ["FR-2", "FR-1", "FR-3"]
    # The leader's round: take each expired key; a key another resumed first is left to it.
    assert b.take("FR-2", "replica-b", later(TTL_S + 10)) is True
    assert b.expired(later(TTL_S + 10)) == ["FR-1", "FR-3"]


def test_of_8_threads_taking_one_key_at_once_exactly_one_wins(open_leases):
    handles = [open_leases() for _ in range(8)]
    handles[0].take("FR-expired", "old", later(-60))  # a lease whose holder died a minute ago
    for key in ("FR-free", "FR-expired"):
        won = _race(handles, key)
        assert len(won) == 1, (key, won)
        assert handles[0].release(key, won[0]) is True  # and the store agrees who won


def _race(handles: list, key: str) -> list[str]:
    """Every handle takes `key` at the same moment, each in its own thread: the holders that won."""
    start = threading.Barrier(len(handles))
    won: list[str] = []

    def take(i: int) -> None:
        start.wait()
        if handles[i].take(key, f"replica-{i}", NOW):
            won.append(f"replica-{i}")

    threads = [threading.Thread(target=take, args=(i,)) for i in range(len(handles))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won
