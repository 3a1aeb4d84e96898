"""`tether.resume` over LSP recreates a dead tmux session and says which conversation each agent
pane resumes. Real pygls server (stdio), real tmux on a private socket; the agent is the stand-in
`claude` (tests/support/agent_standins.py: the real Claude Code exits offline)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from tests.e2e.lsp_harness import start_session
from tests.support.agent_standins import standins
from tests.support.retry import aretry_until
from tests.support.tmuxsrv import PrivateTmux
from tether import protocol as P


async def test_resume_result_names_each_agent_panes_conversation(
    workspace: Path, state_dir: Path, tmux_server: PrivateTmux, tmp_path: Path
) -> None:
    bin_dir, marker, idfile = standins(tmp_path)
    sid = str(uuid.uuid4())
    idfile.write_text(sid)
    home = tmp_path / "home"
    home.mkdir()
    # Panes are login shells: the stand-in is on PATH the way a user's tools are, from ~/.profile.
    (home / ".profile").write_text(f'export PATH="{bin_dir}:$PATH"\n')
    # A user config file that does not say `resume = "run"`: the command is typed, not run.
    cfg = tmp_path / "config.toml"
    cfg.write_text('[agents]\nresume = "type"\n')
    env = {"HOME": str(home), "SHELL": "/bin/sh", "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "TETHER_CONFIG": str(cfg)}  # fmt: skip
    (workspace / "app.py").write_text("print('hi')\n")
    a = await start_session(workspace, state_dir, tmux_socket=tmux_server.socket_path, extra_env=env)
    try:
        await a.wait_status(lambda s: s["lastCheckpoint"] is not None, "baseline")
        started = await a.command(P.CMD_START_SESSION, {})
        session = started["session"]
        tmux_server.cmd("send-keys", "-t", f"={session}:", "-l", "claude --model opus 'fix it'")
        tmux_server.cmd("send-keys", "-t", f"={session}:", "Enter")
        await aretry_until(marker.exists, timeout=10, what="claude stand-in up")
        await aretry_until(lambda: list((home / ".claude" / "sessions").glob("*.json")), what="record")
        await a.command(P.CMD_CHECKPOINT, {"message": "agent running"})
    finally:
        await a.kill()
    tmux_server.kill()  # a reboot
    marker.unlink()
    b = await start_session(workspace, state_dir, tmux_socket=tmux_server.socket_path, extra_env=env)
    try:
        result = await b.command(P.CMD_RESUME, {})
        assert result["terminal"]["recreated"] is True
        (agent,) = result["terminal"]["agents"]
        assert agent["agent"] == "claude" and agent["conversation"] == sid
        assert agent["action"] == "typed"
        assert agent["command"] == ["claude", "--model", "opus", "--resume", sid]
        assert not marker.exists()
    finally:
        await b.stop()
    assert (
        json.loads((state_dir.glob("workspaces/*/conversations.json").__next__()).read_text())[
            "conversations"
        ][-1]["id"]
        == sid
    )
