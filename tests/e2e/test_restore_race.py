"""A directory swapped for a symlink while `restore` writes never redirects a write (issue 20).

The attacker is another process (a hostile agent): from the moment a restore has passed its
up-front checks and replaced its first file, it swaps the restored directory and a symlink to an
outside directory with renameat2(RENAME_EXCHANGE) as fast as the kernel allows, until the restore
returns. Before restore wrote relative to opened directory fds, files landed outside within a few
rounds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.retry import retry_until
from tether.agent.session_file import exchange
from tether.checkpoints import restore as restore_mod
from tether.checkpoints.checkpointer import Checkpointer
from tether.errors import TetherError
from tether.store.db import Store

FILES = 40
ROUNDS = 60
BUDGET_SECONDS = 30.0

SWAPPER = r"""
import ctypes, ctypes.util, os, sys, time
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
swap = libc.renameat2
swap.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
sub, link, ctl = (os.fsencode(a) for a in sys.argv[1:4])
first = sub + b"/f0.txt"
def exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False
def inode(p):
    try:
        return os.stat(p).st_ino
    except OSError:
        return -1
rnd = 0
while True:
    go, end = ctl + b"/go-%d" % rnd, ctl + b"/end-%d" % rnd
    while not exists(go):
        if exists(ctl + b"/stop"):
            sys.exit(0)
        time.sleep(0.001)
    ino = inode(first)
    while not exists(end) and inode(first) == ino:
        pass
    n = 0
    while not exists(end):
        swap(-100, sub, -100, link, 2)
        n += 1
    if os.path.islink(sub):
        swap(-100, sub, -100, link, 2)
    with open(ctl + b"/idle-%d.tmp" % rnd, "w") as fh:
        fh.write(str(n))
    os.rename(ctl + b"/idle-%d.tmp" % rnd, ctl + b"/idle-%d" % rnd)
    rnd += 1
"""


@pytest.fixture
def store(workspace: Path, state_dir: Path) -> Iterator[Store]:
    s = Store.open(workspace, state_dir)
    yield s
    s.close()


def test_a_directory_swapped_for_a_symlink_mid_restore_never_redirects_a_write(
    workspace: Path, store: Store, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    sub = workspace / "sub"
    sub.mkdir()
    cp = Checkpointer(store)
    for i in range(FILES):
        (sub / f"f{i}.txt").write_text(f"one {i}\n")
    one = cp.checkpoint("manual").info
    for i in range(FILES):
        (sub / f"f{i}.txt").write_text(f"two {i}\n")
    two = cp.checkpoint("manual").info
    assert one is not None and two is not None
    link = workspace / "sub-link"
    link.symlink_to(outside)
    if not exchange(sub, link) or not exchange(sub, link):
        pytest.skip("renameat2(RENAME_EXCHANGE) not available")
    proc = subprocess.Popen([sys.executable, "-c", SWAPPER, str(sub), str(link), str(ctl)])
    swaps = refused = 0
    deadline = time.monotonic() + BUDGET_SECONDS
    try:
        for rnd in range(ROUNDS):
            if time.monotonic() > deadline:
                break
            (ctl / f"go-{rnd}").touch()
            try:
                restore_mod.restore(store, cp, one.id if rnd % 2 == 0 else two.id, dry_run=False)
            except TetherError:
                refused += 1  # stopped mid-way, with its undo checkpoint: fine if nothing leaked
            finally:
                (ctl / f"end-{rnd}").touch()
                idle = ctl / f"idle-{rnd}"
                retry_until(idle.exists, timeout=10, what=f"swapper idle (exit {proc.poll()})")
            swaps += int(idle.read_text() or 0)
            assert list(outside.iterdir()) == [], f"written outside at round {rnd}"
    finally:
        (ctl / "stop").touch()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, 9)
            proc.wait(timeout=10)
    assert swaps > 0 and refused > 0  # the race really ran
    assert list(outside.iterdir()) == []
