"""Server-side file watcher: files the agent writes on disk get checkpointed too.

A watchdog observer on the workspace runs in its own thread. Events are filtered through the
scanner's ignore rules (``.git``, ``node_modules``, .gitignore…), collected, and handed to a
callback as one batch of workspace-relative paths at most every ``debounce`` seconds, so an
agent rewriting 500 files costs one callback, not 500. ``.agent-session.json`` is reported even
though the scanner ignores it: the server imports it as agent state.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tether.errors import OutsideWorkspaceError
from tether.paths import normalize_rel
from tether.scan import Scanner

log = logging.getLogger(__name__)

AGENT_FILE = ".agent-session.json"

OnPaths = Callable[[list[str]], None]


class Watcher:
    def __init__(
        self,
        root: Path,
        on_paths: OnPaths,
        debounce: float = 0.5,
        scanner: Scanner | None = None,
        exclude: list[Path] | None = None,
    ) -> None:
        self.root = root.resolve()
        self._on_paths = on_paths
        self._debounce = debounce
        self._scanner = scanner or Scanner(self.root)
        self._ignore = self._scanner.ignore_rules()
        self._exclude = [p.resolve() for p in (exclude or [])]
        self._pending: set[str] = set()
        self._cond = threading.Condition()
        self._stopping = False
        self._observer: object | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return  # reads, not writes
                is_dir = bool(event.is_directory)
                if is_dir and event.event_type == "modified":
                    return  # an entry changed inside: that entry has its own event
                watcher._event(os.fsdecode(event.src_path), is_dir)
                dest = getattr(event, "dest_path", "")
                if dest:
                    watcher._event(os.fsdecode(dest), is_dir)

        observer = Observer()
        observer.daemon = True
        observer.schedule(Handler(), str(self.root), recursive=True)
        observer.start()
        self._observer = observer
        self._thread = threading.Thread(target=self._run, name="tether-watch", daemon=True)
        self._thread.start()
        log.info("watching %s", self.root)

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        observer = self._observer
        if observer is not None:
            observer.stop()  # type: ignore[attr-defined]
            observer.join(timeout)  # type: ignore[attr-defined]
        if self._thread is not None:
            self._thread.join(timeout)
        self._observer = None
        self._thread = None

    # --- events ---------------------------------------------------------------------------

    def relevant(self, abs_path: str, is_dir: bool = False) -> str | None:
        """Workspace-relative path when an event on ``abs_path`` should be reported."""
        path = Path(abs_path)
        for ex in self._exclude:
            if path == ex or ex in path.parents:
                return None
        try:
            rel = normalize_rel(self.root, path)
        except OutsideWorkspaceError:
            return None
        name = rel.rsplit("/", 1)[-1]
        if rel == AGENT_FILE:
            return rel
        if name.endswith(".tmp") and (".tether-" in name or name.startswith(".")):
            return None  # our own atomic writes and editors' swap files
        if name == ".gitignore":
            self._ignore = self._scanner.ignore_rules()
        return None if self._ignored(rel, is_dir) else rel

    def _ignored(self, rel: str, is_dir: bool) -> bool:
        # The scanner's rule engine is internal to scan.py; if its shape changes, report the
        # path anyway: Checkpointer.scan_paths applies the same rules again before recording.
        try:
            if is_dir:
                return bool(self._ignore.stack_for(rel) is None)
            return bool(self._ignore.path_ignored(rel))
        except Exception as exc:
            log.debug("ignore check failed for %s: %s", rel, exc)
            return False

    def _event(self, abs_path: str, is_dir: bool = False) -> None:
        rel = self.relevant(abs_path, is_dir)
        if rel is None:
            return
        with self._cond:
            self._pending.add(rel)
            self._cond.notify_all()

    def _stop_requested(self) -> bool:
        return self._stopping

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                # Let the burst settle, then hand it over in one piece.
                deadline = time.monotonic() + self._debounce
                while not self._stopping and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                if self._stop_requested():
                    return
                batch = sorted(self._pending)
                self._pending.clear()
            try:
                self._on_paths(batch)
            except Exception:
                log.exception("watcher callback failed")
