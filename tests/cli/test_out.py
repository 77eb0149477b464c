"""`search --out DIR` writes what a Slack requester gets beside the result: the photo with its faces numbered and
the contact sheet; candidates only once they are the requester's (under examiner review or supervisor approval
nothing is written: the release goes to Slack)."""
from __future__ import annotations

import io
import json
import stat
from pathlib import Path

from PIL import Image

from bot import wording
from bot.cli.main import main

from .conftest import APPROVAL_ALWAYS, EXAMINER_MODE, GOOD, audit_entries, run_json, settings_file

OBAMA = "people/obama/obama2.jpg"
GROUP = "group/kit_with_rose.jpg"


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) == 0o600


def test_out_writes_the_result_the_numbered_faces_and_the_contact_sheet(data, faces_dir, tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out = run_json(capsys, ["search", str(faces_dir / OBAMA), *GOOD, "--out", str(out_dir), "--json"])
    assert code == 0 and out["candidates"][0]["subject_id"] == "obama"
    rid = out["request_id"]
    written = files(out_dir)
    assert sorted(written) == sorted([f"{rid}.json", f"{rid}-faces.jpg", f"{rid}-contact-sheet.png"])
    assert sorted(out["out"]) == sorted(str(out_dir / name) for name in written)
    assert json.loads(written[f"{rid}.json"]) == {k: v for k, v in out.items() if k != "out"}
    faces = Image.open(io.BytesIO(written[f"{rid}-faces.jpg"]))
    sheet = Image.open(io.BytesIO(written[f"{rid}-contact-sheet.png"]))
    assert faces.format == "JPEG" and sheet.format == "PNG" and sheet.width > 2 * 160  # probe beside a candidate
    assert all(private(out_dir / name) for name in written)  # names of people: 0600 like every output
    assert main(["search", str(faces_dir / OBAMA), *GOOD, "--out", str(out_dir)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Investigative leads only") and str(out_dir) in text


def test_a_photo_with_several_faces_leaves_its_numbered_picture_to_choose_from(data, faces_dir, tmp_path, capsys):
    code, out = run_json(capsys, ["search", str(faces_dir / GROUP), *GOOD, "--out", str(tmp_path), "--json"])
    assert code == 3 and len(out["faces"]) == 2
    [name] = [p.name for p in tmp_path.iterdir() if p.suffix == ".jpg"]
    assert name == f"{out['request_id']}-faces.jpg" and out["out"] == [str(tmp_path / name)]
    assert Image.open(tmp_path / name).format == "JPEG" and audit_entries(data) == []  # nothing searched yet


def test_nothing_is_written_before_an_examiner_releases_or_a_supervisor_approves(data, faces_dir, tmp_path, capsys,
                                                                                  monkeypatch):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    examiner = settings_file(tmp_path, EXAMINER_MODE, "examiner.toml")
    monkeypatch.setenv("BOT_CONFIG", str(examiner))
    code, out = run_json(capsys, ["search", str(faces_dir / OBAMA), *GOOD, "--out", str(out_dir), "--json"])
    assert code == 4 and "queued_for_review" in out and files(out_dir) == {}
    assert main(["search", str(faces_dir / OBAMA), *GOOD, "--out", str(out_dir)]) == 4
    assert wording.CLI_OUT_HELD in capsys.readouterr().out and files(out_dir) == {}
    approval = settings_file(tmp_path, APPROVAL_ALWAYS, "approval.toml")
    monkeypatch.setenv("BOT_CONFIG", str(approval))
    code, out = run_json(capsys, ["search", str(faces_dir / OBAMA), *GOOD, "--out", str(out_dir), "--json"])
    assert code == 4 and "awaiting_approval" in out and files(out_dir) == {}


def test_an_out_folder_that_is_missing_is_refused_before_anything_runs(data, faces_dir, tmp_path, capsys):
    code, out = run_json(capsys, ["search", str(faces_dir / OBAMA), *GOOD, "--out", str(tmp_path / "nope"),
                                  "--json"])
    assert code == 1 and "nope" in out["error"] and audit_entries(data) == []
