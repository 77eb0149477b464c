"""What every command-line command shares: exit codes (CONTRACTS.md), who is asking (the person behind the OS
account), typed text as valid Unicode, and one JSON object or one line of text as output."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bot import wording
from bot.config import Settings

EXIT_OK, EXIT_ERROR, EXIT_DENIED, EXIT_CHOOSE_FACE = 0, 1, 2, 3
EXIT_BROKEN_CHAIN = 4  # audit export|report|bundle: the output was written, but the chain does not verify
EXIT_QUEUED = 4  # queued for an examiner ([review] mode "examiner") or awaiting approval: no candidate printed
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it): nothing half-done is left behind


# The kernel's record of the account a login session began as; sudo does not change it. Unset: 4294967295.
LOGINUID = Path("/proc/self/loginuid")
_UNSET_LOGINUID = 2**32 - 1


class NoPerson(Exception):
    """A shared account with no person behind it (bot.request.identity): the command is refused (exit 2)."""


def os_requester(settings: Settings) -> Any:
    """Who is asking: the person behind the OS account running the command (bot.request.identity), from the
    process's uid, the data dir's owner, `[cli] shared_accounts`, the login session and SUDO_USER — never
    $USER/$LOGNAME (which anyone can set). Raises NoPerson on a shared account that names nobody."""
    import os

    from bot.request.identity import identify
    from bot.service import Requester

    uid = os.getuid()
    account = _account(uid)
    found = identify(account, owner=_owner(settings.data_dir, account), shared=settings.cli.shared_accounts,
                     login=_login_account(), sudo_user=text_arg(os.environ.get("SUDO_USER")))
    if found is None:
        raise NoPerson(wording.cli_no_person(account))
    if found.how == "account":
        return Requester(id=f"os:{account}", name=f"{account} (uid {uid})")
    return Requester(id=f"os:{found.person}", name=wording.cli_person_name(found.person, account, uid, found.how))


def unidentified() -> Any:
    """The account itself, for the audit record of a command refused because no person could be named."""
    import os

    from bot.service import Requester

    account = _account(os.getuid())
    return Requester(id=f"os:{account}", name=f"{account} (uid {os.getuid()}; no person named)")


def _account(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid{uid}"


def _owner(data_dir: Path, account: str) -> str:
    """The data dir's owner; a data dir not made yet will be this account's."""
    try:
        return _account(data_dir.stat().st_uid)
    except OSError:
        return account


def _login_account() -> str | None:
    """The account the login session began as, or None (no login session: a container, a service, cron)."""
    try:
        uid = int(LOGINUID.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    return None if uid < 0 or uid == _UNSET_LOGINUID else _account(uid)


def core(settings: Settings) -> Any:
    """The core's services for one command, warning once if its audit log is keyed from a file beside it."""
    from bot.service import Core

    made = Core(settings, on_audit_open=warn_key_file)
    _cores.append(made)
    return made


_warned: set[str] = set()  # what this command has warned about already (main() starts each command afresh)
_cores: list[Any] = []  # the cores this command opened: their database pools close when it ends


def close_cores() -> None:
    """The command ended: close every core it opened (a database pool left to the garbage collector would try
    to join its own thread)."""
    while _cores:
        _cores.pop().close()


def warn_key_file(log: Any) -> None:
    """Say once per command, on stderr, that the audit key is a file beside the log (BOT_AUDIT_KEY unset):
    whoever can change the log can read that key and re-sign what they changed."""
    if log.key_source == "file" and "key_file" not in _warned:
        _warned.add("key_file")
        print(wording.cli_audit_key_file(log.dir / "audit.key"), file=sys.stderr)


def new_command() -> None:
    """A command starts: nothing has been warned about yet (tests run many commands in one process)."""
    _warned.clear()


def progress(args: argparse.Namespace) -> bool:
    """Draw a progress bar: only on a terminal, and not with --no-progress (a log file or a pipe gets none)."""
    return not getattr(args, "no_progress", False) and sys.stderr is not None and sys.stderr.isatty()


def text_arg(value: str | None) -> str | None:
    """Command-line text as valid Unicode: bytes that are not UTF-8 (which Python decodes to lone surrogates)
    become \\xNN, so the audit log can always record what was typed."""
    if value is None:
        return None
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def emit(args: argparse.Namespace, obj: dict[str, Any], text: str, *, stream=None) -> None:
    if getattr(args, "json", False):
        print(json.dumps(obj, ensure_ascii=False, indent=2))
    else:
        print(text, file=stream or sys.stdout)
