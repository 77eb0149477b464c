"""`store copy --to`: move a department's data dir into an empty PostgreSQL database (issue 17, item 3).

Everything is written in ONE transaction on one connection (the owner's): a copy that fails half-way leaves
the database as empty as it was, and can simply be run again. The target must hold no records (a migrated
database with none counts as empty). The audit entries go over as their exact bytes, so both sides verify to
the same chain head, which is checked before the copy commits. The data dir's server lock is held meanwhile
(a running server refuses the copy; a server started during it is refused), and afterwards the data dir gets a
`MOVED_TO` file: the file store refuses to start on it again (bot.store.backend).
"""
from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot import wording
from bot.audit.chain import ANCHOR_KIND, ChainCheck, entry_mac, parse_line
from bot.store.audit_log import AuditLog
from bot.store.backend import MOVED_TO
from bot.store.pg import schema

# Tables whose rows are records (what "empty" means). Not: the schema's versions, the gallery's generation
# counter (a migrated database starts at generation 0), and leases on work in flight (state, not records).
_NOT_RECORDS = ("frbot_schema", "gallery_meta", "work_leases")
_RECORD_TABLES_SQL = ("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                      "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> ALL(%s) ORDER BY 1")


class CopyRefused(Exception):
    """The copy was not made (nothing was written); the message says why and what to do."""


@dataclass
class CopyReport:
    """What went over: a count per kind of record, and the chain head both sides verify to."""

    counts: dict[str, int] = field(default_factory=dict)
    head: dict[str, Any] | None = None
    database: str = ""  # host/dbname


def tables_with_rows(conn: Any) -> list[str]:
    """The record tables of the connected database that hold at least one row."""
    names = [r[0] for r in conn.execute(_RECORD_TABLES_SQL, (list(_NOT_RECORDS),)).fetchall()]
    return [n for n in names if conn.execute(f'SELECT EXISTS (SELECT 1 FROM "{n}")').fetchone()[0]]


def database_label(conn: Any) -> str:
    """host/dbname of the connection, never its user or password (what MOVED_TO and messages name)."""
    info = conn.info
    host = info.host if info.host and not info.host.startswith("/") else "localhost"
    return f"{host}/{info.dbname}"


def _audit_lines(log: AuditLog) -> Iterator[bytes]:
    """The file log's complete lines as their exact bytes, without the newline (a torn tail was never
    acknowledged: it stays behind, as `audit verify` reports it)."""
    for raw in log._raw_lines():
        if not raw.endswith(b"\n"):
            return
        yield raw[:-1]


def copy_audit(conn: Any, log: AuditLog, key: bytes) -> tuple[int, dict[str, Any] | None]:
    """Insert every entry of the file log, byte for byte, checking the chain as it goes; (count, head)."""
    from bot.store.pg.audit import insert_line

    check = ChainCheck(lambda obj: entry_mac(key, obj))
    n, head = 0, None
    for line in _audit_lines(log):
        failed = check.feed(line)
        if failed is not None:
            raise CopyRefused(wording.store_copy_broken_log(failed.bad_seq, failed.reason))
        obj = parse_line(line)
        if obj.get("kind") == ANCHOR_KIND:  # a purged log starts with its marker: the database keeps it apart
            conn.execute("INSERT INTO audit_anchors (purge_seq, anchor_seq, line) VALUES (%s, %s, %s)",
                         (obj["purge_seq"], obj["anchor_seq"], line))
            continue
        insert_line(conn, obj, line)
        n, head = n + 1, {"seq": obj["seq"], "mac": obj["mac"], "ts": obj["ts"]}
    return n, head


def copy_records(connect: Callable[[], Any], data_dir: Path) -> dict[str, int]:
    """Dialogs (with their dedupe claims), examiner reviews and approvals, through the stores' own `put`."""
    from bot.store.dialogs import DialogStore
    from bot.store.pg.dialogs import PgDialogStore
    from bot.store.pg.records import PgApprovalStore, PgExaminationStore
    from bot.store.records import ApprovalStore, ExaminationStore

    counts: dict[str, int] = {}
    path = data_dir / "slack" / "dialogs.json"
    if path.exists():
        source, target = DialogStore(path), PgDialogStore(connect)
        try:
            dialogs = source.all()
            for dialog in dialogs:
                target.put(dialog)
            claims = source.claims()
            for key, at in claims:
                target.claim(key, at)
        finally:
            source.close()
        counts["dialogs"], counts["dedupe claims"] = len(dialogs), len(claims)
    for name, file_cls, pg_cls in (("examinations", ExaminationStore, PgExaminationStore),
                                   ("approvals", ApprovalStore, PgApprovalStore)):
        path = data_dir / f"{name}.json"
        if not path.exists():
            continue
        source, target = file_cls(path), pg_cls(connect)
        try:
            records = source.all()
            for record in records:
                target.put(record)
        finally:
            source.close()
        counts[name] = len(records)
    return counts


def copy_slack_records(connect: Callable[[], Any], data_dir: Path) -> dict[str, int]:
    """The dispatch call index, posts still waiting for Slack (each keeps its post_id), cached probe analyses of
    requests in progress and comparison sheets not yet posted."""
    from bot.store.calls import CallIndexStore, OutboxStore
    from bot.store.pg.cache import PgProbeCache, PgSheetCache
    from bot.store.pg.slack import PgCallIndexStore, PgOutboxStore
    from bot.store.probes import ProbeCache, SheetCache

    counts: dict[str, int] = {}
    if (data_dir / "slack" / "calls.json").exists():
        index = CallIndexStore(data_dir)
        try:
            calls = index.all()
        finally:
            index.close()
        PgCallIndexStore(connect).put(calls)
        counts["indexed calls"] = len(calls)
    if (data_dir / "slack" / "outbox.json").exists():
        queued, target = OutboxStore(data_dir), PgOutboxStore(connect)
        try:
            posts = queued.all()
        finally:
            queued.close()
        for doc in posts:
            target.add({k: v for k, v in doc.items() if k != "_id"})
        counts["queued posts"] = len(posts)
    for name, file_cls, pg_cls in (("cached probes", ProbeCache, PgProbeCache),
                                   ("comparison sheets", SheetCache, PgSheetCache)):
        source, target = file_cls(data_dir), pg_cls(connect)
        ids = source.ids()
        for request_id in ids:
            item = source.get(request_id)
            if item is not None:
                target.put(request_id, item)
        if ids:
            counts[name] = len(ids)
    return counts


def copy_gallery(source: Any, target: Any) -> dict[str, int]:
    """Every subject and image of the `source` gallery, with its template, enrollment time and enroller and its
    face crop, into the empty `target` as ONE generation of the same model (a matrix of N×128 floats is held
    in memory meanwhile: 0.5 GB a million images)."""
    import numpy as np

    subjects: dict[str, dict[str, Any]] = {}
    images, templates = [], []
    for im in source.images():
        subjects.setdefault(im["subject_id"], {"subject_id": im["subject_id"], "name": im["name"],
                                               "record_ref": im["record_ref"], "created_at": im["subject_created_at"]})
        images.append({"sha256": im["sha256"], "subject_id": im["subject_id"], "source": im["source"],
                       "box": im["box"], "actor": im["enrolled_by"], "enrolled_at": im["enrolled_at"]})
        templates.append(im["encoding"])
    if images:
        target.change(source.model, subjects=list(subjects.values()), images=images,
                      encodings=np.stack(templates))
    crops = 0
    for im in images:
        jpeg = source.thumbnail(im["sha256"])
        if jpeg is not None:
            target.save_thumbnail(im["sha256"], jpeg)
            crops += 1
    return {"subjects": len(subjects), "enrolled images": len(images), "face crops": crops}


def _copy_gallery_dir(connect: Callable[[], Any], data_dir: Path) -> dict[str, int]:
    from bot.faces.gallery import Gallery
    from bot.store.pg.gallery import PgGallery

    # The target's matrix cache is a scratch folder: the replicas fetch theirs from the database.
    with tempfile.TemporaryDirectory(prefix="frbot-copy-") as scratch, Gallery(data_dir) as source:
        target = PgGallery(connect, Path(scratch))
        try:
            return copy_gallery(source, target)
        finally:
            target.close()


def copy_data_dir(data_dir: Path, url: str, key: bytes, *, now: datetime | None = None) -> CopyReport:
    """Copy `data_dir` into the empty database at `url` (the owner's), migrating it first; CopyRefused when the
    database holds records or the audit log does not verify. Writes MOVED_TO once the copy committed."""
    import psycopg

    from bot.store.pg.audit import PgAuditLog

    data_dir = Path(data_dir)
    report = CopyReport()
    log = AuditLog(data_dir, key=key, key_source="env")
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        schema.migrate(conn)
        label = report.database = database_label(conn)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (schema.LOCK_KEY,))  # two copies at once: one waits
            full = tables_with_rows(conn)
            if full:
                raise CopyRefused(wording.store_copy_not_empty(label, full))
            report.counts["audit entries"], report.head = copy_audit(conn, log, key)

            def connect() -> Any:
                return contextlib.nullcontext(conn)  # every store writes inside this one transaction

            report.counts.update(copy_records(connect, data_dir))
            report.counts.update(copy_slack_records(connect, data_dir))
            if (data_dir / "gallery" / "gallery.sqlite3").exists():
                report.counts.update(_copy_gallery_dir(connect, data_dir))
            copied = PgAuditLog(connect, key=key)
            if copied.head() != report.head or not copied.verify().ok:
                raise CopyRefused(wording.store_copy_heads_differ())
    stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    (data_dir / MOVED_TO).write_text(json.dumps({"database": label, "at": stamp, "head": report.head}) + "\n",
                                     encoding="utf-8")
    return report
