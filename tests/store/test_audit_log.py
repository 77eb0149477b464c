"""bot/audit.py: the HMAC-chained, crash-safe, locked audit log; verify; purge; queries."""
from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import stat
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bot.audit.chain import TORN_TAIL, canonical
from bot.audit.entries import KINDS, OUTCOMES
from bot.store import audit_log as audit_mod
from bot.store.audit_log import ANCHOR_KIND, AuditError, AuditKeyError, AuditLog

KEY = "test-audit-key-0123456789abcdef"
ENV = {"BOT_AUDIT_KEY": KEY}
T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class Clock:
    """A settable clock so entries can be stamped days apart without waiting."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log(data_dir: Path, clock: Clock) -> AuditLog:
    return AuditLog.open(data_dir, env=ENV, clock=clock)


def search(log: AuditLog, n: int, **extra) -> dict:
    fields = {
        "request_id": f"req-{n}", "call_number": f"24-{n:06d}", "outcome": "no_candidate",
        "requester": {"id": f"U{n % 3}", "name": f"Officer {n % 3}"}, "purpose": "investigation",
    }
    fields.update(extra)
    return log.append("search", **fields)


def fill(log: AuditLog, count: int) -> list[dict]:
    return [search(log, n) for n in range(1, count + 1)]


def lines(log: AuditLog) -> list[bytes]:
    return log.path.read_bytes().splitlines(keepends=True)


def rewrite(log: AuditLog, new_lines: list[bytes]) -> None:
    log.path.write_bytes(b"".join(new_lines))


# -- append / read ---------------------------------------------------------------------------------------


def test_round_trip_and_canonical_lines(log: AuditLog, clock: Clock) -> None:
    uploaded = clock.now - timedelta(minutes=3)
    written = search(
        log, 1, justification='He said "stop", then ran;\nline two 🙂 and <@here>', uploaded_at=uploaded,
        faces=[{"index": 1, "box": {"top": 1, "right": 2, "bottom": 3, "left": 0}, "size": 80}],
        candidates=({"subject_id": "s1", "distance": 0.41, "rank": 1},),
        threshold=np.float32(0.5), box=np.array([1, 2, 3, 4]),
    )
    assert written["seq"] == 1 and written["prev"] == "" and written["kind"] == "search"
    assert written["ts"] == "2024-01-01T12:00:00.000000Z"
    assert written["uploaded_at"] == "2024-01-01T11:57:00.000000Z"  # datetimes stored as UTC ISO
    assert written["candidates"] == [{"subject_id": "s1", "distance": 0.41, "rank": 1}]
    assert written["threshold"] == 0.5 and written["box"] == [1, 2, 3, 4]  # numpy values as plain JSON
    assert list(log.entries()) == [written]
    raw = lines(log)
    assert len(raw) == 1 and raw[0] == canonical(written) + b"\n"  # sorted keys, compact, UTF-8
    assert "🙂".encode() in raw[0] and b"\\n" in raw[0]  # the newline in text is escaped, never raw
    assert log.verify().ok


def test_seq_contiguous_and_chained(log: AuditLog) -> None:
    entries = fill(log, 6)
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[0]["prev"] == ""
    for before, after in itertools.pairwise(entries):
        assert after["prev"] == before["mac"]
    result = log.verify()
    assert (result.ok, result.count, result.bad_seq, result.last_seq, result.last_mac) == (
        True, 6, None, 6, entries[-1]["mac"])


def test_empty_log(log: AuditLog) -> None:
    assert list(log.entries()) == []
    assert log.verify().ok and log.verify().count == 0
    assert log.find() == []


def test_files_are_private(data_dir: Path) -> None:
    old = os.umask(0)  # only our explicit modes may keep the files private
    try:
        log = AuditLog.open(data_dir, env={})
        log.append("audit_access", actor={"id": "U1", "name": "x"}, action="query", query={})
    finally:
        os.umask(old)
    assert mode(log.dir) == 0o700
    assert mode(log.path) == 0o600
    assert mode(log.dir / "audit.key") == 0o600


# -- validation --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, fields, message",
    [
        ("login", {}, "unknown audit entry kind"),
        ("search", {"outcome": "maybe"}, "not one of"),
        ("search", {}, "not one of"),
        ("search", {"outcome": "error", "seq": 7}, "set by the log"),
        ("gallery_change", {"mac": "x"}, "set by the log"),
        ("gallery_change", {"value": object()}, "JSON"),
        ("gallery_change", {"distance": float("nan")}, "JSON"),
        ("gallery_change", {"name": "broken \ud800 text"}, "Unicode"),
    ],
)
def test_invalid_entries_rejected(log: AuditLog, kind: str, fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        log.append(kind, **fields)
    assert not log.path.exists() or log.path.read_bytes() == b""


def test_every_outcome_accepted(log: AuditLog) -> None:
    for outcome in OUTCOMES:
        log.append("search", outcome=outcome)
    assert [e["outcome"] for e in log.entries()] == list(OUTCOMES)
    assert log.verify().ok


# -- tamper detection --------------------------------------------------------------------------------------


def _edit_field(raw: list[bytes], log: AuditLog) -> list[bytes]:
    obj = json.loads(raw[2])
    obj["outcome"] = "candidates"
    raw[2] = canonical(obj) + b"\n"
    return raw


def _delete_middle(raw: list[bytes], log: AuditLog) -> list[bytes]:
    del raw[2]
    return raw


def _swap(raw: list[bytes], log: AuditLog) -> list[bytes]:
    raw[2], raw[3] = raw[3], raw[2]
    return raw


def _insert_forged(raw: list[bytes], log: AuditLog) -> list[bytes]:
    # A well-formed line that links correctly but is signed with someone else's key.
    forged = {"kind": "search", "outcome": "no_candidate", "request_id": "forged", "seq": 3,
              "ts": "2024-01-01T12:00:00.000000Z", "prev": json.loads(raw[1])["mac"]}
    other = AuditLog(log.dir.parent, key=b"attacker-key-0123456789", key_source="env")
    forged["mac"] = other._mac(forged)
    raw.insert(2, canonical(forged) + b"\n")
    return raw


def _truncate_mac(raw: list[bytes], log: AuditLog) -> list[bytes]:
    obj = json.loads(raw[2])
    obj["mac"] = obj["mac"][:-8]
    raw[2] = canonical(obj) + b"\n"
    return raw


def _duplicate_key(raw: list[bytes], log: AuditLog) -> list[bytes]:
    # Readers that keep the first duplicate would see "candidates"; the mac still matches the last one.
    raw[2] = b'{"outcome":"candidates",' + raw[2][1:]
    return raw


def _garbage_line(raw: list[bytes], log: AuditLog) -> list[bytes]:
    raw[2] = b"not json at all\n"
    return raw


def _hostile_line(raw: list[bytes], log: AuditLog) -> list[bytes]:
    # Must be reported, not crash the verifier: a lone surrogate and very deep nesting.
    raw[2] = b'{"mac":"\\ud800","seq":3,"prev":"","ts":"x"}\n'
    raw[3] = b"[" * 100_000 + b"]" * 100_000 + b"\n"
    return raw


@pytest.mark.parametrize(
    "tamper, bad_seq, reason",
    [
        (_edit_field, 3, "mac mismatch"),
        (_delete_middle, 4, "seq gap: expected 3, found 4"),
        (_swap, 4, "seq gap: expected 3, found 4"),
        (_insert_forged, 3, "mac mismatch"),
        (_truncate_mac, 3, "mac mismatch"),
        (_duplicate_key, 3, "not in canonical form"),
        (_garbage_line, 3, "unparseable line 3"),
        (_hostile_line, 3, "unparseable line 3"),
    ],
)
def test_tampering_detected_at_first_bad_entry(log: AuditLog, tamper, bad_seq: int, reason: str) -> None:
    fill(log, 5)
    assert log.verify().ok
    rewrite(log, tamper(lines(log), log))
    result = log.verify()
    assert not result.ok
    assert result.bad_seq == bad_seq
    assert reason in result.reason
    assert result.count == 2  # entries 1 and 2 verified before the problem


def test_relinked_edit_still_fails_without_key(log: AuditLog) -> None:
    """Editing an entry and fixing every later prev is useless without the key: the edited mac is wrong."""
    fill(log, 4)
    raw = lines(log)
    obj = json.loads(raw[1])
    obj["justification"] = "rewritten"
    obj["mac"] = "0" * 64
    raw[1] = canonical(obj) + b"\n"
    rewrite(log, raw)
    assert log.verify().bad_seq == 2


def test_deleting_first_line_detected(log: AuditLog) -> None:
    fill(log, 3)
    rewrite(log, lines(log)[1:])
    result = log.verify()
    assert not result.ok and result.bad_seq == 2 and "expected 1" in result.reason


def test_wrong_key_fails_at_seq_1_and_refuses_to_append(log: AuditLog, data_dir: Path) -> None:
    fill(log, 3)
    before = log.path.read_bytes()
    other = AuditLog.open(data_dir, env={"BOT_AUDIT_KEY": "a-different-key-entirely-0000"})
    result = other.verify()
    assert not result.ok and result.bad_seq == 1 and result.reason == "mac mismatch"
    with pytest.raises(AuditKeyError, match="does not verify with this key"):
        search(other, 4)
    assert log.path.read_bytes() == before


# -- key handling ------------------------------------------------------------------------------------------


def test_key_file_created_once_and_reused(data_dir: Path) -> None:
    first = AuditLog.open(data_dir, env={})
    key_file = data_dir / "audit" / "audit.key"
    assert first.key_source == "file"
    assert key_file.is_file() and mode(key_file) == 0o600 and len(key_file.read_bytes()) == 32
    key_bytes = key_file.read_bytes()
    search(first, 1)
    second = AuditLog.open(data_dir, env={})
    assert key_file.read_bytes() == key_bytes
    search(second, 2)  # would raise AuditKeyError if the key had changed
    assert second.verify().ok and second.verify().count == 2


def test_env_key_used_and_no_key_file(data_dir: Path) -> None:
    log = AuditLog.open(data_dir, env={"BOT_AUDIT_KEY": f"  {KEY}\n"})  # whitespace around it is ignored
    assert log.key_source == "env"
    search(log, 1)
    assert not (data_dir / "audit" / "audit.key").exists()
    assert AuditLog.open(data_dir, env=ENV).verify().ok


@pytest.mark.parametrize("value", ["", "   ", "short-key"])
def test_short_key_refused_without_echoing_it(data_dir: Path, value: str) -> None:
    with pytest.raises(AuditKeyError, match="BOT_AUDIT_KEY") as info:
        AuditLog.open(data_dir, env={"BOT_AUDIT_KEY": value})
    if value.strip():
        assert value not in str(info.value)
    assert not (data_dir / "audit" / "audit.key").exists()


def test_existing_log_without_key_is_refused(log: AuditLog, data_dir: Path) -> None:
    fill(log, 1)
    with pytest.raises(AuditKeyError, match="has entries but"):
        AuditLog.open(data_dir, env={})
    assert not (data_dir / "audit" / "audit.key").exists()  # no fresh key that could never verify the log


def test_repr_does_not_show_key(log: AuditLog) -> None:
    assert KEY not in repr(log) and "env" in repr(log)


# -- crash safety ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("torn", ["prefix", "whole_line_without_newline", "no_complete_line"])
def test_torn_final_write_ignored_then_replaced(log: AuditLog, torn: str) -> None:
    if torn == "no_complete_line":
        written = []
        tail = b'{"kind":"search","outc'
    else:
        written = fill(log, 3)
        if torn == "prefix":
            tail = b'{"kind":"search","outcome":"no_cand'
        else:
            # A crash after the bytes but before the newline: complete JSON, never acknowledged.
            tail = canonical({**written[-1], "seq": 4, "prev": written[-1]["mac"]})
    with open(log.path, "ab") as fh:
        fh.write(tail)
    result = log.verify()
    assert result.ok and result.count == len(written) and result.torn_tail and result.reason == TORN_TAIL
    assert list(log.entries()) == written
    new = search(log, 9)
    assert new["seq"] == len(written) + 1
    assert new["prev"] == (written[-1]["mac"] if written else "")
    assert tail not in log.path.read_bytes()
    # ...but kept as evidence beside the log, not dropped.
    [side] = sorted(log.dir.glob("audit.jsonl.torn-*"))
    assert side.read_bytes() == tail and side.stat().st_mode & 0o777 == 0o600
    result = log.verify()
    assert result.ok and result.count == len(written) + 1 and not result.torn_tail and result.reason == ""


def test_failed_write_leaves_no_partial_entry(log: AuditLog, monkeypatch) -> None:
    fill(log, 2)
    before = log.path.read_bytes()
    real_write = os.write

    def short_then_fail(fd, data):
        if len(data) > 40:
            return real_write(fd, bytes(data[:40]))  # a partial write...
        raise OSError(28, "No space left on device")  # ...then the disk is full

    monkeypatch.setattr(audit_mod.os, "write", short_then_fail)
    with pytest.raises(OSError, match="No space"):
        search(log, 3)
    monkeypatch.undo()
    assert log.path.read_bytes() == before
    assert search(log, 3)["seq"] == 3 and log.verify().ok


def test_append_reads_only_the_tail(log: AuditLog, monkeypatch) -> None:
    fill(log, 60)
    size = log.path.stat().st_size
    read = []
    real_pread = os.pread
    monkeypatch.setattr(audit_mod, "_TAIL_CHUNK", 1024)  # the real chunk is 64 KiB: keep the test log small
    monkeypatch.setattr(audit_mod.os, "pread", lambda fd, n, off: (read.append(n), real_pread(fd, n, off))[1])
    assert search(log, 61)["seq"] == 61
    assert 0 < sum(read) <= 1024 < size  # the tail, not the whole log
    monkeypatch.undo()
    assert log.verify().count == 61


@pytest.mark.parametrize(
    "content, line, end",
    [
        (b"", None, 0),
        (b"abc", None, 0),
        (b"one\n", b"one", 4),
        (b"one\ntwo\n", b"two", 8),
        (b"one\ntwo\nthr", b"two", 8),
        (b"x" * 100 + b"\n" + b"y" * 70 + b"\n" + b"z" * 33, b"y" * 70, 172),
    ],
)
def test_last_complete_line_with_small_chunks(tmp_path: Path, monkeypatch, content, line, end) -> None:
    monkeypatch.setattr(audit_mod, "_TAIL_CHUNK", 7)  # lines longer than a chunk must still be found
    path = tmp_path / "f"
    path.write_bytes(content)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert audit_mod._last_complete_line(fd, len(content)) == (line, end)
    finally:
        os.close(fd)


# -- concurrency -------------------------------------------------------------------------------------------


def _append_many(data_dir: str, worker: int, count: int) -> None:
    log = AuditLog.open(Path(data_dir), env=ENV)
    for i in range(count):
        log.append("audit_access", actor={"id": f"W{worker}", "name": "w"}, action="query", query={"i": i})


def test_concurrent_appends_from_processes(data_dir: Path) -> None:
    ctx = multiprocessing.get_context("fork")  # separate processes, each opening the log itself
    procs = [ctx.Process(target=_append_many, args=(str(data_dir), w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    log = AuditLog.open(data_dir, env=ENV)
    entries = list(log.entries())
    assert [e["seq"] for e in entries] == list(range(1, 101))
    for w in range(4):
        assert [e["query"]["i"] for e in entries if e["actor"]["id"] == f"W{w}"] == list(range(25))
    result = log.verify()
    assert result.ok and result.count == 100


def test_concurrent_appends_from_threads(log: AuditLog) -> None:
    threads = [threading.Thread(target=fill, args=(log, 25)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [e["seq"] for e in log.entries()] == list(range(1, 101))
    assert log.verify().ok


# -- purge -------------------------------------------------------------------------------------------------
# The file's own side of it; what a purge removes and records, on every store: tests/store/test_audit_contract.py.


def dated_fill(log: AuditLog, clock: Clock, days: range) -> list[dict]:
    out = []
    for day in days:
        clock.now = T0 + timedelta(days=day)
        out.append(search(log, day + 1))
    return out


def test_purge_removes_old_entries_and_verifies(log: AuditLog, clock: Clock) -> None:
    written = dated_fill(log, clock, range(10))
    log.append("gallery_change", actor="os:admin", action="enroll", subject_id="s1")  # day 9 too
    clock.now = T0 + timedelta(days=20)
    purge = log.purge_before(T0 + timedelta(days=5), actor="os:clerk")
    assert purge["seq"] == 12 and purge["kind"] == "purge"
    assert (purge["removed"], purge["first_seq"], purge["through_seq"]) == (5, 1, 5)
    assert purge["through_mac"] == written[4]["mac"]
    assert purge["removed_kinds"] == {"search": 5}
    remaining = list(log.entries())
    assert [e["seq"] for e in remaining] == [6, 7, 8, 9, 10, 11, 12]
    assert remaining[:5] == written[5:]  # kept entries are byte-for-byte the same
    first_line = json.loads(lines(log)[0])
    assert first_line["kind"] == ANCHOR_KIND and first_line["anchor_seq"] == 5
    result = log.verify()
    assert result.ok and result.count == 7 and result.first_seq == 6 and result.anchor_seq == 5
    assert mode(log.path) == 0o600
    # The chain carries on after a purge.
    assert search(log, 99)["seq"] == 13 and log.verify().ok


def test_purge_with_nothing_to_remove_writes_nothing(log: AuditLog, clock: Clock) -> None:
    dated_fill(log, clock, range(3))
    before = log.path.read_bytes()
    assert log.purge_before(T0 - timedelta(days=1), actor="os:clerk")["removed"] == 0
    assert log.path.read_bytes() == before


def test_purge_refuses_a_broken_log(log: AuditLog, clock: Clock) -> None:
    dated_fill(log, clock, range(5))
    rewrite(log, _edit_field(lines(log), log))
    before = log.path.read_bytes()
    with pytest.raises(AuditError, match="refusing to purge"):
        log.purge_before(T0 + timedelta(days=4), actor="os:clerk")
    assert log.path.read_bytes() == before


def _purged(log: AuditLog, clock: Clock) -> list[bytes]:
    dated_fill(log, clock, range(6))
    clock.now = T0 + timedelta(days=10)
    log.purge_before(T0 + timedelta(days=3), actor="os:clerk")
    assert log.verify().ok
    return lines(log)  # anchor, seq 4, 5, 6, purge 7


def test_purge_marker_cannot_be_dropped(log: AuditLog, clock: Clock) -> None:
    rewrite(log, _purged(log, clock)[1:])
    result = log.verify()
    assert not result.ok and result.bad_seq == 4 and "expected 1" in result.reason


def test_purge_marker_cannot_be_edited(log: AuditLog, clock: Clock) -> None:
    raw = _purged(log, clock)
    anchor = json.loads(raw[0])
    anchor["anchor_seq"] = 4  # pretend entry 4 was purged too...
    raw[0] = canonical(anchor) + b"\n"
    rewrite(log, raw[:1] + raw[2:])  # ...and drop it
    result = log.verify()
    assert not result.ok and "purge marker on line 1: mac mismatch" in result.reason


def test_kept_entries_after_marker_cannot_be_deleted(log: AuditLog, clock: Clock) -> None:
    raw = _purged(log, clock)
    rewrite(log, raw[:1] + raw[2:])
    result = log.verify()
    assert not result.ok and result.bad_seq == 5 and "seq gap" in result.reason


def test_purge_entry_cannot_be_cut_off(log: AuditLog, clock: Clock) -> None:
    raw = _purged(log, clock)
    rewrite(log, raw[:-1])
    result = log.verify()
    assert not result.ok and result.bad_seq == 7 and "no matching purge entry" in result.reason


def test_old_marker_cannot_be_replayed(log: AuditLog, clock: Clock) -> None:
    old_marker = _purged(log, clock)[0]
    dated_fill(log, clock, range(11, 13))
    clock.now = T0 + timedelta(days=30)
    log.purge_before(T0 + timedelta(days=12), actor="os:clerk")
    raw = lines(log)
    rewrite(log, [old_marker] + raw[1:])
    assert not log.verify().ok


def test_marker_must_be_first_line(log: AuditLog, clock: Clock) -> None:
    """A marker mid-file would let a chain skip entries: splice a pre-purge copy's first entry before it."""
    dated_fill(log, clock, range(6))
    old_first = lines(log)[0]
    clock.now = T0 + timedelta(days=10)
    log.purge_before(T0 + timedelta(days=3), actor="os:clerk")
    rewrite(log, [old_first] + lines(log))  # entry 1, marker (through 3), 4, 5, 6, purge 7
    result = log.verify()
    assert not result.ok and result.bad_seq == 2 and "out of place on line 2" in result.reason


