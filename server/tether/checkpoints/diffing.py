"""Unified diffs between stored and live file contents; binary detection."""

from __future__ import annotations

import difflib
from typing import Any

from tether.record import dataclass
from tether.text import escape

# Diffs of huge files are useless in a preview and slow to compute.
MAX_DIFF_BYTES = 1024 * 1024


@dataclass(frozen=True)
class FileDiff:
    path: str
    status: str  # "added" | "modified" | "deleted"
    binary: bool
    diff: str | None

    def to_wire(self) -> dict[str, Any]:
        return {"path": self.path, "status": self.status, "binary": self.binary, "diff": self.diff}


def is_binary(data: bytes) -> bool:
    if b"\x00" in data[:8192]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def file_diff(
    path: str, before: bytes | None, after: bytes | None, before_label: str = "a", after_label: str = "b"
) -> FileDiff | None:
    """Diff of one path from ``before`` to ``after`` (None = absent); None when identical."""
    if before == after:
        return None
    status = "added" if before is None else "deleted" if after is None else "modified"
    binary = any(x is not None and is_binary(x) for x in (before, after))
    if binary or max(len(before or b""), len(after or b"")) > MAX_DIFF_BYTES:
        return FileDiff(path, status, binary, None)
    a = (before or b"").decode("utf-8").splitlines(keepends=True)
    b = (after or b"").decode("utf-8").splitlines(keepends=True)
    # The header names the path escaped: a newline or escape in a file name must not forge
    # diff lines or reach a terminal (the path field keeps the real name).
    shown = escape(path)
    lines = difflib.unified_diff(
        a,
        b,
        fromfile=f"{before_label}/{shown}" if before is not None else "/dev/null",
        tofile=f"{after_label}/{shown}" if after is not None else "/dev/null",
    )
    text = "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
    return FileDiff(path, status, False, text)


def diff_piece(d: FileDiff) -> str:
    """One file's part of a printed diff: its unified diff, or a line saying why there is none."""
    if d.diff:
        return d.diff
    if d.binary:
        return f"Binary file {escape(d.path)} {d.status}\n"
    if d.diff is None:
        return f"File {escape(d.path)} {d.status} (too large to show)\n"
    return f"File {escape(d.path)}: mode changed\n"


def diff_text(diffs: list[FileDiff]) -> str:
    return "".join(diff_piece(d) for d in diffs)


@dataclass(frozen=True)
class CappedDiff:
    """A diff fitted into ``max_chars``: files in order, each whole, the one crossing the cap
    cut at a line boundary, the rest listed without their text."""

    files: list[FileDiff]
    cut: list[str]  # paths whose diff text was shortened or left out
    text: str
    total_chars: int  # the whole diff's length


def cap_diff(diffs: list[FileDiff], max_chars: int) -> CappedDiff:
    files: list[FileDiff] = []
    cut: list[str] = []
    parts: list[str] = []
    used = 0
    total = 0
    for d in diffs:
        piece = diff_piece(d)
        total += len(piece)
        room = max_chars - used
        if len(piece) <= room:
            files.append(d)
            parts.append(piece)
            used += len(piece)
            continue
        cut.append(d.path)
        if d.diff and room > 0 and len(cut) == 1:  # the file crossing the cap: its first lines
            end = d.diff.rfind("\n", 0, room)
            if end > 0:
                short = d.diff[: end + 1]
                files.append(FileDiff(d.path, d.status, d.binary, short))
                parts.append(short)
                used += len(short)
                continue
        files.append(FileDiff(d.path, d.status, d.binary, None))
    return CappedDiff(files, cut, "".join(parts), total)
