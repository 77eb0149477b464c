"""`python -m bot store migrate`: create or bring up to date the PostgreSQL schema (bot.store.pg.schema)."""
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

    url = database_url(settings, os.environ if env is None else env)
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


def register(sub: Any) -> None:
    """The `store` commands on the top-level parser's subparsers."""
    s = sub.add_parser("store", help="the PostgreSQL store: `store migrate` creates or updates its schema")
    ssub = s.add_subparsers(dest="store_cmd", metavar="COMMAND", required=True)
    ssub.add_parser("migrate", help="create or update the schema (run with the owner's BOT_DATABASE_URL)")
    s.set_defaults(func=cmd_store)
