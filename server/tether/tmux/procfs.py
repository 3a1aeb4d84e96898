"""What runs in a pane, from /proc: the shell and the foreground job's full argv."""

from __future__ import annotations

import os
from collections.abc import Sequence

SHELLS = frozenset({"bash", "zsh", "sh", "dash", "fish", "ksh", "mksh", "tcsh", "csh", "ash", "nu", "xonsh"})


def read_proc(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def cmdline(pid: int) -> list[str] | None:
    raw = read_proc(f"/proc/{pid}/cmdline")
    if not raw:
        return None
    argv = [a.decode("utf-8", "replace") for a in raw.rstrip(b"\0").split(b"\0")]
    # Programs that rewrite their title (node's process.title: "npm run dev") leave one spaced string.
    if len(argv) == 1 and " " in argv[0] and not os.path.exists(argv[0]):
        argv = argv[0].split()
    return argv


def is_shell(argv: Sequence[str] | None) -> bool:
    return bool(argv) and os.path.basename(argv[0]).lstrip("-") in SHELLS  # type: ignore[index]


def foreground_pid(pane_pid: int) -> int:
    """The pid leading the pane's terminal foreground group (the pane's own pid when idle)."""
    raw = read_proc(f"/proc/{pane_pid}/stat")
    try:
        tpgid = int(raw.rsplit(b")", 1)[1].split()[5]) if raw else -1
    except (IndexError, ValueError):
        tpgid = -1
    return tpgid if tpgid > 0 else pane_pid


def foreground_argv(pane_pid: int) -> tuple[list[str] | None, list[str] | None]:
    """(shell argv or None, foreground job argv or None) for a pane's process.

    The foreground job is the terminal's foreground process group (``tpgid`` in /proc/<pid>/stat);
    its leader is the job as typed (``npm`` rather than the node children it spawned). An idle
    shell is its own foreground group.
    """
    raw = read_proc(f"/proc/{pane_pid}/stat")
    pane_argv = cmdline(pane_pid)
    if raw is None or pane_argv is None:
        return None, None
    try:
        fields = raw.rsplit(b")", 1)[1].split()
        tpgid = int(fields[5])
    except (IndexError, ValueError):
        tpgid = -1
    shell = pane_argv if is_shell(pane_argv) else None
    if tpgid <= 0 or tpgid == pane_pid:
        return (shell, None) if shell else (None, pane_argv)
    fg = cmdline(tpgid)
    return shell, fg