# -- queries -----------------------------------------------------------------------------------------------


def test_find_filters(log: AuditLog, clock: Clock) -> None:
    dated_fill(log, clock, range(6))  # requesters U1, U2, U0, U1, U2, U0
    clock.now = T0 + timedelta(days=7)
    log.append("gallery_change", actor="U1", action="remove", subject_id="s9")
    log.record_access({"id": "U2", "name": "Cmdr"}, "query", {"call_number": "24-000003"})
    assert [e["seq"] for e in log.find(request_id="req-3")] == [3]
    assert [e["seq"] for e in log.find(call_number="24-000004")] == [4]
    assert [e["seq"] for e in log.find(requester_id="U1")] == [1, 4, 7]  # searches and the gallery change
    assert [e["seq"] for e in log.find(requester_id="U1", kinds=["search"])] == [1, 4]
    assert [e["seq"] for e in log.find(since=T0 + timedelta(days=2), until=T0 + timedelta(days=4))] == [3, 4]
    assert [e["seq"] for e in log.find(since="2024-01-05T12:00:00Z")] == [5, 6, 7, 8]
    naive = datetime(2024, 1, 6, 12, 0)  # naive means UTC
    assert [e["seq"] for e in log.find(until=naive)] == [1, 2, 3, 4, 5]
    assert [e["seq"] for e in log.find(kinds=["audit_access", "gallery_change"])] == [7, 8]
    assert log.find(request_id="req-3", requester_id="U2") == []
    with pytest.raises(ValueError, match="unknown"):
        log.find(kinds=["nope"])
    with pytest.raises(TypeError, match="datetime"):
        log.find(since=date(2024, 1, 1))  # whose midnight? the caller converts with the configured timezone


