"""Shared fixtures. Real faces come from $BOT_TEST_FACES and $BOT_DEV_FACES, or unset, from ../shared/faces and
../shared/faces-dev beside the clone (never copied into the repo)."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import Settings

# A real PostgreSQL (pg_server, pg_database) for the store's tests and the CLI's `store` commands.
pytest_plugins = ["tests.pg_fixtures"]

FACE_VARIABLES = ("BOT_TEST_FACES", "BOT_DEV_FACES")
CLONE = Path(__file__).resolve().parent.parent
# Where each face folder sits beside a clone, and the sub-folders that say it is the right one.
BESIDE_THE_CLONE = {"BOT_TEST_FACES": ("faces", ("people",)), "BOT_DEV_FACES": ("faces-dev", ("people", "singles"))}
FACES_SKIP = "BOT_TEST_FACES is not set: face tests need the shared test photos (../shared/faces; see README, Tests)"
DEV_FACES_SKIP = "BOT_DEV_FACES is not set: calibration tests need the dev face set (../shared/faces-dev)"
SKIP_REASONS = {"BOT_TEST_FACES": FACES_SKIP, "BOT_DEV_FACES": DEV_FACES_SKIP}


def absolute_face_paths(environ: dict[str, str], cwd: str) -> None:
    """Make a relative BOT_TEST_FACES / BOT_DEV_FACES absolute, against `cwd` (the README's
    `BOT_TEST_FACES=../shared/faces make test`), so it means the same in a test or worker that changes
    directory later."""
    for name in FACE_VARIABLES:
        value = environ.get(name)
        if value and not os.path.isabs(value):
            environ[name] = os.path.normpath(os.path.join(cwd, value))


def faces_beside_the_clone(environ: dict[str, str], clone: Path) -> None:
    """Point each face variable that is not in the environment at its folder beside the clone
    (../shared/faces, ../shared/faces-dev), when that folder is there and holds what the tests read: a fresh
    clone next to the shared folders runs every test without setting anything. A variable already set, even
    empty (to skip those tests) or to a missing folder (which fails), is left as it is."""
    for name, (folder, holds) in BESIDE_THE_CLONE.items():
        root = clone.parent / "shared" / folder
        if name not in environ and all((root / sub).is_dir() for sub in holds):
            environ[name] = str(root)


def pytest_configure(config: pytest.Config) -> None:
    """Before collection: the face folders beside the clone stand in for unset variables, and relative paths
    become absolute from the directory pytest was started from."""
    faces_beside_the_clone(os.environ, CLONE)
    absolute_face_paths(os.environ, str(config.invocation_params.dir))


def face_tests_skipped_line(skipped: dict[str, int]) -> str | None:
    """One plain line for the end of a run whose face tests were skipped for want of the photos: how many, and
    how to run them. `skipped` counts the skipped tests per variable; None when there are none."""
    missing = [name for name in FACE_VARIABLES if skipped.get(name)]
    if not missing:
        return None
    count = sum(skipped[name] for name in missing)
    tests = "face test" if count == 1 else "face tests"
    folders = " and ".join(f"../shared/{BESIDE_THE_CLONE[name][0]}" for name in missing)
    run = " ".join(f"{name}=/path/to/{BESIDE_THE_CLONE[name][0]}" for name in missing)
    return (f"{count} {tests} skipped: no shared photos found ({' and '.join(missing)} not set). To run "
            f"{'it' if count == 1 else 'them'}, put {folders} beside the clone, or run: {run} make test")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """End the run with one line when face tests were skipped because their photos were missing."""
    skipped: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        for name, text in SKIP_REASONS.items():
            if text in reason:
                skipped[name] = skipped.get(name, 0) + 1
    line = face_tests_skipped_line(skipped)
    if line:
        terminalreporter.write_line(line)


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


def same_person(a, b, model: str | None = None) -> bool:
    """Whether two templates of `model` (None: the default) are within that model's default distance ceiling,
    in its own distance: what a search would still accept as the same person."""
    from bot.config import SearchSettings
    from bot.faces import models

    m = models.get(model)
    return float(m.distance(a[None], b)[0]) < SearchSettings().threshold_for(m.id)


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
        pytest.skip(FACES_SKIP)
    return root


@pytest.fixture(scope="session")
def dev_faces_dir() -> Path:
    """The development face set (2,130 people); skips when BOT_DEV_FACES is unset, fails when set but wrong."""
    value = os.environ.get("BOT_DEV_FACES")
    if not value:
        pytest.skip(DEV_FACES_SKIP)
    root = Path(value)
    if not (root / "people").is_dir() or not (root / "singles").is_dir():
        raise RuntimeError(f"BOT_DEV_FACES={value} is set but holds no people/ and singles/ folders")
    return root


CLI_PERSON = "analyst1"  # who every command-line test is, unless it says otherwise


@pytest.fixture(autouse=True, scope="session")
def cli_person() -> Iterator[str]:
    """The command line names the person behind a shared account (bot.request.identity), and the test runner owns
    every temporary data dir, a shared account: the person is CLI_PERSON, reached through sudo, whatever login
    session the tests run in (a test may change either for itself with monkeypatch)."""
    from bot.cli import common

    patch = pytest.MonkeyPatch()
    patch.setattr(common, "LOGINUID", Path(os.devnull))  # reads as no login uid
    patch.setenv("SUDO_USER", CLI_PERSON)
    try:
        yield CLI_PERSON
    finally:
        patch.undo()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir(mode=0o700)
    return d


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings().with_data_dir(data_dir)
