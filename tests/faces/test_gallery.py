"""The gallery on disk: enrollment (idempotent, conflicts, bad images, manifest), search, remove, reopen, crash.

The face work (one process pool, one enrollment of a small subset of people/) is done once per session;
tests that change the gallery work on a copy of that gallery directory.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot import wording
from bot.config import SearchSettings
from bot.faces import thumbnails
from bot.faces.engine import find_faces
from bot.faces.enroll import enroll
from bot.faces.gallery import DB_NAME, GALLERY_DIR, NEAR_DUPLICATE_DISTANCE, Gallery, GalleryError

from ..conftest import link_subjects

THRESHOLD = SearchSettings().threshold  # the configured default

# A small subset of people/, chosen to keep the session fast (small images, every enrolled person once or twice).
SUBSET = {
    "obama": ["obama.jpg", "obama_small.jpg"],
    "biden": ["biden.jpg"],
    "kit_harington": ["john2.jpeg"],
    "rose_leslie": ["img2.jpg"],
    "alex_lacamoire": ["alex-lacamoire.png"],
}
PROBES = {
    "obama": "people/obama/obama2.jpg",  # an image of an enrolled person that is not in the gallery
    "lin": "people/lin_manuel_miranda/lin-manuel-miranda.png",  # a person who is not enrolled
}


class FakeAudit:
    """Records `append` calls like bot.store.audit_log.AuditLog would receive them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def append(self, kind: str, **fields) -> dict:
        self.calls.append((kind, fields))
        return {"kind": kind, **fields}

    def check_writable(self) -> None:
        """Like AuditLog: raise when an append would be refused (set `refuse` to simulate a changed key)."""
        if getattr(self, "refuse", None):
            raise self.refuse


def _grey_jpeg(path: Path) -> None:
    Image.new("RGB", (320, 240), (128, 128, 128)).save(path, "JPEG")


@pytest.fixture(scope="session")
def engine():
    from bot.config import ImageSettings
    from bot.faces.engine import FaceEngine

    # dlib-resnet: this module's distances and ceilings are dlib's; sface galleries are covered by
    # tests/faces/test_reencode.py, test_calibration.py and the CLI and Slack suites (the default model).
    with FaceEngine(ImageSettings(), workers=2, model="dlib-resnet") as eng:
        yield eng


