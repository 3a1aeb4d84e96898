"""Server-side file watcher: files the agent writes on disk get checkpointed too.

A watchdog observer on the workspace runs in its own thread. Events are filtered through the
scanner's ignore rules (``.git``, ``node_modules``, .gitignore…), collected, and handed to a
callback as one batch of workspace-relative paths at most every ``debounce`` seconds, so an
agent rewriting 500 files costs one callback, not 500. ``.agent-session.json`` is reported even
though the scanner ignores it: the server imports it as agent state.

:meth:`Watcher.sync` hands over at once every event of a change made before the call: it creates
(and then removes) an empty hidden directory named for this process and this call in the
workspace root, and waits for that event. One watch's events arrive in order, so every earlier
one has been seen by then; the name makes the mark this call's own, even with other Tether
processes syncing their watchers on the same workspace. An empty directory is never tracked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tether.errors import OutsideWorkspaceError
from tether.paths import normalize_rel
from tether.scan.result import AGENT_FILE
from tether.scan.scanner import Scanner

log = logging.getLogger(__name__)


OnPaths = Callable[[list[str]], None]
SYNC_TIMEOUT = 2.0


MARK_PREFIX = ".tether-sync-"


def _mark_prefix() -> str:
    return f"{MARK_PREFIX}{os.getpid()}-"


def _remove_stale_marks(root: Path) -> None:
    """Marks left by a process killed in the middle of a sync (empty directories)."""
    from tether.procs import pid_alive

    try:
        names = [n for n in os.listdir(root) if n.startswith(".tether-sync-") and n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        pid = name[len(".tether-sync-") :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                os.rmdir(root / name)  # only ever empty: never removes anything else


def unreported(name: str) -> bool:
    """Names no event is reported for: our own atomic writes' and editors' temp files."""
    return name.endswith(".tmp") and (".tether-" in name or name.startswith("."))


class Watcher:
    def __init__(
        self,
        root: Path,
        on_paths: OnPaths,
        debounce: float = 0.5,
        scanner: Scanner | None = None,
        exclude: list[Path] | None = None,
        *,
        on_lost: Callable[[], None] | None = None,
        on_marks: Callable[[list[str], list[str]], None] | None = None,
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
        self._on_lost = on_lost
        # Another process's sync marks: the paths seen before each are handed over at once,
        # with it (``on_marks(paths, marks)``), bypassing the debounce.
        self._on_marks = on_marks
        self._marks: list[str] = []
        self._sync_asked = 0
        self._sync_seen = 0

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        watcher = self
        root = str(self.root)
        marks = _mark_prefix()

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return  # reads, not writes
                is_dir = bool(event.is_directory)
                if event.event_type == "events_lost":  # the kernel's queue overflowed
                    watcher._lost()
                    return
                if is_dir and event.event_type == "created":
                    parent, _, name = os.fsdecode(event.src_path).rpartition("/")
                    if parent == root and name.startswith(MARK_PREFIX) and name.endswith(".tmp"):
                        n = name[len(marks) : -4] if name.startswith(marks) else ""
                        if n.isdigit():
                            watcher._synced(int(n))  # sync()'s mark
                        else:
                            watcher._foreign(name)  # a reader's (tether.scan.dirty)
                        return
                if is_dir and event.event_type == "modified":
                    return  # an entry changed inside: that entry has its own event
                watcher._event(os.fsdecode(event.src_path), is_dir)
                dest = getattr(event, "dest_path", "")
                if dest:
                    watcher._event(os.fsdecode(dest), is_dir)

        _remove_stale_marks(self.root)
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

    def sync(self, timeout: float = SYNC_TIMEOUT) -> bool:
        """Deliver now (to ``on_paths``, in this thread) the events of every change made before
        the call. False when the watcher cannot vouch for that (not running, root not writable,
        no answer in ``timeout``): the caller must look at the disk itself."""
        return self.end_sync(self.begin_sync(), timeout)

    def begin_sync(self) -> tuple[Path, int] | None:
        """:meth:`sync` in two halves: the mark is made now (it covers every change made before
        this call), and :meth:`end_sync` waits for it, so work done in between overlaps the
        wait. None: the watcher cannot vouch (``end_sync`` then says False)."""
        if self._observer is None:
            return None
        with self._cond:
            self._sync_asked += 1
            want = self._sync_asked
        mark = self.root / f"{_mark_prefix()}{want}.tmp"
        try:
            os.mkdir(mark, 0o700)
        except OSError as exc:
            log.info("cannot mark %s for a watcher sync: %s", self.root, exc)
            return None
        return mark, want

    def end_sync(
        self,
        begun: tuple[Path, int] | None,
        timeout: float = SYNC_TIMEOUT,
        tidy: list[Callable[[], None]] | None = None,
    ) -> bool:
        """``tidy``: the mark's removal is left there for the caller to run when it is idle (a
        server answers first: the removal is half a millisecond of a step's reply)."""
        if begun is None:
            return False
        mark, want = begun
        try:
            deadline = time.monotonic() + timeout
            with self._cond:
                while self._sync_seen < want:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._stopping:
                        log.warning("file watcher did not answer within %.1fs", timeout)
                        return False
                    self._cond.wait(left)
                batch = sorted(self._pending)
                self._pending.clear()
        finally:
            if tidy is None:
                _remove_mark(mark)
            else:
                tidy.append(lambda: _remove_mark(mark))
        if batch:
            self._on_paths(batch)
        return True

    def _synced(self, n: int) -> None:
        with self._cond:
            self._sync_seen = max(self._sync_seen, n)
            self._cond.notify_all()

    def _foreign(self, name: str) -> None:
        if self._on_marks is None:
            return
        with self._cond:
            self._marks.append(name)
            self._cond.notify_all()

    def _lost(self) -> None:
        log.warning("file watcher lost events (queue overflow)")
        if self._on_lost is not None:
            self._on_lost()

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
        if unreported(name):
            return None
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
                while not self._pending and not self._marks and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                # Let the burst settle, then hand it over in one piece; a sync mark of another
                # process's cuts the wait short (it is waiting for everything before its mark).
                deadline = time.monotonic() + self._debounce
                while not self._stopping and not self._marks and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                if self._stop_requested():
                    return
                batch = sorted(self._pending)
                self._pending.clear()
                marks, self._marks = self._marks, []
            try:
                if marks and self._on_marks is not None:
                    self._on_marks(batch, marks)
                elif batch:
                    self._on_paths(batch)
            except Exception:
                log.exception("watcher callback failed")


def _remove_mark(mark: Path) -> None:
    try:
        os.rmdir(mark)
    except OSError as exc:
        log.warning("cannot remove the watcher's mark %s: %s", mark, exc)
