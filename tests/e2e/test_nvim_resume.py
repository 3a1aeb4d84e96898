"""The disconnect story in a real headless Neovim 0.11, the real `tether lsp` and a real private tmux.

Neovim A opens files, edits some without saving, records an agent step and checkpoints; it is then
killed with SIGKILL (no LSP shutdown, nothing written). Neovim B starts in the workspace, shows
"resume available" and runs `:Tether resume`: the files come back at their lines, unsaved text as
modified buffers, a terminal attached to the still-running tmux session, next steps in a float.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.nvim.driver import Nvim, pid_alive
from tests.e2e.nvim.scenario import editor, events, float_lines, make_workspace, wait_client
from tests.support.retry import retry_until
from tests.support.tmuxsrv import PrivateTmux

pytestmark = [pytest.mark.nvim, pytest.mark.timeout(240)]

APP = "".join(f"x_{i} = {i}\n" for i in range(1, 41))
NOTES = "".join(f"note {i}\n" for i in range(1, 31))
TODO = "".join(f"todo {i}\n" for i in range(1, 11))


def edit_line(nv: Nvim, path: str, line: int, text: str, cursor: int) -> None:
    """Open ``path``, replace ``line`` (1-based) by typing, then move the cursor to ``cursor``."""
    nv.cmd(f"edit {path}")
    nv.lua(f"vim.api.nvim_win_set_cursor(0, {{ {line}, 0 }})")
    nv.lua(f"vim.api.nvim_feedkeys('cc' .. {text!r} .. vim.keycode('<Esc>'), 'xt', false)")
    nv.lua(f"vim.api.nvim_win_set_cursor(0, {{ {cursor}, 2 }})")


BUFFER_STATE = """
local b = vim.fn.bufnr(%r)
if b < 0 then return nil end
local function plain(w)
  return vim.api.nvim_win_get_config(w).relative == '' and vim.bo[vim.api.nvim_win_get_buf(w)].buftype == ''
end
local w = vim.api.nvim_get_current_win()
if not plain(w) then
  for _, x in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
    if plain(x) then w = x break end
  end
end
vim.api.nvim_set_current_win(w)
vim.cmd('buffer ' .. b)
return {
  lines = vim.api.nvim_buf_get_lines(b, 0, -1, false),
  modified = vim.bo[b].modified,
  listed = vim.bo[b].buflisted,
  cursor = vim.api.nvim_win_get_cursor(0),
}
"""


def buffer_state(nv: Nvim, path: str) -> dict[str, Any]:
    """Lines, modified flag and cursor of ``path``'s buffer once shown in a plain window."""
    return nv.lua(BUFFER_STATE % path)


