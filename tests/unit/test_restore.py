"""Diff and restore against real files: undo, dry-run, traversal and symlink escapes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.checkpoints import restore as restore_mod
from tether.checkpoints.checkpointer import Checkpointer
from tether.errors import NoCheckpointError, OutsideWorkspaceError
from tether.model import FileChange
from tether.store.db import Store


@pytest.fixture
def store(workspace: Path, state_dir: Path) -> Iterator[Store]:
    s = Store.open(workspace, state_dir)
    yield s
    s.close()


def write(root: Path, rel: str, data: bytes | str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode() if isinstance(data, str) else data)


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = (p.read_bytes(), p.stat().st_mode & 0o777)
    return out


def test_restore_whole_workspace_then_undo_is_byte_identical(workspace: Path, store: Store) -> None:
    cp = Checkpointer(store)
    write(workspace, "a.txt", "one\n")
    write(workspace, "bin.dat", bytes(range(256)))
    write(workspace, "d/gone.txt", "will be deleted\n")
    first = cp.checkpoint("manual").info
    assert first is not None
    write(workspace, "a.txt", "two\n")
    (workspace / "d/gone.txt").unlink()
    write(workspace, "new.txt", "added later\n")
    (workspace / "bin.dat").chmod(0o600)
    cp.checkpoint("manual")
    # Unrecorded edits too: the undo checkpoint must capture them before anything is written.
    write(workspace, "a.txt", "three (unsaved in history)\n")
    write(workspace, "untracked-yet.txt", "never checkpointed\n")
    before = tree(workspace)

    result = restore_mod.restore(store, cp, first.id, dry_run=False)
    assert result.undo_checkpoint is not None
    assert {f.path for f in result.files} == {"a.txt", "d/gone.txt", "new.txt", "bin.dat"}
    now = tree(workspace)
    assert now["a.txt"][0] == b"one\n" and now["d/gone.txt"][0] == b"will be deleted\n"
    assert "new.txt" not in now and now["bin.dat"][1] == 0o644

    restore_mod.restore(store, cp, result.undo_checkpoint, dry_run=False)
    assert tree(workspace) == before


def test_restore_undo_when_live_differs_from_last_recorded(workspace: Path, store: Store) -> None:
    """A file reverted by hand (not recorded) must come back as it was, not as last recorded."""
    cp = Checkpointer(store)
    write(workspace, "a.txt", "v1\n")
    write(workspace, "b.txt", "b1\n")
    first = cp.checkpoint("manual").info
    assert first is not None
    write(workspace, "a.txt", "v2\n")
    write(workspace, "b.txt", "b2\n")
    cp.checkpoint("manual")
    write(workspace, "a.txt", "v1\n")  # back to v1 on disk, history still says v2
    before = tree(workspace)
    result = restore_mod.restore(store, cp, first.id, dry_run=False)
    assert [f.path for f in result.files] == ["b.txt"]
    assert result.undo_checkpoint is not None
    restore_mod.restore(store, cp, result.undo_checkpoint, dry_run=False)
    assert tree(workspace) == before


def test_dry_run_writes_nothing_and_shows_diff(workspace: Path, store: Store) -> None:
    cp = Checkpointer(store)
    write(workspace, "a.txt", "old\n")
    first = cp.checkpoint("manual").info
    assert first is not None
    write(workspace, "a.txt", "new\n")
    before = tree(workspace)
    count = len(store.list_checkpoints(limit=None))
    result = restore_mod.restore(store, cp, first.id, ["a.txt"], dry_run=True)
    assert tree(workspace) == before
    assert len(store.list_checkpoints(limit=None)) == count
    assert result.undo_checkpoint is None and result.dry_run
    [d] = result.files
    assert d.status == "modified" and d.diff is not None
    assert "-new\n" in d.diff and "+old\n" in d.diff


def test_restore_selected_paths_and_directories(workspace: Path, store: Store) -> None:
    cp = Checkpointer(store)
    write(workspace, "src/a.py", "a1\n")
    write(workspace, "src/sub/b.py", "b1\n")
    write(workspace, "other.txt", "o1\n")
    first = cp.checkpoint("manual").info
    assert first is not None
    for rel in ("src/a.py", "src/sub/b.py", "other.txt"):
        write(workspace, rel, "changed\n")
    result = restore_mod.restore(store, cp, first.id, ["src"], dry_run=False)
    assert sorted(f.path for f in result.files) == ["src/a.py", "src/sub/b.py"]
    assert (workspace / "src/sub/b.py").read_text() == "b1\n"
    assert (workspace / "other.txt").read_text() == "changed\n"


def test_restore_never_deletes_untracked_files(workspace: Path, store: Store) -> None:
    cp = Checkpointer(store)
    write(workspace, "a.txt", "1\n")
    first = cp.checkpoint("manual").info
    assert first is not None
    write(workspace, "scratch.txt", "mine, never checkpointed\n")
    restore_mod.restore(store, cp, first.id, dry_run=False)
    assert (workspace / "scratch.txt").read_text() == "mine, never checkpointed\n"


def test_restore_unknown_checkpoint(workspace: Path, store: Store) -> None:
    with pytest.raises(NoCheckpointError):
        restore_mod.restore(store, Checkpointer(store), 42, dry_run=False)


@pytest.mark.parametrize("bad", ["../escape.txt", "/etc/passwd", "d/../../x"])
def test_restore_path_traversal_rejected(workspace: Path, store: Store, bad: str) -> None:
    cp = Checkpointer(store)
    write(workspace, "a.txt", "1\n")
    first = cp.checkpoint("manual").info
    assert first is not None
    with pytest.raises(OutsideWorkspaceError):
        restore_mod.restore(store, cp, first.id, [bad], dry_run=False)


def test_restore_through_planted_symlink_rejected_and_nothing_written(
    workspace: Path, store: Store, tmp_path: Path
) -> None:
    cp = Checkpointer(store)
    write(workspace, "aaa.txt", "first\n")
    write(workspace, "d/x.txt", "inside\n")
    first = cp.checkpoint("manual").info
    assert first is not None
    write(workspace, "aaa.txt", "edited\n")
    # Since the checkpoint, d/ became a symlink to a directory outside the workspace.
    outside = tmp_path / "outside"
    outside.mkdir()
    (workspace / "d/x.txt").unlink()
    (workspace / "d").rmdir()
    (workspace / "d").symlink_to(outside)
    count = len(store.list_checkpoints(limit=None))
    with pytest.raises(OutsideWorkspaceError):
        restore_mod.restore(store, cp, first.id, dry_run=False)
    assert list(outside.iterdir()) == []
    assert (workspace / "aaa.txt").read_text() == "edited\n"  # all-or-nothing
    assert len(store.list_checkpoints(limit=None)) == count


def test_restore_of_poisoned_stored_path_is_rejected(workspace: Path, store: Store, tmp_path: Path) -> None:
    """A damaged or hostile store row with a traversal path must not be written."""
    store.create_checkpoint("manual", None, [FileChange("../evil.txt", b"pwned", 0o644, 1, 1)])
    store.create_checkpoint("manual", None, [FileChange("ok.txt", b"fine", 0o644, 1, 1)])
    with pytest.raises(OutsideWorkspaceError):
        restore_mod.restore(store, Checkpointer(store), 2, dry_run=False)
    assert not (tmp_path / "evil.txt").exists()
    assert not (workspace / "ok.txt").exists()


def test_restore_replaces_a_symlink_instead_of_writing_through_it(
    workspace: Path, store: Store, tmp_path: Path
) -> None:
    cp = Checkpointer(store)
    write(workspace, "conf.txt", "mine\n")
    first = cp.checkpoint("manual").info
    assert first is not None
    target = tmp_path / "victim.txt"
    target.write_text("do not touch\n")
    (workspace / "conf.txt").unlink()
    (workspace / "conf.txt").symlink_to(target)
    restore_mod.restore(store, cp, first.id, ["conf.txt"], dry_run=False)
    assert target.read_text() == "do not touch\n"
    assert not (workspace / "conf.txt").is_symlink()
    assert (workspace / "conf.txt").read_text() == "mine\n"


def test_diff_between_checkpoints_and_live(workspace: Path, store: Store) -> None:
    cp = Checkpointer(store)
    write(workspace, "a.txt", "1\n")
    write(workspace, "img.bin", b"\x00\x01")
    one = cp.checkpoint("manual").info
    write(workspace, "a.txt", "2\n")
    write(workspace, "img.bin", b"\x00\x02")
    two = cp.checkpoint("manual").info
    assert one is not None and two is not None
    diffs = {d.path: d for d in restore_mod.diff(store, one.id, two.id)}
    assert diffs["a.txt"].diff is not None and "+2\n" in diffs["a.txt"].diff
    assert diffs["img.bin"].binary and diffs["img.bin"].diff is None
    assert [d.path for d in restore_mod.diff(store, one.id, two.id, ["a.txt"])] == ["a.txt"]
    write(workspace, "a.txt", "3\n")
    [live] = restore_mod.diff(store, two.id, None, ["a.txt"])
    assert live.diff is not None and "+3\n" in live.diff and "live/a.txt" in live.diff
