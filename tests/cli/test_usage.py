"""What a person meets first on the command line: `--help` on every argument, the attestation printed where it is
asked for, the exit codes in `search --help`, `--version`, and usage errors in the words of the help, never the
program's internal names."""
from __future__ import annotations

import argparse
import json
import re

import pytest

from bot import __version__, wording
from bot.cli.main import build_parser, main


def _flat(text: str) -> str:
    return " ".join(text.split())


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def _internal_names() -> set[str]:
    """The parser's own names: every dest, and the metavar argparse would make of one with an underscore."""
    names = set()
    for parser in _parsers(build_parser()):
        for action in parser._actions:
            if action.dest in (argparse.SUPPRESS, "help", "version"):
                continue
            if not action.option_strings or isinstance(action, argparse._SubParsersAction):
                names.add(action.dest)
            if "_" in action.dest:
                names |= {action.dest, action.dest.upper()}
    return names


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_every_command_and_argument_has_help():
    missing = []
    for parser in _parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{parser.prog} {c.dest}" for c in action._choices_actions if not (c.help or "").strip()]
            elif not (action.help or "").strip():
                missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_search_help_prints_the_attestation_itself_and_the_exit_codes(capsys):
    code, out, _ = run(["search", "--help"], capsys)
    assert code == 0
    assert "README" not in out  # the statement is here, not somewhere else
    assert _flat(wording.ATTESTATION) in _flat(out)
    flat = _flat(out)
    for code_, meaning in ((0, "search ran"), (1, "error"), (2, "refused"), (3, "--face"), (4, "examiner")):
        assert re.search(rf"\b{code_}\b[^.]*{re.escape(meaning)}", flat), (code_, meaning)


def test_a_search_without_the_attestation_prints_the_statement_to_attest_to(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("BOT_DATA_DIR", str(tmp_path / "data"))
    argv = ["search", str(tmp_path / "p.jpg"), "--call-number", "26-012345", "--purpose", "1", "--justification",
            "Robbery at 5th and J on 11/20; store camera still of the suspect who used the victim's card"]
    code, _, err = run(argv, capsys)
    assert code == 2 and wording.ATTESTATION_MISSING in err and _flat(wording.ATTESTATION) in _flat(err)
    assert "--attest" in err.split(wording.ATTESTATION_MISSING, 1)[1]
    code, out, _ = run([*argv, "--json"], capsys)
    assert code == 2 and json.loads(out)["attestation"] == wording.ATTESTATION


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"python -m bot {__version__}"


@pytest.mark.parametrize("argv", [
    [], ["serach"], ["--config"], ["gallery"], ["gallery", "enroll"], ["gallery", "remove"], ["audit"],
    ["audit", "bogus"], ["audit", "bundle"], ["audit", "export", "--format", "xml"], ["audit", "report", "--png"],
    ["search"], ["search", "p.jpg", "--face"], ["search", "p.jpg", "--call-number"], ["cancel"], ["status"],
])
def test_usage_errors_use_the_words_of_the_help_not_internal_names(argv, capsys):
    code, out, err = run(argv, capsys)
    assert code == 1 and out == "" and "error:" in err
    # An option's own name and a quoted choice (a command's name) are the help's words too.
    words = set(re.findall(r"\w+", re.sub(r"(?<!\w)--?[\w-]+|'[^']*'", "", err)))
    assert words.isdisjoint(_internal_names()), sorted(words & _internal_names())


def test_an_unknown_option_is_named_with_the_usage_of_its_own_command(capsys):
    code, _, err = run(["search", "p.jpg", "--bogus"], capsys)
    assert code == 1 and "usage: python -m bot search" in err and "--bogus" in err
    code, out, _ = run(["search", "p.jpg", "--bogus", "--json"], capsys)
    assert code == 1 and "--bogus" in json.loads(out)["error"]
