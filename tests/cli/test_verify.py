"""`python -m bot audit verify` says what it found: an entry edited, entries deleted, entries reordered; and an
entry removed from the end of the log that the next write moved into a `.torn-*` side file (the chain itself
then verifies) is found there: exit 1, saying so."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.store.audit_log import AuditLog

KEY = "cli-verify-key-0123456789abcdef"


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AuditLog:
    """Six entries, keyed from the environment as in production."""
    data = tmp_path / "data"
    monkeypatch.setenv("BOT_DATA_DIR", str(data))
    monkeypatch.setenv("BOT_AUDIT_KEY", KEY)
    log = AuditLog.open(data, env={"BOT_AUDIT_KEY": KEY})
    for n in range(1, 7):
        log.append("gallery_change", actor="os:admin", action="enroll", subject_id=f"S-{n}")
    return log


def lines(log: AuditLog) -> list[bytes]:
    return log.path.read_bytes().splitlines(keepends=True)


def verify(capsys) -> tuple[int, str, str]:
    code = main(["audit", "verify"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_edited_entry_is_named_edited(log, capsys):
    raw = lines(log)
    raw[2] = raw[2].replace(b'"S-3"', b'"S-9"')
    log.path.write_bytes(b"".join(raw))
    code, _, err = verify(capsys)
    assert code == 1 and "BROKEN at entry 3" in err and "edited" in err
    assert "deleted" not in err and "reordered" not in err


def test_a_deleted_entry_is_named_deleted(log, capsys):
    raw = lines(log)
    del raw[2:4]
    log.path.write_bytes(b"".join(raw))
    code, _, err = verify(capsys)
    assert code == 1 and "BROKEN at entry 5" in err and "deleted" in err and "3 to 4" in err
    assert "edited" not in err and "reordered" not in err


def test_swapped_entries_are_named_reordered(log, capsys):
    raw = lines(log)
    raw[2], raw[3] = raw[3], raw[2]
    log.path.write_bytes(b"".join(raw))
    code, _, err = verify(capsys)
    assert code == 1 and "reordered" in err
    assert "edited" not in err and "deleted" not in err


def test_an_entry_cut_off_the_end_and_moved_aside_by_the_next_write_is_found_in_its_side_file(log, capsys):
    log.path.write_bytes(log.path.read_bytes()[:-1])  # entry 6 loses its newline: now an "incomplete" last line
    log.append("gallery_change", actor="os:admin", action="remove", subject_id="S-1")  # moves it aside as torn
    [side] = list(log.dir.glob("audit.jsonl.torn-*"))
    assert json.loads(side.read_bytes())["subject_id"] == "S-6" and log.verify().ok  # the chain alone is fine
    code, out, err = verify(capsys)
    assert code == 1 and "intact" not in out
    assert side.name in err and "entry 6" in err and "removed" in err


def test_a_torn_write_moved_aside_is_no_alarm(log, capsys):
    with log.path.open("ab") as fh:
        fh.write(b'{"kind":"gallery_change","seq":7,"ts":"2026')  # a crash mid-write: never an entry
    log.append("gallery_change", actor="os:admin", action="remove", subject_id="S-1")
    assert list(log.dir.glob("audit.jsonl.torn-*"))
    code, out, _ = verify(capsys)
    assert code == 0 and "intact: 7 entries" in out
