"""`python -m bot audit verify|export|report|bundle`: the audit log's full check and command staff's reads (each
read audited; an output drawn from a log that does not verify is still written, and the exit code says so)."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot import wording
from bot.cli import common
from bot.cli.common import EXIT_BROKEN_CHAIN, EXIT_ERROR, EXIT_OK, emit
from bot.config import Settings


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    """`audit verify|export|report|bundle`; a log that cannot be opened (e.g. no key) is a one-line error."""
    from bot.store.audit_log import AuditError

    try:
        return _audit(args, settings)
    except (AuditError, OSError) as exc:
        emit(args, {"error": str(exc)}, f"error: {exc}", stream=sys.stderr)
        return EXIT_ERROR


def _audit(args: argparse.Namespace, settings: Settings) -> int:

    core = common.core(settings)
    if args.audit_cmd == "verify":
        log_path = settings.data_dir / "audit" / "audit.jsonl"
        if not core.backend.shared and not log_path.exists():  # opening the log would create a key file: say there is nothing instead
            print(f"no audit log at {log_path}: nothing to verify (is BOT_DATA_DIR right?)")
            if args.head:  # a head was published, so there was a log: all of it is gone
                from bot.store.audit_log import HeadCheck

                print(f"error: {wording.head_check_text(HeadCheck(*args.head, 'missing'))}", file=sys.stderr)
                return EXIT_ERROR
            return EXIT_OK
        return _verify(args, core)
    if args.audit_cmd == "accept-head":
        return cmd_audit_accept_head(args, core, settings)
    review_cmds = {"export": cmd_audit_export, "report": cmd_audit_report, "bundle": cmd_audit_bundle}
    if args.audit_cmd in review_cmds:
        try:
            return review_cmds[args.audit_cmd](args, settings, core)
        except ValueError as exc:  # a bad date, month or timezone: say which, change nothing
            emit(args, {"error": str(exc)}, f"error: {exc}", stream=sys.stderr)
            return EXIT_ERROR
    raise AssertionError(args.audit_cmd)


def _verify(args: argparse.Namespace, core: Any) -> int:
    """`audit verify`: every line of the chain (reads resume after a verified prefix; this never does), what broke
    it in words, entries moved aside into `.torn-*` side files, and the chain head against a published one."""
    from bot.audit.chain import damage

    result = core.audit.verify()
    set_aside = core.audit.side_file_entries()
    if not result.ok:
        found = damage(result, (e.get("seq") for e in core.audit.entries()))
        print(f"audit log BROKEN at entry {result.bad_seq}: {result.reason} — "
              f"{wording.audit_damage(found.kind, result.bad_seq, found.first, found.last)}.", file=sys.stderr)
        if result.reason == "mac mismatch" and result.bad_seq in (1, result.first_seq):
            print("(a mismatch from the very first entry usually means BOT_AUDIT_KEY is not the key that signed "
                  "this log)", file=sys.stderr)
    for name, seq in set_aside:
        print(wording.audit_entry_set_aside(name, seq), file=sys.stderr)
    if not result.ok or set_aside:
        return EXIT_ERROR
    # The last seq and mac let an auditor notice later truncation by keeping them elsewhere.
    print(f"audit log intact: {result.count} entries; last entry {result.last_seq} "
          f"(head {result.last_seq}:{result.last_mac or ''})")
    if result.torn_tail:
        print("warning: the log ends with an incomplete line (a write cut off by a crash, or bytes removed "
              "from the end); it is not an entry. The next entry written moves it to "
              "audit/audit.jsonl.torn-<time> instead of dropping it.", file=sys.stderr)
    if args.head:
        check = core.audit.check_head(*args.head)
        if not check.ok:
            print(f"error: {wording.head_check_text(check)}", file=sys.stderr)
            return EXIT_ERROR
        print(wording.head_check_text(check))
    return EXIT_OK


def cmd_audit_accept_head(args: argparse.Namespace, core: Any, settings: Settings) -> int:
    """`audit accept-head SEQ:MAC`: after an alarm that the log went backwards (bot.audit.heads), an administrator
    who has checked the log accepts its current head; audited. Only an intact log's own last entry is accepted."""
    from bot.audit.heads import ACCEPT_ACTION

    seq, mac = args.head
    who = common.os_requester(settings)
    result = core.audit.verify()
    if not result.ok:
        print(f"error: {wording.audit_chain_broken(result.bad_seq, result.reason)}", file=sys.stderr)
        return EXIT_ERROR
    check = core.audit.check_head(seq, mac)
    if not check.ok or seq != result.last_seq:
        print(f"error: {seq}:{mac[:16]} is not the audit log's head (it ends at entry {result.last_seq}, head "
              f"{result.last_seq}:{result.last_mac or ''}); accept the head `audit verify` prints", file=sys.stderr)
        return EXIT_ERROR
    core.audit.record_access(who.as_dict(), ACCEPT_ACTION, {"head": f"{seq}:{mac}"},
                             seq_accepted=seq, mac_accepted=check.actual_mac)
    print(wording.audit_head_accepted(seq, check.actual_mac))
    return EXIT_OK


