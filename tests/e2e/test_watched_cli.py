"""The CLI and a running language server on a 10k-file workspace: `tether step`, `hook`, `status`
and `checkpoint` look only at what the server's file watcher saw change (git's fsmonitor), and
walk as before once the server is gone (killed: its dirty set is not trusted any more).

The proof that a command did not walk is its own debug log (`-vv`): a walk logs
"walk: N directories (M listed …)", a watched scan "scan: N paths the file watcher … saw change,
no walk"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.lsp_harness import start_session
from tests.support.trees import old_tree

FILES = 10_000
WALK = "walk: "
WATCHED = "saw change, no walk"


def big_tree(root: Path) -> None:
    old_tree(root, FILES, pkgs=10, mods=250)


def tether(
    *args: str, state_dir: Path, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tether", "-vv", *args],
        cwd=cwd,
        env={
            **os.environ,
            "TETHER_STATE_DIR": str(state_dir),
            "TETHER_TMUX_SOCKET": str(state_dir / "no-tmux"),
            **(env or {}),
        },
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def shell_edit(root: Path, rel: str, text: str) -> None:
    """An edit made the way an agent's Bash tool makes it."""
    subprocess.run(["sh", "-c", f"printf '%s' '{text}' > '{rel}'"], cwd=root, check=True, timeout=30)


@pytest.mark.timeout(600)
async def test_commands_look_only_at_what_the_running_server_saw(workspace: Path, state_dir: Path) -> None:
    big_tree(workspace)
    s = await start_session(workspace, state_dir, init_options={"checkpointIntervalSeconds": 0})
    try:
        await s.wait_status(
            lambda st: st["state"] == "idle" and st["lastCheckpoint"] is not None, "the baseline", timeout=300
        )

        shell_edit(workspace, "pkg3/m3/f3.py", "y = 3\n")
        step = tether("--json", "step", "--done", "edited f3", state_dir=state_dir, cwd=workspace)
        assert step.returncode == 0, step.stderr
        assert WATCHED in step.stderr and WALK not in step.stderr, step.stderr
        assert json.loads(step.stdout)["checkpoint"]["files"] == ["pkg3/m3/f3.py"]

        shell_edit(workspace, "pkg4/m4/f4.py", "y = 4\n")
        (workspace / "pkg5" / "m5" / "f5.py").unlink()
        status = tether("--json", "status", state_dir=state_dir, cwd=workspace)
        assert status.returncode == 0, status.stderr
        assert WATCHED in status.stderr and WALK not in status.stderr, status.stderr
        assert json.loads(status.stdout)["changedSinceCheckpoint"] == ["pkg4/m4/f4.py", "pkg5/m5/f5.py"]

        event = {
            "hook_event_name": "PostToolUse",
            "session_id": "s1",
            "cwd": str(workspace),
            "tool_name": "Bash",
            "tool_input": {"command": "edit f4, remove f5"},
        }
        hook = tether("hook", "claude-code", state_dir=state_dir, cwd=workspace, stdin=json.dumps(event))
        assert hook.returncode == 0, hook.stderr
        assert WATCHED in hook.stderr and WALK not in hook.stderr, hook.stderr
        before = tether("--json", "log", state_dir=state_dir, cwd=workspace).stdout
        # A tool that changed nothing: the hook neither walks nor writes a checkpoint (whether it
        # looks at a path at all depends on the server's own work since: tests/unit/test_dirty_set).
        read = {**event, "tool_name": "Read", "tool_input": {"file_path": "pkg1/m1/f1.py"}}
        hook = tether("hook", "claude-code", state_dir=state_dir, cwd=workspace, stdin=json.dumps(read))
        assert hook.returncode == 0, hook.stderr
        assert WALK not in hook.stderr, hook.stderr
        assert tether("--json", "log", state_dir=state_dir, cwd=workspace).stdout == before

        shell_edit(workspace, "pkg6/m6/f6.py", "y = 6\n")
        cp = tether("--json", "checkpoint", "-m", "by hand", state_dir=state_dir, cwd=workspace)
        assert cp.returncode == 0, cp.stderr
        assert WATCHED in cp.stderr and WALK not in cp.stderr, cp.stderr
        assert json.loads(cp.stdout)["files"] == ["pkg6/m6/f6.py"]

        # The server crashes: its watcher's row stays, but its process is gone. Commands walk,
        # and still find every change.
        await s.kill()
        shell_edit(workspace, "pkg7/m7/f7.py", "y = 7\n")
        step = tether("--json", "step", "--done", "edited f7", state_dir=state_dir, cwd=workspace)
        assert step.returncode == 0, step.stderr
        assert WALK in step.stderr and WATCHED not in step.stderr, step.stderr
        assert json.loads(step.stdout)["checkpoint"]["files"] == ["pkg7/m7/f7.py"]
    finally:
        await s.stop()


