"""Short human labels shared by the CLI, the MCP server and the status notification."""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tether.model import CheckpointInfo


def ago(t: float, now: float | None = None) -> str:
    delta = max(0.0, (now if now is not None else time.time()) - t)
    if delta < 45:
        return "just now"
    if delta < 3600:
        return f"{round(delta / 60) or 1}m ago"
    if delta < 86400:
        return f"{round(delta / 3600)}h ago"
    return f"{round(delta / 86400)}d ago"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def checkpoint_line(info: CheckpointInfo) -> str:
    """One timeline row: number, local time, age, trigger, file count, message."""
    from tether.text import escape

    msg = f"  {escape(info.message)}" if info.message else ""
    if info.origin:
        msg = f"  [from {escape(info.origin)}]{msg}"
    files = plural(len(info.files), "file")
    return (
        f"{info.id:>5}  {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(info.time))}  "
        f"{ago(info.time):>9}  {info.trigger:<8} {files:>9}{msg}"
    )
