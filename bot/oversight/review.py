"""Command-staff review of the audit log: queries, export, discovery bundle, and the time helpers the monthly
report (bot.oversight.monthly) shares.

Pure functions over audit entries do the work; the thin wrappers that take an `AuditLog` also record the read
as an `audit_access` entry (CJIS: reading the audit is audited), then return plain data. Texts come from
`bot.wording`. Both adapters use this module: the CLI (`python -m bot audit export|bundle`) and the
Slack `/frs` command.

Dates given by people (`--since`, `--until`, `--month`, `/frs audit @user since ...`) are calendar days in the
configured timezone; entry times (`ts`, `uploaded_at`, `result_at`) are UTC and converted for display.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot import __version__, policy, wording
from bot.audit.chain import canonical
from bot.audit.entries import iso_utc, parse_ts
from bot.controls.examination import as_listed, review_outcomes
from bot.oversight.evidence import verification_dict
from bot.store.audit_log import AuditLog

TOOL_NAME = "frbot"
EXPORT_FORMATS = ("csv", "jsonl")
# Spreadsheets run a cell starting with one of these as a formula (CSV injection); tab and CR too (OWASP).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
BUNDLE_FILES = ("entries.jsonl", "summary.json", "summary.txt", "verification.json")


# --- Time helpers ---------------------------------------------------------------------------------------------


def zone(tz: str) -> ZoneInfo:
    """The configured timezone; ValueError naming the setting when it is not a known IANA name."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone {tz!r} in the settings is not a known IANA time zone name "
                         "(for example America/Los_Angeles)") from None


def local_midnight(day: date, tz: str) -> datetime:
    """Midnight starting `day` in the configured timezone, as an aware UTC datetime."""
    return datetime.combine(day, time(0), tzinfo=zone(tz)).astimezone(UTC)


def day_range(since: date | None, until: date | None, tz: str) -> tuple[datetime | None, datetime | None]:
    """UTC bounds [start, end) covering the local days since..until, both inclusive (None = open)."""
    if since and until and since > until:
        raise ValueError(f"the start day {since} is after the end day {until}")
    start = local_midnight(since, tz) if since else None
    end = local_midnight(until + timedelta(days=1), tz) if until else None
    return start, end


def parse_month(text: str) -> tuple[int, int]:
    """(year, month) from "YYYY-MM"; ValueError with the expected form otherwise."""
    try:
        parsed = datetime.strptime(text.strip(), "%Y-%m")
    except (ValueError, AttributeError):
        raise ValueError(f"{text!r} is not a month: use YYYY-MM, for example 2026-03") from None
    if len(text.strip()) != 7:
        raise ValueError(f"{text!r} is not a month: use YYYY-MM, for example 2026-03")
    return parsed.year, parsed.month


