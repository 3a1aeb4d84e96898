"""A long `tether checkpoint` (the first one of a big tree) shows its progress on stderr when
stderr is a terminal (a real pseudo-terminal here), one line rewritten in place and cleared at
the end; on a pipe it prints none (agents read the output)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.terminal import read_terminal

# Big enough that storing it takes well over the half second before progress shows
# (incompressible bytes: compressing, hashing and writing them all cost).
FILES = 1200
FILE_BYTES = 64 * 1024


@pytest.fixture
def big(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    ws = tmp_path / "ws"
    for i in range(FILES):
        p = ws / f"d{i % 12}" / f"f{i}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(FILE_BYTES))
    env = {**os.environ, "TETHER_STATE_DIR": str(tmp_path / "state"), "HOME": str(tmp_path)}
    return ws, env


def _stderr_on_a_tty(argv: list[str], env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """(exit status, stdout (a pipe), what stderr (a pseudo-terminal) showed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", *argv],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    try:
        seen = read_terminal(master, proc, 120)
        assert proc.stdout is not None
        out = proc.stdout.read()
        return proc.wait(timeout=60), out, seen
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_progress_on_a_terminal_not_on_a_pipe(big: tuple[Path, dict[str, str]]) -> None:
    ws, env = big
    code, out, shown = _stderr_on_a_tty(["-C", str(ws), "checkpoint", "-m", "first"], env)
    assert code == 0, shown
    assert out.decode().strip() == f"checkpoint 1: {FILES} files changed"  # stdout: no progress
    assert b"tether: writing checkpoint " in shown and b"%" in shown, shown[:500]
    # One line rewritten in place (carriage return, erase line), left cleared at the end.
    assert b"\n" not in shown.replace(b"\r\n", b"")
    assert shown.endswith(b"\r\x1b[K")
    percents = [int(part.split(b"%")[0]) for part in shown.split(b"writing checkpoint ")[1:]]
    assert percents == sorted(percents) and all(0 <= p <= 100 for p in percents)

    # On a pipe (an agent's tool call): nothing but the result.
    (ws / "d0" / "f0.bin").write_bytes(os.urandom(FILE_BYTES))
    res = subprocess.run(
        [sys.executable, "-m", "tether", "-C", str(ws), "checkpoint", "--full", "-m", "second"],
        env=env,
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert res.stderr == b"" and res.stdout.decode().strip() == "checkpoint 2: 1 file changed"
