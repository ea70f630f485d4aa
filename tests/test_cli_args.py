"""The command line as a new user meets it: every verb and option explains itself in --help,
and mistakes get a message that says what is wrong."""

from __future__ import annotations

import argparse
import socket

import pytest

from bridge.cli.args import UsageError, parse_units
from bridge.cli.main import VERBS, build_parser
from bridge.modbus.client import connect_failure
from bridge.modbus.links import SerialLink, TcpLink


def verb_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {"": parser, **sub.choices}


def test_every_verb_has_a_parser() -> None:
    assert set(verb_parsers()) - {""} == set(VERBS)


@pytest.mark.parametrize("verb", ["", *VERBS])
def test_help_describes_the_verb_and_every_option(verb: str) -> None:
    parser = verb_parsers()[verb]
    assert parser.description, f"`{verb} --help` prints only the usage line"
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        assert action.help, f"{verb or 'python -m bridge'} {action.option_strings or action.dest}"
    assert parser.description in " ".join(parser.format_help().split())  # wrapped


@pytest.mark.parametrize(("text", "units"), [
    ("1", [1]), ("1,2,5-7", [1, 2, 5, 6, 7]), ("247", [247]), ("3-3", [3]),
])
def test_units(text: str, units: list[int]) -> None:
    assert parse_units(text) == units


@pytest.mark.parametrize(("text", "message"), [
    ("5-1", "'5-1' is a reversed range (write 1-5)"),
    ("0", "'0' is outside 1..247"),
    ("1-248", "'1-248' is outside 1..247"),
    ("a-3", "'a-3' is not a number or range"),
    ("", "no unit given"),
])
def test_units_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_units(text)


@pytest.mark.parametrize(("link", "resolve_error", "reason"), [
    (TcpLink("nosuchhost", 502), socket.gaierror(-2, "Name or service not known"),
     "host name 'nosuchhost' does not resolve: Name or service not known"),
    (TcpLink("127.0.0.1", 1), None, "connection refused or host unreachable"),
    (TcpLink("127.0.0.1", 1, rtu=True), None, "connection refused or host unreachable"),
    (SerialLink("/dev/ttyUSB9"), None, "device missing or not accessible"),
])
def test_connect_failure_reason(link: TcpLink | SerialLink, resolve_error: OSError | None,
                                reason: str) -> None:
    assert connect_failure(link, resolve_error) == reason
