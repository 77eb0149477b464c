"""Files: shared files (`add_file`, Slack file objects, files.info), their downloads (`/files-pri/...`:
the bytes, Slack's login page without files:read, or a redirect) and the bot's files_upload_v2 in its three
steps (files.getUploadURLExternal, the POST to the upload URL, files.completeUploadExternal), read back
with `uploads` and `downloads`."""
from __future__ import annotations

import mimetypes
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .calls import Call
from .checks import block_errors
from .common import _TS, BOT_USER_ID, TEAM_ID, TEAM_URL, ApiError

LOGIN_PAGE = (
    "<!DOCTYPE html>\n<html lang=\"en\"><head><title>Sign in | Slack</title></head>"
    "<body><h1>Sign in to example</h1></body></html>"
)


@dataclass
class UploadedFile:
    """A file the bot uploaded with files_upload_v2, as shared by files.completeUploadExternal."""

    id: str
    filename: str
    title: str
    data: bytes
    channel: str | None
    thread_ts: str | None
    initial_comment: str | None
    blocks: list | None = None
    alt_txt: str | None = None


@dataclass
class _FileEntry:
    obj: dict[str, Any]
    data: bytes
    html_instead: bool = False
    redirect_to: str | None = None


class FilesMixin:
    """Files shared, downloaded and uploaded (state: `_files`, `_pending_uploads`, `_uploads`, `_ids`)."""

    # --- fixture data ----------------------------------------------------------------------------------

    def add_file(
        self,
        id: str,
        name: str,
        mimetype: str,
        data: bytes,
        user: str,
        html_instead: bool = False,
        *,
        redirect_to: str | None = None,
    ) -> dict[str, Any]:
        """Register a file shared by `user`; returns the Slack file object (url_private_download points here).

        `html_instead` serves Slack's login page instead of the bytes, as Slack does when the app lacks
        files:read; `redirect_to` answers an authorised download with a 302 to that URL.
        """
        obj = self._file_object(id, name, name, mimetype, len(data), user)
        self._files[id] = _FileEntry(obj, data, html_instead, redirect_to)
        return dict(obj)

    def _file_object(
        self, id: str, name: str, title: str, mimetype: str, size: int, user: str
    ) -> dict[str, Any]:
        path = f"{self.url}/files-pri/{TEAM_ID}-{id}"
        filetype = (mimetypes.guess_extension(mimetype) or ".bin").lstrip(".")
        return {
            "id": id,
            "created": int(time.time()),
            "timestamp": int(time.time()),
            "name": name,
            "title": title,
            "mimetype": mimetype,
            "filetype": {"jpeg": "jpg", "jpe": "jpg"}.get(filetype, filetype),
            "user": user,
            "user_team": TEAM_ID,
            "size": size,
            "mode": "hosted",
            "is_external": False,
            "is_public": True,
            "url_private": f"{path}/{quote(name)}",
            "url_private_download": f"{path}/download/{quote(name)}",
            "permalink": f"{TEAM_URL}files/{user}/{id}/{quote(name)}",
        }

    # --- what the bot did ------------------------------------------------------------------------------

    def uploads(self, channel: str | None = None, thread_ts: str | None = None) -> list[UploadedFile]:
        """Files the bot uploaded (files_upload_v2), in order."""
        return [
            u
            for u in self._uploads
            if (channel is None or u.channel == channel) and (thread_ts is None or u.thread_ts == thread_ts)
        ]

    def downloads(self, file_id: str | None = None) -> list[Call]:
        """Requests for file URLs; `.token` says which bearer token each carried."""
        return [c for c in self.call_log("files.download") if file_id is None or c.params["file_id"] == file_id]

    # --- HTTP handlers: the upload URL and file URLs ---------------------------------------------------

    async def _handle_upload(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file_id"]
        if request.content_type == "multipart/form-data":
            form = await request.post()
            part = next((v for v in form.values() if hasattr(v, "file")), None)
            data = part.file.read() if part is not None else b""
        else:
            data = await request.read()
        params = {"file_id": file_id, "length": len(data)}
        fault = self._take_fault("files.upload")
        if fault is not None:
            self._record(Call("files.upload", params, fault.status, {"ok": False, "error": "fault"}, None))
            return self._fault_response(request, fault)
        pending = self._pending_uploads.get(file_id)
        if pending is None:
            self._record(Call("files.upload", params, 404, {"ok": False, "error": "unknown_upload"}, None))
            return web.Response(status=404, text="unknown upload", content_type="text/plain")
        pending["data"] = data
        self._record(Call("files.upload", params, 200, {"ok": True}, None))
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["key"].partition("-")[2]
        auth = request.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        params = {"file_id": file_id, "path": request.path}
        fault = self._take_fault("files.download")
        if fault is not None:
            self._record(Call("files.download", params, fault.status, {"ok": False, "error": "fault"}, token))
            return self._fault_response(request, fault)
        entry = self._files.get(file_id)
        if entry is None:
            self._record(Call("files.download", params, 404, {"ok": False, "error": "file_not_found"}, token))
            return web.Response(status=404, text="not found", content_type="text/plain")
        authorised = token == self.token and (self.scopes is None or "files:read" in self.scopes)
        if not authorised or entry.html_instead:
            # Slack answers 200 with its login page, not 401, when the token cannot read the file.
            self._record(Call("files.download", params, 200, {"ok": False, "error": "login_page"}, token))
            return web.Response(text=LOGIN_PAGE, content_type="text/html")
        if entry.redirect_to:
            self._record(Call("files.download", params, 302, {"ok": False, "error": "redirect"}, token))
            raise web.HTTPFound(entry.redirect_to)
        self._record(Call("files.download", params, 200, {"ok": True}, token))
        return web.Response(body=entry.data, content_type=entry.obj["mimetype"])

    # --- Web API methods -------------------------------------------------------------------------------

    def _files_info(self, p: dict[str, Any]) -> dict[str, Any]:
        entry = self._files.get(str(p.get("file", "")))
        if entry is None:
            raise ApiError("file_not_found")
        return {"file": dict(entry.obj)}

    def _files_get_upload_url(self, p: dict[str, Any]) -> dict[str, Any]:
        filename = p.get("filename")
        try:
            length = int(p.get("length", ""))
        except ValueError:
            raise ApiError("invalid_arguments") from None
        if not filename or length < 1:
            raise ApiError("invalid_arguments")
        file_id = f"FUP{next(self._ids):05d}"
        self._pending_uploads[file_id] = {"filename": str(filename), "length": length,
                                          "alt_txt": p.get("alt_txt"), "data": None}
        return {"upload_url": f"{self.url}/upload/v1/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, p: dict[str, Any]) -> dict[str, Any]:
        files = p.get("files")
        if not isinstance(files, list) or not files or not all(isinstance(f, dict) and f.get("id") for f in files):
            raise ApiError("invalid_arguments")
        channel = p.get("channel_id") or (str(p.get("channels", "")).split(",")[0] or None)
        if channel is not None:
            channel = self._resolve_channel(channel)
        thread_ts = p.get("thread_ts")
        if thread_ts is not None and (channel is None or not _TS.fullmatch(str(thread_ts))):
            raise ApiError("invalid_thread_ts")
        blocks = p.get("blocks")
        if blocks is not None:
            errors = block_errors(blocks) if isinstance(blocks, list) else ["blocks must be an array"]
            if errors:
                raise ApiError("invalid_blocks", errors=errors)
        for f in files:
            pending = self._pending_uploads.get(f["id"])
            if pending is None or pending["data"] is None:
                raise ApiError("file_not_found")
        shared = []
        for f in files:
            pending = self._pending_uploads.pop(f["id"])
            title = f.get("title") or pending["filename"]
            mimetype = mimetypes.guess_type(pending["filename"])[0] or "application/octet-stream"
            obj = self._file_object(f["id"], pending["filename"], title, mimetype, len(pending["data"]),
                                    BOT_USER_ID)
            self._files[f["id"]] = _FileEntry(obj, pending["data"])
            self._uploads.append(UploadedFile(
                id=f["id"], filename=pending["filename"], title=title, data=pending["data"], channel=channel,
                thread_ts=thread_ts, initial_comment=p.get("initial_comment"), blocks=blocks,
                alt_txt=pending["alt_txt"],
            ))
            shared.append(obj)
        if channel is not None:
            # Sharing posts a message from the bot that carries the files.
            msg = self._bot_message(self._next_ts())
            msg.update({"text": p.get("initial_comment", ""), "files": shared, "upload": True})
            if blocks is not None:
                msg["blocks"] = blocks
            if thread_ts is not None:
                msg["thread_ts"] = str(thread_ts)
            self._store(channel, msg)
        return {"files": [{"id": o["id"], "title": o["title"]} for o in shared]}
