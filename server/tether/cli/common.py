"""Helpers shared by CLI command groups: finding the workspace, opening its store."""

from __future__ import annotations

import argparse

from tether.cli.parser import DOUBLE_DASH, Parser, UsageError
from tether.cli.workspace import find_workspace, open_store

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

# Every number reaches SQLite (64-bit integers): larger ones are refused here, not there.
MAX_NUMBER = 2**63 - 1


def _whole(text: str, what: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be a whole number, not {text!r}") from None
    if n > MAX_NUMBER:
        raise argparse.ArgumentTypeError(f"{what} {text} is out of range (at most {MAX_NUMBER})")
    return n


def parse_checkpoint(text: str) -> int:
    n = _whole(text, "checkpoint")
    if n < 1:
        raise argparse.ArgumentTypeError("checkpoint numbers start at 1")
    return n


def register_parsers(sub: Any, parsers: Mapping[str, Callable[[Any], None]], only: str | None) -> None:
    """A group's ``register``: its commands' parsers, each built by its function in
    ``parsers``; ``only``: just that command when it is one of them (argparse's help strings
    and arguments cost ~2 ms a process for a group of seven)."""
    for name, build in parsers.items():
        if only is None or only == name or only not in parsers:
            build(sub)


def add_output_flags(p: argparse.ArgumentParser) -> None:
    """Accept ``--json`` after the subcommand too (``tether log --json``), not only before it.

    SUPPRESS keeps a ``tether --json log`` given before the subcommand from being reset.
    """
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")


def non_negative_int(text: str) -> int:
    n = _whole(text, "the number")
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, not {n}")
    return n


def positive_int(text: str) -> int:
    n = non_negative_int(text)
    if n == 0:
        raise argparse.ArgumentTypeError("expected a number >= 1")
    return n


def non_negative_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not x >= 0 or x == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, not {text}")
    return x


__all__ = ["DOUBLE_DASH", "Parser", "UsageError", "find_workspace", "open_store"]
