"""The audit log at scale: interactive reads check only the tail after a verified prefix; `audit verify`, export,
report and bundle check it all."""
from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot.audit.chain import ChainCheck
from bot.audit.refusals import RefusalAggregator
from bot.cli import main as cli
from bot.store import audit_cache
from bot.store import audit_log as audit_mod
from bot.store.audit_cache import PREFIX_NAME
from bot.store.audit_log import AuditLog
from tests.store import test_audit_log as base
from tests.store.test_audit_log import ENV, KEY, Clock

clock, log = base.clock, base.log  # the same fixtures: a settable clock, and a log keyed with KEY

T0 = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)


def search(log: AuditLog, n: int, **extra) -> dict:
    fields = {"request_id": f"FR-{n:010d}", "call_number": f"26-{n % 50:06d}", "outcome": "no_candidate",
              "requester": {"id": f"U{n % 7}", "name": f"Officer {n % 7}"}, "file_id": f"F{n:08d}"}
    fields.update(extra)
    return log.append("search", **fields)


def fill(log: AuditLog, start: int, stop: int) -> None:
    for n in range(start, stop):
        search(log, n)


@pytest.fixture
def fed(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every line the chain checker is given, in order."""
    lines: list[bytes] = []
    real = ChainCheck.feed

    def feed(self, raw):
        lines.append(raw)
        return real(self, raw)

    monkeypatch.setattr(ChainCheck, "feed", feed)
    return lines


def edit_line(log: AuditLog, seq: int, **changes) -> None:
    """Change fields of entry `seq` in place (its MAC no longer matches)."""
    lines = log.path.read_bytes().splitlines(keepends=True)
    i = next(i for i, raw in enumerate(lines) if json.loads(raw).get("seq") == seq)
    obj = json.loads(lines[i])
    obj.update(changes)
    lines[i] = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    log.path.write_bytes(b"".join(lines))


# -- 1. verified prefix ------------------------------------------------------------------------------------


def test_verified_prefix_reads_check_only_the_new_tail(log: AuditLog, fed: list[bytes]) -> None:
    fill(log, 1, 51)
    full = log.verify()
    assert full.ok and full.count == 50 and len(fed) == 50 and full.resumed_after_seq is None
    fill(log, 51, 54)
    fed.clear()
    read = log.verify(use_prefix=True)
    assert len(fed) == 3  # only the entries appended since
    assert (read.ok, read.count, read.first_seq, read.last_seq, read.resumed_after_seq) == (True, 53, 1, 53, 50)
    assert read.last_mac == json.loads(log.path.read_bytes().splitlines()[-1])["mac"]
    fed.clear()
    assert log.verify().count == 53 and len(fed) == 53  # without use_prefix: every line, as `audit verify`


def test_verified_prefix_is_kept_in_a_private_side_file_for_the_next_process(data_dir: Path, log: AuditLog,
                                                                              fed: list[bytes]) -> None:
    fill(log, 1, 21)
    assert log.verify(use_prefix=True).ok and len(fed) == 20  # nothing remembered yet: a full check
    side = data_dir / "audit" / PREFIX_NAME
    assert stat.S_IMODE(side.stat().st_mode) == 0o600
    assert json.loads(side.read_bytes())["state"]["last_seq"] == 20
    search(log, 21)
    fed.clear()
    again = AuditLog.open(data_dir, env=ENV)  # another process: only the side file to go on
    result = again.verify(use_prefix=True)
    assert result.ok and result.count == 21 and result.resumed_after_seq == 20 and len(fed) == 1


def test_verified_prefix_tampering_in_the_tail_is_still_caught_by_reads(log: AuditLog) -> None:
    fill(log, 1, 11)
    assert log.verify().ok
    fill(log, 11, 16)
    edit_line(log, 13, call_number="26-999999")
    result = log.verify(use_prefix=True)
    assert not result.ok and result.bad_seq == 13 and result.reason == "mac mismatch"
    assert result.resumed_after_seq == 10
    assert not log.verify(use_prefix=True).ok  # a failed check never moves the prefix past the bad entry


def test_verified_prefix_an_edit_before_it_that_moves_the_bytes_forces_a_full_check(log: AuditLog,
                                                                                   fed: list[bytes]) -> None:
    fill(log, 1, 11)
    assert log.verify().ok
    edit_line(log, 4, call_number="26-1")  # shorter: the line at the remembered offset is no longer entry 10
    fed.clear()
    result = log.verify(use_prefix=True)
    assert not result.ok and result.bad_seq == 4 and result.resumed_after_seq is None and len(fed) == 4


def test_verified_prefix_a_same_length_edit_before_it_is_found_by_audit_verify(
    log: AuditLog, data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The documented limit of reads: an edit before the prefix that keeps every byte offset passes them;
    `python -m bot audit verify` checks every line and finds it."""
    fill(log, 1, 11)
    assert log.verify().ok
    edit_line(log, 4, call_number="26-999999")  # same length as "26-000004"
    assert log.verify(use_prefix=True).ok  # reads: only the tail
    monkeypatch.setenv("BOT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("BOT_AUDIT_KEY", KEY)
    assert cli.main(["audit", "verify"]) == cli.EXIT_ERROR
    assert "BROKEN at entry 4: mac mismatch" in capsys.readouterr().err


def test_verified_prefix_a_shorter_file_or_a_forged_side_file_forces_a_full_check(
    data_dir: Path, log: AuditLog, fed: list[bytes]
) -> None:
    fill(log, 1, 11)
    assert log.verify().ok
    raw = log.path.read_bytes().splitlines(keepends=True)
    log.path.write_bytes(b"".join(raw[:8]))  # whole entries cut off the end: shorter than the prefix
    fed.clear()
    result = AuditLog.open(data_dir, env=ENV).verify(use_prefix=True)
    assert result.ok and result.count == 8 and result.resumed_after_seq is None and len(fed) == 8

    fill(log, 9, 12)
    assert log.verify().ok
    side = data_dir / "audit" / PREFIX_NAME
    forged = json.loads(side.read_bytes())
    forged["state"]["count"] = 500  # without the key, the side file cannot be changed unnoticed
    side.write_text(json.dumps(forged))
    fed.clear()
    result = AuditLog.open(data_dir, env=ENV).verify(use_prefix=True)
    assert result.ok and result.count == 11 and result.resumed_after_seq is None and len(fed) == 11


def test_verified_prefix_is_dropped_by_a_purge(data_dir: Path, log: AuditLog, clock: Clock,
                                               fed: list[bytes]) -> None:
    clock.now = T0
    for n in range(1, 11):
        clock.now = T0 + timedelta(days=n)
        search(log, n)
    assert log.verify().ok and (data_dir / "audit" / PREFIX_NAME).exists()
    purge = log.purge_before(T0 + timedelta(days=5, hours=1), actor="os:clerk")
    assert purge["removed"] == 5 and not (data_dir / "audit" / PREFIX_NAME).exists()
    fed.clear()
    result = log.verify(use_prefix=True)
    assert result.ok and result.resumed_after_seq is None and result.count == 6 and result.anchor_seq == 5
    search(log, 11)
    fed.clear()
    result = log.verify(use_prefix=True)
    assert result.ok and result.resumed_after_seq == 11 and result.count == 7 and len(fed) == 1


def test_verified_prefix_cli_evidence_and_audit_verify_check_every_line(
    log: AuditLog, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fed: list[bytes], capsys
) -> None:
    fill(log, 1, 41)
    monkeypatch.setenv("BOT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("BOT_AUDIT_KEY", KEY)
    monkeypatch.setenv("SUDO_USER", "auditor")
    assert cli.main(["audit", "verify"]) == cli.EXIT_OK and len(fed) == 40
    fed.clear()
    assert cli.main(["audit", "export", "--out", str(tmp_path / "out.csv")]) == cli.EXIT_OK
    # Evidence is never produced on trust: every line before the export, then its own audit_access entry.
    assert len(fed) == 40 + 1
    fed.clear()
    assert cli.main(["audit", "bundle", "FR-0000000007", str(tmp_path / "b.zip")]) == cli.EXIT_OK
    assert len(fed) == 41 + 1  # every line first, then the bundle's own entry for its verification.json
    fed.clear()
    assert cli.main(["audit", "verify"]) == cli.EXIT_OK and len(fed) == 42
    capsys.readouterr()


# -- 3. lookup index ---------------------------------------------------------------------------------------


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every line the log parses as an entry, in order."""
    lines: list[bytes] = []
    real = audit_mod._parse_line
    monkeypatch.setattr(audit_mod, "_parse_line", lambda raw: (lines.append(raw), real(raw))[1])
    return lines


@pytest.fixture
def later_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entry kinds of later issues (`refusal`, `review`), unknown to this version of the log; and no fsync
    (thousands of entries are written; durability is tested elsewhere)."""
    monkeypatch.setattr(audit_mod, "KINDS", (*audit_mod.KINDS, "refusal", "review"))
    monkeypatch.setattr(audit_mod.os, "fsync", lambda fd: None)


def big_log(log: AuditLog, count: int = 3000) -> None:
    """`count` entries of every kind: searches (a request id, file id and call number each; every tenth
    request has a second entry), gallery changes (no ids), reads of the audit naming a request id only inside
    their query (not a match), and refusal / review entries of later issues carrying a request id."""
    for n in range(1, count + 1):
        rid = f"FR-{n // 10 if n % 10 == 0 else n:010d}"
        if n % 97 == 0:
            log.append("gallery_change", actor="os:admin", action="enroll", subject_id=f"S{n}")
        elif n % 89 == 0:
            log.record_access({"id": "os:auditor", "name": "a"}, "bundle", {"request_id": rid})
        elif n % 83 == 0:
            log.append("refusal", request_id=rid, step="purpose", reason="no purpose", text="x")
        elif n % 79 == 0:
            log.append("review", request_id=rid, action="queued", by="system")
        else:
            search(log, n, request_id=rid, file_id=f"F{n % 1500:08d}")


def old_scan(entries: list[dict] | AuditLog, name: str, value: str, kinds: tuple[str, ...] | None = None) -> list[dict]:
    """What find() returned before the index: every entry read, the field compared at the top level."""
    entries = list(entries.entries()) if isinstance(entries, AuditLog) else entries
    return [e for e in entries if e.get(name) == value and (kinds is None or e["kind"] in kinds)]


LOOKUPS = [("request_id", f"FR-{n:010d}") for n in (1, 2, 50, 83, 158, 166, 237, 1999, 2999, 3001)] + [
    ("file_id", f"F{n:08d}") for n in (0, 1, 7, 1499, 1500)] + [("call_number", "26-000007")]


def test_lookup_index_reads_only_the_indexed_lines_and_matches_the_old_scan(
    log: AuditLog, parsed: list[bytes], later_kinds: None
) -> None:
    big_log(log)
    everything = list(log.entries())
    log.find(request_id="FR-warm")  # the first lookup of a process builds the index from the file
    for name, value in LOOKUPS:
        for kinds in (None, ("search",), ("refusal", "review")):
            parsed.clear()
            assert log.find(**{name: value}, kinds=kinds) == old_scan(everything, name, value, kinds)
            # Only the lines indexed for the value were read, whatever their kind.
            assert len(parsed) == len(old_scan(everything, name, value)), (name, value)
    assert {e["kind"] for e in log.find(request_id=f"FR-{83:010d}")} == {"refusal"}
    assert {e["kind"] for e in log.find(request_id=f"FR-{79:010d}")} == {"review"}
    assert log.find(request_id=f"FR-{89:010d}") == []  # named only inside an audit_access query
    both = log.find(request_id="FR-0000000007", file_id="F00000007")
    assert [e["seq"] for e in both] == [e["seq"] for e in old_scan(everything, "request_id", "FR-0000000007")
                                        if e.get("file_id") == "F00000007"] and len(both) == 1


@pytest.mark.usefixtures("later_kinds")
def test_lookup_index_grows_from_the_tail_and_is_rebuilt_by_a_new_process(
    data_dir: Path, log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    big_log(log, 500)
    indexed: list[int] = []
    real = audit_cache.OffsetIndex.add
    monkeypatch.setattr(audit_cache.OffsetIndex, "add", lambda self, off, raw: (indexed.append(off), real(self, off, raw))[1])
    assert len(log.find(request_id="FR-0000000001")) == 2 and len(indexed) == 500
    fill(log, 501, 506)
    indexed.clear()
    assert [e["seq"] for e in log.find(request_id="FR-0000000503")] == [503] and len(indexed) == 5
    indexed.clear()
    assert log.find(request_id="FR-0000000001") == log.find(request_id="FR-0000000001") and indexed == []
    fresh = AuditLog.open(data_dir, env=ENV)
    assert fresh.find(file_id="F00000503") == old_scan(log, "file_id", "F00000503") and len(indexed) == 505


def test_lookup_index_follows_a_purge_and_a_file_rewritten_in_place(log: AuditLog, clock: Clock) -> None:
    clock.now = T0
    for n in range(1, 41):
        clock.now = T0 + timedelta(days=n)
        search(log, n, request_id=f"FR-{n % 20:010d}")
    assert len(log.find(request_id="FR-0000000003")) == 2
    log.purge_before(T0 + timedelta(days=10, hours=1), actor="os:clerk")
    for name, value in (("request_id", "FR-0000000003"), ("request_id", "FR-0000000015"), ("file_id", "F00000005")):
        assert log.find(**{name: value}) == old_scan(log, name, value)
    lines = log.path.read_bytes().splitlines(keepends=True)
    log.path.write_bytes(b"".join(lines[:5] + lines[8:]))  # the same file (inode), lines gone from the middle
    for name, value in (("request_id", "FR-0000000015"), ("request_id", "FR-0000000019"), ("file_id", "F00000031")):
        assert log.find(**{name: value}) == old_scan(log, name, value)


@pytest.mark.usefixtures("later_kinds")
def test_lookup_index_serves_the_reshare_note_and_the_restart_reconciliation(
    log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack's lookups by file id (a refused photo shared again) and by request id (entries a crash left
    unwritten, at start) go through the index: a scan of the log would fail here."""
    from bot.slack.flow import intake, jobs

    big_log(log, 300)
    log.find(request_id="warm")
    monkeypatch.setattr(AuditLog, "entries", lambda self: pytest.fail("the whole log was read"))
    rt = SimpleNamespace(core=SimpleNamespace(audit=log, refusals=RefusalAggregator(log, 10)), store=SimpleNamespace(
        by_file_id=lambda file_id: None,
        all=lambda: [SimpleNamespace(images=[SimpleNamespace(outcome="denied", request_id="FR-0000000011"),
                                             SimpleNamespace(outcome="expired", request_id="FR-UNWRITTEN1"),
                                             SimpleNamespace(outcome="candidates", request_id="FR-UNWRITTEN2")])]))
    assert intake.earlier_request_id(rt, "F00000012") == "FR-0000000012"
    assert intake.earlier_request_id(rt, "F-NEVER-SEEN") is None
    assert [image.request_id for _, image in jobs.audit_gaps(rt)] == ["FR-UNWRITTEN1"]


# -- 2. chain head published outside the data dir --------------------------------------------------------


@pytest.fixture
def run_cli(data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    """`python -m bot ARGS` in-process on this data dir: (exit code, stdout, stderr)."""
    monkeypatch.setenv("BOT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("BOT_AUDIT_KEY", KEY)

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = cli.main(list(args))
        except SystemExit as exc:  # a usage error
            code = exc.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_chain_head_cut_entries_pass_plain_verify_but_fail_verify_head(log: AuditLog, run_cli) -> None:
    fill(log, 1, 11)
    head = log.head()
    assert head is not None and head["seq"] == 10 and head["mac"] == log.verify().last_mac
    code, out, _ = run_cli("audit", "verify", "--head", f"10:{head['mac']}")
    assert code == cli.EXIT_OK and f"head 10:{head['mac']}" in out and "holds the published head: entry 10" in out
    assert run_cli("audit", "verify", "--head", f"10:{head['mac'][:16]}")[0] == cli.EXIT_OK  # a cut MAC will do
    seventh = log.find(request_id="FR-0000000007")[0]["mac"]

    lines = log.path.read_bytes().splitlines(keepends=True)
    log.path.write_bytes(b"".join(lines[:7]))  # entries 8-10 cut off the end: the chain itself cannot tell
    assert run_cli("audit", "verify")[0] == cli.EXIT_OK
    code, _, err = run_cli("audit", "verify", "--head", f"10:{head['mac']}")
    assert code == cli.EXIT_ERROR
    assert "entry 10 is missing (the log ends at entry 7)" in err and "cut off the end" in err
    assert run_cli("audit", "verify", "--head", f"7:{seventh}")[0] == cli.EXIT_OK  # an older head still holds


def test_chain_head_of_a_replaced_log_does_not_match(data_dir: Path, log: AuditLog, run_cli) -> None:
    fill(log, 1, 6)
    published = log.head()
    log.path.unlink()
    fill(log, 100, 106)  # a new log with the same key: it verifies, and has an entry 5 with another MAC
    code, _, err = run_cli("audit", "verify", "--head", f"5:{published['mac']}")
    assert code == cli.EXIT_ERROR and "does NOT match the published head: entry 5 has MAC" in err
    log.path.unlink()
    code, _, err = run_cli("audit", "verify", "--head", f"5:{published['mac']}")
    assert code == cli.EXIT_ERROR and "entry 5 is missing (the log has no entry)" in err


@pytest.mark.parametrize("head", ["10", "10:", "x:9f86d081884c7d65", "10:9f86d08", "10:zz86d081884c7d65", "0:" + "a" * 64])
def test_chain_head_in_another_form_is_a_usage_error(log: AuditLog, run_cli, head: str) -> None:
    fill(log, 1, 3)
    code, _, err = run_cli("audit", "verify", "--head", head)
    assert code == cli.EXIT_ERROR and "SEQ:MAC" in err


def test_chain_head_removed_by_a_purge_is_said_so(log: AuditLog, clock: Clock, run_cli) -> None:
    for n in range(1, 11):
        clock.now = T0 + timedelta(days=n)
        search(log, n)
    entries = {e["seq"]: e["mac"] for e in log.entries()}
    log.purge_before(T0 + timedelta(days=5, hours=1), actor="os:clerk")  # entries 1-5 go
    assert run_cli("audit", "verify", "--head", f"5:{entries[5]}")[0] == cli.EXIT_OK  # kept in the purge entry
    code, _, err = run_cli("audit", "verify", "--head", f"3:{entries[3]}")
    assert code == cli.EXIT_ERROR and "cannot be checked: entry 3 was removed by a retention purge" in err
    assert run_cli("audit", "verify", "--head", f"8:{entries[8]}")[0] == cli.EXIT_OK
