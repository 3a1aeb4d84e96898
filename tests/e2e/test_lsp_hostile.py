"""The language server against a hostile workspace and a misbehaving client (issue 20)."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.e2e.lsp_harness import start_session
from tests.support.retry import aretry_until
from tests.support.tmuxsrv import TMUX, PrivateTmux
from tether import protocol as P


@pytest.mark.parametrize("via", ["initializationOptions", "workspace/configuration"])
async def test_editor_settings_cannot_choose_the_store_or_the_tmux_socket(
    workspace: Path, state_dir: Path, tmp_path: Path, tmux_server: PrivateTmux, via: str
) -> None:
    # What a cloned repository's .vscode/settings.json can send: a store inside the repository
    # (whose shipped `tmux` entry is a symlink to a world-writable dir) and its own tmux socket.
    outside = tmp_path / "outside"
    outside.mkdir()
    outside.chmod(0o1777)
    (workspace / "app.py").write_text("x = 1\n")
    (workspace / ".ts").mkdir()
    (workspace / ".ts" / "tmux").symlink_to(outside)
    repo_sock_dir = Path(tempfile.mkdtemp(prefix="t20-", dir="/tmp"))
    repo_sock = str(repo_sock_dir / "s")
    settings = {"stateDir": ".ts", "tmux": {"socketPath": repo_sock}}
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "SHELL": "/bin/sh", "TETHER_CONFIG": str(tmp_path / "none.toml")}
    s = await start_session(
        workspace,
        state_dir,
        init_options=settings if via == "initializationOptions" else None,
        configuration={"tether": settings} if via == "workspace/configuration" else None,
        tmux_socket=tmux_server.socket_path,
        extra_env=env,
    )
    try:
        await s.wait_status(lambda st: st["lastCheckpoint"] is not None, "baseline")
        started = await s.command(P.CMD_START_SESSION, {})
        assert repo_sock not in started["argv"]
        assert tmux_server.socket_path in started["argv"]
        await aretry_until(lambda: s.terminals, timeout=5, what="openTerminal")
        assert repo_sock not in s.terminals[-1]["argv"]
        assert tmux_server.alive()
        warnings = [m.message for m in s.client.messages]
        assert any("ignoring stateDir" in m for m in warnings), warnings
        assert any("ignoring tmux.socketPath" in m for m in warnings), warnings
        # The store and the hook scripts are where the environment says.
        assert list(state_dir.glob("workspaces/*/tether.db"))
        assert (state_dir / "tmux" / "pane-start.sh").is_file()
    finally:
        await s.stop()
        if os.path.exists(repo_sock):  # the bug's server: killed by its socket
            subprocess.run([TMUX, "-S", repo_sock, "kill-server"], check=False, timeout=20)
        with contextlib.suppress(OSError):
            for f in repo_sock_dir.iterdir():
                f.unlink()
            repo_sock_dir.rmdir()
    assert stat.S_IMODE(outside.stat().st_mode) == 0o1777
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in (workspace / ".ts").iterdir()) == ["tmux"]
    assert not os.path.exists(repo_sock)


async def test_tether_diff_never_reads_through_a_symlinked_directory(
    workspace: Path, state_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.txt").write_text("OUTSIDE SECRET\n")
    (workspace / "src").mkdir()
    (workspace / "src" / "a.txt").write_text("tracked\n")
    s = await start_session(workspace, state_dir)
    try:
        st = await s.wait_status(lambda x: x["lastCheckpoint"] is not None, "baseline")
        base = st["lastCheckpoint"]["id"]
        (workspace / "src" / "a.txt").unlink()
        (workspace / "src").rmdir()
        (workspace / "src").symlink_to(outside)
        res = await s.command(P.CMD_DIFF, {"from": base})
        assert [(f["path"], f["status"]) for f in res["files"]] == [("src/a.txt", "deleted")]
        assert "OUTSIDE" not in str(res)
        dry = await s.command(P.CMD_RESTORE, {"checkpoint": base, "dryRun": True})
        assert "OUTSIDE" not in str(dry)
    finally:
        await s.stop()


async def test_next_steps_reach_the_editor_escaped(workspace: Path, state_dir: Path) -> None:
    (workspace / "a.py").write_text("x = 1\n")
    (workspace / ".agent-session.json").write_text(
        '{"current_task": "fix \\u202elogin", "next_steps": ["run \\u200btests", "a\\u2066b"]}'
    )
    s = await start_session(workspace, state_dir)
    try:
        await s.wait_status(lambda x: x["state"] == "idle", "ready")
        await s.command(P.CMD_STEP, {"done": "did \u202ethis"})
        await aretry_until(lambda: s.next_steps, timeout=5, what="showNextSteps")
        shown = s.next_steps[-1]
        text = str([shown["task"], shown["nextSteps"], shown["summary"]])
        for ch in ("\u202e", "\u200b", "\u2066"):
            assert ch not in str(shown), shown
        assert "\\\\u202e" in text  # shown as an escape, not dropped
        timeline = await s.command(P.CMD_TIMELINE, {})
        assert timeline["checkpoints"][0]["message"] == "did \\u202ethis"
    finally:
        await s.stop()


async def test_next_steps_the_repository_shipped_are_labelled_in_the_editor(
    tmp_path: Path, state_dir: Path
) -> None:
    from tests.e2e.test_cli_hostile import EVIL, SHIPPED, _fresh_clone

    ws = _fresh_clone(tmp_path, EVIL)
    s = await start_session(ws, state_dir)
    try:
        await s.wait_status(lambda x: x["state"] == "idle", "ready")
        await s.command(P.CMD_RESUME, {})
        await aretry_until(lambda: s.next_steps, timeout=5, what="showNextSteps")
        shown = s.next_steps[-1]
        assert shown["shipped"] == ["task", "nextSteps"]
        assert f"Next ({SHIPPED}): run `curl" in shown["summary"]
        await s.command(P.CMD_STEP, {"done": "looked around", "next": ["write tests"], "task": "mine"})
        await aretry_until(lambda: len(s.next_steps) > 1, timeout=5, what="showNextSteps after the step")
        assert s.next_steps[-1]["shipped"] == [] and SHIPPED not in s.next_steps[-1]["summary"]
    finally:
        await s.stop()
