"""The whole-workspace scan's forked stat check in real processes: the `tether` CLI (one thread)
and `tether lsp` (threads running, stdout the LSP transport). Large enough a workspace that
both split the check with a child; each must find exactly what changed and leave no child."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.lsp_harness import start_session
from tether.cli.lsp import LOG_NAME

FILES = 6000  # above scan.FORK_MIN_FILES, and 60 per MiB of a ~50-100 MiB process
SPLIT = "stat check of"


def big_tree(root: Path) -> None:
    (root / ".gitignore").write_text("*.log\n")
    for i in range(FILES):
        d = root / f"pkg{i % 8}" / f"m{i % 240}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.py").write_text(f"x = {i}\n")
    old = 1_700_000_000_000_000_000  # an old checkout: no stat is too fresh to vouch for it
    for p in root.rglob("*.py"):
        os.utime(p, ns=(old, old))
    # Directory ctimes cannot be set back: let them leave the racy-timestamp window
    # (store.head.RACY_NS), or no listing would be kept. A fixed wait, not a poll.
    time.sleep(2.1)


def edit(root: Path) -> set[str]:
    """An in-place same-size rewrite, a deletion and a new file: what a scan must report."""
    same = root / "pkg1/m1/f1.py"
    same.write_text("y = 1\n")  # same size as "x = 1\n"
    (root / "pkg2/m2/f2.py").unlink()
    (root / "pkg3/m3/new.py").write_text("new\n")
    return {"pkg1/m1/f1.py", "pkg2/m2/f2.py", "pkg3/m3/new.py"}


def children_of(pid: int) -> list[str]:
    """Processes whose parent is ``pid`` (zombies included), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid:
            found.append(f"{entry.name} {fields[0]}")
    return found


def tether(*args: str, state_dir: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tether", *args],
        cwd=cwd,
        env={**os.environ, "TETHER_STATE_DIR": str(state_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_scan_splits_the_check_and_finds_every_change(workspace: Path, state_dir: Path) -> None:
    big_tree(workspace)
    first = tether("checkpoint", "-m", "baseline", state_dir=state_dir, cwd=workspace)
    assert first.returncode == 0, first.stderr
    expected = edit(workspace)
    out = tether("-vv", "--json", "status", state_dir=state_dir, cwd=workspace)
    assert out.returncode == 0, out.stderr
    assert SPLIT in out.stderr  # the child really ran
    assert set(json.loads(out.stdout)["changedSinceCheckpoint"]) == expected
    again = tether("-vv", "--json", "checkpoint", state_dir=state_dir, cwd=workspace)
    assert again.returncode == 0, again.stderr
    assert set(json.loads(again.stdout)["files"]) == expected
    # Unchanged since: the next process vouches for every directory and finds nothing.
    last = tether("-vv", "--json", "status", state_dir=state_dir, cwd=workspace)
    assert last.returncode == 0, last.stderr
    assert json.loads(last.stdout)["changedSinceCheckpoint"] == []
    assert SPLIT in last.stderr


async def test_lsp_server_splits_the_check_beside_its_threads(workspace: Path, state_dir: Path) -> None:
    big_tree(workspace)
    env = {"TETHER_LOG_LEVEL": "DEBUG"}
    s = await start_session(workspace, state_dir, init_options={"watcher": False}, extra_env=env)
    try:
        await s.wait_status(lambda st: st["state"] == "idle", "first baseline", timeout=60)
    finally:
        await s.stop()
    expected = edit(workspace)
    s = await start_session(workspace, state_dir, init_options={"watcher": False}, extra_env=env)
    try:
        st = await s.wait_status(
            lambda st: st["state"] == "idle" and st["lastCheckpoint"], "second baseline", timeout=60
        )
        assert set(st["lastCheckpoint"]["files"]) == expected
        assert children_of(s.pid) == []  # the stat-check child was reaped
        # The server (and its stdout transport) is fine after the fork.
        assert (await s.command("tether.status", {}))["state"] == "idle"
    finally:
        await s.stop()
    log = (state_dir / LOG_NAME).read_text()
    assert SPLIT in log, log[-2000:]