@pytest.mark.parametrize("tmux_fate", ["alive", "killed"])
def test_resume_after_sigkill(
    tmp_path: Path, state_dir: Path, tmux_server: PrivateTmux, tmux_fate: str
) -> None:
    """``alive``: the editor crashed, the agent's tmux kept running (an SSH drop).
    ``killed``: tmux died too (a reboot); the server recreates the session for the terminal.
    Neovim runs with its default options (swap files on), as one user: A's swap files are there
    when B resumes."""
    ws = make_workspace(tmp_path / "ws", {"src/app.py": APP, "notes.md": NOTES, "TODO": TODO})
    home = tmp_path / "home"

    # --- Neovim A: work, then die -----------------------------------------------------------
    a = editor(home, ws, state_dir, tmux_server, defaults=True)
    try:
        a.start("src/app.py")
        wait_client(a, "src/app.py")

        a.run("Tether start")
        session = a.wait(
            "(function() for _, b in ipairs(vim.api.nvim_list_bufs()) do"
            " if vim.bo[b].buftype == 'terminal' and vim.b[b].tether_terminal then"
            " return vim.b[b].tether_terminal end end end)()",
            timeout=30,
            what="terminal from :Tether start",
        )
        assert tmux_server.cmd("has-session", "-t", session, check=False).returncode == 0

        # Cursors end away from the edits: resume must bring back where the user was.
        edit_line(a, "notes.md", 5, "saved change", cursor=9)
        a.cmd("write")
        edit_line(a, "TODO", 3, "UNSAVED todo", cursor=7)
        edit_line(a, "src/app.py", 20, "x_20 = 'UNSAVED'", cursor=25)
        wait_client(a, "TODO")  # a file without a filetype is tracked too

        a.run("Tether step wrote the parser --next add tests --next update docs --task refactor parser")
        a.wait("#vim.tbl_filter(function(e) return e.name == 'TetherCheckpoint' end, T.events) >= 1")
        steps_a = retry_until(lambda: float_lines(a), timeout=15, what="next steps float in A")
        assert "1. add tests" in steps_a
        a.lua(
            "for _, w in ipairs(vim.api.nvim_list_wins()) do if vim.api.nvim_win_get_config(w).relative ~= ''"
            " then vim.api.nvim_win_close(w, true) end end"
        )
        a.cmd("buffer src/app.py")

        # The server has journaled both unsaved buffers before we checkpoint and crash.
        a.wait("(require('tether').status() or {}).dirtyBuffers == 2", timeout=20, what="2 dirty buffers")
        a.run("Tether checkpoint before crash")
        announced = retry_until(
            lambda: [
                e for e in events(a, "TetherCheckpoint") if e["checkpoint"].get("message") == "before crash"
            ],
            timeout=20,
            what="checkpoint announced",
        )
        cp_id = announced[0]["checkpoint"]["id"]
        assert any(f"checkpoint #{cp_id}" in n for n in a.notes())
        status = a.wait(
            f"(function() local s = require('tether').status()"
            f" return s and s.lastCheckpoint and s.lastCheckpoint.id == {cp_id} and s end)()",
            timeout=15,
            what="status reporting the checkpoint",
        )

        def shows_text() -> bool:
            st = a.lua("return require('tether').status()") or {}
            return a.statusline() == f"Tether: {st.get('text')}"

        retry_until(shows_text, timeout=15, what="the statusline showing the status text")
        assert status["text"]

        assert (ws / "src/app.py").read_text() == APP  # unsaved edits never reached the disk
        assert (ws / "notes.md").read_text().splitlines()[4] == "saved change"
        servers = a.server_pids()
        assert servers, "no tether lsp process under Neovim A"
        a.kill()
        assert a.proc is not None and a.proc.returncode == -signal.SIGKILL
        # Without its editor the server sees EOF; give it a bounded chance to exit, then kill by PID.
        with contextlib.suppress(AssertionError):
            retry_until(lambda: not any(pid_alive(p) for p in servers), timeout=10, what="server exit")
        for pid in servers:
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    finally:
        a.close()
    # The agent's tmux session outlives the editor (an SSH drop, not a reboot).
    assert tmux_server.cmd("has-session", "-t", session, check=False).returncode == 0
    if tmux_fate == "killed":
        tmux_server.kill()
        assert not tmux_server.alive()

    # --- Neovim B: open the project, resume ---------------------------------------------------
    b = editor(home, ws, state_dir, tmux_server, defaults=True)
    try:
        b.start()
        wait_client(b)
        retry_until(lambda: b.statusline() == "Tether: resume available", timeout=20, what="resume available")

        b.run("Tether resume")
        result = retry_until(lambda: events(b, "TetherResume"), timeout=30, what="TetherResume")[0]["result"]
        assert sorted(result["restoredBuffers"]) == ["TODO", "src/app.py"]
        assert result["terminal"]["session"] == session
        assert result["terminal"]["recreated"] is (tmux_fate == "killed")
        assert set(result["opened"]) >= {"src/app.py", "notes.md", "TODO"}

        # Next steps in a floating window.
        steps = retry_until(lambda: float_lines(b), timeout=15, what="next steps float")
        assert "refactor parser" in steps
        assert "1. add tests" in steps
        assert "2. update docs" in steps

        # A terminal attached to the live tmux session.
        term = b.wait(
            f"(function() for _, x in ipairs(vim.api.nvim_list_bufs()) do"
            f" if vim.bo[x].buftype == 'terminal' and vim.b[x].tether_terminal == {session!r} then"
            f" return {{ buf = x, job = vim.b[x].terminal_job_id }} end end end)()",
            timeout=20,
            what="terminal buffer for the tmux session",
        )
        assert b.lua(f"return vim.fn.jobwait({{ {term['job']} }}, 0)[1]") == -1  # still running
        retry_until(
            lambda: tmux_server.cmd("list-clients", "-t", session, check=False).stdout.strip() or None,
            timeout=20,
            what="a tmux client attached from Neovim B",
        )

        # Files back, unsaved text as modified buffers, cursors on the lines being edited.
        app = buffer_state(b, "src/app.py")
        assert app["modified"] is True
        assert app["lines"][19] == "x_20 = 'UNSAVED'"
        assert app["cursor"] == [25, 2]
        todo = buffer_state(b, "TODO")
        assert todo["modified"] is True
        assert todo["lines"][2] == "UNSAVED todo"
        assert todo["cursor"] == [7, 2]
        notes = buffer_state(b, "notes.md")
        assert notes["modified"] is False
        assert notes["listed"] is True
        assert notes["lines"][4] == "saved change"
        assert notes["cursor"] == [9, 2]
        assert (ws / "src/app.py").read_text() == APP  # restored as unsaved, not written

        # The statusline moves on from "resume available".
        retry_until(
            lambda: b.statusline().startswith("Tether: ") and b.statusline() != "Tether: resume available",
            timeout=15,
            what="statusline after resume",
        )
    finally:
        b.close()


