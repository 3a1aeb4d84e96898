"""The server's background jobs, each a task of the engine: the baseline scan at start (with a
progress report), Tether's own file watcher, the periodic checkpoint, the tmux status poll."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING

from tether import protocol as P
from tether.errors import CancelledError, TetherError
from tether.humanize import plural, size

if TYPE_CHECKING:
    from tether.lsp.client import ClientPort
    from tether.lsp.engine import Engine
    from tether.scan.feed import ChangeFeed

log = logging.getLogger(__name__)

TMUX_POLL_SECONDS = 15.0
REPORT_EVERY = 0.25  # seconds between the baseline's progress reports


async def baseline(eng: Engine) -> None:
    """The whole workspace, once: files only (no checkpoint for a moved cursor). With a client
    that supports it, a cancellable work-done progress with a percentage (the bytes stored)."""
    # The progress token is asked for beside the scan, not before it: a client slow to answer
    # workDoneProgress/create must not hold the baseline up.
    client = eng.client
    cancel = threading.Event()
    progress = (
        eng.spawn(client.progress_begin("Tether", "scanning workspace", on_cancel=cancel.set))
        if client.supports_progress
        else None
    )
    reporter = _Reporter(client, progress, cancel, asyncio.get_running_loop()) if progress else None
    info = None
    cancelled = False
    try:
        info = await eng.checkpoint(P.TRIGGER_BASELINE, None, full=True, files_only=True, progress=reporter)
    except CancelledError:
        cancelled = True
    except TetherError:
        pass  # reported through the status (state "error")
    finally:
        eng.baseline_done()
        token = None
        if progress is not None:
            if progress.done() and not progress.cancelled() and progress.exception() is None:
                token = progress.result()
                if reporter is not None:
                    reporter.flush()  # a report kept until the token came
            else:
                progress.cancel()
        if cancelled:
            end = "cancelled: nothing recorded (the next periodic checkpoint scans again)"
        else:
            end = f"{plural(len(info.files), 'file')} recorded" if info else "up to date"
        client.progress_end(token, end)


class _Reporter:
    """The baseline's progress, called on the worker thread: stops it once the user cancelled,
    and sends at most one report every REPORT_EVERY seconds (and at each new stage) to the
    client through the event loop, once the client has given a token."""

    def __init__(
        self,
        client: ClientPort,
        token: asyncio.Future[object | None],
        cancel: threading.Event,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.client = client
        self.token = token
        self.cancel = cancel
        self.loop = loop
        self.last = 0.0
        self.stage = ""
        self.waiting: tuple[str, int] | None = None

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if self.cancel.is_set():
            raise CancelledError("the baseline checkpoint was cancelled: nothing was written")
        now = time.monotonic()
        if stage == self.stage and now - self.last < REPORT_EVERY:
            return
        self.stage, self.last = stage, now
        if stage == "write" and total:
            pct = min(100, done * 100 // total)
            message = f"storing files: {pct}% ({size(done)} of {size(total)})"
        else:
            pct, message = 0, f"scanning workspace: {plural(done, 'file')}"
        self.loop.call_soon_threadsafe(self._send, message, pct)

    def _send(self, message: str, pct: int) -> None:
        """Event loop: report, or keep the latest until the client has answered with a token."""
        if not self.token.done():
            if self.waiting is None:
                self.token.add_done_callback(lambda _: self.flush())
            self.waiting = (message, pct)
            return
        self.waiting = (message, pct)
        self.flush()

    def flush(self) -> None:
        if self.waiting is None or self.token.cancelled() or self.token.exception() is not None:
            return
        message, pct = self.waiting
        self.waiting = None
        self.client.progress_report(self.token.result(), message, pct)


async def start_watcher(eng: Engine) -> ChangeFeed | None:
    """Tether's file watcher (the agent's writes on disk, feeding the saves), kept durable in the
    store for the CLI's steps and hooks (scan/feed.py); None if it could not start."""
    from tether.lsp.backend import scanner_for
    from tether.scan.feed import ChangeFeed

    b = eng.backend
    # The store (and the log) may live inside the workspace: its writes are not changes.
    state = b.store.db_path.parents[2]
    loop = asyncio.get_running_loop()

    def on_paths(paths: list[str]) -> None:
        if not eng.closed:
            loop.call_soon_threadsafe(eng.saves.changed, paths, False)

    feed = ChangeFeed(
        eng.root,
        exclude=[state],
        state_dir=eng.config.state_dir,
        scanner=scanner_for(b.store, eng.config.max_file_bytes),
        on_paths=on_paths,
        debounce=eng.config.watcher_debounce_ms / 1000,
    )
    started = await loop.run_in_executor(None, feed.start)
    return feed if started else None


async def periodic(eng: Engine) -> None:
    while True:
        await asyncio.sleep(eng.config.checkpoint_interval_seconds)
        with contextlib.suppress(TetherError):
            await eng.checkpoint(P.TRIGGER_PERIODIC, None, full=True, files_only=True)


async def poll_tmux(eng: Engine) -> None:
    while True:
        await asyncio.sleep(TMUX_POLL_SECONDS)
        b = eng.backend_or_none
        if b is not None and b.tmux is not None:
            with contextlib.suppress(Exception):
                await eng.run(eng.refresh_side_state)
        eng.update_status()
