"""Process facts read from /proc: liveness (a live writer's temp files vs a killed writer's
leftovers) and the foreground job of a terminal (the tmux fingerprint)."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_proc(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def foreground_cmdline(pid: int) -> bytes:
    """Raw argv (NUL-separated) of the job in the foreground of ``pid``'s terminal: the leader
    of its foreground process group (``tpgid`` in /proc/<pid>/stat), ``pid`` itself when idle.
    Empty when the process is gone. Only system calls: cheap enough for a fingerprint."""
    raw = read_proc(f"/proc/{pid}/stat")
    try:
        tpgid = int(raw.rsplit(b")", 1)[1].split()[5]) if raw else -1
    except (IndexError, ValueError):
        tpgid = -1
    return read_proc(f"/proc/{tpgid if tpgid > 0 else pid}/cmdline") or b""


def boot_id() -> str:
    """This boot's id (a pid and its start time identify a process only within one boot)."""
    raw = read_proc("/proc/sys/kernel/random/boot_id")
    return raw.decode("ascii", "replace").strip() if raw else ""


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (/proc/<pid>/stat field 22); None when
    it is gone. Another process given the same pid later has another start time."""
    raw = read_proc(f"/proc/{pid}/stat")
    try:
        return int(raw.rsplit(b")", 1)[1].split()[19]) if raw else None
    except (IndexError, ValueError):
        return None
