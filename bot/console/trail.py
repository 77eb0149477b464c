"""One request's trail on the console (CONTRACTS ### 14): GET /console/requests/<request_id>, from the audit log
(the lookup index: `AuditLog.find(request_id=...)`), with the probe's face crops while the probe cache holds them
and the candidates' gallery crops while the gallery keeps their subjects.

The page writes one `audit_access` entry (action console_request; the request id in its query, never at the top
level, so the access is not taken for part of the request's record). The image routes need the session like
every page but write nothing: the page view that shows them is the audited read.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from bot import wording
from bot.console.web import RUNTIME, record_view, render
from bot.oversight import trail
from bot.store.probes import checked_id

JPEG = "image/jpeg"


def _request_id(request: web.Request) -> str:
    """The path's request id; 404 for one that cannot be an id (no file or index lookup is made with it)."""
    try:
        return checked_id(request.match_info["request_id"])
    except ValueError:
        raise web.HTTPNotFound(text=wording.console_unknown_request(request.match_info["request_id"])) from None


def _probe_faces(rt: Any, request_id: str) -> list[dict[str, Any]] | None:
    """The cached probe's faces (Face.as_dict) when the cache still holds them with their crops, else None."""
    cached = rt.probes.get(request_id)
    if cached is None:
        return None
    return [dict(f) for i, f in enumerate(cached.faces, start=1) if cached.crop(i)]


def subject_thumbnail(gallery: Any, subject_id: str) -> bytes | None:
    """The face crop of the subject's oldest enrolled image that has one, while the gallery keeps the subject."""
    subject = gallery.subject(subject_id)
    for sha in (subject or {}).get("images") or []:
        jpeg = gallery.thumbnail(sha)
        if jpeg:
            return jpeg
    return None


def _gather(rt: Any, request_id: str) -> dict[str, Any] | None:
    """Everything the page shows (a thread: the log, the probe cache and the gallery are files or a database)."""
    entries = rt.core.audit.find(request_id=request_id)
    if not entries:
        return None
    gallery = rt.core.gallery
    subjects = {sid: gallery.subject(sid) for sid in trail.candidate_subjects(entries)}
    data = trail.request_trail(entries, tz=rt.settings.timezone, dispatch_channel=rt.settings.slack.dispatch_channel,
                               subjects=subjects)
    if not data["searched"]:
        dialog = rt.store.by_request_id(request_id)
        if dialog is not None:
            data = trail.with_running_dialog(data, dialog, rt.settings.timezone)
    cached = _probe_faces(rt, request_id)
    if not data["face_rows"] and cached:  # still running: the faces are only in the cache so far
        data["face_rows"] = trail.faces_of(cached, data["face_index"])
    data["crops"] = {f.get("index") for f in cached or []}
    data["candidate_crops"] = {sid for sid in subjects if subject_thumbnail(gallery, sid) is not None}
    data["count"] = len(entries)
    return data


async def request_page(request: web.Request) -> web.Response:
    """GET /console/requests/<request_id>: the full trail, or a 404 page with a sentence."""
    rt = request.app[RUNTIME]
    request_id = _request_id(request)
    data = await rt.io(_gather, rt, request_id)
    await record_view(request, "request", {"request_id": request_id}, results=data["count"] if data else 0)
    if data is None:
        return render(request, "not_found.html", status=404, title=f"Request {request_id}",
                      message=wording.console_unknown_request(request_id))
    return render(request, "trail.html", title=f"Request {request_id}", t=data, request_id=request_id,
                  timezone=rt.settings.timezone, wording=wording)


async def face_image(request: web.Request) -> web.Response:
    """GET /console/requests/<request_id>/faces/<n>.jpg: face n's crop from the probe cache (no audit entry)."""
    rt = request.app[RUNTIME]
    request_id = _request_id(request)
    cached = await rt.io(rt.probes.get, request_id)
    crop = cached.crop(int(request.match_info["n"])) if cached else None
    if not crop:
        raise web.HTTPNotFound(text=wording.CONSOLE_PROBE_REMOVED)
    return web.Response(body=crop, content_type=JPEG)


async def candidate_image(request: web.Request) -> web.Response:
    """GET /console/requests/<request_id>/candidates/<subject_id>.jpg: the face crop of an image enrolled for a
    candidate of that request's search, while the gallery keeps it. Only a subject the request's search returned
    is served, so no gallery face is reachable apart from an audited trail (no audit entry: the trail that shows
    it is the audited read)."""
    rt = request.app[RUNTIME]
    request_id, subject_id = _request_id(request), request.match_info["subject_id"]

    def crop() -> bytes | None:
        entries = rt.core.audit.find(request_id=request_id, kinds=["search"])
        if subject_id not in trail.candidate_subjects(entries):
            return None
        return subject_thumbnail(rt.core.gallery, subject_id)

    jpeg = await rt.io(crop)
    if not jpeg:
        raise web.HTTPNotFound(text=wording.CONSOLE_CANDIDATE_CROP_GONE)
    return web.Response(body=jpeg, content_type=JPEG)


def register(app: web.Application) -> None:
    """The trail's routes (paths relative to /console)."""
    app.router.add_get("/requests/{request_id}", request_page)
    app.router.add_get(r"/requests/{request_id}/faces/{n:\d{1,3}}.jpg", face_image)
    app.router.add_get("/requests/{request_id}/candidates/{subject_id}.jpg", candidate_image)
