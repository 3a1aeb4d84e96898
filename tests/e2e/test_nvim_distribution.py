"""The Neovim plugin as users install and wire it, in a real headless Neovim 0.11 (default options:
swap files on) against the real server:

- lazy.nvim from the repository: the one-line spec `{ 'OWNER/tether' }`, through the repository's
  lazy.lua, with the real lazy.nvim (when a checkout of it is available: it is on neither PyPI nor
  npm, so CI cannot install it; TETHER_NVIM_PLUGINS_DIR/lazy.nvim), and, everywhere, the same
  lazy.lua spec applied by hand the way lazy.nvim applies it (init, build, main + opts);
- help tags present after install, also for a copy nothing ran :helptags on;
- the `<Plug>` mappings;
- the lualine component, with the real lualine.nvim when a checkout is available
  (TETHER_NVIM_PLUGINS_DIR/lualine.nvim), and against a minimal stand-in of lualine's component
  class (tests/e2e/nvim/lualine_standin) everywhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.nvim.driver import PLUGIN, ROOT, Nvim
from tests.e2e.nvim.scenario import make_workspace, plugin_opts, wait_client
from tests.support.retry import retry_until

pytestmark = [pytest.mark.nvim, pytest.mark.timeout(180)]

TOOLS = Path(os.environ.get("TETHER_TOOLS_DIR", ROOT / ".tools"))
PLUGINS = Path(os.environ.get("TETHER_NVIM_PLUGINS_DIR", TOOLS / "nvim-plugins"))
LAZY = PLUGINS / "lazy.nvim"
LUALINE = PLUGINS / "lualine.nvim"
STANDIN = Path(__file__).resolve().parent / "nvim" / "lualine_standin"
PLUGS = [
    "<Plug>(TetherResume)",
    "<Plug>(TetherCheckpoint)",
    "<Plug>(TetherTimeline)",
    "<Plug>(TetherDiff)",
    "<Plug>(TetherStep)",
    "<Plug>(TetherStatus)",
    "<Plug>(TetherStart)",
]


def _needs(path: Path, what: str) -> None:
    if not (path / "lua").is_dir():
        pytest.skip(
            f"{what} not available at {path} (not on PyPI or npm: put a checkout there or set "
            "TETHER_NVIM_PLUGINS_DIR)"
        )


def _repository(dest: Path) -> Path:
    """A git repository laid out as Tether's: lazy.lua at the root, the plugin in neovim-client/
    (from this working tree, so uncommitted changes are what is tested)."""
    dest.mkdir(parents=True)
    shutil.copy2(ROOT / "lazy.lua", dest / "lazy.lua")
    shutil.copytree(PLUGIN, dest / "neovim-client", ignore=shutil.ignore_patterns("tags"))
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for argv in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "tether"]):
        subprocess.run(argv, cwd=dest, env=env, check=True, timeout=60)
    return dest


def _check_working(nv: Nvim, ws: Path, file: str = "main.py") -> None:
    wait_client(nv, file)
    assert nv.lua("return vim.fn.exists(':Tether')") == 2
    nv.run("Tether status")
    note = retry_until(lambda: [n for n in nv.notes() if "\nWorkspace: " in n], timeout=20, what="status")
    assert note[0].splitlines()[1] == f"Workspace: {ws}"


def _help_works(nv: Nvim) -> None:
    nv.cmd("help tether-mappings")
    assert nv.lua("return vim.fn.expand('%:t')") == "tether.txt"
    nv.cmd("helpclose")


def test_lazy_nvim_installs_the_plugin_from_the_repository(tmp_path: Path, state_dir: Path) -> None:
    """`{ url = <repository> }` and nothing else Tether-specific: lazy.nvim clones it, reads its
    lazy.lua, builds the help tags, loads the plugin and calls setup()."""
    _needs(LAZY, "lazy.nvim")
    repo = _repository(tmp_path / "src" / "tether")
    ws = make_workspace(tmp_path / "ws", {"main.py": "print('hi')\n"})
    env = {"TETHER_STATE_DIR": str(state_dir), "TETHER_LAZY_NVIM": str(LAZY), "TETHER_LAZY_REPO": str(repo)}
    opts = plugin_opts(state_dir, None)
    with Nvim(tmp_path / "home", ws, opts=opts, mode="lazy", env=env, defaults=True) as nv:
        nv.start("main.py")
        # lazy.nvim clones and builds at startup; Neovim answers requests while it waits on git.
        nv.wait(
            "vim.v.vim_did_enter == 1 and require('lazy.core.config').plugins.tether._.loaded ~= nil",
            timeout=60,
            what="lazy.nvim to install and load the plugin",
        )
        installed = nv.lua("return require('lazy.core.config').plugins.tether.dir")
        assert installed == str(tmp_path / "home" / "xdg" / "data" / "nvim" / "lazy" / "tether")
        # The build step of lazy.lua wrote the tags into the clone (lazy.nvim's own docs step
        # looks at <repository>/doc only).
        assert (Path(installed) / "neovim-client" / "doc" / "tags").is_file()
        assert nv.lua("return require('tether')._did_setup") is True
        _check_working(nv, ws)
        _help_works(nv)
        for plug in PLUGS:
            assert nv.lua(f"return vim.fn.maparg({plug!r}, 'n')") != "", plug


def test_lazy_lua_spec_applied_as_lazy_nvim_does(tmp_path: Path, state_dir: Path) -> None:
    """Without lazy.nvim: the repository's lazy.lua, run as lazy.nvim runs a plugin's spec (init
    at startup, build after install, then require(main).setup(opts))."""
    repo = _repository(tmp_path / "src" / "tether")
    tags = repo / "neovim-client" / "doc" / "tags"
    assert not tags.exists()
    ws = make_workspace(tmp_path / "ws", {"main.py": "print('hi')\n"})
    opts = plugin_opts(state_dir, None)
    with Nvim(tmp_path / "home", ws, opts=None, mode="late", env={"TETHER_STATE_DIR": str(state_dir)}) as nv:
        nv.start("main.py")
        spec = nv.lua(
            f"local s = dofile({str(repo / 'lazy.lua')!r})\n"
            "return { name = s[1], lazy = s.lazy, main = s.main, opts = s.opts,"
            " init = type(s.init), build = type(s.build) }"
        )
        assert spec == {
            "name": "tether",
            "lazy": False,
            "main": "tether",
            "opts": [],
            "init": "function",
            "build": "function",
        }
        plugin = f"{{ dir = {str(repo)!r}, name = 'tether' }}"
        nv.run(lua=f"local s = dofile({str(repo / 'lazy.lua')!r}); s.build({plugin})")
        assert tags.is_file()
        nv.run(
            lua=f"local s = dofile({str(repo / 'lazy.lua')!r}); s.init({plugin});"
            f" require(s.main).setup(vim.json.decode({json.dumps(json.dumps(opts))}))"
        )
        assert nv.lua("return vim.g.loaded_tether") == 1  # plugin/tether.lua sourced by init
        rtp = nv.lua("return vim.opt.rtp:get()")
        assert str(repo / "neovim-client") in rtp
        _check_working(nv, ws)
        _help_works(nv)


def test_help_tags_exist_after_a_plain_copy(tmp_path: Path, state_dir: Path) -> None:
    """A native package copied in place (no plugin manager, nobody ran :helptags): `:help tether`
    works at once."""
    ws = make_workspace(tmp_path / "ws", {"main.py": "print('hi')\n"})
    home = tmp_path / "home"
    start = home / "xdg" / "data" / "nvim" / "site" / "pack" / "tether" / "start" / "tether"
    shutil.copytree(PLUGIN, start, ignore=shutil.ignore_patterns("tags"))
    assert not (start / "doc" / "tags").exists()
    with Nvim(home, ws, opts={"autostart": False}, mode="native", defaults=True) as nv:
        nv.start()
        _help_works(nv)
        assert (start / "doc" / "tags").is_file()
        report = nv.lua(
            "vim.cmd('checkhealth tether')\n"
            "return table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\\n')"
        )
        assert f"help tags present in {start / 'doc'}" in report, report


def test_plug_mappings_run_the_commands(tmp_path: Path, state_dir: Path) -> None:
    ws = make_workspace(tmp_path / "ws", {"main.py": "print('hi')\n"})
    opts = plugin_opts(state_dir, None)
    with Nvim(
        tmp_path / "home", ws, opts=opts, env={"TETHER_STATE_DIR": str(state_dir)}, defaults=True
    ) as nv:
        nv.start("main.py")
        wait_client(nv, "main.py")
        for plug in PLUGS:
            desc = nv.lua(f"return vim.fn.maparg({plug!r}, 'n', false, true).desc")
            assert desc and desc.startswith("Tether: "), (plug, desc)
        # As a user's mapping does: `nmap <leader>ts <Plug>(TetherStatus)`, then the keys.
        nv.cmd("nmap ,ts <Plug>(TetherStatus)")
        nv.run(lua="vim.api.nvim_feedkeys(',ts', 'mx', false)")
        retry_until(lambda: [n for n in nv.notes() if "\nWorkspace: " in n], timeout=20, what="status")
        nv.run(lua="vim.api.nvim_feedkeys(vim.keycode('<Plug>(TetherCheckpoint)'), 'mx', false)")
        retry_until(
            lambda: [n for n in nv.notes() if re.search(r"checkpoint #\d+ \(\d+ files? changed\)", n)],
            timeout=20,
            what="the checkpoint message",
        )
    help_text = (PLUGIN / "doc" / "tether.txt").read_text()
    for plug in PLUGS:
        assert f"*{plug}*" in help_text, f"{plug} is not documented in doc/tether.txt"


def _lualine_status(nv: Nvim) -> str:
    return str(
        nv.lua(
            "require('lualine').refresh({ force = true, place = { 'statusline' } })\n"
            "local stl = vim.wo.statusline ~= '' and vim.wo.statusline or vim.go.statusline\n"
            "return vim.api.nvim_eval_statusline(stl, { winid = vim.api.nvim_get_current_win() }).str"
        )
    )


def test_lualine_component_with_real_lualine(tmp_path: Path, state_dir: Path) -> None:
    _needs(LUALINE, "lualine.nvim")
    ws = make_workspace(tmp_path / "ws", {"main.py": "print('hi')\n"})
    opts = plugin_opts(state_dir, None)
    env = {"TETHER_STATE_DIR": str(state_dir), "TETHER_TEST_RTP": str(LUALINE)}
    with Nvim(tmp_path / "home", ws, opts=opts, env=env, defaults=True) as nv:
        nv.start("main.py")
        nv.cmd(
            "lua require('lualine').setup({ options = { icons_enabled = false, theme = 'auto' },"
            " sections = { lualine_a = {}, lualine_b = {}, lualine_c = {}, lualine_x = { 'tether' },"
            " lualine_y = {}, lualine_z = {} } })"
        )
        wait_client(nv, "main.py")
        line = str(
            retry_until(
                lambda: (s := _lualine_status(nv)) and "Tether: #1 · " in s and s,
                timeout=30,
                what="lualine's Tether",
            )
        )
        assert "Tether: #1 · just now" in line
        client = nv.lua("return vim.lsp.get_clients({ name = 'tether' })[1].id")
        status = nv.lua("return require('tether').status(0)")
        nv.notify_handler("tether/status", {**status, "resumeAvailable": True}, client_id=client)
        line = _lualine_status(nv)
        assert "Tether: resume available" in line
        # Coloured as a warning: the highlight at the label has DiagnosticWarn's foreground.
        fg = nv.lua(
            "local stl = vim.wo.statusline ~= '' and vim.wo.statusline or vim.go.statusline\n"
            "local r = vim.api.nvim_eval_statusline(stl, { highlights = true })\n"
            "local col = r.str:find('Tether: resume', 1, true) - 1\n"
            "local group\n"
            "for _, h in ipairs(r.highlights) do if h.start <= col then group = h.group end end\n"
            "return { vim.api.nvim_get_hl(0, { name = group, link = false }).fg,"
            " vim.api.nvim_get_hl(0, { name = 'DiagnosticWarn', link = false }).fg }"
        )
        assert fg[0] == fg[1], fg


def test_lualine_component_against_a_stand_in(tmp_path: Path, state_dir: Path) -> None:
    """The component's contract with lualine (extend(), init(), update_status(), a colour function)
    exercised through tests/e2e/nvim/lualine_standin, a minimal stand-in of lualine's component
    class: lualine.nvim cannot be installed in CI."""
    with Nvim(
        tmp_path / "home", tmp_path, opts={"autostart": False}, env={"TETHER_TEST_RTP": str(STANDIN)}
    ) as nv:
        nv.start()
        got = nv.lua(
            "local C = require('lualine.components.tether')\n"
            "local c = C({ self = { section = 'x' } })\n"
            "local function status(p)\n"
            "  require('tether.handlers')['tether/status'](nil, vim.tbl_extend('force', {"
            " workspace = '/w', state = 'idle', error = vim.NIL, lastCheckpoint = vim.NIL,"
            " filesInProgress = 0, dirtyBuffers = 0, tmux = vim.NIL, resumeAvailable = false,"
            " text = '#3 · 2m ago' }, p), { client_id = 1 })\n"
            "end\n"
            "local out = { empty = c:update_status() }\n"
            "status({})\n"
            "out.idle = c:update_status(); out.idle_color = c.options.color()\n"
            "status({ resumeAvailable = true })\n"
            "out.resume = c:update_status(); out.resume_color = c.options.color()\n"
            "status({ state = 'error', error = 'disk full' })\n"
            "out.error = c:update_status(); out.error_color = c.options.color()\n"
            "local p = C({ self = { section = 'x' }, prefix = '' })\n"
            "out.no_prefix = p:update_status()\n"
            "local function fg(g)\n"
            "  return ('#%06x'):format(vim.api.nvim_get_hl(0, { name = g, link = false }).fg)\n"
            "end\n"
            "out.warn, out.err = fg('DiagnosticWarn'), fg('DiagnosticError')\n"
            "out.click = type(c.options.on_click)\n"
            "return out"
        )
    assert got["empty"] == ""
    assert got["idle"] == "Tether: #3 · 2m ago"
    assert "idle_color" not in got
    assert got["resume"] == "Tether: resume available"
    assert got["resume_color"] == {"fg": got["warn"]}
    assert got["error"] == "Tether: error: disk full"
    assert got["error_color"] == {"fg": got["err"]}
    assert got["no_prefix"] == "error: disk full"
    assert got["click"] == "function"
