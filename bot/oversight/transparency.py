"""The public transparency report for a year (CONTRACTS ### 14): counts only, never a person.

Counts by month, purpose and outcome; examiner reviews and the leads they released; supervisor approvals;
alerts raised and reviewed, by rule; sampled audits (sampled, reviewed, found wanting). Nothing else leaves the
log: no names, user ids, call numbers, request ids, faces or free text. Categories are our own codes (months,
purposes, outcomes, rule ids), never a value someone typed.

Small counts are suppressed: a count from 1 to `min_cell` - 1 reads "<5" (for the default 5; zeros are shown,
they say nothing about a person). Complementary suppression: in a table with a total, one suppressed cell could be
worked out by subtracting the others from the total, so the next smallest count is suppressed with it (and reads
the same, so nobody can tell which of the two was small). Requests are counted as the monthly report counts them
(bot.oversight.monthly), by the search entry's `ts` in the configured timezone.

Pure over audit entries; `csv_text` gives the long form `table,category,count`. The HTML is bot.console.public's.
"""
from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from bot import policy, wording
from bot.audit.entries import OUTCOMES, parse_ts
from bot.audit.refusals import folded_count
from bot.controls.examination import review_outcomes
from bot.oversight import samples
from bot.oversight.monthly import ENDED_BEFORE_PURPOSE, NO_PURPOSE, purpose_bucket
from bot.oversight.review import local_midnight, zone

TOTAL = "total"
OTHER_RULE = "other"
# A rule id is a code of bot.oversight.alerts: lower-case words. Anything else is counted as "other", so a
# value that is not ours never reaches the public.
RULE_ID = re.compile(r"^[a-z][a-z_]{1,40}$")
PURPOSES = tuple(p.code for p in policy.PURPOSES) + (NO_PURPOSE, ENDED_BEFORE_PURPOSE)


@dataclass(frozen=True)
class Cell:
    """One count: its category code, the true count (never published when suppressed) and what is shown."""

    category: str
    count: int
    suppressed: bool = False

    def shown(self, min_cell: int) -> str:
        return f"<{min_cell}" if self.suppressed else str(self.count)


@dataclass(frozen=True)
class Table:
    """One table of the report: its code, cells in order and, when it has one, its total."""

    name: str
    cells: tuple[Cell, ...]
    total: Cell | None = None

    def rows(self) -> tuple[Cell, ...]:
        """The cells, then the total."""
        return self.cells + ((self.total,) if self.total is not None else ())


@dataclass(frozen=True)
class PublicReport:
    """The year's public report: tables of suppressed counts, the settings they were made with."""

    year: int
    timezone: str
    min_cell: int
    tables: tuple[Table, ...]
    chain_ok: bool | None = None  # the whole audit chain's check before the report was made (None: not checked)
    checked_at: str = ""

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)


def suppress(name: str, counts: Sequence[tuple[str, int]], min_cell: int, *, total: bool) -> Table:
    """A table with small counts suppressed, and with a total its complementary suppression (see the module)."""
    small = {i for i, (_, n) in enumerate(counts) if 0 < n < min_cell}
    whole = sum(n for _, n in counts)
    total_small = 0 < whole < min_cell  # then every non-zero cell is small too: nothing can be subtracted
    if total and not total_small and len(small) == 1:
        others = [(n, i) for i, (_, n) in enumerate(counts) if i not in small and n > 0]
        if others:
            small.add(min(others)[1])
    cells = tuple(Cell(c, n, i in small) for i, (c, n) in enumerate(counts))
    return Table(name, cells, Cell(TOTAL, whole, total_small) if total else None)


def _year_bounds(year: int, tz: str) -> tuple[Any, Any]:
    return local_midnight(date(year, 1, 1), tz), local_midnight(date(year + 1, 1, 1), tz)


def _alert_rule(entry: Mapping[str, Any]) -> str:
    rule = str(entry.get("rule") or "")
    return rule if RULE_ID.match(rule) else OTHER_RULE


def _alerts(entries: Sequence[Mapping[str, Any]], start: Any, end: Any) -> tuple[Counter[str], Counter[str]]:
    """Alerts raised in the year by rule, and how many of them were reviewed (an `alert_review` naming the alert
    by `alert_id`, or by its `seq` as `alert_seq`; each alert counted once)."""
    raised: Counter[str] = Counter()
    rule_of: dict[str, str] = {}
    for e in entries:
        if e.get("kind") == "alert" and start <= parse_ts(e["ts"]) < end:
            rule = _alert_rule(e)
            raised[rule] += 1
            for key in (f"id:{e.get('alert_id')}" if e.get("alert_id") else None, f"seq:{e.get('seq')}"):
                if key:
                    rule_of[key] = rule
    reviewed_keys: dict[str, str] = {}
    for e in entries:
        if e.get("kind") != "alert_review":
            continue
        key = f"id:{e['alert_id']}" if e.get("alert_id") else f"seq:{e.get('alert_seq')}"
        if key in rule_of:
            reviewed_keys.setdefault(key, rule_of[key])
    reviewed = Counter(reviewed_keys.values())
    return raised, reviewed


