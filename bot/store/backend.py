"""Where a department's records live, decided once: the data dir's files (the default; `make run` needs no
database) or one PostgreSQL database several replicas share (issue 17), named by $BOT_DATABASE_URL, else
[store] url.

Every store a command or the server opens comes from a `Backend`, so no caller asks "files or database?"
itself. The PostgreSQL side holds one psycopg pool for the process; its stores take `connect` (the pool's
context-managed connection, committed on a clean exit). What stays per replica whatever the backend: the
spool, the matrix cache and the process lock under the replica's own BOT_DATA_DIR (CONTRACTS ### 13).
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bot import wording
from bot.config import Settings, database_url
from bot.store.audit_log import KEY_ENV, MIN_KEY_CHARS, AuditKeyError, AuditLog
from bot.store.disk import ensure_private_dir

MOVED_TO = "MOVED_TO"  # written in a data dir whose records `store copy` moved to a database


class StoreError(Exception):
    """The store cannot be used as it is; the message is a sentence that says what to do."""


def moved_to(data_dir: Path) -> str | None:
    """Where this data dir's records went (the MOVED_TO file's database), or None when they are still here."""
    try:
        body = json.loads((Path(data_dir) / MOVED_TO).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return "a database"
    return str(body.get("database") or "a database")


def is_database_outage(exc: BaseException) -> bool:
    """The database could not be reached or went away mid-call (a restart, a failover, the network): the input
    is kept and tried again, as for a full disk. Not an error in what was asked (those are psycopg's others)."""
    module = type(exc).__module__
    if not module.startswith(("psycopg", "psycopg_pool")):
        return False
    import psycopg
    from psycopg_pool import PoolTimeout

    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout))


