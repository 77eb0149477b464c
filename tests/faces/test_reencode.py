"""`gallery reencode`: a dlib-resnet gallery moved to sface from its recorded source images, with real weights.

One enrollment (copies of the shared people's photos) and one uninterrupted move are made once per module;
tests that change or move the gallery work on a copy of its data dir.
"""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from bot import wording
from bot.config import ImageSettings, SearchSettings
from bot.faces import models, reencode
from bot.faces.engine import FaceEngine, model_info
from bot.faces.enroll import enroll
from bot.faces.gallery import DB_NAME, GALLERY_DIR, Gallery, GalleryError
from bot.store.audit_log import AuditLog

ENV = {"BOT_AUDIT_KEY": "reencode-test-key-0123456789abcdef"}
GALLERY = {  # 8 images of 6 people; obama and alex_lacamoire have two each
    "obama": ["obama.jpg", "obama_small.jpg"],
    "kit_harington": ["john1.jpeg"],
    "biden": ["biden.jpg"],
    "rose_leslie": ["img2.jpg"],
    "alex_lacamoire": ["alex_lacamoire1.jpg", "alex-lacamoire.png"],
    "lin_manuel_miranda": ["lin-manuel-miranda.png"],
}
# Other photos of enrolled people: both models put each one's own person first.
PROBES = {"obama": "obama/obama1.jpg", "kit_harington": "kit_harington/johnsnow_test1.jpg"}
WIDE = {"threshold": 1.2, "max_candidates": 5, "target_fpir": 1.0}  # any distance of either model, no estimate cut


class Counting:
    """The real engine, noting which images it was given (what a resumed run must not analyse again)."""

    def __init__(self, engine: FaceEngine) -> None:
        self.engine, self.model, self.images, self.seen = engine, engine.model, engine.images, []

    def analyse_many(self, items, **kwargs):
        def noted():
            for key, data in items:
                self.seen.append(key)
                yield key, data
        return self.engine.analyse_many(noted(), **kwargs)


@pytest.fixture(scope="module")
def dlib_engine():
    with FaceEngine(ImageSettings(), workers=1, model="dlib-resnet") as eng:
        yield eng


@pytest.fixture(scope="module")
def sface_engine():
    with FaceEngine(ImageSettings(), workers=2, model="sface") as eng:
        yield eng


def _probes(engine: FaceEngine, faces_dir: Path) -> dict[str, np.ndarray]:
    found = dict(engine.analyse_many((who, (faces_dir / "people" / rel).read_bytes()) for who, rel in PROBES.items()))
    return {who: probe.faces[0].encoding for who, probe in found.items()}


def _first(gallery: Gallery, encoding: np.ndarray) -> str | None:
    """The rank-1 candidate at the defaults (the gallery's model's ceiling, target FPIR 1 %)."""
    found = gallery.search(encoding, threshold=SearchSettings().threshold_for(gallery.model_id), max_candidates=5,
                           target_fpir=0.01)
    return found[0].subject_id if found else None


@pytest.fixture(scope="module")
def enrolled(dlib_engine, faces_dir: Path, tmp_path_factory) -> Path:
    """A data dir whose gallery holds GALLERY, enrolled with dlib-resnet from copies of the photos."""
    root = tmp_path_factory.mktemp("reencode")
    for subject, names in GALLERY.items():
        (root / "src" / subject).mkdir(parents=True)
        for name in names:
            shutil.copy(faces_dir / "people" / subject / name, root / "src" / subject / name)
    with Gallery(root / "data") as gallery:
        report = enroll(gallery, dlib_engine, root / "src", audit=AuditLog.open(root / "data", ENV), progress=False)
    assert report.added == 8 and not report.rejected
    return root / "data"


