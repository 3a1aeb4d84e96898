"""`tether step`'s usual command line is read without argparse (cli/step.py): whatever that
reader accepts, the full parser reads the same way; anything else is left to the parser."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tether.cli import build_parser, main
from tether.cli.step import plain_step_args

FIELDS = ("workspace", "state_dir", "json", "done", "next_steps", "no_next", "task", "files")
WORDS = [
    "step", "-C", "/w", "--workspace", "--state-dir", "/s", "--json", "-v", "-vv", "--verbose",
    "--done", "-d", "msg", "", "two words", "--next", "-n", "a", "b", "--no-next", "--task", "t",
    "--file", "-f", "p.py", "-x", "--", "--done=x", "--do", "-5", "log",
]  # fmt: skip


def parsed(argv: list[str]) -> dict[str, object]:
    ns = build_parser("step", list_others=False).parse_args(argv)
    return {
        **{f: getattr(ns, f, None) for f in FIELDS},
        "verbose": ns.verbose + getattr(ns, "verbose_after", 0),
    }


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=12))
@example(["step", "--done", "msg"])
@example(["-C", "/w", "--state-dir", "/s", "-vv", "step", "-d", "", "-n", "a", "b", "-n", "t", "--json"])
@example(["step", "--file", "p.py", "a", "--task", "t", "--done", "msg", "--done", "two words", "--no-next"])
def test_what_the_plain_reader_accepts_the_parser_reads_alike(argv: list[str]) -> None:
    plain = plain_step_args(argv)
    if plain is None:
        return
    assert {**{f: getattr(plain, f) for f in FIELDS}, "verbose": plain.verbose} == parsed(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["step"],  # no --done: the parser says so
        ["step", "--done"],
        ["step", "--done", "-x"],  # a value like an option
        ["step", "--done=x"],
        ["step", "--do", "x"],  # an abbreviation
        ["step", "--done", "x", "--next"],
        ["step", "--done", "x", "-C", "/w"],  # global options after the command
        ["step", "--done", "x", "extra"],
        ["--", "step", "--done", "x"],
        ["log"],
    ],
)
def test_anything_else_is_left_to_the_parser(argv: list[str]) -> None:
    assert plain_step_args(argv) is None


def test_a_bad_step_line_still_gets_the_parsers_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["step", "--next", "a"]) == 2
    assert "--done" in capsys.readouterr().err
