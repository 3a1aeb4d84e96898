"""Each pane's shell history file (written by Tether's shell hook), redacted in place and read back
for snapshots, and the private files a recreated pane reads (seeded history, replay)."""

from __future__ import annotations

import os
import re
from contextlib import suppress
from pathlib import Path

from tether.redact import redact_lines
from tether.safefs import create_private_file

# A history file beyond this is cut to its last _HISTORY_KEEP bytes when it is redacted (bash
# caps its own at HISTFILESIZE lines; the zsh hook only appends).
_HISTORY_MAX = 64 << 20


_HISTORY_KEEP = 16 << 20


def redact_file(path: Path, known: dict[str, tuple[int, int]] | None = None) -> Path:
    """Redact a pane's history file in place: the shell appends commands in clear, and a secret
    typed on a command line must not stay on disk past the next snapshot.

    ``known`` maps a path to (inode, size) already redacted: the shell only appends, so only the
    lines after that offset are read again. A line the shell appends while the file is rewritten
    would be lost by the rename, so the rewrite is retried on the grown file."""
    for _attempt in range(3):
        try:
            st = os.stat(path)
            if st.st_size == 0:
                return path
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            return path
        seen = known.get(str(path)) if known is not None else None
        start = 0
        if seen is not None and seen[0] == st.st_ino and seen[1] <= len(data):
            start = data.rfind(b"\n", 0, seen[1]) + 1  # from the start of a line
        cut = len(data) > _HISTORY_MAX
        if cut:
            data = data[data.find(b"\n", len(data) - _HISTORY_KEEP) + 1 :]
            start = 0
        head, text = data[:start], data[start:].decode("utf-8", "surrogateescape")
        redacted = redact_lines(text.split("\n"))
        out = "\n".join(redacted)
        if out == text and not cut:
            if known is not None:
                known[str(path)] = (st.st_ino, len(data))
            return path
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            body = head + out.encode("utf-8", "surrogateescape")
            write_private(tmp, body)
            if os.stat(path).st_size == st.st_size:
                os.replace(tmp, path)
                if known is not None:
                    known[str(path)] = (os.stat(path).st_ino, len(body))
                return path
            tmp.unlink()
        except OSError:
            with suppress(OSError):
                tmp.unlink()
            return path
    return path


def tail_lines(path: Path, n: int) -> list[str]:
    if n <= 0:
        return []
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            chunk = min(size, max(4096, n * 256))
            fh.seek(size - chunk)
            data = fh.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    if chunk < size:
        lines = lines[1:]  # first line may be cut
    # bash writes "#<epoch>" lines when HISTTIMEFORMAT is set; they are not commands.
    lines = [ln for ln in lines if ln and not re.fullmatch(r"#\d+", ln)]
    return lines[-n:]


def write_private(path: Path, data: bytes) -> None:
    """0600 file in a 0700 dir, without fsync: replay and seeded history files are consumed within
    seconds and rebuilt from the snapshot if lost, so durability would only cost ~3 ms per pane."""
    fd = create_private_file(path.parent, path.name)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
