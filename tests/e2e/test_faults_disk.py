"""Disk full: the state dir on a real 2 MiB tmpfs the test mounts (root only here).

A checkpoint that does not fit fails with StoreFullError's message and exit code, every older
checkpoint stays intact and restorable, and once space is freed the next checkpoint works.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faults import audit_store, manifest_files, mount_tmpfs, tree_files, unmount
from tether.checkpoints import restore as restore_mod
from tether.checkpoints.checkpointer import Checkpointer
from tether.errors import StoreFullError
from tether.store.db import Store

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-c", "import sys; from tether.cli import main; sys.exit(main())"]


@pytest.fixture
def small_state(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    why = mount_tmpfs(mnt, "2m")
    if why is not None:
        pytest.skip(f"no small file system for the disk-full test: {why}")
    try:
        yield mnt / "state"
    finally:
        unmount(mnt)


def _cli(ws: Path, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "-C", str(ws), "--state-dir", str(state), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_disk_full_checkpoint_fails_cleanly_and_history_survives(workspace: Path, small_state: Path) -> None:
    for i in range(10):
        (workspace / f"src{i}.py").write_text(f"print({i})\n" * 50)
    first = _cli(workspace, small_state, "--json", "checkpoint", "-m", "small")
    assert first.returncode == 0, first.stderr
    cp1 = json.loads(first.stdout)["id"]
    good = tree_files(workspace)

    # Incompressible data larger than the whole file system: the transaction cannot commit.
    (workspace / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    full = _cli(workspace, small_state, "checkpoint", "-m", "too big")
    assert full.returncode == StoreFullError.exit_code, (full.returncode, full.stdout, full.stderr)
    assert "is full" in full.stderr and "earlier checkpoints are intact" in full.stderr, full.stderr
    assert "Traceback" not in full.stderr

    as_json = _cli(workspace, small_state, "--json", "checkpoint")
    assert as_json.returncode == StoreFullError.exit_code
    assert json.loads(as_json.stdout)["error"]["reason"] == "storeError"

    # Old history intact: integrity, every blob, and a byte-identical restore of checkpoint 1.
    ids = audit_store(workspace, small_state)
    assert ids == [cp1]
    assert manifest_files(workspace, small_state, cp1) == good
    log = _cli(workspace, small_state, "log")
    assert log.returncode == 0 and "small" in log.stdout

    # Free space: the next checkpoint works and records the change made meanwhile.
    (workspace / "big.bin").unlink()
    (workspace / "src3.py").write_text("changed while the disk was full\n")
    again = _cli(workspace, small_state, "--json", "checkpoint", "-m", "after")
    assert again.returncode == 0, again.stderr
    cp2 = json.loads(again.stdout)["id"]
    assert cp2 > cp1
    assert manifest_files(workspace, small_state, cp2)["src3.py"] == b"changed while the disk was full\n"
    with Store.open(workspace, small_state) as store:
        restore_mod.restore(store, Checkpointer(store), cp1, dry_run=False)
    assert tree_files(workspace) == good
    audit_store(workspace, small_state)


def test_disk_full_during_restore_undo_checkpoint_writes_nothing(workspace: Path, small_state: Path) -> None:
    """The undo checkpoint comes first: when it cannot be stored, no workspace file is touched."""
    (workspace / "a.txt").write_text("version 1\n")
    assert _cli(workspace, small_state, "checkpoint").returncode == 0
    # A large new file fills the disk when the restore tries to record the undo checkpoint.
    (workspace / "a.txt").write_text("version 2\n")
    (workspace / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    before = tree_files(workspace)
    res = _cli(workspace, small_state, "restore", "1")
    assert res.returncode == StoreFullError.exit_code, res.stderr
    assert "is full" in res.stderr
    assert tree_files(workspace) == before
    audit_store(workspace, small_state)
