"""Finding the workspace a command works on and opening its store. Without argparse: the agents'
hooks (cli/hook.py) are parsed without it."""

from __future__ import annotations

import os
from pathlib import Path

from tether.errors import BadParamsError

# typing is not imported at run time (agents' hooks): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:  # the store (sqlite3, zlib…) is imported by the commands that open it
    from typing import Protocol

    from tether.store.db import Store

    class WorkspaceArgs(Protocol):
        workspace: str | None
        state_dir: str | None


def find_workspace(args: WorkspaceArgs) -> Path:
    """``-C DIR`` when given, else the nearest parent of cwd with a root marker, else cwd."""
    if args.workspace:
        root = Path(args.workspace).expanduser().resolve()
        if not root.is_dir():
            raise BadParamsError(f"workspace {args.workspace!r} is not a directory")
        return root
    from tether.paths import find_root

    return find_root(Path(os.getcwd()))


def open_store(args: WorkspaceArgs) -> Store:
    from tether.store.db import Store

    store = Store.open(find_workspace(args), args.state_dir)
    if store.wal_damage:
        from tether.cli.output import warn

        warn(f"{store.wal_damage}. `tether doctor` keeps a record of it.")
    return store
