"""Workspaces and Neovim instances wired to the real `tether lsp`, a private store and private tmux."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.e2e.nvim.driver import TETHER, Nvim
from tests.support.retry import retry_until
from tests.support.tmuxsrv import PrivateTmux


def make_workspace(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True, timeout=30)
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root.resolve()


def plugin_opts(
    state_dir: Path, tmux: PrivateTmux | None, init_options: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    # The store and the tmux socket come from the environment (editor() sets it): the server
    # ignores them in initializationOptions, which a repository could supply.
    init: dict[str, Any] = {**(init_options or {}), "tmux": {"enabled": bool(tmux)}}
    opts: dict[str, Any] = {"cmd": [TETHER, "lsp"], "init_options": init}
    opts.update(extra)
    return opts


def editor(
    home: Path,
    workspace: Path,
    state_dir: Path,
    tmux: PrivateTmux | None,
    defaults: bool = False,
    init_options: dict[str, Any] | None = None,
    **extra: Any,
) -> Nvim:
    """``defaults``: Neovim's default options (swap files on), not the test's ``-n``;
    ``init_options``: the server's options (merged into the test's)."""
    env = {"TETHER_STATE_DIR": str(state_dir)}
    if tmux:
        env["TETHER_TMUX_SOCKET"] = tmux.socket_path
    opts = plugin_opts(state_dir, tmux, init_options, **extra)
    return Nvim(home, workspace, opts=opts, env=env, defaults=defaults)


def wait_client(nv: Nvim, bufname: str | None = None, timeout: float = 30) -> None:
    """Until a tether client is initialized (and attached to ``bufname`` when given)."""
    if bufname is None:
        nv.wait(
            "(function() local c = vim.lsp.get_clients({ name = 'tether' })[1]"
            " return c ~= nil and c.initialized end)()",
            timeout=timeout,
            what="tether client to initialize",
        )
        return
    nv.wait(
        f"(function() local b = vim.fn.bufnr({bufname!r}) if b < 0 then return false end"
        " local c = vim.lsp.get_clients({ name = 'tether', bufnr = b })[1]"
        " return c ~= nil and c.initialized end)()",
        timeout=timeout,
        what=f"tether client attached to {bufname}",
    )


def float_lines(nv: Nvim) -> list[str] | None:
    return nv.lua(
        "for _, w in ipairs(vim.api.nvim_list_wins()) do"
        " if vim.api.nvim_win_get_config(w).relative ~= '' then"
        " return vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(w), 0, -1, false) end end"
        " return nil"
    )


def events(nv: Nvim, name: str) -> list[Any]:
    return nv.lua(
        f"return vim.tbl_map(function(e) return e.data end,"
        f" vim.tbl_filter(function(e) return e.name == {name!r} end, T.events))"
    )


def checkpoint(nv: Nvim, message: str) -> int:
    """`:Tether checkpoint MESSAGE`, and the id of the checkpoint it reported."""
    nv.run(f"Tether checkpoint {message}")
    found = retry_until(
        lambda: [e for e in events(nv, "TetherCheckpoint") if e["checkpoint"].get("message") == message],
        timeout=20,
        what=f"checkpoint {message!r}",
    )
    return int(found[0]["checkpoint"]["id"])
