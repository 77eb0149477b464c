"""bot/oversight/transparency.py and `python -m bot audit report --public`: the public report holds counts only
(a planted log's names, user ids, call numbers, request ids and free text never appear), small cells are
suppressed with complementary suppression, and the CLI writes both files after checking the whole chain."""
from __future__ import annotations

import csv
import io
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from markupsafe import escape

from bot import wording
from bot.cli import main as cli
from bot.console.public import render_html
from bot.oversight import monthly, samples, transparency
from bot.store.audit_log import AuditLog

from ..conftest import edit_in_place

TZ = "America/Los_Angeles"
KEY = "transparency-test-key-0123456789abcdef"
ENV = {"BOT_AUDIT_KEY": KEY}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 18, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def planted_log(data_dir: Path) -> tuple[AuditLog, list[str]]:
    """A year of entries full of unique names, user ids, call numbers, request ids and typed text (all returned,
    to be looked for): 12 in January, 3 in February, 7 in March; examiner reviews, alerts, a sampled audit."""
    clock = Clock()
    log = AuditLog.open(data_dir, ENV, clock=clock)
    planted: list[str] = []
    n = 0
    for month, count in ((1, 12), (2, 3), (3, 7)):
        for i in range(count):
            n += 1
            clock.now = datetime(2026, month, 3 + i, 19, tzinfo=UTC)
            rid, uid, name, call = f"FR-PLNT{n:04d}Q", f"UPLNT{n:04d}", f"Zebulon Quixwhistle{n:03d}", f"PL-{n:05d}-X"
            text = f"Kumquat rhapsody {n:04d} in the plaza"
            outcome = ("candidates", "no_candidate", "denied", "review")[n % 4]
            log.append("search", outcome=outcome, request_id=rid, requester={"id": uid, "name": name},
                       call_number=call, justification=text, purpose="investigation" if n % 3 else "threat",
                       file_name=f"doorbell-{n:04d}-plnt.jpg", candidates=[{"rank": 1, "subject_id": f"SUBJ-PLNT{n}",
                                                                          "name": f"Gallerina Plntperson{n}"}])
            planted += [rid, uid, name, call, text, f"doorbell-{n:04d}-plnt.jpg", f"SUBJ-PLNT{n}",
                        f"Gallerina Plntperson{n}"]
            if outcome == "review":
                log.append("review", action="queued", request_id=rid, by=f"UEXAMPLNT{n}")
                log.append("review", action="release", final=True, request_id=rid, leads=[f"SUBJ-PLNT{n}"],
                           ruled_out=1, by=f"UEXAMPLNT{n}", note=f"Examiner note plnt {n}")
                planted += [f"UEXAMPLNT{n}", f"Examiner note plnt {n}"]
    clock.now = datetime(2026, 3, 20, 19, tzinfo=UTC)
    for i, rule in enumerate(("requester_day", "requester_day", "flagged", "UPLNTRULE")):
        alert = log.append("alert", rule=rule, key=f"UPLNTALERT{i}", alert_id=f"AL-PLNT{i}",
                           detail=f"Officer Plntalert{i} searched a lot")
        if i == 0:
            log.append("alert_review", alert_id=alert["alert_id"], actor={"id": "UCHIEFPLNT", "name": "Chief Plnt"},
                       note="Reviewed plnt alert note")
    planted += [f"UPLNTALERT{i}" for i in range(4)] + [f"AL-PLNT{i}" for i in range(4)]
    planted += [f"Officer Plntalert{i}" for i in range(4)] + ["UCHIEFPLNT", "Chief Plnt", "Reviewed plnt alert note",
                                                             "UPLNTRULE"]
    clock.now = datetime(2026, 2, 1, 18, tzinfo=UTC)
    fields = samples.draw_fields(list(log.entries()), "2026-01", TZ, seed=5, percent=5.0, minimum=3,
                                 auditors=[{"id": "UAUDPLNT", "name": "Auditor Plnt"}], actor="frbot")
    log.append("sample_draw", **fields)
    log.append("sample_review", **samples.review_fields(
        list(log.entries()), "2026-01", fields["request_ids"][0],
        {**{k: "no" for k, _ in samples.CHECKLIST}, "note": "Sample note plnt wanting"},
        {"id": "UAUDPLNT", "name": "Auditor Plnt"}))
    planted += ["UAUDPLNT", "Auditor Plnt", "Sample note plnt wanting"]
    return log, planted


def shown(report: transparency.PublicReport, table: str) -> dict[str, str]:
    return {c.category: c.shown(report.min_cell) for c in report.table(table).rows()}


def test_the_public_report_contains_no_name_user_id_call_number_request_id_or_typed_text(data_dir):
    log, planted = planted_log(data_dir)
    report = transparency.build(log.entries(), 2026, TZ, min_cell=5)
    html, text = render_html(report, standalone=True), transparency.csv_text(report)
    console_html = render_html(report, standalone=False)
    assert report.table("requests_by_month").total.count == 22  # the log was read: these are its counts
    for token in planted:
        for out in (html, text, console_html):
            assert token.lower() not in out.lower(), token
    assert "requester_day" in text and ",other," in text  # rule codes of ours; anything else is "other"


