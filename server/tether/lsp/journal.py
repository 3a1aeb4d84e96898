"""The unsaved-buffer journal: this editor's open files, cursors and unsaved text, written to the
store's live state about a second after edits settle (at the latest twice that after the first
unjournaled edit, so continuous typing cannot postpone it; cursor moves never postpone it).

One entry per editor session in the state ``editor.journal`` (``editor/resume.py``), rewritten
in one read-modify-write so two editors on one workspace keep each other's entries. At shutdown
the journal is written one last time, marked ``clean``, and frozen.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from tether.editor import resume as resume_mod
from tether.editor.documents import Documents
from tether.errors import TetherError
from tether.logs import get_logger
from tether.lsp.config import Config
from tether.lsp.debounce import Debounce, Timers
from tether.redact import looks_secret

if TYPE_CHECKING:
    from tether.lsp.backend import Backend

log = get_logger(__name__)

T = TypeVar("T")


class JournalHost(Protocol):
    """What the journal needs from the engine."""

    session_id: str
    docs: Documents
    config: Config

    @property
    def backend(self) -> Backend: ...

    async def wait_ready(self) -> None: ...

    async def run(self, fn: Callable[[], T]) -> T: ...

    def spawn(self, coro: Awaitable[Any]) -> Any: ...


class Journal:
    def __init__(self, host: JournalHost, timers: Timers) -> None:
        self._host = host
        self._debounce = Debounce(
            timers,
            lambda: self._host.spawn(self.flush()),
            lambda: host.config.buffer_journal_debounce_ms / 1000,
            lambda: 2 * host.config.buffer_journal_debounce_ms / 1000,
        )
        self._written_gen = -1
        self.frozen = False  # after shutdown: the journal keeps the last editing state

    def schedule(self, restart: bool = True) -> None:
        """An edit (``restart``) or a cursor move (not)."""
        if not self.frozen:
            self._debounce.touch(restart)

    def cancel(self) -> None:
        self._debounce.cancel()

    async def flush_now(self) -> None:
        """Write now what a pending write would have written (before a checkpoint)."""
        self._debounce.cancel()
        await self.flush()

    async def finish(self) -> None:
        """The last write (the editor went away in order), then no more."""
        self._debounce.cancel()
        try:
            await self.flush(clean=True)
        finally:
            self.frozen = True

    async def flush(self, clean: bool = False) -> None:
        """``clean``: the editor shut down in order; its journal then offers a resume only for
        unsaved text it did not get back (status_model.resume_offer)."""
        if self.frozen:
            return
        host = self._host
        gen = host.docs.generation
        if gen == self._written_gen and not clean:
            return
        await host.wait_ready()
        # Like checkpoints, huge buffers are not stored (the journal is rewritten every second).
        snap = host.docs.snapshot(host.session_id, with_text=True, max_text=host.config.max_file_bytes)
        snap["pid"] = os.getpid()
        if clean:
            snap["clean"] = True

        def write() -> None:
            # Buffers opened a moment ago may not be vetted yet: do it here, off the loop.
            kept = []
            for buf in snap["buffers"]:
                if buf.pop("vetted") or not (
                    looks_secret(buf["path"]) or path_ignored(host.docs.root, buf["path"])
                ):
                    kept.append(buf)
            snap["buffers"] = kept

            def fn(data: bytes | None) -> bytes:
                others = [
                    j for j in resume_mod.journal_sessions(data) if j.get("sessionId") != host.session_id
                ]
                return resume_mod.dump_sessions([*others, snap])

            host.backend.store.update_state(resume_mod.STATE_JOURNAL, fn)

        try:
            await host.run(write)
            self._written_gen = gen
        except TetherError as exc:
            log.error("journal write failed: %s", exc.message)


def path_ignored(root: Path, rel: str) -> bool:
    """Whether the scan ignores ``rel`` (.gitignore, ``node_modules``…): its unsaved text is not
    journaled either. Fails closed: when the rules cannot be read, nothing is stored."""
    from tether.scan.scanner import Scanner

    try:
        return bool(Scanner(root).ignore_rules().path_ignored(rel))
    except Exception as exc:
        log.debug("ignore check failed for %s: %s", rel, exc)
        return True
