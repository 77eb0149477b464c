"""The searches list's core (bot/oversight/searches.py) over a real audit log: each filter, the local-day range,
paging newest first, bad values in words, the export against the CLI's own selection, the chain's state."""
from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest

from bot import wording
from bot.oversight import review
from bot.oversight import searches as core
from bot.store.audit_log import AuditLog
from tests.pg_fixtures import StepClock

TZ = "America/Los_Angeles"
KEY = b"k" * 32
# 2026-03-02 08:30 UTC is 2026-03-02 00:30 in Los Angeles; 07:30 UTC is still March 1st there.
T0 = datetime(2026, 3, 2, 7, 30, tzinfo=UTC)


def _search(log, n: int, **fields):
    body = {"outcome": "candidates", "request_id": f"FR-{n:04d}", "call_number": f"26-{n:06d}",
            "requester": {"id": "U1", "name": "Ofc. Diaz"}, "purpose": "investigation",
            "candidates": [{"rank": 1, "subject_id": "s1", "distance": 0.3}]}
    body.update(fields)
    return log.append("search", **body)


def _fill(log):
    made = {
        "plain": _search(log, 1),  # 08:30 UTC: local March 2nd
        "other_requester": _search(log, 2, requester={"id": "U2", "name": "Ofc. Lee"}),
        "threat": _search(log, 3, purpose="threat"),
        "no_candidate": _search(log, 4, outcome="no_candidate", candidates=[]),
        "flagged": _search(log, 5, flags=["protected_class"]),
        "reviewed": _search(log, 6, outcome="review", candidates=[{"rank": k} for k in range(1, 4)]),
        "denied": _search(log, 7, outcome="denied", purpose=None, candidates=None),
    }
    log.record_access({"id": "U9"}, "export", {})  # not a search: never listed
    log.append("review", request_id="FR-0006", action="queued")
    log.append("review", request_id="FR-0006", action="release", final=True, leads=["s1"], shown=["s1"],
               ruled_out=2)
    return made


@pytest.fixture
def filled(tmp_path):
    """A log in which each search differs from the first by one thing a filter can see."""
    log = AuditLog(tmp_path, key=KEY, key_source="env", clock=StepClock(T0, timedelta(hours=1)))
    return log, _fill(log)


def _ids(log, params) -> list[str]:
    flt, errors = core.parse_filter(params, today=date(2026, 3, 2))
    assert errors == []
    return [r.request_id for r in core.rows(core.load(log, flt, TZ), flt, TZ)]


def test_every_search_is_listed_newest_first_with_its_row(filled):
    log, _ = filled
    assert _ids(log, {"from": ""}) == [f"FR-{n:04d}" for n in range(7, 0, -1)]
    flt, _ = core.parse_filter({"from": ""}, today=date(2026, 3, 2))
    [reviewed] = [r for r in core.rows(core.load(log, flt, TZ), flt, TZ) if r.request_id == "FR-0006"]
    # Under examiner review: the final outcome is the release's; 3 candidates went to the examiner, 1 released.
    assert (reviewed.outcome, reviewed.reviewed, reviewed.candidates, reviewed.released) == ("candidates", True, 3, 1)
    assert reviewed.time == "2026-03-02 05:30:00" and reviewed.requester_name == "Ofc. Diaz"
    assert reviewed.purpose_label == "Active investigation"


@pytest.mark.parametrize("params, expected", [
    ({"requester": "U2"}, ["FR-0002"]),
    ({"requester": "lee"}, ["FR-0002"]),  # part of the name, any case
    ({"purpose": "threat"}, ["FR-0003"]),
    ({"purpose": "none"}, ["FR-0007"]),
    ({"outcome": "no_candidate"}, ["FR-0004"]),
    ({"outcome": "candidates"}, ["FR-0006", "FR-0005", "FR-0003", "FR-0002", "FR-0001"]),  # the release's outcome
    ({"outcome": "review"}, []),  # FR-0006 was released: it is no longer waiting
    ({"call_number": "26-000004"}, ["FR-0004"]),
    ({"call_number": "26\u2013000004"}, ["FR-0004"]),  # an en dash pasted: stored form
    ({"flagged": "yes"}, ["FR-0005"]),
    ({"flagged": "no", "reviewed": "no", "outcome": "candidates"}, ["FR-0003", "FR-0002", "FR-0001"]),
    ({"reviewed": "yes"}, ["FR-0006"]),
])
def test_each_filter_keeps_only_what_it_names(filled, params, expected):
    log, _ = filled
    assert _ids(log, {"from": "", **params}) == expected


def test_from_and_to_are_local_days_both_inclusive(filled):
    log, _ = filled
    # Entry 1 is at 00:30 local on March 2nd; one written after it with the clock stepped back to 22:30 local on
    # March 1st (06:30 UTC) belongs to March 1st.
    late = AuditLog(log.dir.parent, key=KEY, key_source="env", clock=lambda: T0 - timedelta(hours=1))
    _search(late, 8)
    assert _ids(log, {"from": "2026-03-02", "to": "2026-03-02"}) == [f"FR-{n:04d}" for n in range(7, 0, -1)]
    assert _ids(log, {"from": "", "to": "2026-03-01"}) == ["FR-0008"]
    assert _ids(log, {"from": "2026-03-03"}) == []


