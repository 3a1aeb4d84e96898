"""The agents' real CLIs (installed by scripts/install-agents.sh) for tests that drive them offline.

Every run gets a throwaway HOME, XDG dirs, CLAUDE_CONFIG_DIR, CODEX_HOME and GEMINI_CLI_HOME, so
nothing reads or writes the user's own agent config; no test logs in or sends a prompt.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def tools_dir() -> Path:
    return Path(os.environ.get("TETHER_TOOLS_DIR", ROOT / ".tools"))


def agent_bin(name: str) -> Path:
    """The agent CLI's path, or skip the test naming the install script."""
    path = tools_dir() / "agents" / "node_modules" / ".bin" / name
    if not path.exists():
        pytest.skip(f"{name} CLI not installed at {path} (run scripts/install-agents.sh)")
    return path


def agent_env(home: Path, workspace: Path | None = None) -> dict[str, str]:
    """An isolated environment: the agents' config dirs under ``home``, ``tether`` on PATH."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLAUDE", "CODEX", "GEMINI", "OPENCODE", "COPILOT", "ANTHROPIC", "OPENAI"))
        and k not in ("GOOGLE_API_KEY", "GH_TOKEN", "GITHUB_TOKEN")
    }
    bindir = str(Path(sys.executable).parent)  # the venv's bin holds `tether`
    node = shutil.which("node")
    path = [bindir] + ([str(Path(node).parent)] if node else []) + ["/usr/bin", "/bin"]
    env.update(
        HOME=str(home),
        PATH=os.pathsep.join(path),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        XDG_CACHE_HOME=str(home / ".cache"),
        CLAUDE_CONFIG_DIR=str(home / ".claude"),
        CODEX_HOME=str(home / ".codex"),
        GEMINI_CLI_HOME=str(home),
        DISABLE_AUTOUPDATER="1",
        DISABLE_TELEMETRY="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        GEMINI_TELEMETRY_ENABLED="false",
        NO_UPDATE_NOTIFIER="1",
        CI="1",
    )
    (home / ".codex").mkdir(exist_ok=True)
    if workspace is not None:
        env["PWD"] = str(workspace)
    return env


def run_agent(
    name: str, args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(agent_bin(name)), *args],
        check=False,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
