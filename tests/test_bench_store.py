"""bench.store (issue 17's targets) runs end to end on a tiny scale: its own PostgreSQL started and removed, the
audit appends on both stores with the chains verified after, one leader failover between two processes. The
Slack parts need the faces and minutes: `make bench` runs them. Nothing here is timed."""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from bench import store


def test_the_store_bench_measures_both_stores_and_removes_its_database(capsys):
    base = Path(tempfile.gettempdir()) / f"frbot-pg-{os.getuid()}"
    before = set(base.glob("bench-*"))
    store.main(["--only", "appends,failover", "--appends", "40", "--failovers", "1"])
    out = capsys.readouterr().out
    # 3 rounds of 40 appends by 1 writer and 40 by 4 writers on each store: 240 entries, each chain verifying.
    assert "| … the chain afterwards | 240 entries verify | 240 entries verify |" in out
    for writers in ("1 writer", "4 writers"):
        [row] = [line for line in out.splitlines() if line.startswith(f"| audit appends a second, {writers}")]
        assert re.search(r"\| \d+ \| \d+ \| ×[\d.]+ \|", row), row  # a rate on each store and their ratio
    assert re.search(r"\| leader failover after kill -9, median / max s \(1 round,.*\| — \| [\d.]+ / [\d.]+ \|", out)
    assert "PostgreSQL 1" in out and "fsync=" in out  # which server and how durable, at the head
    assert set(base.glob("bench-*")) == before  # its PGDATA removed