def test_with_no_query_string_the_page_shows_the_last_thirty_days(filled):
    flt, errors = core.parse_filter({}, today=date(2026, 3, 31))
    assert errors == [] and flt.default_range and flt.since == date(2026, 3, 2) and flt.until is None
    assert _ids(filled[0], {}) == [f"FR-{n:04d}" for n in range(7, 0, -1)]  # today (Mar 2nd) counts
    flt, _ = core.parse_filter({}, today=date(2026, 4, 1))
    assert [r.request_id for r in core.rows(core.load(filled[0], flt, TZ), flt, TZ)] == []


def test_pages_are_newest_first_with_links_that_keep_the_filters(filled):
    log, _ = filled
    flt, _ = core.parse_filter({"from": "", "outcome": "candidates", "page": "2"}, today=date(2026, 3, 2))
    matching = core.rows(core.load(log, flt, TZ), flt, TZ)
    page = core.page_of(matching, flt, size=2)
    assert [r.request_id for r in page.rows] == ["FR-0003", "FR-0002"]
    assert (page.total, page.page, page.pages) == (5, 2, 3)
    assert "outcome=candidates" in page.next and "page=3" in page.next
    assert "page=" not in page.previous and "outcome=candidates" in page.previous  # page 1 has no page=
    last = core.page_of(matching, core.SearchFilter(outcome="candidates", page=99), size=2)
    assert (last.page, [r.request_id for r in last.rows], last.next) == (3, ["FR-0001"], None)
    empty = core.page_of([], flt, size=2)
    assert (empty.rows, empty.pages, empty.previous, empty.next) == ([], 1, None, None)


def test_the_rows_kept_between_views_are_the_parsed_rows_and_only_new_lines_are_parsed(filled):
    log, _ = filled
    cache = core.RowCache(TZ)
    for params in ({"from": ""}, {"from": "", "outcome": "candidates"}, {"from": "2026-03-02", "reviewed": "yes"},
                   {"from": "", "call_number": "26-000004"}, {"to": "2026-03-01"}, {"from": "", "requester": "diaz"}):
        flt, _ = core.parse_filter(params, today=date(2026, 3, 2))
        assert core.list_rows(log, flt, TZ, cache) == core.rows(core.load(log, flt, TZ), flt, TZ), params
    # Each search line once (a call number is looked up through the index; one examined request's reviews too).
    assert cache.parsed == 7
    _search(log, 9, outcome="no_candidate")
    flt, _ = core.parse_filter({"from": ""}, today=date(2026, 3, 2))
    assert core.list_rows(log, flt, TZ, cache)[0].request_id == "FR-0009" and cache.parsed == 8
    # An edited line is another line: parsed afresh, its new bytes shown (the chain check says it was edited).
    log.path.write_bytes(log.path.read_bytes().replace(b'"Ofc. Lee"', b'"Ofc. Leo"'))
    names = {r.requester_name for r in core.list_rows(log, flt, TZ, cache)}
    assert "Ofc. Leo" in names and "Ofc. Lee" not in names and cache.parsed == 9


def test_the_list_is_the_same_on_the_database(filled, pg_migrated):
    import psycopg

    from bot.store.pg.audit import PgAuditLog

    log, _ = filled
    db_log = PgAuditLog(lambda: psycopg.connect(pg_migrated.app_url), key=KEY, clock=StepClock(T0, timedelta(hours=1)))
    _fill(db_log)
    for params in ({"from": ""}, {"from": "2026-03-02", "outcome": "candidates"}, {"from": "", "reviewed": "yes"},
                   {"from": "", "call_number": "26-000004"}, {"from": "", "purpose": "none"}, {}):
        flt, _ = core.parse_filter(params, today=date(2026, 3, 2))
        on_files = core.list_rows(log, flt, TZ, core.RowCache(TZ))
        assert core.list_rows(db_log, flt, TZ, core.RowCache(TZ)) == on_files, params
        assert core.export_entries(core.load(db_log, flt, TZ), flt, TZ) == core.export_entries(
            core.load(log, flt, TZ), flt, TZ), params


def test_many_examined_requests_take_their_reviews_from_one_read_with_the_same_answer(filled):
    log, _ = filled
    for n in range(10, 10 + core.FEW + 3):  # more than FEW under review: released with a lead, without, or open
        _search(log, n, outcome="review")
    for n in range(10, 10 + core.FEW + 3, 3):
        log.append("review", request_id=f"FR-{n:04d}", action="release", final=True, leads=["s1"], shown=["s1"])
    for n in range(11, 10 + core.FEW + 3, 3):
        log.append("review", request_id=f"FR-{n:04d}", action="release", final=True, leads=[], shown=[])
    cache = core.RowCache(TZ)
    for outcome in ("", "candidates", "no_candidate", "review"):
        flt, _ = core.parse_filter({"from": "", "outcome": outcome, "reviewed": "yes"}, today=date(2026, 3, 2))
        listed = core.list_rows(log, flt, TZ, cache)
        assert listed == core.rows(core.load(log, flt, TZ), flt, TZ), outcome
        by_id = {r.request_id: r.outcome for r in listed}
        assert all(by_id[f"FR-{n:04d}"] == outcome for n in range(10, 23) if f"FR-{n:04d}" in by_id) or not outcome
    flt, _ = core.parse_filter({"from": "", "reviewed": "yes"}, today=date(2026, 3, 2))
    outcomes = [r.outcome for r in sorted(core.list_rows(log, flt, TZ, cache), key=lambda r: r.seq)]
    assert outcomes == ["candidates"] + ["candidates", "no_candidate", "review"] * 4 + ["candidates"]


