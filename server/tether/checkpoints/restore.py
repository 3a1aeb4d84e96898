"""Diff and restore workspace files against checkpoints.

Restoring never writes outside the workspace: every stored path is re-validated against the
current tree (a symlink planted since the checkpoint is not followed), and every write, rename
and removal happens relative to a directory opened component by component with O_NOFOLLOW
(:mod:`tether.safefs`), so a directory swapped for a symlink mid-restore cannot redirect it.
Files are replaced atomically (temp file + rename), and untracked files are never deleted.
Before writing, the current state of the affected paths is checkpointed so the restore can be
undone. Live content is never read through a symlinked directory either (diffs, dry runs).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from tether import safefs
from tether.checkpoints.checkpointer import Checkpointer
from tether.checkpoints.diffing import FileDiff, file_diff
from tether.errors import OutsideWorkspaceError, StoreError, TetherError
from tether.model import FileEntry, blob_hash
from tether.paths import normalize_rel, restore_temp_name, restore_temp_pid, safe_target
from tether.procs import pid_alive
from tether.protocol import TRIGGER_RESTORE
from tether.record import dataclass, field
from tether.scan.result import UNREADABLE_DIR, ScanResult
from tether.scan.scanner import Scanner
from tether.store.db import Store

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
    """The live content of workspace file ``rel``; None when absent, not a regular file, a
    symlink, or reached through a symlinked directory (never read outside the workspace)."""
    found = safefs.read_file(root, rel)
    return found[0] if found is not None else None


# What a running restore is about to do: the paths it will create (absent and untracked before
# it) and the directories it writes temp files in. Recorded before the first write and cleared
# after the closing checkpoint. If the restore is killed in between, the next restore removes
# the temp files, and restoring the undo checkpoint also removes the created paths, so the
# undo is exact.
PENDING = "restore.pending"


def _pending(store: Store) -> tuple[set[str], set[str]]:
    """(created paths, temp dirs) of a restore that did not finish."""
    raw = store.get_state(PENDING)
    if not raw:
        return set(), set()
    try:
        doc = json.loads(raw)
    except ValueError:
        return set(), set()
    if not isinstance(doc, dict):
        return set(), set()
    created = doc.get("created")
    dirs = doc.get("dirs")
    return (
        {p for p in created if isinstance(p, str)} if isinstance(created, list) else set(),
        {d for d in dirs if isinstance(d, str)} if isinstance(dirs, list) else set(),
    )


def _scope(store: Store, paths: Iterable[str] | None, *manifests: dict[str, FileEntry]) -> list[str]:
    """The paths a diff/restore covers; a directory argument covers every known path below it."""
    known: set[str] = set(store.head_rows()) | _pending(store)[0]
    for m in manifests:
        known.update(m)
    if paths is None:
        return sorted(known)
    out: set[str] = set()
    for p in paths:
        rel = normalize_rel(store.root, p)
        below = rel + "/"
        inside = [k for k in known if k.startswith(below)]
        out.update(inside if inside and rel not in known else [rel])
    return sorted(out)


def _content(store: Store, entry: FileEntry | None) -> bytes | None:
    return store.read_blob(entry.hash) if entry is not None else None


def diff(
    store: Store,
    a: int,
    b: int | None = None,
    paths: Iterable[str] | None = None,
    *,
    checkpointer: Checkpointer | None = None,
) -> list[FileDiff]:
    """Changes from checkpoint ``a`` to checkpoint ``b`` (``None``: the live workspace).

    Against the live workspace, a stat-cache scan (``checkpointer``'s, or a new one's) says
    which files differ from head: the others are compared by hash, neither file nor blob read.
    """
    man_a = store.manifest(a)
    man_b = store.manifest(b) if b is not None else {}
    scope = _scope(store, paths, man_a, man_b)
    live: dict[str, str | None] = {}
    if b is None:
        live = _live_hashes(store, checkpointer or Checkpointer(store), scope if paths is not None else None)
    out = []
    for rel in scope:
        ea, eb = man_a.get(rel), man_b.get(rel)
        if b is not None and ea == eb:
            continue
        if b is None and rel in live and live[rel] == (ea.hash if ea is not None else None):
            continue  # the same content (by the stat cache): nothing to read
        before = _content(store, ea)
        after = _content(store, eb) if b is not None else read_live(store.root, rel)
        d = file_diff(rel, before, after, f"checkpoint-{a}", f"checkpoint-{b}" if b else "live")
        if d is not None:
            out.append(d)
    return out


def _live_hashes(store: Store, checkpointer: Checkpointer, scope: list[str] | None) -> dict[str, str | None]:
    """Content hash (None: absent) of the tracked paths whose content a stat-cache scan
    (of ``scope``, or the whole workspace) can tell without reading them: head's for the files
    its stat cache vouches for, the scan's own for those it read. Paths it cannot tell (skipped:
    symlinks, over the size cap, unreadable) are left out: the caller reads them."""
    scan = checkpointer.scan_workspace() if scope is None else checkpointer.scan_told(scope)
    if scope is None:
        live: dict[str, str | None] = {p: row[1] for p, row in store.head_rows().items()}
    else:
        live = {p: e.hash for p, e in store.head(scope).items()}
    for c in scan.changes:
        live[c.path] = blob_hash(c.content) if c.content is not None else None
    if not scan.complete:
        return {}
    for s in scan.skipped:
        live.pop(s.path, None)
    # Below a directory the walk could not list, head is all it knows: read those.
    dirs = tuple(s.path + "/" for s in scan.skipped if s.reason.startswith(UNREADABLE_DIR))
    if dirs:
        live = {p: h for p, h in live.items() if not p.startswith(dirs)}
    return live


def plan(
    store: Store,
    n: int,
    paths: Iterable[str] | None = None,
    *,
    with_diff: bool = True,
    scan: ScanResult | None = None,
    scanner: Scanner | None = None,
) -> list[PlannedFile]:
    """What restoring checkpoint ``n`` would change in the live workspace (pure: writes nothing).

    The live state comes from a stat-cache scan (``scan``, or one made here: the whole tree,
    or only the given paths), so unchanged files are compared by hash without being read.
    ``with_diff=False`` skips the diff text (a real restore only needs the status).
    """
    target = store.manifest(n)
    head = store.head()
    created_by_killed_restore = _pending(store)[0]
    scope = _scope(store, paths, target)
    if scan is None:
        scanner = scanner or Scanner(store.root)
        scan = scanner.full_scan(head) if paths is None else scanner.scan_paths(scope, head)
    live: dict[str, tuple[str, int] | None] = {
        c.path: (blob_hash(c.content), c.mode) if c.content is not None else None for c in scan.changes
    }
    uncertain = {s.path for s in scan.skipped}  # symlinks, over the cap: look at the disk itself
    out = []
    for rel in scope:
        want = target.get(rel)
        if want is None and rel not in head and rel not in created_by_killed_restore:
            continue  # untracked now: like git, a restore never deletes what is not tracked
        if rel in live:
            known: tuple[str, int] | None = live[rel]
        elif rel in head and rel not in uncertain:
            known = (head[rel].hash, head[rel].mode)
        else:
            known = _read_state(store.root, rel)
        wanted = (want.hash, want.mode) if want is not None else None
        if known == wanted:
            continue
        if not with_diff:
            status = "added" if known is None else "deleted" if want is None else "modified"
            out.append(PlannedFile(rel, want, FileDiff(rel, status, False, None)))
            continue
        d = file_diff(rel, read_live(store.root, rel), _content(store, want), "live", f"checkpoint-{n}")
        out.append(PlannedFile(rel, want, d or FileDiff(rel, "modified", False, "")))  # mode only
    return out


def _read_state(root: Path, rel: str) -> tuple[str, int] | None:
    """(hash, mode) of a live regular file, None when absent or not a regular file."""
    found = safefs.read_file(root, rel)
    return (blob_hash(found[0]), found[1]) if found is not None else None


def restore(
    store: Store,
    checkpointer: Checkpointer,
    n: int,
    paths: Iterable[str] | None = None,
    dry_run: bool = True,
) -> RestoreResult:
    """Restore ``paths`` (default: every tracked path) to checkpoint ``n``.

    The undo checkpoint records the live state of the whole workspace first (not only the
    files about to change), so restoring it brings back exactly what was there before. The
    plan and the undo checkpoint share one stat-cache walk.

    Restored files are replaced atomically (temp file + rename) but not fsynced one by one:
    both the previous and the restored contents are durable in the store (the undo and the
    closing checkpoint), so a power cut can lose no version, and a restore of 100 files
    stays in the range of ``git checkout``.
    """
    store.get_checkpoint(n)
    path_list = list(paths) if paths is not None else None
    scan = None if dry_run else checkpointer.scan_workspace()
    planned = plan(store, n, path_list, with_diff=dry_run, scan=scan, scanner=checkpointer.scanner)
    result = RestoreResult(checkpoint=n, dry_run=dry_run, files=[p.diff for p in planned])
    killed_dirs = set() if dry_run else _pending(store)[1]
    if killed_dirs:
        _sweep_stale_temps(store.root, _dirs(store.root, killed_dirs))
    if dry_run or not planned:
        if killed_dirs:
            store.delete_state(PENDING)
        return result
    # Validate every target before touching anything: all-or-nothing on bad paths.
    targets = [(p, safe_target(store.root, p.path)) for p in planned]
    # And every content, read and checked against its hash: damage in the store stops the
    # restore here, before the undo checkpoint, with nothing written anywhere.
    contents = _read_contents(store, [p.want.hash for p, _ in targets if p.want is not None])
    # A whole-workspace snapshot (cheap with the stat cache), even for a few paths: restoring
    # the undo checkpoint then gives back exactly the tree as it was, not only these paths.
    undo = checkpointer.checkpoint(
        TRIGGER_RESTORE, f"before restoring checkpoint {n}", full=True, allow_empty=True, scan=scan
    )
    result.undo_checkpoint = undo.info.id if undo.info else None
    head = store.head()
    created = sorted(p.path for p in planned if p.want is not None and p.path not in head)
    dirs = sorted({str(PurePosixPath(p.path).parent) for p in planned})
    store.put_state(PENDING, json.dumps({"created": created, "dirs": dirs}).encode())
    _sweep_stale_temps(store.root, _dirs(store.root, dirs))
    written: list[str] = []
    try:
        for item, _target in targets:
            if item.want is None:
                safefs.unlink_file(store.root, item.path)
            else:
                data = contents.get(item.want.hash)
                if data is None:
                    data = store.read_blob(item.want.hash)
                name = restore_temp_name(PurePosixPath(item.path).name)
                safefs.write_file(store.root, item.path, data, item.want.mode, name)
            written.append(item.path)
    except (OSError, OutsideWorkspaceError) as exc:
        # A directory swapped for a symlink meanwhile: refused, like a disk error, with the undo.
        cls = OutsideWorkspaceError if isinstance(exc, OutsideWorkspaceError) else StoreError
        why = exc.message if isinstance(exc, OutsideWorkspaceError) else str(exc)
        raise cls(
            f"restore of checkpoint {n} stopped after {len(written)} of {len(targets)} files: {why}. "
            f"Undo with `tether restore {result.undo_checkpoint}`."
        ) from exc
    after = checkpointer.checkpoint(TRIGGER_RESTORE, f"restored checkpoint {n}", paths=written)
    store.delete_state(PENDING)
    result.after_checkpoint = after.info.id if after.info else None
    return result


# Contents kept in memory between the check and the writes; beyond this they are read twice.
_KEEP_BYTES = 64 << 20


def _read_contents(store: Store, hashes: list[str]) -> dict[str, bytes]:
    kept: dict[str, bytes] = {}
    budget = _KEEP_BYTES
    for digest in dict.fromkeys(hashes):
        data = store.read_blob(digest)
        if len(data) <= budget:
            kept[digest] = data
            budget -= len(data)
    return kept


def _dirs(root: Path, rels: Iterable[str]) -> list[str]:
    """Workspace directories from stored relative names, never leaving the workspace."""
    out = []
    for rel in rels:
        if rel == ".":
            out.append("")
            continue
        try:
            safe_target(root, rel)
        except OutsideWorkspaceError:
            continue
        out.append(rel)
    return out


def _sweep_stale_temps(root: Path, dirs: Iterable[str]) -> None:
    """Remove temp files left by restores that were killed between write and rename."""
    for d in dirs:
        try:
            with safefs.open_dir(root, d) as dfd, os.scandir(dfd) as it:
                stale = [
                    e.name
                    for e in it
                    if (pid := restore_temp_pid(e.name)) is not None
                    and (pid == os.getpid() or not pid_alive(pid))
                    and e.is_file(follow_symlinks=False)
                ]
                for name in stale:
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=dfd)
        except (OSError, OutsideWorkspaceError):
            continue


__all__ = ["PlannedFile", "RestoreResult", "TetherError", "diff", "plan", "read_live", "restore"]
