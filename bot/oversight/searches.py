"""The console's searches list (CONTRACTS ### 14): its filters, its rows, its pages and its export.

A `SearchFilter` comes from the page's query string (`parse_filter`: every bad value named in a sentence from
bot.wording): *from* and *to* are calendar days in the configured timezone, both inclusive, as `audit export
--since/--until`; requester (a user id, or part of a name), purpose, outcome (the request's final one: a search
under examiner review takes its release's), call number (exactly, as stored), flagged (the justification named a
protected class) and reviewed (the search went through examiner review). With no query string at all, the page
shows the last DEFAULT_DAYS days.

`load` asks the log for the search entries of the date range only (a range reads only its part of the file, or a
WHERE on `at`), and for the review entries only when a search in it went to an examiner; the rest is pure. The
export holds every matching search entry in log order, through the CLI's own `select_entries` and
`export_bytes`, with the warning line first when the chain does not verify (bot.oversight.evidence).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from bot import policy, wording
from bot.audit.chain import parse_line
from bot.audit.entries import OUTCOMES, parse_ts
from bot.controls.examination import review_outcomes
from bot.oversight.review import day_range, export_bytes, local_time, select_entries, zone

PAGE_SIZE = 100
DEFAULT_DAYS = 30
YES_NO = ("yes", "no")
PURPOSE_CHOICES = tuple(p.code for p in policy.PURPOSES) + ("none",)  # "none": refused or ended before one
# The query string's names, in the form's order; "from" and "to" as the contract labels them.
FIELDS = ("from", "to", "requester", "purpose", "outcome", "call_number", "flagged", "reviewed")


@dataclass(frozen=True)
class SearchFilter:
    """What the searches page shows: each field empty (or None) when not asked for."""

    since: date | None = None  # "from"
    until: date | None = None  # "to"
    requester: str = ""
    purpose: str = ""
    outcome: str = ""
    call_number: str = ""
    flagged: bool | None = None
    reviewed: bool | None = None
    page: int = 1
    default_range: bool = False  # no query string at all: the last DEFAULT_DAYS days

    def params(self) -> dict[str, str]:
        """The filters as the form sends them (every field, empty when not set): links and the audit record."""
        def yes_no(value: bool | None) -> str:
            return "" if value is None else ("yes" if value else "no")

        return {"from": self.since.isoformat() if self.since else "", "to": self.until.isoformat() if self.until else "",
                "requester": self.requester, "purpose": self.purpose, "outcome": self.outcome,
                "call_number": self.call_number, "flagged": yes_no(self.flagged), "reviewed": yes_no(self.reviewed)}

    def query(self) -> dict[str, str]:
        """The filters set, for the view's `audit_access` entry."""
        return {k: v for k, v in self.params().items() if v}

    def query_string(self, page: int | None = None) -> str:
        """The address's query string for these filters (and `page`, when past the first)."""
        params = self.params()
        if page and page > 1:
            params["page"] = str(page)
        return urlencode(params)

    def bounds(self, tz: str) -> tuple[Any, Any]:
        """UTC [start, end) of the local days from..to (None = open)."""
        return day_range(self.since, self.until, tz)


def parse_filter(params: Mapping[str, str], *, today: date) -> tuple[SearchFilter, list[str]]:
    """The filter of a query string, and a sentence for each bad value (the filter then holds the good ones).
    `today` is the local date: with no parameter at all, the page shows the last DEFAULT_DAYS days."""
    if not any(params.get(name) is not None for name in (*FIELDS, "page")):
        return SearchFilter(since=today - timedelta(days=DEFAULT_DAYS - 1), default_range=True), []
    errors: list[str] = []

    def day(name: str) -> date | None:
        text = (params.get(name) or "").strip()
        if not text:
            return None
        try:
            if len(text) == 10:  # YYYY-MM-DD only (fromisoformat would also take 20260301)
                return date.fromisoformat(text)
        except ValueError:
            pass
        errors.append(wording.console_bad_date(name, text))
        return None

    def choice(name: str, choices: Sequence[str]) -> str:
        text = (params.get(name) or "").strip()
        if text and text not in choices:
            errors.append(wording.console_bad_choice(name.replace("_", " "), text, choices))
            return ""
        return text

    since, until = day("from"), day("to")
    if since and until and since > until:
        errors.append(wording.console_dates_reversed(since.isoformat(), until.isoformat()))
    flagged, reviewed = choice("flagged", YES_NO), choice("reviewed", YES_NO)
    page_text = (params.get("page") or "1").strip()
    page = int(page_text) if page_text.isdigit() and 0 < int(page_text) < 10**9 else 0
    if not page:
        errors.append(wording.console_bad_page(page_text))
    flt = SearchFilter(
        since=since, until=until, requester=(params.get("requester") or "").strip()[:200],
        purpose=choice("purpose", PURPOSE_CHOICES), outcome=choice("outcome", OUTCOMES),
        call_number=policy.normalise_call_number(params.get("call_number") or "")[:100] or "",
        flagged=None if not flagged else flagged == "yes", reviewed=None if not reviewed else reviewed == "yes",
        page=page or 1,
    )
    return flt, errors


