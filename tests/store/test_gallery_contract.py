"""One contract, two stores: the file gallery (bot.faces.gallery) and the PostgreSQL one (bot.store.pg.gallery)
answer the same calls the same way (issue 17: the store seam). Each test runs on both; a second `make()` is
another process on the same data dir, or another replica (its own cache dir) on the same database.

Templates are random unit vectors where faces are not the point (the matrix, its keys, the calibration); the
last test enrolls real photos through `enroll`, as `gallery enroll` does.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from psycopg_pool import ConnectionPool

from bot.faces.enroll import enroll
from bot.faces.gallery import DIM, Gallery, GalleryError
from bot.store.pg.gallery import PgGallery

from ..conftest import link_subjects

MODEL = "dlib-resnet"  # what the distances below are read as (Euclidean; ceiling 0.55)
THRESHOLD = 0.55


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def near(v: np.ndarray, seed: int, by: float = 0.004) -> np.ndarray:
    """A template of the same person: `v` moved a little."""
    w = v + np.random.default_rng(seed + 10_000).standard_normal(DIM).astype(np.float32) * by
    return w / np.linalg.norm(w)


def sha(n: int) -> str:
    return f"{n:064x}"


def subject(sid: str) -> dict:
    return {"subject_id": sid, "name": f"Name {sid}", "record_ref": f"R-{sid}"}


def image(n: int, sid: str) -> dict:
    return {"sha256": sha(n), "subject_id": sid, "source": f"/photos/{n}.jpg", "box": '{"top":1}', "actor": "admin"}


def fill(gallery) -> dict[str, np.ndarray]:
    """Subjects A (two images), B and C (one each); returns each image's template by SHA-256."""
    rows = [(1, "A"), (2, "A"), (3, "B"), (4, "C")]
    templates = {sha(n): unit(n) for n, _ in rows}
    gallery.change(MODEL, subjects=[subject(s) for s in "ABC"], images=[image(n, s) for n, s in rows],
                   encodings=np.stack([templates[sha(n)] for n, _ in rows]))
    return templates


@pytest.fixture(params=["file", "postgresql"])
def make(request, tmp_path: Path):
    """make() -> a gallery of the parametrised store: each call another process (files) or replica (PostgreSQL)."""
    if request.param == "file":
        return lambda: Gallery(tmp_path / "data")
    db = request.getfixturevalue("pg_migrated")
    pool = ConnectionPool(db.app_url, min_size=1, max_size=4, open=True)
    request.addfinalizer(pool.close)
    caches = itertools.count(1)
    return lambda: PgGallery(pool.connection, tmp_path / f"replica-{next(caches)}")


def test_an_empty_gallery_searches_to_nothing(make):
    gallery = make()
    assert (gallery.subject_count, gallery.image_count, gallery.generation) == (0, 0, 0)
    assert gallery.search(unit(1), threshold=THRESHOLD, max_candidates=5) == []
    assert gallery.search_detail(unit(1), threshold=THRESHOLD, max_candidates=5) == ([], [], None)
    assert gallery.subjects() == [] and gallery.subject_images() == {} and list(gallery.images()) == []
    assert gallery.remove("nobody") == 0 and gallery.generation == 0  # nothing to change: no generation
    assert (gallery.model_id, gallery.calibration, gallery.stats()["calibration"]) == ("", None, None)


