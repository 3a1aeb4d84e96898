"""A command imports only what it needs: checked in a fresh interpreter, as agents run it."""

from __future__ import annotations

import json
import subprocess
import sys

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


def _modules(*argv: str, cwd: str | None = None) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], check=False, capture_output=True, text=True, timeout=60, cwd=cwd
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
