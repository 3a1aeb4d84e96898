"""Reading another process's file watcher (git's fsmonitor, from the client's side): a ``tether``
command that finds a live, trusted watcher for the workspace looks only at the paths in its
dirty set, O(changed), instead of walking the workspace (:mod:`tether.scan.feed` keeps it).

Trusted means, checked here in this order:

- its row says ``trusted`` and was made by a scanner with the same settings as ours;
- its process still runs: the pid, with the same start time, in the same boot (a crash or a
  ``kill -9`` leaves a row of a process that is gone, or a pid reused by another process);
- the pattern files outside the tree (``info/exclude``, ``core.excludesFile``) are as they were
  when its last whole walk read them (the watcher cannot see them);
- it answers a sync: we create a mark (an empty directory named for this process) in the
  workspace root and wait, bounded, until its row says it wrote every event before the mark
  (one watch's events arrive in order). A watcher that does not answer is not asked to vouch.

Anything else, and the caller walks as it always did. Nothing here writes but the mark and, once
a checkpoint holds what was taken, :func:`done`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path

from tether.procs import boot_id, pid_alive, start_token
from tether.scan.result import Taken
from tether.store import watchers
from tether.store.db import Store
from tether.store.watchers import TRUSTED, WatcherRow

log = logging.getLogger(__name__)

SYNC_TIMEOUT = 2.0
MARK_PREFIX = ".tether-sync-"
_marks = itertools.count(1)


def external_keys(root: Path) -> dict[str, list[int]]:
    """(mtime, size, inode) of the pattern files git reads besides the tree's .gitignore files
    (missing: zeros)."""
    from tether.scan.ignore_sources import excludes_sources

    out: dict[str, list[int]] = {}
    for path, _ in excludes_sources(root):
        try:
            st = os.stat(path)
            out[path] = [st.st_mtime_ns, st.st_size, st.st_ino]
        except OSError:
            out[path] = [0, 0, 0]
    return out


def candidates(store: Store, fingerprint: list[object]) -> list[WatcherRow]:
    """Watchers whose dirty set would do for us, before asking them anything."""
    rows = [r for r in watchers.rows(store) if r.state == TRUSTED]
    if not rows:
        return []
    ours = _plain(fingerprint)
    boot = boot_id()
    live = [
        r
        for r in rows
        if r.meta.get("fingerprint") == ours
        and r.boot == boot
        and pid_alive(r.pid)
        and start_token(r.pid) == r.started
    ]
    if not live:
        return []
    external = external_keys(store.root)
    return [r for r in live if r.meta.get("external") == external]


def take(store: Store, fingerprint: list[object], timeout: float = SYNC_TIMEOUT) -> Taken | None:
    """The dirty set of a live, trusted, synced watcher of ``store``'s workspace; None: walk."""
    pending = begin_take(store, fingerprint, timeout)
    return pending.result() if pending is not None else None


def begin_take(store: Store, fingerprint: list[object], timeout: float = SYNC_TIMEOUT) -> PendingTake | None:
    """:func:`take` in two halves: the watchers are found and the sync mark is made now (it
    covers every change made before this call), and waited for by :meth:`PendingTake.result`,
    so work done in between overlaps the wait. None: no watcher can vouch (walk)."""
    found = candidates(store, fingerprint)
    if not found:
        return None
    mark = f"{MARK_PREFIX}{os.getpid()}-{next(_marks)}-{time.monotonic_ns()}.tmp"
    try:
        os.mkdir(store.root / mark, 0o700)
    except OSError as exc:
        log.info("cannot mark %s for a watcher sync (%s): walking", store.root, exc)
        return None
    return PendingTake(store, [r.id for r in found], mark, timeout)


class PendingTake:
    """A sync mark made, its answer not yet waited for. Either :meth:`result` or :meth:`cancel`
    removes the mark; calling one of them is the caller's duty (a ``finally``)."""

    def __init__(self, store: Store, ids: list[str], mark: str, timeout: float) -> None:
        self._store = store
        self._ids = ids
        self._mark = mark
        self._timeout = timeout
        self._deadline = time.monotonic() + timeout  # counted from the mark, as the watcher sees it
        self._open = True

    def result(self) -> Taken | None:
        """The dirty set once the watcher has answered; None: walk (no answer in time, or it
        stopped vouching). Only the first call (or none after :meth:`cancel`) asks."""
        if not self._open:
            return None
        store = self._store
        try:
            answered = _wait_for(store, self._ids, self._mark, self._deadline)
        finally:
            self.cancel()
        if answered is None:
            log.info("no file watcher answered within %.1fs: walking", self._timeout)
            return None
        with store.snapshot():
            rows = watchers.rows(store, [answered])
            if not rows or rows[0].state != TRUSTED:
                return None  # e.g. a .gitignore change, flushed with our mark
            return Taken(answered, watchers.dirty(store, answered))

    def cancel(self) -> None:
        """Remove the mark without waiting for the answer."""
        if self._open:
            self._open = False
            with contextlib.suppress(OSError):
                os.rmdir(self._store.root / self._mark)


def _wait_for(store: Store, ids: list[str], mark: str, deadline: float) -> str | None:
    # A watcher answers within a few milliseconds (an inotify event, one commit; ~1.5 ms on a
    # 2-core machine): asked often at first, since every hook and step waits for it; then less
    # and less often, up to its deadline. Slow growth: a faster one (x1.5) saw a typical answer
    # ~1 ms late, and each look (one small query, ~25 µs) costs little beside that.
    delay = 0.0002
    while True:
        for row in watchers.rows(store, ids):
            if mark in row.acked:
                return row.id
        if time.monotonic() > deadline:
            return None
        time.sleep(delay)
        delay = min(delay * 1.15, 0.02)


def done(store: Store, taken: Taken) -> None:
    """The taken paths are in head now (a checkpoint holds them): off the dirty set, unless the
    watcher saw them change again since."""
    if taken.rows:
        # The dirty set means nothing in the next boot: this commit need not wait for the disk.
        with store.write(durable=False) as tx:
            watchers.remove(tx, taken.watcher, taken.rows)


def _plain(value: object) -> object:
    """As JSON gives it back (tuples as lists)."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
