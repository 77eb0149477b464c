"""The spool: inputs the bot promised to apply later (an upload, reply or press whose state could not be saved for
lack of room), kept in space reserved at start so they survive a restart even on a full disk.

`data_dir/spool/spool.bin` (0600) is filled with zeros to `[server] spool_mb` when the server starts, so a record
written later lands in blocks the file already owns. Records follow each other from offset 0:

    state (1 byte: 1 pending, 2 done) | length (4 bytes, big-endian) | CRC-32 of the payload (4) | payload (JSON)

A zero state byte ends the list. A record is written with state 0 and the end marker after it, then its state
byte is set to 1, each step fsynced: a crash leaves either no record or a whole one. A record whose CRC does not
match ends the list too. When every record is done the list starts over at offset 0.
"""
from __future__ import annotations

import json
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bot.store.disk import ensure_private_dir

log = logging.getLogger(__name__)

PENDING, DONE, END = 1, 2, 0
_HEADER = struct.Struct(">BII")
_CHUNK = 1 << 20


class SpoolFull(Exception):
    """No room left in the spool for this input (or the spool file cannot be written)."""


class Spool:
    """Pending inputs in a preallocated file; `capacity` bytes usable (the file's size at most)."""

    def __init__(self, path: Path, size_bytes: int) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        ensure_private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            have = os.fstat(fd).st_size
            try:
                while have < size_bytes:  # real zeros, not a sparse hole: the blocks are ours from now on
                    have += os.pwrite(fd, bytes(min(_CHUNK, size_bytes - have)), have)
                os.fsync(fd)
            except OSError as exc:
                log.error("the spool could not be reserved in full (%s): %d of %d bytes", exc.strerror or exc,
                          have, size_bytes)
            self.capacity = min(os.fstat(fd).st_size, size_bytes) if size_bytes else 0
        finally:
            os.close(fd)
        records = list(self._records())
        self._end = max((end for _offset, _state, _payload, end in records), default=0)
        # What an earlier process left: the only records to replay at start (this process retries its own).
        self.inherited = frozenset(offset for offset, state, _payload, _end in records if state == PENDING)
        self._pending = set(self.inherited)  # ids not yet done: `done` knows when to start over without a read

    def _records(self) -> Iterator[tuple[int, int, bytes, int]]:
        """(offset, state, payload, offset after it) of every whole record, in order."""
        with open(self.path, "rb") as fh:
            data = fh.read(self.capacity)
        offset = 0
        while offset + _HEADER.size <= len(data):
            state, length, crc = _HEADER.unpack_from(data, offset)
            if state not in (PENDING, DONE):
                return
            start, stop = offset + _HEADER.size, offset + _HEADER.size + length
            payload = data[start:stop]
            if stop > len(data) or zlib.crc32(payload) != crc:
                return
            yield offset, state, payload, stop
            offset = stop

    def pending(self, *, inherited: bool = False) -> list[tuple[int, dict[str, Any]]]:
        """(record id, what was spooled) of every input not yet done, oldest first; with `inherited`, only those
        an earlier process left (pending when this spool was opened)."""
        with self._lock:
            return [(offset, json.loads(payload)) for offset, state, payload, _end in self._records()
                    if state == PENDING and (not inherited or offset in self.inherited)]

    def add(self, record: dict[str, Any]) -> int:
        """Keep `record` (JSON-able); returns its id. SpoolFull when it does not fit or cannot be written."""
        payload = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        with self._lock:
            offset = self._end
            stop = offset + _HEADER.size + len(payload)
            if stop + 1 > self.capacity:
                raise SpoolFull(f"{len(payload)} bytes do not fit in the spool ({self.capacity - offset} free)")
            try:
                fd = os.open(self.path, os.O_RDWR)
                try:
                    os.pwrite(fd, _HEADER.pack(END, len(payload), zlib.crc32(payload)) + payload + bytes(1), offset)
                    os.fsync(fd)
                    os.pwrite(fd, bytes([PENDING]), offset)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise SpoolFull(f"the spool cannot be written ({exc.strerror or exc})") from None
            self._end = stop
            self._pending.add(offset)
            return offset

    def done(self, record_id: int) -> None:
        """The input was applied (or given up): it is not replayed again. Starts over when all are done."""
        with self._lock:
            fd = os.open(self.path, os.O_RDWR)
            try:
                os.pwrite(fd, bytes([DONE]), record_id)
                os.fsync(fd)
                self._pending.discard(record_id)
                if not self._pending:
                    os.pwrite(fd, bytes([END]), 0)
                    os.fsync(fd)
                    self._end = 0
            finally:
                os.close(fd)
