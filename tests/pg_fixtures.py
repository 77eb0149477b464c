"""A real PostgreSQL for the store's tests: one `postgres` process per session from the pgserver wheel (its own
initdb, pg_ctl and postgres; no Docker, no system package), PGDATA in its own folder under the system temp dir
(`frbot-pg-<uid>/<pid>`: as root, pgserver runs the server as an unprivileged user that cannot enter pytest's
0700 temp dirs; one folder per session, so two test runs on one machine never share or stop each other's). The DBA's part is done here as the department's DBA would: the login roles `frbot_owner` and
`frbot_app`, and per test a database owned by frbot_owner.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

_COUNTER = itertools.count(1)


class StepClock:
    """A clock for audit logs under test: each reading is `step` after the last, from `start`."""

    def __init__(self, start: datetime, step: timedelta) -> None:
        self.now, self.step = start, step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


@dataclass(frozen=True)
class Database:
    """One test's database: URLs of its owner and of the app's role, and the superuser's (the DBA's)."""

    name: str
    owner_url: str
    app_url: str
    admin_url: str


def _url(role: str, database: str, socket_dir: str) -> str:
    return f"postgresql://{role}@/{database}?host={socket_dir}"


@contextlib.contextmanager
def postgres_server(folder: str) -> Iterator[tuple[str, str]]:
    """(superuser URL, socket dir) of a PostgreSQL started in `frbot-pg-<uid>/<folder>` under the system temp dir,
    with the login roles frbot_owner and frbot_app; stopped and its folder removed afterwards. Also for the
    benchmarks (bench/store.py)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset on servers
        import pgserver
    import psycopg

    # One folder per test session (two sessions on one machine must never share, or stop, one server); the
    # parent stays traversable for pgserver's own user when it runs us as root.
    base = Path(tempfile.gettempdir()) / f"frbot-pg-{os.getuid()}"
    base.mkdir(exist_ok=True)
    base.chmod(0o755)
    pgdata = base / folder
    shutil.rmtree(pgdata, ignore_errors=True)
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    admin = server.get_uri()
    socket_dir = str(pgdata)
    with psycopg.connect(admin, autocommit=True) as conn:
        for role in ("frbot_owner", "frbot_app"):
            conn.execute(f"CREATE ROLE {role} LOGIN")
    _SERVERS[admin] = server
    try:
        yield admin, socket_dir
    finally:
        server.cleanup()


_SERVERS: dict[str, object] = {}  # the session's pgserver objects, by superuser URL


class PgControl:
    """Stops and starts the session's PostgreSQL as its operator would (`pg_ctl stop -m fast`, then start):
    a database that goes away for a while and comes back."""

    def __init__(self, server: object) -> None:
        self.server = server

    def stop(self) -> None:
        from pgserver import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        from pgserver import pg_ctl

        socket_dir = str(self.server.pgdata)
        pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.server.log), "start"],
               pgdata=self.server.pgdata, user=self.server.system_user, timeout=30)
        from pgserver.postgres_server import PostmasterInfo

        # pgserver stops the process it knows of at the session's end: this one now.
        self.server._postmaster_info = PostmasterInfo.read_from_pgdata(self.server.pgdata)


@pytest.fixture
def pg_control(pg_server: tuple[str, str]) -> Iterator[PgControl]:
    """Stop and start the session's database in a test; it is running again afterwards whatever happened."""
    control = PgControl(_SERVERS[pg_server[0]])
    try:
        yield control
    finally:
        import psycopg

        try:
            psycopg.connect(pg_server[0], connect_timeout=3).close()
        except psycopg.OperationalError:
            control.start()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[tuple[str, str]]:
    """(superuser URL, socket dir) of a PostgreSQL started for this session, stopped and removed after it."""
    with postgres_server(str(os.getpid())) as server:
        yield server


def new_database(pg_server: tuple[str, str], template: str | None = None) -> Iterator[Database]:
    """A database owned by frbot_owner (a clone of `template` when given) that frbot_app may connect to; yields
    it once and drops it when resumed."""
    import psycopg

    admin, socket_dir = pg_server
    name = f"frbot_test_{os.getpid()}_{next(_COUNTER)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        clone = f" TEMPLATE {template}" if template else ""
        conn.execute(f"CREATE DATABASE {name}{clone} OWNER frbot_owner")
        # The DBA's grants: the app may connect; public may not create in the public schema (PG 15+ default).
        conn.execute(f"GRANT CONNECT ON DATABASE {name} TO frbot_app")
    with psycopg.connect(_url("postgres", name, socket_dir), autocommit=True) as conn:
        conn.execute("GRANT USAGE ON SCHEMA public TO frbot_app")
        conn.execute("GRANT CREATE, USAGE ON SCHEMA public TO frbot_owner")
    try:
        yield Database(name, _url("frbot_owner", name, socket_dir), _url("frbot_app", name, socket_dir),
                       _url("postgres", name, socket_dir))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def pg_database(pg_server: tuple[str, str]) -> Iterator[Database]:
    """A fresh, empty database owned by frbot_owner (dropped after the test)."""
    yield from new_database(pg_server)


@pytest.fixture(scope="session")
def pg_template(pg_server: tuple[str, str]) -> Iterator[str]:
    """A database migrated once per session (`store migrate` as frbot_owner), which tests clone."""
    import psycopg

    from bot.store.pg import schema

    made = new_database(pg_server)
    db = next(made)
    with psycopg.connect(db.owner_url, autocommit=True) as owner:
        schema.migrate(owner)
    yield db.name
    with contextlib.suppress(StopIteration):
        next(made)


@pytest.fixture
def pg_migrated(pg_server: tuple[str, str], pg_template: str) -> Iterator[Database]:
    """A database at the current schema, cloned from the session's migrated template (CREATE DATABASE ...
    TEMPLATE copies tables, functions, triggers and grants in milliseconds)."""
    yield from new_database(pg_server, pg_template)
