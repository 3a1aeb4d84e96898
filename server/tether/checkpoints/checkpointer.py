"""The Checkpointer: turns "something changed" into one store transaction.

Callers are the LSP server (saves, periodic timer, commands), the CLI (``tether checkpoint``,
``tether step``) and the fs watcher. Attachment providers (editor state, tmux snapshot, agent
state) are asked for their current bytes at each checkpoint; the store keeps a new copy only
when the bytes differ from the last one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping

from tether.errors import OutsideWorkspaceError, StoreError
from tether.model import CheckpointInfo, FileChange, HeadRow, Progress, Skipped
from tether.paths import normalize_rel
from tether.record import dataclass
from tether.safefs import read_upto
from tether.scan import helper
from tether.scan.result import DEFAULT_MAX_FILE_BYTES, ScanResult, Taken, printable_name
from tether.scan.scanner import Scanner
from tether.store.db import StateUpdate, Store
from tether.store.head import LazyHead
from tether.store.scan_dirs import DirsExport

log = logging.getLogger(__name__)

Provider = Callable[[], bytes | None]
# A new process reads head rows one by one for the directories its stored stats do not vouch
# for while they are fewer than 1/LAZY_HEAD_SHARE of the tracked files; past that, all at once.
LAZY_HEAD_SHARE = 4


@dataclass(frozen=True)
class CheckpointOutcome:
    info: CheckpointInfo | None  # None: nothing changed, nothing written
    scan: ScanResult


class Checkpointer:
    """Thread-safe for callers in one process; the store serialises writers across processes."""

    def __init__(
        self,
        store: Store,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        scanner: Scanner | None = None,
        *,
        watched: bool = False,
    ) -> None:
        """``watched``: a whole-workspace scan looks only at what a live, trusted file watcher of
        another process saw change, when there is one (scan/dirty.py); else it walks."""
        self.store = store
        self.scanner = scanner or Scanner(store.root, max_file_bytes)
        self._root = str(store.root)
        self.watched = watched
        self._providers: dict[str, Provider] = {}
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        # time.monotonic() past which a whole-workspace walk stops and reports what it found
        # (the agent hooks' time budget); None: walks run to the end.
        self.deadline: float | None = None
        # Told how far a checkpoint got (scan, then write); it may raise errors.CancelledError,
        # and the checkpoint is then abandoned with nothing written. Set by the front end for
        # the checkpoints it shows progress for (a terminal, an editor's progress report).
        self.progress: Progress | None = None

    def add_provider(self, name: str, fn: Provider) -> None:
        self._providers[name] = fn

    def note_changed(self, paths: Iterable[str]) -> None:
        """Remember paths reported changed; the next ``checkpoint(paths=None)``-less call uses them."""
        with self._lock:
            self._pending.update(paths)

    def pending(self) -> set[str]:
        with self._lock:
            return set(self._pending)

    def _attachments(self, skip: Mapping[str, bytes]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for name, fn in self._providers.items():
            if name in skip:
                continue
            try:
                data = fn()
            except Exception:  # one broken provider must not lose the files' checkpoint
                log.exception("attachment provider %s failed", name)
                continue
            if data is not None:
                out[name] = data
        return out

    def checkpoint(
        self,
        trigger: str,
        message: str | None = None,
        *,
        paths: Iterable[str] | None = None,
        full: bool = False,
        allow_empty: bool = False,
        extra_attachments: dict[str, bytes] | None = None,
        scan: ScanResult | None = None,
        files_only: bool = False,
        live_state: Mapping[str, StateUpdate] | None = None,
    ) -> CheckpointOutcome:
        """Write a checkpoint of what changed.

        ``full=True`` (or no paths told and none pending) walks the workspace with the stat
        cache; otherwise only ``paths`` plus those noted via :meth:`note_changed` are looked at.
        ``scan``: the result of a ``full_scan`` just made by the caller, used instead of a new walk.
        ``files_only``: no checkpoint unless a file changed (a moved cursor or a new tmux pane
        alone does not make a periodic or save checkpoint; they ride along with the next one).
        ``extra_attachments`` take the place of the providers of those names (not asked).
        ``live_state``: updated in the checkpoint's transaction (Store.create_checkpoint).
        """
        with self._lock:
            told = set(self._pending)
            self._pending.clear()
        if paths is not None:
            told.update(paths)
        exports: list[DirsExport] = []

        def listings(everything: bool) -> DirsExport | None:
            # The walk's new directory listings go in the checkpoint's transaction (save_listings).
            export = self.scanner.export_dirs(everything)
            if export is not None:
                exports.append(export)
            return export

        try:
            if scan is not None:
                # A scan the caller just made (restore plans from one, a step from the watcher's
                # paths): not made twice. Told paths are looked at on top of it.
                skipped_scope: list[str] | None = scan.scope
                if told:
                    extra = self.scan_told(told, stream=True)
                    have = scan.changed_set
                    scan = ScanResult(
                        [*scan.changes, *(c for c in extra.changes if c.path not in have)],
                        [*scan.stat_updates, *extra.stat_updates],
                        [*scan.skipped, *extra.skipped] if scan.scope is not None else scan.skipped,
                        scan.seen,
                        complete=scan.complete,
                        taken=scan.taken,
                    )
                    if skipped_scope is not None and extra.scope is not None:
                        skipped_scope = sorted({*skipped_scope, *extra.scope})
            elif full or (paths is None and not told):
                scan = self.scan_workspace(stream=True)
                skipped_scope = scan.scope  # None for a walk; a watcher's paths otherwise
            else:
                scan = self.scan_told(told, stream=True)
                skipped_scope = scan.scope
            if not scan.complete and skipped_scope is None:
                skipped_scope = []  # a walk stopped early: add its skips, drop none it did not see
            given = extra_attachments or {}
            attachments = {} if files_only and not scan.changes else self._attachments(skip=given)
            if extra_attachments:
                attachments.update(extra_attachments)
            info = self.store.create_checkpoint(
                trigger,
                message,
                scan.changes,
                attachments=attachments,
                stat_updates=scan.stat_updates,
                allow_empty=allow_empty,
                skipped=scan.skipped,
                skipped_scope=skipped_scope,
                still_current=self._still_as_read,
                read=self._read_deferred,
                progress=self.progress,
                live_state=live_state,
                listings=listings,
            )
        except BaseException:
            # Nothing was written: keep the told paths (and the listings) for the next attempt.
            with self._lock:
                self._pending.update(told)
            for export in exports:
                self.scanner.export_failed(export)
            raise
        if scan.taken is not None:
            self._done(scan.taken)
        if info is not None:
            log.info("checkpoint %s (%s): %d files", info.id, trigger, len(info.files))
        return CheckpointOutcome(info, scan)

    def _still_as_read(self, change: FileChange) -> bool:
        """Asked by the store once it holds the write lock: whether the file is still as it was
        when ``change`` was read from it. If not, the change is left out: another writer may have
        recorded the newer content already, and recording ours after it would make stale content
        the latest (head keeps the old stat, so the next scan picks the file up)."""
        if change.content is None:
            # Not checked: a path also stops being tracked when a .gitignore starts to cover
            # it (it still exists), and a file recreated meanwhile is found as new next scan.
            return True
        try:
            st = os.lstat(os.path.join(self._root, change.path))
        except OSError:
            return False  # gone (or unreadable) since it was read
        return (st.st_mtime_ns, st.st_size, st.st_ino) == (change.mtime_ns, change.size, change.ino)

    def _read_deferred(self, change: FileChange) -> FileChange | Skipped | None:
        """A deferred change's bytes, read as the store writes them (never through a symlink),
        if the file is still as the scan saw it (else None: the next scan finds it)."""
        want = (change.mtime_ns, change.stat_size, change.ino)
        try:
            fd = os.open(
                os.path.join(self._root, change.path),
                os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
            )
        except FileNotFoundError:
            return None
        except OSError as exc:
            return Skipped(change.path, f"unreadable: {exc.strerror}")
        try:
            st = os.fstat(fd)
            if (st.st_mtime_ns, st.st_size, st.st_ino) != want:
                return None
            max_bytes = self.scanner.max_file_bytes
            content = read_upto(fd, st.st_size + 1)  # one more: a file that grew since is seen growing
            if len(content) > max_bytes:
                return Skipped(change.path, f"larger than {max_bytes} bytes", len(content))
            st = os.fstat(fd)
            if len(content) != st.st_size or (st.st_mtime_ns, st.st_size, st.st_ino) != want:
                return None  # written to while it was read
        except OSError as exc:
            return Skipped(change.path, f"unreadable: {exc.strerror}")
        finally:
            os.close(fd)
        return FileChange(change.path, content, change.mode, change.mtime_ns, change.ino)

    def scan_told(self, paths: Iterable[str], *, stream: bool = False) -> ScanResult:
        """Look only at ``paths`` (files, or directories: everything tracked below them), writing
        nothing. The result's ``scope`` says which paths it covers. ``stream``: changes may be
        deferred (their bytes read when the checkpoint is written: scan/file.py)."""
        rels = self._rels(paths)
        # A told directory (moved in, or deleted wholesale) covers the tracked paths below it.
        dirs = [r for r in rels if os.path.isdir(os.path.join(self.store.root, r))]
        dirs += [r for r in rels if not os.path.lexists(os.path.join(self.store.root, r))]
        scan = self.scanner.scan_paths(sorted(set(paths)), self.store.head(rels, under=dirs), stream=stream)
        scan.scope = rels
        return scan

    def scan_workspace(self, *, stream: bool = False) -> ScanResult:
        """What differs from head in the whole workspace, writing nothing (``tether status``):
        the paths a live file watcher saw change (``watched``), else :meth:`walk`. ``stream``:
        changes may be deferred (a checkpoint's own scan; see :meth:`scan_told`)."""
        with self.workspace_changes(stream=stream) as scan:
            return scan()

    def workspace_changes(self, *, stream: bool = False) -> WorkspaceChanges:
        """:meth:`scan_workspace` as a function the block (``with ... as scan``) calls once,
        when it needs the scan, for a checkpoint made in the block (a step's). A live file
        watcher's sync starts as the block is entered, so the block's work before the call
        overlaps the wait for its answer; the sync ends with the block in any case (its mark
        removed, not waited for)."""
        return WorkspaceChanges(self, stream)

    def scan_taken(self, taken: Taken, *, stream: bool = False) -> ScanResult:
        """What differs from head among the paths of a file watcher's dirty set, as read by
        :func:`tether.scan.dirty.take`: the whole workspace's changes, without a walk."""
        scan = self.scan_told(taken.paths, stream=stream)
        scan.taken = taken
        log.debug(
            "scan: %d paths the file watcher %s saw change, no walk (%s)",
            len(taken.rows),
            taken.watcher[:8],
            ", ".join(taken.paths[:5]),
        )
        return scan

    def walk(self, *, stream: bool = False) -> ScanResult:
        """A stat-cache walk of the whole workspace, writing nothing.

        Walks from the listings the store keeps, each with its directory's stat cache:
        directories found exactly as stored need no head rows; only the others' are read,
        unless they are many (then all at once is cheaper). Listings not yet stored (their
        export failed) are newer than the store's: then the walk uses them and all head rows.
        Past :attr:`deadline` the walk stops: the result is then not ``complete``.
        """
        deadline = self.deadline
        progress = self.progress
        if self.scanner.has_listings and self.scanner.listings_dirty:
            return self.scanner.full_scan(
                self.store.head_rows(), deadline=deadline, stream=stream, progress=progress
            )
        with self.store.snapshot():
            meta, rows = self.store.scan_dirs()
            if not self.scanner.import_dirs(meta, rows):
                return self.scanner.full_scan(
                    self.store.head_rows(), deadline=deadline, stream=stream, progress=progress
                )
            verified = self.scanner.verify_imported()
            others = self.scanner.listed_paths(exclude=verified)
            # Rows the walk will ask for: those of the listed files outside the vouched-for
            # directories, and those of every directory with no stored listing (none was kept
            # while it was racy): counted against head, not against the listings.
            total = self.store.head_count()
            unvouched = total - (self.scanner.listed_count() - len(others))
            head: Mapping[str, HeadRow] = (
                self.store.head_rows()
                if unvouched * LAZY_HEAD_SHARE > total
                else LazyHead(self.store, others, total)
            )
            return self.scanner.full_scan(head, verified, deadline, stream=stream, progress=progress)

    def _done(self, taken: Taken) -> None:
        from tether.scan import dirty

        try:
            dirty.done(self.store, taken)
        except StoreError as exc:  # they stay in the dirty set: looked at again next time
            log.warning("could not update the file watcher's dirty set: %s", exc.message)

    def save_listings(self) -> None:
        """Keep the walk's new directory listings in the store, so the next process's walk lists
        only directories that changed in between and checks the others' stored stats. Each
        checkpoint stores them in its own transaction; this is for a walk that found nothing to
        checkpoint (a hook): its own small transaction, only when a listing changed."""
        export = self.scanner.export_dirs()
        if export is None:
            return
        try:
            if not self.store.put_scan_dirs(export):
                # Stored ones were filtered with other .gitignore files: replace them all.
                export = self.scanner.export_dirs(everything=True)
                if export is not None:
                    self.store.put_scan_dirs(export)
        except StoreError as exc:
            if export is not None:
                self.scanner.export_failed(export)
            log.warning("could not keep directory listings: %s", exc.message)

    def _rel_or_none(self, p: str) -> str | None:
        try:
            # Undecodable names are stored (as skipped) in printable form; never bind raw surrogates.
            return printable_name(normalize_rel(self.store.root, p))
        except OutsideWorkspaceError:
            return None

    def _rels(self, paths: Iterable[str]) -> list[str]:
        out = []
        for p in paths:
            rel = self._rel_or_none(p)
            if rel is not None:
                out.append(rel)
        return out

    def skipped(self) -> list[Skipped]:
        return self.store.skipped()


class WorkspaceChanges:
    """:meth:`Checkpointer.workspace_changes`."""

    def __init__(self, checkpointer: Checkpointer, stream: bool) -> None:
        self._cp = checkpointer
        self._stream = stream
        # The watcher's answer, waited for; the mark's removal (scan/dirty.py PendingTake).
        self._result: Callable[[], Taken | None] = lambda: None
        self._cancel: Callable[[], None] = lambda: None
        self._helper = contextlib.ExitStack()

    def __enter__(self) -> Callable[[], ScanResult]:
        cp = self._cp
        if cp.watched:
            from tether.scan import dirty

            pending = dirty.begin_take(cp.store, cp.scanner.fingerprint())
            if pending is not None:
                self._result, self._cancel = pending.result, pending.cancel
                return self._scan
        # A walk is coming: its stat check's helper starts up meanwhile (scan/helper.py).
        self._helper.enter_context(helper.warmed(cp.store.listed_files()))
        return self._scan

    def _scan(self) -> ScanResult:
        taken = self._result()
        if taken is not None:
            return self._cp.scan_taken(taken, stream=self._stream)
        return self._cp.walk(stream=self._stream)

    def __exit__(self, *exc: object) -> None:
        self._cancel()
        self._helper.close()
