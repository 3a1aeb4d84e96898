"""Progress of a long checkpoint (a first one in a big tree) on stderr, when it is a terminal:
one line rewritten in place, at most every PROGRESS_EVERY seconds, and only once the work has
taken PROGRESS_DELAY (a quick command prints nothing). Never on a pipe: agents read the output."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

from tether.humanize import size

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

    from tether.checkpoints.checkpointer import Checkpointer

PROGRESS_DELAY = 0.5
PROGRESS_EVERY = 0.1


class TerminalProgress:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self.last = 0.0
        self.shown = False

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self.started < PROGRESS_DELAY or now - self.last < PROGRESS_EVERY:
            return
        self.last = now
        if stage == "write" and total:
            text = f"tether: writing checkpoint {done * 100 // total}% ({size(done)} of {size(total)})"
        else:
            text = f"tether: scanning workspace… {done} files"
        self.stream.write(f"\r\x1b[K{text}")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


@contextlib.contextmanager
def terminal_progress(checkpointer: Checkpointer, stream: TextIO | None = None) -> Iterator[None]:
    """``checkpointer``'s checkpoints in the block report to the terminal (stderr), if it is one."""
    stream = stream or sys.stderr
    if not stream.isatty():
        yield
        return
    progress = TerminalProgress(stream)
    checkpointer.progress = progress
    try:
        yield
    finally:
        checkpointer.progress = None
        progress.clear()