@pytest.fixture(scope="session")
def source_dir(faces_dir: Path, tmp_path_factory) -> Path:
    """DIR/<subject>/<images> with the subset plus every kind of bad entry."""
    src = tmp_path_factory.mktemp("enroll_src")
    for subject, names in SUBSET.items():
        (src / subject).mkdir()
        for name in names:
            shutil.copy(faces_dir / "people" / subject / name, src / subject / name)
    shutil.copy(faces_dir / "people/obama/obama.jpg", src / "obama" / "same_bytes_again.jpg")  # duplicate
    (src / "someone_else").mkdir()
    shutil.copy(faces_dir / "people/obama/obama_small.jpg", src / "someone_else" / "x.jpg")  # conflict
    _grey_jpeg(src / "rose_leslie" / "grey.jpg")  # no face
    shutil.copy(faces_dir / "group/two_people.jpg", src / "biden" / "group.jpg")  # several faces
    (src / "kit_harington" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")  # unreadable
    (src / "stray.jpg").write_bytes(b"top-level file")  # not in a subject folder
    return src


@pytest.fixture(scope="session")
def enrolled(engine, source_dir: Path, faces_dir: Path, tmp_path_factory):
    """One enrollment run into a fresh data dir, its report and audit calls, and the probe encodings."""
    data_dir = tmp_path_factory.mktemp("gallery_data")
    gallery = Gallery(data_dir)
    audit = FakeAudit()
    report = enroll(gallery, engine, source_dir, audit=audit, actor="tester", progress=False)
    probes = {key: probe for key, probe in engine.analyse_many(
        (key, (faces_dir / rel).read_bytes()) for key, rel in PROBES.items())}
    encodings = {key: probe.faces[0].encoding for key, probe in probes.items()}
    return {"data_dir": data_dir, "gallery": gallery, "report": report, "audit": audit, "probes": encodings,
            "source_dir": source_dir}


@pytest.fixture
def gallery_copy(enrolled, tmp_path: Path) -> Path:
    """A private copy of the enrolled data dir, for tests that change or damage it."""
    dst = tmp_path / "data"
    shutil.copytree(enrolled["data_dir"], dst)
    return dst


def _reasons(issues) -> dict[str, str]:
    return {Path(i.source).name: i.reason for i in issues}


# ---------------------------------------------------------------- enrollment


def test_enroll_adds_one_entry_per_image_with_one_face(enrolled):
    report, gallery = enrolled["report"], enrolled["gallery"]
    # obama.jpg, biden.jpg, john2.jpeg, img2.jpg, alex-lacamoire.png (obama_small.jpg is in conflict)
    assert report.added == 5
    assert gallery.image_count == 5
    assert gallery.subject_count == 5
    counts = {s["subject_id"]: s["images"] for s in gallery.subjects()}
    assert counts == {"obama": 1, "biden": 1, "kit_harington": 1, "rose_leslie": 1, "alex_lacamoire": 1}
    assert all(s["name"] == s["subject_id"] and s["record_ref"] == "" for s in gallery.subjects())


def test_same_image_twice_is_one_entry(enrolled):
    assert enrolled["report"].already == 1  # obama/same_bytes_again.jpg has obama.jpg's bytes


def test_one_image_under_two_subjects_is_a_conflict_and_enrolled_under_neither(enrolled):
    conflicts = _reasons(enrolled["report"].conflicts)
    assert set(conflicts) == {"obama_small.jpg", "x.jpg"}
    assert "obama, someone_else" in conflicts["x.jpg"]
    assert "someone_else" not in {s["subject_id"] for s in enrolled["gallery"].subjects()}


def test_bad_images_are_reported_not_fatal(enrolled):
    rejected = _reasons(enrolled["report"].rejected)
    assert rejected["grey.jpg"] == "no face found"
    assert rejected["group.jpg"].startswith("2 faces found")
    assert rejected["broken.jpg"].startswith("unreadable")
    assert "subject folder" in rejected["stray.jpg"]
    assert len(rejected) == 4
    summary = enrolled["report"].summary()
    assert summary.startswith("enrolled 5 image(s), 5 new subject(s); 1 already enrolled; 4 rejected; 2 conflict")
    assert "grey.jpg: no face found" in summary


def test_each_added_image_is_audited_with_its_source(enrolled, source_dir: Path):
    calls = enrolled["audit"].calls
    assert len(calls) == 5
    assert {kind for kind, _ in calls} == {"gallery_change"}
    obama = [f for _, f in calls if f["subject_id"] == "obama"]
    assert obama[0]["action"] == "enroll" and obama[0]["actor"] == "tester"
    assert obama[0]["source"] == str(source_dir / "obama" / "obama.jpg")
    assert len(obama[0]["image_sha256"]) == 64


def test_every_enrolled_image_keeps_a_jpeg_thumbnail(enrolled):
    gallery = enrolled["gallery"]
    for kind, fields in enrolled["audit"].calls:
        thumb = gallery.thumbnail(fields["image_sha256"])
        assert thumb is not None and thumb[:2] == b"\xff\xd8"
    assert gallery.thumbnail("0" * 64) is None
    assert gallery.thumbnail("../../etc/passwd") is None


def test_enrollment_keeps_face_crops_of_320_px(enrolled):
    """Each enrolled image keeps a JPEG crop of its face whose longer side is exactly 320 px (smaller faces
    are scaled up), at JPEG quality ~90 (read back from its quantisation table), as examiners compare them."""
    gallery = enrolled["gallery"]
    for _, fields in enrolled["audit"].calls:
        with Image.open(io.BytesIO(gallery.thumbnail(fields["image_sha256"]))) as crop:
            assert crop.format == "JPEG" and max(crop.size) == 320, fields["subject_id"]
            assert crop.quantization[0][0] == 3  # the DC step of libjpeg's luminance table at quality 90
            # The crop shows the enrolled face: found in it again, close to its stored encoding.
            [face] = find_faces(np.asarray(crop.convert("RGB")), min_face_px=1, model="dlib-resnet")
        assert np.linalg.norm(face.encoding - _stored_encoding(gallery, fields["image_sha256"])) < 0.35


def test_gallery_images_yields_each_image_with_its_stored_encoding(enrolled):
    gallery = enrolled["gallery"]
    images = list(gallery.images(chunk=2))  # several chunks
    assert sorted(im["sha256"] for im in images) == sorted(f["image_sha256"] for _, f in enrolled["audit"].calls)
    for image in images:
        assert np.array_equal(image["encoding"], _stored_encoding(gallery, image["sha256"]))
        assert image["source"].startswith(str(enrolled["source_dir"])) and image["subject_id"] in SUBSET


def test_second_run_adds_nothing(enrolled, engine, source_dir: Path):
    gallery = Gallery(enrolled["data_dir"])
    generation = gallery.generation
    report = enroll(gallery, engine, source_dir, progress=False)
    assert report.added == 0
    assert report.already == 6  # the five enrolled images and the duplicate
    assert gallery.image_count == 5
    assert gallery.generation == generation  # nothing was rewritten


def test_image_enrolled_under_another_subject_is_a_conflict(enrolled, engine, gallery_copy: Path, tmp_path: Path,
                                                            faces_dir: Path):
    src = tmp_path / "more" / "kit_harington"
    src.mkdir(parents=True)
    shutil.copy(faces_dir / "people/rose_leslie/img2.jpg", src / "rose.jpg")
    gallery = Gallery(gallery_copy)
    report = enroll(gallery, engine, src.parent, progress=False)
    assert report.added == 0
    assert _reasons(report.conflicts) == {"rose.jpg": "this image is already enrolled under subject rose_leslie"}
    assert {s["subject_id"]: s["images"] for s in gallery.subjects()}["kit_harington"] == 1


def test_manifest_enrolls_names_and_record_refs(engine, faces_dir: Path, tmp_path: Path, capsys):
    images = tmp_path / "files"
    images.mkdir()
    shutil.copy(faces_dir / "people/obama/obama_small.jpg", images / "o.jpg")
    shutil.copy(faces_dir / "people/kit_harington/john2.jpeg", images / "k.jpeg")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "subject_id,name,record_ref,image\n"
        "S-1,\"Obama, Barack\",R-100,files/o.jpg\n"
        "S-2,Kit Harington,R-200,files/k.jpeg\n"
        "S-3,Missing,R-300,files/nope.jpg\n"
        "S-4,Too,few\n"
    )
    gallery = Gallery(tmp_path / "data")
    report = enroll(gallery, engine, None, manifest=manifest, progress=True)
    assert "enrolling" in capsys.readouterr().err  # the progress bar goes to stderr
    assert report.added == 2
    subjects = {s["subject_id"]: (s["name"], s["record_ref"]) for s in gallery.subjects()}
    assert subjects == {"S-1": ("Obama, Barack", "R-100"), "S-2": ("Kit Harington", "R-200")}
    rejected = {i.source: i.reason for i in report.rejected}
    assert rejected[f"{manifest}:4 (files/nope.jpg)"].startswith("cannot read the file")
    assert rejected[f"{manifest}:5"] == "expected 4 fields, found 3"


