"""Reading what a child process showed on a pseudo-terminal, bounded."""

from __future__ import annotations

import os
import select
import subprocess
import time


def read_terminal(master: int, proc: subprocess.Popen[bytes], timeout: float, poll: float = 1.0) -> bytes:
    """Everything written to the terminal whose controlling side is ``master`` until the child
    closes it (EIO or EOF), exits with nothing left to read, or ``timeout`` seconds pass."""
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], poll)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    return seen
