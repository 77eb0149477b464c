"""Shared fixtures. Real faces come from $BOT_TEST_FACES and $BOT_DEV_FACES (never copied into the repo)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.config import Settings

FACE_VARIABLES = ("BOT_TEST_FACES", "BOT_DEV_FACES")


def absolute_face_paths(environ: dict[str, str], cwd: str) -> None:
    """Make a relative BOT_TEST_FACES / BOT_DEV_FACES absolute, against `cwd` (the README's
    `BOT_TEST_FACES=../shared/faces make test`), so it means the same in a test or worker that changes
    directory later."""
    for name in FACE_VARIABLES:
        value = environ.get(name)
        if value and not os.path.isabs(value):
            environ[name] = os.path.normpath(os.path.join(cwd, value))


def pytest_configure(config: pytest.Config) -> None:
    """Before collection, in the directory pytest was started from: the face folders become absolute paths."""
    absolute_face_paths(os.environ, str(config.invocation_params.dir))


def _faces_root() -> Path | None:
    value = os.environ.get("BOT_TEST_FACES")
    if not value:
        return None
    root = Path(value)
    if not (root / "people").is_dir():
        # Set but missing is a broken CI setup, not a reason to skip.
        raise RuntimeError(f"BOT_TEST_FACES={value} is set but holds no people/ folder")
    return root


def link_subjects(faces_dir: Path, subjects: dict[str, list[str]], dest: Path) -> Path:
    """Lay out dest/<subject>/<image> as symlinks to the shared photos (never copies); returns dest."""
    for subject, files in subjects.items():
        (dest / subject).mkdir(parents=True)
        for name in files:
            os.symlink(faces_dir / "people" / subject / name, dest / subject / name)
    return dest


def edit_in_place(path: Path, old: bytes, new: bytes) -> None:
    """Overwrite the first `old` in the file with `new` of the same length, in the file itself: the inode and
    the size stay, as after a careful tamperer's edit."""
    assert len(old) == len(new)
    at = path.read_bytes().index(old)
    with open(path, "r+b") as fh:
        fh.seek(at)
        fh.write(new)


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """The shared test faces folder; skips when BOT_TEST_FACES is unset, fails when set but missing."""
    root = _faces_root()
    if root is None:
        pytest.skip("BOT_TEST_FACES is not set: face tests need the shared test photos (../shared/faces; see README, Tests)")
    return root


@pytest.fixture(scope="session")
def dev_faces_dir() -> Path:
    """The development face set (2,130 people); skips when BOT_DEV_FACES is unset, fails when set but wrong."""
    value = os.environ.get("BOT_DEV_FACES")
    if not value:
        pytest.skip("BOT_DEV_FACES is not set: calibration tests need the dev face set (../shared/faces-dev)")
    root = Path(value)
    if not (root / "people").is_dir() or not (root / "singles").is_dir():
        raise RuntimeError(f"BOT_DEV_FACES={value} is set but holds no people/ and singles/ folders")
    return root


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir(mode=0o700)
    return d


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings().with_data_dir(data_dir)