@pytest.mark.parametrize("params, said", [
    ({"from": "2026-13-01"}, wording.console_bad_date("from", "2026-13-01")),
    ({"to": "yesterday"}, wording.console_bad_date("to", "yesterday")),
    ({"from": "20260301"}, wording.console_bad_date("from", "20260301")),
    ({"from": "2026-03-05", "to": "2026-03-01"}, wording.console_dates_reversed("2026-03-05", "2026-03-01")),
    ({"outcome": "maybe"}, wording.console_bad_choice("outcome", "maybe", core.OUTCOMES)),
    ({"purpose": "curiosity"}, wording.console_bad_choice("purpose", "curiosity", core.PURPOSE_CHOICES)),
    ({"flagged": "true"}, wording.console_bad_choice("flagged", "true", core.YES_NO)),
    ({"reviewed": "1"}, wording.console_bad_choice("reviewed", "1", core.YES_NO)),
    ({"page": "0"}, wording.console_bad_page("0")),
    ({"page": "two"}, wording.console_bad_page("two")),
])
def test_a_bad_value_is_named_in_a_sentence(params, said):
    _, errors = core.parse_filter(params, today=date(2026, 3, 2))
    assert errors == [said]


def test_the_filter_round_trips_through_its_query_string():
    flt = core.SearchFilter(since=date(2026, 3, 1), until=date(2026, 3, 31), requester="U2", purpose="threat",
                            outcome="denied", call_number="26-000001", flagged=True, reviewed=False, page=3)
    from urllib.parse import parse_qsl

    again, errors = core.parse_filter(dict(parse_qsl(flt.query_string(3), keep_blank_values=True)),
                                      today=date(2026, 3, 2))
    assert errors == [] and again == flt
    assert flt.query() == {"from": "2026-03-01", "to": "2026-03-31", "requester": "U2", "purpose": "threat",
                           "outcome": "denied", "call_number": "26-000001", "flagged": "yes", "reviewed": "no"}


def test_the_export_holds_every_match_in_log_order_as_the_cli_selects_them(filled):
    log, _ = filled
    flt, _ = core.parse_filter({"from": "2026-03-02", "to": "2026-03-02"}, today=date(2026, 3, 2))
    chosen = core.export_entries(core.load(log, flt, TZ), flt, TZ)
    cli = review.select_entries(log.entries(), since=flt.since, until=flt.until, tz=TZ, kinds=["search"])
    assert chosen == cli and len(chosen) == 7
    assert core.export_file(chosen, "csv", TZ, None) == review.export_bytes(cli, "csv", TZ)
    flagged, _ = core.parse_filter({"from": "", "flagged": "yes"}, today=date(2026, 3, 2))
    assert [e["request_id"] for e in core.export_entries(core.load(log, flagged, TZ), flagged, TZ)] == ["FR-0005"]


def test_an_export_of_a_broken_chain_starts_with_the_warning(filled):
    log, _ = filled
    entries = list(log.find(kinds=["search"]))
    warning = wording.audit_chain_broken(3, "mac mismatch")
    data = core.export_file(entries, "csv", TZ, warning)
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[0] == [warning] and rows[1][:3] == ["seq", "ts", "local_time"] and len(rows) == 2 + len(entries)
    lines = core.export_file(entries, "jsonl", TZ, warning).decode().splitlines()
    assert json.loads(lines[0]) == {"warning": warning}
    assert [json.loads(line) for line in lines[1:]] == entries


def test_the_chain_is_stated_broken_whenever_a_check_failed_and_never_clean_on_trust():
    ok = SimpleNamespace(ok=True, bad_seq=None, reason="", count=12, checked_at="2026-03-02T17:00:00.000000Z",
                         by="leader host-1")
    bad = SimpleNamespace(ok=False, bad_seq=7, reason="mac mismatch")
    assert core.chain_status(ok, bad, TZ) == core.ChainStatus(True, wording.console_chain_banner(7, "mac mismatch"))
    assert core.chain_status(SimpleNamespace(**{**vars(ok), **vars(bad)}), None, TZ).broken
    fine = core.chain_status(ok, SimpleNamespace(ok=True), TZ)
    assert not fine.broken and fine.text == wording.console_chain_checked("2026-03-02 09:00:00", 12, "leader host-1")
    assert core.chain_status(None, None, TZ) == core.ChainStatus(False, wording.CONSOLE_CHAIN_NOT_CHECKED)
