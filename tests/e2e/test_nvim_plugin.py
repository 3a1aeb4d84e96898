"""The Neovim plugin on its own, in a real headless Neovim 0.11: configuration, :Tether parsing and
completion, :checkhealth, and the notification handlers fed with protocol payloads.

The end-to-end story against the real server is in test_nvim_resume.py.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.nvim.driver import TETHER, Nvim, descendants
from tests.e2e.nvim.scenario import float_lines
from tests.support.retry import retry_until

pytestmark = pytest.mark.nvim

SUBCOMMANDS = ["checkpoint", "diff", "restore", "resume", "start", "status", "step", "timeline"]


@pytest.fixture
def nvim_factory(tmp_path: Path) -> Iterator[object]:
    started: list[Nvim] = []

    def make(opts: object = None, mode: str = "setup", env: dict[str, str] | None = None) -> Nvim:
        # No root marker in cwd: nothing here starts a server unless a test asks for it.
        cwd = tmp_path / "plain"
        cwd.mkdir(exist_ok=True)
        nv = Nvim(tmp_path / f"home{len(started)}", cwd, opts=opts, mode=mode, env=env)
        started.append(nv)
        return nv.start()

    yield make
    for nv in started:
        nv.close()


def test_bad_setup_values_give_one_message_and_defaults(nvim_factory) -> None:
    nv = nvim_factory(
        {
            "autostart": False,
            "cmd": [],
            "timeline_limit": "many",
            "terminal": {"size": -3, "position": "botright | !touch /tmp/x"},
            "next_steps": 5,
            "unfocused_documents": "tabs",
            "bogus": True,
        }
    )
    msgs = nv.messages()
    assert "tether: configuration problems, defaults used instead" in msgs
    for expected in (
        "cmd: expected non-empty list of strings",
        'timeline_limit: expected positive integer, got "many"',
        "terminal.size: expected positive integer, got -3 (using default 12)",
        "terminal.position: expected window modifiers",
        "next_steps: expected table, got 5 (using defaults)",
        "unfocused_documents: expected one of 'buffer', 'split', got \"tabs\"",
        "bogus: unknown option (ignored)",
    ):
        assert expected in msgs, f"{expected!r} not in {msgs!r}"
    cfg = nv.lua("return require('tether.config').get()")
    assert cfg["cmd"] == ["tether", "lsp"]
    assert cfg["timeline_limit"] == 50
    assert cfg["terminal"]["size"] == 12
    assert cfg["terminal"]["position"] == "botright"
    assert cfg["next_steps"]["max_width"] == 90
    assert cfg["unfocused_documents"] == "buffer"
    # The LSP config the plugin hands to Neovim carries the defaults, not the bad values.
    assert nv.lua("return vim.lsp.config.tether.cmd") == ["tether", "lsp"]


def test_good_values_are_kept_without_messages(nvim_factory) -> None:
    nv = nvim_factory(
        {
            "autostart": False,
            "cmd": [TETHER, "lsp"],
            "terminal": {"size": 7, "position": "vertical botright"},
            "statusline": {"prefix": "TT"},
            "init_options": {"checkpointIntervalSeconds": 0},
        }
    )
    assert "configuration problems" not in nv.messages()
    lsp = nv.lua(
        "local c = vim.lsp.config.tether; return { cmd = c.cmd, markers = c.root_markers,"
        " filetypes = c.filetypes, init = vim.json.encode(c.init_options) }"
    )
    assert lsp["cmd"] == [TETHER, "lsp"]
    assert lsp["markers"] == [".git", ".agent-session.json"]
    assert lsp.get("filetypes") is None  # every filetype
    assert json.loads(lsp["init"]) == {"checkpointIntervalSeconds": 0}
    assert nv.lua("return require('tether.config').get().terminal")["size"] == 7


def test_empty_init_options_go_out_as_an_object(nvim_factory) -> None:
    nv = nvim_factory({"autostart": False})
    assert nv.lua("return vim.json.encode(vim.lsp.config.tether.init_options)") == "{}"


def test_vim_g_config_is_validated_without_setup(nvim_factory) -> None:
    nv = nvim_factory({"autostart": False, "statusline": {"prefix": 7}}, mode="g")
    assert nv.lua("return require('tether')._did_setup") is True
    assert "statusline.prefix: expected string, got 7" in nv.messages()
    assert nv.lua("return require('tether.config').get().statusline.prefix") == "Tether"


def test_vim_g_that_is_not_a_table(nvim_factory) -> None:
    nv = nvim_factory("yes", mode="g")
    assert 'vim.g.tether: expected table, got "yes" (ignored)' in nv.messages()
    assert nv.lua("return require('tether.config').get().cmd") == ["tether", "lsp"]


def test_command_completion_lists_subcommands(nvim_factory) -> None:
    nv = nvim_factory({"autostart": False})
    assert nv.lua("return vim.fn.getcompletion('Tether ', 'cmdline')") == SUBCOMMANDS
    assert nv.lua("return vim.fn.getcompletion('Tether re', 'cmdline')") == ["restore", "resume"]
    assert nv.lua("return vim.fn.getcompletion('Tether st', 'cmdline')") == ["start", "status", "step"]
    assert nv.lua("return vim.fn.getcompletion('Tether checkpoint ', 'cmdline')") == []


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("Tether frobnicate", 'unknown subcommand "frobnicate"'),
        ("Tether restore abc", 'restore: checkpoint must be a positive number, got "abc"'),
        ("Tether restore 0", 'checkpoint must be a positive number, got "0"'),
        ("Tether restore", "restore needs a checkpoint number"),
        ("Tether diff 1.5", 'diff: checkpoint must be a positive number, got "1.5"'),
        ("Tether step --next x", "say what was done"),
        ("Tether step did it --frob x", "unknown option --frob"),
    ],
)
def test_bad_command_arguments_get_clear_messages(nvim_factory, command: str, message: str) -> None:
    nv = nvim_factory({"autostart": False})
    nv.run(command)
    notes = nv.notes()
    assert any(message in n for n in notes), notes
    assert descendants(nv.pid) == []  # nothing was started


def test_step_arguments_parse_like_the_cli(nvim_factory) -> None:
    nv = nvim_factory({"autostart": False})
    parsed = nv.lua(
        "return require('tether.commands').parse_step('wrote  tests --next fix lint --next update docs"
        " --task refactor auth')"
    )
    assert parsed == {"done": "wrote tests", "next": ["fix lint", "update docs"], "task": "refactor auth"}


def test_commands_outside_a_workspace_say_so(nvim_factory) -> None:
    nv = nvim_factory({"autostart": False, "cmd": [TETHER, "lsp"]})
    nv.run("Tether status")
    assert any("no workspace here: none of .git, .agent-session.json found" in n for n in nv.notes())
    assert descendants(nv.pid) == []


def test_open_terminal_refuses_commands_not_allowed(nvim_factory, tmp_path: Path) -> None:
    nv = nvim_factory({"autostart": False})
    marker = tmp_path / "ran"
    nv.run(
        lua="require('tether.handlers')['tether/openTerminal'](nil, { name = 'x', cwd = '/',"
        f" argv = {{ 'sh', '-c', 'touch {marker}' }} }}, {{ client_id = 0 }})"
    )
    assert any("refusing to run 'sh' from the server" in n for n in nv.notes())
    assert nv.lua("return #vim.api.nvim_list_wins()") == 1
    assert descendants(nv.pid) == []
    assert not marker.exists()
    # Malformed payloads are reported, not crashed on.
    nv.run(lua="require('tether.handlers')['tether/openTerminal'](nil, { argv = 'tmux' }, { client_id = 0 })")
    assert any("openTerminal without a valid argv" in n for n in nv.notes())


def test_open_terminal_runs_allowed_argv_in_a_split(nvim_factory, tmp_path: Path) -> None:
    nv = nvim_factory({"autostart": False, "terminal": {"allowed_commands": ["sh"], "size": 8}})
    marker = tmp_path / "term-ran"
    nv.lua(
        "require('tether.handlers')['tether/openTerminal'](nil, { name = 'demo', cwd = '"
        + str(tmp_path)
        + f"', argv = {{ 'sh', '-c', 'pwd > {marker}; exec sleep 60' }} }}, {{ client_id = 0 }})"
    )
    nv.remember_children()
    term = nv.wait(
        "(function() for _, b in ipairs(vim.api.nvim_list_bufs()) do"
        " if vim.bo[b].buftype == 'terminal' and vim.b[b].tether_terminal == 'demo' then return b end"
        " end end)()",
        what="terminal buffer",
    )
    info = nv.lua(
        f"local w = vim.fn.win_findbuf({term})[1]; return {{ height = vim.api.nvim_win_get_height(w),"
        " focus_kept = vim.api.nvim_get_current_win() ~= w, wins = #vim.api.nvim_list_wins() }"
    )
    assert info == {"height": 8, "focus_kept": True, "wins": 2}
    retry_until(lambda: marker.exists() and marker.read_text().strip(), what="terminal job output")
    assert marker.read_text().strip() == str(tmp_path)

    # The same session again (a second resume or :Tether start) reuses the live terminal, and
    # brings its window back if it was closed, instead of stacking a second client.
    count_terms = (
        "return #vim.tbl_filter(function(b) return vim.bo[b].buftype == 'terminal' end,"
        " vim.api.nvim_list_bufs())"
    )
    again = {"name": "demo", "cwd": str(tmp_path), "argv": ["sh", "-c", f"pwd > {marker}; exec sleep 60"]}
    nv.notify_handler("tether/openTerminal", again)
    assert nv.lua(count_terms) == 1
    nv.lua(f"vim.api.nvim_win_close(vim.fn.win_findbuf({term})[1], true)")
    assert nv.lua("return #vim.api.nvim_list_wins()") == 1
    nv.notify_handler("tether/openTerminal", again)
    assert nv.lua(count_terms) == 1
    assert nv.lua(f"return #vim.fn.win_findbuf({term})") == 1


def test_next_steps_float_shows_payload(nvim_factory) -> None:
    nv = nvim_factory({"autostart": False})
    payload = {
        "task": "refactor user authentication",
        "nextSteps": ["update tests", "check error handling"],
        "filesInProgress": ["auth.js"],
        "runs": [
            {
                "command": "pytest",
                "exitCode": 0,
                "checkpoint": 12,
                "stale": True,
                "changedSince": ["auth.js"],
                "summary": "tests passed at checkpoint 12; 1 file changed since",
            }
        ],
        "summary": "",
    }
    # Unsolicited (no :Tether resume/step just run): shown without taking focus, and gone once
    # the cursor moves on.
    nv.lua("vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'a', 'b', 'c' })")
    nv.notify_handler("tether/showNextSteps", payload)
    assert float_lines(nv) is not None
    assert nv.lua("return vim.api.nvim_win_get_config(0).relative") == ""
    nv.run(lua="vim.api.nvim_win_set_cursor(0, { 3, 0 })")
    retry_until(lambda: float_lines(nv) is None, timeout=10, what="unfocused float to close")
    assert nv.lua("return #vim.api.nvim_list_wins()") == 1

    # Answering the user's own command: focused, closed with q.
    nv.lua("require('tether.state').user_asked()")
    nv.notify_handler("tether/showNextSteps", payload)
    assert nv.lua("return vim.api.nvim_win_get_config(0).relative") == "editor"
    lines = nv.lua(
        "for _, w in ipairs(vim.api.nvim_list_wins()) do"
        " if vim.api.nvim_win_get_config(w).relative ~= '' then"
        " return vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(w), 0, -1, false) end end"
    )
    assert lines[:2] == ["# Task", "refactor user authentication"]
    assert "1. update tests" in lines
    assert "2. check error handling" in lines
    assert "- auth.js" in lines
    assert "- [stale] tests passed at checkpoint 12; 1 file changed since" in lines
    assert nv.lua("return #vim.tbl_filter(function(e) return e.name == 'TetherNextSteps' end, T.events)") == 2
    # q closes it; malformed payloads do not raise.
    nv.lua("vim.api.nvim_feedkeys('q', 'x', false)")
    assert nv.lua("return #vim.api.nvim_list_wins()") == 1
    nv.notify_handler("tether/showNextSteps", {"task": 5, "nextSteps": "x", "runs": [{}]})
    assert "(none recorded)" in nv.lua(
        "return vim.api.nvim_buf_get_lines(vim.api.nvim_get_current_buf(), 0, -1, false)"
    )


def test_statusline_follows_status_notifications(nvim_factory) -> None:
    nv = nvim_factory({"autostart": False, "statusline": {"prefix": "Tether"}})
    assert nv.statusline() == ""

    def status(**kw: object) -> None:
        base = {
            "workspace": "/w",
            "state": "idle",
            "error": None,
            "lastCheckpoint": None,
            "filesInProgress": 0,
            "dirtyBuffers": 0,
            "tmux": None,
            "resumeAvailable": False,
            "text": "",
        }
        base.update(kw)
        nv.notify_handler("tether/status", base, client_id=1)

    status()
    assert nv.statusline() == "Tether: no checkpoint yet"
    status(resumeAvailable=True, text="3m ago · 2 files")
    assert nv.statusline() == "Tether: resume available"
    cp = {
        "id": 4,
        "time": "2026-01-01T00:00:00Z",
        "trigger": "save",
        "message": None,
        "files": [],
        "parent": 3,
    }
    status(lastCheckpoint=cp, text="2m ago · 4 files")
    assert nv.statusline() == "Tether: 2m ago · 4 files"
    status(state="error", error="disk full", lastCheckpoint=cp, text="2m ago · 4 files")
    assert nv.statusline() == "Tether: error: disk full"
    # Each new checkpoint is announced once, whichever way it arrives.
    status(lastCheckpoint={**cp, "id": 5}, text="just now · 4 files")
    status(lastCheckpoint={**cp, "id": 5}, text="just now · 4 files")
    nv.run(lua=f"require('tether.state').note_checkpoint(1, vim.json.decode({json.dumps(json.dumps(cp))}))")
    events = nv.lua("return vim.tbl_map(function(e) return e.name end, T.events)")
    assert events.count("TetherStatus") == 6
    announced = nv.lua("return vim.tbl_filter(function(e) return e.name == 'TetherCheckpoint' end, T.events)")
    assert [e["data"]["checkpoint"]["id"] for e in announced] == [4, 5]
    # A client connecting to a workspace with history: its first checkpoint is a baseline, not news.
    nv.notify_handler("tether/status", {"lastCheckpoint": {**cp, "id": 9}, "state": "idle"}, client_id=2)
    announced = nv.lua("return vim.tbl_filter(function(e) return e.name == 'TetherCheckpoint' end, T.events)")
    assert len(announced) == 2


def test_checkhealth_reports_server_tmux_and_state_dir(nvim_factory, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    nv = nvim_factory({"autostart": False, "cmd": [TETHER, "lsp"]}, env={"TETHER_STATE_DIR": str(state)})
    nv.cmd("checkhealth tether")
    report = "\n".join(nv.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)"))
    version = subprocess.run([TETHER, "--version"], capture_output=True, text=True, check=True, timeout=30)
    tmux_v = subprocess.run(["tmux", "-V"], capture_output=True, text=True, check=True, timeout=10)
    assert f"OK found {TETHER}" in report
    assert f"OK version: {version.stdout.strip()}" in report
    assert f"OK {tmux_v.stdout.strip()}" in report
    assert f"OK {state} ($TETHER_STATE_DIR) is writable and private" in report
    assert "ERROR" not in report


def test_checkhealth_reports_problems(nvim_factory, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "state-file"
    not_a_dir.write_text("x")
    nv = nvim_factory(
        {
            "autostart": False,
            "cmd": ["/nonexistent/tether", "lsp"],
            "cmd_env": {"TETHER_STATE_DIR": str(not_a_dir)},
        }
    )
    nv.cmd("checkhealth tether")
    report = "\n".join(nv.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)"))
    assert "ERROR `/nonexistent/tether` not found or not executable" in report
    assert f"ERROR {not_a_dir} ($TETHER_STATE_DIR) is not a directory" in report


def test_help_file_has_tags(nvim_factory, tmp_path: Path) -> None:
    import shutil

    from tests.e2e.nvim.driver import PLUGIN

    doc = tmp_path / "doc"
    shutil.copytree(PLUGIN / "doc", doc)
    nv = nvim_factory({"autostart": False})
    nv.cmd(f"helptags {doc}")  # raises on duplicate tags or a malformed file
    tags = {line.split("\t")[0] for line in (doc / "tags").read_text().splitlines()}
    assert {"tether", ":Tether", ":Tether-resume", "tether.statusline()", "tether-events"} <= tags
    nv.lua(f"vim.opt.runtimepath:prepend({str(tmp_path)!r})")
    nv.cmd("help :Tether-restore")
    assert nv.lua("return vim.fn.expand('%:t')") == "tether.txt"


def test_modules_load_without_leaking_globals(nvim_factory) -> None:
    """Every module loads cleanly and none assigns a global by mistake (a missing `local`)."""
    from tests.e2e.nvim.driver import PLUGIN

    nv = nvim_factory({"autostart": False})
    modules = sorted(p.stem for p in (PLUGIN / "lua" / "tether").glob("*.lua"))
    assert {"init", "config", "protocol", "handlers", "ui", "commands", "health", "cursor", "state"} <= set(
        modules
    )
    # Each file runs in its own environment that records global assignments (LuaJIT setfenv).
    leaked = nv.lua(
        "local leaked = {}\n"
        "local files = vim.api.nvim_get_runtime_file('lua/tether/*.lua', true)\n"
        "vim.list_extend(files, vim.api.nvim_get_runtime_file('lsp/tether.lua', true))\n"
        "vim.list_extend(files, vim.api.nvim_get_runtime_file('plugin/tether.lua', true))\n"
        "for _, f in ipairs(files) do\n"
        "  local env = setmetatable({}, { __index = _G, __newindex = function(t, k, v)\n"
        "    leaked[#leaked + 1] = vim.fs.basename(f) .. ':' .. k; rawset(t, k, v) end })\n"
        "  local chunk = assert(loadfile(f))\n"
        "  setfenv(chunk, env)\n"
        "  chunk()\n"
        "end\n"
        "return { leaked = leaked, n = #files }"
    )
    assert leaked["n"] == len(modules) + 2
    leaked = leaked["leaked"]
    assert leaked == []


@pytest.mark.parametrize(
    ("argv", "allowed"),
    [
        (["tmux", "-S", "/tmp/x/s", "attach-session", "-t", "=proj"], True),
        (["/usr/bin/tmux", "attach", "-t", "proj"], True),
        (["tmux", "-S", "/tmp/x/s", "new-session", "touch /tmp/pwned"], False),
        (["tmux", "attach-session", "-t", "proj", ";", "run-shell", "touch /tmp/pwned"], False),
        (["tmux", "attach-session", "-t", "proj\\;", "run-shell", "x"], False),
        (["tmux", "-S"], False),
        (["tmux"], False),
    ],
)
def test_tmux_argv_must_only_attach(nvim_factory, argv: list[str], allowed: bool) -> None:
    nv = nvim_factory({"autostart": False})
    assert (
        nv.lua(f"return require('tether.ui').is_tmux_attach(vim.json.decode({json.dumps(json.dumps(argv))}))")
        is allowed
    )
    if not allowed:
        nv.notify_handler("tether/openTerminal", {"name": "x", "cwd": "/", "argv": argv})
        assert any("refusing to run a tmux command other than attach-session" in n for n in nv.notes())
        assert descendants(nv.pid) == []


def test_resume_result_names_the_conversation_of_each_agent_pane(nvim_factory) -> None:
    """`tether.resume`'s result as the server sends it (terminal.agents): the message says which
    conversation each agent pane resumes and whether it waits for Enter."""
    nv = nvim_factory({"autostart": False})
    sid = "1b2c3d4e-0000-4000-8000-000000000001"
    result = {
        "checkpoint": 4,
        "opened": [],
        "restoredBuffers": [],
        "skippedBuffers": [],
        "nextSteps": [],
        "terminal": {
            "session": "tether-x-123456",
            "recreated": True,
            "agents": [
                {"window": 3, "pane": "p1", "agent": "claude", "conversation": sid, "action": "typed",
                 "command": ["claude", "--resume", sid]},
                {"window": 4, "pane": "p2", "agent": "aider", "conversation": None, "action": "ran",
                 "command": ["aider", "--restore-chat-history"]},
            ],
        },
    }  # fmt: skip
    nv.lua(
        "local t = require('tether'); local r = vim.json.decode(" + json.dumps(json.dumps(result)) + ")\n"
        "t.exec = function(_, _, cb) cb(r, { id = 1 }) end\n"
        "t.resume()\nreturn true"
    )
    msgs = nv.messages()
    assert f"claude resumes conversation {sid} (window 3, press Enter to run)" in msgs
    assert "aider resumes its chat history (window 4, running)" in msgs
