"""Big checkpoints are streamed: a checkpoint's own scan does not keep new files' bytes (nor
changed ones' past a budget); the store reads, hashes, compresses and inserts them in bounded
batches inside the one transaction. A cancel (the progress callback raising) leaves nothing
written; a file changed between the scan and the write is left for the next scan; one that
cannot be read then is reported skipped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tether.checkpoints.checkpointer import Checkpointer
from tether.errors import CancelledError
from tether.scan import file as scan_file
from tether.store import chain
from tether.store.db import Store


def _tree(root: Path, n: int) -> dict[str, bytes]:
    files = {}
    for i in range(n):
        rel = f"d{i % 7}/f{i}.txt"
        data = (f"file {i}\n" * (1 + i % 50)).encode()
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        files[rel] = data
    return files


def _old(root: Path, rels: list[str]) -> None:
    """Outside the racy window: the stat cache may vouch for them."""
    old = (os.stat(root).st_mtime_ns // 10**9 - 3600) * 10**9
    for rel in rels:
        os.utime(root / rel, ns=(old, old))


def test_a_first_checkpoint_streams_every_file_whole(
    workspace: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _tree(workspace, 300)
    monkeypatch.setattr(chain, "BATCH_FILES", 16)  # many batches
    seen: list[tuple[str, int, int | None]] = []
    with Store.open(workspace, state_dir) as store:
        cp = Checkpointer(store)
        scan = cp.scan_workspace(stream=True)
        assert len(scan.changes) == 300 and all(c.deferred and c.content is None for c in scan.changes)
        cp.progress = lambda stage, done, total: seen.append((stage, done, total))
        info = cp.checkpoint("manual", full=True).info
        assert info is not None and set(info.files) == set(files)
        for rel, data in files.items():
            entry = store.entry_at(info.id, rel)
            assert entry is not None and entry.size == len(data)
            assert store.read_blob(entry.hash) == data
    writes = [(d, t) for s, d, t in seen if s == "write"]
    total = sum(len(d) for d in files.values())
    assert writes[0] == (0, total) and writes[-1] == (total, total)
    assert len(writes) > 10 and [d for d, _ in writes] == sorted(d for d, _ in writes)
    assert any(s == "scan" for s, _, _ in seen)


def test_a_cancelled_checkpoint_writes_nothing(
    workspace: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree(workspace, 200)
    monkeypatch.setattr(chain, "BATCH_FILES", 10)

    def cancel_midway(stage: str, done: int, total: int | None) -> None:
        if stage == "write" and total and done > total // 2:
            raise CancelledError("cancelled")

    with Store.open(workspace, state_dir) as store:
        blobs_before = store.query("SELECT count(*) FROM blobs")[0][0]
        cp = Checkpointer(store)
        cp.progress = cancel_midway
        with pytest.raises(CancelledError):
            cp.checkpoint("manual", full=True)
        assert store.list_checkpoints() == [] and store.head() == {}
        assert store.query("SELECT count(*) FROM blobs")[0][0] == blobs_before
        assert store.query("SELECT count(*) FROM changes")[0][0] == 0
        # The next one (not cancelled) records everything.
        cp.progress = None
        info = cp.checkpoint("manual", full=True).info
        assert info is not None and len(info.files) == 200


def test_a_cancel_during_the_scan_writes_nothing(workspace: Path, state_dir: Path) -> None:
    _tree(workspace, 50)

    def cancel(stage: str, done: int, total: int | None) -> None:
        raise CancelledError("cancelled")

    with Store.open(workspace, state_dir) as store:
        cp = Checkpointer(store)
        cp.progress = cancel
        with pytest.raises(CancelledError):
            cp.checkpoint("manual", full=True)
        assert store.list_checkpoints() == []


def test_a_file_changed_after_the_scan_is_left_for_the_next(workspace: Path, state_dir: Path) -> None:
    files = _tree(workspace, 20)
    with Store.open(workspace, state_dir) as store:
        cp = Checkpointer(store)
        scan = cp.scan_workspace(stream=True)
        (workspace / "d0/f0.txt").write_bytes(b"changed since the scan, and longer than before\n")
        info = cp.checkpoint("manual", scan=scan).info
        assert info is not None and "d0/f0.txt" not in info.files and len(info.files) == 19
        later = cp.checkpoint("manual", full=True).info
        assert later is not None and later.files == ("d0/f0.txt",)
        entry = store.entry_at(later.id, "d0/f0.txt")
        assert entry is not None
        assert store.read_blob(entry.hash) == b"changed since the scan, and longer than before\n"
        assert files["d1/f1.txt"] == store.read_blob(store.head()["d1/f1.txt"].hash)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_a_file_unreadable_when_written_is_skipped(workspace: Path, state_dir: Path) -> None:
    _tree(workspace, 10)
    with Store.open(workspace, state_dir) as store:
        cp = Checkpointer(store)
        scan = cp.scan_workspace(stream=True)
        secret = workspace / "d2/f2.txt"
        mode = secret.stat().st_mode
        secret.chmod(0)
        try:
            info = cp.checkpoint("manual", scan=scan).info
        finally:
            secret.chmod(mode)
        assert info is not None and "d2/f2.txt" not in info.files and len(info.files) == 9
        assert [(s.path, s.reason) for s in store.skipped()] == [
            ("d2/f2.txt", "unreadable: Permission denied")
        ]


def test_changed_files_past_the_budget_are_deferred(
    workspace: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _tree(workspace, 40)
    _old(workspace, list(files))
    with Store.open(workspace, state_dir) as store:
        cp = Checkpointer(store)
        cp.checkpoint("manual", full=True)
        for rel in files:
            with open(workspace / rel, "ab") as fh:
                fh.write(b"more\n")
        monkeypatch.setattr(scan_file, "HOLD_BYTES", 1000)
        scan = cp.scan_workspace(stream=True)
        held = [c for c in scan.changes if c.content is not None]
        assert 0 < sum(c.size for c in held) <= 1000 and len(held) < 40
        assert len(scan.changes) == 40 and all(c.deferred for c in scan.changes if c.content is None)
        # The eager scan (status, restore plans) still holds every changed file's bytes.
        assert all(c.content is not None for c in cp.scan_workspace().changes)
        info = cp.checkpoint("manual", scan=scan).info
        assert info is not None and len(info.files) == 40
        for rel, data in files.items():
            assert store.read_blob(store.head()[rel].hash) == data + b"more\n"
