"""The language server with tmux older than 3.0 on PATH: it says so once at start, keeps
checkpointing the files, and its tmux command answers with the same message.

tmux 2.9 cannot be installed here: :mod:`tests.support.oldtmux` is a stand-in ``tmux`` that
reports 2.9 and answers as 2.9 does.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pygls.exceptions import JsonRpcException

from tests.e2e.lsp_harness import start_session
from tests.support.oldtmux import calls, install_old_tmux, version_calls_per_process
from tether import protocol as P

MESSAGE = "tmux 2.9 is too old; Tether needs ≥ 3.0"


async def test_lsp_says_tmux_is_too_old(workspace: Path, state_dir: Path, tmp_path: Path) -> None:
    old = tmp_path / "old-tmux"
    bin_dir = install_old_tmux(old)
    home = tmp_path / "home"
    home.mkdir()
    (workspace / "a.py").write_text("x = 1\n")
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(home), "SHELL": "/bin/sh"}
    s = await start_session(workspace, state_dir, extra_env=env)
    try:
        await s.wait_status(lambda st: st["lastCheckpoint"] is not None, "baseline without tmux")
        warnings = [m.message for m in s.client.messages if MESSAGE in m.message]
        assert len(warnings) == 1, [m.message for m in s.client.messages]
        with pytest.raises(JsonRpcException) as info:
            await s.command(P.CMD_START_SESSION, {})
        assert MESSAGE in info.value.message and "usage" not in info.value.message
        cp = await s.command(P.CMD_CHECKPOINT, {})
        assert cp is not None
        # Asked once for the whole server's life; no tmux command beyond -V was sent.
        assert list(version_calls_per_process(old).values()) == [1]
        assert set(calls(old)) == {"-V"}
    finally:
        await s.stop()
