"""The search stage: download, face analysis in the worker pool, the 1:N search through bot.service, and the
result, contact sheet and call-thread log that follow it.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import numpy as np

from bot import contact_sheet, service, wording
from bot.faces.engine import Probe, encode_bytes
from bot.faces.images import ImageError
from bot.request import transitions
from bot.request.transitions import Dialog, ImageRequest
from bot.slack import blocks
from bot.slack.calls import SLACK_ERRORS, error_text
from bot.slack.client import DownloadError, FileTooLarge, MissingFilesScope, download_file
from bot.slack.flow import examining
from bot.slack.flow.effects import (
    HOURGLASS,
    ImageFailure,
    Next,
    T,
    audited_result,
    claim,
    log_call,
    post,
    post_essential,
    react,
    requester_of,
    say_failed,
    source_fields,
    upload,
)
from bot.store.probes import CachedProbe

if TYPE_CHECKING:
    from bot.slack.runtime import Runtime

log = logging.getLogger(__name__)

# -------------------------------------------------------------------------------------- face work


async def analyse(rt: Runtime, dialog_id: str, request_id: str) -> Next | None:
    """Download one image and find its faces (once: the result is cached and stored with the request); hands
    back the dialog's record of what was found."""
    running: set[str] = rt.state.setdefault("analysing", set())
    if request_id in running:
        return None
    running.add(request_id)
    try:
        dialog = await rt.io(rt.store.get, dialog_id)
        image = dialog.image(request_id) if dialog else None
        if dialog is None or image is None or dialog.terminal or image.status != transitions.PENDING:
            return None
        cached = await rt.io(rt.probes.get, request_id)  # a restart after analysis: never detect again
        error = None
        if cached is None:
            try:
                data = await _download(rt, image)
                cached = await _find_faces(rt, image, data, dialog)
                async with rt.lock(dialog_id):  # no cancel between the check and the write
                    current = await rt.io(rt.store.get, dialog_id)
                    if current is None or current.terminal:
                        return None  # cancelled or expired meanwhile: the faces of this photo are not kept
                    await rt.io(rt.probes.put, request_id, cached)
            except ImageFailure as failure:
                error = failure.reason
                rt.state.setdefault("failures", {})[request_id] = (failure.reason, failure.detail)
        faces = cached.faces if cached else None
        sha = cached.sha256 if cached else None
        return Next(dialog_id, lambda d: transitions.on_analysed(
            d, request_id, faces=faces, probe_sha256=sha, error=error, now=rt.now()))
    finally:
        running.discard(request_id)


async def _download_url(rt: Runtime, file_id: str) -> str:
    url = rt.state.setdefault("file_urls", {}).get(file_id)
    if url:
        return url
    try:
        file = (await rt.client.files_info(file=file_id)).get("file") or {}
    except SLACK_ERRORS as exc:
        raise ImageFailure("download_failed", f"files.info: {error_text(exc)}") from None
    url = file.get("url_private_download") or file.get("url_private")
    if not url:
        raise ImageFailure("download_failed", "files.info gave no download URL")
    return url


async def _download(rt: Runtime, image: ImageRequest) -> bytes:
    """The photo's bytes, with the bot token sent only to the API host and the configured file hosts."""
    url = await _download_url(rt, image.file_id)
    assert rt.download_session is not None, "Runtime.start() opens the download session"
    try:
        return await download_file(
            rt.download_session, url, rt.token, allowed_hosts=rt.token_hosts,
            max_bytes=rt.settings.images.max_bytes,
        )
    except MissingFilesScope as exc:
        raise ImageFailure("missing_files_scope", exc.message) from None
    except FileTooLarge as exc:
        raise ImageFailure("too_large", exc.message) from None
    except DownloadError as exc:
        raise ImageFailure("download_failed", f"{exc.code}: {exc.message}") from None


async def _face_work(rt: Runtime, image: ImageRequest, dialog: Dialog, func: Any, *args: Any) -> Any:
    """`func(*args)` in the engine's process pool, within the engine's deadline, at most the dialog's share
    of the workers at once, and in turn with other requesters' photos (the engine's fair queue: one officer's
    backlog never delays another's photo); shown by /frs status while it runs."""
    running: dict[str, float] = rt.state.setdefault("face_work", {})
    async with rt.face_slots(dialog.dialog_id):
        running[image.request_id] = time.monotonic()
        try:
            return await rt.engine.run(func, *args, requester=dialog.requester_id)
        finally:
            running.pop(image.request_id, None)


