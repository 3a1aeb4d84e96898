"""A long-lived process's file watcher, made durable in the store (git's fsmonitor): what may have
changed in the workspace since the last whole walk, for this process (the MCP server's steps) and
for every other one (``tether step``, ``tether hook``, ``tether status``, ``tether checkpoint``:
:mod:`tether.scan.dirty`) to look at those paths only instead of walking the workspace.

The watcher's row in the store (``store/watchers.py``) is its liveness token; its dirty set
holds every path whose content on disk may differ from the store's head while it is
*trusted*:

- a whole walk made after the watcher started, whose result is in head, makes it trusted (the
  paths that walk found changed and did not record stay dirty);
- each batch of the watcher's events is written as it comes (each path with the number of its
  last batch), and at once when another process's sync mark arrives, with that mark answered:
  the reader knows every change made before its mark is in;
- a checkpoint of paths taken with mark ``m`` drops those whose last batch is not after ``m``.

It stops being trusted, and readers walk, when it cannot vouch for that any more: lost events
(the kernel's queue overflowed) and a ``.gitignore`` change (files join or leave the tracked set
without an event of their own) ask for a new whole walk; a watcher that cannot be synced, or a
whole walk that finds a change it never reported (a network file system, a container mount),
turns it off for good. A process that ends removes its row; one that dies leaves a row whose
pid (with its start time and the boot) no longer runs, which readers do not trust.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tether.procs import boot_id, pid_alive, start_token
from tether.scan.dirty import external_keys
from tether.scan.result import ScanResult
from tether.scan.scanner import Scanner
from tether.scan.watcher import Watcher, unreported
from tether.store import watchers
from tether.store.db import Store
from tether.store.watchers import BASELINE, OFF, TRUSTED

log = logging.getLogger(__name__)

__all__ = ["BASELINE", "OFF", "TRUSTED", "ChangeFeed"]


class ChangeFeed:
    def __init__(
        self,
        root: Path,
        exclude: Iterable[Path] = (),
        *,
        state_dir: str | os.PathLike[str] | None = None,
        scanner: Scanner | None = None,
        on_paths: Callable[[list[str]], None] | None = None,
        debounce: float = 0.5,
    ) -> None:
        self.root = root
        exclude = [e.resolve() for e in exclude]
        # Excluded directories inside the workspace (the store's): never reported, never missed.
        self._excluded = tuple(
            str(e.relative_to(root)) + "/" for e in exclude if e != root and root in e.parents
        )
        self._state_dir = state_dir
        # Its own scanner: the ignore rules, and the fingerprint its dirty set is valid for.
        self._scanner = scanner or Scanner(root)
        self._forward = on_paths
        self.id = uuid.uuid4().hex
        self.state = BASELINE
        self._seq = 0
        # One connection of its own, used under the lock from the watcher's threads and the
        # caller's: the caller's Store belongs to the caller's thread.
        self._lock = threading.Lock()
        self._store: Store | None = None
        self._watcher = Watcher(
            root,
            self._on_paths,
            debounce,
            scanner=self._scanner,
            exclude=exclude,
            on_lost=self._on_lost,
            on_marks=self._on_marks,
        )

    def start(self) -> bool:
        try:
            self._store = Store.open(
                self.root, os.fspath(self._state_dir) if self._state_dir is not None else None
            )
            # Its rows are trusted only while this process runs in this boot: its commits (each
            # sync's answer among them, which a hook waits for) need not wait for the disk.
            self._store.commits_need_not_outlive_the_boot()
            self._register()
            self._watcher.start()
        except Exception as exc:  # inotify limits, a vanished root, a store it cannot write: walking works
            log.warning("file watcher not started (%s): steps walk the workspace", exc)
            self.state = OFF
            self._close_store()
            return False
        return True

    def stop(self) -> None:
        self._watcher.stop()
        with self._lock:
            if self._store is not None:
                try:
                    with self._store.write() as tx:
                        watchers.unregister(tx, self.id)
                except Exception as exc:
                    log.info("could not remove watcher %s from the store: %s", self.id, exc)
        self._close_store()

    def _close_store(self) -> None:
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            with contextlib.suppress(Exception):
                store.close()

    def _register(self) -> None:
        assert self._store is not None
        started = start_token(os.getpid())
        with self._store.write() as tx:
            # Rows of processes that are gone (killed, crashed): nothing of theirs holds.
            for row in watchers.rows(tx):
                if not _running(row.pid, row.started, row.boot):
                    watchers.unregister(tx, row.id)
            watchers.register(
                tx,
                watchers.WatcherRow(
                    self.id, os.getpid(), started or 0, boot_id(), BASELINE, 0, self._meta(), ()
                ),
            )

    def _meta(self) -> dict[str, Any]:
        return {"fingerprint": self._scanner.fingerprint(), "external": external_keys(self.root)}

    # --- the watcher's side -------------------------------------------------------------------

    def _on_paths(self, paths: list[str]) -> None:
        self._record(paths, [])
        if self._forward is not None:
            self._forward(paths)

    def _on_marks(self, paths: list[str], marks: list[str]) -> None:
        self._record(paths, marks)
        if self._forward is not None and paths:
            self._forward(paths)

    def _record(self, paths: list[str], marks: list[str]) -> None:
        with self._lock:
            if self.state == OFF or self._store is None:
                return
            self._seq += 1
            if self.state == TRUSTED and any(p.rpartition("/")[2] == ".gitignore" for p in paths):
                self.state = BASELINE  # files may be tracked or dropped without an event of theirs
            try:
                with self._store.write() as tx:
                    watchers.add(tx, self.id, paths, self._seq, marks)
                    watchers.set_state(tx, self.id, self.state)
            except Exception as exc:
                log.warning("file watcher: cannot record changes (%s): walking from now on", exc)
                self.state = OFF

    def _on_lost(self) -> None:
        self._set_state_if(TRUSTED, BASELINE)

    def _set_state_if(self, current: str, new: str) -> None:
        with self._lock:
            if self.state != current:
                return
            self.state = new
            self._write_state()

    def _write_state(self, meta: dict[str, Any] | None = None) -> None:
        if self._store is None:
            return
        try:
            with self._store.write() as tx:
                watchers.set_state(tx, self.id, self.state, meta)
        except Exception as exc:
            log.warning("file watcher: cannot record its state (%s)", exc)

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
        return self.begin_take()()

    def begin_take(
        self, tidy: list[Callable[[], None]] | None = None
    ) -> Callable[[], tuple[list[str], int] | None]:
        """:meth:`take` in two halves: the watcher's sync mark is made now (covering every change
        made before this call), and waited for when the returned function is called, so work
        done in between overlaps the wait. ``tidy``: as for :meth:`Watcher.end_sync`."""
        if self.state != TRUSTED:
            return lambda: None
        mark = self._watcher.begin_sync()

        def finish() -> tuple[list[str], int] | None:
            if not self._watcher.end_sync(mark, tidy=tidy):
                self._give_up()
                return None
            with self._lock:
                if self.state != TRUSTED or self._store is None:
                    return None
                return sorted(watchers.dirty(self._store, self.id)), self._seq

        return finish

    def done(self, paths: Iterable[str], mark: int) -> None:
        """``paths`` (taken with ``mark``) were looked at and checkpointed."""
        with self._lock:
            if self._store is None:
                return
            with self._store.write() as tx:
                watchers.remove(tx, self.id, dict.fromkeys(paths, mark))

    def after_full_scan(self, scan: ScanResult, mark: int | None, checkpointed: bool) -> None:
        """A whole-workspace scan started after :meth:`mark` returned ``mark``: check the feed
        against it (or set the feed up from it). ``checkpointed``: its changes are in the store."""
        if self.state == OFF or mark is None or scan.scope is not None or not scan.complete:
            return
        synced = self._watcher.sync()
        with self._lock:
            if self._store is None:
                return
            if not synced:
                self._give_up_locked()
                return
            changed = set(scan.changed_paths)
            pending = watchers.dirty(self._store, self.id)
            meta = None
            if self.state == TRUSTED:
                missing = sorted(p for p in changed - pending.keys() if self._reported(p))
                if missing:
                    log.warning(
                        "the file watcher missed changes to %s: walking the workspace from now on",
                        ", ".join(missing[:5]),
                    )
                    self.state = OFF
                    self._write_state()
                    return
            elif self.state == BASELINE:
                self.state = TRUSTED
                meta = self._meta()  # the pattern files outside the tree, as this walk read them
            with self._store.write() as tx:
                # As the scan found them: unchanged, or now in the store.
                watchers.remove_upto(tx, self.id, mark, keep=() if checkpointed else changed)
                if not checkpointed:
                    tx.executemany(
                        "INSERT OR IGNORE INTO dirty(watcher, path, seq) VALUES (?,?,?)",
                        [(self.id, p, mark) for p in changed],
                    )
                watchers.set_state(tx, self.id, self.state, meta)

    def _give_up(self) -> None:
        with self._lock:
            self._give_up_locked()

    def _give_up_locked(self) -> None:
        # A watcher that cannot be synced (dead, no answer, a root we may not mark) would make
        # every call wait for it: walk from now on, as a fresh process does.
        if self.state != OFF:
            log.warning("the file watcher cannot be synced: walking the workspace from now on")
        self.state = OFF
        self._write_state()

    def _reported(self, rel: str) -> bool:
        return not unreported(rel.rpartition("/")[2]) and not rel.startswith(self._excluded)

    def pending_count(self) -> int:
        with self._lock:
            return len(watchers.dirty(self._store, self.id)) if self._store is not None else 0


def _running(pid: int, started: int, boot: str) -> bool:
    return boot == boot_id() and pid_alive(pid) and start_token(pid) == started
