"""`python -m bot ...`: the command-line adapter for personnel with direct access: the parser, and which module
runs each command (bot.cli.search, bot.cli.gallery, bot.cli.audit, bot.cli.controls; `purge` and `serve` here).

Exit codes (CONTRACTS.md): 0 the search ran; 1 error (audited as `error`); 2 denied by policy (audited as
`denied`); 3 a face must be chosen; 4 queued for an examiner or waiting for a supervisor's approval
(bot.cli.controls). With --json, stdout is exactly one JSON object for every exit code.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections.abc import Sequence

from bot import __version__, wording
from bot.cli import audit as cli_audit
from bot.cli import common
from bot.cli import controls as cli_controls
from bot.cli import gallery as cli_gallery
from bot.cli import search as cli_search
from bot.cli import store as cli_store
from bot.cli.common import (
    EXIT_BROKEN_CHAIN,
    EXIT_CHOOSE_FACE,
    EXIT_DENIED,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_QUEUED,
    emit,
)
from bot.config import ConfigError, Settings, load_settings
from bot.store.backend import StoreError, first_line

__all__ = ["EXIT_BROKEN_CHAIN", "EXIT_CHOOSE_FACE", "EXIT_DENIED", "EXIT_ERROR", "EXIT_OK", "EXIT_QUEUED",
           "build_parser", "main"]


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    """`purge`: apply [retention] once; exit 1 when old audit entries were due but could not be purged."""
    from bot.oversight.retention import purge_expired
    from bot.store.audit_log import AuditError

    actor, audit, core = common.os_requester(settings).id, None, common.core(settings)
    if settings.retention.audit_retention_days:  # only then is the log opened (and warned about, once)
        try:
            audit = core.audit
        except (AuditError, OSError):
            audit = None  # purge_expired opens it again and reports why it cannot
    report = purge_expired(settings, actor=actor, audit=audit, backend=core.backend)
    print(report.text(), file=sys.stdout if report.ok else sys.stderr)
    return EXIT_OK if report.ok else EXIT_ERROR


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from bot.slack.server import serve

    return serve(settings)


class _Help(argparse.HelpFormatter):
    """Descriptions and epilogs keep their line breaks (the attestation's numbered points, one exit code a line);
    each line is wrapped to the terminal, a numbered one under its own text."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines = []
        for line in text.splitlines():
            hang = re.match(r"(\d+\.?\s+)", line)
            lines.append(textwrap.fill(line, width, initial_indent=indent,
                                       subsequent_indent=indent + " " * len(hang.group(1) if hang else "")) or indent)
        return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1, as one JSON object under --json: argparse's own 2 means "denied by policy" here."""

    wants_json = False

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        if _Parser.wants_json:
            print(json.dumps({"error": f"usage: {message}"}, ensure_ascii=False))
        else:
            self.print_usage(sys.stderr)
            print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_ERROR)


def build_parser() -> argparse.ArgumentParser:
    """Every command, with help on every argument; usage errors speak in the help's words (metavars), never in
    the program's own names."""
    p = _Parser(prog="python -m bot", description=wording.CLI_DESCRIPTION)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                   help="print the version and exit")
    p.add_argument("--config", metavar="FILE", help="settings TOML (default $BOT_CONFIG or config/settings.toml)")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", required=True)
    cli_search.register(sub)
    cli_gallery.register(sub)
    cli_audit.register(sub)
    cli_controls.register(sub)
    cli_store.register(sub)

    pg = sub.add_parser("purge", help="apply [retention]: expired dialog state, cached probes, old audit entries")
    pg.set_defaults(func=cmd_purge)

    sv = sub.add_parser("serve", help="run the Slack bot (HTTP on $PORT, Socket Mode with SLACK_APP_TOKEN)")
    sv.set_defaults(func=cmd_serve)
    _own_usage(p)
    return p


def _own_usage(parser: argparse.ArgumentParser) -> None:
    """Each command remembers its parser, so an option it does not know is refused with its own usage (argparse
    leaves unknown options to the top-level parser)."""
    parser.set_defaults(usage_parser=parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _own_usage(sub)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    common.new_command()
    _Parser.wants_json = "--json" in argv
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        args.usage_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        emit(args, {"error": f"configuration error: {exc}"}, f"configuration error: {exc}", stream=sys.stderr)
        return EXIT_ERROR
    try:
        return int(args.func(args, settings) or 0)
    except common.NoPerson as exc:  # a shared account that names nobody: refused like a policy denial
        emit(args, {"denied": [str(exc)]}, f"denied: {exc}", stream=sys.stderr)
        return EXIT_DENIED
    except StoreError as exc:  # the database: another schema version, a role with too many rights
        emit(args, {"error": str(exc)}, f"error: {exc}", stream=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        if not type(exc).__module__.startswith("psycopg"):
            raise
        # The database went away or refused mid-command: one sentence (its own first line), never the URL.
        text = wording.store_unreachable_serving(first_line(exc))
        emit(args, {"error": text}, f"error: {text}", stream=sys.stderr)
        return EXIT_ERROR
    finally:
        common.close_cores()