def build(entries: Iterable[Mapping[str, Any]], year: int, tz: str, min_cell: int = 5) -> PublicReport:
    """The year's public report from the log's entries (local calendar year in `tz`)."""
    zinfo = zone(tz)
    start, end = _year_bounds(year, tz)
    entries = list(entries)
    reviewed = review_outcomes(entries)
    months: Counter[int] = Counter()
    outcomes: Counter[str] = Counter()
    purposes: Counter[str] = Counter()
    examined: Counter[str] = Counter()
    for entry in entries:
        kind = entry.get("kind")
        if kind not in ("search", "review"):
            continue
        ts = parse_ts(entry["ts"])
        if not start <= ts < end:
            continue
        if kind == "review":
            examined["approved"] += entry.get("action") == "approve"
            examined["approval_refused"] += entry.get("action") == "refuse"
            continue
        n = folded_count(entry)
        outcome = entry.get("outcome")
        if outcome == "review":  # counted by its final outcome, as the monthly report does
            item = reviewed.get(str(entry.get("request_id")), {})
            outcome = item.get("outcome", "review")
            if item.get("released_at"):
                examined["reviews_released"] += 1
                examined["leads_released"] += item["leads"]
                examined["candidates_ruled_out"] += item["ruled_out"]
        months[ts.astimezone(zinfo).month] += n
        outcomes[str(outcome)] += n
        purposes[purpose_bucket(entry.get("purpose"), outcome)] += n
    raised, alerts_reviewed = _alerts(entries, start, end)
    rules = sorted(set(raised) | set(alerts_reviewed))
    counted = samples.summaries(entries)
    sampled = [s for month, s in counted.items() if month.startswith(f"{year:04d}-")]
    tables = (
        suppress("requests_by_month", [(f"{year:04d}-{m:02d}", months[m]) for m in range(1, 13)], min_cell, total=True),
        suppress("requests_by_purpose", [(p, purposes[p]) for p in PURPOSES], min_cell, total=True),
        suppress("requests_by_outcome", [(o, outcomes[o]) for o in OUTCOMES], min_cell, total=True),
        suppress("examiner_reviews", [(k, examined[k]) for k in (
            "reviews_released", "leads_released", "candidates_ruled_out")], min_cell, total=False),
        suppress("supervisor_approvals", [(k, examined[k]) for k in ("approved", "approval_refused")], min_cell,
                 total=True),
        suppress("alerts_raised", [(r, raised[r]) for r in rules], min_cell, total=True),
        suppress("alerts_reviewed", [(r, alerts_reviewed[r]) for r in rules], min_cell, total=True),
        suppress("sampled_audits", [
            ("sampled", sum(s.sampled for s in sampled)), ("reviewed", sum(s.reviewed for s in sampled)),
            ("found_wanting", sum(s.found_wanting for s in sampled))], min_cell, total=False),
    )
    return PublicReport(year, tz, min_cell, tables)


def csv_text(report: PublicReport) -> str:
    """The long form: a header `table,category,count`, then one row per count (totals as category "total");
    a suppressed count reads "<5" (for min_cell 5). RFC 4180, CRLF line ends."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(("table", "category", "count"))
    for table in report.tables:
        for cell in table.rows():
            writer.writerow((table.name, cell.category, cell.shown(report.min_cell)))
    return buf.getvalue()


def label(table: str, category: str) -> str:
    """Words for a category (the HTML's row headers): a month's name, a purpose's, an outcome's, a rule's."""
    if category == TOTAL:
        return wording.PUBLIC_TOTAL
    if table == "requests_by_month":
        year, month = (int(x) for x in category.split("-"))
        return date(year, month, 1).strftime("%B")
    if table == "requests_by_purpose":
        found = policy.purpose_by_code(category)
        if found:
            return found.label
        return wording.NO_PURPOSE_LABEL if category == NO_PURPOSE else wording.ENDED_BEFORE_PURPOSE_LABEL
    if table == "requests_by_outcome":
        return wording.outcome_label(category)
    return wording.PUBLIC_CATEGORIES.get(category) or category.replace("_", " ")


def year_default(now: Any, tz: str) -> int:
    """The last complete calendar year in the configured timezone (the default report)."""
    return (now.astimezone(zone(tz)).date().replace(month=1, day=1) - timedelta(days=1)).year
