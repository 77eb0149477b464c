"""`python -m bot store copy [--to URL]` (issue 17 item 3; CONTRACTS ### 13): a data dir into an EMPTY database,
identical chain heads, refused while the data dir's server lock is held, MOVED_TO afterwards (the file store then
refuses to start), and nothing written when it is refused."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from bot.cli.main import main
from bot.config import Settings
from bot.faces.gallery import Gallery
from bot.store.audit_log import AuditLog
from bot.store.backend import Backend, StoreError
from bot.store.calls import CallIndexStore, OutboxStore
from bot.store.dialogs import DialogStore
from bot.store.disk import hold_data_dir
from bot.store.pg.audit import PgAuditLog
from bot.store.pg.cache import PgProbeCache, PgSheetCache
from bot.store.pg.dialogs import PgDialogStore
from bot.store.pg.gallery import PgGallery
from bot.store.pg.records import PgApprovalStore, PgExaminationStore
from bot.store.pg.slack import PgCallIndexStore, PgOutboxStore
from bot.store.probes import CachedProbe, ProbeCache, SheetCache
from bot.store.records import ApprovalStore, ExaminationStore
from tests.pg_fixtures import StepClock
from tests.store.test_dialogs_contract import cancelled, upload
from tests.store.test_gallery_contract import fill, sha, unit
from tests.store.test_records_contract import pending, queued

KEY = "the-key-that-signed-this-data-dir-0123"


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A data dir with audit entries, two dialogs (one ended) and a dedupe claim, a review and an approval;
    the environment of someone running `store copy` on it."""
    data = tmp_path / "data"
    clock = StepClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC), timedelta(minutes=7))
    log = AuditLog.open(data, {"BOT_AUDIT_KEY": KEY}, clock=clock)
    for i in range(1, 6):
        log.append("search", outcome="no_candidate", request_id=f"FR-{i}", call_number=f"26-00000{i}",
                   requester={"id": f"U{i}", "name": "Ofc. Reyes"})
    dialogs = DialogStore(data / "slack" / "dialogs.json")
    dialogs.put(upload("1700000000.000100"))
    dialogs.put(cancelled(upload("1700000000.000200", minutes=3), minutes=4))
    dialogs.claim("event:Ev001", datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    dialogs.close()
    exams, approvals = ExaminationStore(data / "examinations.json"), ApprovalStore(data / "approvals.json")
    exams.put(queued("FR-5"))
    approvals.put(pending("FR-6"))
    exams.close()
    approvals.close()
    calls, outbox = CallIndexStore(data), OutboxStore(data)  # a call indexed, a post still waiting for Slack
    calls.put([{"call_number": "26-000001", "thread_ts": "1700000000.000900", "first_seen": "2026-03-01T12:00:00Z",
                "source": "dispatch"}])
    outbox.add({"call_number": "26-000001", "message": {"text": "queued while Slack was down"}, "attempts": 2,
                "post_id": "P-WAITING-1"})
    calls.close()
    outbox.close()
    ProbeCache(data).put("FR-7", CachedProbe("cd" * 32, 20, 30, [{"index": 1}], unit(7).reshape(1, -1), [b"crop"]))
    SheetCache(data).put("FR-5", b"\xff\xd8 a comparison sheet")
    with Gallery(data) as gallery:  # subjects A (two images), B and C, and a face crop
        fill(gallery)
        gallery.save_thumbnail(sha(1), b"\xff\xd8 a face crop")
    monkeypatch.setenv("BOT_DATA_DIR", str(data))
    monkeypatch.setenv("BOT_AUDIT_KEY", KEY)
    return data


def _app_stores(db):
    connect = lambda: psycopg.connect(db.app_url)
    return (PgAuditLog(connect, key=KEY.encode()), PgDialogStore(connect), PgExaminationStore(connect),
            PgApprovalStore(connect))


def test_store_copy_round_trip_gives_identical_heads_and_marks_the_data_dir_moved(data_dir, pg_database, monkeypatch,
                                                                                  capsys):
    monkeypatch.setenv("BOT_DATABASE_URL", pg_database.owner_url)  # an unmigrated database: the copy migrates it
    file_log = AuditLog.open(data_dir, {"BOT_AUDIT_KEY": KEY})
    head = file_log.head()
    assert main(["store", "copy"]) == 0
    out = capsys.readouterr().out
    assert f"both verify to chain head {head['seq']}:{head['mac']}" in out and "5 audit entries" in out
    assert "2 dialogs" in out and "1 dedupe claims" in out and "1 examinations" in out and "1 approvals" in out
    assert pg_database.owner_url not in out

    log, dialogs, exams, approvals = _app_stores(pg_database)  # what the replicas will read, as frbot_app
    assert log.head() == head and log.verify().ok and log.verify().count == 5
    assert list(log.lines()) == [line.rstrip(b"\n") for line in file_log.path.read_bytes().splitlines(True)]
    files = DialogStore(data_dir / "slack" / "dialogs.json")
    assert dialogs.all() == files.all() and dialogs.claimed("event:Ev001")
    assert exams.all() == ExaminationStore(data_dir / "examinations.json").all()
    assert approvals.all() == ApprovalStore(data_dir / "approvals.json").all()
    assert "3 subjects" in out and "4 enrolled images" in out and "1 face crops" in out
    assert "1 indexed calls" in out and "1 queued posts" in out and "1 cached probes" in out
    assert "1 comparison sheets" in out
    connect = lambda: psycopg.connect(pg_database.app_url)
    assert PgCallIndexStore(connect).all() == CallIndexStore(data_dir).all()
    [post] = PgOutboxStore(connect).all()
    assert post["post_id"] == "P-WAITING-1" and post["attempts"] == 2  # delivered once, by its id
    probe = PgProbeCache(connect).get("FR-7")
    assert probe is not None and probe.crops == [b"crop"] and (probe.encodings == unit(7)).all()
    assert PgSheetCache(connect).get("FR-5") == b"\xff\xd8 a comparison sheet"
    with Gallery(data_dir) as files, PgGallery(lambda: psycopg.connect(pg_database.app_url),
                                                data_dir.parent / "replica-cache") as moved:
        assert moved.subjects() == files.subjects() and moved.model == files.model
        strip = lambda rows: [{k: v for k, v in r.items() if k not in ("key", "encoding")} for r in rows]
        assert strip(moved.images()) == strip(files.images())  # enrollment times and enrollers kept
        assert all((a["encoding"] == b["encoding"]).all() for a, b in zip(moved.images(), files.images()))
        assert moved.thumbnail(sha(1)) == files.thumbnail(sha(1))
        probe = unit(3)  # subject B's own template: found first on both, at the same distance
        assert [(c.subject_id, c.distance) for c in moved.search(probe, threshold=0.55, max_candidates=3)] == \
            [(c.subject_id, c.distance) for c in files.search(probe, threshold=0.55, max_candidates=3)]

    # The data dir now points at the database: the file store refuses to start, a second copy is refused.
    assert (data_dir / "MOVED_TO").exists()
    with pytest.raises(StoreError, match="moved to localhost/frbot_test"):
        Backend.of(Settings(data_dir=data_dir), {}).check_ready()
    monkeypatch.delenv("BOT_DATABASE_URL")
    assert main(["audit", "verify"]) == 1
    assert "were moved to" in capsys.readouterr().err


def test_a_purged_log_goes_over_with_its_marker_and_verifies_to_the_same_head(data_dir, pg_database, monkeypatch,
                                                                               capsys):
    file_log = AuditLog.open(data_dir, {"BOT_AUDIT_KEY": KEY}, clock=lambda: datetime(2027, 6, 1, tzinfo=UTC))
    purge = file_log.purge_before(datetime(2026, 3, 1, 12, 20, tzinfo=UTC), "os:admin")  # the first two entries
    assert purge["removed"] == 2 and file_log.verify().ok
    monkeypatch.setenv("BOT_DATABASE_URL", pg_database.owner_url)
    assert main(["store", "copy"]) == 0
    log = _app_stores(pg_database)[0]
    result = log.verify()
    assert result.ok and result.first_seq == 3 and log.head() == file_log.head()
    assert "4 audit entries" in capsys.readouterr().out  # 3 kept + the purge entry; the marker is not an entry


def test_a_database_holding_records_is_refused_and_nothing_changes(data_dir, pg_migrated, monkeypatch, capsys):
    other = PgAuditLog(lambda: psycopg.connect(pg_migrated.app_url), key=KEY.encode())
    mine = other.append("audit_access", actor={"id": "U9"}, action="export", query={})
    monkeypatch.setenv("BOT_DATABASE_URL", pg_migrated.owner_url)
    assert main(["store", "copy"]) == 1
    err = capsys.readouterr().err
    assert "already holds records (audit_entries)" in err and "nothing was copied" in err
    assert other.head()["mac"] == mine["mac"] and other.last_seq() == 1
    assert not (data_dir / "MOVED_TO").exists()
    Backend.of(Settings(data_dir=data_dir), {}).check_ready()  # still served from the files


def test_store_copy_is_refused_while_a_server_holds_the_data_dir(data_dir, pg_database, monkeypatch, capsys):
    monkeypatch.setenv("BOT_DATABASE_URL", pg_database.owner_url)
    with hold_data_dir(data_dir):
        assert main(["store", "copy"]) == 1
    assert "another server" in capsys.readouterr().err
    with psycopg.connect(pg_database.owner_url) as conn:  # not even migrated: nothing was touched
        assert conn.execute("SELECT to_regclass('audit_entries')").fetchone()[0] is None
    assert not (data_dir / "MOVED_TO").exists()


def test_a_broken_log_is_not_copied_and_the_copy_rolls_back(data_dir, pg_migrated, monkeypatch, capsys):
    path = data_dir / "audit" / "audit.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"U3"', b'"U8"'))
    monkeypatch.setenv("BOT_DATABASE_URL", pg_migrated.owner_url)
    assert main(["store", "copy"]) == 1
    assert "broken at entry 3 (mac mismatch)" in capsys.readouterr().err
    log, dialogs, _, _ = _app_stores(pg_migrated)
    assert log.last_seq() == 0 and dialogs.all() == []  # entries 1-2 went in, then the whole copy rolled back


def test_a_password_after_to_is_refused(data_dir, capsys):
    assert main(["store", "copy", "--to", "postgresql://frbot_owner:hunter2@db.example/frbot"]) == 1
    err = capsys.readouterr().err
    assert "carries a password" in err and "hunter2" not in err
