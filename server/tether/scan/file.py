"""One file against head's stat cache: vouched for by its stat, or read (never through a symlink)
and hashed, then recorded as changed, as a stat refresh, or as skipped (with why)."""

from __future__ import annotations

import os
import stat as stat_mod

from tether.model import FileChange, HeadRow, Skipped, StatEntry, blob_hash
from tether.paths import restore_temp_pid
from tether.scan.result import ScanResult

# A streamed scan keeps the bytes of changed files it read up to this many in all; past it (and
# for every new file, which it does not read at all) the change is ``deferred``: the store reads
# the file when it writes the checkpoint, so a first checkpoint of a big tree never holds it.
HOLD_BYTES = 16 * 1024 * 1024


class FileCheck:
    """One file of a workspace (``root``) against its head row; files over ``max_file_bytes`` are
    skipped, not read. ``stream``: changes are recorded ``deferred`` (see HOLD_BYTES)."""

    def __init__(self, root: str, max_file_bytes: int, stream: bool = False) -> None:
        self.root = root
        self.max_file_bytes = max_file_bytes
        self.stream = stream

    def __call__(self, rel: str, st: os.stat_result, cached: HeadRow | None, result: ScanResult) -> None:
        root, max_file_bytes = self.root, self.max_file_bytes
        if cached is None and restore_temp_pid(rel.rpartition("/")[2]) is not None:
            return  # a killed restore's temp file: litter, not work (off the stat-cache fast path)
        if stat_mod.S_ISLNK(st.st_mode):
            result.skipped.append(Skipped(rel, "symlink (not followed)"))
            return
        if not stat_mod.S_ISREG(st.st_mode):
            return  # sockets, fifos, devices: nothing to checkpoint
        if st.st_size > max_file_bytes:
            result.skipped.append(Skipped(rel, f"larger than {max_file_bytes} bytes", st.st_size))
            return
        if cached is not None and vouches(cached, st, max_file_bytes):
            return
        mode = stat_mod.S_IMODE(st.st_mode)
        if cached is None and self.stream:
            # New: nothing to compare it with. Read once, when the checkpoint is written.
            result.changes.append(
                FileChange(rel, None, mode, st.st_mtime_ns, st.st_ino, deferred=True, stat_size=st.st_size)
            )
            return
        try:
            # O_NOFOLLOW: the path was a regular file at lstat time; never read through a
            # symlink swapped in since.
            fd = os.open(os.path.join(root, rel), os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
            with os.fdopen(fd, "rb") as fh:
                content = fh.read(max_file_bytes + 1)
        except FileNotFoundError:
            if cached is not None:
                result.changes.append(FileChange(rel, None))
            return
        except OSError as exc:
            result.skipped.append(Skipped(rel, f"unreadable: {exc.strerror}"))
            return
        if len(content) > max_file_bytes:
            result.skipped.append(Skipped(rel, f"larger than {max_file_bytes} bytes", len(content)))
            return
        if cached is not None and cached[2] == mode and cached[1] == blob_hash(content):
            result.stat_updates.append(
                StatEntry(rel, cached[1], mode, len(content), st.st_mtime_ns, st.st_ino)
            )
            return
        if self.stream and result.held + len(content) > HOLD_BYTES:
            result.changes.append(
                FileChange(rel, None, mode, st.st_mtime_ns, st.st_ino, deferred=True, stat_size=len(content))
            )
            return
        result.held += len(content)
        result.changes.append(FileChange(rel, content, mode, st.st_mtime_ns, st.st_ino))


def vouches(cached: HeadRow, st: os.stat_result, max_bytes: int) -> bool:
    """Whether head's stat cache vouches for the file as it is now: same mtime, size and
    inode, still a regular file with the same permissions, still within the size cap."""
    # cached: (path, hash, mode, size, mtime_ns, ino)
    return (
        cached[4] == st.st_mtime_ns
        and cached[3] == st.st_size
        and cached[5] == st.st_ino
        and st.st_mode == stat_mod.S_IFREG | cached[2]
        and st.st_size <= max_bytes
    )
