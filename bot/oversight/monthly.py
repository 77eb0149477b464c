"""The monthly accountability report (`python -m bot audit report`, `/frs report`, the console's report page):
counts by outcome, purpose and requester, timings, examiner reviews, approvals, the face models used, and the
month's sampled audit (sampled, reviewed, found wanting: bot.oversight.samples); its weekly chart as a PNG.

Pure over audit entries, apart from `monthly_report`, which reads the log and records the read as an
`audit_access` entry. Moved out of bot.oversight.review, which keeps the queries, the export and the bundle.
"""
from __future__ import annotations

import io
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

from bot import policy, wording
from bot.audit.entries import OUTCOMES, parse_ts
from bot.audit.refusals import folded_count
from bot.controls.examination import review_outcomes
from bot.oversight import samples
from bot.oversight.review import (
    _actor,
    _person,
    local_midnight,
    month_days,
    parse_month,
    seconds_between,
    zone,
)
from bot.store.audit_log import AuditLog

NO_PURPOSE = "none"  # bucket for refused requests whose purpose was missing or not one GO 375.01 B.1 permits
# Bucket for requests cancelled or left to expire before a purpose was given: nothing was refused.
ENDED_BEFORE_PURPOSE = "ended_before_purpose"


@dataclass
class WeekCount:
    """Requests in one ISO week, counting only the days that fall in the report's month."""

    label: str  # "W10"
    iso_year: int
    iso_week: int
    first_day: str  # YYYY-MM-DD, inside the month
    last_day: str
    by_outcome: dict[str, int]


@dataclass
class MonthlyReport:
    """The monthly accountability report: what `audit report` prints and `/frs report` posts."""

    month: str  # YYYY-MM
    timezone: str
    total: int
    by_outcome: dict[str, int]  # all six outcomes, in OUTCOMES order, zeros included
    # {"purpose", "label", "count"}: the three purposes, then NO_PURPOSE and ENDED_BEFORE_PURPOSE
    by_purpose: list[dict[str, Any]]
    by_requester: list[dict[str, Any]]  # {"id", "name", "count"}, most requests first
    searches_run: int  # candidates + no_candidate
    with_candidate: int
    candidate_share: float | None  # with_candidate / searches_run; None when no search ran
    median_seconds_to_result: float | None  # uploaded_at -> result_at; None when no search has both
    timed_searches: int
    weeks: list[WeekCount] = field(default_factory=list)
    refused_commands: int = 0  # /frs commands refused (audit queries, reports, status), folded ones counted
    refused_answers: int = 0  # answers refused in running requests (`refusal` entries: call number, purpose...)
    flagged: int = 0  # requests whose justification named a protected class (flag "protected_class")
    reviews_released: int = 0  # searches an examiner reviewed and released
    leads_released: int = 0
    candidates_ruled_out: int = 0  # by the examiners: never shown to a requester
    median_seconds_to_release: float | None = None  # queued -> released
    approvals: int = 0  # supervisor approvals before a search ([review] approval)
    approval_refusals: int = 0
    by_model: dict[str, int] = field(default_factory=dict)  # searches that ran, by face model ("id version")
    # The month's sampled audit (bot.oversight.samples), drawn on the 1st after it; reviews counted so far.
    sample_drawn: bool = False
    sample_population: int = 0  # the finished searches that ran, the sample was drawn from
    sampled: int = 0
    sample_reviewed: int = 0
    sample_found_wanting: int = 0

    @property
    def month_title(self) -> str:
        """"March 2026"."""
        year, month = parse_month(self.month)
        return date(year, month, 1).strftime("%B %Y")

    def as_json(self) -> dict[str, Any]:
        """A JSON-safe dict (what `--json` prints)."""
        data = asdict(self)
        data["month_title"] = self.month_title
        return data


