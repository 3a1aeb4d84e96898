"""`tether step` starts no tmux process when no tmux server can be listening at the workspace's
socket, and asks ``tmux -V`` again only when the tmux binary changed (tmux/presence.py,
tmux/version.cached_version).

A stand-in ``tmux`` first on PATH records every call; the socket is a path in the test's own
directory (``TETHER_TMUX_SOCKET``), so no real server is ever reached.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SHIM = """\
#!/bin/sh
echo "$*" >> {log}
if [ "$1" = -V ]; then echo "tmux {version}"; exit 0; fi
echo "no server running on $2" >&2
exit 1
"""
TOO_OLD = "tmux 2.9 is too old; Tether needs ≥ 3.0"


def _install(d: Path, version: str) -> Path:
    d.mkdir(exist_ok=True)
    exe = d / "tmux"
    exe.write_text(SHIM.format(log=d / "calls", version=version))
    exe.chmod(0o755)
    return exe


def _calls(d: Path) -> list[str]:
    log = d / "calls"
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / ".git").mkdir(parents=True)
    return ws


def _step(tmp_path: Path, ws: Path, shim: Path, message: str) -> subprocess.CompletedProcess[str]:
    (ws / "a.txt").write_text(message)
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_TMPDIR")}
    env["PATH"] = f"{shim}{os.pathsep}{env.get('PATH', '')}"
    env["TETHER_TMUX_SOCKET"] = str(tmp_path / "tmux.sock")
    env["TETHER_CONFIG"] = str(tmp_path / "no-config.toml")
    tether = [sys.executable, "-m", "tether", "--state-dir", str(tmp_path / "state"), "-C", str(ws)]
    res = subprocess.run(
        [*tether, "--json", "step", "--done", message],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return res


def test_no_tmux_process_without_a_server_socket_and_version_asked_again_when_the_binary_changes(
    tmp_path: Path, ws: Path
) -> None:
    shim = tmp_path / "bin"
    _install(shim, "3.4")
    first = _step(tmp_path, ws, shim, "one")
    assert _calls(shim) == ["-V"]  # the version, once, for the state dir's record; no list-panes
    assert "a.txt" in json.loads(first.stdout)["checkpoint"]["files"]
    second = _step(tmp_path, ws, shim, "two")
    assert _calls(shim) == ["-V"]  # nothing started: the record answers while the binary is the same
    assert "tmux" not in second.stderr
    # Another tmux (here: the same path, rewritten) is asked again.
    _install(shim, "3.5a")
    (shim / "calls").unlink()
    _step(tmp_path, ws, shim, "three")
    assert _calls(shim) == ["-V"]
    record = json.loads((tmp_path / "state" / "tmux-version.json").read_text())
    assert record["text"] == "tmux 3.5a" and record["path"] == str(shim / "tmux")


def test_old_tmux_is_said_at_every_step_from_the_record(tmp_path: Path, ws: Path) -> None:
    shim = tmp_path / "bin"
    _install(shim, "2.9")
    for message in ("one", "two", "three"):
        res = _step(tmp_path, ws, shim, message)
        assert res.stderr.count(TOO_OLD) == 1 and "tmux panes are not recorded" in res.stderr, res.stderr
    assert _calls(shim) == ["-V"]


def test_a_broken_record_is_asked_again(tmp_path: Path, ws: Path) -> None:
    shim = tmp_path / "bin"
    _install(shim, "2.9")
    _step(tmp_path, ws, shim, "one")
    (tmp_path / "state" / "tmux-version.json").write_text('{"path": 3')
    res = _step(tmp_path, ws, shim, "two")
    assert TOO_OLD in res.stderr
    assert _calls(shim) == ["-V", "-V"]


def test_a_socket_file_is_asked_through_tmux(tmp_path: Path, ws: Path) -> None:
    """A socket file (here one nobody listens on, as a killed server leaves it) may have a server
    behind it: the step asks tmux for the session's panes."""
    shim = tmp_path / "bin"
    _install(shim, "3.4")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "tmux.sock"))
        _step(tmp_path, ws, shim, "one")
    finally:
        sock.close()
    assert any("list-panes" in c for c in _calls(shim)), _calls(shim)
