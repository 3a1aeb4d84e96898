"""What may have changed in the workspace since the last look, from a file watcher, so that a
long-lived process (the MCP server) records a step by looking at those paths only instead of
walking the whole workspace.

While the feed is *trusted*, every tracked path whose content on disk may differ from the
store's head is in ``pending``:

- a whole-workspace scan made after the watcher started sets it up (the paths it finds
  changed join ``pending``);
- the watcher's events keep it (each path with the sequence number of its last event, so a
  path written again while a step looks at it stays pending);
- a step (or checkpoint) that looked at paths taken with mark ``m`` drops those whose last
  event is not newer than ``m``: their content is in the store now.

Every later whole-workspace scan checks it: a changed path the watcher never reported means
events go missing here (a network file system, a container mount): the feed turns itself off
for good and callers walk the workspace. A ``.gitignore`` change (tracked files appear or go
without an event) or lost events (the kernel's queue overflowed) ask for a new baseline: until
the next whole scan, callers walk. A watcher that cannot be synced (no answer, a root it may
not mark) is not asked again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path

from tether.scan.result import ScanResult
from tether.scan.scanner import Scanner
from tether.scan.watcher import Watcher, unreported

log = logging.getLogger(__name__)

BASELINE = "baseline"  # callers walk; the next whole scan makes the feed trusted
TRUSTED = "trusted"
OFF = "off"  # the watcher missed a change, or never started: callers always walk


class ChangeFeed:
    def __init__(self, root: Path, exclude: Iterable[Path] = ()) -> None:
        self.root = root
        exclude = [e.resolve() for e in exclude]
        # Excluded directories inside the workspace (the store's): never reported, never missed.
        self._excluded = tuple(
            str(e.relative_to(root)) + "/" for e in exclude if e != root and root in e.parents
        )
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}
        self._seq = 0
        self.state = BASELINE
        # Its own scanner for the ignore rules: the caller's lives in another thread.
        self._watcher = Watcher(
            root, self._on_paths, scanner=Scanner(root), exclude=exclude, on_lost=self._on_lost
        )

    def start(self) -> bool:
        try:
            self._watcher.start()
        except Exception as exc:  # inotify limits, a vanished root: walking still works
            log.warning("file watcher not started (%s): steps walk the workspace", exc)
            self.state = OFF
            return False
        return True

    def stop(self) -> None:
        self._watcher.stop()

    # --- the watcher's side -------------------------------------------------------------------

    def _on_paths(self, paths: list[str]) -> None:
        with self._lock:
            if self.state == OFF:
                return
            self._seq += 1
            for p in paths:
                self._pending[p] = self._seq
            if self.state == TRUSTED and any(p.rpartition("/")[2] == ".gitignore" for p in paths):
                self.state = BASELINE  # files may be tracked or dropped without an event of theirs

    def _on_lost(self) -> None:
        with self._lock:
            if self.state == TRUSTED:
                self.state = BASELINE

    # --- the caller's side (one thread) ---------------------------------------------------------

    def mark(self) -> int | None:
        """Before a whole-workspace scan: every event so far is in; None when the watcher
        cannot vouch for that."""
        if self.state == OFF:
            return None
        if not self._watcher.sync():
            self._give_up()
            return None
        with self._lock:
            return self._seq

    def take(self) -> tuple[list[str], int] | None:
        """The paths that may differ from head now, and the mark to hand back to :meth:`done`;
        None: walk the workspace instead."""
        if self.state != TRUSTED:
            return None
        if not self._watcher.sync():
            self._give_up()
            return None
        with self._lock:
            if self.state != TRUSTED:
                return None
            return sorted(self._pending), self._seq

    def done(self, paths: Iterable[str], mark: int) -> None:
        """``paths`` (taken with ``mark``) were looked at and checkpointed."""
        with self._lock:
            for p in paths:
                if self._pending.get(p, mark + 1) <= mark:
                    del self._pending[p]

    def after_full_scan(self, scan: ScanResult, mark: int | None, checkpointed: bool) -> None:
        """A whole-workspace scan started after :meth:`mark` returned ``mark``: check the feed
        against it (or set the feed up from it). ``checkpointed``: its changes are in the store."""
        if self.state == OFF or mark is None or scan.scope is not None:
            return
        synced = self._watcher.sync()
        with self._lock:
            changed = set(scan.changed_paths)
            if not synced:
                self._give_up_locked()
                return
            if self.state == TRUSTED:
                missing = sorted(p for p in changed - self._pending.keys() if self._reported(p))
                if missing:
                    log.warning(
                        "the file watcher missed changes to %s: walking the workspace from now on",
                        ", ".join(missing[:5]),
                    )
                    self.state = OFF
                    self._pending.clear()
                    return
            elif self.state == BASELINE:
                self.state = TRUSTED
            for p, seq in list(self._pending.items()):
                if seq <= mark and (checkpointed or p not in changed):
                    del self._pending[p]  # as the scan found it: unchanged, or now in the store
            if not checkpointed:
                for p in changed:
                    self._pending.setdefault(p, mark)

    def _give_up(self) -> None:
        with self._lock:
            self._give_up_locked()

    def _give_up_locked(self) -> None:
        # A watcher that cannot be synced (dead, no answer, a root we may not mark) would make
        # every call wait for it: walk from now on, as a fresh process does.
        log.warning("the file watcher cannot be synced: walking the workspace from now on")
        self.state = OFF
        self._pending.clear()

    def _reported(self, rel: str) -> bool:
        return not unreported(rel.rpartition("/")[2]) and not rel.startswith(self._excluded)

    def pending_count(self) -> int:
        with self._lock:
            return len(self._pending)