def purpose_bucket(purpose: Any, outcome: Any) -> str:
    """Where a request counts by purpose: its purpose; without a permitted one, "ended before a purpose" when
    it was cancelled or expired (the officer stopped, nothing was refused), else "none" (refused)."""
    if purpose in policy.PURPOSE_CODES:
        return str(purpose)
    return ENDED_BEFORE_PURPOSE if outcome in ("cancelled", "expired") else NO_PURPOSE


def summarise_month(entries: Iterable[Mapping[str, Any]], month: str, tz: str) -> MonthlyReport:
    """Count the month's search entries (by `ts` in the configured timezone), and the refused `/frs` commands.
    A folded refusal (bot.audit.refusals) counts as the `count` attempts it stands for. Pure: reads nothing else."""
    year, mon = parse_month(month)
    days = month_days(year, mon)
    start = local_midnight(days[0], tz)
    end = local_midnight(days[-1] + timedelta(days=1), tz)
    zinfo = zone(tz)
    weeks: dict[tuple[int, int], WeekCount] = {}
    for day in days:
        iso = day.isocalendar()
        key = (iso.year, iso.week)
        if key not in weeks:
            weeks[key] = WeekCount(f"W{iso.week:02d}", iso.year, iso.week, day.isoformat(), day.isoformat(),
                                   {o: 0 for o in OUTCOMES})
        weeks[key].last_day = day.isoformat()

    outcomes: Counter[str] = Counter()
    purposes: Counter[str] = Counter()
    requesters: Counter[str] = Counter()
    from bot.faces import models

    models_used: Counter[str] = Counter()
    names: dict[str, str] = {}
    durations: list[float] = []
    total = refused_commands = refused_answers = flagged = 0
    entries = list(entries)
    reviewed = review_outcomes(entries)
    reviews_released = leads_released = ruled_out = approvals = approval_refusals = 0
    review_seconds: list[float] = []
    for entry in entries:
        if entry.get("kind") not in ("search", "audit_access", "refusal", "review"):
            continue
        ts = parse_ts(entry["ts"])
        if not start <= ts < end:
            continue
        if entry["kind"] == "review":
            approvals += entry.get("action") == "approve"
            approval_refusals += entry.get("action") == "refuse"
            continue
        if entry["kind"] == "refusal":
            refused_answers += 1
            continue
        n = folded_count(entry)
        if entry["kind"] == "audit_access":
            refused_commands += n if entry.get("allowed") is False else 0
            continue
        total += n
        flagged += n if "protected_class" in (entry.get("flags") or ()) else 0
        outcome = entry.get("outcome")
        if outcome == "review":  # the request's final outcome is its release's (or cancel's)
            item = reviewed.get(str(entry.get("request_id")), {})
            outcome = item.get("outcome", "review")
            if item.get("released_at"):
                reviews_released += 1
                leads_released += item["leads"]
                ruled_out += item["ruled_out"]
                seconds = seconds_between(item.get("queued_at"), item.get("released_at"))
                if seconds is not None and seconds >= 0:
                    review_seconds.append(seconds)
        outcomes[outcome] += n
        purpose = entry.get("purpose")
        purposes[purpose_bucket(purpose, outcome)] += n
        rid, rname = _person(entry.get("requester"))
        requesters[rid] += n
        names[rid] = rname or names.get(rid) or rid
        iso = ts.astimezone(zinfo).date().isocalendar()
        week = weeks.get((iso.year, iso.week))
        if week is not None and outcome in week.by_outcome:
            week.by_outcome[outcome] += n
        if outcome in ("candidates", "no_candidate"):
            seconds = seconds_between(entry.get("uploaded_at"), entry.get("result_at"))
            if seconds is not None and seconds >= 0:  # a negative span means a clock step: not a timing
                durations.append(seconds)
            models_used[models.name_in_entry(entry.get("model"))] += n
    ran = outcomes["candidates"] + outcomes["no_candidate"]
    sampled = samples.summary(entries, f"{year:04d}-{mon:02d}")
    by_purpose = [{"purpose": p.code, "label": p.label, "count": purposes[p.code]} for p in policy.PURPOSES]
    by_purpose += [{"purpose": bucket, "label": label, "count": purposes[bucket]} for bucket, label in (
        (NO_PURPOSE, wording.NO_PURPOSE_LABEL), (ENDED_BEFORE_PURPOSE, wording.ENDED_BEFORE_PURPOSE_LABEL))]
    by_requester = [{"id": rid, "name": names[rid], "count": n}
                    for rid, n in sorted(requesters.items(), key=lambda kv: (-kv[1], names[kv[0]].lower(), kv[0]))]
    return MonthlyReport(
        month=f"{year:04d}-{mon:02d}",
        timezone=tz,
        total=total,
        by_outcome={o: outcomes[o] for o in OUTCOMES},
        by_purpose=by_purpose,
        by_requester=by_requester,
        searches_run=ran,
        with_candidate=outcomes["candidates"],
        candidate_share=outcomes["candidates"] / ran if ran else None,
        median_seconds_to_result=statistics.median(durations) if durations else None,
        timed_searches=len(durations),
        weeks=list(weeks.values()),
        refused_commands=refused_commands,
        refused_answers=refused_answers,
        flagged=flagged,
        reviews_released=reviews_released,
        leads_released=leads_released,
        candidates_ruled_out=ruled_out,
        median_seconds_to_release=statistics.median(review_seconds) if review_seconds else None,
        approvals=approvals,
        approval_refusals=approval_refusals,
        by_model=dict(sorted(models_used.items())),
        sample_drawn=sampled.drawn,
        sample_population=sampled.population,
        sampled=sampled.sampled,
        sample_reviewed=sampled.reviewed,
        sample_found_wanting=sampled.found_wanting,
    )


