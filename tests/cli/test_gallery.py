"""`python -m bot gallery ...` as a department runs it: enroll interrupted with Ctrl-C (a real process),
`gallery sync --manifest` against real faces."""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot.cli.main import main
from bot.faces.gallery import Gallery
from bot.store.audit_log import AuditLog
from tests.conftest import link_subjects

REPO = Path(__file__).resolve().parents[2]
KEY = "cli-gallery-test-key-0123456789abcdef"
ENV = {"BOT_AUDIT_KEY": KEY}


def every_person(faces_dir: Path) -> dict[str, list[str]]:
    """Every photo of people/, by person: enough work that an enrollment runs for seconds."""
    return {d.name: sorted(p.name for p in d.iterdir()) for d in sorted((faces_dir / "people").iterdir())}


def test_ctrl_c_in_enroll_exits_130_with_one_line_and_leaves_no_crop_of_anyone_not_enrolled(faces_dir, tmp_path):
    """Ctrl-C once the first face crop is written: SIGINT to the whole process group, as a terminal sends it
    (the face workers get it too). The command ends with exit 130 and one plain line, no traceback; the gallery
    commits at the end in one step, so nobody was enrolled and no crop may stay behind."""
    src = link_subjects(faces_dir, every_person(faces_dir), tmp_path / "src")
    data = tmp_path / "data"
    env = {**os.environ, "BOT_DATA_DIR": str(data), "BOT_AUDIT_KEY": KEY}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "gallery", "enroll", str(src), "--no-progress"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    thumbs = data / "gallery" / "thumbs"
    try:
        deadline = time.monotonic() + 120
        while not (thumbs.is_dir() and any(thumbs.iterdir())):
            assert proc.poll() is None, "the enrollment ended before a crop was written"
            assert time.monotonic() < deadline, "no crop written in 120 s"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    [line] = err.strip().splitlines()
    assert "interrupted" in line.lower() and out == ""
    with Gallery(data) as gallery:
        enrolled = {image["sha256"] for image in gallery.images()}
    assert enrolled == set()
    assert sorted(p.name for p in thumbs.iterdir()) == []


# ---------------------------------------------------------------------------------------------- gallery sync

PEOPLE = {  # person -> (name, record, photos): one small photo each keeps the face work short
    "obama": ("Barack Obama", "R-1", ["obama.jpg", "obama_small.jpg"]),
    "biden": ("Joe Biden", "R-2", ["biden.jpg"]),
    "kit_harington": ("Kit Harington", "R-3", ["john2.jpeg"]),
    "rose_leslie": ("Rose Leslie", "R-4", ["img2.jpg"]),
    "alex_lacamoire": ("Alex Lacamoire", "R-5", ["alex-lacamoire.png"]),
}
HEADER = "subject_id,name,record_ref,image,status\n"


def manifest_text(people: dict[str, tuple[str, str, list[str]]], status: dict[str, str] | None = None) -> str:
    status = status or {}
    return HEADER + "".join(f'{s},"{name}",{record},photos/{s}/{photo},{status.get(s, "")}\n'
                            for s, (name, record, photos) in people.items() for photo in photos)


def gallery_changes(data: Path) -> list[dict]:
    return [e for e in AuditLog.open(data, env=ENV).entries() if e["kind"] == "gallery_change"]


@pytest.fixture(scope="module")
def synced(faces_dir: Path, tmp_path_factory) -> dict:
    """A gallery made by one `gallery sync` from an empty data dir (once per module), with its photos folder
    and the output of that sync."""
    root = tmp_path_factory.mktemp("sync")
    every = {s: [p for p in sorted((faces_dir / "people" / s).iterdir())] for s in [*PEOPLE, "lin_manuel_miranda"]}
    link_subjects(faces_dir, {s: [p.name for p in photos] for s, photos in every.items()}, root / "photos")
    manifest = root / "people.csv"
    manifest.write_text(manifest_text(PEOPLE))
    config = root / "settings.toml"
    config.write_text("[gallery]\nsync_max_remove_share = 0.5\n")
    mp = pytest.MonkeyPatch()
    mp.setenv("BOT_DATA_DIR", str(root / "data"))
    mp.setenv("BOT_AUDIT_KEY", KEY)
    mp.setenv("BOT_CONFIG", str(config))
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            code = main(["gallery", "sync", "--manifest", str(manifest), "--no-progress"])
    finally:
        mp.undo()
    return {"root": root, "data": root / "data", "config": config, "code": code, "out": out.getvalue()}


