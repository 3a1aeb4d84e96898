"""`vim.lsp.enable('tether')` alone, with the plugin's lsp/tether.lua, against the real server."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.e2e.nvim.driver import Nvim
from tests.e2e.nvim.scenario import editor, make_workspace, wait_client
from tests.support.retry import retry_until
from tests.support.tmuxsrv import PrivateTmux

pytestmark = [pytest.mark.nvim, pytest.mark.timeout(120)]


def test_lsp_enable_uses_the_plugin_config(tmp_path: Path, state_dir: Path, tmux_server: PrivateTmux) -> None:
    ws = make_workspace(tmp_path / "ws", {"main.c": "int main(void) { return 0; }\n"})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "loose.txt").write_text("no workspace here\n")
    env = {"TETHER_STATE_DIR": str(state_dir), "TETHER_TMUX_SOCKET": tmux_server.socket_path}
    with Nvim(tmp_path / "home", ws, mode="enable", env=env) as nv:
        nv.start("main.c")
        wait_client(nv, "main.c")
        client = nv.lua(
            "local c = vim.lsp.get_clients({ name = 'tether' })[1]"
            " return { cmd = c.config.cmd, root = c.root_dir, ft = c.config.filetypes,"
            " markers = c.config.root_markers }"
        )
        assert client["cmd"] == ["tether", "lsp"]  # found on PATH
        assert client["root"] == str(ws)
        assert client.get("ft") is None
        assert client["markers"] == [".git", ".agent-session.json"]

        nv.run("Tether status")
        note = retry_until(lambda: [n for n in nv.notes() if "\nWorkspace: " in n], timeout=20, what="status")
        assert note[0].splitlines()[1] == f"Workspace: {ws}"

        # Outside any workspace no server is attached (workspace_required).
        nv.cmd(f"edit {outside / 'loose.txt'}")
        assert nv.lua("return #vim.lsp.get_clients({ bufnr = 0, name = 'tether' })") == 0

        nv.cmd("checkhealth tether")
        report = "\n".join(nv.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)"))
        assert f"running for {ws}" in report

        # The server dies: the statusline stops claiming anything, the next command starts a new one.
        nv.cmd(f"edit {ws / 'main.c'}")
        retry_until(lambda: nv.statusline().startswith("Tether: "), timeout=20, what="statusline")
        old = nv.server_pids()
        assert old
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        retry_until(lambda: nv.statusline() == "", timeout=20, what="statusline cleared")
        nv.run("Tether status")
        retry_until(
            lambda: len([n for n in nv.notes() if "\nWorkspace: " in n]) == 2,
            timeout=30,
            what="status from a restarted server",
        )
        new = nv.server_pids()
        assert new and not set(new) & set(old)
        assert nv.lua("return #vim.lsp.get_clients({ bufnr = 0, name = 'tether' })") == 1


def test_fresh_workspace_has_nothing_to_resume(tmp_path: Path, state_dir: Path) -> None:
    ws = make_workspace(tmp_path / "ws", {"main.c": "int main(void) { return 0; }\n"})
    with editor(tmp_path / "home", ws, state_dir, None) as nv:
        nv.start()  # no file: the server starts for the cwd's workspace
        wait_client(nv)
        nv.run("Tether resume")
        retry_until(
            lambda: [n for n in nv.notes() if n.startswith("tether: nothing to resume")],
            timeout=20,
            what="note",
        )
        assert nv.lua("return vim.fn.bufnr('main.c')") == -1  # nothing was opened