@dataclass(frozen=True, slots=True)  # slots: a RowCache holds up to its limit of them
class SearchRow:
    """One search in the list. `outcome` is the request's final one; `candidates` what the search returned (to the
    examiner, under review), `released` how many an examiner released to the requester (None until released)."""

    seq: int
    ts: str
    time: str  # local, in the configured timezone
    request_id: str
    requester_id: str
    requester_name: str
    call_number: str
    purpose: str
    purpose_label: str
    outcome: str
    outcome_label: str
    candidates: int
    released: int | None
    flagged: bool
    reviewed: bool


def _requester(entry: Mapping[str, Any]) -> tuple[str, str]:
    who = entry.get("requester")
    if isinstance(who, Mapping):
        return str(who.get("id") or ""), str(who.get("name") or "")
    return (who, "") if isinstance(who, str) else ("", "")


def row_of(entry: Mapping[str, Any], reviews: Mapping[str, Mapping[str, Any]], tz: str) -> SearchRow:
    """The list's row for one `search` entry; `reviews` is bot.controls.examination.review_outcomes of the
    review entries written after it."""
    purpose = entry.get("purpose")
    found = policy.purpose_by_code(purpose if isinstance(purpose, str) else None)
    candidates = entry.get("candidates")
    requester_id, requester_name = _requester(entry)
    outcome = str(entry.get("outcome") or "")
    row = SearchRow(
        seq=int(entry.get("seq") or 0), ts=str(entry.get("ts") or ""), time=local_time(entry.get("ts"), tz),
        request_id=str(entry.get("request_id") or ""), requester_id=requester_id, requester_name=requester_name,
        call_number=str(entry.get("call_number") or ""), purpose=found.code if found else "none",
        purpose_label=found.label if found else wording.NO_PURPOSE_LABEL, outcome=outcome,
        outcome_label=wording.outcome_label(outcome),
        candidates=len(candidates) if isinstance(candidates, list) else 0, released=None,
        flagged="protected_class" in (entry.get("flags") or ()), reviewed=outcome == "review",
    )
    return with_review(row, reviews)


def with_review(row: SearchRow, reviews: Mapping[str, Mapping[str, Any]]) -> SearchRow:
    """A row of a search under examiner review, with its request's final outcome and how many were released."""
    item = reviews.get(row.request_id) if row.reviewed else None
    if not item:
        return row
    outcome = str(item.get("outcome") or row.outcome)
    return replace(row, outcome=outcome, outcome_label=wording.outcome_label(outcome),
                   released=len(item.get("shown") or []) if item.get("released_at") else None)


def matches(row: SearchRow, flt: SearchFilter) -> bool:
    """Whether a row passes every filter but the dates (the log was asked for the date range)."""
    if flt.requester:
        wanted = flt.requester.casefold()
        if wanted != row.requester_id.casefold() and wanted not in row.requester_name.casefold():
            return False
    return ((not flt.purpose or row.purpose == flt.purpose) and (not flt.outcome or row.outcome == flt.outcome)
            and (not flt.call_number or row.call_number == flt.call_number)
            and (flt.flagged is None or row.flagged == flt.flagged)
            and (flt.reviewed is None or row.reviewed == flt.reviewed))


@dataclass
class Found:
    """What the log gave for a filter: the search entries of its date range (and call number), in log order, and
    the review outcomes of those that went to an examiner."""

    searches: list[dict]
    reviews: dict[str, dict[str, Any]] = field(default_factory=dict)