def journal_text(ws: Path, state_dir: Path) -> str:
    """The server's live unsaved-buffer journal, read from its store ('' when not written yet)."""
    from tether.editor.resume import STATE_JOURNAL
    from tether.store.db import Store

    store = Store.open(ws, state_dir)
    try:
        data = store.get_state(STATE_JOURNAL)
    finally:
        store.close()
    return data.decode("utf-8", "replace") if data else ""


@pytest.mark.parametrize("unfocused", ["buffer", "split"])
def test_unsaved_edits_survive_a_crash_without_explicit_checkpoint(
    tmp_path: Path, state_dir: Path, unfocused: str
) -> None:
    """No `:Tether checkpoint`: a save and the unsaved-buffer journal are all there is.

    ``unfocused``: files reopened without focus become listed buffers, or splits."""
    ws = make_workspace(tmp_path / "ws", {"src/app.py": APP, "notes.md": NOTES})
    home = tmp_path / "home"  # one user, default options: A's swap file meets B
    a = editor(home, ws, state_dir, None, defaults=True)
    try:
        a.start("notes.md")
        wait_client(a, "notes.md")
        edit_line(a, "notes.md", 2, "saved line", cursor=2)
        a.cmd("write")
        edit_line(a, "src/app.py", 7, "x_7 = 'journal only'", cursor=7)
        a.wait("(require('tether').status() or {}).dirtyBuffers == 1", timeout=20, what="dirty buffer")
        # Like VS Code's hot exit the server journals unsaved text ~1 s after typing stops; the
        # crash comes once that journal is on disk (read from the store, as the next server will).
        retry_until(lambda: "journal only" in journal_text(ws, state_dir), timeout=20, what="journal written")
        a.kill()
    finally:
        a.close()

    b = editor(home, ws, state_dir, None, defaults=True, unfocused_documents=unfocused)
    try:
        b.start()
        wait_client(b)
        retry_until(lambda: b.statusline() == "Tether: resume available", timeout=20, what="resume available")
        b.run("Tether resume")
        result = retry_until(lambda: events(b, "TetherResume"), timeout=30, what="TetherResume")[0]["result"]
        assert result["restoredBuffers"] == ["src/app.py"]
        shown = b.lua(
            "local names = {} for _, w in ipairs(vim.api.nvim_tabpage_list_wins(0)) do"
            " local buf = vim.api.nvim_win_get_buf(w)"
            " if vim.api.nvim_win_get_config(w).relative == '' and vim.bo[buf].buftype == '' then"
            " names[#names + 1] = vim.fs.basename(vim.api.nvim_buf_get_name(buf)) end end return names"
        )
        # One window for the focused file; with 'split' one more per file shown without focus.
        if unfocused == "split":
            assert sorted(shown) == ["app.py", "notes.md"]
        else:
            assert len(shown) == 1
        assert result.get("terminal") is None  # tmux disabled: no terminal opened
        app = buffer_state(b, "src/app.py")
        assert app["modified"] is True
        assert app["lines"][6] == "x_7 = 'journal only'"
        assert app["cursor"][0] == 7
        assert buffer_state(b, "notes.md")["lines"][1] == "saved line"
        assert (
            b.lua(
                "return #vim.tbl_filter(function(x) return vim.bo[x].buftype == 'terminal' end,"
                " vim.api.nvim_list_bufs())"
            )
            == 0
        )
    finally:
        b.close()
