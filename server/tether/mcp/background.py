"""Work the MCP server does beside the requests: the workspace's tmux session snapshotted on
each change of its own (``tmux_watch.py``), as the language server does. Without it, a command
started in a pane would be recorded only at the next checkpoint or structural change."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from tether.errors import TmuxError
from tether.logs import get_logger

if TYPE_CHECKING:
    from tether.mcp.backend import Backend
    from tether.tmux.watch import TmuxWatch

log = get_logger(__name__)


async def watch_tmux(backend: Backend) -> None:
    """Runs until cancelled (the server's end). No tmux, or one too old: nothing to watch."""
    root = await backend.wait_root()

    def start() -> TmuxWatch | None:
        from tether.tmux import version as tmux_version
        from tether.tmux.user import user_link
        from tether.tmux.watch import TmuxWatch

        try:
            tmux_version.require()
        except TmuxError as exc:
            log.info("tmux session not watched: %s", exc.message)
            return None
        link, _warnings = user_link(root, backend.state_dir)
        watch = TmuxWatch(link)
        watch.start()
        return watch

    watch = await asyncio.to_thread(start)
    if watch is None:
        return
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.to_thread(watch.stop)
