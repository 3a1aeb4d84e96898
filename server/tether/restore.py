"""Diff and restore workspace files against checkpoints.

Restoring never writes outside the workspace: every stored path is re-validated against the
current tree (a symlink planted since the checkpoint is not followed), files are replaced
atomically (temp file + rename), and untracked files are never deleted. Before writing, the
current state of the affected paths is checkpointed so the restore can be undone.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether.checkpoints import Checkpointer
from tether.diffing import FileDiff, file_diff
from tether.errors import OutsideWorkspaceError, StoreError, TetherError
from tether.paths import normalize_rel, safe_target
from tether.protocol import TRIGGER_RESTORE
from tether.store import FileEntry, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedFile:
    path: str
    want: FileEntry | None  # None: delete
    diff: FileDiff


@dataclass
class RestoreResult:
    checkpoint: int
    dry_run: bool
    files: list[FileDiff] = field(default_factory=list)
    undo_checkpoint: int | None = None
    after_checkpoint: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "dryRun": self.dry_run,
            "files": [f.to_wire() for f in self.files],
            "undoCheckpoint": self.undo_checkpoint,
        }


def read_live(root: Path, rel: str) -> bytes | None:
    path = root / rel
    try:
        if path.is_symlink() or not path.is_file():
            return None
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _scope(store: Store, paths: Iterable[str] | None, *manifests: dict[str, FileEntry]) -> list[str]:
    if paths is None:
        keys: set[str] = set(store.head())
        for m in manifests:
            keys.update(m)
        return sorted(keys)
    return sorted({normalize_rel(store.root, p) for p in paths})


def _content(store: Store, entry: FileEntry | None) -> bytes | None:
    return store.read_blob(entry.hash) if entry is not None else None


def diff(store: Store, a: int, b: int | None = None, paths: Iterable[str] | None = None) -> list[FileDiff]:
    """Changes from checkpoint ``a`` to checkpoint ``b`` (``None``: the live workspace)."""
    man_a = store.manifest(a)
    man_b = store.manifest(b) if b is not None else {}
    out = []
    for rel in _scope(store, paths, man_a, man_b):
        before = _content(store, man_a.get(rel))
        after = _content(store, man_b.get(rel)) if b is not None else read_live(store.root, rel)
        d = file_diff(rel, before, after, f"checkpoint-{a}", f"checkpoint-{b}" if b else "live")
        if d is not None:
            out.append(d)
    return out


def plan(store: Store, n: int, paths: Iterable[str] | None = None) -> list[PlannedFile]:
    """What restoring checkpoint ``n`` would change in the live workspace (pure: writes nothing)."""
    target = store.manifest(n)
    head = store.head()
    out = []
    for rel in _scope(store, paths, target):
        want = target.get(rel)
        have = read_live(store.root, rel)
        if want is None and rel not in head:
            continue  # untracked now: like git, a restore never deletes what is not tracked
        d = file_diff(rel, have, _content(store, want), "live", f"checkpoint-{n}")
        if d is not None:
            out.append(PlannedFile(rel, want, d))
    return out


def restore(
    store: Store,
    checkpointer: Checkpointer,
    n: int,
    paths: Iterable[str] | None = None,
    dry_run: bool = True,
) -> RestoreResult:
    store.get_checkpoint(n)
    path_list = list(paths) if paths is not None else None
    planned = plan(store, n, path_list)
    result = RestoreResult(checkpoint=n, dry_run=dry_run, files=[p.diff for p in planned])
    if dry_run or not planned:
        return result
    # Validate every target before touching anything: all-or-nothing on bad paths.
    targets = [(p, safe_target(store.root, p.path)) for p in planned]
    undo = checkpointer.checkpoint(
        TRIGGER_RESTORE,
        f"before restoring checkpoint {n}",
        paths=[p.path for p in planned],
        allow_empty=True,
    )
    result.undo_checkpoint = undo.info.id if undo.info else None
    written: list[str] = []
    try:
        for item, target in targets:
            if item.want is None:
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
            else:
                _write_atomic(store.root, target, store.read_blob(item.want.hash), item.want.mode)
            written.append(item.path)
    except OSError as exc:
        raise StoreError(
            f"restore of checkpoint {n} stopped after {len(written)} of {len(targets)} files: {exc}. "
            f"Undo with `tether restore {result.undo_checkpoint}`."
        ) from exc
    after = checkpointer.checkpoint(TRIGGER_RESTORE, f"restored checkpoint {n}", paths=written)
    result.after_checkpoint = after.info.id if after.info else None
    return result


def _write_atomic(root: Path, target: Path, data: bytes, mode: int) -> None:
    parent = target.parent
    if not parent.exists():
        parent.mkdir(parents=True, exist_ok=True)
    # Re-check after mkdir: a parent component could be a symlink created meanwhile.
    real_parent = parent.resolve()
    if real_parent != root and root not in real_parent.parents:
        raise OutsideWorkspaceError(f"{target} leads outside the workspace")
    tmp = parent / f".{target.name}.tether-{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode & 0o7777 or 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode & 0o7777 or 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


__all__ = ["PlannedFile", "RestoreResult", "TetherError", "diff", "plan", "read_live", "restore"]
