"""A real tmux server on a private socket, cleaned up by socket and pane PIDs (never by name)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.retry import retry_until

# Resolved once: a test may empty PATH (e.g. "tmux not installed") and cleanup must still work.
TMUX = shutil.which("tmux") or "tmux"


@dataclass
class PrivateTmux:
    socket_path: str
    dir: Path

    def cmd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TMUX, "-S", self.socket_path, *args], capture_output=True, text=True, check=check, timeout=20
        )

    def alive(self) -> bool:
        return self.cmd("list-sessions", check=False).returncode == 0

    def pane_pids(self) -> list[int]:
        res = self.cmd("list-panes", "-a", "-F", "#{pane_pid}", check=False)
        return [int(x) for x in res.stdout.split()] if res.returncode == 0 else []

    def server_pid(self) -> int | None:
        res = self.cmd("display-message", "-p", "#{pid}", check=False)
        return int(res.stdout.strip()) if res.returncode == 0 and res.stdout.strip() else None

    def kill(self) -> None:
        """Kill the server hard (as a reboot or crash would), and wait until its panes are gone."""
        pids = self.pane_pids()
        spid = self.server_pid()
        if spid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(spid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        retry_until(lambda: not self.alive(), timeout=10, what="tmux server to die")
        for pid in pids:
            retry_until(lambda p=pid: _dead(p), timeout=10, what=f"pane pid {pid} to die")  # type: ignore[misc]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)


def _dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


@contextlib.contextmanager
def private_tmux_server() -> Iterator[PrivateTmux]:
    # Socket paths are limited to ~107 bytes: a short dir directly under /tmp, not pytest's tmp_path.
    d = Path(tempfile.mkdtemp(prefix="tt-", dir="/tmp"))
    srv = PrivateTmux(socket_path=str(d / "s"), dir=d)
    try:
        yield srv
    finally:
        if srv.alive():
            srv.kill()
        shutil.rmtree(d, ignore_errors=True)
