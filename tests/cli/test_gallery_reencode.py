"""`python -m bot gallery reencode --model ID` as a department runs it: a dlib-resnet gallery moved to sface, the
same search finding the same person after; the refusals; the share of skipped images that needs --yes; Ctrl-C
and a kill in real processes, then a run that goes on from where they stopped."""
from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot import wording
from bot.cli.main import main
from bot.faces import models
from bot.faces.gallery import GALLERY_DIR, Gallery
from bot.faces.reencode import PROGRESS_FILE
from bot.store.audit_log import AuditLog
from tests.cli.conftest import GOOD, audit_entries, run_json
from tests.conftest import link_subjects

REPO = Path(__file__).resolve().parents[2]
KEY = "cli-reencode-test-key-0123456789abcdef"
PROBE = "obama/obama-480p.jpg"  # not enrolled; another photo of obama is, as near with either model


@pytest.fixture(scope="module")
def enrolled(faces_dir: Path, tmp_path_factory) -> Path:
    """Every photo of people/ but PROBE, enrolled through the command line with dlib-resnet (once per module)."""
    root = tmp_path_factory.mktemp("reencode_cli")
    people = {d.name: sorted(p.name for p in d.iterdir() if f"{d.name}/{p.name}" != PROBE)
              for d in sorted((faces_dir / "people").iterdir())}
    src = link_subjects(faces_dir, people, root / "src")
    mp = pytest.MonkeyPatch()
    mp.setenv("BOT_DATA_DIR", str(root / "data"))
    mp.setenv("BOT_AUDIT_KEY", KEY)
    try:
        assert main(["gallery", "enroll", str(src), "--no-progress", "--model", "dlib-resnet"]) == 0
    finally:
        mp.undo()
    return root / "data"


@pytest.fixture
def data(enrolled: Path, tmp_path: Path, monkeypatch) -> Path:
    """A private copy of the enrolled data dir, the one this test's commands use."""
    copy = tmp_path / "data"
    shutil.copytree(enrolled, copy)
    monkeypatch.setenv("BOT_DATA_DIR", str(copy))
    monkeypatch.setenv("BOT_AUDIT_KEY", KEY)
    return copy


def state(data: Path) -> tuple:
    """What a change would show: the stored model, generation, images, crops, audit log bytes."""
    with Gallery(data) as gallery:
        crops = sorted(p.name for p in gallery.thumbs_dir.iterdir())
        return gallery.model_id, gallery.generation, gallery.image_count, crops, (data / "audit/audit.jsonl").read_bytes()


def reencodes(data: Path) -> list[dict]:
    return [e for e in AuditLog.open(data, {"BOT_AUDIT_KEY": KEY}).entries() if e.get("action") == "reencode"]


