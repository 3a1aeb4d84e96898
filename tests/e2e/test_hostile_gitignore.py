"""A workspace whose .gitignore is built to make a backtracking matcher run for ever (issue 19:
one line, ``*a*a*a*a*a*a*a*a*b``, and a file named with 60 "a" hung every command).

Each checkpoint path an agent or a person takes, as a real CLI process, finishes: `tether
checkpoint`, `tether run -- true`, and the Claude Code PostToolUse hook. The bound is a
generous subprocess timeout (a hang fails; no time is asserted: speed is bench/bench_store.py's
worst-case row). The hook's own time budget is tested with it set to 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tether.store.db import Store

BOUND_S = 60
TETHER_BUDGET = "TETHER_HOOK_BUDGET"
LONG_CLASS = "[" + "abcdefghijklmnopqrstuvwxy" * 40 + "]"
HOSTILE = [
    "*a*a*a*a*a*a*a*a*b",
    "*a" * 30 + "*b",
    "**/" * 40 + "b",
    "/".join(["**/*a"] * 12) + "/b",
    "*[!b]" * 25 + "*b",
    f"*{LONG_CLASS}*b",
    "a/" + "*a" * 20 + "*b",
    "!" + "*a" * 25 + "*c",
]
OVERLONG = "*a" * 600 + "*b"  # over the pattern length bound: not applied, reported


def hostile_tree(root: Path) -> list[str]:
    (root / ".gitignore").write_text("\n".join([*HOSTILE, OVERLONG, "*.log"]) + "\n")
    names = ["a" * 60, "a" * 200, "a" * 60 + "c", "x.log"]
    files = []
    deep = root
    for depth in range(25):
        for name in names:
            (deep / name).write_text(f"{depth}\n")
            files.append(str((deep / name).relative_to(root)))
        deep = deep / "a"
        deep.mkdir()
    return files


def tether(
    args: list[str], ws: Path, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tether", *args],
        cwd=ws,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=BOUND_S,
        check=False,
    )


@pytest.fixture
def env(state_dir: Path, tmp_path: Path) -> dict[str, str]:
    e = dict(os.environ)
    e["TETHER_STATE_DIR"] = str(state_dir)
    e["TETHER_TMUX_SOCKET"] = str(tmp_path / "no-tmux")  # never the user's tmux server
    e["HOME"] = str(tmp_path / "home")  # nor the user's git config
    e["GIT_CONFIG_NOSYSTEM"] = "1"
    for k in ("TMUX", "TMUX_PANE", "CLAUDE_PROJECT_DIR", "XDG_CONFIG_HOME", TETHER_BUDGET):
        e.pop(k, None)
    return e


def tracked(ws: Path, state_dir: Path) -> set[str]:
    with Store.open(ws, state_dir) as store:
        return set(store.head())


def expected(files: list[str]) -> set[str]:
    # *.log is ignored; the hostile patterns match none of these names (no "b" in them), so
    # only the ".log" files and nothing else is left out.
    return {".gitignore", *(f for f in files if not f.endswith(".log"))}


@pytest.mark.timeout(6 * BOUND_S)
@pytest.mark.parametrize("how", ["checkpoint", "run", "hook"])
def test_every_checkpoint_path_finishes(
    how: str, workspace: Path, state_dir: Path, env: dict[str, str]
) -> None:
    files = hostile_tree(workspace)
    if how == "checkpoint":
        res = tether(["checkpoint", "-m", "hostile"], workspace, env)
    elif how == "run":
        res = tether(["run", "--", "true"], workspace, env)
    else:
        assert tether(["checkpoint"], workspace, env).returncode == 0
        (workspace / "a" / "a" / ("a" * 60)).write_text("edited by the agent\n")
        event = {
            "hook_event_name": "PostToolUse",
            "session_id": "s1",
            "cwd": str(workspace),
            "tool_name": "Bash",
            "tool_input": {"command": "echo edited > a/a/aaa"},
        }
        res = tether(["hook", "claude-code"], workspace, env, stdin=json.dumps(event))
        assert "did not finish" not in res.stderr
    assert res.returncode == 0, res.stderr
    assert tracked(workspace, state_dir) == expected(files)
    if how == "hook":
        with Store.open(workspace, state_dir) as store:
            latest = store.latest()
            assert latest is not None and latest.files == ("a/a/" + "a" * 60,)
    status = tether(["status"], workspace, env)
    assert status.returncode == 0, status.stderr
    warning = next(line for line in status.stdout.splitlines() if line.startswith("warning"))
    assert ".gitignore: ignore rules not all applied: line 9: longer than 1024 bytes" in warning


@pytest.mark.timeout(6 * BOUND_S)
def test_hook_out_of_time_records_what_it_found_and_exits_0(
    workspace: Path, state_dir: Path, env: dict[str, str]
) -> None:
    hostile_tree(workspace)
    assert tether(["checkpoint"], workspace, env).returncode == 0
    (workspace / ("a" * 60)).write_text("top edit\n")
    (workspace / "a" / "a" / ("a" * 60)).write_text("deep edit\n")
    event = {"hook_event_name": "PostToolUse", "session_id": "s1", "cwd": str(workspace), "tool_name": "Edit"}
    res = tether(["hook", "claude-code"], workspace, {**env, TETHER_BUDGET: "0"}, stdin=json.dumps(event))
    assert res.returncode == 0 and res.stdout == ""
    assert "the workspace scan did not finish within 0 s: checkpointing the 1 change found" in res.stderr
    with Store.open(workspace, state_dir) as store:
        latest = store.latest()
        assert latest is not None and latest.files == ("a" * 60,)  # the first directory's
        assert len(store.head()) == len(tracked(workspace, state_dir))
    # The next hook, with time, records the rest.
    res = tether(["hook", "claude-code"], workspace, env, stdin=json.dumps(event))
    assert res.returncode == 0 and "did not finish" not in res.stderr
    with Store.open(workspace, state_dir) as store:
        latest = store.latest()
        assert latest is not None and latest.files == ("a/a/" + "a" * 60,)
    # A budget that is not a number: the default, and a warning.
    res = tether(["hook", "claude-code"], workspace, {**env, TETHER_BUDGET: "soon"}, stdin=json.dumps(event))
    assert res.returncode == 0 and "TETHER_HOOK_BUDGET='soon'" in res.stderr
