"""The shell hooks Tether installs for the panes it creates, kept as package data files
(``hooks/*.sh``, ``*.bash``, ``*.zsh``) so that shellcheck and ``zsh -n`` read them as they ship.

- ``pane-start.sh`` (sh): a recreated pane replays its scrollback, types its command, then
  becomes the user's shell;
- ``hook.bash``: bash's rc file in Tether's panes (the user's startup files, then a per-pane
  history file appended at every prompt, and a snapshot after each ``cd``);
- ``zshenv.zsh``, ``zprofile.zsh``, ``zshrc.zsh``: the same for zsh, installed as
  ``zsh/.zshenv`` … in a directory zsh reads as its ``ZDOTDIR`` first.

They only read Tether's own environment variables.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from tether import paths

# (where it is installed below the hooks dir, the package data file)
FILES = (
    ("pane-start.sh", "pane-start.sh"),
    ("hook.bash", "hook.bash"),
    ("zsh/.zshenv", "zshenv.zsh"),
    ("zsh/.zprofile", "zprofile.zsh"),
    ("zsh/.zshrc", "zshrc.zsh"),
)
# What a recreated pane runs first (its arguments: see pane-start.sh).
START_CMD = '. "$TETHER_HOOKS/pane-start.sh"'


def text(name: str) -> bytes:
    """A hook file's bytes as shipped."""
    return (resources.files(__package__ or "tether.tmux") / "hooks" / name).read_bytes()


def install(d: Path) -> Path:
    """Write the hooks into ``d`` (Tether's 0700 tmux state dir) where they differ; ``d``."""
    for rel, name in FILES:
        p = d / rel
        data = text(name)
        if os.path.islink(p) or _read(p) != data:
            paths.write_private_file(p, data, base=d)
    return d


def _read(p: Path) -> bytes | None:
    try:
        with open(p, "rb") as fh:
            return fh.read()
    except OSError:
        return None