async def _find_faces(rt: Runtime, image: ImageRequest, data: bytes, dialog: Dialog) -> CachedProbe:
    """Faces on the photo (boxes and quality, no encoding: the attestation has not been given yet), its crops
    and numbered boxes, in a face worker."""
    try:
        probe, crops, numbered = await _face_work(rt, image, dialog, contact_sheet.detect_with_pictures,
                                                  data, rt.settings.images)
        return prepare_probe(probe, crops, numbered)
    except ImageError as exc:
        reason = exc.code if exc.code in wording.IMAGE_PROBLEMS else exc.message
        raise ImageFailure(reason, f"{exc.code}: {exc.message}") from None
    except Exception as exc:
        log.exception("face analysis of %s failed", image.request_id)
        raise ImageFailure("error", f"face analysis failed: {type(exc).__name__}: {exc}"[:500]) from exc


def prepare_probe(probe: Probe, crops: list[bytes], numbered: bytes | None) -> CachedProbe:
    """What the dialog keeps of a photo's detection: face entries, a crop per face, numbered boxes when
    several, and where to encode each face from after the attestation (no encoding yet)."""
    faces = [f.as_dict() for f in probe.faces]
    encode = {"padded": probe.padded, "scale": probe.pad_scale, "boxes": [b.as_dict() for b in probe.encode_boxes]}
    if any(p is not None for p in probe.encode_points):  # a detector's own points (sface's YuNet faces)
        encode["points"] = list(probe.encode_points)
        encode["model"] = probe.model  # those points are that model's: another model cannot encode from them
    return CachedProbe(probe.sha256, probe.width, probe.height, faces, np.zeros((0, 128), dtype=np.float32),
                       crops, numbered, encode)


async def _encoding(rt: Runtime, dialog: Dialog, image: ImageRequest, cached: CachedProbe, face_index: int) -> np.ndarray:
    """The chosen face's encoding, made now that the requester attested: the photo is downloaded again and
    the face encoded where detection found it (never detected again); an analysis stored with encodings
    (before this change) is used as it is."""
    if len(cached.encodings) >= face_index:
        return cached.encoding(face_index)
    check_detected_with(cached, rt.engine.model)
    args = encode_args(cached, face_index)
    data = await _download(rt, image)
    return await _face_work(rt, image, dialog, encode_bytes, data, rt.settings.images, *args)


def check_detected_with(cached: CachedProbe, model: str) -> None:
    """GalleryModelMismatch when the faces were placed by another model's detector than `model`, the one that
    would encode them now (the gallery was re-encoded in between): its points mean nothing to this model.
    HOG boxes are the same for every model, so a probe stored without points is encoded by any."""
    detected = (cached.encode or {}).get("model")
    if detected and detected != model:
        raise service.GalleryModelMismatch(wording.gallery_model_moved(model, detected))


def encode_args(cached: CachedProbe, face_index: int) -> tuple:
    """What `encode_bytes` takes after the photo and the settings to encode face `face_index` where detection
    found it: the probe's hash, the face's box, padded, the padded copy's scale, and the points its detector
    placed (None: the model's landmark predictor places them from the box). LookupError when not stored."""
    encode = cached.encode or {}
    boxes = encode.get("boxes") or []
    if not 1 <= face_index <= len(boxes):
        raise LookupError("the probe analysis is no longer stored")
    points = encode.get("points") or []
    return (cached.sha256, boxes[face_index - 1], bool(encode.get("padded")), float(encode.get("scale", 1.0)),
            points[face_index - 1] if face_index <= len(points) else None)


