"""Saves and file changes awaiting their checkpoint: told by the editor (didSave, watched-file
events) or by Tether's own file watcher (the agent writing on disk), checkpointed once the burst
settles (``saveDebounceMs``, at the latest ``saveMaxDelayMs`` after the first). The same files
reported again (the watcher seeing a save just told) do not push the checkpoint back. The
agent's ``.agent-session.json`` is imported as agent state instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tether import protocol as P
from tether.errors import TetherError
from tether.lsp.debounce import Debounce, Timers
from tether.scan.result import AGENT_FILE

if TYPE_CHECKING:
    from tether.lsp.engine import Engine

log = logging.getLogger(__name__)


class Saves:
    def __init__(self, eng: Engine, timers: Timers) -> None:
        self._eng = eng
        self._pending: set[str] = set()
        self._from_editor = False
        self._in_flight = 0  # fired, checkpoint not written yet
        self._tasks: set[asyncio.Task[Any]] = set()
        self._debounce = Debounce(
            timers,
            self._fire,
            lambda: eng.config.save_debounce_ms / 1000,
            lambda: eng.config.save_max_delay_ms / 1000,
        )

    @property
    def checkpointing(self) -> bool:
        """A save is on its way to a checkpoint (what the status calls "checkpointing…")."""
        return self._in_flight > 0 or (bool(self._pending) and self._from_editor)

    def changed(self, paths: Sequence[str], from_editor: bool) -> None:
        """Loop thread."""
        rels = [p for p in paths if p != AGENT_FILE]
        if len(rels) < len(paths):
            self._eng.spawn(self._import_agent_file())
        if not rels:
            return
        echo = self._debounce.pending and self._pending.issuperset(rels)
        self._pending.update(rels)
        self._from_editor = self._from_editor or from_editor
        if from_editor:
            self._eng.update_status()  # "checkpointing…" at once
        if not echo:
            self._debounce.touch()

    def take(self) -> list[str]:
        """The pending paths, for a checkpoint made now instead of theirs."""
        self._debounce.cancel()
        paths = sorted(self._pending)
        self._pending.clear()
        return paths

    def cancel(self) -> None:
        self._debounce.cancel()

    async def flush(self) -> None:
        """Checkpoint the saves the debounce is holding back, and wait for those under way."""
        self._debounce.fire_now()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _fire(self) -> None:
        paths = sorted(self._pending)
        from_editor = self._from_editor
        self._pending.clear()
        self._from_editor = False
        if paths:
            self._in_flight += 1
            task = self._eng.spawn(self._checkpoint(paths, None if from_editor else "changed on disk"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _checkpoint(self, paths: list[str], message: str | None) -> None:
        try:
            with contextlib.suppress(TetherError):
                await self._eng.checkpoint(P.TRIGGER_SAVE, message, paths=paths, files_only=True)
        finally:
            self._in_flight -= 1
            self._eng.update_status()

    async def _import_agent_file(self) -> None:
        eng = self._eng
        await eng.wait_ready()
        agent = eng.backend.agent
        if agent is None:
            return
        try:
            changed, warning = await eng.run(agent.import_file)
        except Exception as exc:
            log.warning("import of %s failed: %s", AGENT_FILE, exc)
            eng.client.show_message("warning", f"Tether: could not read {AGENT_FILE}: {exc}")
            return
        if warning:
            eng.client.show_message("warning", f"Tether: {warning}")
        if changed:
            with contextlib.suppress(TetherError):
                await eng.checkpoint(P.TRIGGER_STEP, f"{AGENT_FILE} updated", allow_empty=True)
