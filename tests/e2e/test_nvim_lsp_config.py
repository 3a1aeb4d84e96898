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


def test_lsp_enable_alone_attaches_buffers_without_a_filetype(tmp_path: Path, state_dir: Path) -> None:
    """vim.lsp.enable() starts servers on FileType, which never fires for a file Neovim has no
    type for; the plugin starts those too. Neovim with its default options (swap files on)."""
    ws = make_workspace(
        tmp_path / "ws", {"NOTES": "todo: nothing\n", "main.c": "int main(void) { return 0; }\n"}
    )
    env = {"TETHER_STATE_DIR": str(state_dir)}
    with Nvim(tmp_path / "home", ws, mode="enable", env=env, defaults=True) as nv:
        nv.start("NOTES")  # at startup, the first buffer
        wait_client(nv, "NOTES")
        assert nv.lua("return vim.bo.filetype") == ""
        assert nv.lua("return vim.o.swapfile") is True
        nv.cmd("edit scratch-without-type")  # a new file (BufNewFile), also without a type
        wait_client(nv, "scratch-without-type")
        assert nv.lua("return vim.bo.filetype") == ""
        nv.cmd("edit main.c")  # one with a type: Neovim's own FileType path, same client
        wait_client(nv, "main.c")
        ids = nv.lua(
            "local ids = {}\n"
            "for _, n in ipairs({ 'NOTES', 'scratch-without-type', 'main.c' }) do\n"
            "  ids[#ids + 1] = vim.lsp.get_clients({ bufnr = vim.fn.bufnr(n), name = 'tether' })[1].id\n"
            "end\n"
            "return ids"
        )
        assert len(set(ids)) == 1, ids
        # The server tracks the typeless buffer: an unsaved edit in it counts.
        nv.cmd("buffer NOTES")
        nv.lua("vim.api.nvim_buf_set_lines(0, 0, 0, false, { 'unsaved line' })")
        retry_until(
            lambda: (
                (nv.lua("return require('tether').status(vim.fn.bufnr('NOTES'))") or {}).get(
                    "dirtyBuffers", 0
                )
                >= 1
            ),
            timeout=20,
            what="the typeless buffer's unsaved edit in tether/status",
        )


def test_without_enable_nothing_starts_for_typeless_files(tmp_path: Path, state_dir: Path) -> None:
    """The typeless-buffer start follows vim.lsp.enable(): a plugin on the runtimepath that was not
    enabled starts nothing."""
    ws = make_workspace(tmp_path / "ws", {"NOTES": "todo\n"})
    with Nvim(tmp_path / "home", ws, mode="g", opts=None, env={"TETHER_STATE_DIR": str(state_dir)}) as nv:
        nv.start("NOTES")
        assert nv.lua("return vim.lsp.is_enabled('tether')") is False
        # BufReadPost has run (the file is loaded) and the scheduled check with it.
        nv.wait("vim.fn.bufloaded('NOTES') == 1")
        nv.run(lua="vim.cmd('doautocmd BufReadPost')")
        assert nv.lua("return #vim.lsp.get_clients({ name = 'tether' })") == 0


def test_each_workspace_has_its_own_server_and_statusline(tmp_path: Path, state_dir: Path) -> None:
    """Files of two projects open at once (Neovim's multi-root): one server per root, and each
    window's statusline speaks for its own buffer's workspace."""
    api = make_workspace(tmp_path / "api", {"server.py": "x = 1\n"})
    web = make_workspace(tmp_path / "web", {"index.ts": "export {}\n"})
    with editor(tmp_path / "home", api, state_dir, None, defaults=True) as nv:
        nv.start(str(api / "server.py"))
        wait_client(nv, str(api / "server.py"))
        nv.cmd(f"vsplit {web / 'index.ts'}")
        wait_client(nv, str(web / "index.ts"))
        roots = nv.lua(
            "local r = {}\n"
            "for _, c in ipairs(vim.lsp.get_clients({ name = 'tether' })) do r[#r + 1] = c.root_dir end\n"
            "table.sort(r); return r"
        )
        assert roots == sorted([str(api), str(web)])
        assert len(nv.server_pids()) == 2

        def line(path: Path) -> str:
            return str(
                nv.lua(
                    f"local w = vim.fn.bufwinid(vim.fn.bufnr({str(path)!r}))\n"
                    "return vim.api.nvim_eval_statusline(vim.o.statusline, { winid = w }).str"
                )
            )

        retry_until(
            lambda: line(api / "server.py").startswith("Tether: #1"), timeout=20, what="api's baseline"
        )
        retry_until(
            lambda: line(web / "index.ts").startswith("Tether: #1"), timeout=20, what="web's baseline"
        )
        # A save in web checkpoints web only.
        nv.cmd(f"buffer {web / 'index.ts'}")
        nv.lua("vim.api.nvim_buf_set_lines(0, 0, 0, false, { '// saved' })")
        nv.cmd("write")
        retry_until(
            lambda: line(web / "index.ts").startswith("Tether: #2"), timeout=20, what="web's save checkpoint"
        )
        assert line(api / "server.py").startswith("Tether: #1"), line(api / "server.py")
        nv.cmd(f"buffer {api / 'server.py'}")
        nv.run("Tether status")
        note = retry_until(lambda: [n for n in nv.notes() if "\nWorkspace: " in n], timeout=20, what="status")
        assert note[-1].splitlines()[1] == f"Workspace: {api}"
