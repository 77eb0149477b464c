"""What every command-line command shares: exit codes (CONTRACTS.md), who is asking (the OS account), typed text
as valid Unicode, and one JSON object or one line of text as output."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK, EXIT_ERROR, EXIT_DENIED, EXIT_CHOOSE_FACE = 0, 1, 2, 3
EXIT_BROKEN_CHAIN = 4  # audit export|report|bundle: the output was written, but the chain does not verify
EXIT_QUEUED = 4  # queued for an examiner ([review] mode "examiner") or awaiting approval: no candidate printed
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it): nothing half-done is left behind


def os_requester() -> Any:
    """The OS account running the command: from the process's uid, not $USER/$LOGNAME (which anyone can set)."""
    import os
    import pwd

    from bot.service import Requester

    uid = os.getuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = f"uid{uid}"
    name = f"{user} (uid {uid})"
    sudo = os.environ.get("SUDO_USER")
    if sudo and uid == 0:
        name += f", via sudo from {text_arg(sudo)}"
    return Requester(id=f"os:{user}", name=name)


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