def month_days(year: int, month: int) -> list[date]:
    """Every day of the month."""
    first = date(year, month, 1)
    nxt = date(year + month // 12, month % 12 + 1, 1)
    return [first + timedelta(days=i) for i in range((nxt - first).days)]


def previous_month(now: datetime, tz: str) -> str:
    """"YYYY-MM" of the last complete month in the configured timezone (a default for `/frs report`)."""
    today = now.astimezone(zone(tz)).date()
    last = today.replace(day=1) - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def local_time(ts: str | None, tz: str) -> str:
    """"YYYY-MM-DD HH:MM:SS" of a UTC ISO timestamp in the configured timezone ("" when absent)."""
    if not ts:
        return ""
    try:
        return parse_ts(ts).astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        return ""


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from one UTC ISO timestamp to another; None when either is missing or unreadable."""
    if not start or not end:
        return None
    try:
        return (parse_ts(end) - parse_ts(start)).total_seconds()
    except (TypeError, ValueError):
        return None


def _actor(actor: Any) -> dict[str, str]:
    """An actor as {"id", "name"} from a dict, a `Requester` or a plain id string."""
    if hasattr(actor, "as_dict"):
        actor = actor.as_dict()
    if isinstance(actor, Mapping):
        return {"id": str(actor.get("id", "")), "name": str(actor.get("name", actor.get("id", "")))}
    return {"id": str(actor), "name": str(actor)}


# --- Queries for /frs -------------------------------------------------------------------------------------------


def audit_by_call(log: AuditLog, call_number: str, actor: Any) -> list[dict]:
    """Every search entry for a call number, in log order, each with `refused_answers` (how many answers its
    request had refused, from its `refusal` entries); records the query as an `audit_access` entry."""
    found = with_refusals(log, log.find(call_number=call_number, kinds=["search"]))
    log.record_access(_actor(actor), "query", {"call_number": call_number}, results=len(found))
    return found


def with_refusals(log: AuditLog, entries: list[dict]) -> list[dict]:
    """The entries, each with `refused_answers`: the `refusal` entries of its request (index look-ups)."""
    out = []
    for entry in entries:
        rid = entry.get("request_id")
        refused = len(log.find(request_id=rid, kinds=["refusal"])) if rid else 0
        item = {**entry, "refused_answers": refused} if refused else entry
        if rid and entry.get("outcome") == "review":  # listed by its final outcome and what it released
            final = review_outcomes(log.find(request_id=rid, kinds=["review"])).get(str(rid))
            if final:
                item = {**item, **as_listed(final)}
        out.append(item)
    return out


def audit_by_user(log: AuditLog, user_id: str, since: date | None, actor: Any, tz: str) -> list[dict]:
    """Every search entry requested by `user_id` (since the start of local day `since`, if given).

    Records the query as an `audit_access` entry.
    """
    start, _ = day_range(since, None, tz)
    found = with_refusals(log, log.find(requester_id=user_id, since=start, kinds=["search"]))
    query: dict[str, Any] = {"requester_id": user_id, "since": since.isoformat() if since else None}
    log.record_access(_actor(actor), "query", query, results=len(found))
    return found


# --- Export -------------------------------------------------------------------------------------------------------

CSV_COLUMNS: tuple[str, ...] = (
    "seq", "ts", "local_time", "kind", "outcome", "request_id", "requester_id", "requester_name",
    "source", "channel", "thread_ts", "permalink", "file_id", "image_name",
    "call_number", "call_thread_ts", "purpose", "justification", "attested",
    "probe_sha256", "faces", "face_index", "face_box", "candidate_count", "candidates",
    "threshold", "target_fpir", "calibration", "nearest_distances", "face_quality",
    "gallery_subjects", "gallery_images", "model", "versions",
    "uploaded_at", "answer_times", "result_at", "seconds_to_result",
    "denied", "error", "actor_id", "actor_name", "action", "query", "other", "mac",
)
# Fields shown in their own column (or folded into one); everything else goes, as JSON, into "other".
_CONSUMED = frozenset({
    "seq", "ts", "kind", "outcome", "request_id", "requester", "source", "channel", "thread_ts", "permalink",
    "file_id", "image_name", "file_name", "call_number", "call_thread_ts", "purpose", "justification", "attestation",
    "probe_sha256", "faces", "face_index", "candidates", "threshold", "target_fpir", "operating_point",
    "nearest_distances", "gallery_subjects", "gallery_images",
    "model", "versions", "uploaded_at", "answer_times", "result_at", "denied", "error", "actor", "action",
    "query", "prev", "mac",
})


def select_entries(
    entries: Iterable[Mapping[str, Any]],
    *,
    since: date | None = None,
    until: date | None = None,
    tz: str,
    kinds: Iterable[str] | None = None,
) -> list[dict]:
    """Entries whose `ts` falls on the local days since..until (inclusive), of the given kinds, in order."""
    start, end = day_range(since, until, tz)
    wanted = set(kinds) if kinds else None
    chosen = []
    for entry in entries:
        if wanted is not None and entry.get("kind") not in wanted:
            continue
        ts = parse_ts(entry["ts"])
        if (start and ts < start) or (end and ts >= end):
            continue
        chosen.append(dict(entry))
    return chosen


def neutralise_cell(value: str) -> str:
    """Prefix a cell a spreadsheet would run as a formula (= + - @, tab, CR) with a single quote."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def _compact_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _person(value: Any) -> tuple[str, str]:
    if isinstance(value, Mapping):
        return str(value.get("id") or ""), str(value.get("name") or "")
    if isinstance(value, str):
        return value, ""
    return "", ""


def candidates_cell(candidates: Sequence[Mapping[str, Any]] | None) -> str:
    """Candidates as "subject:distance:fpir_estimate;..." in rank order ("subject:distance" for entries
    written before the calibrated decision, which carry no estimate)."""
    ordered = sorted(candidates or [], key=lambda c: c.get("rank") or 0)
    return ";".join(
        f"{c.get('subject_id', '')}:{c.get('distance', '')}"
        + (f":{c['fpir_estimate']}" if c.get("fpir_estimate") is not None else "")
        for c in ordered
    )


def calibration_cell(point: Any) -> str | None:
    """The operating point as "method size date n": e.g. "gallery 1630 2026-12-01T09:00:00Z 1630"."""
    if not isinstance(point, Mapping) or not point:
        return None
    return " ".join(str(point.get(k, "")) for k in ("method", "gallery_size", "calibrated_at", "sample_size"))


def chosen_face(entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The face entry that was searched (faces numbered from 1), or None."""
    faces = entry.get("faces") or []
    index = entry.get("face_index")
    for face in faces if isinstance(faces, list) else []:
        if isinstance(face, Mapping) and face.get("index") == index:
            return face
    return None


def chosen_face_box(entry: Mapping[str, Any]) -> dict | None:
    """The box of the face that was searched (faces numbered from 1), or None."""
    face = chosen_face(entry)
    return face.get("box") if face is not None else None


def _face_quality(entry: Mapping[str, Any]) -> str | None:
    """The searched face's quality: "ok", "too_small", or "low: soft, turned" (old entries: the string)."""
    face = chosen_face(entry)
    if face is None:
        return None
    from bot.faces.quality import level_of, problems

    level = level_of(face)
    q = face.get("quality")
    found = problems(q) if isinstance(q, Mapping) else ()
    return f"{level}: {', '.join(found)}" if level == "low" and found else level


def image_name(entry: Mapping[str, Any]) -> str | None:
    """The photo's file name: `image_name` from the CLI, `file_name` (the Slack upload's) from Slack."""
    return entry.get("image_name") or entry.get("file_name")


def flatten_entry(entry: Mapping[str, Any], tz: str) -> dict[str, Any]:
    """One CSV row: nested fields flattened, values a spreadsheet could run as formulas neutralised."""
    requester_id, requester_name = _person(entry.get("requester"))
    actor_id, actor_name = _person(entry.get("actor"))
    attestation = entry.get("attestation")
    attested = attestation.get("attested") if isinstance(attestation, Mapping) else attestation
    box = chosen_face_box(entry)
    faces = entry.get("faces")
    candidates = entry.get("candidates")
    versions = entry.get("versions")
    denied = entry.get("denied")
    other = {k: v for k, v in entry.items() if k not in _CONSUMED}
    row: dict[str, Any] = {
        "seq": entry.get("seq"),
        "ts": entry.get("ts"),
        "local_time": local_time(entry.get("ts"), tz),
        "kind": entry.get("kind"),
        "outcome": entry.get("outcome"),
        "request_id": entry.get("request_id"),
        "requester_id": requester_id,
        "requester_name": requester_name,
        "source": entry.get("source"),
        "channel": entry.get("channel"),
        "thread_ts": entry.get("thread_ts"),
        "permalink": entry.get("permalink"),
        "file_id": entry.get("file_id"),
        "image_name": image_name(entry),
        "call_number": entry.get("call_number"),
        "call_thread_ts": entry.get("call_thread_ts"),
        "purpose": entry.get("purpose"),
        "justification": entry.get("justification"),
        "attested": "" if attested is None else ("yes" if attested else "no"),
        "probe_sha256": entry.get("probe_sha256"),
        "faces": len(faces) if isinstance(faces, list) else None,
        "face_index": entry.get("face_index"),
        "face_box": ";".join(f"{k}={box[k]}" for k in ("left", "top", "right", "bottom") if k in box)
        if isinstance(box, Mapping) else None,
        "candidate_count": len(candidates) if isinstance(candidates, list) else None,
        "candidates": candidates_cell(candidates) if isinstance(candidates, list) else None,
        "threshold": entry.get("threshold"),
        "target_fpir": entry.get("target_fpir"),
        "calibration": calibration_cell(entry.get("operating_point")),
        "nearest_distances": ";".join(str(d) for d in entry.get("nearest_distances") or []) or None,
        "face_quality": _face_quality(entry),
        "gallery_subjects": entry.get("gallery_subjects"),
        "gallery_images": entry.get("gallery_images"),
        "model": entry.get("model"),
        "versions": ";".join(f"{k}={v}" for k, v in sorted(versions.items()))
        if isinstance(versions, Mapping) else versions,
        "uploaded_at": entry.get("uploaded_at"),
        "answer_times": _compact_json(entry["answer_times"]) if entry.get("answer_times") else None,
        "result_at": entry.get("result_at"),
        "seconds_to_result": seconds_between(entry.get("uploaded_at"), entry.get("result_at")),
        "denied": " | ".join(str(r) for r in denied) if isinstance(denied, list) else denied,
        "error": entry.get("error"),
        "actor_id": actor_id,
        "actor_name": actor_name,
        "action": entry.get("action"),
        "query": _compact_json(entry["query"]) if "query" in entry else None,
        "other": _compact_json(other) if other else None,
        "mac": entry.get("mac"),
    }
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None:
            value = ""
        elif isinstance(value, (dict, list)):
            value = _compact_json(value)
        if isinstance(value, str):
            value = neutralise_cell(value)  # numbers we format ourselves are safe; text people typed may not be
        out[key] = value
    return out


def to_csv(entries: Iterable[Mapping[str, Any]], tz: str) -> str:
    """CSV text: a header row, then one row per entry; RFC 4180 (quote as needed, CRLF line ends)."""
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writeheader()
    for entry in entries:
        writer.writerow(flatten_entry(entry, tz))
    return buf.getvalue()


def to_jsonl(entries: Iterable[Mapping[str, Any]]) -> str:
    """One entry per line, exactly as the log stores it (canonical JSON), so every mac can be rechecked."""
    return "".join(canonical(dict(e)).decode("utf-8") + "\n" for e in entries)


def export_bytes(entries: Sequence[Mapping[str, Any]], fmt: str, tz: str) -> bytes:
    """The export file's bytes: CSV as UTF-8 with a byte-order mark (so Excel reads it as UTF-8), JSONL as UTF-8."""
    if fmt == "csv":
        return to_csv(entries, tz).encode("utf-8-sig")
    if fmt == "jsonl":
        return to_jsonl(entries).encode("utf-8")
    raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")


def export(
    log: AuditLog,
    *,
    fmt: str,
    tz: str,
    actor: Any,
    since: date | None = None,
    until: date | None = None,
    kinds: Iterable[str] | None = None,
    out_file: str = "-",
) -> tuple[bytes, int]:
    """Export entries (local days since..until, inclusive); records an `audit_access` entry.

    Returns (file bytes, number of entries). `out_file` is only recorded ("-" for stdout). The caller judges the
    output by the whole chain (bot.oversight.evidence).
    """
    kinds = list(kinds) if kinds else None
    query = {"since": since.isoformat() if since else None, "until": until.isoformat() if until else None,
             "format": fmt, "kinds": kinds}
    entries = select_entries(log.entries(), since=since, until=until, tz=tz, kinds=kinds)
    data = export_bytes(entries, fmt, tz)
    log.record_access(_actor(actor), "export", query, results=len(entries), out_file=out_file)
    return data, len(entries)


# --- Discovery bundle ---------------------------------------------------------------------------------------------


class UnknownRequest(LookupError):
    """No audit entry carries this request id."""


def _slack_link(permalink: str | None, channel: str | None, ts: str | None) -> str | None:
    """A message link in another channel, built from a permalink of the same workspace: .../archives/C/p<ts>."""
    if not (permalink and channel and ts) or "/archives/" not in permalink:
        return None
    base = permalink.split("/archives/", 1)[0]
    return f"{base}/archives/{channel}/p{ts.replace('.', '')}"


def request_summary(entries: Sequence[Mapping[str, Any]], *, dispatch_channel: str = "") -> dict[str, Any]:
    """What a discovery reader needs from a request's entries, taken from its final `search` entry (refusals and
    later kinds are listed, never taken for the record)."""
    searches = [e for e in entries if e.get("kind") == "search"]
    final = dict(searches[-1] if searches else entries[-1])
    examined = review_outcomes(entries).get(str(final.get("request_id")))
    if examined and final.get("outcome") == "review":
        final["outcome"] = examined["outcome"]  # the request's final outcome: its release's
    purpose = policy.purpose_by_code(final.get("purpose"))
    attestation = final.get("attestation")
    attestation = dict(attestation) if isinstance(attestation, Mapping) else {"attested": bool(attestation)}
    requester_id, requester_name = _person(final.get("requester"))
    call_channel = final.get("call_channel") or dispatch_channel or None
    call_thread_link = (final.get("call_permalink") or final.get("call_thread_permalink")
                        or _slack_link(final.get("permalink"), call_channel, final.get("call_thread_ts")))
    candidates = sorted(final.get("candidates") or [], key=lambda c: c.get("rank") or 0)
    versions = final.get("versions") if isinstance(final.get("versions"), Mapping) else {}
    return {
        "request_id": final.get("request_id"),
        "outcome": final.get("outcome"),
        "outcome_label": wording.outcome_label(str(final.get("outcome"))),
        "requester": {"id": requester_id, "name": requester_name},
        "policy_answers": {
            "call_number": final.get("call_number"),
            "purpose": final.get("purpose"),
            "purpose_label": purpose.label if purpose else None,
            "purpose_clause": purpose.clause if purpose else None,
            "justification": final.get("justification"),
            "attestation": attestation,
        },
        "denied": final.get("denied") or [],
        "refused_answers": [{"ts": e.get("ts"), "step": e.get("step"), "reason": e.get("reason"),
                             "text": e.get("text")} for e in entries if e.get("kind") == "refusal"],
        "flags": list(final.get("flags") or []),
        "examination": examined,
        "error": final.get("error"),
        "probe": {
            "sha256": final.get("probe_sha256"),
            "slack_file_id": final.get("file_id"),
            "image_name": image_name(final),
        },
        "faces": final.get("faces") or [],
        "face_index": final.get("face_index"),
        "chosen_face_box": chosen_face_box(final),
        "candidates": candidates,
        "threshold": final.get("threshold"),
        "target_fpir": final.get("target_fpir"),
        "operating_point": final.get("operating_point") or {},
        "nearest_distances": final.get("nearest_distances") or [],
        "model": final.get("model"),
        "versions": dict(versions),
        "gallery_subjects": final.get("gallery_subjects"),
        "gallery_images": final.get("gallery_images"),
        "source": final.get("source"),
        "slack": {
            "channel": final.get("channel"),
            "request_thread_ts": final.get("thread_ts"),
            "request_thread_link": final.get("permalink"),
            "call_channel": call_channel,
            "call_thread_ts": final.get("call_thread_ts"),
            "call_thread_link": call_thread_link,
        },
        "times_utc": {
            "uploaded_at": final.get("uploaded_at"),
            "answer_times": final.get("answer_times") or {},
            "result_at": final.get("result_at"),
            "recorded_at": final.get("ts"),
        },
        "audit_entries": [{"seq": e.get("seq"), "ts": e.get("ts"), "kind": e.get("kind"),
                           "outcome": e.get("outcome"), "mac": e.get("mac")} for e in entries],
        "caveat": wording.result_caveat(bool(candidates)),
    }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Bundle:
    """A built discovery bundle: the zip's bytes and what went into it."""

    data: bytes
    manifest: dict[str, Any]
    summary: dict[str, Any]
    verification: dict[str, Any]


def build_bundle(
    log: AuditLog,
    request_id: str,
    actor: Any,
    tz: str,
    *,
    out_file: str = "",
    dispatch_channel: str = "",
    now: datetime | None = None,
) -> Bundle:
    """Build the discovery bundle for one request; records an `audit_access` entry (action "bundle").

    The access is recorded before the chain is verified, so the verification in the bundle covers the
    record of the bundle's own making. Raises UnknownRequest (after recording the attempt) when no entry
    carries the request id. Its verification.json checks the whole chain (bot.oversight.evidence).
    """
    who = _actor(actor)
    entries = log.find(request_id=request_id)
    query = {"request_id": request_id}
    if not entries:
        log.record_access(who, "bundle", query, results=0, out_file=out_file)
        raise UnknownRequest(request_id)
    access = log.record_access(who, "bundle", query, results=len(entries), out_file=out_file)
    verification = verification_dict(log)  # every line, its own access entry included
    summary = request_summary(entries, dispatch_channel=dispatch_channel)
    summary["request_id"] = summary["request_id"] or request_id  # a folded refusal lists it among its attempts
    summary["timezone"] = tz
    files = {
        "entries.jsonl": to_jsonl(entries).encode("utf-8"),
        "summary.json": (json.dumps(summary, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8"),
        "summary.txt": (wording.bundle_summary_text(summary, verification, tz) + "\n").encode("utf-8"),
        "verification.json": (json.dumps(verification, indent=2, sort_keys=True) + "\n").encode("utf-8"),
    }
    created = now or datetime.now(UTC)
    manifest = {
        "request_id": request_id,
        "created_at": iso_utc(created),
        "created_by": who,
        "tool": {"name": TOOL_NAME, "version": __version__},
        "audit_access_seq": access["seq"],
        "files": {name: {"sha256": _sha256(data), "bytes": len(data)} for name, data in files.items()},
    }
    files["manifest.json"] = (json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()
    buf = io.BytesIO()
    stamp = created.astimezone(UTC).timetuple()[:6]
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=max(stamp, (1980, 1, 1, 0, 0, 0)))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            zf.writestr(info, data)
    return Bundle(buf.getvalue(), manifest, summary, verification)


def check_bundle(data: bytes) -> list[str]:
    """Problems found re-hashing a bundle's files against its manifest ([] when every hash matches)."""
    problems = []
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        names = set(zf.namelist()) - {"manifest.json"}
        for name, meta in manifest["files"].items():
            if name not in names:
                problems.append(f"{name} is missing")
            elif _sha256(zf.read(name)) != meta["sha256"]:
                problems.append(f"{name} does not match its SHA-256")
        problems += [f"{name} is not in the manifest" for name in sorted(names - set(manifest["files"]))]
    return problems