def _head(text: str) -> tuple[int, str]:
    """argparse type for SEQ:MAC, a chain head as published (the MAC whole or its first 16+ hex digits)."""
    seq, _, mac = text.strip().partition(":")
    mac = mac.strip().lower()
    if not (seq.isdigit() and int(seq) >= 1 and len(mac) >= 16 and all(c in "0123456789abcdef" for c in mac)):
        raise argparse.ArgumentTypeError(f"{text!r}: {wording.HEAD_FORMAT}")
    return int(seq), mac


def _day(text: str):
    """argparse type for YYYY-MM-DD."""
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: use YYYY-MM-DD") from None


def _check_out(path: str | None) -> None:
    """Refuse an output path that is a folder, or whose folder is missing, before anything is read (and
    audited): the log must not record an export that then fails to be written."""
    if path and Path(path).is_dir():
        raise ValueError(f"cannot write {path}: it is a folder; give a file name")
    if path and Path(path).parent.is_dir() and not os.access(Path(path).parent, os.W_OK):
        raise ValueError(f"cannot write {path}: no permission to write in {Path(path).parent}")
    if path and not Path(path).parent.is_dir():
        raise ValueError(f"cannot write {path}: folder {Path(path).parent} does not exist")


def _write_out(path: str, data: bytes) -> None:
    """Write an output file 0600 (it holds audit data), crash-safely."""
    from bot.store.disk import write_private_atomic

    _check_out(path)
    write_private_atomic(Path(path), data)


def _chain_status(core: Any) -> int:
    """After a review output is written: 0 when the audit chain verifies; else say on stderr which entry breaks
    it (the output may hold altered or missing entries) and return 4 (CONTRACTS.md). Every line is checked, never
    only the tail after the verified prefix (bot.oversight.evidence)."""
    from bot.oversight.evidence import whole_chain

    result = whole_chain(core.audit)
    if result.ok:
        return EXIT_OK
    print(wording.audit_chain_broken(result.bad_seq, result.reason), file=sys.stderr)
    return EXIT_BROKEN_CHAIN


def cmd_audit_export(args: argparse.Namespace, settings: Settings, core: Any) -> int:
    """`audit export`: CSV (UTF-8 with BOM) or JSONL to --out or stdout; audited."""
    from bot.oversight import review

    review.zone(settings.timezone)
    review.day_range(args.since, args.until, settings.timezone)  # refuses since > until before any read
    _check_out(args.out)
    out = args.out or "-"
    data, count = review.export(
        core.audit, fmt=args.format, tz=settings.timezone, actor=common.os_requester(settings), since=args.since,
        until=args.until, kinds=args.kind, out_file=out,
    )
    if args.out:
        _write_out(args.out, data)
    else:
        sys.stdout.flush()
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:
            sys.stdout.write(data.decode("utf-8"))
    print(wording.export_written(count, args.format, args.out or "standard output"), file=sys.stderr)
    return _chain_status(core)


