"""The stored-stats check: which directories, and every file listed in them, still have exactly
the stats the store recorded. Run in the process that walks, and also as a script in a helper
process (scan/helper.py) that checks part of the directories at the same time.

Standalone on purpose: as a script it runs under ``python -I -S``, where no tether module (and
no site-packages) can be imported. It needs only modules of the interpreter itself.

The helper's protocol: on stdin, ``marshal`` of ``(stat_format, root, items)``; on stdout, one
:data:`RECORD` per directory as it is checked, from the last one down. An empty stdin means
there is nothing to do.
"""

from __future__ import annotations

import marshal
import os
import struct
from operator import attrgetter

# typing and collections.abc are not imported at run time (the helper's start-up).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

# The stat fields the store packs (store/scan_dirs.py STAT), as one tuple built in C.
_STAT_FIELDS = attrgetter("st_mtime_ns", "st_size", "st_ino", "st_mode")
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)

VerifyItem = tuple[str, tuple[int, int, int], list[str], bytes]  # dir, its key, names, packed stats
# One verdict of the helper: 4 bytes, so each write is atomic on a pipe.
RECORD = struct.Struct("<i")


def verify_dirs(root: str, items: Sequence[VerifyItem], stat_format: str) -> list[int]:
    """Indices of the directories whose own stat and every listed file's stat are exactly as
    stored (packed with ``stat_format``). The packed comparison runs at C speed: per file, only
    the stat() call is Python."""
    check = Checker(root, stat_format)
    return [i for i, item in enumerate(items) if check(item)]


class Checker:
    """One directory at a time (the helper and the process sharing the work take them from
    both ends)."""

    def __init__(self, root: str, stat_format: str) -> None:
        self.root = root
        self._unpack = struct.Struct(stat_format).iter_unpack

    def __call__(self, item: VerifyItem) -> bool:
        rel, key, files, packed = item
        try:
            fd = os.open(f"{self.root}/{rel}" if rel else self.root, DIR_FLAGS)
        except OSError:
            return False  # gone or unreadable: the walk will say so if it still reaches it
        try:
            dst = os.fstat(fd)
            if (dst.st_mtime_ns, dst.st_ctime_ns, dst.st_ino) != key:
                return False
            stat, fields = os.stat, _STAT_FIELDS
            got = [fields(stat(name, dir_fd=fd, follow_symlinks=False)) for name in files]
            return got == list(self._unpack(packed))
        except OSError:
            return False
        finally:
            os.close(fd)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def main() -> None:
    """The helper process: one request on stdin; its directories checked from the last one
    down, each verdict written as it is known (RECORD: the index, or ``-1 - index`` when the
    directory changed), until the list is done or the parent, which checks from the first one
    up, has met it and ends it."""
    request = _read_all(0)
    if not request:  # let go unused (scan/helper.py warmed)
        os._exit(0)
    stat_format, root, items = marshal.loads(request)
    check = Checker(root, stat_format)
    pack = RECORD.pack
    for i in range(len(items) - 1, -1, -1):
        os.write(1, pack(i if check(items[i]) else -1 - i))
    os._exit(0)


if __name__ == "__main__":
    main()
