"""Who a command-line requester is (pure): the person behind the OS account a command runs as.

The data dir is 0700, so analysts often reach it through one service account (`sudo -u frbot ...`); that account
names nobody. On a shared account — the data dir's owner, root (everybody's sudo target), or one listed in
`[cli] shared_accounts` — the person is the account the login session began as (the kernel's loginuid, which
sudo does not change), else sudo's invoking user (SUDO_USER). With neither, nobody can be named and the command
is refused. An account that is itself shared never names a person, whichever way it is given.

The caller reads the inputs from the OS (bot.cli.common); tests hand them in.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

SUPERUSER = "root"


@dataclass(frozen=True)
class Person:
    """The person asking, `account` the OS account the command runs as, `how` the person was told from it:
    "account" (a personal account), "login" (the login session) or "sudo" (SUDO_USER, which anyone can set:
    the audit record says so)."""

    person: str
    account: str
    how: str


def shared_accounts(owner: str | None, configured: Iterable[str]) -> frozenset[str]:
    """The accounts several people may run commands as: the data dir's owner, root and the configured ones."""
    return frozenset(a for a in (owner, SUPERUSER, *configured) if a)


def identify(account: str, *, owner: str | None, shared: Iterable[str], login: str | None,
             sudo_user: str | None) -> Person | None:
    """The person running a command as `account`, or None when it is a shared account and neither the login
    session (`login`) nor sudo (`sudo_user`) names someone. `owner` is the data dir's owner, `shared` the
    accounts in `[cli] shared_accounts`."""
    everyone = shared_accounts(owner, shared)
    if account not in everyone:
        return Person(account, account, "account")
    # The data dir's owner logged in as itself is one person working alone (a developer's own data dir); an
    # account configured as shared, or root, names nobody even as a login.
    configured = shared_accounts(None, shared)
    if login and login not in configured:
        return Person(login, account, "login")
    if sudo_user and sudo_user not in everyone:
        return Person(sudo_user, account, "sudo")
    return None
