"""The CLI's command table: every command known without importing its group, each group's
commands exactly as the table lists them, and argv read for the command name."""

from __future__ import annotations

import importlib

import pytest

from tether.cli import COMMANDS, GROUPS, build_parser, command_of, main
from tether.cli.parser import Parser


def _registered(group: str) -> dict[str, str]:
    parser = Parser(prog="tether")
    sub = parser.add_subparsers(dest="command")
    importlib.import_module(group).register(sub)
    return {a.dest: str(a.help) for a in sub._choices_actions}


@pytest.mark.parametrize("group", GROUPS)
def test_table_lists_each_groups_commands_with_their_help(group: str) -> None:
    listed = {cmd: text for cmd, (g, text) in COMMANDS.items() if g == group}
    assert _registered(group) == listed


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        ([], None),
        (["--version"], None),
        (["step", "--done", "x"], "step"),
        (["-C", "step", "log"], "log"),  # a directory named like a command is -C's value
        (["--workspace", "/w", "--json", "status"], "status"),
        (["--state-dir", "s", "-v", "hook", "claude-code"], "hook"),
        (["--workspace=/w", "diff", "1"], "diff"),
        (["--", "run"], "run"),
        (["nosuch"], "nosuch"),
    ],
)
def test_command_of(argv: list[str], command: str | None) -> None:
    assert command_of(argv) == command


def test_one_command_registers_only_its_group_but_lists_all() -> None:
    parser = build_parser("log")
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)  # type: ignore[arg-type]
    # The listed-only commands have no arguments of their own; log has its real ones.
    assert {"limit", "json"} <= {a.dest for a in sub.choices["log"]._actions}  # type: ignore[index]
    assert {a.dest for a in sub.choices["push"]._actions} == set()  # type: ignore[index]


def test_one_command_builds_only_its_own_parser_in_its_group() -> None:
    parser = build_parser("step", list_others=False)
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {"step"}  # type: ignore[arg-type]
    args = parser.parse_args(["step", "--done", "x", "-n", "a", "b", "--json"])
    assert (args.done, args.next_steps, args.json) == ("x", ["a", "b"], True)
    # Its group's other commands are listed by help only, and still run with their own.
    listed = next(a for a in build_parser("step")._actions if a.dest == "command")
    assert {a.dest for a in listed.choices["steps"]._actions} == set()  # type: ignore[index]
    assert main(["steps", "--help"]) == 0


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in COMMANDS:
        assert cmd in out


def test_unknown_command_is_a_usage_error_naming_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nosuch"]) == 2
    err = capsys.readouterr().err
    assert "nosuch" in err and "status" in err