async def search(rt: Runtime, dialog_id: str, request_id: str, face_index: int) -> Next | None:
    """Run one image's search, post the caveated result and the contact sheet, log it on the call; hands back
    the dialog's record of the outcome."""
    running: set[str] = rt.state.setdefault("searching", set())
    if request_id in running:
        return None
    running.add(request_id)
    try:
        first = await claim(rt, "search:" + request_id)
        dialog = await rt.io(rt.store.get, dialog_id)
        image = dialog.image(request_id) if dialog else None
        if dialog is None or image is None or image.status != transitions.SEARCHING:
            return None
        # Claimed before: a previous process started this search. If the audit has its result, post that
        # result again rather than search a second time.
        result = None if first else await rt.io(audited_result, rt, request_id,
                                                ("candidates", "no_candidate", "review"))
        failed = None if first or result is not None else await rt.io(_audited_error, rt, request_id)
        if failed is not None:  # ended as an error before the restart: said again, never run or recorded twice
            return await _failed_before(rt, dialog, image, failed)
        await react(rt, dialog.channel, dialog.thread_ts, HOURGLASS)
        permalink = await rt.permalink(dialog.channel, dialog.thread_ts)
        cached = await rt.io(rt.probes.get, request_id)
        if result is None:
            # Started now, so the search's audit entry records the call-thread ts (fields are written when
            # things happen); None without a dispatch channel or when Slack refuses.
            await rt.calls.ensure_thread(dialog.call_number or "")
            try:
                if cached is None or not 1 <= face_index <= len(cached.faces):
                    raise LookupError("the probe analysis is no longer stored")
                model = rt.engine.model  # the model the face is encoded with (a gallery moved meanwhile refuses)
                encoding = await _encoding(rt, dialog, image, cached, face_index)
                result = await rt.work(
                    service.search_face, rt.core, request_id=request_id, answers=dialog.answers(),
                    requester=requester_of(dialog), source=await source_fields(rt, dialog, image, permalink),
                    probe_sha256=image.probe_sha256 or cached.sha256, faces=image.faces or cached.faces,
                    encoding=encoding, face_index=face_index,
                    for_review=rt.settings.review.mode == "examiner", model=model,
                )
            except Exception as exc:
                log.exception("search %s failed", request_id)
                return await _search_failed(rt, dialog, image, exc, permalink)
        probe_crop = cached.crop(face_index) if cached else None
        return await _finish_search(rt, dialog, image, result, probe_crop, permalink)
    finally:
        running.discard(request_id)


async def _best_effort(what: str, request_id: str, step: Awaitable[T]) -> T | None:
    """Await one step of finishing a request; a failure is logged and does not stop the steps after it."""
    try:
        return await step
    except Exception:
        log.exception("%s of %s failed", what, request_id)
        return None


async def _finish_search(
    rt: Runtime, dialog: Dialog, image: ImageRequest, result: service.SearchResult, probe_crop: bytes | None,
    permalink: str | None,
) -> Next:
    """After the search (audited already): the result (caveat first), the contact sheet and the call-thread
    log; hands back the dialog's record of the outcome, then the removal of the probe's faces. Each step runs
    whatever happened to the one before: the officer's result is queued on disk when Slack is down, the contact
    sheet is best-effort, and the dialog always learns the search finished."""
    rid = image.request_id

    def forget_faces() -> Awaitable[object]:  # the result is audited and posted (or queued): faces not needed
        return rt.io(rt.probes.remove, rid)

    if result.outcome == "review":
        # No candidate reaches the requester before an examiner's release; the call log follows the release.
        sheet = await _best_effort("comparison sheet", rid, rt.work(contact_sheet.comparison_for, rt.core.gallery, result, probe_crop))
        await _best_effort("review queue", rid, examining.queue_for_review(rt, dialog, image, result, sheet))
        return Next(dialog.dialog_id, lambda d: transitions.on_searched(d, rid, outcome="review", now=rt.now()),
                    then=forget_faces)
    result_ts = await _best_effort("result post", rid, _post_result(rt, dialog, image, result))
    if result_ts:
        await _best_effort("contact sheet", rid, _post_contact_sheet(rt, dialog, image, result, probe_crop))
    else:
        # The result waits in the outbox: a contact sheet now would come before it. It is left out.
        log.warning("result of %s not posted yet (queued): contact sheet skipped", rid)
    await _best_effort("call-thread log", rid, log_call(
        rt, dialog, image, outcome=result.outcome, result=result, permalink=permalink))
    outcome = result.outcome
    return Next(dialog.dialog_id,
                lambda d: transitions.on_searched(d, rid, outcome=outcome, now=rt.now(), result_ts=result_ts),
                then=forget_faces)