def monthly_report(log: AuditLog, month: str, actor: Any, tz: str, *, png_file: str | None = None) -> MonthlyReport:
    """The month's report from the log; records an `audit_access` entry (action "report"). The caller judges the
    report by the whole chain (bot.oversight.evidence)."""
    query: dict[str, Any] = {"month": "{:04d}-{:02d}".format(*parse_month(month))}
    report = summarise_month(log.entries(), month, tz)
    extra = {"png_file": png_file} if png_file else {}
    log.record_access(_actor(actor), "report", query, results=report.total, **extra)
    return report


# Outcome colours: ran (blues/greys) apart from refused/failed (warm), readable in greyscale print too.
OUTCOME_COLOURS = {
    "candidates": "#1f77b4",
    "no_candidate": "#9ecae1",
    "denied": "#d62728",
    "error": "#ff7f0e",
    "cancelled": "#7f7f7f",
    "expired": "#c7c7c7",
    "review": "#6a51a3",
}


def report_chart_png(report: MonthlyReport) -> bytes:
    """PNG bytes: requests per ISO week of the month, stacked by outcome, titled, axes labelled, legend.

    Uses matplotlib's object API on the Agg canvas (no display, no pyplot global state: safe in the server).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(9, 5.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    labels = [wording.report_week_label(w.label, w.first_day, w.last_day) for w in report.weeks]
    positions = list(range(len(report.weeks)))
    bottoms = [0] * len(report.weeks)
    for outcome in OUTCOMES:
        heights = [w.by_outcome[outcome] for w in report.weeks]
        ax.bar(positions, heights, bottom=bottoms, color=OUTCOME_COLOURS[outcome], edgecolor="white",
               width=0.6, label=f"{wording.outcome_label(outcome)} ({report.by_outcome[outcome]})")
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    ax.set_xticks(positions, labels)
    ax.set_xlabel(wording.REPORT_CHART_XLABEL)
    ax.set_ylabel(wording.REPORT_CHART_YLABEL)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, max(max(bottoms, default=0), 1) * 1.15)
    ax.set_title(wording.report_chart_title(report.month_title, report.timezone, report.total))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, fontsize="small",
              title=wording.REPORT_CHART_LEGEND)
    if report.total == 0:
        ax.text(0.5, 0.5, wording.REPORT_NO_REQUESTS, transform=ax.transAxes, ha="center", va="center")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


