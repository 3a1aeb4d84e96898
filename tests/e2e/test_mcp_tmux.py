"""`tether mcp` keeps the workspace's tmux session durable as the language server does: a command
started in a pane (no structural change, so no tmux hook fires) reaches the store while the MCP
server runs. Real private tmux server, real `tether mcp` over stdio (the SDK's client)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.test_mcp import TIMEOUT, session
from tests.support.retry import retry_until
from tests.support.tmuxsrv import PrivateTmux
from tether.store.db import Store
from tether.tmux.snapshot import TmuxSnapshot
from tether.tmux.watch import latest_snapshot


def _commands(ws: Path, state: Path) -> list[list[str]] | None:
    with Store.open(ws, state) as store:
        found = latest_snapshot(store)
    if found is None:
        return None
    snap = TmuxSnapshot.from_bytes(found.data)
    return [p.command for w in snap.windows for p in w.panes if p.command]


async def test_a_command_started_in_a_pane_is_recorded_while_the_mcp_server_runs(
    tmp_path: Path, tmux_server: PrivateTmux
) -> None:
    ws = (tmp_path / "ws").resolve()
    ws.mkdir()
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    state = tmp_path / "state"
    env = {
        **os.environ,
        "TETHER_STATE_DIR": str(state),
        "TETHER_TMUX_SOCKET": tmux_server.socket_path,
        "TETHER_CONFIG": str(state / "no-config.toml"),
    }
    env.pop("TMUX", None)
    name = subprocess.run(
        [sys.executable, "-m", "tether", "-C", str(ws), "start"],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    assert _commands(ws, state) == []  # recorded at once by `tether start`, nothing running yet
    async with session(ws, state, env={"TETHER_TMUX_SOCKET": tmux_server.socket_path}) as s:
        await asyncio.wait_for(s.call_tool("status", {}), TIMEOUT)  # settles the workspace
        # Typed once the pane's login shell is at its prompt (under load it takes a while).
        retry_until(
            lambda: tmux_server.cmd("capture-pane", "-p", "-t", f"={name}:").stdout.strip(),  # noqa: PLW0108
            timeout=30,
            what="the pane's prompt",
        )
        tmux_server.cmd("send-keys", "-t", f"={name}:", "-l", "--", "sleep 600")
        tmux_server.cmd("send-keys", "-t", f"={name}:", "Enter")
        found = await asyncio.to_thread(
            retry_until,
            lambda: ["sleep", "600"] in (_commands(ws, state) or []),
            timeout=60,
            what="the pane's new command in the stored snapshot",
        )
        assert found