def test_record_access(log: AuditLog) -> None:
    entry = log.record_access({"id": "U9", "name": "Lt. Diaz"}, "export", {"since": "2024-01-01"}, rows=12)
    assert entry["kind"] == "audit_access" and entry["seq"] == 1
    assert entry["actor"] == {"id": "U9", "name": "Lt. Diaz"}
    assert entry["action"] == "export" and entry["query"] == {"since": "2024-01-01"} and entry["rows"] == 12
    assert log.verify().ok


def test_kinds_pinned() -> None:
    assert KINDS == ("search", "gallery_change", "purge", "audit_access", "refusal", "review", "alert", "alert_review",
                     "sample_draw", "sample_review")
    assert OUTCOMES == ("candidates", "no_candidate", "denied", "error", "cancelled", "expired", "review")


def test_a_key_file_readable_by_others_is_refused_with_the_fix(tmp_path):
    """A world-readable audit.key lets anyone who can edit the log recompute the chain: refused, with the fix."""
    import os

    from bot.store.audit_log import AuditKeyError

    data = tmp_path / "data"
    AuditLog.open(data, env={}).append("purge", removed=0)
    key = data / "audit" / "audit.key"
    os.chmod(key, 0o644)
    with pytest.raises(AuditKeyError) as info:
        AuditLog.open(data, env={})
    assert "readable by others (mode 0644)" in str(info.value) and f"chmod 600 {key}" in str(info.value)
    os.chmod(key, 0o600)
    assert AuditLog.open(data, env={}).verify().ok
