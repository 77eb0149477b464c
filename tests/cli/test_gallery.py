"""`python -m bot gallery ...` as a department runs it: enroll interrupted with Ctrl-C (a real process),
`gallery sync --manifest` against real faces."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bot.faces.gallery import Gallery
from tests.conftest import link_subjects

REPO = Path(__file__).resolve().parents[2]
KEY = "cli-gallery-test-key-0123456789abcdef"


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
