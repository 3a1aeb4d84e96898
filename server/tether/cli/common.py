"""Helpers shared by CLI command groups: finding the workspace, opening its store."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

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
