"""What runs in a pane: the shell and the foreground job's full argv (process facts from
:mod:`tether.procs`, /proc or its fallback)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from tether import procs

SHELLS = frozenset({"bash", "zsh", "sh", "dash", "fish", "ksh", "mksh", "tcsh", "csh", "ash", "nu", "xonsh"})


def cmdline(pid: int) -> list[str] | None:
    argv = procs.cmdline(pid)
    # Programs that rewrite their title (node's process.title: "npm run dev") leave one spaced string.
    if argv and len(argv) == 1 and " " in argv[0] and not os.path.exists(argv[0]):
        argv = argv[0].split()
    return argv


def is_shell(argv: Sequence[str] | None) -> bool:
    return bool(argv) and os.path.basename(argv[0]).lstrip("-") in SHELLS  # type: ignore[index]


def foreground_argv(
    pane_pid: int, groups: dict[int, int] | None = None
) -> tuple[list[str] | None, list[str] | None]:
    """(shell argv or None, foreground job argv or None) for a pane's process.

    The foreground job is the terminal's foreground process group (``tpgid``); its leader is the
    job as typed (``npm`` rather than the node children it spawned). An idle shell is its own
    foreground group. ``groups``: :func:`tether.procs.foreground_groups` for all the panes at
    once (one ``ps`` call without /proc).
    """
    pane_argv = cmdline(pane_pid)
    if pane_argv is None:
        return None, None
    if groups is None:
        groups = procs.foreground_groups([pane_pid])
    tpgid = groups.get(pane_pid, -1)
    shell = pane_argv if is_shell(pane_argv) else None
    if tpgid <= 0 or tpgid == pane_pid:
        return (shell, None) if shell else (None, pane_argv)
    return shell, cmdline(tpgid)