def load(log: Any, flt: SearchFilter, tz: str) -> Found:
    """Ask the log (either store) for what the filter can show: the date range's search entries (by call number
    through its index, when one is asked for), then the review entries of those that went to an examiner and pass
    every other filter (only the outcome depends on a review)."""
    start, end = flt.bounds(tz)
    searches = log.find(since=start, until=end, kinds=["search"], call_number=flt.call_number or None)
    any_outcome = _any_outcome(flt)
    examined = [r for r in (row_of(e, {}, tz) for e in searches) if r.reviewed and matches(r, any_outcome)]
    return Found(searches, reviews_of(log, examined))


FEW = 10  # examined searches looked up one by one (by request id); more: every review since the first of them


def reviews_of(log: Any, examined: Sequence[SearchRow], cache: RowCache | None = None) -> dict[str, dict[str, Any]]:
    """bot.controls.examination.review_outcomes of the examined searches' requests. Reviews come after their
    search, perhaps past the range's end: a few requests are looked up by id (the offsets index, or the database's
    lines holding the id), more by reading every review since the first of them (parsed once with `cache`)."""
    if not examined:
        return {}
    if len(examined) <= FEW:
        found = {e["seq"]: e for r in examined for e in log.find(request_id=r.request_id, kinds=["review"])}
        return review_outcomes(found[seq] for seq in sorted(found))
    lines = log.find_lines(since=min(parse_ts(r.ts) for r in examined), kinds=["review"])
    read = map(cache.review, lines) if cache is not None else map(parse_line, lines)
    return review_outcomes(e for e in read if e is not None and e.get("kind") == "review")


def _any_outcome(flt: SearchFilter) -> SearchFilter:
    """The filter without its outcome (which a review decides)."""
    return replace(flt, outcome="")


class RowCache:
    """The row the list made of each search line it has read, by the line's digest (BLAKE2b), so a view parses only
    lines it has not seen: identical bytes make the identical row; an edited line is another line, parsed afresh.
    Rows are kept without their reviews (applied at each view). Bounded: past `limit` lines it starts again."""

    def __init__(self, tz: str, limit: int = 100_000) -> None:
        self.tz = tz
        self.limit = limit
        self.parsed = 0  # lines parsed so far (the rest were found here)
        self._rows: dict[bytes, tuple[SearchRow | None, datetime | None]] = {}
        self._reviews: dict[bytes, dict[str, Any] | None] = {}

    def row(self, line: bytes) -> tuple[SearchRow | None, datetime | None]:
        """(the row, its `ts`) of a search entry's line; (None, None) for any other line."""
        key = hashlib.blake2b(line, digest_size=16).digest()
        made = self._rows.get(key)
        if made is None:
            self.parsed += 1
            entry = parse_line(line)
            made = (None, None)
            if entry is not None and entry.get("kind") == "search":
                try:
                    ts = parse_ts(entry["ts"])
                except (KeyError, TypeError, ValueError):
                    ts = None
                made = (row_of(entry, {}, self.tz), ts)
            if len(self._rows) >= self.limit:
                self._rows.clear()
            self._rows[key] = made
        return made

    def review(self, line: bytes) -> dict[str, Any] | None:
        """The review entry on `line`, or None for any other line (parsed once, kept: review entries are small)."""
        key = hashlib.blake2b(line, digest_size=16).digest()
        if key not in self._reviews:
            self.parsed += 1
            entry = parse_line(line)
            if len(self._reviews) >= self.limit:
                self._reviews.clear()
            self._reviews[key] = entry if entry is not None and entry.get("kind") == "review" else None
        return self._reviews[key]


def list_rows(log: Any, flt: SearchFilter, tz: str, cache: RowCache) -> list[SearchRow]:
    """The page's matching rows, newest first, as `rows(load(...))` gives them, parsing only the lines `cache` has
    not seen (the log gives the date range's search lines unparsed: `find_lines`, either store)."""
    if flt.call_number:  # a lookup through the index: few lines, parsed
        return rows(load(log, flt, tz), flt, tz)
    start, end = flt.bounds(tz)
    base = []
    for line in log.find_lines(since=start, until=end, kinds=["search"]):
        row, ts = cache.row(line)
        if row is None or ((start or end) and (ts is None or (start and ts < start) or (end and ts >= end))):
            continue
        base.append(row)
    any_outcome = _any_outcome(flt)
    base = [r for r in base if matches(r, any_outcome)]
    reviews = reviews_of(log, [r for r in base if r.reviewed], cache)
    return sorted((r for r in (with_review(r, reviews) for r in base) if matches(r, flt)),
                  key=lambda r: (r.ts, r.seq), reverse=True)