@pytest.fixture
def copy(enrolled: Path, tmp_path: Path) -> Path:
    """A private copy of the enrolled data dir (the sources stay where enrollment recorded them)."""
    shutil.copytree(enrolled, tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture(scope="module")
def moved(enrolled: Path, sface_engine, tmp_path_factory):
    """The enrolled gallery moved to sface in one uninterrupted run: (data dir, report)."""
    data = tmp_path_factory.mktemp("moved") / "data"
    shutil.copytree(enrolled, data)
    with Gallery(data) as gallery:
        report = reencode.reencode(gallery, sface_engine, audit=AuditLog.open(data, ENV), actor="admin",
                                   progress=False)
    return data, report


def _templates(data: Path) -> dict[str, np.ndarray]:
    with Gallery(data) as gallery:
        return {image["sha256"]: image["encoding"] for image in gallery.images()}


def _entries(data: Path) -> list[dict]:
    return [e for e in AuditLog.open(data, ENV).entries() if e.get("action") == "reencode"]


def _set(data: Path, sql: str, *args) -> None:
    """Change the stored gallery behind its back (as a moved or re-saved photo would, seen from the gallery)."""
    db = sqlite3.connect(data / GALLERY_DIR / DB_NAME)
    db.execute(sql, args)
    db.commit()
    db.close()


def _sha(data: Path, name: str) -> str:
    db = sqlite3.connect(data / GALLERY_DIR / DB_NAME)
    try:
        [(sha,)] = db.execute("SELECT sha256 FROM images WHERE source LIKE ?", (f"%/{name}",)).fetchall()
    finally:
        db.close()
    return sha


# ---------------------------------------------------------------- the pure parts


def test_overlap_is_intersection_over_union_and_the_best_face_at_or_above_0_3_is_chosen():
    from types import SimpleNamespace

    from bot.faces.detection import Box

    box = {"top": 0, "right": 100, "bottom": 100, "left": 0}
    assert reencode.iou(box, box) == 1.0
    assert reencode.iou(box, {"top": 0, "right": 300, "bottom": 100, "left": 200}) == 0.0
    assert reencode.iou(box, {"top": 0, "right": 150, "bottom": 100, "left": 50}) == pytest.approx(1 / 3)
    faces = [SimpleNamespace(box=Box(0, 150, 100, 50)), SimpleNamespace(box=Box(0, 110, 100, 10))]
    assert reencode.choose_face(box, faces) == (faces[1], pytest.approx(0.9 / 1.1))
    assert reencode.choose_face(box, faces[:1]) == (faces[0], pytest.approx(1 / 3))
    assert reencode.choose_face(box, [SimpleNamespace(box=Box(0, 170, 100, 70))]) == (None, pytest.approx(0.3 / 1.7))
    assert reencode.choose_face(box, []) == (None, 0.0)
    assert not reencode.needs_yes(1, 10) and reencode.needs_yes(2, 10) and not reencode.needs_yes(0, 0)


# ---------------------------------------------------------------- the move


def test_a_moved_gallery_holds_sface_templates_and_finds_the_same_people(enrolled, moved, dlib_engine, sface_engine,
                                                                         faces_dir: Path):
    with Gallery(enrolled) as before:
        assert before.model_id == "dlib-resnet"
        assert {who: _first(before, enc) for who, enc in _probes(dlib_engine, faces_dir).items()} == {
            "obama": "obama", "kit_harington": "kit_harington"}
        generation = before.generation
    data, report = moved
    with Gallery(data) as after:
        assert after.model_id == "sface" and after.model == model_info("sface")["model"]
        assert (after.image_count, after.subject_count, after.generation) == (8, 6, generation + 1)
        assert {who: _first(after, enc) for who, enc in _probes(sface_engine, faces_dir).items()} == {
            "obama": "obama", "kit_harington": "kit_harington"}
        assert after.calibration is not None and after.calibration.generation == after.generation
        assert all(after.thumbnail(image["sha256"]) for image in after.images())  # the crops stay
    assert (report.images, report.reencoded, report.resumed, report.analysed) == (8, 8, 0, 8)
    assert (report.skipped, report.subjects_removed, report.refused) == ([], [], False)
    # Each template is the one sface gives its source photo, from the face in the enrolled box.
    src = enrolled.parent / "src"
    fresh = dict(sface_engine.analyse_many((p.name, p.read_bytes()) for p in src.glob("*/*")))
    stored = {Path(image["source"]).name: image for image in Gallery(data).images()}
    for name, probe in fresh.items():
        assert np.array_equal(stored[name]["encoding"], probe.faces[0].encoding), name
        assert json.loads(stored[name]["box"]) == probe.faces[0].box.as_dict()
    [entry] = _entries(data)
    assert entry["kind"] == "gallery_change" and entry["actor"] == "admin"
    assert entry["model"] == models.record("sface") and entry["previous_model"] == models.record("dlib-resnet")
    assert (entry["images"], entry["reencoded"], entry["skipped"], entry["subjects_removed"]) == (8, 8, [], [])
    assert not (data / GALLERY_DIR / reencode.PROGRESS_FILE).exists()  # done: its templates are the gallery's


def test_an_interrupted_run_resumes_without_analysing_what_was_done(copy: Path, moved, sface_engine):
    def stop_after_three(done: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with Gallery(copy) as gallery:
        generation = gallery.generation
        with pytest.raises(KeyboardInterrupt):
            reencode.reencode(gallery, sface_engine, audit=AuditLog.open(copy, ENV), progress=False,
                              on_progress=stop_after_three)
        assert (gallery.model_id, gallery.generation) == ("dlib-resnet", generation)  # nothing committed
    db = sqlite3.connect(copy / GALLERY_DIR / reencode.PROGRESS_FILE)
    done = {sha for (sha,) in db.execute("SELECT sha256 FROM done")}
    db.close()
    assert len(done) == 3
    told: list[str] = []
    counting = Counting(sface_engine)
    with Gallery(copy) as gallery:
        report = reencode.reencode(gallery, counting, audit=AuditLog.open(copy, ENV), progress=False,
                                   notify=told.append)
    assert len(counting.seen) == 5 and not done & set(counting.seen)
    assert (report.resumed, report.analysed, report.reencoded) == (3, 5, 8)
    assert told == [wording.gallery_reencode_resuming(3, 8)]
    assert set(_templates(copy)) == set(_templates(moved[0]))
    assert all(np.array_equal(a, _templates(moved[0])[sha]) for sha, a in _templates(copy).items())
    assert len(_entries(copy)) == 1


@pytest.mark.parametrize("passes", [reencode.CATCH_UP_PASSES, 1])
def test_the_old_generation_serves_until_the_commit_and_changes_made_meanwhile_are_kept(
        copy: Path, dlib_engine, sface_engine, faces_dir: Path, tmp_path: Path, monkeypatch, passes):
    """While the run encodes, a reader (the server) searches the old dlib templates; meanwhile one person is
    enrolled and another removed (another process, say). The commit keeps both changes: the new image gets its
    sface template (in a pass before the commit, or with one pass only, under the writer lock)."""
    monkeypatch.setattr(reencode, "CATCH_UP_PASSES", passes)
    dlib_probes = _probes(dlib_engine, faces_dir)
    reader = Gallery(copy)
    expected = reader.search(dlib_probes["obama"], **WIDE)
    (tmp_path / "new" / "jane").mkdir(parents=True)
    shutil.copy(faces_dir / "people/rose_leslie/img1.jpg", tmp_path / "new/jane/rose1.jpg")
    seen = []

    def meanwhile(done: int) -> None:
        if done == 2:
            seen.append((reader.model_id, reader.search(dlib_probes["obama"], **WIDE)))
            with Gallery(copy) as other:
                enroll(other, dlib_engine, tmp_path / "new", progress=False)
                assert other.remove("biden") == 1

    with Gallery(copy) as gallery:
        report = reencode.reencode(gallery, sface_engine, progress=False, on_progress=meanwhile)
    assert seen == [("dlib-resnet", expected)] and expected[0].subject_id == "obama"
    reader.refresh()
    assert reader.model_id == "sface" and report.reencoded == reader.image_count == 8
    subjects = {s["subject_id"] for s in reader.subjects()}
    assert "jane" in subjects and "biden" not in subjects
    new = (tmp_path / "new/jane/rose1.jpg").read_bytes()
    [(_, probe)] = list(sface_engine.analyse_many([("rose1", new)]))
    [first, *_] = reader.search(probe.faces[0].encoding, **WIDE)
    assert first.subject_id == "jane" and first.distance < 1e-4  # its own sface template
    reader.close()


def test_a_changed_missing_or_elsewhere_face_is_skipped_listed_and_removed_with_anyone_left_with_no_image(
        copy: Path, sface_engine, faces_dir: Path, tmp_path: Path):
    changed = tmp_path / "biden.jpg"
    changed.write_bytes((faces_dir / "people/biden/biden.jpg").read_bytes() + b"\0")  # re-saved since enrollment
    biden, rose, lin, alex = (_sha(copy, n) for n in ("biden.jpg", "img2.jpg", "lin-manuel-miranda.png",
                                                       "alex-lacamoire.png"))
    _set(copy, "UPDATE images SET source = ? WHERE sha256 = ?", str(changed), biden)
    _set(copy, "UPDATE images SET source = ? WHERE sha256 = ?", str(tmp_path / "gone.jpg"), rose)
    corner = '{"top":0,"right":40,"bottom":40,"left":0}'  # nowhere near the face sface finds
    _set(copy, "UPDATE images SET box = ? WHERE sha256 IN (?, ?)", corner, lin, alex)
    with Gallery(copy) as gallery:
        report = reencode.reencode(gallery, sface_engine, audit=AuditLog.open(copy, ENV), actor="admin", yes=True,
                                   progress=False)
        reasons = {i.image_sha256: i.reason for i in report.skipped}
        assert reasons[biden].startswith("the source image has changed since it was enrolled")
        assert reasons[rose].startswith("the source image cannot be read") and "gone.jpg" in reasons[rose]
        assert reasons[lin] == wording.gallery_reencode_no_overlap(1, 0.0, 0.3)
        assert "overlaps the enrolled face's box enough (best overlap 0.00" in reasons[alex]
        assert len(reasons) == 4 and (report.images, report.reencoded) == (8, 4)
        gone = {s["subject_id"] for s in report.subjects_removed}
        assert gone == {"biden", "rose_leslie", "lin_manuel_miranda"}  # alex_lacamoire keeps his other photo
        assert {s["subject_id"] for s in gallery.subjects()} == {"obama", "kit_harington", "alex_lacamoire"}
        assert all(gallery.thumbnail(sha) is None for sha in reasons)
        assert gallery.model_id == "sface"
    [entry] = _entries(copy)
    assert {s["image_sha256"]: s["reason"] for s in entry["skipped"]} == reasons
    assert {s["subject_id"] for s in entry["subjects_removed"]} == gone and entry["reencoded"] == 4
    text = wording.gallery_reencode_text(report)
    assert "4 skipped" in text and f"image {lin[:12]}" in text and "removed: subject biden" in text


def test_more_than_a_tenth_skipped_commits_nothing_without_yes(copy: Path, sface_engine, faces_dir: Path,
                                                               tmp_path: Path):
    rose = _sha(copy, "img2.jpg")
    _set(copy, "UPDATE images SET source = ? WHERE sha256 = ?", str(tmp_path / "gone.jpg"), rose)  # 1 of 8
    audit = AuditLog.open(copy, ENV)
    with Gallery(copy) as gallery:
        generation = gallery.generation
        report = reencode.reencode(gallery, sface_engine, audit=audit, progress=False)
        assert report.refused and [i.image_sha256 for i in report.skipped] == [rose] and report.images == 8
        assert (gallery.model_id, gallery.generation, gallery.image_count) == ("dlib-resnet", generation, 8)
        assert gallery.thumbnail(rose) is not None and _entries(copy) == []
        again = reencode.reencode(gallery, sface_engine, audit=audit, yes=True, progress=False)  # resumes
        assert not again.refused and (again.resumed, again.analysed, again.reencoded) == (7, 0, 7)
        assert gallery.model_id == "sface" and gallery.thumbnail(rose) is None
    assert len(_entries(copy)) == 1


def test_a_move_to_the_model_the_gallery_holds_or_of_an_empty_gallery_is_refused(copy: Path, dlib_engine,
                                                                                 tmp_path: Path):
    with Gallery(copy) as gallery, pytest.raises(GalleryError) as refused:
        reencode.reencode(gallery, dlib_engine, progress=False)
    assert str(refused.value) == wording.gallery_reencode_same_model("dlib-resnet")
    with Gallery(tmp_path / "empty") as gallery, pytest.raises(GalleryError) as refused:
        reencode.reencode(gallery, dlib_engine, progress=False)
    assert str(refused.value) == wording.gallery_reencode_empty("dlib-resnet")
    assert dlib_engine.model == "dlib-resnet"
