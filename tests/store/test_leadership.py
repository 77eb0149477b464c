"""Leadership among replicas (CONTRACTS ### 13) on a real PostgreSQL (tests/pg_fixtures.py), as the app's role:
exactly one replica leads; when it closes, dies (kill -9) or loses its session, another takes over at its next poll,
and two never lead at once. The file store's stand-in answers the same calls."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from bot.store.leadership import SoleLeadership
from bot.store.pg.leader import LEADER_KEY, NOTICE_S, Leadership, keepalive_options

ROOT = Path(__file__).resolve().parents[2]
# A replica process that takes leadership, says so, and holds it until killed.
CHILD = """import sys, time
from bot.store.pg.leader import Leadership
lead = Leadership(sys.argv[1], "child")
print(lead.poll(), flush=True)
time.sleep(600)
"""


def _holders(db) -> list[str]:
    """application_name of every session holding the leader lock, as the DBA sees it."""
    with psycopg.connect(db.admin_url, autocommit=True) as admin:
        rows = admin.execute("SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                             "WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted", (LEADER_KEY,))
        return [r[0] for r in rows]


def _wait_gone(db, application_name: str, timeout: float = NOTICE_S) -> None:
    """Until the server has ended every session named `application_name`."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(db.admin_url, autocommit=True) as admin:
        while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                            (application_name,)).fetchone()[0]:
            assert time.monotonic() < deadline, f"{application_name}'s session outlived {timeout} s"
            time.sleep(0.05)


@pytest.fixture
def replicas(pg_migrated):
    made: list[Leadership] = []

    def make(replica_id: str) -> Leadership:
        made.append(Leadership(pg_migrated.app_url, replica_id))
        return made[-1]

    yield make
    for lead in made:
        lead.close()


@pytest.mark.parametrize("store", ["file", "postgresql"])
def test_each_store_answers_the_same_calls(store, request):
    if store == "file":
        lead = SoleLeadership("r1", keepalive_s=5)
    else:
        lead = Leadership(request.getfixturevalue("pg_migrated").app_url, "r1", keepalive_s=5)
    assert lead.poll() is True and lead.is_leader and lead.replica_id == "r1" and lead.keepalive_s == 5
    assert lead.poll() is True  # still leading at the next poll
    lead.close()
    assert lead.is_leader is False
    lead.close()  # twice is harmless


def test_two_replicas_on_one_database_exactly_one_leads_and_keeps_leading(replicas, pg_migrated):
    a, b = replicas("a"), replicas("b")
    for _ in range(3):
        assert [a.poll(), b.poll()] == [True, False]
    assert (a.is_leader, b.is_leader) == (True, False) and _holders(pg_migrated) == ["frbot leader a"]


def test_when_the_leader_closes_the_other_leads_at_its_next_poll(replicas, pg_migrated):
    a, b = replicas("a"), replicas("b")
    assert [a.poll(), b.poll()] == [True, False]
    a.close()
    assert b.poll() is True and _holders(pg_migrated) == ["frbot leader b"]
    assert a.poll() is False  # a comes back as a follower


def test_kill_9_of_the_leader_process_hands_leadership_to_the_other_within_one_poll(replicas, pg_migrated):
    child = subprocess.Popen([sys.executable, "-c", CHILD, pg_migrated.app_url], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "True"
        b = replicas("b")
        assert b.poll() is False and _holders(pg_migrated) == ["frbot leader child"]
        killed = time.monotonic()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        child.kill()
        child.wait()
    _wait_gone(pg_migrated, "frbot leader child")  # the kernel closed its socket; the server ended its session
    assert b.poll() is True and _holders(pg_migrated) == ["frbot leader b"]
    assert time.monotonic() - killed < NOTICE_S


def test_after_the_database_drops_every_session_leadership_is_taken_again_never_by_two(replicas, pg_migrated):
    a, b = replicas("a"), replicas("b")
    assert [a.poll(), b.poll()] == [True, False]
    for first, second in ((b, a), (a, b), (b, a)):  # the follower, then the leader, polls first after the loss
        with psycopg.connect(pg_migrated.admin_url, autocommit=True) as admin:  # what a restart does to sessions
            ended = admin.execute("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                                  "WHERE application_name LIKE 'frbot leader %'").fetchone()[0]
        assert ended == 2
        _wait_gone(pg_migrated, "frbot leader a")
        _wait_gone(pg_migrated, "frbot leader b")
        first.poll()
        assert len(_holders(pg_migrated)) == 1  # re-taken by the first to poll
        second.poll()
        holders = _holders(pg_migrated)
        assert [a.is_leader, b.is_leader].count(True) == 1 and len(holders) == 1
        assert holders == [f"frbot leader {'a' if a.is_leader else 'b'}"]  # the one that says it leads holds it


def test_an_unreachable_database_means_not_leading_and_polling_again_reconnects(pg_migrated, tmp_path):
    nowhere = Leadership(f"postgresql://frbot_app@/nowhere?host={tmp_path}", "lost", keepalive_s=1)
    assert nowhere.poll() is False and nowhere.is_leader is False  # no exception: the next poll tries again
    lead = Leadership(pg_migrated.app_url, "a")
    try:
        assert lead.poll() is True
        with psycopg.connect(pg_migrated.admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                          (lead.application_name,))
        _wait_gone(pg_migrated, lead.application_name)
        assert lead.poll() is True  # the failed query dropped the session; the same poll connected and re-took it
    finally:
        lead.close()


def test_a_leader_whose_polls_stall_stops_claiming_before_the_lock_could_move(pg_migrated):
    lead = Leadership(pg_migrated.app_url, "a", keepalive_s=0.2)
    try:
        assert lead.poll() is True
        time.sleep(0.5)  # two keepalives without a poll: the session may be gone unnoticed
        assert lead.is_leader is False
        assert lead.poll() is True  # a poll that proves the lock still held restores the claim
    finally:
        lead.close()


def test_the_leadership_session_notices_a_dead_peer_within_15_seconds(pg_migrated):
    options = keepalive_options(5)
    client_s = options["keepalives_idle"] + options["keepalives_interval"] * options["keepalives_count"]
    assert client_s <= NOTICE_S - 5 and options["tcp_user_timeout"] <= (NOTICE_S - 5) * 1000
    for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count", "tcp_user_timeout"):
        assert f"-c {name}=" in options["options"]  # the server drops a vanished leader's session as fast
    lead = Leadership(pg_migrated.app_url, "a")
    try:
        lead.poll()
        params = lead._conn.info.get_parameters()
        assert params["keepalives_idle"] == str(options["keepalives_idle"]) and params["keepalives"] == "1"
        assert params["options"] == options["options"] and lead._conn.autocommit
    finally:
        lead.close()