def rows(found: Found, flt: SearchFilter, tz: str) -> list[SearchRow]:
    """Every matching row, newest first: by `ts`, then by the log's order (an entry written behind a clock that
    stepped back sits at its time, not at its place in the log)."""
    out = [row_of(e, found.reviews, tz) for e in found.searches]
    return sorted((r for r in out if matches(r, flt)), key=lambda r: (r.ts, r.seq), reverse=True)


@dataclass(frozen=True)
class SearchPage:
    """One page of the list: its rows, how many match in all, and the query strings of its neighbours."""

    rows: list[SearchRow]
    total: int
    page: int
    pages: int
    previous: str | None
    next: str | None


def page_of(matching: Sequence[SearchRow], flt: SearchFilter, size: int = PAGE_SIZE) -> SearchPage:
    """The filter's page of `matching` (a page past the end shows the last one)."""
    pages = max(1, -(-len(matching) // size))
    page = min(flt.page, pages)
    shown = list(matching[(page - 1) * size: page * size])
    return SearchPage(shown, len(matching), page, pages,
                      flt.query_string(page - 1) if page > 1 else None,
                      flt.query_string(page + 1) if page < pages else None)


def export_entries(found: Found, flt: SearchFilter, tz: str) -> list[dict]:
    """The search entries the filter matches (every page), in log order, chosen by the CLI's own
    `select_entries` for the date range, then by the other filters."""
    chosen = select_entries(found.searches, since=flt.since, until=flt.until, tz=tz, kinds=["search"])
    return [e for e in chosen if matches(row_of(e, found.reviews, tz), flt)]


def export_file(entries: Sequence[Mapping[str, Any]], fmt: str, tz: str, warning: str | None) -> bytes:
    """The CLI's export bytes (bot.oversight.review.export_bytes); when the chain does not verify, its warning is
    the first line, so the file never looks clean: a CSV row of one cell (after the byte-order mark), or a JSON
    object {"warning": ...} before the entries."""
    data = export_bytes(entries, fmt, tz)
    if warning is None:
        return data
    if fmt == "csv":
        buf = io.StringIO(newline="")
        csv.writer(buf, lineterminator="\r\n").writerow([warning])
        return "\ufeff".encode() + buf.getvalue().encode("utf-8") + data.removeprefix("\ufeff".encode())
    return (json.dumps({"warning": warning}, ensure_ascii=False) + "\n").encode("utf-8") + data


@dataclass(frozen=True)
class ChainStatus:
    """What the page says about the chain: `broken` shows the banner; `text` is the sentence."""

    broken: bool
    text: str


def chain_status(last_full: Any, tail: Any, tz: str) -> ChainStatus:
    """The chain as the page states it, never as clean on trust: broken when the last full check
    (bot.oversight.chain_check) failed or the check of what was written since (`tail`, a VerifyResult, or None
    when not run) fails; else the last full check's time, or that none has run yet."""
    for result in (tail, last_full):
        if result is not None and not result.ok:
            return ChainStatus(True, wording.console_chain_banner(result.bad_seq, result.reason))
    if last_full is None:
        return ChainStatus(False, wording.CONSOLE_CHAIN_NOT_CHECKED)
    return ChainStatus(False, wording.console_chain_checked(local_time(last_full.checked_at, tz),
                                                           last_full.count, last_full.by))


def today(now: Any, tz: str) -> date:
    """The local date of `now` (an aware datetime) in the configured timezone."""
    return now.astimezone(zone(tz)).date()


def purposes() -> list[tuple[str, str]]:
    """The purpose select's (value, label) pairs."""
    return [(p.code, p.label) for p in policy.PURPOSES] + [("none", wording.NO_PURPOSE_LABEL)]


def outcomes() -> list[tuple[str, str]]:
    """The outcome select's (value, label) pairs."""
    return [(o, wording.outcome_label(o)) for o in OUTCOMES]
