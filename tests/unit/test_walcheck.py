"""A damaged write-ahead log makes SQLite drop every later commit without an error; Tether says
so when it opens the store, and `tether doctor` keeps saying it (issue 20)."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from tether.checkpoints.checkpointer import Checkpointer
from tether.cli import main
from tether.store.db import Store


def _frames(wal: Path) -> tuple[int, list[int]]:
    """(page size, commit flag of each frame)."""
    data = wal.read_bytes()
    page = struct.unpack(">I", data[8:12])[0]
    size = 24 + page
    n = (len(data) - 32) // size
    return page, [struct.unpack(">I", data[32 + i * size + 4 : 32 + i * size + 8])[0] for i in range(n)]


def _crashed_copy(workspace: Path, state: Path, copy: Path) -> None:
    """A store whose last three checkpoints are only in the WAL, as a crash leaves it."""
    with Store.open(workspace, state) as s:
        (workspace / "a.txt").write_text("1\n")
        Checkpointer(s).checkpoint("manual", "one")
    live = Store.open(workspace, state)  # stays open: its WAL is not merged back
    cp = Checkpointer(live)
    for i in (2, 3, 4):
        (workspace / "a.txt").write_text(f"{i}\n")
        cp.checkpoint("manual", f"cp {i}")
    shutil.copytree(state, copy, ignore=shutil.ignore_patterns("*-shm"))
    live.close()


def test_damage_in_the_wal_is_reported_not_silent(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, copy = tmp_path / "state", tmp_path / "copy"
    _crashed_copy(workspace, state, copy)
    db = next(copy.glob("workspaces/*/tether.db"))
    wal = Path(f"{db}-wal")
    page, commits = _frames(wal)
    first_commit = next(i for i, c in enumerate(commits) if c)
    assert sum(1 for c in commits[first_commit + 1 :] if c) >= 2
    # One flipped byte in the page of the frame after the first commit.
    data = bytearray(wal.read_bytes())
    data[32 + (first_commit + 1) * (24 + page) + 24 + 100] ^= 0xFF
    wal.write_bytes(bytes(data))

    with Store.open(workspace, copy) as store:
        assert store.wal_damage is not None
        assert "damaged after frame" in store.wal_damage and "could not be read" in store.wal_damage
        ids = [c.id for c in store.list_checkpoints()]
    assert ids and max(ids) < 4  # the later checkpoints really are gone: that is the point
    recorded_once = Store.open(workspace, copy)
    assert recorded_once.wal_damage is None  # found once; the record stays
    assert recorded_once.recorded_wal_damage() is not None
    recorded_once.close()

    assert main(["-C", str(workspace), "--state-dir", str(copy), "doctor"]) in (0, 1)
    out, _ = capsys.readouterr()
    assert "could not be read" in out and "log" in out


def test_a_warning_on_open_in_the_cli(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, copy = tmp_path / "state", tmp_path / "copy"
    _crashed_copy(workspace, state, copy)
    db = next(copy.glob("workspaces/*/tether.db"))
    wal = Path(f"{db}-wal")
    page, commits = _frames(wal)
    first_commit = next(i for i, c in enumerate(commits) if c)
    data = bytearray(wal.read_bytes())
    data[32 + (first_commit + 1) * (24 + page) + 24 + 7] ^= 0x01
    wal.write_bytes(bytes(data))
    assert main(["-C", str(workspace), "--state-dir", str(copy), "log"]) == 0
    _, err = capsys.readouterr()
    assert "write-ahead log" in err and "damaged" in err


def test_a_torn_last_write_is_not_damage(workspace: Path, tmp_path: Path) -> None:
    state, copy = tmp_path / "state", tmp_path / "copy"
    _crashed_copy(workspace, state, copy)
    db = next(copy.glob("workspaces/*/tether.db"))
    wal = Path(f"{db}-wal")
    page, commits = _frames(wal)
    # A crash in the middle of the last transaction: its frames cut short, no commit after.
    wal.write_bytes(wal.read_bytes()[: 32 + (len(commits) - 1) * (24 + page) + 100])
    with Store.open(workspace, copy) as store:
        assert store.wal_damage is None and store.recorded_wal_damage() is None