def test_small_cells_read_under_five_and_one_more_is_suppressed_where_a_total_would_give_it_away(data_dir):
    log, _ = planted_log(data_dir)
    report = transparency.build(log.entries(), 2026, TZ, min_cell=5)
    months = shown(report, "requests_by_month")
    # February (3) is small; March (7), the next smallest, is withheld with it; empty months are shown as 0.
    assert (months["2026-01"], months["2026-02"], months["2026-03"], months["2026-04"], months["total"]) == (
        "12", "<5", "<5", "0", "22")
    for table in report.tables:
        if table.total is not None and not table.total.suppressed:
            hidden = [c for c in table.cells if c.suppressed]
            assert len(hidden) != 1, table.name  # never exactly one: it could be subtracted from the total
        for cell in table.rows():
            assert not (0 < cell.count < 5) or cell.suppressed, (table.name, cell)
    rows = list(csv.reader(io.StringIO(transparency.csv_text(report))))
    assert rows[0] == ["table", "category", "count"]
    assert ["requests_by_month", "2026-02", "<5"] in rows and ["requests_by_month", "2026-03", "<5"] in rows
    assert all(len(r) == 3 for r in rows) and len(rows) == 1 + sum(len(t.rows()) for t in report.tables)
    assert shown(report, "sampled_audits") == {"sampled": "<5", "reviewed": "<5", "found_wanting": "<5"}
    assert str(escape(wording.public_suppression_note(5))) in render_html(report)


def test_suppression_rules_on_their_own():
    two = transparency.suppress("t", [("a", 3), ("b", 2), ("c", 40)], 5, total=True)
    assert [c.suppressed for c in two.cells] == [True, True, False] and not two.total.suppressed
    one = transparency.suppress("t", [("a", 3), ("b", 0), ("c", 9), ("d", 40)], 5, total=True)
    assert [c.suppressed for c in one.cells] == [True, False, True, False]  # the zero is no complement
    tiny = transparency.suppress("t", [("a", 3), ("b", 1)], 5, total=True)
    assert tiny.total.suppressed and all(c.suppressed for c in tiny.cells)
    no_total = transparency.suppress("t", [("a", 3), ("b", 40)], 5, total=False)
    assert [c.suppressed for c in no_total.cells] == [True, False] and no_total.total is None
    assert [c.shown(10) for c in transparency.suppress("t", [("a", 9), ("b", 10), ("c", 11)], 10,
                                                       total=True).cells] == ["<10", "<10", "11"]


def test_the_years_counts_are_the_sum_of_its_monthly_reports(data_dir):
    log, _ = planted_log(data_dir)
    report = transparency.build(log.entries(), 2026, TZ)
    months = [monthly.summarise_month(log.entries(), f"2026-{m:02d}", TZ) for m in range(1, 13)]
    outcomes = {c.category: c.count for c in report.table("requests_by_outcome").cells}
    assert outcomes == {o: sum(m.by_outcome[o] for m in months) for o in outcomes}
    purposes = {c.category: c.count for c in report.table("requests_by_purpose").cells}
    assert purposes == {p: sum(next(x["count"] for x in m.by_purpose if x["purpose"] == p) for m in months)
                        for p in purposes}
    reviews = {c.category: c.count for c in report.table("examiner_reviews").cells}
    assert reviews == {"reviews_released": sum(m.reviews_released for m in months),
                       "leads_released": sum(m.leads_released for m in months),
                       "candidates_ruled_out": sum(m.candidates_ruled_out for m in months)}
    assert {c.category: c.count for c in report.table("alerts_raised").cells} == {
        "requester_day": 2, "flagged": 1, "other": 1}
    assert {c.category: c.count for c in report.table("alerts_reviewed").cells}["requester_day"] == 1


def test_the_standalone_file_inlines_its_css_with_print_rules_and_links_nothing(data_dir):
    log, _ = planted_log(data_dir)
    html = render_html(transparency.build(log.entries(), 2026, TZ))
    assert "<style>" in html and "@media print" in html and "@page" in html
    assert "<link" not in html and "<script" not in html and "src=" not in html
    assert wording.public_report_title(2026) in html


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data_dir: Path) -> Path:
    config = tmp_path / "settings.toml"
    config.write_text('timezone = "America/Los_Angeles"\n')
    monkeypatch.setenv("BOT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("BOT_CONFIG", str(config))
    monkeypatch.setenv("BOT_AUDIT_KEY", KEY)
    monkeypatch.setenv("SUDO_USER", "auditor")
    return config


def test_the_cli_writes_the_html_and_the_csv_after_checking_the_chain_and_audits_it(cli_env, data_dir, tmp_path,
                                                                                    capsys):
    log, planted = planted_log(data_dir)
    out = tmp_path / "public"
    out.mkdir()
    assert cli.main(["audit", "report", "--public", "--year", "2026", "--out", str(out)]) == 0
    html, csv_file = out / "transparency-2026.html", out / "transparency-2026.csv"
    assert html.read_text().startswith("<!doctype html>") and "@media print" in html.read_text()
    assert csv_file.read_bytes().startswith(b"table,category,count\r\nrequests_by_month,2026-01,12\r\n")
    assert stat.S_IMODE(os.stat(csv_file).st_mode) == 0o600
    assert "integrity check passed on" in html.read_text()
    for token in planted:
        assert token not in html.read_text() and token not in csv_file.read_text(), token
    [access] = [e for e in log.entries() if e.get("action") == "public_report"]
    assert access["query"] == {"year": 2026} and access["results"] == 22 and str(html) in access["out_file"]

    capsys.readouterr()
    assert cli.main(["audit", "report", "--public", "--year", "2026"]) == 0  # the CSV on standard output
    assert capsys.readouterr().out.replace("\r\n", "\n") == csv_file.read_text()
    edit_in_place(data_dir / "audit" / "audit.jsonl", b"Kumquat rhapsody 0001", b"Kumquat rhapsody 9001")
    assert cli.main(["audit", "report", "--public", "--year", "2026", "--out", str(out)]) == 4  # still written
    assert "FAILED" in html.read_text()
    assert cli.main(["audit", "report", "--public", "--year", "2026", "--out", str(out / "missing")]) == 1
    assert cli.main(["audit", "report", "--year", "2026"]) == 1  # --year is the public report's