def cmd_audit_report(args: argparse.Namespace, settings: Settings, core: Any) -> int:
    """`audit report --month`: the monthly accountability report (text or --json), --png chart; audited.
    With --public: the year's public transparency report instead (`cmd_public_report`)."""
    from bot.oversight import monthly, review

    if args.public:
        return cmd_public_report(args, settings, core)
    if args.year or args.out:
        raise ValueError("--year and --out go with --public (the public report); the monthly report takes --month")
    review.zone(settings.timezone)
    month = args.month or review.previous_month(datetime.now(UTC), settings.timezone)
    review.parse_month(month)
    _check_out(args.png)
    report = monthly.monthly_report(core.audit, month, common.os_requester(settings), settings.timezone,
                                   png_file=args.png)
    if args.png:
        _write_out(args.png, monthly.report_chart_png(report))
    obj = report.as_json()
    if args.png:
        obj["png"] = args.png
    emit(args, obj, wording.report_text(report, for_slack=False))
    return _chain_status(core)


def cmd_public_report(args: argparse.Namespace, settings: Settings, core: Any) -> int:
    """`audit report --public [--year YYYY] [--out DIR]`: the public transparency report (counts only, small
    cells suppressed), as transparency-YEAR.html and .csv in DIR, or the CSV on stdout. The whole chain is
    checked before anything is written (its result is stated in the HTML); a broken chain still gives the report, the warning on
    stderr and exit 4. Audited (`audit_access`, action "public_report")."""
    from bot.console.public import render_html
    from bot.oversight import review, transparency
    from bot.oversight.evidence import whole_chain

    review.zone(settings.timezone)
    year = args.year or transparency.year_default(datetime.now(UTC), settings.timezone)
    if args.out and not Path(args.out).is_dir():
        raise ValueError(f"cannot write into {args.out}: it is not a folder")
    names = [str(Path(args.out) / f"transparency-{year}.{ext}") for ext in ("html", "csv")] if args.out else []
    for name in names:
        _check_out(name)
    report = transparency.build(core.audit.entries(), year, settings.timezone, settings.oversight.min_cell)
    core.audit.record_access(common.os_requester(settings).as_dict(), "public_report", {"year": year},
                             results=report.table("requests_by_month").total.count,
                             out_file=";".join(names) or "-")
    result = whole_chain(core.audit)  # every line, this report's own access entry included
    checked = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    report = dataclasses.replace(report, chain_ok=result.ok, checked_at=checked)
    data = transparency.csv_text(report)
    if args.out:
        _write_out(names[0], render_html(report, standalone=True).encode("utf-8"))
        _write_out(names[1], data.encode("utf-8"))
        print(wording.public_report_written(names), file=sys.stderr)
    else:
        sys.stdout.write(data)
        sys.stdout.flush()
    if result.ok:
        return EXIT_OK
    print(wording.audit_chain_broken(result.bad_seq, result.reason), file=sys.stderr)
    return EXIT_BROKEN_CHAIN


def cmd_audit_bundle(args: argparse.Namespace, settings: Settings, core: Any) -> int:
    """`audit bundle REQUEST_ID OUT.zip`: the discovery bundle; exit 1 for an unknown request; audited."""
    from bot.oversight import review

    review.zone(settings.timezone)
    _check_out(args.out)
    try:
        bundle = review.build_bundle(
            core.audit, args.request_id, common.os_requester(settings), settings.timezone, out_file=args.out,
            dispatch_channel=settings.slack.dispatch_channel,
        )
    except review.UnknownRequest:
        print(f"error: {wording.unknown_request(args.request_id)}", file=sys.stderr)
        return EXIT_ERROR
    _write_out(args.out, bundle.data)
    entries = len(bundle.summary["audit_entries"])
    print(wording.bundle_written(args.out, entries, bool(bundle.verification["ok"])))
    if bundle.verification["ok"]:  # checked from the first line, its own access entry included
        return EXIT_OK
    print(wording.audit_chain_broken(bundle.verification["bad_seq"], bundle.verification["reason"]), file=sys.stderr)
    return EXIT_BROKEN_CHAIN


