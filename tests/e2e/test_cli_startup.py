"""A command imports only what it needs: checked in a fresh interpreter, as agents run it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
from tether.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stdout = sys.__stdout__
print("\\nMODULES" + json.dumps(sorted(m for m in sys.modules)))
"""

HEAVY = (
    "tether.store",
    "tether.store.db",
    "tether.tmux.link",
    "tether.scan",
    "libtmux",
    "pygls",
    "lsprotocol",
    "sqlite3",
    "psutil",
)
# The MCP SDK (and pydantic under it) costs about half a second: `tether mcp` alone imports it.
MCP = {"mcp", "pydantic", "tether.mcp", "anyio"}


# Kept off the paths an agent runs after every tool call (`tether hook` finding nothing changed):
# the hand-off text and the tmux link (a checkpoint imports them), ctypes (the atomic exchange
# of .agent-session.json, imported when it is written), subprocess, platformdirs (asked only
# on macOS and Windows: tether.paths.user_dir), the git plumbing, the editor model,
# shutil (argparse's formatter asks it for the terminal width: cli/parser.py does without), the
# running agents' probes; argparse (a hook's command line is read without it: cli/hook.py);
# hashlib, whose OpenSSL load costs more than the digests it would make (tether/sha.py);
# dataclasses (inspect under it) and typing: records are tether/record.py's, typing names are
# imported under TYPE_CHECKING; concurrent.futures, for the store's streamed writes only.
STARTUP_COSTS = {"dataclasses", "inspect", "typing", "concurrent.futures"}
NOT_ON_THE_HOOK_PATH = STARTUP_COSTS | {
    "argparse",
    "hashlib",
    "_hashlib",
    "gettext",
    "tether.cli.agent",
    "tether.cli.parser",
    "tether.agent.handoff",
    "tether.tmux.link",
    "tether.tmux.user",
    "tether.tmux.snapshot",
    "tether.remote",
    "tether.editor.documents",
    "ctypes",
    "subprocess",
    "platformdirs",
    "tempfile",
    "shutil",
    "glob",
    "shlex",
    "tether.conversations.probe",
    "pygls",
}


def _modules(*argv: str, cwd: str | None = None, stdin: str | None = None) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        input=stdin if stdin is not None else "",
    ).stdout
    return set(json.loads(out.rpartition("MODULES")[2]))


@pytest.mark.parametrize("argv", [("--version",), ("--help",), ("step", "--help"), ("mcp", "--help")])
def test_version_and_help_import_no_store_tmux_or_lsp(argv: tuple[str, ...]) -> None:
    loaded = _modules(*argv)
    assert not MCP & loaded
    if argv == ("step", "--help"):
        assert "tether.cli.agent" in loaded
        assert not {"tether.tmux.link", "tether.cli.remote", "tether.cli.session", "pygls"} & loaded
    elif argv == ("mcp", "--help"):
        assert "tether.cli.mcp" in loaded
    else:
        assert not set(HEAVY) & loaded
        assert not {m for m in loaded if m.startswith("tether.cli.")} - {"tether.cli.parser"}
        assert not {"shutil", "subprocess", "dataclasses", "logging", "importlib.metadata"} & loaded
    if argv == ("--version",):  # the constant in tether/__init__.py, printed before argparse
        assert not {"argparse", "gettext", "typing", "tether.cli.parser"} & loaded


def test_log_imports_neither_tmux_nor_git_plumbing(tmp_path, state_dir) -> None:  # type: ignore[no-untyped-def]
    loaded = _modules("-C", str(tmp_path), "log", cwd=str(tmp_path))
    assert "tether.store.db" in loaded  # it did open the store
    assert not {"tether.tmux.link", "libtmux", "tether.remote", "pygls"} & loaded


def test_step_status_and_checkpoint_do_not_import_the_mcp_sdk(tmp_path, state_dir) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a.txt").write_text("a\n")
    for argv in (("step", "--done", "x"), ("status",), ("checkpoint",), ("hook", "claude-code")):
        loaded = _modules("-C", str(tmp_path), *argv, cwd=str(tmp_path))
        assert "tether.store.db" in loaded, argv  # it did the work
        assert not MCP & loaded, (argv, MCP & loaded)
        assert "psutil" not in loaded, argv  # /proc answers here: psutil is for systems without it


def test_a_hook_that_finds_nothing_changed_imports_neither_tmux_nor_the_hand_off(tmp_path, state_dir) -> None:  # type: ignore[no-untyped-def]
    ws = tmp_path / "ws"  # the state dir (tmp_path/state) outside it
    (ws / ".git").mkdir(parents=True)
    (ws / "a.txt").write_text("a\n")
    event = json.dumps({"cwd": str(ws), "hook_event_name": "PostToolUse", "tool_name": "Read"})
    first = _modules("-C", str(ws), "hook", "claude-code", cwd=str(ws), stdin=event)
    assert "tether.store.db" in first and "tether.checkpoints.checkpointer" in first  # it scanned
    loaded = _modules("-C", str(ws), "hook", "claude-code", cwd=str(ws), stdin=event)
    assert "tether.scan.scanner" in loaded
    assert not NOT_ON_THE_HOOK_PATH & loaded, NOT_ON_THE_HOOK_PATH & loaded
    assert not MCP & loaded


