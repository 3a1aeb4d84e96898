"""The CLI as a subprocess against a hostile workspace (issue 20)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
TETHER = str(BIN / "tether")


@pytest.fixture
def env(state_dir: Path, tmp_path: Path) -> dict[str, str]:
    e = dict(os.environ)
    e["TETHER_STATE_DIR"] = str(state_dir)
    e["TETHER_TMUX_SOCKET"] = str(tmp_path / "no-tmux")
    for k in ("TMUX", "TMUX_PANE"):
        e.pop(k, None)
    return e


def test_run_still_runs_its_command_with_a_deep_agent_file(
    workspace: Path, env: dict[str, str], tmp_path: Path
) -> None:
    subprocess.run(["git", "init", "-q", str(workspace)], check=True, timeout=30)
    (workspace / ".agent-session.json").write_text('{"x": ' + "[" * 980 + "]" * 980 + "}")
    marker = tmp_path / "ran"
    res = subprocess.run(
        [TETHER, "run", "--", "sh", "-c", f"echo ran > {marker}; exit 3"],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert marker.read_text() == "ran\n", res.stderr
    assert res.returncode == 3, res.stderr
    assert "Traceback" not in res.stderr and "nested deeper" in res.stderr
