"""bot/disk.py: private paths, crash-safe writes, the cross-process lock and the atomic tinydb storage."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bot.store import disk
from bot.store.disk import (
    AtomicJSONStorage,
    ensure_private_dir,
    file_lock,
    open_private_append,
    open_tinydb,
    write_private_atomic,
)

REPO = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask():
    """Run with umask 0 so only our explicit modes can make files private."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_ensure_private_dir_creates_parents_0700(tmp_path: Path, loose_umask) -> None:
    leaf = tmp_path / "a" / "b" / "c"
    assert ensure_private_dir(leaf) == leaf
    for d in (tmp_path / "a", tmp_path / "a" / "b", leaf):
        assert d.is_dir() and mode(d) == 0o700


def test_ensure_private_dir_tightens_existing_leaf(tmp_path: Path) -> None:
    d = tmp_path / "open"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    ensure_private_dir(d)
    assert mode(d) == 0o700


def test_write_private_atomic_writes_0600_and_replaces(tmp_path: Path, loose_umask) -> None:
    target = tmp_path / "state.json"
    write_private_atomic(target, b"one")
    assert target.read_bytes() == b"one" and mode(target) == 0o600
    write_private_atomic(target, b"two")
    assert target.read_bytes() == b"two" and mode(target) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # no temp files left


def test_write_private_atomic_crash_before_rename_keeps_old_content(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "state.json"
    write_private_atomic(target, b"old")

    def crash(src, dst):
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        write_private_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_open_private_append_appends_and_is_0600(tmp_path: Path, loose_umask) -> None:
    path = tmp_path / "log"
    for chunk in (b"a\n", b"b\n"):
        fd = open_private_append(path)
        try:
            os.write(fd, chunk)
        finally:
            os.close(fd)
    assert path.read_bytes() == b"a\nb\n" and mode(path) == 0o600
    fd = open_private_append(path, read=True)
    try:
        assert os.pread(fd, 2, 0) == b"a\n"
    finally:
        os.close(fd)


def test_file_lock_excludes_another_process(tmp_path: Path) -> None:
    lock_path = tmp_path / "x.lock"
    code = (
        "import sys, filelock\n"
        "from bot.store.disk import file_lock\n"
        "try:\n"
        "    with file_lock(sys.argv[1], timeout=0):\n"
        "        print('acquired')\n"
        "except filelock.Timeout:\n"
        "    print('busy')\n"
    )
    run = lambda: subprocess.run(
        [sys.executable, "-c", code, str(lock_path)], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    with file_lock(lock_path):
        assert run() == "busy"
        assert mode(lock_path) == 0o600
    assert run() == "acquired"


def test_tinydb_round_trip_private_files(tmp_path: Path, loose_umask) -> None:
    path = tmp_path / "state" / "requests.json"
    db = open_tinydb(path)
    db.insert({"request_id": "r1", "justification": "quotes \" and émoji 🙂"})
    db.close()
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    db = open_tinydb(path)
    assert db.all() == [{"request_id": "r1", "justification": "quotes \" and émoji 🙂"}]


def test_tinydb_missing_or_empty_file_is_empty_db(tmp_path: Path) -> None:
    assert AtomicJSONStorage(tmp_path / "none.json").read() is None
    (tmp_path / "empty.json").write_bytes(b"")
    assert open_tinydb(tmp_path / "empty.json").all() == []
    assert not (tmp_path / "none.json").exists()  # reading never creates the file


def test_tinydb_crash_mid_write_keeps_old_content(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "requests.json"
    db = open_tinydb(path)
    db.insert({"n": 1})
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        db.insert({"n": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert json.loads(before)  # still valid JSON
    assert open_tinydb(path).all() == [{"n": 1}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["requests.json"]


def test_tinydb_never_writes_in_place(tmp_path: Path, monkeypatch) -> None:
    """Every write goes through write_private_atomic (so tinydb's seek-write-truncate is never used)."""
    calls = []
    real = disk.write_private_atomic
    monkeypatch.setattr(disk, "write_private_atomic", lambda p, d: (calls.append(p), real(p, d)))
    db = open_tinydb(tmp_path / "db.json")
    db.insert({"n": 1})
    db.update({"n": 2})
    assert len(calls) == 2 and db.all() == [{"n": 2}]


def test_tinydb_corrupt_file_raises_instead_of_resetting(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    path.write_bytes(b'{"_default": {"1": ')
    with pytest.raises(ValueError, match="not valid JSON"):
        open_tinydb(path).all()
    assert path.read_bytes() == b'{"_default": {"1": '