@pytest.fixture
def sync_env(synced: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """A private copy of the synced data dir; the manifest beside the same photos, to be rewritten by the test."""
    data = tmp_path / "data"
    shutil.copytree(synced["data"], data)
    manifest = synced["root"] / f"people-{tmp_path.name}.csv"  # beside photos/, as a department keeps it
    monkeypatch.setenv("BOT_DATA_DIR", str(data))
    monkeypatch.setenv("BOT_AUDIT_KEY", KEY)
    monkeypatch.setenv("BOT_CONFIG", str(synced["config"]))
    return SimpleNamespace(data=data, manifest=manifest, config=synced["config"])


def state(data: Path) -> dict:
    """The gallery as a person would check it: subjects with names, records and images; matrix rows; crops."""
    with Gallery(data) as gallery:
        subjects = {s["subject_id"]: (s["name"], s["record_ref"], s["images"]) for s in gallery.subjects()}
        rows = {image["sha256"]: image["subject_id"] for image in gallery.images()}
        return {"subjects": subjects, "rows": rows, "images": gallery.image_count,
                "generation": gallery.generation,
                "crops": sorted(p.stem for p in gallery.thumbs_dir.iterdir())}


def test_sync_adds_every_person_listed_audits_each_image_and_ends_with_a_summary(synced):
    assert synced["code"] == 0
    now = state(synced["data"])
    assert now["subjects"] == {s: (name, record, len(photos)) for s, (name, record, photos) in PEOPLE.items()}
    assert now["images"] == 6 and sorted(now["crops"]) == sorted(now["rows"])
    changes = gallery_changes(synced["data"])
    assert len(changes) == 6 and {c["action"] for c in changes} == {"enroll"}
    assert all(c["via"] == "sync" and c["manifest"].endswith("people.csv") for c in changes)
    assert {c["image_sha256"]: c["subject_id"] for c in changes} == now["rows"]
    last = synced["out"].strip().splitlines()[-1]
    assert last.startswith("gallery sync: added 5 subjects, updated 0, removed 0, unchanged 0; 6 images enrolled, "
                           "0 removed; 0 rejected")
    assert "  added obama (Barack Obama): +2 images" in synced["out"]


def test_sync_removes_an_expunged_person_with_every_template_and_crop(sync_env, capsys):
    before = state(sync_env.data)
    obama = {sha for sha, s in before["rows"].items() if s == "obama"}
    sync_env.manifest.write_text(manifest_text(PEOPLE, {"obama": "Expunged"}))
    assert main(["gallery", "sync", "--manifest", str(sync_env.manifest), "--no-progress"]) == 0
    out = capsys.readouterr().out
    after = state(sync_env.data)
    assert "obama" not in after["subjects"] and len(after["subjects"]) == 4
    assert after["images"] == 4 and not obama & set(after["rows"])  # the templates: gone from the matrix
    assert not obama & set(after["crops"]) and sorted(after["crops"]) == sorted(after["rows"])  # and the crops
    removed = gallery_changes(sync_env.data)[6:]
    assert [(c["action"], c["subject_id"], c["reason"], c["name"]) for c in removed] == [
        ("remove", "obama", "expunged", "Barack Obama")] * 2
    assert {c["image_sha256"] for c in removed} == obama
    assert "  removed obama (Barack Obama): status expunged, 2 images" in out
    assert out.strip().splitlines()[-1].startswith("gallery sync: added 0 subjects, updated 0, removed 1 (20% of "
                                                   "5 subjects), unchanged 4; 0 images enrolled, 2 removed")


def test_dry_run_prints_the_plan_and_changes_and_audits_nothing(sync_env, capsys):
    before = state(sync_env.data)
    log_bytes = (sync_env.data / "audit" / "audit.jsonl").read_bytes()
    people = {**PEOPLE, "lin_manuel_miranda": ("Lin-Manuel Miranda", "R-6", ["lin-manuel-miranda.png"])}
    del people["biden"]
    sync_env.manifest.write_text(manifest_text(people, {"rose_leslie": "acquitted"}))
    assert main(["gallery", "sync", "--manifest", str(sync_env.manifest), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Dry run: nothing was changed. This manifest would change 3 subjects:")
    assert "  add lin_manuel_miranda (Lin-Manuel Miranda): +1 image" in out
    assert "  remove biden (Joe Biden): not in the manifest, 1 image" in out
    assert "  remove rose_leslie (Rose Leslie): status acquitted, 1 image" in out
    assert out.strip().splitlines()[-1].startswith("would add 1, update 0, remove 2 (40% of 5 subjects), leave 3 "
                                                   "unchanged")
    assert state(sync_env.data) == before
    assert (sync_env.data / "audit" / "audit.jsonl").read_bytes() == log_bytes


def test_an_unknown_status_stops_the_sync_naming_the_row_and_changes_nothing(sync_env, capsys):
    before = state(sync_env.data)
    log_bytes = (sync_env.data / "audit" / "audit.jsonl").read_bytes()
    text = manifest_text(PEOPLE, {"obama": "expunged", "rose_leslie": "sealed"})
    sync_env.manifest.write_text(text)
    assert main(["gallery", "sync", "--manifest", str(sync_env.manifest), "--yes"]) == 1
    err = capsys.readouterr().err
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if row.startswith("rose_leslie"))
    assert f"{sync_env.manifest}:{line}: status 'sealed' is not a status the gallery knows" in err
    assert "Nothing was changed" in err and "Traceback" not in err
    assert state(sync_env.data) == before  # obama, expunged on an earlier row, is still there
    assert (sync_env.data / "audit" / "audit.jsonl").read_bytes() == log_bytes


def test_removing_more_than_the_allowed_share_needs_yes(sync_env, capsys):
    sync_env.config.write_text("")  # the default: [gallery] sync_max_remove_share = 0.10
    before = state(sync_env.data)
    people = dict(PEOPLE)
    del people["biden"]
    sync_env.manifest.write_text(manifest_text(people))
    try:
        assert main(["gallery", "sync", "--manifest", str(sync_env.manifest)]) == 1
        err = capsys.readouterr().err
        assert "would remove 1 of the gallery's 5 subjects (20%)" in err and "--yes" in err
        assert state(sync_env.data) == before and len(gallery_changes(sync_env.data)) == 6
        assert main(["gallery", "sync", "--manifest", str(sync_env.manifest), "--yes"]) == 0
    finally:
        sync_env.config.write_text("[gallery]\nsync_max_remove_share = 0.5\n")
    assert "biden" not in state(sync_env.data)["subjects"]


def test_one_audit_entry_per_change(sync_env, faces_dir, capsys):
    """A new name and record, an image added and one no longer listed, a person added, one removed: each change
    is one `gallery_change` entry, and nothing else is written."""
    before = state(sync_env.data)
    people = {**PEOPLE, "lin_manuel_miranda": ("Lin-Manuel Miranda", "R-6", ["lin-manuel-miranda.png"])}
    people["biden"] = ("Joseph R. Biden", "R-22", ["biden.jpg"])
    people["obama"] = ("Barack Obama", "R-1", ["obama.jpg", "obama2.jpg"])  # obama_small.jpg no longer listed
    people["kit_harington"] = ("Kit Harington", "R-3", ["john2.jpeg"])
    sync_env.manifest.write_text(manifest_text(people, {"alex_lacamoire": "dropped"}))
    assert main(["gallery", "sync", "--manifest", str(sync_env.manifest), "--no-progress"]) == 0
    out = capsys.readouterr().out
    changes = gallery_changes(sync_env.data)[6:]
    small = hashlib.sha256((faces_dir / "people/obama/obama_small.jpg").read_bytes()).hexdigest()
    assert before["rows"][small] == "obama"
    summary = sorted((c["action"], c["subject_id"], c.get("reason", "")) for c in changes)
    assert summary == [("enroll", "lin_manuel_miranda", ""), ("enroll", "obama", ""),
                       ("remove", "alex_lacamoire", "dropped"), ("remove", "obama", "image_not_listed"),
                       ("update", "biden", "")]
    update = next(c for c in changes if c["action"] == "update")
    assert (update["name"], update["record_ref"], update["previous"]) == (
        "Joseph R. Biden", "R-22", {"name": "Joe Biden", "record_ref": "R-2"})
    [dropped] = [c for c in changes if c.get("reason") == "image_not_listed"]
    assert dropped["image_sha256"] == small and dropped["name"] == "Barack Obama"
    after = state(sync_env.data)
    assert after["subjects"]["obama"] == ("Barack Obama", "R-1", 2) and after["subjects"]["biden"][:2] == (
        "Joseph R. Biden", "R-22")
    assert small not in after["rows"] and small not in after["crops"]
    assert out.strip().splitlines()[-1].startswith(
        "gallery sync: added 1 subject, updated 2, removed 1 (20% of 5 subjects), unchanged 2; 2 images enrolled, "
        "2 removed; 0 rejected")
