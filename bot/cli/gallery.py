"""`python -m bot gallery enroll|sync|list|remove|stats|thumbnails|reencode`: the known-person gallery from the
command line."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bot import wording
from bot.cli import common
from bot.cli.common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK
from bot.config import FACE_MODELS, Settings


def cmd_gallery(args: argparse.Namespace, settings: Settings) -> int:
    """`gallery enroll|sync|list|remove|stats|thumbnails|reencode`; a damaged gallery or an audit log that cannot record the
    change is a clear error (exit 1) and changes nothing; Ctrl-C is one line and exit 130."""
    from bot.faces.gallery import GalleryError
    from bot.service import GalleryModelMismatch
    from bot.store.audit_log import AuditError

    try:
        return _gallery(args, settings)
    except (GalleryError, AuditError, OSError, GalleryModelMismatch) as exc:  # OSError: e.g. BOT_DATA_DIR is a file or unwritable
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:  # Ctrl-C: the gallery commits in one step at the end, so nothing is half-done
        print(wording.gallery_interrupted(args.gallery_cmd), file=sys.stderr)
        return EXIT_INTERRUPTED


def _gallery(args: argparse.Namespace, settings: Settings) -> int:
    from bot.faces.enroll import enroll

    core = common.core(settings)
    gallery = core.gallery
    if args.gallery_cmd == "enroll":
        core.model_override = args.model
        core.check_model()  # `--model` of another model than the gallery's: refused, naming gallery reencode
    if args.gallery_cmd == "enroll":
        try:
            report = enroll(
                gallery, core.engine, Path(args.directory),
                manifest=Path(args.manifest) if args.manifest else None,
                audit=core.audit, actor=common.os_requester(settings).id, progress=common.progress(args),
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
        return _gallery_sync(args, core, settings)
    if args.gallery_cmd == "remove":
        return _gallery_remove(args, core, common.os_requester(settings).id)
    if args.gallery_cmd == "thumbnails":
        return _gallery_thumbnails(args, core, settings)
    if args.gallery_cmd == "reencode":
        return _gallery_reencode(args, core, settings)
    stats = gallery.stats()
    cal = stats["calibration"]
    stats["operating_point"] = {**cal, "target_fpir": settings.search.target_fpir} if cal else None
    if args.json:
        print(json.dumps(stats, ensure_ascii=False, indent=2, default=str))
    else:
        print(wording.gallery_stats_text(stats))
    return EXIT_OK


def _gallery_sync(args: argparse.Namespace, core: Any, settings: Settings) -> int:
    """Make the gallery equal to the manifest (bot.faces.sync); exit 1 when the removals need --yes."""
    from bot.faces.sync import sync

    max_share = core.settings.gallery.sync_max_remove_share
    actor = common.os_requester(settings).id
    try:
        report = sync(core.gallery, core.engine, Path(args.manifest), max_remove_share=max_share,
                      audit=None if args.dry_run else core.audit, actor=actor, yes=args.yes,
                      dry_run=args.dry_run, progress=common.progress(args))
    finally:
        core.close()
    if report.refused:
        print(wording.gallery_sync_needs_yes(len(report.plan.removals), report.plan.gallery_subjects, max_share),
              file=sys.stderr)
        return EXIT_ERROR
    print(wording.gallery_sync_text(report))
    return EXIT_OK


def _gallery_remove(args: argparse.Namespace, core: Any, actor: str) -> int:
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
        removed = core.gallery.remove(args.subject, audit=core.audit, actor=actor)
    print(f"removed {args.subject}: {removed} image(s)")
    return EXIT_OK


def _gallery_thumbnails(args: argparse.Namespace, core: Any, settings: Settings) -> int:
    """How many face crops are current; with --rebuild, cut the missing or smaller ones again from the source
    images (exit 1 when some could not be)."""
    from bot.faces import thumbnails

    if not args.rebuild:
        print(wording.gallery_thumbnails_text(thumbnails.status(core.gallery), rebuilt=False,
                                              crop_px=thumbnails.CROP_PX))
        return EXIT_OK
    try:
        report = thumbnails.rebuild(core.gallery, core.engine, audit=core.audit, actor=common.os_requester(settings).id,
                                    progress=common.progress(args))
    finally:
        core.close()
    print(wording.gallery_thumbnails_text(report, rebuilt=True, crop_px=thumbnails.CROP_PX))
    return EXIT_ERROR if report.problems else EXIT_OK


def _gallery_reencode(args: argparse.Namespace, core: Any, settings: Settings) -> int:
    """Re-encode the gallery with another face model from its source images (bot.faces.reencode); exit 1 when
    refused (nothing committed), 130 on Ctrl-C (what was encoded is kept for the next run)."""
    from bot.faces import models, reencode
    from bot.faces.engine import FaceEngine

    try:
        target = models.get(args.model).id
    except ValueError as exc:  # an unknown model: the sentence names the known ones
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    faces = settings.faces
    engine = FaceEngine(settings.images, workers=args.workers or faces.workers, deadline=faces.deadline_seconds,
                        model=target)
    try:
        report = reencode.reencode(core.gallery, engine, audit=core.audit, actor=common.os_requester(settings).id,
                                   yes=args.yes, progress=common.progress(args),
                                   notify=lambda text: print(text, file=sys.stderr),
                                   kept_in=core.backend.reencode_progress())
    except models.WeightsError as exc:  # the new model's weight file is refused: a sentence, nothing changed
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        engine.close()
        core.close()
    if report.refused:
        for image in report.skipped:
            print(wording.gallery_reencode_skipped(image), file=sys.stderr)
        print(wording.gallery_reencode_needs_yes(len(report.skipped), report.images, reencode.MAX_SKIPPED_SHARE),
              file=sys.stderr)
        return EXIT_ERROR
    print(wording.gallery_reencode_text(report))
    return EXIT_OK


def register(sub: Any) -> None:
    """The `gallery` commands on the top-level parser's subparsers."""
    g = sub.add_parser("gallery", help="the known-person gallery")
    gsub = g.add_subparsers(dest="gallery_cmd", metavar="COMMAND", required=True)
    e = gsub.add_parser("enroll", help="enroll DIR/<subject_id>/<images> or a manifest CSV")
    e.add_argument("directory", metavar="DIR",
                   help="one folder per subject (its name the subject id), or the folder a --manifest is read from")
    e.add_argument("--manifest", metavar="CSV", help="CSV with header subject_id,name,record_ref,image[,status]")
    e.add_argument("--model", metavar="ID", choices=FACE_MODELS,
                   help="the face model of a new gallery (default: [faces] model); an enrolled gallery keeps its own")
    e.add_argument("--no-progress", action="store_true",
                   help="no progress bar (there is none anyway unless standard error is a terminal)")
    gy = gsub.add_parser(
        "sync", help="make the gallery equal to a manifest CSV: add, update and remove subjects; audited",
        description="Make the gallery equal to the manifest: add people listed and not enrolled, update names, "
        "record references and images, remove people no longer listed or listed with a status that removes them "
        "(not_charged, dropped, acquitted, expunged; empty or eligible keeps them; any other status stops the "
        "sync). One audit entry per change; the gallery changes in one step at the end.",
    )
    gy.add_argument("--manifest", required=True, metavar="CSV",
                    help="CSV with header subject_id,name,record_ref,image[,status] (the enrollment manifest; images "
                    "relative to the CSV)")
    gy.add_argument("--dry-run", action="store_true", help="print what would change; change and audit nothing")
    gy.add_argument("--yes", action="store_true",
                    help="allow removing more than [gallery] sync_max_remove_share of the subjects (default 10%%)")
    gy.add_argument("--no-progress", action="store_true",
                    help="no progress bar (there is none anyway unless standard error is a terminal)")
    gl = gsub.add_parser("list", help="list subjects")
    gl.add_argument("--json", action="store_true", help="print one JSON list")
    gr = gsub.add_parser("remove", help="remove a subject and all its images (asks first; --yes in scripts)")
    gr.add_argument("subject", metavar="SUBJECT-ID", help="the subject id, as `gallery list` shows it")
    gr.add_argument("--yes", action="store_true", help="do not ask (needed when standard input is not a terminal)")
    gs = gsub.add_parser("stats", help="gallery size and files")
    gs.add_argument("--json", action="store_true", help="print one JSON object")
    gt = gsub.add_parser("thumbnails", help="the 320 px face crops: how many are current (--rebuild: make the rest)")
    gt.add_argument("--rebuild", action="store_true",
                    help="cut missing or smaller crops again from the source images (exit 1 when some cannot be)")
    gt.add_argument("--no-progress", action="store_true",
                    help="no progress bar (there is none anyway unless standard error is a terminal)")
    ge = gsub.add_parser(
        "reencode", help="make every template again with another face model, from the source images; audited",
        description="Build a new generation of the gallery whose templates are another face model's, from the "
        "source images enrollment recorded (each checked against its SHA-256; the face used is the one overlapping "
        "the enrolled face's box). Searches use the old templates until the new ones are committed, in one step at "
        "the end. Interrupted, it goes on from where it stopped when run again. One audit entry.",
    )
    ge.add_argument("--model", required=True, metavar="ID", help="the face model to re-encode with (sface, dlib-resnet)")
    ge.add_argument("--workers", type=int, default=0, metavar="N",
                    help="face worker processes (default: [faces] workers, 0 = one per CPU)")
    ge.add_argument("--yes", action="store_true",
                    help="commit even when more than 10%% of the images must be skipped (they leave the gallery)")
    ge.add_argument("--no-progress", action="store_true",
                    help="no progress bar (there is none anyway unless standard error is a terminal)")
    g.set_defaults(func=cmd_gallery)
