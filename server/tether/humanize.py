"""Short human labels shared by the CLI and the status notification."""

from __future__ import annotations

import time


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
