"""`tether diff` and `tether log` on a terminal (a real pseudo-terminal): coloured and paged;
``--no-pager``, ``NO_COLOR``, ``TERM=dumb`` and a pipe each turn the part they should off.

The pager in most cases is a small recorder (``$PAGER``) that saves what it was given, so the test
sees exactly what a pager would show; one case runs the real ``less`` with the default settings.
"""

from __future__ import annotations

import fcntl
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.support.terminal import read_terminal

RECORDER = """\
import os, sys
with open(sys.argv[1], "wb") as fh:
    fh.write(sys.stdin.buffer.read())
with open(sys.argv[1] + ".env", "w") as fh:
    fh.write(os.environ.get("LESS", "-"))
"""

GREEN_PLUS = b"\x1b[32m+two"
RED_MINUS = b"\x1b[31m-one"


@pytest.fixture
def ws(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    w = tmp_path / "ws"
    w.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PAGER", "TETHER_PAGER", "NO_COLOR", "LESS")}
    env |= {"TETHER_STATE_DIR": str(tmp_path / "state"), "HOME": str(tmp_path), "TERM": "xterm-256color"}
    (w / "a.txt").write_text("one\n")
    _pipe(["-C", str(w), "checkpoint", "-m", "first"], env)
    (w / "a.txt").write_text("two\n")
    _pipe(["-C", str(w), "checkpoint", "-m", "second"], env)
    (tmp_path / "recorder.py").write_text(RECORDER)
    return w, env


def _pipe(argv: list[str], env: dict[str, str]) -> bytes:
    res = subprocess.run(
        [sys.executable, "-m", "tether", *argv], check=False, capture_output=True, env=env, timeout=60
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def _tty(argv: list[str], env: dict[str, str]) -> bytes:
    """Run tether with stdin/stdout/stderr on a 24x80 pseudo-terminal; what it showed there."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", *argv],
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    try:
        seen = read_terminal(master, proc, 60, poll=0.5)
        assert proc.wait(timeout=30) == 0, seen
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return seen


def _recorder(env: dict[str, str], tmp: Path, var: str = "PAGER") -> tuple[dict[str, str], Path]:
    out = tmp / "paged.out"
    return {**env, var: f"{sys.executable} {tmp / 'recorder.py'} {out}"}, out


def test_diff_on_a_terminal_is_coloured_and_paged(ws: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    w, env = ws
    env, paged = _recorder(env, tmp_path)
    shown = _tty(["-C", str(w), "diff", "1"], env)
    text = paged.read_bytes()
    assert GREEN_PLUS in text and RED_MINUS in text and b"\x1b[36m@@" in text
    assert b"+two" not in shown  # it went to the pager, not around it
    assert (tmp_path / "paged.out.env").read_text() == "FRX"


def test_tether_pager_wins_and_empty_means_none(ws: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    w, env = ws
    env, paged = _recorder(env, tmp_path, "TETHER_PAGER")
    env["PAGER"] = "false"
    _tty(["-C", str(w), "log"], env)
    assert b"\x1b[33m    2\x1b[m" in paged.read_bytes()  # checkpoint numbers in yellow
    paged.unlink()
    shown = _tty(["-C", str(w), "log"], {**env, "TETHER_PAGER": ""})
    assert not paged.exists() and b"second" in shown


def test_no_pager_prints_coloured(ws: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    w, env = ws
    env, paged = _recorder(env, tmp_path)
    shown = _tty(["-C", str(w), "diff", "1", "--no-pager"], env)
    assert not paged.exists()
    assert GREEN_PLUS in shown and RED_MINUS in shown
    shown = _tty(["-C", str(w), "log", "--no-pager"], env)
    assert not paged.exists() and b"\x1b[33m" in shown


@pytest.mark.parametrize("off", [{"NO_COLOR": "1"}, {"TERM": "dumb"}])
def test_no_color_and_dumb_terminal(
    ws: tuple[Path, dict[str, str]], tmp_path: Path, off: dict[str, str]
) -> None:
    w, env = ws
    env, paged = _recorder({**env, **off}, tmp_path)
    _tty(["-C", str(w), "diff", "1"], env)
    text = paged.read_bytes()
    assert b"+two" in text and b"\x1b[" not in text  # still paged (the user named a pager), no colour
    shown = _tty(["-C", str(w), "log", "--no-pager"], env)
    assert b"second" in shown and b"\x1b[" not in shown


def test_pipe_is_neither_coloured_nor_paged(ws: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    w, env = ws
    env, paged = _recorder(env, tmp_path)
    out = _pipe(["-C", str(w), "diff", "1"], env)
    assert b"+two" in out and b"\x1b[" not in out and not paged.exists()
    out = _pipe(["-C", str(w), "diff", "1", "--json"], env)
    assert out.startswith(b"{") and not paged.exists()


def test_json_on_a_terminal_is_plain(ws: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    w, env = ws
    env, paged = _recorder(env, tmp_path)
    shown = _tty(["-C", str(w), "log", "--json"], env)
    assert not paged.exists() and b"\x1b[" not in shown and b'"checkpoints"' in shown


@pytest.mark.skipif(shutil.which("less") is None, reason="less not installed")
def test_default_pager_is_less_and_short_output_just_prints(ws: tuple[Path, dict[str, str]]) -> None:
    w, env = ws
    # No PAGER: less with LESS=FRX prints what fits the screen, colours intact, and exits.
    shown = _tty(["-C", str(w), "diff", "1"], env)
    assert GREEN_PLUS in shown and RED_MINUS in shown


def test_without_pager_variables_less_is_used(ws: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    w, env = ws
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    paged = tmp_path / "paged.out"
    stub = bin_dir / "less"  # stands in for less, to see that it is the one called, and how
    stub.write_text(f'#!/bin/sh\necho "$LESS" > {paged}.env\ncat > {paged}\n')
    stub.chmod(0o755)
    _tty(["-C", str(w), "diff", "1"], {**env, "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}"})
    assert GREEN_PLUS in paged.read_bytes()
    assert (tmp_path / "paged.out.env").read_text() == "FRX\n"


def test_escapes_in_content_reach_the_pager_as_text_only_our_colours_are_live(
    ws: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """`less -R` interprets what it is given: a changed line holding a clear-screen or an OSC 52
    clipboard write is shown escaped; only Tether's own colours stay sequences."""
    w, env = ws
    (w / "a.txt").write_text("two\n\x1b[2J\x1b]52;c;ZXZpbA==\x07\n")
    env, paged = _recorder(env, tmp_path)
    _tty(["-C", str(w), "diff", "1"], env)
    text = paged.read_bytes()
    assert b"\x1b[2J" not in text and b"\x1b]52" not in text
    assert b"\\x1b[2J\\x1b]52;c;ZXZpbA==\\x07" in text
    assert GREEN_PLUS in text  # painted
    shown = _tty(["-C", str(w), "diff", "1", "--no-pager"], env)
    assert b"\x1b[2J" not in shown and b"\x1b]52" not in shown and GREEN_PLUS in shown
