"""`make test` on a fresh clone runs every test (issue 15, item 12): the shared face folders beside the clone
(../shared/faces, ../shared/faces-dev) are used when BOT_TEST_FACES / BOT_DEV_FACES are not set, and without them
the run ends with one plain line saying how many face tests were skipped and how to run them.

Each case runs pytest in a subprocess on a fresh "clone" in a temp dir: the real tests/conftest.py, a tiny test
file using the face fixtures, and whatever sits beside it."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import FACE_VARIABLES

REPO = Path(__file__).resolve().parent.parent

INNER_TESTS = """
def test_needs_the_faces(faces_dir):
    assert (faces_dir / "people").is_dir()


def test_needs_the_faces_too(faces_dir):
    assert (faces_dir / "people").is_dir()


def test_needs_the_dev_faces(dev_faces_dir):
    assert (dev_faces_dir / "singles").is_dir()


def test_needs_no_face():
    assert True
"""


def fresh_clone(tmp_path: Path) -> Path:
    """tmp_path/clone holding the real tests/conftest.py and INNER_TESTS; nothing beside it unless a test adds
    tmp_path/shared."""
    clone = tmp_path / "clone"
    (clone / "tests").mkdir(parents=True)
    shutil.copy(REPO / "tests" / "conftest.py", clone / "tests" / "conftest.py")
    (clone / "tests" / "test_inner.py").write_text(INNER_TESTS)
    (clone / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return clone


def run_tests(clone: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """pytest -q in the clone, with the face variables unset unless given here."""
    env = {k: v for k, v in os.environ.items() if k not in FACE_VARIABLES}
    env.update(variables)
    env["PYTHONPATH"] = str(REPO)  # `bot` for the conftest's imports
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


def skipped_line(output: str) -> str | None:
    """The run's line about skipped face tests, if any."""
    found = [line for line in output.splitlines() if re.search(r"face tests? skipped", line)]
    assert len(found) <= 1, found
    return found[0] if found else None


def test_without_the_folders_the_run_ends_saying_how_many_face_tests_were_skipped_and_how_to_run_them(tmp_path):
    run = run_tests(fresh_clone(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed, 3 skipped" in run.stdout
    line = skipped_line(run.stdout)
    assert line is not None, run.stdout
    assert line.startswith("3 face tests skipped"), line
    assert "../shared/faces" in line and "../shared/faces-dev" in line  # where to put them
    assert "BOT_TEST_FACES=" in line and "BOT_DEV_FACES=" in line and "make test" in line  # or how to name them
    lines = run.stdout.rstrip().splitlines()
    assert lines.index(line) >= len(lines) - 3, run.stdout  # at the end, beside the count of the run


def test_the_line_names_only_what_is_missing(tmp_path, faces_dir):
    run = run_tests(fresh_clone(tmp_path), BOT_TEST_FACES=str(faces_dir))
    assert "3 passed, 1 skipped" in run.stdout, run.stdout + run.stderr
    line = skipped_line(run.stdout)
    assert line is not None and line.startswith("1 face test skipped"), run.stdout
    assert "BOT_DEV_FACES=" in line and "BOT_TEST_FACES" not in line


def test_the_folders_beside_the_clone_are_used_when_the_variables_are_unset(tmp_path, faces_dir, dev_faces_dir):
    clone = fresh_clone(tmp_path)
    (tmp_path / "shared").mkdir()
    os.symlink(faces_dir, tmp_path / "shared" / "faces")
    os.symlink(dev_faces_dir, tmp_path / "shared" / "faces-dev")
    run = run_tests(clone)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 passed" in run.stdout and "skipped" not in run.stdout, run.stdout
    assert skipped_line(run.stdout) is None


def test_a_variable_set_to_a_missing_folder_still_fails(tmp_path):
    """Set but missing is a broken setup, not a reason to skip (nor to fall back on ../shared)."""
    run = run_tests(fresh_clone(tmp_path), BOT_TEST_FACES=str(tmp_path / "nowhere"))
    assert run.returncode != 0
    assert "is set but holds no people/ folder" in run.stdout, run.stdout


def test_a_variable_set_empty_skips_its_tests_even_with_the_folders_beside_the_clone(tmp_path, faces_dir):
    clone = fresh_clone(tmp_path)
    (tmp_path / "shared").mkdir()
    os.symlink(faces_dir, tmp_path / "shared" / "faces")
    run = run_tests(clone, BOT_TEST_FACES="", BOT_DEV_FACES="")
    assert "1 passed, 3 skipped" in run.stdout, run.stdout + run.stderr
    assert skipped_line(run.stdout).startswith("3 face tests skipped")
