"""Who is asking on the command line (CONTRACTS 11): on a shared account (the data dir's owner, root, or one listed
in `[cli] shared_accounts`) the person is the login session's account (/proc/self/loginuid), else SUDO_USER;
with neither the command is refused (exit 2, `denied`). Requests are the person's: `os:<person>`, and `status`
and `cancel` match on it, so two analysts sharing the service account never see or cancel each other's."""
from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest

from bot import wording
from bot.cli import common
from bot.cli.main import main
from bot.request.identity import identify

from .conftest import APPROVAL_ALWAYS, GOOD, audit_entries, run_json, settings_file

ACCOUNT = pwd.getpwuid(os.getuid()).pw_name  # the test runner owns every temporary data dir: a shared account


@pytest.mark.parametrize("account, owner, shared, login, sudo, person", [
    ("alice", "frbot", (), None, "mallory", "alice"),  # a personal account is the person (SUDO_USER aside)
    ("alice", "alice", (), "alice", None, "alice"),  # one person who owns their own data dir and logged in
    ("frbot", "frbot", (), "alice", None, "alice"),  # the service account, reached from alice's login
    ("frbot", "frbot", (), "alice", "mallory", "alice"),  # the login session wins over SUDO_USER (anyone can set it)
    ("frbot", "frbot", (), None, "bob", "bob"),  # no login session (a container, a service): sudo's invoking user
    ("svc", "frbot", ("svc",), None, "bob", "bob"),  # an account listed in [cli] shared_accounts
    ("svc", "frbot", ("svc",), "svc", "bob", "bob"),  # a login as a listed shared account names nobody
    ("root", "frbot", (), None, "carol", "carol"),  # root is everybody's sudo target
    ("frbot", "frbot", (), None, None, None),  # nobody: refused
    ("frbot", "frbot", (), None, "", None),
    ("frbot", "frbot", (), None, "root", None),  # SUDO_USER naming a shared account names nobody either
    ("svc", "frbot", ("svc",), "svc", None, None),
])
def test_the_person_behind_an_account(account, owner, shared, login, sudo, person):
    found = identify(account, owner=owner, shared=shared, login=login, sudo_user=sudo)
    assert (found.person if found else None) == person
    if found:
        assert found.account == account


@pytest.fixture
def no_login_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A process with no login uid (as in a container or a service unit): only SUDO_USER can name the person."""
    path = tmp_path / "loginuid"
    path.write_text("4294967295")
    monkeypatch.setattr(common, "LOGINUID", path)
    monkeypatch.delenv("SUDO_USER", raising=False)
    return path


def test_two_analysts_sharing_the_service_account_never_see_or_cancel_each_others_requests(
        data, faces_dir, capsys, tmp_path, monkeypatch, no_login_session):
    monkeypatch.setenv("BOT_CONFIG", str(settings_file(tmp_path, APPROVAL_ALWAYS)))
    photo = str(faces_dir / "people/obama/obama2.jpg")
    monkeypatch.setenv("SUDO_USER", "alice")
    code, out = run_json(capsys, ["search", photo, *GOOD, "--json"])
    assert code == 4
    rid = out["awaiting_approval"]
    monkeypatch.setenv("SUDO_USER", "bob")
    assert main(["status", rid]) == 1 and main(["cancel", rid]) == 1
    assert wording.cli_unknown_request(rid) in capsys.readouterr().err  # not even told it exists
    monkeypatch.setenv("SUDO_USER", "alice")
    code, out = run_json(capsys, ["status", rid, "--json"])
    assert code == 0 and out["approval"] == "pending"
    code, out = run_json(capsys, ["cancel", rid, "--json"])
    assert code == 0 and out == {"cancelled": rid}
    [entry] = audit_entries(data)
    assert entry["requester"]["id"] == "os:alice" and ACCOUNT in entry["requester"]["name"]
    assert [e["by"] for e in _reviews(data) if e["action"] == "cancel"] == ["os:alice"]


def _reviews(data: Path) -> list[dict]:
    from bot.store.audit_log import AuditLog

    return [e for e in AuditLog.open(data).entries() if e["kind"] == "review"]


def test_on_a_shared_account_without_a_person_every_command_that_records_who_is_refused(
        data, faces_dir, capsys, tmp_path, no_login_session):
    code, out = run_json(capsys, ["search", str(faces_dir / "people/obama/obama2.jpg"), *GOOD, "--json"])
    assert code == 2 and "SUDO_USER" in out["denied"][0] and "sudo -u" in out["denied"][0]
    [entry] = audit_entries(data)  # the attempt is recorded, under the account, and nothing was searched
    assert entry["outcome"] == "denied" and entry["requester"]["id"] == f"os:{ACCOUNT}"
    assert "probe_sha256" not in entry
    assert main(["search", str(faces_dir / "people/obama/obama2.jpg"), *GOOD]) == 2
    assert "sudo -u" in capsys.readouterr().err
    for argv in (["audit", "export", "--out", str(tmp_path / "x.csv")], ["status", "FR-0000000000"],
                 ["cancel", "FR-0000000000"], ["gallery", "remove", "obama", "--yes"], ["purge"]):
        assert main(argv) == 2, argv
        assert "SUDO_USER" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists() and len(audit_entries(data)) == 2
    assert main(["gallery", "list", "--json"]) == 0 and json.loads(capsys.readouterr().out)  # records nobody


def test_the_login_session_names_the_person_whatever_sudo_user_says(data, faces_dir, capsys, no_login_session,
                                                                   monkeypatch):
    someone = next(p for p in pwd.getpwall() if p.pw_uid not in (0, os.getuid()))  # any other real account
    no_login_session.write_text(str(someone.pw_uid))  # the session began as them, then sudo'd to this account
    monkeypatch.setenv("SUDO_USER", "mallory")
    assert main(["search", str(faces_dir / "people/obama/obama2.jpg"), *GOOD]) == 0
    requester = audit_entries(data)[-1]["requester"]
    assert requester["id"] == f"os:{someone.pw_name}" and "login session" in requester["name"]


def test_a_listed_shared_account_is_read_from_the_settings(tmp_path, monkeypatch):
    from bot.config import ConfigError, load_settings

    path = tmp_path / "s.toml"
    path.write_text('[cli]\nshared_accounts = ["frbot", "svc-fr"]\n')
    assert load_settings(path, env={}).cli.shared_accounts == ("frbot", "svc-fr")
    path.write_text('[cli]\nshared_accounts = ["two words"]\n')
    with pytest.raises(ConfigError, match="shared_accounts"):
        load_settings(path, env={})
