"""The CLI's argument parser: argparse that raises instead of exiting. Kept apart from
:mod:`tether.cli.common` so that ``tether --help`` imports nothing beyond argparse."""

from __future__ import annotations

import argparse
import os
import sys

from tether.errors import BadParamsError

# typing is not imported at run time: `tether --help` is on the agents' hot path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn


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

    # A command's name: its examples (tether.cli.examples) become the epilog when help is shown.
    examples_for: str | None = None

    def format_help(self) -> str:
        if self.examples_for and self.epilog is None:
            from tether.cli.examples import epilog

            self.epilog = epilog(self.examples_for)
        return super().format_help()

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse makes a formatter for every argument it adds (to check its metavar), and
        # the formatter asks shutil for the terminal's width: shutil (with bz2, lzma, fnmatch
        # under it) would be imported by every command. The same width, found without it.
        return self.formatter_class(prog=self.prog, width=_terminal_columns() - 2)  # type: ignore[call-arg]

    def error(self, message: str) -> NoReturn:
        command = self.prog.partition(" ")[2]  # "tether diff" -> "diff"
        raise UsageError(f"{command}: {message}" if command else message, self.format_usage())


def _terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``: $COLUMNS, else stdout's terminal, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80