def register(sub: Any) -> None:
    """The `audit` commands on the top-level parser's subparsers."""
    from bot.audit.entries import KINDS

    a = sub.add_parser("audit", help="the audit log")
    asub = a.add_subparsers(dest="audit_cmd", metavar="COMMAND", required=True)
    av = asub.add_parser("verify", help="check the HMAC chain, every line: exit 0 intact, 1 broken")
    av.add_argument("--head", type=_head, metavar="SEQ:MAC",
                    help="also check the log against a chain head published earlier ([audit] head_channel): "
                    "exit 1 when that entry is missing (entries cut off the end) or has another MAC")
    ah = asub.add_parser("accept-head", help="after a head alarm: accept the log's current head (audited); the "
                         "server posts heads again")
    ah.add_argument("head", type=_head, metavar="SEQ:MAC", help="the head `audit verify` prints for the log as it is now")
    ax = asub.add_parser(
        "export", help="export audit entries (CSV for spreadsheets, JSONL for full fidelity); audited",
        description="Export audit entries. Days are YYYY-MM-DD in the configured timezone, both inclusive. "
        "CSV: a header row, RFC 4180 quoting, CRLF line ends, UTF-8 with a byte-order mark so Excel reads "
        "accents and emoji correctly; cells starting with = + - @ get a leading ' so no spreadsheet runs "
        "them as formulas; nested fields are flattened (candidates as subject:distance;...). JSONL: one "
        "entry per line exactly as logged (macs can be rechecked). The export is recorded in the audit log.",
    )
    ax.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="first day, YYYY-MM-DD (inclusive)")
    ax.add_argument("--until", type=_day, metavar="YYYY-MM-DD", help="last day, YYYY-MM-DD (inclusive)")
    ax.add_argument("--format", choices=("csv", "jsonl"), default="csv",
                    help="csv (UTF-8 with BOM, opens in Excel/LibreOffice) or jsonl (default csv)")
    ax.add_argument("--kind", action="append", choices=KINDS, metavar="KIND",
                    help=f"only entries of this kind: {', '.join(KINDS)} (repeatable; default: every kind)")
    ax.add_argument("--out", metavar="FILE", help="output file, written 0600 (default: standard output)")
    ar = asub.add_parser("report", help="monthly accountability report (text, --json, --png chart); audited")
    ar.add_argument("--month", metavar="YYYY-MM",
                    help="the month, in the configured timezone (default: last month, as /frs report)")
    ar.add_argument("--png", metavar="FILE", help="also write a PNG chart (requests per ISO week, stacked by outcome)")
    ar.add_argument("--json", action="store_true", help="print one JSON object")
    ar.add_argument("--public", action="store_true",
                    help="the year's public transparency report instead: counts only, no names, ids, call numbers "
                    "or text; counts under [oversight] min_cell suppressed")
    ar.add_argument("--year", type=int, metavar="YYYY",
                    help="with --public: the calendar year, in the configured timezone (default: last year)")
    ar.add_argument("--out", metavar="DIR", help="with --public: write transparency-YEAR.html and "
                    "transparency-YEAR.csv into this folder (default: the CSV on standard output)")
    ab = asub.add_parser("bundle", help="discovery bundle (zip) for one request, with a SHA-256 manifest; audited")
    ab.add_argument("request_id", metavar="REQUEST-ID", help="request id, e.g. FR-3F9A0C12D4")
    ab.add_argument("out", metavar="ZIP", help="zip file to write (0600)")
    a.set_defaults(func=cmd_audit)
