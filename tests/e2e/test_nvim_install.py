"""The README's install recipes for a plugin living in a repository subfolder, tried for real:
a native package (pack/*/start symlink + vim.g.tether) and lazy.nvim's way (the subfolder added to
'runtimepath' after startup, then setup()), each reaching a working server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.nvim.driver import PLUGIN, Nvim
from tests.e2e.nvim.scenario import make_workspace, plugin_opts, wait_client
from tests.support.retry import retry_until

pytestmark = [pytest.mark.nvim, pytest.mark.timeout(120)]


def _check_working(nv: Nvim, ws: Path) -> None:
    wait_client(nv, "main.py")
    assert nv.lua("return vim.fn.exists(':Tether')") == 2
    nv.run("Tether status")
    note = retry_until(lambda: [n for n in nv.notes() if "\nWorkspace: " in n], timeout=20, what="status")
    assert note[0].splitlines()[1] == f"Workspace: {ws}"
    retry_until(lambda: nv.statusline().startswith("Tether: "), timeout=20, what="statusline")


def test_native_package_with_vim_g(tmp_path: Path, state_dir: Path) -> None:
    ws = make_workspace(tmp_path / "ws", {"main.py": "print('hi')\n"})
    home = tmp_path / "home"
    start = home / "xdg" / "data" / "nvim" / "site" / "pack" / "tether" / "start"
    start.mkdir(parents=True)
    (start / "tether").symlink_to(PLUGIN)  # ln -s …/neovim-client …/pack/tether/start/tether
    opts = plugin_opts(state_dir, None)
    with Nvim(home, ws, opts=opts, mode="native", env={"TETHER_STATE_DIR": str(state_dir)}) as nv:
        nv.start("main.py")
        found = nv.lua("return vim.api.nvim_get_runtime_file('lsp/tether.lua', true)")
        assert found == [str(start / "tether" / "lsp" / "tether.lua")]
        assert nv.lua("return require('tether')._did_setup") is True  # vim.g.tether alone
        _check_working(nv, ws)


def test_lazy_style_rtp_append_then_setup(tmp_path: Path, state_dir: Path) -> None:
    ws = make_workspace(tmp_path / "ws", {"main.py": "print('hi')\n"})
    opts = plugin_opts(state_dir, None)
    with Nvim(tmp_path / "home", ws, opts=opts, mode="late", env={"TETHER_STATE_DIR": str(state_dir)}) as nv:
        nv.start("main.py")
        # plugin/tether.lua was never sourced: setup() alone must give :Tether and the server.
        assert nv.lua("return vim.g.loaded_tether") is None
        _check_working(nv, ws)
