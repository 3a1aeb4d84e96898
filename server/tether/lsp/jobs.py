"""The server's background jobs, each a task of the engine: the baseline scan at start (with a
progress report), Tether's own file watcher, the periodic checkpoint, the tmux status poll."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from tether import protocol as P
from tether.errors import TetherError
from tether.humanize import plural
from tether.logs import get_logger

if TYPE_CHECKING:
    from tether.lsp.engine import Engine
    from tether.scan.feed import ChangeFeed

log = get_logger(__name__)

TMUX_POLL_SECONDS = 15.0


async def baseline(eng: Engine) -> None:
    """The whole workspace, once: files only (no checkpoint for a moved cursor)."""
    # The progress token is asked for beside the scan, not before it: a client slow to answer
    # workDoneProgress/create must not hold the baseline up.
    client = eng.client
    progress = (
        eng.spawn(client.progress_begin("Tether", "scanning workspace")) if client.supports_progress else None
    )
    info = None
    try:
        info = await eng.checkpoint(P.TRIGGER_BASELINE, None, full=True, files_only=True)
    except TetherError:
        pass  # reported through the status (state "error")
    finally:
        eng.baseline_done()
        token = None
        if progress is not None:
            if progress.done() and not progress.cancelled() and progress.exception() is None:
                token = progress.result()
            else:
                progress.cancel()
        client.progress_end(token, f"{plural(len(info.files), 'file')} recorded" if info else "up to date")


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
