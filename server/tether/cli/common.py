"""Helpers shared by CLI command groups: finding the workspace, opening its store."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from tether.errors import BadParamsError
from tether.store import Store

ROOT_MARKERS = (".git", ".agent-session.json", ".hg")


def find_workspace(args: argparse.Namespace) -> Path:
    """``-C DIR`` when given, else the nearest parent of cwd with a root marker, else cwd."""
    if args.workspace:
        root = Path(args.workspace).expanduser().resolve()
        if not root.is_dir():
            raise BadParamsError(f"workspace {args.workspace!r} is not a directory")
        return root
    cwd = Path(os.getcwd()).resolve()
    for d in (cwd, *cwd.parents):
        if any((d / m).exists() for m in ROOT_MARKERS):
            return d
    return cwd


def open_store(args: argparse.Namespace) -> Store:
    return Store.open(find_workspace(args), args.state_dir)


def parse_checkpoint(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"checkpoint must be a number, not {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("checkpoint numbers start at 1")
    return n


def add_output_flags(p: argparse.ArgumentParser) -> None:
    """Accept ``--json`` after the subcommand too (``tether log --json``), not only before it.

    SUPPRESS keeps a ``tether --json log`` given before the subcommand from being reset.
    """
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")


def non_negative_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
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


DOUBLE_DASH = "\x00--"


class UsageError(BadParamsError):
    """A command line argparse could not read; exit code 2 like argparse's own."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class Parser(argparse.ArgumentParser):
    """Raises :class:`UsageError` instead of exiting, so ``main`` can answer ``--json`` callers
    with a JSON error and in-process callers get a return code, not ``SystemExit``."""

    # Set on a subparser whose handler must see where ``--`` was (``diff A -- PATH``): argparse
    # would otherwise drop it, and let the positional before it swallow it.
    keep_double_dash = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self.keep_double_dash and args is not None and "--" in args:
            args = list(args)
            args[args.index("--")] = DOUBLE_DASH
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        command = self.prog.partition(" ")[2]  # "tether diff" -> "diff"
        raise UsageError(f"{command}: {message}" if command else message, self.format_usage())
