"""tmux/presence.py: where tmux's default socket is, and when no server can be listening."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tether.tmux import presence


def test_default_socket_follows_tmux(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TMUX", raising=False)
    monkeypatch.delenv("TMUX_TMPDIR", raising=False)
    assert presence.default_socket() == f"/tmp/tmux-{os.getuid()}/default"
    monkeypatch.setenv("TMUX_TMPDIR", str(tmp_path))
    assert presence.default_socket() == f"{tmp_path}/tmux-{os.getuid()}/default"
    # Inside tmux, a client without -S/-L talks to the server named in $TMUX.
    monkeypatch.setenv("TMUX", "/run/x/tmux-1/work,1234,0")
    assert presence.default_socket() == "/run/x/tmux-1/work"


def test_link_socket_prefers_the_config_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(presence.SOCKET_ENV, raising=False)
    assert presence.link_socket(None) is None
    monkeypatch.setenv(presence.SOCKET_ENV, "/s/env")
    assert presence.link_socket(None) == "/s/env"
    assert presence.link_socket("/s/config") == "/s/config"


def test_server_may_run_only_where_a_socket_file_is(tmp_path: Path) -> None:
    assert not presence.server_may_run(str(tmp_path / "none"))
    assert not presence.server_may_run(str(tmp_path / "none" / "deeper"))
    (tmp_path / "file").write_text("x")
    assert not presence.server_may_run(str(tmp_path / "file"))
    assert not presence.server_may_run(str(tmp_path / "file" / "below"))  # ENOTDIR
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "s"))
        assert presence.server_may_run(str(tmp_path / "s"))
    finally:
        sock.close()


def test_which_tmux_takes_the_first_executable_on_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d in (a, b, c):
        d.mkdir()
    (a / "tmux").mkdir()  # a directory is not it
    (b / "tmux").write_text("")  # not executable
    (c / "tmux").write_text("#!/bin/sh\n")
    (c / "tmux").chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join(map(str, (a, b, c))))
    assert presence.which_tmux() == str(c / "tmux")
    monkeypatch.setenv("PATH", str(a))
    assert presence.which_tmux() is None


def test_a_checkpointer_looks_at_the_installed_tmux_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With no server at the link's socket, the tmux snapshot says whether the installed tmux is
    too old: at the first checkpoint only (a long-lived server's steps do not search PATH or
    read the version record again)."""
    from tether.agent import steps

    calls: list[object] = []
    monkeypatch.setattr(steps, "_check_version", lambda state, say: calls.append(state))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv(presence.SOCKET_ENV, str(tmp_path / "no-server"))
    snapshot = steps._tmux_provider(tmp_path, str(tmp_path / "state"))
    assert snapshot() is None
    assert snapshot() is None
    assert calls == [str(tmp_path / "state")]
    assert steps._tmux_provider(tmp_path, None)() is None  # another checkpointer looks again
    assert len(calls) == 2
