"""`python -m bot search`: one 1:N search of a probe photo under GO 375.01's gates (bot.service), its audit entry,
and one JSON object or text as output; under second-person controls the search is queued (bot.cli.controls)."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from bot import wording
from bot.cli import common
from bot.cli import controls as cli_controls
from bot.cli.common import EXIT_CHOOSE_FACE, EXIT_DENIED, EXIT_ERROR, EXIT_OK, EXIT_QUEUED, emit, text_arg
from bot.config import FACE_MODELS, Settings


def _read_probe(path: Path, max_bytes: int) -> bytes:
    """Read at most max_bytes + 1 so a huge file is refused without loading it all."""
    from bot.faces.images import ImageError

    if path.is_dir():
        raise ImageError("unreadable", f"{text_arg(str(path))} is a folder, not a photo.")
    if not path.is_file():
        raise ImageError("unreadable", f"No such image file: {text_arg(str(path))}")
    try:
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ImageError("unreadable", f"Cannot read {text_arg(str(path))}: {exc.strerror}.") from None
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
    """`search PHOTO`: who is asking, the policy gates (before the photo is read), the faces, then the search,
    queued for an examiner or kept for a supervisor under [review]; every ending audited (CONTRACTS exit codes)."""
    from bot import policy
    from bot.controls.approval import approval_reason
    from bot.faces.gallery import GalleryError
    from bot.faces.images import ImageError
    from bot.service import (
        SearchUnavailable,
        check,
        new_request_id,
        record_denied,
        record_ended,
        search_face,
        utc_now,
    )
    from bot.store.audit_log import AuditError

    core = common.core(settings)
    core.model_override = args.model
    request_id = new_request_id()
    answers = policy.Answers(
        call_number=policy.normalise_call_number(text_arg(args.call_number)),
        purpose=_cli_purpose(text_arg(args.purpose)),
        justification=policy.collapse_whitespace(text_arg(args.justification)) if args.justification else None,
        attested=bool(args.attest),
    )
    # As a Slack request's entries carry them from the moment its justification is accepted (command staff count
    # and review flagged requests): every entry of this request, refused for another answer or searched.
    accepted = policy.check_justification(answers.justification, settings.policy.justification_min_chars) is None
    flags = list(policy.justification_flags(answers.justification)) if accepted else []
    source = {"source": "cli", "uploaded_at": utc_now(), "image_name": text_arg(Path(args.image).name),
              "flags": flags}

    def say_error(message: str) -> int:
        emit(args, {"request_id": request_id, "error": message}, f"error: {message}", stream=sys.stderr)
        return EXIT_ERROR

    if args.out and not (Path(args.out).is_dir() and os.access(args.out, os.W_OK)):
        # Refused before anything runs: a search must not be recorded whose files then cannot be written.
        return say_error(wording.cli_out_folder_missing(text_arg(args.out) or ""))

    # Nothing happens that the audit log could not record (a changed BOT_AUDIT_KEY, a damaged tail).
    try:
        core.audit.check_writable()
    except (AuditError, OSError) as exc:
        return say_error(wording.audit_unwritable(str(exc)))

    try:
        requester = common.os_requester(settings)
    except common.NoPerson as exc:  # a shared account that names nobody: the attempt is recorded under it
        requester, reasons = common.unidentified(), [str(exc)]
    else:
        # Policy gates come before the image is decoded: a refused request never touches the photo.
        reasons = check(answers, settings)
    if reasons:
        record_denied(core, request_id=request_id, answers=answers, reasons=reasons, requester=requester,
                      source=source)
        obj, text = {"request_id": request_id, "denied": reasons}, wording.cli_denied(reasons)
        if wording.ATTESTATION_MISSING in reasons:  # what to attest to, here rather than in a file elsewhere
            obj["attestation"] = wording.ATTESTATION
            text += f"\n\n{wording.CLI_ATTEST_ADD}\n{wording.ATTESTATION}"
        emit(args, obj, text, stream=sys.stderr)
        return EXIT_DENIED

    def fail(message: str, **extra: Any) -> int:
        record_ended(core, outcome="error", request_id=request_id, answers=answers, requester=requester,
                     source=source, error=message, **extra)
        return say_error(message)

    try:
        face_choice = None if args.face is None else int(args.face)
    except ValueError:
        return fail(wording.bad_face_value(text_arg(args.face) or ""))
    data = b""
    try:
        core.check_model()  # `--model` of another model than the gallery's: refused, naming gallery reencode
        data = _read_probe(Path(args.image), settings.images.max_bytes)
        probe = core.engine.analyse_sync(data, requester=requester.id)
        faces = [f.as_dict() for f in probe.faces]
        if not probe.faces:
            return fail(wording.NO_FACE, probe=probe)
        if face_choice is None and len(probe.faces) > 1:
            # The numbered picture to choose from (no candidate in it): what Slack posts for a group photo.
            written = _write_out(args, settings, request_id, data, faces)
            emit(args, {"request_id": request_id, "faces": faces, **written},
                 _with_out(wording.cli_choose_face(faces), written), stream=sys.stderr)
            return EXIT_CHOOSE_FACE
        index = 1 if face_choice is None else face_choice
        if not 1 <= index <= len(probe.faces):
            return fail(wording.bad_face_choice(index, len(probe.faces)), probe=probe, face_index=index)
        face = probe.faces[index - 1]
        slack_user = settings.review.cli_slack_users.get(requester.id.removeprefix("os:"), "")
        reason = approval_reason(settings.review.approval, flags)
        if reason:  # a supervisor approves first (in Slack): no search before that
            cli_controls.await_approval(core, settings, request_id=request_id, answers=answers, requester=requester,
                            slack_user=slack_user, reason=reason, source=source, probe=probe, face=face, data=data)
            emit(args, {"awaiting_approval": request_id, "reason": reason},
                 _held(args, wording.cli_awaiting_approval(request_id, reason, settings.review.approval_minutes,
                                                           bool(slack_user))))
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
    if result.outcome == "review":  # nothing of it is the requester's before the release: --out writes nothing
        emit(args, {"queued_for_review": request_id},
             _held(args, wording.cli_queued_for_review(request_id, bool(slack_user))))
        return EXIT_QUEUED
    obj = {**result.as_json(), "flags": flags}
    written = _write_out(args, settings, request_id, data, faces, face=face, result=result, obj=obj,
                         gallery=core.gallery)
    emit(args, {**obj, **written}, _with_out(wording.cli_result(result, flagged="protected_class" in flags), written))
    return EXIT_OK


def _write_out(args: argparse.Namespace, settings: Settings, request_id: str, data: bytes, faces: list[dict[str, Any]],
               *, face: Any = None, result: Any = None, obj: dict[str, Any] | None = None,
               gallery: Any = None) -> dict[str, list[str]]:
    """With --out DIR: what a Slack requester gets, beside the result: the photo with its faces numbered and, once
    searched, the result (the --json object) and the contact sheet; each 0600 (they name people). {"out": paths}
    ({} without --out). A failure is a warning: the search ran and is recorded, and its result is printed."""
    from bot import contact_sheet
    from bot.faces.images import decode_image
    from bot.store.disk import write_private_atomic

    if not args.out:
        return {}
    folder, files = Path(args.out), {}
    try:
        # The photo was decoded safely already, in a face worker (bot.faces.engine); this draws on it.
        images = settings.images
        rgb = decode_image(data, max_bytes=images.max_bytes, max_pixels=images.max_pixels,
                           max_aspect_ratio=images.max_aspect_ratio)
        if result is not None:
            files[f"{request_id}.json"] = (json.dumps(obj, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
        files[f"{request_id}-faces.jpg"] = contact_sheet.annotate_faces(rgb, faces)
        if result is not None:
            crop = contact_sheet.face_crop_jpeg(rgb, face.box.as_dict())
            files[f"{request_id}-contact-sheet.png"] = contact_sheet.contact_sheet_for(gallery, result, crop)
        for name, payload in files.items():
            write_private_atomic(folder / name, payload)
    except Exception as exc:  # noqa: BLE001 - the result must still reach the requester
        print(wording.cli_out_failed(f"{type(exc).__name__}: {exc}"), file=sys.stderr)
        return {"out": []}
    return {"out": [str(folder / name) for name in files]}


def _with_out(text: str, written: dict[str, list[str]]) -> str:
    return f"{text}\n\n{wording.cli_out_written(written['out'])}" if written.get("out") else text


def _held(args: argparse.Namespace, text: str) -> str:
    """A search held for an examiner or a supervisor: with --out, say that nothing was written."""
    return f"{text}\n{wording.CLI_OUT_HELD}" if args.out else text


def register(sub: Any) -> None:
    """The `search` command on the top-level parser's subparsers: the exit codes and the attestation in its help."""
    s = sub.add_parser("search", help="1:N search of a probe photo (GO 375.01 gates apply)",
                       description=wording.CLI_DESCRIPTION,
                       epilog=f"{wording.CLI_EXIT_CODES}\n\n{wording.CLI_ATTEST_HEADER}\n{wording.ATTESTATION}")
    s.add_argument("image", metavar="PHOTO", help="probe photo (JPEG, PNG, HEIC, WebP, GIF, BMP, TIFF)")
    # Optional to argparse on purpose: a missing answer is a policy denial (audited), not a usage error.
    s.add_argument("--call-number", metavar="NUMBER", help="dispatched call number, e.g. 26-012345")
    s.add_argument("--purpose", metavar="PURPOSE",
                   help="investigation | threat | identify (or its number, 1-3): GO 375.01 B.1")
    s.add_argument("--justification", metavar="TEXT", help="the facts giving reasonable suspicion")
    s.add_argument("--attest", action="store_true", help="attest to the statement printed below (GO 375.01)")
    # A string on purpose: a bad value is an audited error (exit 1), not an argparse usage exit (2 = denied).
    s.add_argument("--face", metavar="K", help="which face to search when the photo has several (1 = leftmost)")
    s.add_argument("--out", metavar="DIR",
                   help="also write into this folder, readable by you only: the photo with its faces numbered and, "
                   "once the candidates are yours, the result as JSON and the contact sheet (nothing while an "
                   "examiner or a supervisor holds them)")
    s.add_argument("--json", action="store_true", help="print one JSON object, whatever the exit code")
    s.add_argument("--model", metavar="ID", choices=FACE_MODELS,
                   help="the face model to search with: refused unless it is the gallery's (default: the gallery's)")
    s.set_defaults(func=cmd_search)