@pytest.mark.timeout(300)
async def test_a_restarted_server_is_trusted_only_after_its_own_baseline(
    workspace: Path, state_dir: Path
) -> None:
    """Changes made while no server ran are found: the new watcher vouches for nothing before
    its baseline walk, which records them."""
    big_tree(workspace)
    s = await start_session(workspace, state_dir, init_options={"checkpointIntervalSeconds": 0})
    await s.wait_status(
        lambda st: st["state"] == "idle" and st["lastCheckpoint"] is not None, "baseline", timeout=300
    )
    await s.stop()
    shell_edit(workspace, "pkg1/m1/f1.py", "changed while no server ran\n")
    s = await start_session(workspace, state_dir, init_options={"checkpointIntervalSeconds": 0})
    try:
        await s.wait_status(lambda st: st["state"] == "idle", "the second baseline", timeout=300)
        timeline = await s.timeline()
        assert timeline[0]["trigger"] == "baseline" and timeline[0]["files"] == ["pkg1/m1/f1.py"]
        time.sleep(0.1)
        shell_edit(workspace, "pkg2/m2/f2.py", "y = 2\n")
        step = tether("--json", "step", "--done", "edited f2", state_dir=state_dir, cwd=workspace)
        assert step.returncode == 0, step.stderr
        assert WATCHED in step.stderr and WALK not in step.stderr, step.stderr
        assert json.loads(step.stdout)["checkpoint"]["files"] == ["pkg2/m2/f2.py"]
    finally:
        await s.stop()


@pytest.mark.timeout(300)
async def test_the_running_server_is_recognised_without_proc(workspace: Path, state_dir: Path) -> None:
    """The liveness token (pid, start, boot) through psutil (TETHER_NO_PROCFS=1 in the server and
    the commands): commands trust the live server's dirty set; a command reading it through /proc
    (the other backend's token) walks; once the server is killed, all walk."""
    for i in range(200):
        (workspace / f"d{i % 10}").mkdir(exist_ok=True)
        (workspace / f"d{i % 10}" / f"f{i}.py").write_text(f"x = {i}\n")
    old = 1_700_000_000_000_000_000
    for p in workspace.rglob("*.py"):
        os.utime(p, ns=(old, old))
    no_proc = {"TETHER_NO_PROCFS": "1"}
    s = await start_session(
        workspace, state_dir, init_options={"checkpointIntervalSeconds": 0}, extra_env=no_proc
    )
    try:
        await s.wait_status(
            lambda st: st["state"] == "idle" and st["lastCheckpoint"] is not None, "the baseline", timeout=120
        )
        shell_edit(workspace, "d3/f3.py", "y = 3\n")
        step = tether(
            "--json", "step", "--done", "edited f3", state_dir=state_dir, cwd=workspace, env=no_proc
        )
        assert step.returncode == 0, step.stderr
        assert WATCHED in step.stderr and WALK not in step.stderr, step.stderr
        assert json.loads(step.stdout)["checkpoint"]["files"] == ["d3/f3.py"]

        shell_edit(workspace, "d4/f4.py", "y = 4\n")
        mixed = tether("--json", "step", "--done", "edited f4", state_dir=state_dir, cwd=workspace)
        assert mixed.returncode == 0, mixed.stderr
        assert WALK in mixed.stderr and WATCHED not in mixed.stderr, mixed.stderr
        assert json.loads(mixed.stdout)["checkpoint"]["files"] == ["d4/f4.py"]

        await s.kill()
        shell_edit(workspace, "d5/f5.py", "y = 5\n")
        step = tether(
            "--json", "step", "--done", "edited f5", state_dir=state_dir, cwd=workspace, env=no_proc
        )
        assert step.returncode == 0, step.stderr
        assert WALK in step.stderr and WATCHED not in step.stderr, step.stderr
        assert json.loads(step.stdout)["checkpoint"]["files"] == ["d5/f5.py"]
    finally:
        await s.stop()
