"""The gallery on a real PostgreSQL (tests/pg_fixtures.py), as the app's role, with several replicas: each its
own connection pool and cache dir. What the contract suite cannot say: a commit is one transaction (a crash
inside it changes nothing), replicas fetch a generation once, and writers on two replicas never lose a change."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from bot.store.pg import gallery as pg_gallery
from bot.store.pg.gallery import PgGallery
from tests.store.test_gallery_contract import MODEL, THRESHOLD, fill, image, near, sha, subject, unit


@pytest.fixture
def replica(pg_migrated, tmp_path: Path):
    """replica(name) -> a PgGallery with its own pool and its own cache dir `tmp_path/name`."""
    pools: list[ConnectionPool] = []

    def make(name: str) -> PgGallery:
        pool = ConnectionPool(pg_migrated.app_url, min_size=1, max_size=3, open=True)
        pools.append(pool)
        return PgGallery(pool.connection, tmp_path / name)

    yield make
    for pool in pools:
        pool.close()


def _cached(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _chunk_generations(db) -> set[int]:
    with psycopg.connect(db.app_url) as conn:
        return {g for (g,) in conn.execute("SELECT DISTINCT generation FROM gallery_chunks")}


def test_enrollment_through_one_replica_is_seen_by_the_others_next_search(replica, pg_migrated, tmp_path):
    a, b = replica("a"), replica("b")
    with psycopg.connect(pg_migrated.app_url, autocommit=True) as listener:
        listener.execute("LISTEN frbot_gallery")
        fill(a)
        notes = list(listener.notifies(timeout=5, stop_after=1))
    assert [(n.channel, n.payload) for n in notes] == [("frbot_gallery", "1")]
    assert b.generation == 0 and b.parts_read == 0
    assert b.search(near(unit(3), 3), threshold=THRESHOLD, max_candidates=5)[0].subject_id == "B"
    assert (b.generation, b.subject_count) == (1, 3) and b.parts_read == 3  # three arrays, one part each
    token = _cached(tmp_path / "b")[0].split("-")[2]
    assert _cached(tmp_path / "b") == [f"gallery-000001-{token}-{n}.npy" for n in ("embeddings", "row_image",
                                                                                   "row_subject")]
    a.remove("B")
    assert b.search(near(unit(3), 3), threshold=THRESHOLD, max_candidates=5) == []
    assert all(name.startswith("gallery-000002-") for name in _cached(tmp_path / "b"))  # generation 1 deleted
    assert _chunk_generations(pg_migrated) == {2}  # the database keeps the generation in force only


def test_a_crash_mid_commit_leaves_the_previous_generation_in_force(replica, pg_migrated, tmp_path, monkeypatch):
    a, b = replica("a"), replica("b")
    fill(a)
    publish = PgGallery._publish

    def crash_after_writing_everything(self, conn, generation, staged, cal):
        publish(self, conn, generation, staged, cal)  # parts, calibration, token and NOTIFY all written...
        raise OSError("the disk went away")  # ...and the transaction never commits

    monkeypatch.setattr(PgGallery, "_publish", crash_after_writing_everything)
    with pytest.raises(OSError, match="went away"):
        a.change(MODEL, subjects=[subject("D")], images=[image(5, "D")], encodings=unit(5)[None, :])
    monkeypatch.undo()
    assert _chunk_generations(pg_migrated) == {1}
    for replica_ in (a, b, replica("c")):
        assert replica_.search(near(unit(5), 5), threshold=THRESHOLD, max_candidates=5) == []
        assert (replica_.generation, replica_.subject_count) == (1, 3)
        assert replica_.search(near(unit(1), 1), threshold=THRESHOLD, max_candidates=5)[0].subject_id == "A"
    assert len(_cached(tmp_path / "a")) == 6  # generation 1's files and the staging of the commit that failed
    # The writer lock went with the failed transaction: the next change commits, and the orphans are deleted.
    a.change(MODEL, subjects=[subject("D")], images=[image(5, "D")], encodings=unit(5)[None, :])
    assert b.search(near(unit(5), 5), threshold=THRESHOLD, max_candidates=5)[0].subject_id == "D"
    assert len(_cached(tmp_path / "a")) == 3 and all(n.startswith("gallery-000002-") for n in _cached(tmp_path / "a"))


def test_a_cached_generation_opens_without_reading_a_part(replica, pg_migrated, tmp_path):
    fill(replica("writer"))
    first = replica("cache")
    assert first.parts_read == 3
    again = replica("cache")  # the same replica started again: its cache dir holds the generation
    assert again.parts_read == 0 and again.image_count == 4
    with psycopg.connect(pg_migrated.app_url) as conn:  # not a part left to read: the cache alone serves
        conn.execute("DELETE FROM gallery_chunks")
    third = replica("cache")
    assert third.parts_read == 0
    assert third.search(near(unit(4), 4), threshold=THRESHOLD, max_candidates=5)[0].subject_id == "C"


def test_a_matrix_larger_than_a_part_is_stored_in_parts_and_fetched_whole(replica, pg_migrated, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setattr(pg_gallery, "PART_BYTES", 1000)
    a = replica("a")
    rows = [(n, f"S{n}") for n in range(1, 41)]
    a.change(MODEL, subjects=[subject(s) for _, s in rows], images=[image(n, s) for n, s in rows],
             encodings=np.stack([unit(n) for n, _ in rows]))
    with psycopg.connect(pg_migrated.app_url) as conn:
        parts = dict(conn.execute("SELECT name, count(*) FROM gallery_chunks GROUP BY name").fetchall())
    assert parts == {"embeddings": 21, "row_subject": 1, "row_image": 1}  # 40 x 128 float32 + the .npy header
    b = replica("b")
    assert b.parts_read == 23
    for name in ("embeddings", "row_subject", "row_image"):
        [mine] = (tmp_path / "a").glob(f"gallery-*-{name}.npy")
        [theirs] = (tmp_path / "b").glob(f"gallery-*-{name}.npy")
        assert mine.read_bytes() == theirs.read_bytes()
    assert b.search(near(unit(17), 17), threshold=THRESHOLD, max_candidates=5)[0].subject_id == "S17"


def test_writers_on_two_replicas_at_once_never_lose_a_change(replica):
    writers = [replica("a"), replica("b")]
    errors: list[BaseException] = []

    def enroll_five(gallery: PgGallery, first: int) -> None:
        try:
            for n in range(first, first + 5):
                gallery.change(MODEL, subjects=[subject(f"S{n}")], images=[image(n, f"S{n}")],
                               encodings=unit(n)[None, :])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=enroll_five, args=(g, first)) for g, first in zip(writers, (1, 101))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    reader = replica("c")
    assert (reader.generation, reader.subject_count, reader.image_count) == (10, 10, 10)
    for n in (*range(1, 6), *range(101, 106)):
        assert reader.search(near(unit(n), n), threshold=THRESHOLD, max_candidates=5)[0].image_sha256 == sha(n)
