"""Unsaved edits after a crash of Neovim run with its DEFAULT options: swap files on.

Neovim A (one user: one home, one swap directory) edits a file without saving and is killed
with SIGKILL, leaving its swap file behind. Neovim B, same user, runs `:Tether resume`. Loading
the file meets A's swap file (E325 ATTENTION); Tether must decide instead of a prompt:

- the swap holds nothing newer than Tether's journal: the journal's text comes back as an
  unsaved buffer and the stale swap file is deleted;
- the swap holds newer edits than the journal: nothing is overwritten, the message says how to
  recover the swap, and the journal is kept, so `:Tether resume` can still bring it back.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.nvim.driver import Nvim, pid_alive
from tests.e2e.nvim.scenario import editor, events, make_workspace, wait_client
from tests.support.retry import retry_until

pytestmark = [pytest.mark.nvim, pytest.mark.timeout(240)]

APP = "".join(f"x_{i} = {i}\n" for i in range(1, 21))


def journal_text(ws: Path, state_dir: Path) -> str:
    from tether.editor.resume import STATE_JOURNAL
    from tether.store.db import Store

    store = Store.open(ws, state_dir)
    try:
        data = store.get_state(STATE_JOURNAL)
    finally:
        store.close()
    return data.decode("utf-8", "replace") if data else ""


def swap_files(home: Path) -> list[Path]:
    d = home / "xdg" / "state" / "nvim" / "swap"
    return sorted(d.glob("*.sw?")) if d.is_dir() else []


def crash(nv: Nvim) -> None:
    """SIGKILL Neovim and its server (the server would exit on EOF; bounded, then by PID)."""
    servers = nv.server_pids()
    nv.kill()
    with contextlib.suppress(AssertionError):
        retry_until(lambda: not any(pid_alive(p) for p in servers), timeout=10, what="server exit")
    for pid in servers:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def type_line(nv: Nvim, line: int, text: str) -> None:
    nv.lua(f"vim.api.nvim_win_set_cursor(0, {{ {line}, 0 }})")
    nv.lua(f"vim.api.nvim_feedkeys('cc' .. {text!r} .. vim.keycode('<Esc>'), 'xt', false)")


def resume(nv: Nvim, nth: int) -> dict[str, Any]:
    nv.run("Tether resume")
    retry_until(lambda: len(events(nv, "TetherResume")) >= nth, timeout=30, what=f"resume #{nth}")
    return events(nv, "TetherResume")[nth - 1]["result"]


def app_buffer(nv: Nvim) -> dict[str, Any] | None:
    return nv.lua(
        "local b = vim.fn.bufnr('src/app.py')"
        " if b < 0 or not vim.api.nvim_buf_is_loaded(b) then return nil end"
        " return { lines = vim.api.nvim_buf_get_lines(b, 0, -1, false), modified = vim.bo[b].modified,"
        " readonly = vim.bo[b].readonly }"
    )


def test_swap_file_of_a_crashed_neovim_does_not_lose_the_journal(tmp_path: Path, state_dir: Path) -> None:
    ws = make_workspace(tmp_path / "ws", {"src/app.py": APP})
    home = tmp_path / "home"  # one user: A and B share the swap directory
    a = editor(home, ws, state_dir, None, defaults=True)
    try:
        a.start("src/app.py")
        wait_client(a, "src/app.py")
        assert a.lua("return vim.o.swapfile") is True
        type_line(a, 3, "x_3 = 'UNSAVED'")
        retry_until(lambda: "UNSAVED" in journal_text(ws, state_dir), timeout=20, what="journal written")
        a.cmd("preserve")  # what Neovim does by itself after 'updatetime' idle
        retry_until(lambda: swap_files(home), timeout=10, what="A's swap file")
        crash(a)
    finally:
        a.close()
    assert swap_files(home), "the crash left A's swap file behind"
    assert (ws / "src/app.py").read_text() == APP

    b = editor(home, ws, state_dir, None, defaults=True)
    try:
        b.start()
        wait_client(b)
        retry_until(lambda: b.statusline() == "Tether: resume available", timeout=20, what="resume offered")
        result = resume(b, 1)
        assert result["restoredBuffers"] == ["src/app.py"], result
        buf = app_buffer(b)
        assert buf is not None and buf["modified"] is True and buf["readonly"] is False
        assert buf["lines"][2] == "x_3 = 'UNSAVED'"
        assert "E325" not in b.messages()
        # A's stale swap file is gone: any swap file left is B's own.
        owners = [b.lua(f"return vim.fn.swapinfo({str(p)!r}).pid") for p in swap_files(home)]
        assert all(pid == b.pid for pid in owners), owners
        assert (ws / "src/app.py").read_text() == APP  # still unsaved
    finally:
        b.close()


def test_newer_swap_is_left_to_recover_and_the_journal_is_kept(tmp_path: Path, state_dir: Path) -> None:
    ws = make_workspace(tmp_path / "ws", {"src/app.py": APP})
    home = tmp_path / "home"
    a = editor(home, ws, state_dir, None, defaults=True)
    try:
        a.start("src/app.py")
        wait_client(a, "src/app.py")
        type_line(a, 3, "x_3 = 'JOURNALED'")
        retry_until(lambda: "JOURNALED" in journal_text(ws, state_dir), timeout=20, what="journal written")
        # The server stops hearing about edits (frozen), Neovim keeps going: only its swap has them.
        servers = a.server_pids()
        for pid in servers:
            os.kill(pid, signal.SIGSTOP)
        try:
            type_line(a, 4, "x_4 = 'ONLY IN SWAP'")
            a.cmd("preserve")
        finally:
            for pid in servers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        crash(a)
    finally:
        a.close()
    assert swap_files(home)

    b = editor(home, ws, state_dir, None, defaults=True)
    try:
        b.start()
        wait_client(b)
        retry_until(lambda: b.statusline() == "Tether: resume available", timeout=20, what="resume offered")
        result = resume(b, 1)
        assert result["restoredBuffers"] == [], result
        skipped = {s["path"]: s["reason"] for s in result["skippedBuffers"]}
        assert "src/app.py" in skipped, result
        assert "swap file" in skipped["src/app.py"] and "recover" in skipped["src/app.py"]
        notes = "\n".join(b.notes())
        assert ":recover" in notes, notes
        assert "E325" not in b.messages()
        # Nothing was overwritten: the swap file is still there to recover, and the journal waits.
        assert swap_files(home)
        b.wait("(require('tether').status() or {}).resumeAvailable == true", timeout=15, what="offer kept")

        # The user takes Vim's copy instead: delete the swap, resume again: Tether's copy comes back.
        b.run(lua="vim.cmd('bwipeout! src/app.py')")
        for p in swap_files(home):
            p.unlink()
        result2 = resume(b, 2)
        assert result2["restoredBuffers"] == ["src/app.py"], result2
        buf = app_buffer(b)
        assert buf is not None and buf["lines"][2] == "x_3 = 'JOURNALED'"
    finally:
        b.close()
