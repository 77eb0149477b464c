"""`python -m bot store migrate`: create or bring up to date the PostgreSQL schema (bot.store.pg.schema);
`python -m bot store copy [--to URL]`: move the data dir's records into an empty database (bot.store.pg.copy)."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from bot import wording
from bot.cli.common import EXIT_ERROR, EXIT_OK
from bot.config import Settings, database_url


def cmd_store(args: argparse.Namespace, settings: Settings, env: Any = None) -> int:
    """`store migrate` with the owner's URL ($BOT_DATABASE_URL, else [store] url): what was applied, or that
    nothing was to do; a database that cannot be reached or refuses is one sentence and exit 1."""
    import os

    import psycopg

    from bot.store.pg import schema

    env = os.environ if env is None else env
    if args.store_cmd == "copy":
        return cmd_store_copy(args, settings, env)
    url = database_url(settings, env)
    if not url:
        print(f"error: {wording.STORE_URL_MISSING}", file=sys.stderr)
        return EXIT_ERROR
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            applied = schema.migrate(conn)
            version = schema.current_version(conn)
    except psycopg.Error as exc:
        # The server's message names the problem (no such role, password, permission); never the URL itself.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: {wording.store_unreachable(reason)}", file=sys.stderr)
        return EXIT_ERROR
    print(wording.store_migrated(version, [f"{m.version:03d}_{m.name}" for m in applied]))
    return EXIT_OK


def cmd_store_copy(args: argparse.Namespace, settings: Settings, env: Any) -> int:
    """`store copy [--to URL]`: the data dir into the empty database at URL (else $BOT_DATABASE_URL, the owner's),
    under the data dir's server lock; what went over and the chain head both sides verify to, or one sentence."""
    import psycopg

    from bot.store.audit_log import AuditError
    from bot.store.backend import audit_key_from_env, first_line, moved_to
    from bot.store.disk import DataDirInUse, hold_data_dir
    from bot.store.pg.copy import CopyRefused, copy_data_dir

    url = (args.to or "").strip() or database_url(settings, env)
    problem = None
    if not url:
        problem = wording.STORE_URL_MISSING
    elif args.to and password_in_url(args.to):
        problem = wording.STORE_COPY_PASSWORD_IN_ARGS
    elif moved_to(settings.data_dir):
        problem = wording.store_moved(moved_to(settings.data_dir) or "")
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_ERROR
    try:
        key = audit_key_from_env(env)
        with hold_data_dir(settings.data_dir):  # no server may write while its records move
            report = copy_data_dir(settings.data_dir, url, key)
    except (CopyRefused, AuditError, DataDirInUse) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except psycopg.Error as exc:
        print(f"error: {wording.store_unreachable(first_line(exc))}", file=sys.stderr)
        return EXIT_ERROR
    print(wording.store_copied(report.database, report.counts, report.head))
    return EXIT_OK


def password_in_url(url: str) -> bool:
    """Whether a postgresql:// URL (or key=value string) carries a password, which belongs in the environment."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        return bool(conninfo_to_dict(url).get("password"))
    except Exception:  # noqa: BLE001 - a URL psycopg cannot read is refused later, with its own message
        return False


def register(sub: Any) -> None:
    """The `store` commands on the top-level parser's subparsers."""
    s = sub.add_parser("store", help="the PostgreSQL store: `store migrate` creates or updates its schema")
    ssub = s.add_subparsers(dest="store_cmd", metavar="COMMAND", required=True)
    ssub.add_parser("migrate", help="create or update the schema (run with the owner's BOT_DATABASE_URL)")
    c = ssub.add_parser("copy", help="copy this data dir's records into an empty database (the owner's URL), "
                                     "then mark the data dir MOVED_TO")
    c.add_argument("--to", metavar="URL", help="postgresql://frbot_owner@host/db (no password: use PGPASSWORD or "
                                               "~/.pgpass); default $BOT_DATABASE_URL")
    s.set_defaults(func=cmd_store)