async def _post_result(
    rt: Runtime, dialog: Dialog, image: ImageRequest, result: service.SearchResult
) -> str | None:
    """The result in the request thread, caveat first (queued when Slack is down); its ts once posted."""
    call_link = await rt.calls.thread_permalink(dialog.call_number) if dialog.call_number else None
    message = blocks.result(dialog, image, result, call_link, min_face_px=rt.settings.images.min_face_px)
    return await post_essential(rt, dialog.channel, dialog.thread_ts, message)


def _audited_error(rt: Runtime, request_id: str) -> dict | None:
    """The request's `error` search entry, when the audit log already holds one (a search that failed before
    its process stopped), else None."""
    entries = [e for e in rt.core.audit.find(request_id=request_id, kinds=["search"]) if e.get("outcome") == "error"]
    return entries[-1] if entries else None


async def _failed_before(rt: Runtime, dialog: Dialog, image: ImageRequest, entry: dict) -> Next:
    """End a request whose search failed, and was audited, before a restart: the officer is told again (the
    notice may never have gone out), and nothing is searched or audited a second time."""
    error = str(entry.get("error") or "")
    reason = ("gallery_empty" if error.startswith("SearchUnavailable:")
              else "gallery_moved" if error.startswith("GalleryModelMismatch:")
              else error if error and error.replace("_", "").isalnum() else "search_failed")
    await say_failed(rt, dialog, image, reason)
    rid = image.request_id
    return Next(dialog.dialog_id, lambda d: transitions.on_searched(d, rid, outcome="error", now=rt.now(), error=error))


async def _search_failed(
    rt: Runtime, dialog: Dialog, image: ImageRequest, exc: Exception, permalink: str | None
) -> Next:
    # An image's refusal is audited by its code (too_slow, ...), as when it happens while faces are found.
    error = exc.code if isinstance(exc, ImageError) else f"{type(exc).__name__}: {exc}"[:500]
    source = {**(await source_fields(rt, dialog, image, permalink)), "probe_sha256": image.probe_sha256}
    await rt.io(
        service.record_ended, rt.core, outcome="error", request_id=image.request_id, answers=dialog.answers(),
        requester=requester_of(dialog), source=source, error=error, faces=image.faces,
        face_index=image.face_index,
    )
    # A photo refused while its chosen face was encoded (too slow to read, say) is said in the image's own words.
    await say_failed(rt, dialog, image, "gallery_empty" if type(exc) is service.SearchUnavailable
                     else "gallery_moved" if isinstance(exc, service.GalleryModelMismatch)
                     else str(exc) if isinstance(exc, ImageError) else "search_failed")
    await log_call(rt, dialog, image, outcome="error", result=None, permalink=permalink)
    rid = image.request_id
    return Next(dialog.dialog_id,
                lambda d: transitions.on_searched(d, rid, outcome="error", now=rt.now(), error=error))


def sheet_png(rt: Runtime, result: service.SearchResult, probe_crop: bytes | None) -> bytes:
    """The contact sheet: the searched face beside each candidate's gallery thumbnail, labelled by rank."""
    return contact_sheet.contact_sheet_for(rt.core.gallery, result, probe_crop)


async def _post_contact_sheet(
    rt: Runtime, dialog: Dialog, image: ImageRequest, result: service.SearchResult, probe_crop: bytes | None
) -> None:
    """The message carrying the contact sheet (with metadata), then the sheet itself, in the request thread;
    a short note when Slack does not take the upload."""
    png = await rt.work(sheet_png, rt, result, probe_crop)
    await post(rt, dialog.channel, dialog.thread_ts, blocks.contact_sheet(dialog, image))
    uploaded = await upload(
        rt, dialog.channel, dialog.thread_ts, png, filename=f"{result.request_id}-contact-sheet.png",
        title=f"Contact sheet {result.request_id}", comment=None,
    )
    if not uploaded:
        await post(rt, dialog.channel, dialog.thread_ts, blocks.note(
            wording.CONTACT_SHEET_NOT_ATTACHED, kind="contact_sheet_failed", dialog=dialog,
            request_id=image.request_id))