def test_manifest_with_a_status_column_enrolls_only_the_people_it_keeps(engine, faces_dir: Path, tmp_path: Path):
    """The one file a department keeps for `gallery sync` also enrolls: a status that removes a person is not
    enrolled, and an unknown status stops before anything is read."""
    link_subjects(faces_dir, {"obama": ["obama_small.jpg"], "biden": ["biden.jpg"]}, tmp_path / "files")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("subject_id,name,record_ref,image,status\n"
                        "S-1,Obama,R-1,files/obama/obama_small.jpg,Eligible\n"
                        "S-2,Biden,R-2,files/biden/biden.jpg,expunged\n"
                        "S-3,Nobody,R-3,,not_charged\n")
    gallery = Gallery(tmp_path / "data")
    report = enroll(gallery, engine, None, manifest=manifest, progress=False)
    assert [s["subject_id"] for s in gallery.subjects()] == ["S-1"] and report.added == 1
    assert {i.subject_id: i.reason for i in report.rejected} == {
        "S-2": wording.gallery_enroll_ineligible("expunged"), "S-3": wording.gallery_enroll_ineligible("not_charged")}
    manifest.write_text("subject_id,name,record_ref,image,status\nS-2,Biden,R-2,files/biden/biden.jpg,sealed\n")
    with pytest.raises(GalleryError, match=r"manifest.csv:2: status 'sealed' is not a status the gallery knows"):
        enroll(gallery, engine, None, manifest=manifest, progress=False)
    assert [s["subject_id"] for s in gallery.subjects()] == ["S-1"]