def test_enrolled_images_are_listed_searched_and_counted(make):
    gallery = make()
    templates = fill(gallery)
    assert (gallery.subject_count, gallery.image_count, gallery.generation, gallery.model_id) == (3, 4, 1, MODEL)
    assert [(s["subject_id"], s["name"], s["record_ref"], s["images"]) for s in gallery.subjects()] == [
        ("A", "Name A", "R-A", 2), ("B", "Name B", "R-B", 1), ("C", "Name C", "R-C", 1)]
    assert {k: sorted(v) for k, v in gallery.subject_images().items()} == {"A": [sha(1), sha(2)], "B": [sha(3)],
                                                                           "C": [sha(4)]}
    assert gallery.image_owners([sha(3), sha(9)]) == {sha(3): "B"}
    listed = list(gallery.images(chunk=3))  # two chunks
    assert [im["sha256"] for im in listed] == [sha(1), sha(2), sha(3), sha(4)]
    assert all(np.array_equal(im["encoding"], templates[im["sha256"]]) for im in listed)
    assert listed[2]["source"] == "/photos/3.jpg" and listed[2]["box"] == '{"top":1}'

    found, nearest, point = gallery.search_detail(near(unit(3), 3), threshold=THRESHOLD, max_candidates=5)
    [best] = found
    assert (best.rank, best.subject_id, best.name, best.record_ref, best.image_sha256) == (
        1, "B", "Name B", "R-B", sha(3))
    assert best.distance == pytest.approx(float(np.linalg.norm(near(unit(3), 3) - unit(3))), abs=1e-4)
    assert best.fpir_estimate is not None and nearest[0] == pytest.approx(best.distance, abs=1e-4)
    assert point["gallery_size"] == 3 and gallery.calibration.generation == 1
    assert gallery.search(unit(99), threshold=THRESHOLD, max_candidates=5) == []  # a stranger

    stats = gallery.stats()
    assert (stats["subjects"], stats["images"], stats["generation"], stats["model"]) == (3, 4, 1, MODEL)
    assert stats["first_enrolled"] and stats["calibration"]["gallery_size"] == 3
    assert stats["files"]["matrix_bytes"] > 4 * DIM * 4 and stats["files"]["thumbnails"] == 0


def test_one_subject_is_read_as_the_gallery_holds_it_now(make):
    """What the console's trail shows beside a candidate: its name and record now, and its images' crops."""
    gallery = make()
    assert gallery.subject("A") is None
    fill(gallery)
    assert gallery.subject("A") == {"subject_id": "A", "name": "Name A", "record_ref": "R-A", "images": [sha(1), sha(2)]}
    gallery.change(MODEL, remove_subjects=["B"], renames=[{"subject_id": "C", "name": "Renamed", "record_ref": ""}])
    assert gallery.subject("B") is None and gallery.subject("C")["name"] == "Renamed"
    assert gallery.subject("%") is None  # an id, never a pattern


def test_another_process_or_replica_sees_each_change_on_its_next_search(make):
    writer, reader = make(), make()
    fill(writer)
    probe = near(unit(4), 4)
    assert reader.search(probe, threshold=THRESHOLD, max_candidates=5)[0].subject_id == "C"
    assert writer.remove("C") == 1
    assert reader.search(probe, threshold=THRESHOLD, max_candidates=5) == []
    assert (reader.subject_count, reader.image_count, reader.generation) == (2, 3, 2)
    assert reader.refresh() is False  # nothing new since
    assert make().search(near(unit(1), 1), threshold=THRESHOLD, max_candidates=5)[0].subject_id == "A"


def test_one_change_removes_renames_moves_and_adds_in_one_generation(make):
    gallery = make()
    fill(gallery)
    removed = gallery.change(MODEL, remove_subjects=["B"], remove_images=[sha(2)],
                             renames=[{"subject_id": "A", "name": "Renamed", "record_ref": "R-9"}],
                             subjects=[subject("D")], images=[image(5, "D")], encodings=unit(5)[None, :])
    assert sorted((r["subject_id"], r["image_sha256"], r["source"]) for r in removed) == [
        ("A", sha(2), "/photos/2.jpg"), ("B", sha(3), "/photos/3.jpg")]
    assert gallery.generation == 2
    assert {s["subject_id"]: (s["name"], s["images"]) for s in gallery.subjects()} == {
        "A": ("Renamed", 1), "C": ("Name C", 1), "D": ("Name D", 1)}
    assert gallery.search(near(unit(5), 5), threshold=THRESHOLD, max_candidates=5)[0].subject_id == "D"
    assert gallery.search(near(unit(2), 2), threshold=THRESHOLD, max_candidates=5) == []
    assert gallery.search(near(unit(1), 1), threshold=THRESHOLD, max_candidates=5)[0].name == "Renamed"
    # The same person under a second subject id is a near-duplicate pair; different people are not.
    gallery.change(MODEL, subjects=[subject("A2")], images=[image(6, "A2")], encodings=near(unit(1), 1)[None, :])
    [(a, b, d)] = gallery.near_duplicates([sha(6), sha(4)])
    assert (a, b) == ("A", "A2") and d < gallery.near_duplicate_distance()