def test_step_and_checkpoint_import_neither_the_hand_off_nor_git_plumbing(tmp_path, state_dir) -> None:  # type: ignore[no-untyped-def]
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("a\n")
    for argv in (("step", "--done", "x"), ("checkpoint",)):
        loaded = _modules("-C", str(ws), *argv, cwd=str(ws))
        assert "tether.checkpoints.checkpointer" in loaded, argv
        kept_out = {"tether.agent.handoff", "tether.remote", "tether.editor.documents", "pygls"}
        assert not kept_out & loaded, argv


def test_a_step_with_no_tmux_server_imports_neither_the_tmux_link_nor_subprocess(  # type: ignore[no-untyped-def]
    tmp_path, state_dir, monkeypatch
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("a\n")
    # No server can listen there: the step does not ask tmux (tmux/presence.py).
    monkeypatch.setenv("TETHER_TMUX_SOCKET", str(tmp_path / "no-server"))
    _modules("-C", str(ws), "step", "--done", "one", cwd=str(ws))  # keeps `tmux -V` in the state dir
    (ws / "a.txt").write_text("b\n")
    loaded = _modules("-C", str(ws), "step", "--done", "two", cwd=str(ws))
    assert "tether.checkpoints.checkpointer" in loaded and "tether.tmux.presence" in loaded
    kept_out = {
        "tether.tmux.link",
        "tether.tmux.user",
        "tether.tmux.snapshot",
        "subprocess",
        "shlex",
        # its usual command line is read without the parser (cli/step.py)
        "argparse",
        "gettext",
        "tether.cli.parser",
        *STARTUP_COSTS,
    }
    assert not kept_out & loaded, kept_out & loaded


def _bench_hook_modules() -> tuple[str, ...]:
    """HOOK_MODULES of bench/bench_cli.py (what the benchmark times as the hook's imports)."""
    tree = ast.parse((Path(__file__).resolve().parents[2] / "bench" / "bench_cli.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "HOOK_MODULES" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise AssertionError("HOOK_MODULES not found in bench/bench_cli.py")


def test_the_hook_and_step_modules_import_neither_dataclasses_nor_typing() -> None:
    modules = (*_bench_hook_modules(), "tether.checkpoints.checkpointer", "tether.agent.steps")
    code = f"import sys, {', '.join(modules)}; print(sorted(m for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60)
    loaded = set(ast.literal_eval(out.stdout))
    assert set(modules) <= loaded
    assert not STARTUP_COSTS & loaded, STARTUP_COSTS & loaded


FROZEN = """
import gc, sys
from tether.cli import main
sys.argv = ["tether", *sys.argv[1:]]
{call}
print("FROZEN", gc.isenabled(), gc.get_freeze_count())
"""

# A process as the `tether` script runs it, with an exit function, and optionally a thread still
# at work when the command is done (until main() returns). Past main(), only the usual exit goes
# on.
EXIT = """
import atexit, sys, threading
from tether.cli import main
atexit.register(lambda: print("EXIT FUNCTION", flush=True))
returned = threading.Event()
if {thread}:
    threading.Thread(target=lambda: (returned.wait(60), print("THREAD DONE", flush=True))).start()
sys.argv = ["tether", *sys.argv[1:]]
code = main()
print("RETURNED", flush=True)
returned.set()
sys.exit(code)
"""


@pytest.mark.parametrize("whole_process", [True, False])
def test_a_whole_process_keeps_what_its_imports_made_out_of_the_collector(  # type: ignore[no-untyped-def]
    tmp_path, state_dir, whole_process
) -> None:
    """The `tether` script freezes what the imports made (gc.freeze) before running its command;
    an in-process caller (argv given, as tests call it) keeps its collector as it is."""
    call = "main()" if whole_process else "main(sys.argv[1:])"
    out = subprocess.run(
        [sys.executable, "-c", FROZEN.format(call=call), "-C", str(tmp_path), "status"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    enabled, frozen = out.rpartition("FROZEN ")[2].split()
    assert (int(frozen) > 0) == whole_process, out
    assert enabled == "True"  # off during the imports only (whole process)


@pytest.mark.parametrize("thread", [False, True])
@pytest.mark.parametrize(("argv", "code"), [(("step", "--done", "x"), 0), (("hook", "no-such-agent"), 2)])
def test_a_hook_or_step_process_ends_without_teardown_once_nothing_is_left(  # type: ignore[no-untyped-def]
    tmp_path, state_dir, argv, code, thread
) -> None:
    """What the command printed, its exit code and the exit functions are all there; the
    teardown is skipped, unless another thread is still at work: then the usual exit waits
    for it."""
    ws = tmp_path / "ws"
    (ws / ".git").mkdir(parents=True)
    script = EXIT.format(thread=thread)
    res = subprocess.run(
        [sys.executable, "-c", script, "-C", str(ws), "--state-dir", str(state_dir), *argv],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == code, res.stderr
    if code == 0:
        assert "step recorded in checkpoint 1: 0 files changed" in res.stdout
    else:
        assert "no-such-agent" in res.stderr  # the usage error, all of it
    assert "EXIT FUNCTION" in res.stdout
    assert ("THREAD DONE" in res.stdout) == thread
    assert ("RETURNED" in res.stdout) == thread  # os._exit, unless the thread was at work