def test_manifest_with_a_bad_header_is_refused(engine, tmp_path: Path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("subject,name,record,image\nS-1,A,R,a.jpg\n")
    with pytest.raises(GalleryError, match="subject_id,name,record_ref,image"):
        enroll(Gallery(tmp_path / "data"), engine, None, manifest=manifest, progress=False)


# ---------------------------------------------------------------- search


def test_enrolled_person_is_the_first_candidate(enrolled):
    found = enrolled["gallery"].search(enrolled["probes"]["obama"], threshold=THRESHOLD, max_candidates=5)
    assert found, "obama2.jpg should match the enrolled obama.jpg"
    assert found[0].rank == 1 and found[0].subject_id == "obama"
    assert found[0].distance <= THRESHOLD
    assert enrolled["gallery"].thumbnail(found[0].image_sha256) is not None
    assert [c.rank for c in found] == list(range(1, len(found) + 1))


def test_person_not_enrolled_gets_no_candidate(enrolled):
    assert enrolled["gallery"].search(enrolled["probes"]["lin"], threshold=THRESHOLD, max_candidates=5) == []


def test_remove_subject_then_search_does_not_find_it(enrolled, gallery_copy: Path):
    gallery = Gallery(gallery_copy)
    found = gallery.search(enrolled["probes"]["obama"], threshold=THRESHOLD, max_candidates=5)
    sha = found[0].image_sha256
    audit = FakeAudit()
    assert gallery.remove("obama", audit=audit, actor="admin") == 1
    assert gallery.remove("obama") == 0  # already gone
    assert gallery.search(enrolled["probes"]["obama"], threshold=THRESHOLD, max_candidates=5) == []
    assert (gallery.subject_count, gallery.image_count) == (4, 4)
    assert gallery.thumbnail(sha) is None
    [(kind, fields)] = audit.calls
    assert kind == "gallery_change" and fields["action"] == "remove" and fields["actor"] == "admin"
    assert (fields["subject_id"], fields["name"], fields["image_sha256"]) == ("obama", "obama", sha)
    assert fields["source"].endswith("obama.jpg")  # where the image came from, kept after removal
    # The other subjects are still found: the rewritten matrix kept the right rows.
    reopened = Gallery(gallery_copy)
    assert reopened.image_count == 4
    for kind, fields in enrolled["audit"].calls:
        if fields["subject_id"] != "obama":
            enc = _stored_encoding(reopened, fields["image_sha256"])
            best = reopened.search(enc, threshold=THRESHOLD, max_candidates=1)[0]
            assert best.subject_id == fields["subject_id"] and best.distance == pytest.approx(0.0, abs=1e-6)


def _stored_encoding(gallery: Gallery, sha: str) -> np.ndarray:
    """The matrix row of an image (test helper reading the on-disk layout)."""
    key = gallery._db.execute("SELECT key FROM images WHERE sha256 = ?", (sha,)).fetchone()[0]
    row = int(np.flatnonzero(np.asarray(gallery._row_image) == key)[0])
    return np.array(gallery._emb[row])


def test_reopened_gallery_gives_the_same_results(enrolled):
    reopened = Gallery(enrolled["data_dir"])
    for probe in enrolled["probes"].values():
        assert reopened.search(probe, threshold=THRESHOLD, max_candidates=5) == enrolled["gallery"].search(
            probe, threshold=THRESHOLD, max_candidates=5)
    assert reopened.stats()["images"] == 5
    assert reopened.stats()["model"].startswith("dlib_face_recognition_resnet_model_v1")


def test_a_running_reader_sees_another_process_change(enrolled, gallery_copy: Path):
    server, cli = Gallery(gallery_copy), Gallery(gallery_copy)
    assert server.search(enrolled["probes"]["obama"], threshold=THRESHOLD, max_candidates=5)
    cli.remove("obama")
    assert server.search(enrolled["probes"]["obama"], threshold=THRESHOLD, max_candidates=5) == []
    assert server.subject_count == 4
    assert server.refresh() is False  # nothing new since


# ---------------------------------------------------------------- crash safety and files


def test_leftovers_of_a_crashed_write_are_ignored_then_cleaned(enrolled, gallery_copy: Path):
    gdir = gallery_copy / GALLERY_DIR
    gallery = Gallery(gallery_copy)
    nxt = gallery.generation + 1
    # A writer died after writing the next generation's files but before its metadata commit.
    (gdir / f".embeddings-{nxt:06d}.npy.999.tmp").write_bytes(b"half a file")
    np.save(gdir / f"embeddings-{nxt:06d}.npy", np.ones((99, 128), dtype=np.float32))
    reopened = Gallery(gallery_copy)
    assert reopened.image_count == 5 and reopened.generation == nxt - 1
    assert reopened.search(enrolled["probes"]["obama"], threshold=THRESHOLD, max_candidates=5)[0].subject_id == "obama"
    reopened.remove("biden")  # the next write replaces the orphan and deletes the temp file
    names = sorted(p.name for p in gdir.glob("*.npy*"))
    assert names == [f"{n}-{nxt:06d}.npy" for n in ("embeddings", "row_image", "row_subject")]
    assert Gallery(gallery_copy).image_count == 4


def test_missing_or_wrong_matrix_is_refused_with_a_clear_message(gallery_copy: Path):
    gdir = gallery_copy / GALLERY_DIR
    current = Gallery(gallery_copy).generation
    path = gdir / f"embeddings-{current:06d}.npy"
    np.save(path, np.zeros((3, 128), dtype=np.float32))
    with pytest.raises(GalleryError, match="damaged.*5 rows"):
        Gallery(gallery_copy)
    path.write_bytes(b"\x93NUMPY truncated")
    with pytest.raises(GalleryError, match="damaged.*cannot be read"):
        Gallery(gallery_copy)
    path.unlink()
    with pytest.raises(GalleryError, match="damaged.*embeddings"):
        Gallery(gallery_copy)


def test_files_are_0600_and_dirs_0700(enrolled):
    gallery = enrolled["gallery"]  # still open: sqlite's -wal and -shm files exist
    gdir = enrolled["data_dir"] / GALLERY_DIR
    files = [p for p in gdir.rglob("*") if p.is_file()]
    assert gdir / DB_NAME in files and any(p.suffix == ".jpg" for p in files)
    assert any(p.name.endswith("-wal") for p in files)
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    for d in [gdir, gdir / "thumbs"]:
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    assert gallery.stats()["files"]["thumbnails"] == 5


def test_empty_gallery_searches_to_nothing(tmp_path: Path):
    gallery = Gallery(tmp_path / "data")
    assert (gallery.subject_count, gallery.image_count) == (0, 0)
    assert gallery.search(np.zeros(128, dtype=np.float32), threshold=0.6, max_candidates=5) == []
    assert gallery.subjects() == [] and gallery.remove("nobody") == 0


def test_removing_every_subject_leaves_an_empty_gallery(enrolled, gallery_copy: Path):
    gallery = Gallery(gallery_copy)
    for subject in [s["subject_id"] for s in gallery.subjects()]:
        gallery.remove(subject)
    assert not list((gallery_copy / GALLERY_DIR).glob("*.npy"))
    reopened = Gallery(gallery_copy)
    assert (reopened.subject_count, reopened.image_count) == (0, 0)
    assert reopened.search(enrolled["probes"]["obama"], threshold=THRESHOLD, max_candidates=5) == []


def test_encodings_of_another_model_are_not_mixed_in(engine, gallery_copy: Path, source_dir: Path):
    gallery = Gallery(gallery_copy)
    gallery._db.execute("UPDATE meta SET value = 'some other model' WHERE key = 'model'")
    with pytest.raises(GalleryError, match="gallery reencode"):
        enroll(gallery, engine, source_dir, progress=False)


def test_an_engine_of_another_model_may_not_enroll_into_the_gallery(gallery_copy: Path, source_dir: Path):
    """The gallery holds dlib-resnet templates: an sface engine is refused before any photo is read (the
    model compared is the engine's, not this process's default)."""
    from bot.config import ImageSettings
    from bot.faces.engine import FaceEngine

    gallery = Gallery(gallery_copy)
    before = gallery.image_count
    other = FaceEngine(ImageSettings(), workers=1, model="sface")
    try:
        with pytest.raises(GalleryError, match="gallery reencode --model sface"):
            enroll(gallery, other, source_dir, progress=False)
        assert other.worker_pids() == [] and Gallery(gallery_copy).image_count == before
    finally:
        other.close()


def test_enrollment_reports_near_duplicate_subjects_and_keeps_enrolling(engine, faces_dir: Path, tmp_path: Path):
    """One person under two subject ids drives the margin to zero and hides the mate: it is reported, the
    images are still enrolled, and different people are not reported."""
    src = link_subjects(faces_dir, {"obama": ["obama.jpg"], "biden": ["biden.jpg"]}, tmp_path / "src")
    (src / "obama_again").mkdir()
    os.symlink(faces_dir / "people" / "obama" / "obama-480p.jpg", src / "obama_again" / "a.jpg")
    gallery = Gallery(tmp_path / "data")
    report = enroll(gallery, engine, src, progress=False)
    assert report.added == 3 and gallery.subject_count == 3
    [(a, b, d)] = report.near_duplicates
    assert (a, b) == ("obama", "obama_again") and d < NEAR_DUPLICATE_DISTANCE
    assert "near-duplicate: subjects obama and obama_again" in report.summary()
    # A later run adding someone else reports nothing new about them.
    more = link_subjects(faces_dir, {"kit_harington": ["john1.jpeg"]}, tmp_path / "more")
    assert enroll(gallery, engine, more, progress=False).near_duplicates == []


# ---------------------------------------------------------------- gallery thumbnails --rebuild


def shrink_crops(gallery_dir: Path) -> dict[str, bytes]:
    """Make the crops of a gallery what enrollment kept before (160 px); returns the 320 px ones it had."""
    before = {}
    for path in sorted((gallery_dir / GALLERY_DIR / "thumbs").glob("*.jpg")):
        before[path.stem] = path.read_bytes()
        with Image.open(path) as im:
            small = im.convert("RGB")
        small.thumbnail((160, 160))
        small.save(path, "JPEG", quality=85)
    return before


def test_gallery_thumbnails_rebuild_cuts_320_px_crops_from_the_source_images(engine, gallery_copy: Path):
    before = shrink_crops(gallery_copy)
    gallery = Gallery(gallery_copy)
    assert (thumbnails.status(gallery).to_rebuild, thumbnails.status(gallery).current) == (5, 0)
    audit = FakeAudit()
    report = thumbnails.rebuild(gallery, engine, audit=audit, actor="admin", progress=False)
    assert (report.images, report.rebuilt, report.current, report.problems) == (5, 5, 0, [])
    # The same crop enrollment makes, byte for byte (same bytes, same face, same cut).
    assert {sha: gallery.thumbnail(sha) for sha in before} == before
    assert len(audit.calls) == 5 and {kind for kind, _ in audit.calls} == {"gallery_change"}
    for _, fields in audit.calls:
        assert fields["action"] == "thumbnails" and fields["actor"] == "admin" and fields["crop_px"] == 320
        assert fields["image_sha256"] in before and fields["source"] and fields["distance"] < 1e-3
    again = thumbnails.rebuild(gallery, engine, audit=audit, progress=False)  # nothing left to do
    assert (again.rebuilt, again.current, len(audit.calls)) == (0, 5, 5)


def test_gallery_thumbnails_rebuild_reports_missing_changed_and_other_faces_and_goes_on(
        engine, gallery_copy: Path, faces_dir: Path, tmp_path: Path, monkeypatch):
    """A missing or changed (other SHA-256) source, a source that shows two faces, or a face that is not the
    enrolled one (farther than 0.1 from its stored encoding) is reported and its old crop kept; the rest are
    made, here one enrolled through a manifest (its source is `MANIFEST:LINE (IMAGE)`)."""
    shrink_crops(gallery_copy)
    files = tmp_path / "m" / "files"
    files.mkdir(parents=True)
    shutil.copy(faces_dir / "people/kit_harington/john2.jpeg", files / "k.jpeg")
    changed = tmp_path / "alex.png"
    changed.write_bytes((faces_dir / "people/alex_lacamoire/alex-lacamoire.png").read_bytes() + b"\0")  # re-saved
    group = faces_dir / "group/two_people.jpg"
    db = sqlite3.connect(gallery_copy / GALLERY_DIR / DB_NAME)
    sha_of = dict(db.execute("SELECT s.subject_id, i.sha256 FROM images i JOIN subjects s ON s.key = i.subject_key"))
    moves = {"obama": str(tmp_path / "gone.jpg"), "alex_lacamoire": str(changed),
             "kit_harington": f"{tmp_path / 'm' / 'list.csv'}:2 (files/k.jpeg)"}
    for subject, source in moves.items():
        db.execute("UPDATE images SET source = ? WHERE sha256 = ?", (source, sha_of[subject]))
    group_sha = hashlib.sha256(group.read_bytes()).hexdigest()  # as if a group photo had been enrolled
    db.execute("UPDATE images SET sha256 = ?, source = ? WHERE sha256 = ?", (group_sha, str(group), sha_of["biden"]))
    db.commit()
    db.close()
    gallery = Gallery(gallery_copy)
    real = gallery.images

    def rose_moved(*args, **kwargs):  # rose_leslie's stored encoding no longer matches her photo
        for image in real(*args, **kwargs):
            yield {**image, "encoding": image["encoding"] + 0.05} if image["subject_id"] == "rose_leslie" else image

    monkeypatch.setattr(gallery, "images", rose_moved)
    audit = FakeAudit()
    report = thumbnails.rebuild(gallery, engine, audit=audit, actor="admin", progress=False)
    assert report.rebuilt == 1 and report.images == 5  # kit_harington, through its manifest
    reasons = {i.subject_id: i.reason for i in report.problems}
    assert reasons["obama"].startswith("the source image cannot be read") and "gone.jpg" in reasons["obama"]
    assert reasons["alex_lacamoire"].startswith("the source image has changed since it was enrolled")
    assert reasons["biden"] == "2 faces found in the source image; its crop needs exactly one"
    assert reasons["rose_leslie"].endswith("not the face that was enrolled")
    assert len(reasons) == 4
    sizes = {s: max(Image.open(io.BytesIO(gallery.thumbnail(sha))).size) for s, sha in sha_of.items() if s != "biden"}
    assert sizes == {"obama": 160, "kit_harington": 320, "rose_leslie": 160, "alex_lacamoire": 160}
    assert [f["subject_id"] for _, f in audit.calls] == ["kit_harington"]
    assert "not made: subject obama" in wording.gallery_thumbnails_text(report, rebuilt=True, crop_px=320)
