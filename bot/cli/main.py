"""`python -m bot ...`: the command-line adapter for personnel with direct access.

Exit codes (CONTRACTS.md): 0 the search ran; 1 error (audited as `error`); 2 denied by policy (audited as
`denied`); 3 a face must be chosen; 4 queued for an examiner or waiting for a supervisor's approval
(bot.cli.controls). With --json, stdout is exactly one JSON object for every exit code.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot import wording
from bot.cli import controls as cli_controls
from bot.cli.common import (
    EXIT_BROKEN_CHAIN,
    EXIT_CHOOSE_FACE,
    EXIT_DENIED,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_QUEUED,
)
from bot.cli.common import emit as _emit
from bot.cli.common import os_requester as _os_requester
from bot.cli.common import text_arg as _text
from bot.config import ConfigError, Settings, load_settings


def _read_probe(path: Path, max_bytes: int) -> bytes:
    """Read at most max_bytes + 1 so a huge file is refused without loading it all."""
    from bot.faces.images import ImageError

    if path.is_dir():
        raise ImageError("unreadable", f"{_text(str(path))} is a folder, not a photo.")
    if not path.is_file():
        raise ImageError("unreadable", f"No such image file: {_text(str(path))}")
    try:
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ImageError("unreadable", f"Cannot read {_text(str(path))}: {exc.strerror}.") from None
    if len(data) > max_bytes:
        raise ImageError("too_large", wording.image_too_large(max_bytes))
    return data


def _cli_purpose(value: str | None) -> str | None:
    """The exact code or its number (1-3); anything else is kept as typed and refused by the policy check.
    No keyword guessing here: the audit must record the purpose the analyst stated."""
    from bot import policy

    if value is None:
        return None
    value = value.strip()
    if value in ("1", "2", "3"):
        return policy.purpose_by_number(int(value)).code
    return value.lower() if value.lower() in policy.PURPOSE_CODES else value


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from bot import policy
    from bot.controls.approval import approval_reason
    from bot.faces.gallery import GalleryError
    from bot.faces.images import ImageError
    from bot.service import (
        Core,
        SearchUnavailable,
        check,
        new_request_id,
        record_denied,
        record_ended,
        search_face,
        utc_now,
    )
    from bot.store.audit_log import AuditError

    core = Core(settings)
    request_id = new_request_id()
    answers = policy.Answers(
        call_number=policy.normalise_call_number(_text(args.call_number)),
        purpose=_cli_purpose(_text(args.purpose)),
        justification=policy.collapse_whitespace(_text(args.justification)) if args.justification else None,
        attested=bool(args.attest),
    )
    requester = _os_requester()
    source = {"source": "cli", "uploaded_at": utc_now(), "image_name": _text(Path(args.image).name)}

    def say_error(message: str) -> int:
        _emit(args, {"request_id": request_id, "error": message}, f"error: {message}", stream=sys.stderr)
        return EXIT_ERROR

    # Nothing happens that the audit log could not record (a changed BOT_AUDIT_KEY, a damaged tail).
    try:
        core.audit.check_writable()
    except (AuditError, OSError) as exc:
        return say_error(wording.audit_unwritable(str(exc)))

    # Policy gates come before the image is decoded: a refused request never touches the photo.
    reasons = check(answers, settings)
    if reasons:
        record_denied(core, request_id=request_id, answers=answers, reasons=reasons, requester=requester,
                      source=source)
        text = wording.cli_denied(reasons)
        _emit(args, {"request_id": request_id, "denied": reasons}, text, stream=sys.stderr)
        return EXIT_DENIED

    def fail(message: str, **extra: Any) -> int:
        record_ended(core, outcome="error", request_id=request_id, answers=answers, requester=requester,
                     source=source, error=message, **extra)
        return say_error(message)

    try:
        face_choice = None if args.face is None else int(args.face)
    except ValueError:
        return fail(wording.bad_face_value(_text(args.face) or ""))
    data = b""
    try:
        data = _read_probe(Path(args.image), settings.images.max_bytes)
        probe = core.engine.analyse_sync(data, requester=requester.id)
        faces = [f.as_dict() for f in probe.faces]
        if not probe.faces:
            return fail(wording.NO_FACE, probe=probe)
        if face_choice is None and len(probe.faces) > 1:
            _emit(args, {"request_id": request_id, "faces": faces}, wording.cli_choose_face(faces),
                  stream=sys.stderr)
            return EXIT_CHOOSE_FACE
        index = 1 if face_choice is None else face_choice
        if not 1 <= index <= len(probe.faces):
            return fail(wording.bad_face_choice(index, len(probe.faces)), probe=probe, face_index=index)
        face = probe.faces[index - 1]
        slack_user = settings.review.cli_slack_users.get(requester.id.removeprefix("os:"), "")
        reason = approval_reason(settings.review.approval, policy.justification_flags(answers.justification))
        if reason:  # a supervisor approves first (in Slack): no search before that
            cli_controls.await_approval(core, settings, request_id=request_id, answers=answers, requester=requester,
                            slack_user=slack_user, reason=reason, source=source, probe=probe, face=face, data=data)
            _emit(args, {"awaiting_approval": request_id, "reason": reason},
                  wording.cli_awaiting_approval(request_id, reason, settings.review.approval_minutes, bool(slack_user)))
            return EXIT_QUEUED
        result = search_face(
            core, request_id=request_id, answers=answers, requester=requester, source=source,
            probe_sha256=probe.sha256, faces=faces, face=face, face_index=index,
            for_review=settings.review.mode == "examiner",
        )
        if result.outcome == "review":
            cli_controls.queue_for_examiner(core, settings, result, answers, requester, slack_user, data, face)
    except ImageError as exc:
        # The hash of what was read is recorded even when it is not an image (which file was tried).
        return fail(exc.message, probe_sha256=hashlib.sha256(data).hexdigest() if data else None)
    except (SearchUnavailable, GalleryError) as exc:
        return fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - any failure is still an audited error with one JSON object
        return fail(wording.search_crashed(f"{type(exc).__name__}: {exc}"))
    finally:
        core.close()
    if result.outcome == "review":
        _emit(args, {"queued_for_review": request_id}, wording.cli_queued_for_review(request_id, bool(slack_user)))
        return EXIT_QUEUED
    _emit(args, result.as_json(), wording.cli_result(result))
    return EXIT_OK


def cmd_gallery(args: argparse.Namespace, settings: Settings) -> int:
    """`gallery enroll|sync|list|remove|stats|thumbnails`; a damaged gallery or an audit log that cannot record the
    change is a clear error (exit 1) and changes nothing; Ctrl-C is one line and exit 130."""
    from bot.faces.gallery import GalleryError
    from bot.store.audit_log import AuditError

    try:
        return _gallery(args, settings)
    except (GalleryError, AuditError, OSError) as exc:  # OSError: e.g. BOT_DATA_DIR is a file or unwritable
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:  # Ctrl-C: the gallery commits in one step at the end, so nothing is half-done
        print(wording.gallery_interrupted(args.gallery_cmd), file=sys.stderr)
        return EXIT_INTERRUPTED


def _gallery(args: argparse.Namespace, settings: Settings) -> int:
    from bot.faces.enroll import enroll
    from bot.service import Core

    core = Core(settings)
    gallery = core.gallery
    if args.gallery_cmd == "enroll":
        try:
            report = enroll(
                gallery, core.engine, Path(args.directory),
                manifest=Path(args.manifest) if args.manifest else None,
                audit=core.audit, actor=_os_requester().id, progress=not args.no_progress,
            )
        finally:
            core.close()
        print(report.summary())
        return EXIT_OK
    if args.gallery_cmd == "list":
        subjects = gallery.subjects()
        if args.json:
            print(json.dumps(subjects, ensure_ascii=False, indent=2))
        else:
            for s in subjects:
                print(f"{s['subject_id']}\t{s['name']}\t{s.get('record_ref', '')}\t{s['images']} image(s)")
            print(f"{len(subjects)} subject(s)")
        return EXIT_OK
    if args.gallery_cmd == "sync":
        return _gallery_sync(args, core)
    if args.gallery_cmd == "remove":
        return _gallery_remove(args, core)
    if args.gallery_cmd == "thumbnails":
        return _gallery_thumbnails(args, core)
    stats = gallery.stats()
    cal = stats["calibration"]
    stats["operating_point"] = {**cal, "target_fpir": settings.search.target_fpir} if cal else None
    if args.json:
        print(json.dumps(stats, ensure_ascii=False, indent=2, default=str))
    else:
        print(wording.gallery_stats_text(stats))
    return EXIT_OK


def _gallery_sync(args: argparse.Namespace, core: Any) -> int:
    """Make the gallery equal to the manifest (bot.faces.sync); exit 1 when the removals need --yes."""
    from bot.faces.sync import sync

    max_share = core.settings.gallery.sync_max_remove_share
    try:
        report = sync(core.gallery, core.engine, Path(args.manifest), max_remove_share=max_share,
                      audit=None if args.dry_run else core.audit, actor=_os_requester().id, yes=args.yes,
                      dry_run=args.dry_run, progress=not args.no_progress)
    finally:
        core.close()
    if report.refused:
        print(wording.gallery_sync_needs_yes(len(report.plan.removals), report.plan.gallery_subjects, max_share),
              file=sys.stderr)
        return EXIT_ERROR
    print(wording.gallery_sync_text(report))
    return EXIT_OK


def _gallery_remove(args: argparse.Namespace, core: Any) -> int:
    """Remove a subject after a confirmation: asked on a terminal, `--yes` otherwise (a script or a pipe
    cannot answer, and removing the wrong person is not undone by re-running)."""
    subject = next((s for s in core.gallery.subjects() if s["subject_id"] == args.subject), None)
    if subject is None:
        print(f"error: no subject {args.subject!r} in the gallery", file=sys.stderr)
        return EXIT_ERROR
    who = (subject["subject_id"], subject.get("name") or "", int(subject.get("images") or 0))
    if not args.yes:
        if sys.stdin is None or not sys.stdin.isatty():
            print(wording.gallery_remove_needs_yes(*who), file=sys.stderr)
            return EXIT_ERROR
        try:
            answer = input(wording.gallery_remove_question(*who))
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print(wording.GALLERY_REMOVE_DECLINED)
            return EXIT_ERROR
    from bot.faces.enroll import interrupt_deferred

    with interrupt_deferred():  # the removal and its audit entries are never cut in two
        removed = core.gallery.remove(args.subject, audit=core.audit, actor=_os_requester().id)
    print(f"removed {args.subject}: {removed} image(s)")
    return EXIT_OK


def _gallery_thumbnails(args: argparse.Namespace, core: Any) -> int:
    """How many face crops are current; with --rebuild, cut the missing or smaller ones again from the source
    images (exit 1 when some could not be)."""
    from bot.faces import thumbnails

    if not args.rebuild:
        print(wording.gallery_thumbnails_text(thumbnails.status(core.gallery), rebuilt=False,
                                              crop_px=thumbnails.CROP_PX))
        return EXIT_OK
    try:
        report = thumbnails.rebuild(core.gallery, core.engine, audit=core.audit, actor=_os_requester().id,
                                    progress=not args.no_progress)
    finally:
        core.close()
    print(wording.gallery_thumbnails_text(report, rebuilt=True, crop_px=thumbnails.CROP_PX))
    return EXIT_ERROR if report.problems else EXIT_OK


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    """`audit verify|export|report|bundle`; a log that cannot be opened (e.g. no key) is a one-line error."""
    from bot.store.audit_log import AuditError

    try:
        return _audit(args, settings)
    except (AuditError, OSError) as exc:
        _emit(args, {"error": str(exc)}, f"error: {exc}", stream=sys.stderr)
        return EXIT_ERROR


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    from bot.service import Core

    core = Core(settings)
    if args.audit_cmd == "verify":
        log_path = settings.data_dir / "audit" / "audit.jsonl"
        if not log_path.exists():  # opening the log would create a key file: say there is nothing instead
            print(f"no audit log at {log_path}: nothing to verify (is BOT_DATA_DIR right?)")
            if args.head:  # a head was published, so there was a log: all of it is gone
                from bot.store.audit_log import HeadCheck

                print(f"error: {wording.head_check_text(HeadCheck(*args.head, 'missing'))}", file=sys.stderr)
                return EXIT_ERROR
            return EXIT_OK
        result = core.audit.verify()  # always every line: this is the full check (reads resume after a prefix)
        if result.ok:
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
        print(f"audit log BROKEN at entry {result.bad_seq}: {result.reason}", file=sys.stderr)
        if result.reason == "mac mismatch" and result.bad_seq in (1, result.first_seq):
            print("(a mismatch from the very first entry usually means BOT_AUDIT_KEY is not the key that signed "
                  "this log)", file=sys.stderr)
        return EXIT_ERROR
    if args.audit_cmd == "accept-head":
        return cmd_audit_accept_head(args, core)
    review_cmds = {"export": cmd_audit_export, "report": cmd_audit_report, "bundle": cmd_audit_bundle}
    if args.audit_cmd in review_cmds:
        try:
            return review_cmds[args.audit_cmd](args, settings, core)
        except ValueError as exc:  # a bad date, month or timezone: say which, change nothing
            _emit(args, {"error": str(exc)}, f"error: {exc}", stream=sys.stderr)
            return EXIT_ERROR
    raise AssertionError(args.audit_cmd)


def cmd_audit_accept_head(args: argparse.Namespace, core: Any) -> int:
    """`audit accept-head SEQ:MAC`: after an alarm that the log went backwards (bot.audit.heads), an administrator
    who has checked the log accepts its current head; audited. Only an intact log's own last entry is accepted."""
    from bot.audit.heads import ACCEPT_ACTION

    seq, mac = args.head
    result = core.audit.verify()
    if not result.ok:
        print(f"error: {wording.audit_chain_broken(result.bad_seq, result.reason)}", file=sys.stderr)
        return EXIT_ERROR
    check = core.audit.check_head(seq, mac)
    if not check.ok or seq != result.last_seq:
        print(f"error: {seq}:{mac[:16]} is not the audit log's head (it ends at entry {result.last_seq}, head "
              f"{result.last_seq}:{result.last_mac or ''}); accept the head `audit verify` prints", file=sys.stderr)
        return EXIT_ERROR
    core.audit.record_access(_os_requester().as_dict(), ACCEPT_ACTION, {"head": f"{seq}:{mac}"},
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
        core.audit, fmt=args.format, tz=settings.timezone, actor=_os_requester(), since=args.since,
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
    """`audit report --month`: the monthly accountability report (text or --json), --png chart; audited."""
    from bot.oversight import review

    review.zone(settings.timezone)
    review.parse_month(args.month)
    _check_out(args.png)
    report = review.monthly_report(core.audit, args.month, _os_requester(), settings.timezone,
                                   png_file=args.png)
    if args.png:
        _write_out(args.png, review.report_chart_png(report))
    obj = report.as_json()
    if args.png:
        obj["png"] = args.png
    _emit(args, obj, wording.report_text(report, for_slack=False))
    return _chain_status(core)


def cmd_audit_bundle(args: argparse.Namespace, settings: Settings, core: Any) -> int:
    """`audit bundle REQUEST_ID OUT.zip`: the discovery bundle; exit 1 for an unknown request; audited."""
    from bot.oversight import review

    review.zone(settings.timezone)
    _check_out(args.out)
    try:
        bundle = review.build_bundle(
            core.audit, args.request_id, _os_requester(), settings.timezone, out_file=args.out,
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


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    """`purge`: apply [retention] once; exit 1 when old audit entries were due but could not be purged."""
    from bot.oversight.retention import purge_expired

    report = purge_expired(settings, actor=_os_requester().id)
    print(report.text(), file=sys.stdout if report.ok else sys.stderr)
    return EXIT_OK if report.ok else EXIT_ERROR


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from bot.slack.server import serve

    return serve(settings)


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1, as one JSON object under --json: argparse's own 2 means "denied by policy" here."""

    wants_json = False

    def error(self, message: str):  # type: ignore[override]
        if _Parser.wants_json:
            print(json.dumps({"error": f"usage: {message}"}, ensure_ascii=False))
        else:
            self.print_usage(sys.stderr)
            print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_ERROR)


def build_parser() -> argparse.ArgumentParser:
    from bot.audit.entries import KINDS

    p = _Parser(prog="python -m bot", description=wording.CLI_DESCRIPTION)
    p.add_argument("--config", help="settings TOML (default $BOT_CONFIG or config/settings.toml)")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("search", help="1:N search of a probe photo (GO 375.01 gates apply)")
    s.add_argument("image", help="probe photo (JPEG, PNG, HEIC, WebP, GIF, BMP, TIFF)")
    # Optional to argparse on purpose: a missing answer is a policy denial (audited), not a usage error.
    s.add_argument("--call-number", help="dispatched call number, e.g. 26-012345")
    s.add_argument("--purpose", help="investigation | threat | identify")
    s.add_argument("--justification", help="the facts giving reasonable suspicion")
    s.add_argument("--attest", action="store_true", help="attest to the statement in the README (GO 375.01)")
    # A string on purpose: a bad value is an audited error (exit 1), not an argparse usage exit (2 = denied).
    s.add_argument("--face", help="which face to search when the photo has several (1 = leftmost)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_search)

    g = sub.add_parser("gallery", help="the known-person gallery")
    gsub = g.add_subparsers(dest="gallery_cmd", required=True)
    e = gsub.add_parser("enroll", help="enroll DIR/<subject_id>/<images> or a manifest CSV")
    e.add_argument("directory")
    e.add_argument("--manifest", help="CSV with header subject_id,name,record_ref,image[,status]")
    e.add_argument("--no-progress", action="store_true")
    gy = gsub.add_parser(
        "sync", help="make the gallery equal to a manifest CSV: add, update and remove subjects; audited",
        description="Make the gallery equal to the manifest: add people listed and not enrolled, update names, "
        "record references and images, remove people no longer listed or listed with a status that removes them "
        "(not_charged, dropped, acquitted, expunged; empty or eligible keeps them; any other status stops the "
        "sync). One audit entry per change; the gallery changes in one step at the end.",
    )
    gy.add_argument("--manifest", required=True, help="CSV with header subject_id,name,record_ref,image[,status] "
                    "(the enrollment manifest; images relative to the CSV)")
    gy.add_argument("--dry-run", action="store_true", help="print what would change; change and audit nothing")
    gy.add_argument("--yes", action="store_true",
                    help="allow removing more than [gallery] sync_max_remove_share of the subjects (default 10%%)")
    gy.add_argument("--no-progress", action="store_true")
    gl = gsub.add_parser("list", help="list subjects")
    gl.add_argument("--json", action="store_true")
    gr = gsub.add_parser("remove", help="remove a subject and all its images (asks first; --yes in scripts)")
    gr.add_argument("subject")
    gr.add_argument("--yes", action="store_true", help="do not ask (needed when standard input is not a terminal)")
    gs = gsub.add_parser("stats", help="gallery size and files")
    gs.add_argument("--json", action="store_true")
    gt = gsub.add_parser("thumbnails", help="the 320 px face crops: how many are current (--rebuild: make the rest)")
    gt.add_argument("--rebuild", action="store_true",
                    help="cut missing or smaller crops again from the source images (exit 1 when some cannot be)")
    gt.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=cmd_gallery)

    a = sub.add_parser("audit", help="the audit log")
    asub = a.add_subparsers(dest="audit_cmd", required=True)
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
    ax.add_argument("--since", type=_day, help="first day, YYYY-MM-DD (inclusive)")
    ax.add_argument("--until", type=_day, help="last day, YYYY-MM-DD (inclusive)")
    ax.add_argument("--format", choices=("csv", "jsonl"), default="csv",
                    help="csv (UTF-8 with BOM, opens in Excel/LibreOffice) or jsonl (default csv)")
    ax.add_argument("--kind", action="append", choices=KINDS,
                    help="only entries of this kind (repeatable; default: every kind)")
    ax.add_argument("--out", help="output file, written 0600 (default: standard output)")
    ar = asub.add_parser("report", help="monthly accountability report (text, --json, --png chart); audited")
    ar.add_argument("--month", required=True, help="YYYY-MM, in the configured timezone")
    ar.add_argument("--png", help="also write a PNG chart (requests per ISO week, stacked by outcome)")
    ar.add_argument("--json", action="store_true", help="print one JSON object")
    ab = asub.add_parser("bundle", help="discovery bundle (zip) for one request, with a SHA-256 manifest; audited")
    ab.add_argument("request_id", help="request id, e.g. FR-3F9A0C12D4")
    ab.add_argument("out", help="zip file to write (0600)")
    a.set_defaults(func=cmd_audit)

    c = sub.add_parser("cancel", help="withdraw your own search waiting for approval or an examiner (unclaimed)")
    c.add_argument("request_id", help="request id, e.g. FR-3F9A0C12D4")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=cli_controls.cmd_cancel)

    st = sub.add_parser("status", help="where your own search waiting for approval or an examiner stands")
    st.add_argument("request_id", help="request id, e.g. FR-3F9A0C12D4")
    st.add_argument("--json", action="store_true", help="print one JSON object")
    st.set_defaults(func=cli_controls.cmd_status)

    pg = sub.add_parser("purge", help="apply [retention]: expired dialog state, cached probes, old audit entries")
    pg.set_defaults(func=cmd_purge)

    sv = sub.add_parser("serve", help="run the Slack bot (HTTP on $PORT, Socket Mode with SLACK_APP_TOKEN)")
    sv.set_defaults(func=cmd_serve)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _Parser.wants_json = "--json" in argv
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        _emit(args, {"error": f"configuration error: {exc}"}, f"configuration error: {exc}", stream=sys.stderr)
        return EXIT_ERROR
    return int(args.func(args, settings) or 0)
