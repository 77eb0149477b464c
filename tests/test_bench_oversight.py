"""bench/oversight.py runs and reports what it measured (a small year, so the test stays quick)."""
from __future__ import annotations

from bench import oversight


def test_the_alert_bench_reports_the_entries_the_requesters_and_the_median(capsys):
    assert oversight.main(["--requesters", "6", "--days", "60", "--runs", "2"]) == 0
    out = capsys.readouterr().out
    assert "6 requesters" in out and "| every rule over the whole year |" in out
    assert "alerts on the ordinary year: none" in out
    assert "target (median <= 2 s over >= 100,000 entries): NOT MET" in out  # too few entries to count
