"""Damage in the store's write-ahead log, found before it is forgotten.

SQLite replays ``tether.db-wal`` up to the first frame whose checksum fails and silently ignores
everything after it: one damaged frame makes every later checkpoint vanish without an error.
After SQLite's recovery, the wal-index (``-shm``) says how many frames it took (``mxFrame``).
Frames past that point which still carry the log's current salt and mark a commit are committed
transactions SQLite dropped: that is damage, not a torn last write (a crash mid-transaction
leaves no commit frame after the last good one). The next write reuses those frames, so this is
checked when the store is opened, before anything is written.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

_WAL_MAGIC = (0x377F0682, 0x377F0683)
_WAL_HEADER = 32
_FRAME_HEADER = 24
_SHM_VERSION = 3007000


@dataclass(frozen=True)
class WalDamage:
    valid_frames: int  # frames SQLite replayed
    lost_frames: int  # frames of the current log after them
    lost_commits: int  # committed transactions among those (checkpoints, state updates)

    def message(self, db_path: Path) -> str:
        return (
            f"the store's write-ahead log ({db_path}-wal) is damaged after frame {self.valid_frames}: "
            f"{self.lost_commits} later committed transaction(s) ({self.lost_frames} frames) could not "
            "be read, so the checkpoints they held are missing from the history"
        )


def _read(path: str, n: int, offset: int = 0) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(n)


def check(db_path: Path) -> WalDamage | None:
    """Damage in ``db_path``'s WAL as SQLite recovered it (call after a read, before a write)."""
    wal, shm = f"{db_path}-wal", f"{db_path}-shm"
    try:
        size = os.path.getsize(wal)
        header = _read(wal, _WAL_HEADER)
        index = _read(shm, 48)
    except OSError:
        return None
    if len(header) < _WAL_HEADER or len(index) < 48:
        return None
    magic, _version, page_size = struct.unpack(">III", header[:12])
    if magic not in _WAL_MAGIC or page_size < 512:
        return None
    version, _unused, _change, is_init = struct.unpack("=IIIB", index[:13])
    if version != _SHM_VERSION or not is_init:
        return None
    (mx_frame,) = struct.unpack("=I", index[16:20])
    salt = header[16:24]
    if index[32:40] != salt:
        return None  # the index describes another generation of the log
    frame_size = _FRAME_HEADER + page_size
    frames = (size - _WAL_HEADER) // frame_size
    if frames <= mx_frame:
        return None
    lost = commits = 0
    with open(wal, "rb") as fh:
        for i in range(mx_frame, frames):
            fh.seek(_WAL_HEADER + i * frame_size)
            fr = fh.read(_FRAME_HEADER)
            if len(fr) < _FRAME_HEADER or fr[8:16] != salt:
                continue  # left over from an earlier generation: not this log's
            lost += 1
            if struct.unpack(">I", fr[4:8])[0] != 0:
                commits += 1
    return WalDamage(mx_frame, lost, commits) if commits else None
