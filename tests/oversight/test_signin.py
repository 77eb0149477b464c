"""The console's sign-in decisions, pure (bot.oversight.signin): where a person may be sent back to, a state's
age and browser, whether Slack's answers name this sign-in's person in this workspace, who gets in."""
from __future__ import annotations

import base64
import json

import pytest

from bot.oversight import signin

TEAM, APP, ISSUER = "T0TEST", "111.222", "https://slack.com"


@pytest.mark.parametrize(("target", "kept"), [
    ("/console", "/console"),
    ("/console/searches?outcome=candidates&from=2026-01-01", "/console/searches?outcome=candidates&from=2026-01-01"),
    ("/console/requests/FR-0123456789", "/console/requests/FR-0123456789"),
])
def test_safe_next_keeps_a_console_path_with_its_query(target, kept):
    assert signin.safe_next(target) == kept


@pytest.mark.parametrize("target", [
    None, "", "https://evil.example/console", "//evil.example/console", "/\\evil.example", "\\\\evil.example",
    "/console/../healthz", "/console/%2e%2e/slack/events", "/console/%2E%2E/x", "/console/..%2f..%2fx",
    "/consolex", "/slack/events", "javascript:alert(1)", "/console\r\nSet-Cookie: x=1", "/console/ x",
    "/console/signin", "/console/signin/start?next=/console", "/console/auth/callback?code=1", "/console/signout",
    "/console#frag", "/console/" + "a" * 2100,
])
def test_safe_next_sends_anything_else_to_the_consoles_front_page(target):
    assert signin.safe_next(target) == "/console"


def test_a_state_holds_ten_minutes_in_the_browser_that_started_it():
    binding = signin.new_binding()
    state = signin.new_state(1000.0, binding, "https://evil.example")
    assert state["next"] == "/console" and state["nonce"] and state["id"] and binding not in json.dumps(state)
    assert signin.state_problem(state, 1000.0 + 600, binding) is None
    assert signin.state_problem(state, 1000.0 + 601, binding) == "expired"
    assert signin.state_problem(state, 1000.0 - 120, binding) == "expired"  # from the future
    assert signin.state_problem(state, 1001.0, signin.new_binding()) == "browser"
    assert signin.state_problem(state, 1001.0, None) == "browser"
    assert signin.state_problem({"t": 1000.0}, 1001.0, binding) == "malformed"
    assert signin.new_state(0, binding, "/console")["id"] != state["id"]


def _jwt(claims: dict) -> str:
    part = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJSUzI1NiJ9.{part}.c2lnbmF0dXJl"


def test_an_id_token_is_read_only_when_it_is_jwt_shaped():
    assert signin.read_id_token(_jwt({"sub": "U1"})) == {"sub": "U1"}
    for bad in ("", "a.b", "a.!!!.c", _jwt({"sub": "U1"}).replace(".", "", 1), "a." + "WzFd" + ".c"):
        with pytest.raises(ValueError, match="not a JWT"):
            signin.read_id_token(bad)


def _answers(**changes) -> tuple[dict, dict]:
    claims = {"iss": ISSUER, "aud": APP, "nonce": "n1", "sub": "U1", signin.USER_CLAIM: "U1", signin.TEAM_CLAIM: TEAM}
    info = {"sub": "U1", signin.USER_CLAIM: "U1", signin.TEAM_CLAIM: TEAM, "name": "Chief One"}
    claims.update(changes.pop("claims", {}))
    info.update(changes.pop("info", {}))
    return claims, info


@pytest.mark.parametrize(("changes", "problem"), [
    ({}, None),
    ({"claims": {"aud": [APP, "other"]}}, None),
    ({"claims": {"nonce": "n2"}}, "nonce"),
    ({"claims": {"nonce": None}}, "nonce"),
    ({"claims": {"aud": "999.999"}}, "audience"),
    ({"claims": {"iss": "https://evil.example"}}, "issuer"),
    ({"info": {signin.USER_CLAIM: "U2", "sub": "U2"}}, "user"),
    ({"info": {signin.TEAM_CLAIM: "T0OTHER"}}, "team"),
    ({"claims": {signin.TEAM_CLAIM: "T0OTHER"}}, "team"),
])
def test_slacks_answers_must_name_this_sign_ins_person_in_this_workspace(changes, problem):
    claims, info = _answers(**changes)
    assert signin.identity_problem(claims, info, nonce="n1", client_id=APP, issuer=ISSUER, team_id=TEAM) == problem


def test_only_command_staff_and_auditors_get_in_and_each_decision_is_an_entry():
    assert signin.admitted(("command_staff",)) and signin.admitted(("auditor",))
    assert not signin.admitted(()) and not signin.admitted(None) and not signin.admitted(("requester",))
    entry = signin.signin_entry("U1", "Chief One", allowed=False, outcome="not_listed", roles=("requester",),
                                team_id=TEAM, next_path="/console/alerts")
    assert entry == {"actor": {"id": "U1", "name": "Chief One"}, "action": "console_signin",
                     "query": {"next": "/console/alerts"}, "allowed": False, "outcome": "not_listed", "roles": [],
                     "team_id": TEAM, "source": "console"}