def first_line(exc: BaseException) -> str:
    """A database error's own first line (no such role, a password, a right), never the URL it was asked on."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def audit_key_from_env(env: Mapping[str, str]) -> bytes:
    """BOT_AUDIT_KEY, required on a shared database: a key file would live on one replica's disk only, and the
    other replicas could never sign the same chain (CONTRACTS ### 13)."""
    value = (env.get(KEY_ENV) or "").strip()
    if len(value) < MIN_KEY_CHARS:
        raise AuditKeyError(wording.store_audit_key_needed(KEY_ENV, MIN_KEY_CHARS, bool(value)))
    return value.encode("utf-8")


@dataclass
class Backend:
    """The files of `settings.data_dir`, or the database at `url` (one connection pool, opened on first use)."""

    settings: Settings
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    url: str = field(default="", repr=False)  # may carry a password: never shown
    pool_size: int = 10
    _pool: Any = field(default=None, repr=False)
    _ready: int = field(default=0, repr=False)  # 1: the schema checked; 2: the rights too

    @classmethod
    def of(cls, settings: Settings, env: Mapping[str, str] | None = None) -> Backend:
        """The backend `settings` and the environment name ($BOT_DATABASE_URL wins over [store] url)."""
        env = os.environ if env is None else env
        return cls(settings, env, database_url(settings, env))

    @property
    def shared(self) -> bool:
        """True on PostgreSQL: several replicas may serve this department at once."""
        return bool(self.url)

    @property
    def name(self) -> str:
        """What the records live in, for logs and /healthz (no credentials)."""
        return "postgresql" if self.shared else "files"

    # -- PostgreSQL ----------------------------------------------------------------------------------------

    @property
    def pool(self) -> Any:
        """The process's psycopg pool (PostgreSQL only), opened on first use."""
        if not self.shared:
            raise StoreError("this data dir keeps its records in files: there is no database to connect to")
        if self._pool is None:
            from psycopg_pool import ConnectionPool

            # check: a connection the server closed meanwhile (a restart, a failover) is replaced before use.
            # timeout: how long a call waits for a connection; short, so an outage is noticed (and the input
            # spooled) in seconds rather than piling up threads.
            self._pool = ConnectionPool(self.url, min_size=1, max_size=self.pool_size, open=True, timeout=5,
                                        kwargs={"connect_timeout": 10}, check=ConnectionPool.check_connection,
                                        name="frbot")
        return self._pool

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        """One pooled connection; its transaction commits on a clean exit and rolls back on an exception."""
        with self.pool.connection() as conn:
            yield conn

    def ping(self) -> bool:
        """Whether the database answers now (True on the files: there is nothing to lose)."""
        if not self.shared:
            return True
        try:
            with self.pool.connection(timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except Exception as exc:
            if is_database_outage(exc):
                return False
            raise

    def check_ready(self, *, rights: bool = True) -> None:
        """StoreError unless the database is at this version's schema and (`rights`) the connected role can
        neither change nor remove audit entries (a server refuses to start otherwise; CONTRACTS ### 13).
        Files: StoreError once `store copy` moved them (MOVED_TO)."""
        if self._ready >= rights + 1:
            return
        if not self.shared:
            database = moved_to(self.settings.data_dir)
            if database:  # `store copy` moved these records: serving them here would fork them
                raise StoreError(wording.store_moved(database))
            self._ready = 2
            return
        import psycopg

        from bot.store.pg import schema

        want = schema.migrations()[-1].version
        try:
            with self.connect() as conn:
                have = schema.current_version(conn)
                problems = schema.app_rights_problems(conn) if have and rights else []
        except psycopg.Error as exc:
            raise StoreError(wording.store_unreachable_serving(first_line(exc))) from None
        if have != want:
            raise StoreError(wording.store_schema_version(have, want))
        if problems:
            raise StoreError(wording.store_role_too_strong(problems))
        self._ready = rights + 1

    # -- the stores ----------------------------------------------------------------------------------------

    def audit_log(self, *, clock: Callable[[], datetime] | None = None) -> Any:
        """The audit log: the data dir's file (key from BOT_AUDIT_KEY, else its key file), or the database's
        table (BOT_AUDIT_KEY required)."""
        if not self.shared:
            self.check_ready()
            ensure_private_dir(self.settings.data_dir)
            return AuditLog.open(self.settings.data_dir, self.env, clock=clock)
        from bot.store.pg.audit import PgAuditLog

        self.check_ready(rights=False)  # a command on an unmigrated database: the sentence, not a missing table
        return PgAuditLog(self.connect, key=audit_key_from_env(self.env), clock=clock)

    def dialogs(self) -> Any:
        """Request dialogs and their dedupe claims: data_dir/slack/dialogs.json, or the database's tables."""
        if not self.shared:
            from bot.store.dialogs import DialogStore

            return DialogStore(ensure_private_dir(self.settings.data_dir / "slack") / "dialogs.json")
        from bot.store.pg.dialogs import PgDialogStore

        self.check_ready(rights=False)
        return PgDialogStore(self.connect)

    def examinations(self) -> Any:
        """Examiner reviews: data_dir/examinations.json, or the database's table."""
        if not self.shared:
            from bot.store.records import ExaminationStore

            return ExaminationStore(ensure_private_dir(self.settings.data_dir) / "examinations.json")
        from bot.store.pg.records import PgExaminationStore

        self.check_ready(rights=False)
        return PgExaminationStore(self.connect)

    def approvals(self) -> Any:
        """Command-line requests waiting for a supervisor: data_dir/approvals.json, or the database's table."""
        if not self.shared:
            from bot.store.records import ApprovalStore

            return ApprovalStore(ensure_private_dir(self.settings.data_dir) / "approvals.json")
        from bot.store.pg.records import PgApprovalStore

        self.check_ready(rights=False)
        return PgApprovalStore(self.connect)

    def gallery(self) -> Any:
        """The known-person gallery: data_dir/gallery/, or the database's tables with this replica's matrix cache
        in data_dir/gallery/ (fetched once per generation; never backed up)."""
        if not self.shared:
            from bot.faces.gallery import Gallery

            return Gallery(self.settings.data_dir)
        from bot.store.pg.gallery import PgGallery

        self.check_ready(rights=False)
        return PgGallery(self.connect, ensure_private_dir(self.settings.data_dir) / "gallery")

    def gallery_watch(self) -> Any:
        """A LISTEN on the gallery's commits (bot.store.pg.gallery.GalleryWatch); None on the files."""
        if not self.shared:
            return None
        from bot.store.pg.gallery import GalleryWatch

        return GalleryWatch(self.url)

    def reencode_progress(self) -> Callable[[Mapping[str, Any]], Any] | None:
        """Where `gallery reencode` keeps what it has made (a recipe -> the progress store): None for the default
        beside the gallery's files; on a database its table, so a run stopped on one machine resumes on any."""
        if not self.shared:
            return None
        from bot.store.pg.progress import PgReencodeProgress

        return lambda recipe: PgReencodeProgress(self.connect, recipe)

    def call_index(self) -> Any:
        """The dispatch call-number index: data_dir/slack/calls.json, or the database's table."""
        if not self.shared:
            from bot.store.calls import CallIndexStore

            return CallIndexStore(self.settings.data_dir)
        from bot.store.pg.slack import PgCallIndexStore

        return PgCallIndexStore(self.connect)

    def outbox(self) -> Any:
        """Posts waiting for Slack: data_dir/slack/outbox.json, or the database's table (claimed with leases)."""
        if not self.shared:
            from bot.store.calls import OutboxStore

            return OutboxStore(self.settings.data_dir)
        from bot.store.pg.slack import PgOutboxStore

        return PgOutboxStore(self.connect)

    def replays(self) -> Any:
        """Signed requests already handled: data_dir/slack/replays.log, or the database's table (a request
        replayed to another replica is refused there too)."""
        if not self.shared:
            from bot.store.replays import ReplayClaims

            return ReplayClaims(self.settings.data_dir / "slack" / "replays.log")
        from bot.store.pg.cache import PgReplayClaims

        return PgReplayClaims(self.connect)

    def probes(self) -> Any:
        """What face analysis found on each request's photo: data_dir/cache/probes/, or the database's table."""
        if not self.shared:
            from bot.store.probes import ProbeCache

            return ProbeCache(self.settings.data_dir)
        from bot.store.pg.cache import PgProbeCache

        return PgProbeCache(self.connect)

    def sheets(self) -> Any:
        """The comparison sheets a command-line examiner review waits with until a server posts them:
        data_dir/cache/probes/, or the database's table (the CLI and the server may run on different machines)."""
        if not self.shared:
            from bot.store.probes import SheetCache

            return SheetCache(self.settings.data_dir)
        from bot.store.pg.cache import PgSheetCache

        return PgSheetCache(self.connect)

    def small_records(self) -> Any:
        """Small JSON records every replica reads (e.g. the last full chain check): files under data_dir/records/,
        or the database's `small_records` table."""
        if not self.shared:
            from bot.store.small_records import SmallRecords

            return SmallRecords(self.settings.data_dir / "records")
        from bot.store.pg.cache import PgSmallRecords

        return PgSmallRecords(self.connect)

    def leases(self) -> Any:
        """Leases on work in flight: a sqlite file in the data dir, or the database's table."""
        if not self.shared:
            from bot.store.leases import FileLeases

            return FileLeases(ensure_private_dir(self.settings.data_dir / "slack") / "leases.sqlite3")
        from bot.store.pg.leases import PgLeases

        return PgLeases(self.connect)

    def leadership(self, replica: str) -> Any:
        """Who runs the periodic work: the one server of a data dir always; on a database, the replica holding
        the session advisory lock (its own connection, outside the pool)."""
        if not self.shared:
            from bot.store.leadership import SoleLeadership

            return SoleLeadership(replica)
        from bot.store.pg.leader import Leadership

        return Leadership(self.url, replica)

    def close(self) -> None:
        """Close the pool (PostgreSQL); the file stores hold nothing open between operations."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
