"""One contract, two stores: the call index, the outbox, the replay claims, the probe cache, the small records and
reencode progress answer the same calls the same way on files and on PostgreSQL (tests/pg_fixtures.py, as the
app's role). Each contract test runs on both; the last ones are PostgreSQL's own (several replicas at once)."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from bot.audit.refusals import RefusalAggregator
from bot.faces.gallery import GalleryError
from bot.faces.reencode import Progress
from bot.store.audit_log import AuditLog
from bot.store.calls import CallIndexStore, OutboxStore
from bot.store.pg.cache import PgProbeCache, PgReplayClaims, PgSmallRecords
from bot.store.pg.progress import PgReencodeProgress
from bot.store.pg.slack import PgCallIndexStore, PgOutboxStore
from bot.store.probes import CachedProbe, ProbeCache, probe_bytes
from bot.store.replays import TTL_S, ReplayClaims
from bot.store.small_records import SmallRecords

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW = 1_772_366_400.0  # epoch seconds for the replay claims


@dataclass
class Stores:
    """Factories of one kind of store (a second call is a restart, or another replica on PostgreSQL)."""

    kind: str
    calls: Any
    outbox: Any
    replays: Any
    probes: Any
    records: Any
    progress: Any


@pytest.fixture(params=["file", "postgresql"])
def stores(request, tmp_path) -> Stores:
    if request.param == "file":
        return Stores("file", lambda: CallIndexStore(tmp_path), lambda: OutboxStore(tmp_path),
                      lambda: ReplayClaims(tmp_path / "slack" / "replays.log"), lambda: ProbeCache(tmp_path),
                      lambda: SmallRecords(tmp_path), lambda recipe: Progress(tmp_path, recipe))
    db = request.getfixturevalue("pg_migrated")

    def connect():
        return psycopg.connect(db.app_url)

    return Stores("postgresql", lambda: PgCallIndexStore(connect), lambda: PgOutboxStore(connect),
                  lambda: PgReplayClaims(connect), lambda: PgProbeCache(connect), lambda: PgSmallRecords(connect),
                  lambda recipe: PgReencodeProgress(connect, recipe))


def call_post(call: str, text: str, **extra) -> dict:
    return {"call_number": call, "message": {"text": text}, "attempts": 1, "last_error": "boom",
            "queued_at": "2026-03-01T12:00:00Z", **extra}


def thread_post(channel: str, thread_ts: str | None, text: str) -> dict:
    return {"channel": channel, "thread_ts": thread_ts, "attempts": 1, "last_error": "boom",
            "queued_at": "2026-03-01T12:00:00Z",
            "message": {"text": text, "metadata": {"event_type": "fr_search", "event_payload": {"kind": "result"}}}}


# --- the call index -------------------------------------------------------------------------------------------


def test_the_call_index_puts_replaces_removes_and_survives_a_restart(stores):
    calls = stores.calls()
    assert calls.all() == []
    calls.put([{"call_number": "26-000001", "thread_ts": "1700000000.000100", "first_seen": "2023-11-14T22:13:20Z",
                "source": "dispatch"},
               {"call_number": "26-000002", "thread_ts": "1700000001.000100", "first_seen": "2023-11-14T22:13:21Z",
                "source": "bot"}])
    calls.put([{"call_number": "26-000002", "thread_ts": "1700000000.500000", "first_seen": "2023-11-14T22:13:20Z",
                "source": "backfill"}])
    calls.put([])
    again = stores.calls()
    assert sorted(again.all(), key=lambda r: r["call_number"]) == [
        {"call_number": "26-000001", "thread_ts": "1700000000.000100", "first_seen": "2023-11-14T22:13:20Z",
         "source": "dispatch"},
        {"call_number": "26-000002", "thread_ts": "1700000000.500000", "first_seen": "2023-11-14T22:13:20Z",
         "source": "backfill"}]
    again.remove(["26-000001", "26-999999"])
    again.remove([])
    assert [r["call_number"] for r in stores.calls().all()] == ["26-000002"]
    calls.close()
    again.close()


# --- the outbox -----------------------------------------------------------------------------------------------


def test_the_outbox_queues_oldest_first_each_post_with_its_post_id_once(stores):
    outbox = stores.outbox()
    assert outbox.count() == 0 and outbox.all() == []
    assert outbox.add(call_post("26-000001", "One")) == 1
    assert outbox.add(thread_post("C0CASE", "1700000000.000100", "Result")) == 2
    assert outbox.add(thread_post("C0CASE", None, "Top level")) == 3
    first, result, top = outbox.all()
    assert [d["message"]["text"] for d in (first, result, top)] == ["One", "Result", "Top level"]
    assert first["_id"] < result["_id"] < top["_id"]
    for doc in (first, result, top):  # every post carries its post_id, also where Slack shows it in the thread
        assert doc["post_id"] and doc["message"]["metadata"]["event_payload"]["post_id"] == doc["post_id"]
    assert result["message"]["metadata"]["event_payload"]["kind"] == "result"  # its own metadata kept
    assert result["message"]["metadata"]["event_type"] == "fr_search"
    assert len({first["post_id"], result["post_id"], top["post_id"]}) == 3
    # The same post queued again (by another replica, or a retry) is not queued twice.
    assert outbox.add({**call_post("26-000001", "One"), "post_id": first["post_id"]}) == 3
    assert outbox.add(call_post("26-000001", "Two", post_id="chosen-id")) == 4
    assert outbox.all()[-1]["message"]["metadata"]["event_payload"]["post_id"] == "chosen-id"
    assert outbox.has_call("26-000001") and not outbox.has_call("26-000002")
    assert outbox.has_thread("C0CASE", "1700000000.000100") and outbox.has_thread("C0CASE", None)
    assert not outbox.has_thread("C0CASE", "1700000000.000200") and not outbox.has_thread("C0OTHER", None)
    outbox.update(first["_id"], {"attempts": 2, "last_error": "ratelimited (HTTP 429)"})
    assert stores.outbox().all()[0] == {**first, "attempts": 2, "last_error": "ratelimited (HTTP 429)"}
    assert outbox.remove(first["_id"]) == 3 and outbox.count() == 3
    assert outbox.has_call("26-000001")  # "Two" is still queued
    outbox.close()


def test_the_purge_drops_posts_queued_before_the_cutoff_only(stores):
    outbox = stores.outbox()
    outbox.add(call_post("26-000001", "March"))  # queued 2026-03-01 12:00Z
    outbox.add({**call_post("26-000002", "June"), "queued_at": "2026-06-01T12:00:00Z"})
    assert outbox.purge_before(datetime(2026, 3, 1, 12, 0, tzinfo=UTC)) == 0  # not before its own time
    assert outbox.purge_before(datetime(2026, 5, 1, tzinfo=UTC)) == 1
    assert [d["message"]["text"] for d in stores.outbox().all()] == ["June"] and outbox.count() == 1
    outbox.close()


def test_a_claim_leases_posts_nobody_holds_and_keeps_each_threads_order(stores):
    outbox = stores.outbox()
    for text in ("A1", "A2"):
        outbox.add(call_post("26-000001", text))
    outbox.add(thread_post("C0CASE", "1.1", "B1"))
    outbox.add(call_post("26-000002", "C1"))
    got = outbox.claim(T0, "replica-a", limit=1)
    assert [d["message"]["text"] for d in got] == ["A1"] and got[0]["_lapsed"] is False
    assert {k: v for k, v in got[0].items() if k != "_lapsed"} == outbox.all()[0]
    # A2 waits while A1 (same call thread) is held; the others are free.
    assert [d["message"]["text"] for d in outbox.claim(T0, "replica-b")] == ["B1", "C1"]
    assert outbox.claim(T0 + timedelta(seconds=10), "replica-b") == []
    a1 = got[0]["_id"]
    assert outbox.remove(a1) == 3  # delivered
    assert [d["message"]["text"] for d in outbox.claim(T0 + timedelta(seconds=11), "replica-b")] == ["A2"]
    # A try that ends (update) gives the post back at once, not as a lapsed lease.
    b1 = next(d for d in outbox.all() if d["message"]["text"] == "B1")
    outbox.update(b1["_id"], {"attempts": 2, "last_error": "ratelimited (HTTP 429)"})
    (again,) = outbox.claim(T0 + timedelta(seconds=12), "replica-a")
    assert again["_id"] == b1["_id"] and again["_lapsed"] is False and again["attempts"] == 2
    outbox.release(again["_id"])  # given back untried
    assert [d["_id"] for d in outbox.claim(T0 + timedelta(seconds=13), "replica-b")] == [b1["_id"]]
    outbox.add(call_post("26-000003", "D1"))
    outbox.add(call_post("26-000004", "E1"))
    e1 = outbox.all()[-1]["_id"]
    assert [d["message"]["text"] for d in outbox.claim(T0 + timedelta(seconds=14), "replica-a", ids=[e1])] == ["E1"]


def test_a_lapsed_lease_is_claimable_again(stores):
    outbox = stores.outbox()
    outbox.add(thread_post("C0CASE", "1.1", "Result"))
    (held,) = outbox.claim(T0, "replica-a", lease_s=30)
    assert outbox.claim(T0 + timedelta(seconds=29), "replica-b") == []
    (lapsed,) = outbox.claim(T0 + timedelta(seconds=31), "replica-b")
    assert lapsed["_id"] == held["_id"] and lapsed["_lapsed"] is True and lapsed["post_id"] == held["post_id"]
    assert outbox.claim(T0 + timedelta(seconds=32), "replica-a") == []  # now replica-b holds it


# --- replay claims --------------------------------------------------------------------------------------------


def test_replay_claims_are_seen_within_the_ttl_and_survive_a_restart(stores):
    claims = stores.replays()
    assert not claims.seen("event:Ev01", NOW)
    assert claims.claim("event:Ev01", NOW) is True
    assert claims.seen("event:Ev01", NOW + TTL_S) and claims.claim("event:Ev01", NOW + 1) is False
    assert not claims.seen("event:Ev01", NOW + TTL_S + 1)
    claims.remember("sig:abc", NOW)  # the ack path: in memory at once
    assert claims.seen("sig:abc", NOW) and claims.claim("sig:abc", NOW + 1) is False
    restarted = stores.replays()
    assert restarted.seen("event:Ev01", NOW + 5) and not restarted.seen("sig:abc", NOW + 5)  # not persisted yet
    claims.persist("sig:abc", NOW)
    assert stores.replays().seen("sig:abc", NOW + 5)
    # Expired: the key may be claimed again, once.
    later = stores.replays()
    assert later.claim("event:Ev01", NOW + TTL_S + 1) is True and later.claim("event:Ev01", NOW + TTL_S + 2) is False
    for bad in ("", "event: Ev02"):
        with pytest.raises(ValueError):
            claims.claim(bad, NOW)
        with pytest.raises(ValueError):
            claims.remember(bad, NOW)


def test_the_same_replay_key_claimed_from_8_threads_gives_one_first_claim(stores):
    claimants = [stores.replays() for _ in range(8)] if stores.kind == "postgresql" else [stores.replays()] * 8
    start = threading.Barrier(8)
    results: list[bool] = []

    def run(claims) -> None:
        start.wait()
        results.append(claims.claim("event:EvSAME", NOW))

    threads = [threading.Thread(target=run, args=(c,)) for c in claimants]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


# --- the probe cache ------------------------------------------------------------------------------------------


def a_probe(faces: int = 2) -> CachedProbe:
    rng = np.random.default_rng(7)
    return CachedProbe("ab" * 32, 640, 480, [{"index": i, "size": 90 + i} for i in range(1, faces + 1)],
                       rng.normal(size=(faces, 128)).astype(np.float32), [b"\xff\xd8crop%d" % i for i in range(faces)],
                       b"\xff\xd8annotated", {"padded": False, "boxes": [{"top": 1, "right": 2, "bottom": 3, "left": 0}]})


def test_the_probe_cache_keeps_the_same_analysis_until_removed_or_purged(stores):
    probes = stores.probes()
    assert probes.get("FR-1") is None and probes.remove("FR-1") is False
    probe = a_probe()
    probes.put("FR-1", probe)
    probes.put("FR-2", a_probe(1))
    got = stores.probes().get("FR-1")
    assert (got.sha256, got.width, got.height, got.faces, got.crops, got.annotated, got.encode) == (
        probe.sha256, probe.width, probe.height, probe.faces, probe.crops, probe.annotated, probe.encode)
    assert np.array_equal(got.encodings, probe.encodings) and np.array_equal(got.encoding(2), probe.encodings[1])
    for bad in ("", "../x", "FR 1"):
        with pytest.raises(ValueError):
            probes.put(bad, probe)
    assert probes.remove("FR-1") is True and probes.get("FR-1") is None
    now = datetime.now(UTC)
    assert probes.purge_before(now - timedelta(hours=1)) == (0, 0)
    assert probes.purge_before(now + timedelta(minutes=1)) == (1, len(probe_bytes(a_probe(1))))
    assert probes.get("FR-2") is None


# --- small records --------------------------------------------------------------------------------------------


def test_small_records_are_one_document_per_namespace_and_key(stores):
    records = stores.records()
    assert records.get("audit", "refusals.pending") is None and records.remove("audit", "x") is False
    records.put("audit", "refusals.pending", {"kind": "pending_refusals", "windows": {"a": 1}, "é": "✓"})
    records.put("audit", "other", {"n": 1})
    records.put("audit", "other", {"n": 2})
    again = stores.records()
    assert again.get("audit", "refusals.pending") == {"kind": "pending_refusals", "windows": {"a": 1}, "é": "✓"}
    assert again.get("audit", "other") == {"n": 2} and again.get("elsewhere", "other") is None
    assert again.remove("audit", "other") is True and records.get("audit", "other") is None
    for namespace, key in (("audit", "../key"), ("", "x"), ("audit", ".hidden"), ("a/b", "x")):
        with pytest.raises(ValueError):
            records.put(namespace, key, {})


def test_refused_attempts_folded_before_a_restart_are_kept_in_either_store(stores, tmp_path):
    clock = type("Clock", (), {"now": T0, "__call__": lambda self: self.now})()
    audit = AuditLog(tmp_path / "audit-data", key=b"k" * 32, key_source="env", clock=clock)
    agg = RefusalAggregator(audit, 10, records=stores.records())
    fields = {"outcome": "denied", "requester": {"id": "U0X"}, "denied": ["not on the list"], "file_id": "F1"}
    assert agg.record("search", "U0X", fields, T0) is not None
    assert agg.record("search", "U0X", {**fields, "file_id": "F2"}, T0 + timedelta(seconds=5)) is None
    restarted = RefusalAggregator(audit, 10, records=stores.records())
    assert restarted.pending() == 1 and restarted.pending_attempt("file_id", "F2") is not None
    assert restarted.flush(T0 + timedelta(minutes=10)) == 1
    folded = list(audit.entries())[-1]
    assert folded["count"] == 1 and "pending_unverified" not in folded
    assert RefusalAggregator(audit, 10, records=stores.records()).pending() == 0


# --- reencode progress ----------------------------------------------------------------------------------------


def test_reencode_progress_resumes_restarts_on_another_recipe_and_runs_once(stores):
    recipe = {"model": "sface", "detect_max_side": 1024}
    template = np.arange(128, dtype=np.float32)
    kept = stores.progress(recipe)
    with pytest.raises(GalleryError):
        stores.progress(recipe)  # one run at a time
    kept.add("sha-1", template, '{"top": 1}')
    kept.add("sha-2", None, None, "no face overlaps the enrolled box")
    kept.close()
    resumed = stores.progress(recipe)
    assert resumed.known(["sha-1", "sha-2", "sha-3"]) == {"sha-1", "sha-2"}
    (got, box), = resumed.templates(["sha-1", "sha-2"]).values()
    assert np.array_equal(got, template) and box == '{"top": 1}'
    assert resumed.reasons(["sha-1", "sha-2"]) == {"sha-2": "no face overlaps the enrolled box"}
    resumed.close()
    other = stores.progress({**recipe, "model": "dlib-resnet"})  # what was made cannot be used
    assert other.known(["sha-1", "sha-2"]) == set()
    other.add("sha-3", template, "{}")
    other.close(delete=True)
    fresh = stores.progress({**recipe, "model": "dlib-resnet"})
    assert fresh.known(["sha-3"]) == set()
    fresh.close(delete=True)


# --- PostgreSQL: several replicas at once ---------------------------------------------------------------------


@pytest.fixture
def two_pools(pg_migrated):
    pools = [ConnectionPool(pg_migrated.app_url, min_size=2, max_size=2, open=True) for _ in range(2)]
    yield pools
    for pool in pools:
        pool.close()


def test_two_pools_claiming_the_outbox_at_once_never_get_the_same_post(two_pools):
    first = PgOutboxStore(two_pools[0].connection)
    for n in range(200):  # each to its own thread, so only the leases decide who gets which
        first.add(thread_post("C0CASE", f"1700000000.{n:06d}", f"post {n}"))
    replicas = [PgOutboxStore(pool.connection) for pool in two_pools for _ in range(2)]  # 2 senders per replica
    start = threading.Barrier(len(replicas))
    got: dict[int, list[int]] = {i: [] for i in range(len(replicas))}

    def send(i: int) -> None:
        start.wait()
        while batch := replicas[i].claim(T0, f"replica-{i}", limit=3):
            got[i] += [d["_id"] for d in batch]

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(replicas))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [doc_id for ids in got.values() for doc_id in ids]
    assert len(claimed) == len(set(claimed)) == 200
    assert sorted(claimed) == [d["_id"] for d in first.all()]
    assert sum(1 for ids in got.values() if ids) >= 2  # they really ran side by side


def test_a_lapsed_lease_held_by_a_dead_replica_is_claimed_by_another(two_pools):
    a, b = (PgOutboxStore(pool.connection) for pool in two_pools)
    a.add(call_post("26-000001", "One"))
    a.add(call_post("26-000001", "Two"))
    held = a.claim(T0, "replica-a")
    assert [d["message"]["text"] for d in held] == ["One", "Two"]
    assert b.claim(T0 + timedelta(seconds=29), "replica-b") == []
    taken = b.claim(T0 + timedelta(seconds=30), "replica-b")  # replica-a died: its lease ran out
    assert [(d["message"]["text"], d["_lapsed"]) for d in taken] == [("One", True), ("Two", True)]
    with two_pools[0].connection() as conn:
        assert conn.execute("SELECT DISTINCT leased_by FROM outbox").fetchall() == [("replica-b",)]


def test_the_app_role_may_change_these_tables_but_not_the_audit_table(pg_migrated):
    with psycopg.connect(pg_migrated.app_url) as conn:
        for table in ("call_index", "outbox", "replay_claims", "probe_cache", "small_records"):
            for right in ("SELECT", "INSERT", "UPDATE", "DELETE"):
                assert conn.execute("SELECT has_table_privilege(current_user, %s, %s)", (table, right)).fetchone()[0]
            assert not conn.execute("SELECT has_table_privilege(current_user, %s, 'TRUNCATE')", (table,)).fetchone()[0]


def test_a_probe_row_holds_the_npz_bytes_the_file_holds(pg_migrated, tmp_path):
    probe = a_probe()
    PgProbeCache(lambda: psycopg.connect(pg_migrated.app_url)).put("FR-1", probe)
    with psycopg.connect(pg_migrated.app_url) as conn:
        (data,) = conn.execute("SELECT data FROM probe_cache WHERE request_id = 'FR-1'").fetchone()
    files = ProbeCache(tmp_path)
    files.put("FR-0", a_probe(1))  # makes the folder
    Path(files.dir / "FR-1.npz").write_bytes(bytes(data))  # the row, as a file: the file store reads it
    got = files.get("FR-1")
    assert got is not None and got.crops == probe.crops and np.array_equal(got.encodings, probe.encodings)
