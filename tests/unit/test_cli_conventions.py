"""CLI conventions: every argument has help, every command has examples that parse, and the global
options (--json, -C/--workspace, --state-dir, -v) work after the command as well as before."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import pytest

from tether.cli import COMMANDS, build_parser, main
from tether.cli.examples import EXAMPLES

# The fewest arguments each command needs to parse.
MINIMAL: dict[str, list[str]] = {
    "diff": ["1"],
    "restore": ["1"],
    "step": ["--done", "x"],
    "hook": ["claude-code"],
    "setup": ["claude"],
    "handoff": ["origin"],
    "completion": ["bash"],
}


def _sub(cmd: str) -> argparse.ArgumentParser:
    parser = build_parser(cmd)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    p: argparse.ArgumentParser = sub.choices[cmd]
    return p


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_every_argument_has_help_and_the_command_has_examples(cmd: str) -> None:
    p = _sub(cmd)
    missing = [a.dest for a in p._actions if not a.help or a.help == argparse.SUPPRESS]
    assert not missing, f"{cmd}: arguments without help: {missing}"
    text = p.format_help()
    assert "examples:" in text and f"tether {cmd}" in text
    assert "global options" in text and "--json" in text and "--workspace" in text


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_each_example_parses(cmd: str) -> None:
    assert EXAMPLES.get(cmd), f"{cmd} has no examples"
    for example, _ in EXAMPLES[cmd]:
        words = shlex.split(example)
        for stop in ("<", ">"):
            if stop in words:
                words = words[: words.index(stop)]
        assert words[:2] == ["tether", cmd], example
        args = build_parser(cmd).parse_args(words[1:])
        assert args.command == cmd


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_global_options_after_the_command(cmd: str) -> None:
    argv = [cmd, *MINIMAL.get(cmd, [])]
    if cmd == "run":
        argv = ["run", "--json", "-C", "/w", "--state-dir", "/s", "-vv", "--", "true"]
    elif cmd == "diff":
        argv = ["diff", "--json", "-C", "/w", "--state-dir", "/s", "-vv", "1"]
    else:
        argv += ["--json", "--state-dir", "/s", "-vv"]
        argv += ["-C", "/w"] if cmd != "mcp" else ["-C", "/w", "--workspace", "/m"]
    args = build_parser(cmd).parse_args(argv)
    assert args.json is True and args.workspace == "/w" and args.state_dir == "/s"
    assert args.verbose_after == 2
    if cmd == "mcp":  # its own --workspace stays its own
        assert args.mcp_workspace == "/m"


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_global_options_before_the_command_are_kept(cmd: str) -> None:
    args = build_parser(cmd).parse_args(["--json", "-C", "/w", "-v", cmd, *MINIMAL.get(cmd, [])])
    assert args.json is True and args.workspace == "/w" and args.verbose == 1
    plain = build_parser(cmd).parse_args([cmd, *MINIMAL.get(cmd, [])])
    assert plain.json is False and plain.workspace is None and plain.verbose == 0


def test_list_json_after_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json", "--state-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out) == {"workspaces": []}


def test_diff_takes_global_options_after_its_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("one\n")
    state = str(tmp_path / "state")
    assert main(["-C", str(ws), "--state-dir", state, "checkpoint"]) == 0
    (ws / "a.txt").write_text("two\n")
    capsys.readouterr()
    assert main(["diff", "1", "--stat", "-C", str(ws), "--state-dir", state, "--json", "--no-pager"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [f["path"] for f in doc["files"]] == ["a.txt"]
    assert main(["diff", "1", "-C", str(ws), "--state-dir", state, "--bogus"]) == 2
    assert "unknown option '--bogus'" in capsys.readouterr().err