def test_reencode_moves_the_gallery_to_sface_and_the_same_search_finds_the_same_person(data, faces_dir, tmp_path,
                                                                                        capsys, monkeypatch):
    probe = str(faces_dir / "people" / PROBE)
    code, before = run_json(capsys, ["search", probe, *GOOD, "--json"])
    assert code == 0 and before["candidates"][0]["subject_id"] == "obama" and before["model"]["id"] == "dlib-resnet"
    assert main(["gallery", "reencode", "--model", "sface", "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"re-encoded 19 of 19 images from {wording.model_label(models.record('dlib-resnet'))} to "
                          f"{wording.model_label(models.record('sface'))} (0 by an earlier run); 0 skipped; 0 subjects "
                          "removed (")
    [entry] = reencodes(data)
    assert (entry["previous_model"]["id"], entry["model"]["id"], entry["reencoded"]) == ("dlib-resnet", "sface", 19)
    code, stats = run_json(capsys, ["gallery", "stats", "--json"])
    assert stats["model"].startswith("sface ") and stats["images"] == 19
    # The settings still say dlib-resnet: a gallery is searched with its recorded model all the same
    # (CONTRACTS ### 12), and asking for the old model outright is refused.
    code, after = run_json(capsys, ["search", probe, *GOOD, "--json"])
    assert code == 0 and after["candidates"][0]["subject_id"] == "obama" and after["model"]["id"] == "sface"
    assert audit_entries(data)[-1]["model"] == models.record("sface")
    code, refused = run_json(capsys, ["search", probe, *GOOD, "--json", "--model", "dlib-resnet"])
    assert code == 1 and "gallery reencode --model dlib-resnet" in refused["error"]


def test_reencode_refuses_an_unknown_model_the_model_it_holds_an_empty_gallery_and_an_audit_log_it_cannot_write(
        data, tmp_path, capsys, monkeypatch):
    before = state(data)
    assert main(["gallery", "reencode", "--model", "arcface"]) == 1
    assert capsys.readouterr().err.strip() == f"error: {wording.model_unknown('arcface', models.IDS)}"
    assert main(["gallery", "reencode", "--model", "dlib-resnet"]) == 1
    assert capsys.readouterr().err.strip() == f"error: {wording.gallery_reencode_same_model('dlib-resnet')}"
    monkeypatch.setenv("BOT_AUDIT_KEY", "another-key-0123456789abcdef0123456789")  # the log cannot be continued
    assert main(["gallery", "reencode", "--model", "sface"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "key" in err and "Traceback" not in err
    assert state(data) == before and not (data / GALLERY_DIR / PROGRESS_FILE).exists()
    monkeypatch.setenv("BOT_DATA_DIR", str(tmp_path / "empty"))
    assert main(["gallery", "reencode", "--model", "sface"]) == 1
    assert capsys.readouterr().err.strip() == f"error: {wording.gallery_reencode_empty('sface')}"


def test_more_than_a_tenth_skipped_lists_them_and_commits_nothing_without_yes(faces_dir, tmp_path, capsys,
                                                                                monkeypatch):
    src = tmp_path / "src"
    for rel in ("obama/obama.jpg", "biden/biden.jpg", "kit_harington/john2.jpeg"):
        (src / rel).parent.mkdir(parents=True)
        shutil.copy(faces_dir / "people" / rel, src / rel)
    monkeypatch.setenv("BOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BOT_AUDIT_KEY", KEY)
    assert main(["gallery", "enroll", str(src), "--no-progress", "--model", "dlib-resnet"]) == 0
    (src / "biden/biden.jpg").write_bytes((src / "biden/biden.jpg").read_bytes() + b"\0")  # re-saved since
    before = state(tmp_path / "data")
    capsys.readouterr()
    assert main(["gallery", "reencode", "--model", "sface", "--workers", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2].startswith("skipped: subject biden, image ") and "has changed since it was enrolled" in err[-2]
    assert err[-1] == wording.gallery_reencode_needs_yes(1, 3, 0.1) and "(33%)" in err[-1]
    assert state(tmp_path / "data") == before
    assert main(["gallery", "reencode", "--model", "sface", "--workers", "1", "--yes"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "re-encoded 2 of 3 images" in out[0] and "1 skipped; 1 subject removed" in out[0]
    assert out[1].startswith("skipped: subject biden") and out[2].startswith("removed: subject biden")
    [entry] = reencodes(tmp_path / "data")
    assert [s["subject_id"] for s in entry["skipped"]] == ["biden"]
    assert entry["subjects_removed"] == [{"subject_id": "biden", "name": "biden", "record_ref": ""}]


def _done(data: Path) -> int:
    """Templates the progress file holds on disk (committed), as another process sees them."""
    try:
        db = sqlite3.connect(data / GALLERY_DIR / PROGRESS_FILE, timeout=5)
        try:
            return db.execute("SELECT COUNT(*) FROM done").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:  # not made yet
        return 0


def _run_until(data: Path, more_than: int, sig: int) -> tuple[subprocess.Popen, str]:
    """`gallery reencode` in its own process group, stopped by `sig` (to the whole group, as a terminal sends
    Ctrl-C) once the progress file holds more than `more_than` templates; the process and its stderr."""
    env = {**os.environ, "BOT_DATA_DIR": str(data), "BOT_AUDIT_KEY": KEY}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "gallery", "reencode", "--model", "sface", "--workers", "1",
                             "--no-progress"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while _done(data) <= more_than:
            assert proc.poll() is None, f"the run ended before it was stopped: {proc.communicate()}"
            assert time.monotonic() < deadline, "no progress kept in 120 s"
            time.sleep(0.02)
        os.killpg(proc.pid, sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc, err


def test_ctrl_c_exits_130_and_a_kill_loses_at_most_a_batch_then_a_run_goes_on_from_there(data, capsys):
    before = state(data)
    proc, err = _run_until(data, 0, signal.SIGINT)
    lines = [line for line in err.splitlines() if not line.startswith("[ WARN")]  # OpenCV's, from the workers
    assert proc.returncode == 130 and lines == [wording.gallery_interrupted("reencode")], err
    assert state(data) == before
    kept = _done(data)
    proc, _ = _run_until(data, kept, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL and state(data) == before
    kept = _done(data)
    assert main(["gallery", "reencode", "--model", "sface", "--workers", "1", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert wording.gallery_reencode_resuming(kept, 19) in captured.err
    assert "re-encoded 19 of 19 images" in captured.out and f"({kept} by an earlier run)" in captured.out
    assert len(reencodes(data)) == 1 and not (data / GALLERY_DIR / PROGRESS_FILE).exists()
    with Gallery(data) as gallery:
        assert gallery.model_id == "sface" and gallery.image_count == 19


def test_on_a_database_reencode_runs_from_any_machine_and_keeps_its_progress_in_the_database(
        enrolled, tmp_path, faces_dir, pg_database, capsys, monkeypatch):
    # The department moved its data dir into PostgreSQL; an administrator re-encodes from another machine.
    moved = tmp_path / "moved"
    shutil.copytree(enrolled, moved)
    monkeypatch.setenv("BOT_AUDIT_KEY", KEY)
    monkeypatch.setenv("BOT_DATA_DIR", str(moved))
    monkeypatch.setenv("BOT_DATABASE_URL", pg_database.owner_url)
    assert main(["store", "copy"]) == 0
    elsewhere = tmp_path / "admin-workstation"
    monkeypatch.setenv("BOT_DATA_DIR", str(elsewhere))
    monkeypatch.setenv("BOT_DATABASE_URL", pg_database.app_url)
    capsys.readouterr()
    assert main(["gallery", "reencode", "--model", "sface", "--workers", "1", "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith("re-encoded 19 of 19 images")
    code, after = run_json(capsys, ["search", str(faces_dir / "people" / PROBE), *GOOD, "--json"])
    assert code == 0 and after["candidates"][0]["subject_id"] == "obama" and after["model"]["id"] == "sface"
    assert not list(elsewhere.rglob(PROGRESS_FILE)) and not list(moved.rglob(PROGRESS_FILE))  # kept in the database
    import psycopg

    with psycopg.connect(pg_database.app_url) as conn:  # and removed once committed
        assert conn.execute("SELECT count(*) FROM small_records WHERE namespace LIKE 'reencode%'").fetchone()[0] == 0