def test_a_failure_before_the_commit_and_another_model_change_nothing(make):
    gallery = make()
    fill(gallery)

    def refuse() -> None:
        raise RuntimeError("the audit log cannot record it")

    with pytest.raises(RuntimeError, match="cannot record"):
        gallery.change(MODEL, remove_subjects=["A"], before_commit=refuse)
    with pytest.raises(GalleryError, match="gallery reencode --model sface"):
        gallery.change("sface 1", subjects=[subject("E")], images=[image(7, "E")], encodings=unit(7)[None, :])
    other = make()
    assert (other.generation, other.subject_count, gallery.generation, gallery.image_count) == (1, 3, 1, 4)
    assert other.search(near(unit(1), 1), threshold=THRESHOLD, max_candidates=5)[0].subject_id == "A"


def test_thumbnails_are_kept_replaced_and_dropped_with_their_image(make):
    gallery = make()
    fill(gallery)
    gallery.save_thumbnail(sha(3), b"\xff\xd8 first")
    gallery.save_thumbnail(sha(3), b"\xff\xd8 second")
    gallery.save_thumbnail(sha(4), b"\xff\xd8 other")
    assert make().thumbnail(sha(3)) == b"\xff\xd8 second"
    assert gallery.stats()["files"]["thumbnails"] == 2
    assert gallery.thumbnail(sha(9)) is None and gallery.thumbnail("../../etc/passwd") is None
    with pytest.raises(ValueError):
        gallery.save_thumbnail("not-a-hash", b"x")
    gallery.remove("B")  # its crop goes with it
    assert gallery.thumbnail(sha(3)) is None and gallery.thumbnail(sha(4)) == b"\xff\xd8 other"
    gallery.drop_thumbnails([sha(4), sha(8), "junk"])
    assert gallery.thumbnail(sha(4)) is None


def test_replace_templates_commits_another_models_templates_and_drops_what_it_cannot_make(make):
    gallery = make()
    fill(gallery)
    gallery.save_thumbnail(sha(3), b"\xff\xd8 B")
    new = {sha(1): unit(101), sha(2): unit(102), sha(4): unit(104)}  # B's only image cannot be re-made
    asked: list[list[str]] = []

    def templates(hashes: list[str]) -> dict:
        asked.append(hashes)
        return {h: (new[h], '{"top":2}') for h in hashes if h in new}

    removed, subjects_removed = gallery.replace_templates("sface 1", templates)
    assert asked == [[sha(1), sha(2), sha(3), sha(4)]]
    assert [r["image_sha256"] for r in removed] == [sha(3)] and gallery.thumbnail(sha(3)) is None
    assert subjects_removed == [{"subject_id": "B", "name": "Name B", "record_ref": "R-B"}]
    reader = make()
    assert (reader.model_id, reader.generation, reader.image_count, reader.subject_count) == ("sface", 2, 3, 2)
    assert {im["sha256"]: im["box"] for im in reader.images()} == dict.fromkeys(new, '{"top":2}')
    assert all(np.array_equal(im["encoding"], new[im["sha256"]]) for im in reader.images())
    assert reader.calibration.version == reader.scale.version  # calibrated on the new model's scale


def test_enrolling_photos_fills_both_stores_alike(make, faces_dir: Path, tmp_path: Path, engine):
    """Real photos through `enroll` (what `gallery enroll` runs): templates, crops and a search by another photo."""
    source = link_subjects(faces_dir, {"obama": ["obama.jpg"], "biden": ["biden.jpg"]}, tmp_path / "src")
    gallery = make()
    report = enroll(gallery, engine, source, progress=False)
    assert (report.added, gallery.subject_count, gallery.model_id) == (2, 2, "dlib-resnet")
    for enrolled in gallery.images():
        assert gallery.thumbnail(enrolled["sha256"])[:2] == b"\xff\xd8"
    probe = engine.analyse_sync((faces_dir / "people/obama/obama2.jpg").read_bytes()).faces[0].encoding
    [best] = make().search(probe, threshold=THRESHOLD, max_candidates=5)
    assert best.subject_id == "obama" and best.distance < THRESHOLD


@pytest.fixture(scope="module")
def engine():
    from bot.config import ImageSettings
    from bot.faces.engine import FaceEngine

    with FaceEngine(ImageSettings(), workers=1, model="dlib-resnet") as eng:
        yield eng
