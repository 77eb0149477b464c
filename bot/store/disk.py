"""Small file helpers: private (0700/0600) paths, crash-safe writes, a cross-process lock, atomic tinydb.

Everything under the data dir holds personal data (probe hashes, names, justifications), so files are
created readable by the service account only, and whole-file writes go through a temp file + rename so a
crash leaves either the old content or the new one, never a half-written file.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import filelock
from tinydb import TinyDB
from tinydb.storages import Storage

DIR_MODE = 0o700
FILE_MODE = 0o600
DEFAULT_LOCK_TIMEOUT = 60.0


def ensure_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create `path` (and any missing parents) with mode 0700; tighten an existing leaf to 0700."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    # Parents we create ourselves are private too (Path.mkdir(parents=True) would ignore the mode for them).
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass  # another process made it between our check and mkdir
    try:
        os.chmod(path, DIR_MODE)
    except PermissionError:
        pass  # not ours (e.g. a shared mount); the files inside are still 0600
    return path


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so a rename or a newly created file inside it survives a power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace `path` with `data` crash-safely: 0600 temp file in the same dir, fsync, rename, fsync dir.

    The parent directory must exist. On any error the old file is left untouched and the temp file removed.
    """
    path = Path(path)
    # mkstemp creates the file 0600 and in the same directory, so os.replace is an atomic rename.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def open_private_append(path: str | os.PathLike[str], *, read: bool = False) -> int:
    """Open `path` for appending (O_APPEND, created 0600) and return the raw fd; `read=True` also allows pread.

    With O_APPEND every os.write lands at the current end of file, whoever else has the file open.
    """
    flags = os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | (os.O_RDWR if read else os.O_WRONLY)
    fd = os.open(path, flags, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o777 != FILE_MODE:
            os.fchmod(fd, FILE_MODE)  # the umask may have loosened or tightened it
    except BaseException:
        os.close(fd)
        raise
    return fd


def file_lock(path: str | os.PathLike[str], timeout: float = DEFAULT_LOCK_TIMEOUT) -> filelock.FileLock:
    """A cross-process lock on `path` (created 0600); use as `with file_lock(p): ...`.

    Raises filelock.Timeout after `timeout` seconds rather than hanging forever behind a stuck holder.
    Reentrant within a thread; other threads and processes wait.
    """
    return filelock.FileLock(os.fspath(path), timeout=timeout, mode=FILE_MODE)


class AtomicJSONStorage(Storage):
    """A tinydb storage that never rewrites its file in place.

    tinydb's JSONStorage seeks to 0, writes and truncates, so a crash mid-write leaves corrupt JSON. This one
    writes the whole document to a 0600 temp file and renames it over the old one (write_private_atomic).
    A missing or empty file reads as an empty database; a corrupt one raises rather than being silently reset.
    """

    def __init__(self, path: str | os.PathLike[str], create_dirs: bool = True, **kwargs: Any) -> None:
        super().__init__()
        self.path = Path(path)
        self.kwargs = kwargs  # passed to json.dumps, as with JSONStorage
        if create_dirs:
            ensure_private_dir(self.path.parent)

    def read(self) -> dict[str, dict[str, Any]] | None:
        """Return the stored document, or None (tinydb's "empty") when the file is missing or empty."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{self.path} is not valid JSON ({exc}); restore it from a backup") from None

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        """Serialise `data` and replace the file atomically."""
        write_private_atomic(self.path, json.dumps(data, **self.kwargs).encode("utf-8"))

    def close(self) -> None:
        """Nothing to close: no handle is kept open between operations."""


def open_tinydb(path: str | os.PathLike[str], **json_kwargs: Any) -> TinyDB:
    """Open a TinyDB at `path` on AtomicJSONStorage (parent dir created 0700, file written 0600)."""
    return TinyDB(os.fspath(path), storage=AtomicJSONStorage, **json_kwargs)


class DataDirInUse(Exception):
    """Another server holds this data dir (one server per data dir; replicas on a database each have their own)."""


@contextlib.contextmanager
def hold_data_dir(data_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Hold `data_dir/server.lock` (flock) while the server runs; a second server is refused, told who holds it.

    The lock dies with the process (kill -9 included): a stale file never blocks a restart.
    """
    ensure_private_dir(Path(data_dir))
    path = Path(data_dir) / "server.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise DataDirInUse(
                f"another server ({holder}) is running on the data dir {data_dir}; only one may run per data dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        os.close(fd)
