"""The stored-stats check: which directories, and every file listed in them, still have exactly
the stats the store recorded. Run in the process that walks, and also as a script in a helper
process (scan/helper.py) that checks part of the directories at the same time.

Standalone on purpose: as a script it runs under ``python -I -S``, where no tether module (and
no site-packages) can be imported. It needs only modules of the interpreter itself.

The helper's protocol: on stdin, ``marshal`` of ``(stat_format, root, items)``; on stdout,
``marshal`` of the list of indices into ``items`` it vouches for; exit status 0. Anything else
(a crash, a short answer) vouches for nothing, which only costs the walk time. An empty stdin
means there is nothing to do.
"""

from __future__ import annotations

import gc
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


def verify_dirs(root: str, items: Sequence[VerifyItem], stat_format: str) -> list[int]:
    """Indices of the directories whose own stat and every listed file's stat are exactly as
    stored (packed with ``stat_format``). The packed comparison runs at C speed: per file, only
    the stat() call is Python."""
    # The check makes a tuple per file and no reference cycle: in a process holding many
    # objects (a server), collections it would trigger cost as much as the stat() calls.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _verify(root, items, stat_format)
    finally:
        if collecting:
            gc.enable()


def _verify(root: str, items: Sequence[VerifyItem], stat_format: str) -> list[int]:
    ok: list[int] = []
    stat = os.stat
    unpack = struct.Struct(stat_format).iter_unpack
    fields = _STAT_FIELDS
    for i, (rel, key, files, packed) in enumerate(items):
        try:
            fd = os.open(f"{root}/{rel}" if rel else root, DIR_FLAGS)
        except OSError:
            continue  # gone or unreadable: the walk will say so if it still reaches it
        try:
            dst = os.fstat(fd)
            if (dst.st_mtime_ns, dst.st_ctime_ns, dst.st_ino) != key:
                continue
            got = [fields(stat(name, dir_fd=fd, follow_symlinks=False)) for name in files]
            if got == list(unpack(packed)):
                ok.append(i)
        except OSError:
            continue
        finally:
            os.close(fd)
    return ok


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def main() -> None:
    """The helper process: one request on stdin, one answer on stdout, then out at once (the
    interpreter's teardown would only delay the end of file the parent waits for)."""
    request = _read_all(0)
    if not request:  # let go unused (scan/helper.py warmed)
        os._exit(0)
    stat_format, root, items = marshal.loads(request)
    data = memoryview(marshal.dumps(verify_dirs(root, items, stat_format)))
    while data:
        data = data[os.write(1, data) :]
    os._exit(0)


if __name__ == "__main__":
    main()
