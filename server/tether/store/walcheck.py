"""Damage in the store's write-ahead log, found before SQLite forgets it.

SQLite replays ``tether.db-wal`` up to the first frame whose checksum fails and silently ignores
everything after it: one damaged frame makes every later checkpoint vanish without an error.
Only the first connection after a crash replays the log (later ones share its index), so the
check runs then, before SQLite opens the file: the log's frames are verified here the way SQLite
recovers them, and committed transactions of the current log after the first bad frame are
damage. A torn last write (a crash mid-transaction) leaves no commit frame after the last good
one, and is not.

Whether another connection is open is asked of the ``-shm`` file with ``F_GETLK`` (which takes
no lock, so a process connecting meanwhile is never refused), and only when this process has no
connection to the database: closing any descriptor of a file drops the process's POSIX locks on
it, SQLite's included.
"""

from __future__ import annotations

import fcntl
import os
import struct
import sys
from pathlib import Path

from tether.record import dataclass

_WAL_MAGIC_LE, _WAL_MAGIC_BE = 0x377F0682, 0x377F0683
_WAL_HEADER = 32
_FRAME_HEADER = 24
# Every live connection holds a shared lock on this byte of the -shm file (os_unix.c:
# UNIX_SHM_BASE + SQLITE_SHM_NLOCK = (22 + 8) * 4 + 8).
_SHM_DMS_BYTE = 128


@dataclass(frozen=True)
class WalDamage:
    valid_frames: int  # frames SQLite replays
    lost_frames: int  # frames of the current log after them
    lost_commits: int  # committed transactions among those (checkpoints, state updates)

    def message(self, db_path: Path) -> str:
        return (
            f"the store's write-ahead log ({db_path}-wal) is damaged after frame {self.valid_frames}: "
            f"{self.lost_commits} later committed transaction(s) ({self.lost_frames} frames) could not "
            "be read, so the checkpoints they held are missing from the history"
        )


# struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid (native alignment).
_FLOCK = "@hhqqi"


def _in_use(shm: str) -> bool:
    """Whether another connection has the database open (holds a lock on its -shm file)."""
    if not sys.platform.startswith("linux"):
        return True  # struct flock differs elsewhere: leave the check to Linux
    try:
        fd = os.open(shm, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: leave it to the connection that can
    try:
        probe = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, _SHM_DMS_BYTE, 1, 0)
        got = fcntl.fcntl(fd, fcntl.F_GETLK, probe.ljust(64, b"\0"))
        return bool(struct.unpack_from(_FLOCK, got)[0] != fcntl.F_UNLCK)
    except OSError:
        return True
    finally:
        os.close(fd)  # the caller has no connection to this database: no lock of ours to lose


def _checksum(data: bytes, s1: int, s2: int, big_endian: bool) -> tuple[int, int]:
    fmt = ">II" if big_endian else "<II"
    for a, b in struct.iter_unpack(fmt, data):
        s1 = (s1 + a + s2) & 0xFFFFFFFF
        s2 = (s2 + b + s1) & 0xFFFFFFFF
    return s1, s2


def check(db_path: Path) -> WalDamage | None:
    """Damage in ``db_path``'s WAL. Only while this process has no connection to the database
    (see the module's docstring), before it connects."""
    wal = f"{db_path}-wal"
    try:
        size = os.path.getsize(wal)
    except OSError:
        return None
    if size <= _WAL_HEADER or _in_use(f"{db_path}-shm"):
        return None
    try:
        with open(wal, "rb") as fh:
            return _scan(fh.read())
    except OSError:
        return None


def _scan(data: bytes) -> WalDamage | None:
    header = data[:_WAL_HEADER]
    magic, _version, page_size = struct.unpack(">III", header[:12])
    if magic not in (_WAL_MAGIC_LE, _WAL_MAGIC_BE) or page_size < 512 or page_size & (page_size - 1):
        return None
    big = magic == _WAL_MAGIC_BE
    s1, s2 = _checksum(header[:24], 0, 0, big)
    if (s1, s2) != struct.unpack(">II", header[24:32]):
        return None  # SQLite ignores a log whose header is bad: nothing of it was ever replayed
    salt = header[16:24]
    frame_size = _FRAME_HEADER + page_size
    frames = (len(data) - _WAL_HEADER) // frame_size
    valid = 0  # frames up to the last good commit: what SQLite replays
    bad_at: int | None = None
    for i in range(frames):
        off = _WAL_HEADER + i * frame_size
        fr = data[off : off + _FRAME_HEADER]
        if fr[8:16] != salt:
            bad_at = i
            break
        s1, s2 = _checksum(fr[:8], s1, s2, big)
        s1, s2 = _checksum(data[off + _FRAME_HEADER : off + frame_size], s1, s2, big)
        if (s1, s2) != struct.unpack(">II", fr[16:24]):
            bad_at = i
            break
        if struct.unpack(">I", fr[4:8])[0] != 0:
            valid = i + 1
    if bad_at is None:
        return None
    lost = commits = 0
    for i in range(bad_at, frames):
        off = _WAL_HEADER + i * frame_size
        fr = data[off : off + _FRAME_HEADER]
        if fr[8:16] != salt:
            continue  # left over from an earlier generation of the log
        lost += 1
        if struct.unpack(">I", fr[4:8])[0] != 0:
            commits += 1
    return WalDamage(valid, lost + (bad_at - valid), commits) if commits else None
