"""bot/review.py: /frs queries, export (CSV/JSONL), monthly report and chart, discovery bundle; all audited."""
from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from bot import policy, wording
from bot.audit.entries import OUTCOMES
from bot.config import Settings
from bot.oversight import monthly, review
from bot.service import Core, Requester, record_denied, record_ended
from bot.store.audit_log import AuditLog

KEY = "review-test-key-0123456789abcdef"
ENV = {"BOT_AUDIT_KEY": KEY}
TZ = "America/Los_Angeles"
STAFF = {"id": "U0CAPTAIN", "name": "Capt. Reyes"}
PERMALINK = "https://pd.slack.com/archives/C0CASE/p1772470740000100"
AWKWARD = 'Robbery at "Joe\'s", 5th & Main,\nsuspect fled 🚓 — see RMS 26-4411; =cmd|\' /C calc\'!A0'


class Clock:
    """Settable clock: entries are stamped at chosen instants without waiting."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def source(thread_ts: str = "1772470740.000100", uploaded_at: str = "2026-03-02T16:59:00Z") -> dict:
    """The Slack source fields a request carries (as the Slack flow records them)."""
    return {"source": "slack", "channel": "C0CASE", "thread_ts": thread_ts, "permalink": PERMALINK,
            "file_id": "F0PHOTO1", "file_name": "doorbell.jpg", "call_thread_ts": "1772470000.000200",
            "uploaded_at": uploaded_at, "answer_times": {"call_number": uploaded_at, "attestation": uploaded_at}}


def answers(call: str = "26-012345", purpose: str | None = "investigation", just: str = AWKWARD) -> policy.Answers:
    return policy.Answers(call_number=call, purpose=purpose, justification=just, attested=True)


def search_entry(log: AuditLog, clock: Clock, when: datetime, *, request_id: str, requester: dict,
                 candidates: list[tuple[str, float]], seconds: int, purpose: str = "investigation",
                 call: str = "26-012345", just: str = AWKWARD,
                 model: object = "dlib_face_recognition_resnet_model_v1") -> dict:
    """A search that ran, with the fields bot.service.search_face records."""
    from bot.service import policy_fields

    clock.now = when
    uploaded = when.timestamp() - seconds
    up = datetime.fromtimestamp(uploaded, UTC).isoformat().replace("+00:00", "Z")
    faces = [{"index": 1, "box": {"top": 40, "right": 180, "bottom": 160, "left": 60}, "size": 120, "quality": "ok"},
             {"index": 2, "box": {"top": 50, "right": 400, "bottom": 150, "left": 300}, "size": 100,
              "quality": "ok"}]
    return log.append(
        "search",
        outcome="candidates" if candidates else "no_candidate",
        request_id=request_id,
        requester=requester,
        **source(uploaded_at=up),
        **policy_fields(answers(call, purpose, just)),
        probe_sha256="9f" * 32,
        faces=faces,
        face_index=2,
        model=model,
        versions={"face_recognition": "1.3.0", "dlib": "19.24.6", "bot": "0.1.0"},
        threshold=0.55,
        gallery_subjects=120,
        gallery_images=342,
        candidates=[{"rank": i, "subject_id": s, "distance": d} for i, (s, d) in enumerate(candidates, 1)],
        result_at=when.isoformat().replace("+00:00", "Z"),
    )


U1 = {"id": "U0OFFICER1", "name": 'Dana "D" O\'Neil, Jr. 🚓'}
U2 = {"id": "U0OFFICER2", "name": "Sam Lee"}
U3 = {"id": "U0OFFICER3", "name": "<!channel> Pat"}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log(data_dir: Path, clock: Clock) -> AuditLog:
    return AuditLog.open(data_dir, env=ENV, clock=clock)


@pytest.fixture
def march(log: AuditLog, clock: Clock, data_dir: Path) -> AuditLog:
    """A log for March 2026 (Los Angeles) with every outcome, plus entries just outside the month."""
    core = Core(Settings().with_data_dir(data_dir), _audit=log)

    def at(*args: int) -> datetime:
        return datetime(*args, tzinfo=UTC)

    # Feb 28 23:30 PST: belongs to February locally although it is March 1 in UTC.
    search_entry(log, clock, at(2026, 3, 1, 7, 30), request_id="FR-FEB", requester=U2, candidates=[], seconds=5)
    # W10: a search with two candidates, 60 s from upload to result.
    search_entry(log, clock, at(2026, 3, 2, 17, 0), request_id="FR-A1", requester=U1,
                 candidates=[("S-0042", 0.41), ("S-0107", 0.52)], seconds=60)
    # W11: no candidate, 120 s; another call.
    search_entry(log, clock, at(2026, 3, 10, 6, 30), request_id="FR-B2", requester=U2, candidates=[],
                 seconds=120, purpose="threat", call="26-099999")
    # W12: one candidate, 30 s; refused (no purpose); gallery change (not a request).
    search_entry(log, clock, at(2026, 3, 16, 20, 0), request_id="FR-C3", requester=U1,
                 candidates=[("S-0042", 0.38)], seconds=30, purpose="identify")
    clock.now = at(2026, 3, 17, 18, 0)
    record_denied(core, request_id="FR-D4", answers=answers(purpose=None), requester=Requester(**U2),
                  reasons=[wording.PURPOSE_MISSING], source=source())
    log.append("gallery_change", actor="os:admin", action="enroll", subject_id="S-0200", image_sha256="aa" * 32)
    # W13: cancelled and expired.
    clock.now = at(2026, 3, 24, 18, 0)
    record_ended(core, outcome="cancelled", request_id="FR-E5", answers=answers(), requester=Requester(**U3),
                 source=source())
    clock.now = at(2026, 3, 25, 18, 0)
    record_ended(core, outcome="expired", request_id="FR-F6", answers=answers(purpose="threat"),
                 requester=Requester(**U1), source=source())
    # W14: Mar 31 23:30 PDT (April 1 in UTC) is still March locally: an error.
    clock.now = at(2026, 4, 1, 6, 30)
    record_ended(core, outcome="error", request_id="FR-G7", answers=answers(), requester=Requester(**U3),
                 source=source(), error="No face was found", faces=[])
    # April 1 00:30 PDT: April.
    search_entry(log, clock, at(2026, 4, 1, 7, 30), request_id="FR-APR", requester=U2, candidates=[], seconds=5)
    return log


def last(log: AuditLog) -> dict:
    return list(log.entries())[-1]


# --- Queries for /frs --------------------------------------------------------------------------------------------


def test_audit_by_call_returns_the_calls_requests_and_is_audited(march: AuditLog):
    found = review.audit_by_call(march, "26-012345", STAFF)
    ids = [e["request_id"] for e in found]
    assert ids == ["FR-FEB", "FR-A1", "FR-C3", "FR-D4", "FR-E5", "FR-F6", "FR-G7", "FR-APR"]
    assert all(e["kind"] == "search" for e in found)
    access = last(march)
    assert access["kind"] == "audit_access" and access["action"] == "query"
    assert access["actor"] == STAFF and access["query"] == {"call_number": "26-012345"}
    assert access["results"] == 8
    assert review.audit_by_call(march, "26-000000", Requester(**STAFF)) == []
    assert last(march)["results"] == 0 and last(march)["actor"] == STAFF


def test_audit_by_user_since_a_local_day(march: AuditLog):
    everything = review.audit_by_user(march, "U0OFFICER2", None, STAFF, TZ)
    assert [e["request_id"] for e in everything] == ["FR-FEB", "FR-B2", "FR-D4", "FR-APR"]
    # FR-B2 was at 2026-03-10 06:30 UTC = March 9, 23:30 in Los Angeles: before the local day March 10.
    since = review.audit_by_user(march, "U0OFFICER2", date(2026, 3, 10), STAFF, TZ)
    assert [e["request_id"] for e in since] == ["FR-D4", "FR-APR"]
    access = last(march)
    assert access["action"] == "query" and access["actor"] == STAFF
    assert access["query"] == {"requester_id": "U0OFFICER2", "since": "2026-03-10"} and access["results"] == 2
    # A UTC reading of the same day would have included FR-B2.
    assert "FR-B2" in [e["request_id"] for e in review.audit_by_user(march, "U0OFFICER2", date(2026, 3, 10),
                                                                     STAFF, "UTC")]


def test_audit_lines_show_local_time_id_requester_purpose_outcome_and_count(march: AuditLog):
    entries = review.audit_by_call(march, "26-012345", STAFF)
    lines = wording.audit_lines(entries, TZ)
    assert len(lines) == len(entries)
    a1 = lines[1]
    assert a1.startswith("2026-03-02 09:00 PST · FR-A1 · ")
    assert "Dana \"D\" O'Neil, Jr. 🚓 (U0OFFICER1)" in a1
    assert "call 26-012345" in a1 and "purpose investigation" in a1
    assert a1.endswith("candidates returned, 2 candidates")
    assert lines[3].endswith("refused under GO 375.01") and "purpose not given" in lines[3]
    assert "2026-03-31 23:30 PDT" in lines[6] and lines[6].endswith("failed (error)")
    # Echoed names cannot ping a channel.
    assert "&lt;!channel&gt; Pat" in lines[4] and "<!channel>" not in "".join(lines)
    assert wording.audit_lines([], TZ) == []
    # Without a timezone the zone is said (UTC), never implied.
    assert wording.audit_lines(entries[1:2])[0].startswith("2026-03-02 17:00 UTC")


def test_an_examined_request_is_listed_by_what_was_released_not_by_what_the_examiner_saw(log: AuditLog,
                                                                                         clock: Clock):
    """Two candidates went to the examiner; one lead was released, one ruled out: the line counts one."""
    search_entry(log, clock, datetime(2026, 3, 2, 17, 0, tzinfo=UTC), request_id="FR-R1", requester=U2,
                 candidates=[("S-0042", 0.41), ("S-0107", 0.52)], seconds=60)
    log.append("search", outcome="review", request_id="FR-R2", requester=U2, call_number="26-012345",
               purpose="investigation", candidates=[{"rank": 1, "subject_id": "S-0042", "distance": 0.41},
                                                    {"rank": 2, "subject_id": "S-0107", "distance": 0.52}])
    for action, fields in (("queued", {}), ("claim", {}),
                           ("decision", {"subject_id": "S-0042", "decision": "possible_lead", "note": "ear, mole"}),
                           ("decision", {"subject_id": "S-0107", "decision": "not_same_person"}),
                           ("release", {"round": 1, "final": True, "shown": ["S-0042"], "leads": ["S-0042"],
                                        "ruled_out": 1})):
        log.append("review", request_id="FR-R2", action=action, by="U0EXAMINER", call_number="26-012345", **fields)
    entries = review.audit_by_user(log, "U0OFFICER2", None, STAFF, TZ)
    direct, examined = wording.audit_lines(entries, TZ)
    assert direct.endswith("candidates returned, 2 candidates")  # a direct search: what the requester got
    assert examined.endswith("candidates returned, 1 candidate, 1 ruled out by the examiners")


# --- Export ------------------------------------------------------------------------------------------------------


def read_csv(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf"), "CSV must start with a UTF-8 byte-order mark for Excel"
    text = data.decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_csv_round_trips_awkward_text_and_neutralises_formulas(log: AuditLog, clock: Clock):
    sly = {"id": "U0SLY", "name": "@SUM(1+1)*cmd|' /C calc'!A0"}
    search_entry(log, clock, datetime(2026, 3, 2, 17, 0, tzinfo=UTC), request_id="FR-X1", requester=U1,
                 candidates=[("S-0042", 0.41), ("S-0107", 0.52)], seconds=60, just=AWKWARD)
    search_entry(log, clock, datetime(2026, 3, 3, 17, 0, tzinfo=UTC), request_id="FR-X2", requester=sly,
                 candidates=[], seconds=10, just="=HYPERLINK(\"https://evil.example\",\"click\")",
                 call="-26-012345")
    data, count = review.export(log, fmt="csv", tz=TZ, actor=STAFF)
    assert count == 2
    assert data.decode("utf-8-sig").startswith(",".join(review.CSV_COLUMNS) + "\r\n")
    rows = read_csv(data)
    assert len(rows) == 2 and list(rows[0]) == list(review.CSV_COLUMNS)
    r1, r2 = rows
    # Quotes, commas, newlines, emoji and a formula in the middle survive exactly.
    assert r1["justification"] == AWKWARD
    assert r1["requester_name"] == U1["name"] and r1["requester_id"] == "U0OFFICER1"
    assert r1["candidates"] == "S-0042:0.41;S-0107:0.52" and r1["candidate_count"] == "2"
    assert r1["faces"] == "2" and r1["face_index"] == "2" and r1["face_box"] == "left=300;top=50;right=400;bottom=150"
    assert r1["local_time"] == "2026-03-02 09:00:00" and r1["ts"] == "2026-03-02T17:00:00.000000Z"
    assert r1["seconds_to_result"] == "60.0" and r1["attested"] == "yes" and r1["threshold"] == "0.55"
    assert r1["versions"] == "bot=0.1.0;dlib=19.24.6;face_recognition=1.3.0"
    assert json.loads(r1["answer_times"]) == {"attestation": "2026-03-02T16:59:00Z",
                                              "call_number": "2026-03-02T16:59:00Z"}
    # Cells a spreadsheet would run as formulas get a leading quote; nothing else changes.
    assert r2["justification"] == "'=HYPERLINK(\"https://evil.example\",\"click\")"
    assert r2["requester_name"] == "'" + sly["name"]
    assert r2["call_number"] == "'-26-012345"
    assert r2["candidates"] == "" and r2["candidate_count"] == "0"
    for row in rows:
        for value in row.values():
            assert not value.startswith(review.FORMULA_PREFIXES), value
    # Every record line ends CRLF (RFC 4180); the newline inside the justification stays inside its quotes.
    text = data.decode("utf-8-sig")
    assert text.endswith("\r\n") and text.count("\r\n") == 3


def test_csv_neutralise_cell():
    for bad in ("=1+1", "+1", "-1", "@x", "\tx", "\rx"):
        assert review.neutralise_cell(bad) == "'" + bad
    assert review.neutralise_cell("a=1") == "a=1" and review.neutralise_cell("") == ""


def test_csv_flattens_denials_and_other_kinds(march: AuditLog):
    rows = read_csv(review.export(march, fmt="csv", tz=TZ, actor=STAFF)[0])
    by_id = {r["request_id"]: r for r in rows if r["request_id"]}
    assert by_id["FR-D4"]["denied"] == wording.PURPOSE_MISSING and by_id["FR-D4"]["outcome"] == "denied"
    assert by_id["FR-G7"]["error"] == "No face was found"
    change = next(r for r in rows if r["kind"] == "gallery_change")
    assert change["actor_id"] == "os:admin" and change["action"] == "enroll"
    assert json.loads(change["other"]) == {"image_sha256": "aa" * 32, "subject_id": "S-0200"}


def test_jsonl_round_trips_every_entry_exactly(march: AuditLog):
    before = list(march.entries())
    data, count = review.export(march, fmt="jsonl", tz=TZ, actor=STAFF)
    lines = data.decode("utf-8").splitlines()
    assert count == len(before) == len(lines)
    assert [json.loads(line) for line in lines] == before
    assert "🚓" in data.decode("utf-8")  # UTF-8, not \u escapes


def test_export_days_are_local_and_inclusive_and_the_export_is_audited(march: AuditLog):
    data, count = review.export(march, fmt="jsonl", tz=TZ, actor=STAFF, since=date(2026, 3, 1),
                                until=date(2026, 3, 31), kinds=["search"], out_file="/tmp/x.jsonl")
    ids = [json.loads(line)["request_id"] for line in data.decode().splitlines()]
    assert count == 7 and ids == ["FR-A1", "FR-B2", "FR-C3", "FR-D4", "FR-E5", "FR-F6", "FR-G7"]
    access = last(march)
    assert access["kind"] == "audit_access" and access["action"] == "export" and access["actor"] == STAFF
    assert access["query"] == {"since": "2026-03-01", "until": "2026-03-31", "format": "jsonl", "kinds": ["search"]}
    assert access["results"] == 7 and access["out_file"] == "/tmp/x.jsonl"
    one_day, n = review.export(march, fmt="jsonl", tz=TZ, actor=STAFF, since=date(2026, 3, 9),
                               until=date(2026, 3, 9), kinds=["search"])
    assert n == 1 and json.loads(one_day)["request_id"] == "FR-B2"
    with pytest.raises(ValueError, match="after the end day"):
        review.export(march, fmt="csv", tz=TZ, actor=STAFF, since=date(2026, 3, 9), until=date(2026, 3, 1))
    with pytest.raises(ValueError, match="not a known IANA"):
        review.day_range(date(2026, 3, 9), None, "Mars/Olympus")


# --- Monthly report ----------------------------------------------------------------------------------------------


def test_report_counts_and_median_on_known_data(march: AuditLog):
    report = monthly.monthly_report(march, "2026-03", STAFF, TZ, png_file="chart.png")
    assert report.total == 7
    assert report.by_outcome == {"candidates": 2, "no_candidate": 1, "denied": 1, "error": 1, "cancelled": 1,
                                 "expired": 1, "review": 0}
    assert list(report.by_outcome) == list(OUTCOMES)
    assert report.searches_run == 3 and report.with_candidate == 2
    assert report.candidate_share == pytest.approx(2 / 3)
    assert report.median_seconds_to_result == 60 and report.timed_searches == 3  # of 30, 60, 120 s
    purposes = {p["purpose"]: p["count"] for p in report.by_purpose}
    assert purposes == {"investigation": 3, "threat": 2, "identify": 1, monthly.NO_PURPOSE: 1,
                        monthly.ENDED_BEFORE_PURPOSE: 0}
    assert [(r["id"], r["count"]) for r in report.by_requester] == [
        ("U0OFFICER1", 3), ("U0OFFICER3", 2), ("U0OFFICER2", 2)]  # most first, then by name
    weeks = [(w.label, w.first_day, w.last_day, sum(w.by_outcome.values())) for w in report.weeks]
    assert weeks == [("W09", "2026-03-01", "2026-03-01", 0), ("W10", "2026-03-02", "2026-03-08", 1),
                     ("W11", "2026-03-09", "2026-03-15", 1), ("W12", "2026-03-16", "2026-03-22", 2),
                     ("W13", "2026-03-23", "2026-03-29", 2), ("W14", "2026-03-30", "2026-03-31", 1)]
    assert report.weeks[5].by_outcome["error"] == 1
    access = last(march)
    assert access["action"] == "report" and access["query"] == {"month": "2026-03"}
    assert access["results"] == 7 and access["png_file"] == "chart.png" and access["actor"] == STAFF


def test_report_counts_a_request_cancelled_before_its_purpose_as_cancelled_not_refused(log, clock, data_dir):
    core = Core(Settings().with_data_dir(data_dir), _audit=log)
    clock.now = datetime(2026, 3, 10, 18, 0, tzinfo=UTC)
    for outcome, rid in (("cancelled", "FR-C1"), ("expired", "FR-E1")):
        record_ended(core, outcome=outcome, request_id=rid, answers=answers(purpose=None),
                     requester=Requester(**U1), source=source())
    record_denied(core, request_id="FR-D1", answers=answers(purpose=None), requester=Requester(**U1),
                  reasons=[wording.PURPOSE_MISSING], source=source())
    report = monthly.monthly_report(log, "2026-03", STAFF, TZ)
    purposes = {p["purpose"]: p["count"] for p in report.by_purpose}
    assert purposes[monthly.NO_PURPOSE] == 1 and purposes[monthly.ENDED_BEFORE_PURPOSE] == 2  # only FR-D1 refused
    assert report.by_outcome["cancelled"] == 1 and report.by_outcome["denied"] == 1
    text = wording.report_text(report)
    assert f"- {wording.NO_PURPOSE_LABEL}: 1" in text and f"- {wording.ENDED_BEFORE_PURPOSE_LABEL}: 2" in text


def test_report_text_shows_all_six_outcomes_share_and_median(march: AuditLog):
    report = monthly.summarise_month(march.entries(), "2026-03", TZ)
    text = wording.report_text(report)
    assert text.startswith("Facial recognition accountability report, March 2026 (America/Los_Angeles)")
    for outcome in OUTCOMES:
        assert f"- {wording.outcome_label(outcome)}: " in text
    assert "- no candidate (not an exclusion): 1" in text
    assert "Searches with a candidate: 2 of 3 searches that ran (67%)" in text
    assert "Median time from upload to result: 1 min 00 s over 3 searches" in text
    assert "- Active investigation: 3" in text and f"- {wording.NO_PURPOSE_LABEL}: 1" in text
    assert "&lt;!channel&gt; Pat (U0OFFICER3): 2" in text  # Slack text is escaped
    assert "<!channel> Pat (U0OFFICER3): 2" in wording.report_text(report, for_slack=False)


def test_report_for_a_month_without_entries(march: AuditLog):
    report = monthly.summarise_month(march.entries(), "2021-02", TZ)
    assert report.total == 0 and set(report.by_outcome.values()) == {0} and len(report.by_outcome) == 7
    assert report.candidate_share is None and report.median_seconds_to_result is None
    assert report.by_requester == [] and len(report.weeks) == 4  # Feb 2021 is exactly ISO weeks 5-8
    text = wording.report_text(report)
    assert "Requests: 0" in text and "Searches with a candidate: n/a" in text
    assert "Median time from upload to result: n/a" in text and "By requester:\n- none" in text
    png = monthly.report_chart_png(report)
    assert Image.open(io.BytesIO(png)).format == "PNG"


def test_report_chart_is_a_png_image(march: AuditLog):
    report = monthly.summarise_month(march.entries(), "2026-03", TZ)
    png = monthly.report_chart_png(report)
    image = Image.open(io.BytesIO(png))
    image.verify()
    assert image.format == "PNG" and image.size == (900, 550)


def test_report_json_and_bad_months(march: AuditLog):
    data = monthly.summarise_month(march.entries(), "2026-03", TZ).as_json()
    assert json.loads(json.dumps(data))["by_outcome"]["denied"] == 1
    assert data["month_title"] == "March 2026" and data["weeks"][0]["label"] == "W09"
    for bad in ("2026-13", "2026/03", "March", "2026-3-01", ""):
        with pytest.raises(ValueError, match="YYYY-MM"):
            review.parse_month(bad)
    assert review.previous_month(datetime(2026, 3, 1, 7, 30, tzinfo=UTC), TZ) == "2026-01"  # Feb 28 locally


def test_report_text_fits_slack_with_many_requesters():
    people = [{"id": f"U{i:08d}", "name": "<!here> " * 40, "count": 1} for i in range(200)]
    report = SimpleNamespace(
        month_title="March 2026", timezone=TZ, total=200, by_outcome={o: 0 for o in OUTCOMES}, searches_run=0,
        with_candidate=0, candidate_share=None, median_seconds_to_result=None, timed_searches=0,
        refused_commands=0, by_purpose=[{"purpose": p.code, "label": p.label, "count": 0} for p in policy.PURPOSES],
        by_requester=people,
    )
    text = wording.report_text(report)
    assert len(text) <= wording.SLACK_SECTION_LIMIT
    assert text.endswith("more (see the export for all)")
    assert len(wording.report_text(report, for_slack=False).splitlines()) > 200


# --- Discovery bundle --------------------------------------------------------------------------------------------


def test_bundle_holds_the_request_answers_probe_faces_candidates_and_verified_manifest(march: AuditLog):
    bundle = review.build_bundle(march, "FR-A1", STAFF, TZ, out_file="fr-a1.zip", dispatch_channel="C0DISPATCH",
                                 now=datetime(2026, 4, 2, 16, 0, tzinfo=UTC))
    zf = zipfile.ZipFile(io.BytesIO(bundle.data))
    assert sorted(zf.namelist()) == sorted([*review.BUNDLE_FILES, "manifest.json"])
    manifest = json.loads(zf.read("manifest.json"))
    assert set(manifest["files"]) == set(review.BUNDLE_FILES)
    import hashlib
    for name, meta in manifest["files"].items():
        assert hashlib.sha256(zf.read(name)).hexdigest() == meta["sha256"]
        assert len(zf.read(name)) == meta["bytes"]
    assert review.check_bundle(bundle.data) == []
    assert manifest["created_at"] == "2026-04-02T16:00:00.000000Z" and manifest["created_by"] == STAFF
    assert manifest["tool"] == {"name": "frbot", "version": "0.1.0"} and manifest["request_id"] == "FR-A1"

    entries = [json.loads(line) for line in zf.read("entries.jsonl").decode().splitlines()]
    assert [e["request_id"] for e in entries] == ["FR-A1"] and entries[0]["mac"]
    s = json.loads(zf.read("summary.json"))
    assert s["policy_answers"]["call_number"] == "26-012345"
    assert s["policy_answers"]["purpose_label"] == "Active investigation"
    assert s["policy_answers"]["justification"] == AWKWARD
    assert s["policy_answers"]["attestation"] == {"attested": True, "text": wording.ATTESTATION}
    assert s["probe"] == {"sha256": "9f" * 32, "slack_file_id": "F0PHOTO1", "image_name": "doorbell.jpg"}
    assert [f["index"] for f in s["faces"]] == [1, 2] and s["face_index"] == 2
    assert s["chosen_face_box"] == {"top": 50, "right": 400, "bottom": 150, "left": 300}
    assert s["candidates"] == [{"rank": 1, "subject_id": "S-0042", "distance": 0.41},
                               {"rank": 2, "subject_id": "S-0107", "distance": 0.52}]
    assert s["threshold"] == 0.55 and s["model"] == "dlib_face_recognition_resnet_model_v1"
    assert s["versions"]["dlib"] == "19.24.6" and s["gallery_subjects"] == 120 and s["gallery_images"] == 342
    assert s["slack"]["request_thread_link"] == PERMALINK
    assert s["slack"]["call_thread_link"] == "https://pd.slack.com/archives/C0DISPATCH/p1772470000000200"
    assert s["caveat"] == wording.CAVEAT
    verification = json.loads(zf.read("verification.json"))
    assert verification["ok"] is True and verification["last_seq"] == manifest["audit_access_seq"]
    text = zf.read("summary.txt").decode()
    assert "Discovery bundle: facial recognition request FR-A1" in text
    assert "1. subject S-0042: distance 0.41" in text and "Audit chain at bundling time: intact" in text
    assert "Face 2: left 300, top 50, right 400, bottom 150; 100 px; ok" in text
    access = last(march)
    assert access["action"] == "bundle" and access["seq"] == manifest["audit_access_seq"]
    assert access["query"] == {"request_id": "FR-A1"} and access["out_file"] == "fr-a1.zip"


def test_a_bundle_names_the_model_its_version_weights_and_runtime(log: AuditLog, clock: Clock):
    """An examiner auditing a lead must know exactly which templates produced it: the bundle's summary names
    the model record of the search entry (CONTRACTS ### 12), not a Python dict."""
    from bot.faces import models

    record = models.record("sface")
    search_entry(log, clock, datetime(2026, 3, 3, 17, 0, tzinfo=UTC), request_id="FR-M1",
                 requester={"id": "U0OFFICER", "name": "Ofc. Diaz"}, candidates=[("S-0042", 0.31)], seconds=60,
                 model=record)
    bundle = review.build_bundle(log, "FR-M1", STAFF, TZ, out_file="fr-m1.zip")
    zf = zipfile.ZipFile(io.BytesIO(bundle.data))
    assert json.loads(zf.read("summary.json"))["model"] == record
    text = zf.read("summary.txt").decode()
    assert (f"Model: sface {record['version']} (weights SHA-256 {record['weights_sha256']}; runtime "
            f"{record['runtime']})") in text
    assert "{'id'" not in text


def test_slack_searches_keep_the_photos_file_name_in_the_export_and_the_bundle(march: AuditLog):
    """Slack entries carry the upload's `file_name` (bot.slack.flow.effects.source_fields), the CLI `image_name`:
    both reach the image_name column and the bundle's probe."""
    data, _ = review.export(march, fmt="csv", tz=TZ, actor=STAFF)
    rows = {r["request_id"]: r for r in read_csv(data)}
    assert rows["FR-A1"]["image_name"] == "doorbell.jpg" and rows["FR-E5"]["image_name"] == "doorbell.jpg"
    assert "file_name" not in rows["FR-A1"]["other"]
    bundle = review.build_bundle(march, "FR-A1", STAFF, TZ, out_file="fr-a1.zip")
    zf = zipfile.ZipFile(io.BytesIO(bundle.data))
    assert json.loads(zf.read("summary.json"))["probe"]["image_name"] == "doorbell.jpg"
    assert 'File name: "doorbell.jpg"' in zf.read("summary.txt").decode()
    cli = {"outcome": "no_candidate", "kind": "search", "image_name": "still.png", "request_id": "FR-CLI"}
    assert review.flatten_entry(cli, TZ)["image_name"] == "still.png"


def test_bundle_detects_a_changed_file(march: AuditLog):
    bundle = review.build_bundle(march, "FR-D4", STAFF, TZ)
    src = zipfile.ZipFile(io.BytesIO(bundle.data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            dst.writestr(name, data.replace(b"FR-D4", b"FR-D5") if name == "entries.jsonl" else data)
    assert review.check_bundle(out.getvalue()) == ["entries.jsonl does not match its SHA-256"]
    s = bundle.summary
    assert s["outcome"] == "denied" and s["denied"] == [wording.PURPOSE_MISSING]
    assert s["policy_answers"]["purpose"] is None and s["candidates"] == []


def test_bundle_unknown_request_is_refused_and_the_attempt_audited(march: AuditLog):
    with pytest.raises(review.UnknownRequest):
        review.build_bundle(march, "FR-NOPE", STAFF, TZ)
    access = last(march)
    assert access["action"] == "bundle" and access["results"] == 0 and access["query"] == {"request_id": "FR-NOPE"}
    assert march.verify().ok


def test_estimates_export_and_bundle_and_entries_from_before_them_still_read(log: AuditLog, clock: Clock):
    """A search of the calibrated decision (margin, score, estimate, operating point, face quality) beside one
    written before it (distance only, quality a string): both export to CSV, report and bundle."""
    from bot.service import policy_fields

    old = search_entry(log, clock, datetime(2026, 3, 2, 17, 0, tzinfo=UTC), request_id="FR-OLD", requester=U1,
                       candidates=[("S-0042", 0.41)], seconds=60)
    point = {"target_fpir": 0.01, "gallery_size": 1630, "calibrated_at": "2026-03-01T08:00:00Z",
             "method": "gallery", "sample_size": 1630}
    clock.now = datetime(2026, 3, 3, 17, 0, tzinfo=UTC)
    quality = {"eye_px": 41.0, "sharpness": 0.011, "exposure": 0.4, "grayscale": True, "yaw_deg": 3.0, "level": "low"}
    log.append("search", outcome="candidates", request_id="FR-NEW", requester=U1, **source(),
               **policy_fields(answers()), probe_sha256="ab" * 32,
               faces=[{"index": 1, "box": {"top": 1, "right": 90, "bottom": 90, "left": 1}, "size": 89,
                       "quality": quality}],
               face_index=1, model="m", versions={}, threshold=0.55, gallery_subjects=1630, gallery_images=1700,
               target_fpir=0.01, operating_point=point, nearest_distances=[0.33, 0.61, 0.62],
               candidates=[{"rank": 1, "subject_id": "S-0042", "distance": 0.33, "margin": 0.28, "score": 0.29,
                            "fpir_estimate": 0.0025, "below_resolution": False}],
               result_at="2026-03-03T17:00:00Z")
    rows = {r["request_id"]: r for r in csv.DictReader(io.StringIO(
        review.to_csv(log.entries(), TZ).lstrip("\ufeff")))}
    assert rows["FR-NEW"]["candidates"] == "S-0042:0.33:0.0025"
    assert rows["FR-NEW"]["target_fpir"] == "0.01"
    assert rows["FR-NEW"]["calibration"] == "gallery 1630 2026-03-01T08:00:00Z 1630"
    assert rows["FR-NEW"]["nearest_distances"] == "0.33;0.61;0.62"
    assert rows["FR-NEW"]["face_quality"] == "low: soft"
    assert rows["FR-OLD"]["candidates"] == "S-0042:0.41" and rows["FR-OLD"]["face_quality"] == "ok"
    assert rows["FR-OLD"]["target_fpir"] == "" and rows["FR-OLD"]["calibration"] == ""
    report = monthly.summarise_month(list(log.entries()), "2026-03", TZ)
    assert report.with_candidate == 2
    for rid, expect in (("FR-NEW", "about 1 in 400 searches of these 1,630 people"), ("FR-OLD", "distance 0.41")):
        bundle = review.build_bundle(log, rid, STAFF, TZ, out_file="b.zip", dispatch_channel="C0DISPATCH",
                                     now=datetime(2026, 4, 2, 16, 0, tzinfo=UTC))
        text = zipfile.ZipFile(io.BytesIO(bundle.data)).read("summary.txt").decode()
        assert expect in text, text
    assert old["seq"] < last(log)["seq"]


def test_the_monthly_report_names_the_face_models_of_the_searches_that_ran():
    from bot.faces.models import dlib_resnet

    def search(seq: int, outcome: str, model) -> dict:
        return {"kind": "search", "seq": seq, "ts": f"2026-03-0{seq}T17:00:00.000000Z", "outcome": outcome,
                "request_id": f"FR-{seq}", "purpose": "investigation", "requester": {"id": "U1", "name": "One"},
                "model": model}

    sface = {"id": "sface", "version": "2021dec", "weights_sha256": "f" * 64, "runtime": "cv2.dnn"}
    entries = [search(1, "candidates", dlib_resnet.MODEL_NAME),  # written before models had ids
               search(2, "no_candidate", sface), search(3, "candidates", sface), search(4, "denied", None)]
    report = monthly.summarise_month(entries, "2026-03", "UTC")
    assert report.by_model == {"dlib-resnet": 1, "sface 2021dec": 2}  # what ran; a refusal used no model
    assert "Face models of the searches that ran: dlib-resnet: 1, sface 2021dec: 2" in wording.report_text(report)
