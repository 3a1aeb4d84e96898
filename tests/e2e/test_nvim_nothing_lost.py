"""Nothing lost, in a real headless Neovim 0.11 with its default options (swap files on), the real
`tether lsp` and a real private tmux server:

- a tmux session changed with tmux itself (no checkpoint since) and killed comes back as it was;
- when no snapshot of the session exists, resume says so;
- `:w` followed at once by `:qa!` still makes the save's checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

from tests.e2e.nvim.driver import Nvim, pid_alive
from tests.e2e.nvim.scenario import editor, events, make_workspace, wait_client
from tests.support.retry import retry_until
from tests.support.tmuxsrv import PrivateTmux
from tether.store.db import Store

pytestmark = [pytest.mark.nvim, pytest.mark.timeout(240)]

APP = "".join(f"x_{i} = {i}\n" for i in range(1, 11))


def crash(nv: Nvim) -> None:
    servers = nv.server_pids()
    nv.kill()
    with contextlib.suppress(AssertionError):
        retry_until(lambda: not any(pid_alive(p) for p in servers), timeout=10, what="server exit")
    for pid in servers:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def live_windows(ws: Path, state_dir: Path) -> list[str]:
    from tether.tmux.snapshot import TmuxSnapshot
    from tether.tmux.watch import read_live

    with Store.open(ws, state_dir) as store:
        found = read_live(store)
    return [w.name for w in TmuxSnapshot.from_bytes(found.data).windows] if found else []


def test_tmux_changes_without_a_checkpoint_survive_a_reboot(
    tmp_path: Path, state_dir: Path, tmux_server: PrivateTmux
) -> None:
    ws = make_workspace(tmp_path / "ws", {"src/app.py": APP})
    home = tmp_path / "home"
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
        # The user adds a window with tmux itself: no save, no step, no Tether command.
        tmux_server.cmd("new-window", "-d", "-t", f"={session}:", "-n", "devserver")
        retry_until(
            lambda: live_windows(ws, state_dir) == ["shell", "devserver"],
            timeout=10,
            what="the session's new window recorded",
        )
        crash(a)
    finally:
        a.close()
    tmux_server.kill()  # a reboot

    b = editor(home, ws, state_dir, tmux_server, defaults=True)
    try:
        b.start()
        wait_client(b)
        b.run("Tether resume")
        result = retry_until(lambda: events(b, "TetherResume"), timeout=30, what="TetherResume")[0]["result"]
        assert result["terminal"] is not None, result
        assert result["terminal"]["recreated"] is True
        windows = tmux_server.cmd("list-windows", "-t", f"={session}:", "-F", "#{window_name}").stdout.split()
        assert windows == ["shell", "devserver"]
        assert any("recreated" in n and "tmux" in n for n in b.notes()), b.notes()
    finally:
        b.close()


def test_resume_without_any_tmux_snapshot_says_so(
    tmp_path: Path, state_dir: Path, tmux_server: PrivateTmux
) -> None:
    ws = make_workspace(tmp_path / "ws", {"src/app.py": APP})
    nv = editor(tmp_path / "home", ws, state_dir, tmux_server, defaults=True)
    try:
        nv.start("src/app.py")
        wait_client(nv, "src/app.py")
        nv.run("Tether resume")
        result = retry_until(lambda: events(nv, "TetherResume"), timeout=30, what="TetherResume")[0]["result"]
        assert result.get("terminal") is None  # JSON null arrives as nil
        assert "no snapshot" in result["noTerminal"]
        note = next(n for n in nv.notes() if "resume" in n or "nothing" in n)
        assert "no snapshot" in note and "tmux" in note, nv.notes()
    finally:
        nv.close()


def test_write_then_quit_at_once_keeps_the_save_checkpoint(tmp_path: Path, state_dir: Path) -> None:
    ws = make_workspace(tmp_path / "ws", {"src/app.py": APP})
    # A long debounce: only the flush at exit can have made the checkpoint.
    nv = editor(
        tmp_path / "home",
        ws,
        state_dir,
        None,
        defaults=True,
        init_options={"saveDebounceMs": 5000},
    )
    try:
        nv.start("src/app.py")
        wait_client(nv, "src/app.py")
        nv.wait("(require('tether').status() or {}).state == 'idle'", timeout=20, what="baseline done")
        servers = nv.server_pids()
        nv.lua("vim.api.nvim_buf_set_lines(0, 0, 1, false, { 'x_1 = \"SAVED THEN QUIT\"' })")
        # `:w` and `:qa!` in one go, as typed `:w | qa!`.
        nv.lua("vim.schedule(function() vim.cmd('write') vim.cmd('qa!') end)")
        assert nv.proc is not None
        nv.proc.wait(timeout=15)
        retry_until(lambda: not any(pid_alive(p) for p in servers), timeout=15, what="server exit")
    finally:
        nv.close()
    assert (ws / "src/app.py").read_text().startswith('x_1 = "SAVED THEN QUIT"')
    with Store.open(ws, state_dir) as store:
        latest = store.latest()
        assert latest is not None and latest.trigger == "save", latest
        assert list(latest.files) == ["src/app.py"]
        entry = store.entry_at(latest.id, "src/app.py")
        assert entry is not None and b"SAVED THEN QUIT" in store.read_blob(entry.hash)
