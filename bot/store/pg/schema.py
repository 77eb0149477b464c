"""The PostgreSQL schema: numbered migrations run under an advisory lock, its version, and the app's rights.

Migrations are the files `migrations/NNN_name.sql`, applied in order, each once, all pending ones in one
transaction under a transaction-level advisory lock (two replicas migrating at once: one waits, then finds
nothing to do). `frbot_schema` records every version applied. A migrate with nothing to do writes nothing.

Roles (CONTRACTS ### 13): the department's DBA creates the login roles `frbot_owner` (owns the database, runs
`store migrate`) and `frbot_app` (what every other command and the server connect as). The migrations grant
`frbot_app` only what it needs; on the audit table that is SELECT and INSERT, and entries leave only through
`frbot_purge_audit_through(seq, cutoff, anchor)` (002), which keeps the 365-day floor and writes the purge marker.
`app_rights_problems` is what a server checks before it starts: a role that could UPDATE, DELETE or TRUNCATE the
audit table is refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.store.pg import locks

MIGRATIONS = Path(__file__).with_name("migrations")
AUDIT_TABLE = "audit_entries"
APP_ROLE = "frbot_app"
# pg_advisory_xact_lock's key for migrations: any fixed number no other program on the database uses.
LOCK_KEY = locks.MIGRATE
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One numbered schema change."""

    version: int
    name: str
    sql: str


def migrations(folder: Path = MIGRATIONS) -> list[Migration]:
    """Every `NNN_name.sql` of `folder`, in order; ValueError when a number is missing, repeated or a file is
    misnamed (a schema must never be built from a gap)."""
    found = []
    for path in sorted(folder.iterdir()):
        if path.suffix != ".sql":
            continue
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"{path.name}: a migration is named NNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise ValueError(f"migrations must be numbered 001, 002, ... without gaps (found {versions})")
    return found


def current_version(conn: Any) -> int:
    """The highest migration applied to this database (0: none, or no schema yet)."""
    row = conn.execute("SELECT to_regclass('frbot_schema') IS NOT NULL").fetchone()
    if not row[0]:
        return 0
    return int(conn.execute("SELECT coalesce(max(version), 0) FROM frbot_schema").fetchone()[0])


def migrate(conn: Any, available: list[Migration] | None = None) -> list[Migration]:
    """Apply every pending migration in one transaction under the advisory lock; the ones applied (none: the
    database was already current, and nothing was written)."""
    available = migrations() if available is None else available
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        done = current_version(conn)
        pending = [m for m in available if m.version > done]
        if not pending:
            return []
        if done == 0:
            conn.execute("CREATE TABLE frbot_schema (version integer PRIMARY KEY, name text NOT NULL, "
                         "applied_at timestamptz NOT NULL DEFAULT now())")
            conn.execute(f"GRANT SELECT ON frbot_schema TO {APP_ROLE}")
        for m in pending:
            conn.execute(m.sql)
            conn.execute("INSERT INTO frbot_schema (version, name) VALUES (%s, %s)", (m.version, m.name))
    return pending


def app_rights_problems(conn: Any) -> list[str]:
    """What the connected role may do to the audit table that the app's role must not: [] when it can only
    read and append (the server refuses to start otherwise, CONTRACTS ### 13)."""
    problems = []
    for right in ("UPDATE", "DELETE", "TRUNCATE"):
        row = conn.execute("SELECT has_table_privilege(current_user, %s, %s)", (AUDIT_TABLE, right)).fetchone()
        if row[0]:
            problems.append(right)
    return problems
