"""Unified diffs between stored and live file contents; binary detection."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

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
