"""Change discovery: which workspace files differ from the store's head.

Two entry points with different costs:

- :meth:`Scanner.full_scan` walks the tree once (honouring .gitignore files, skipping nested
  ``.git`` and ``node_modules``) and hashes only files whose (mtime, size, inode, mode) differ
  from the stat cache. This is the session-start baseline and the periodic safety net.
- :meth:`Scanner.scan_paths` looks only at the paths it is told about (editor saves, watcher
  events, ``tether step``): O(changed files), whatever the workspace size.

Files whose names are not valid UTF-8 cannot be stored as text paths (nor named by an editor
over LSP), so they are reported as skipped rather than tracked under a lossy name.
"""

from __future__ import annotations

import logging
import operator
import os
import stat as stat_mod
import threading
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from itertools import compress
from pathlib import Path

from tether.errors import OutsideWorkspaceError
from tether.model import FileChange, HeadRow, Progress, Skipped, StatEntry
from tether.paths import normalize_rel
from tether.record import dataclass, field
from tether.scan.file import FileCheck, vouches
from tether.scan.ignore_tree import IgnoreTree, Stack, unignored
from tether.scan.listings import Listing, ListingCache
from tether.scan.result import (
    BAD_NAME_REASON,
    DEFAULT_IGNORED_DIRS,
    DEFAULT_IGNORED_FILES,
    DEFAULT_MAX_FILE_BYTES,
    GITIGNORE,
    UNREADABLE_DIR,
    ScanResult,
    printable_name,
    scanner_fingerprint,
    valid_name,
)
from tether.scan.statcheck import DIR_FLAGS
from tether.store import head as store_head
from tether.store.scan_dirs import DirRow, DirsExport

log = logging.getLogger(__name__)

# Threads for a whole-tree walk that lists directories, from this many tracked files on. One:
# since a directory's entries are matched at once and its files' stat loop is flat, what is
# left per file is a stat() and little Python, and two threads hand the GIL over at every
# stat() (measured on 2 shared cores, 10k files: 40-50 ms on one thread, 60-95 ms on two).
# A walk from kept listings always runs on one thread (30 vs 39 ms at 10k files, 167 vs 202
# ms at 50k). More threads could pay where a stat() is slow (a network file system).
WALK_THREADS = 1
PARALLEL_MIN_FILES = 2000

_DEADLINE_EVERY = 256


@dataclass(slots=True)
class _Walk:
    """What one walk's directories share."""

    ignore: IgnoreTree
    head: Mapping[str, HeadRow]
    result: ScanResult
    seen: list[str]  # tracked paths found (each once: a tree has no duplicate paths)
    todo: list[tuple[str, Stack | None]]  # subdirectories found in the directory being visited
    unreadable: list[str]
    check: FileCheck
    verified: Collection[str] = ()  # directories checked whole against stored stats
    vouched: list[tuple[str, list[str]]] = field(default_factory=list)  # verified ones reached
    visited: list[str] = field(default_factory=list)
    untracked: int = 0
    listed: int = 0  # directories listed (not taken from a kept listing)
    deadline: float | None = None  # time.monotonic(); past it the walk stops
    stopped: bool = False
    progress: Progress | None = None  # told the files found so far, after each directory


_NAME = operator.attrgetter("name")
_IS_DIR = operator.methodcaller("is_dir", follow_symlinks=False)


def _split_entries(
    entries: list[os.DirEntry[str]], prefix: str, skips: list[Skipped]
) -> tuple[list[str], list[str]]:
    """The names of a directory's subdirectories and of its other entries (from their d_type:
    no stat), in listing order; undecodable names go to ``skips``. In C, unless a name is not
    ASCII or the file system gives no d_type and a stat fails: then entry by entry."""
    names = list(map(_NAME, entries))
    if all(map(str.isascii, names)):
        try:
            kinds = list(map(_IS_DIR, entries))
        except OSError:
            pass
        else:
            return list(compress(names, kinds)), list(compress(names, map(operator.not_, kinds)))
    dir_names: list[str] = []
    others: list[str] = []
    for entry, name in zip(entries, names, strict=True):
        if not name.isascii() and not valid_name(name):
            skips.append(Skipped(printable_name(prefix + name), BAD_NAME_REASON))
            continue
        try:
            (dir_names if entry.is_dir(follow_symlinks=False) else others).append(name)
        except OSError:
            continue
    return dir_names, others


class Scanner:
    def __init__(
        self,
        root: Path,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        ignored_dirs: Iterable[str] = DEFAULT_IGNORED_DIRS,
        ignored_files: Iterable[str] = DEFAULT_IGNORED_FILES,
    ) -> None:
        self.root = root.resolve()
        self._root = str(self.root)
        self.max_file_bytes = max_file_bytes
        self._ignored_dirs = frozenset(ignored_dirs)
        self._ignored_files = frozenset(ignored_files)
        # Directory listings from the last walk (a long-lived scanner, e.g. the LSP server's,
        # then stats each tracked file without listing unchanged directories again).
        self.listings = ListingCache(self.root, self.fingerprint())
        self._check = FileCheck(str(self.root), max_file_bytes)
        self._stream_check = FileCheck(str(self.root), max_file_bytes, stream=True)

    def fingerprint(self) -> list[object]:
        """What the listings (and a watcher's dirty set) depend on besides the pattern files."""
        return scanner_fingerprint(self.max_file_bytes, self._ignored_dirs, self._ignored_files)

    # The listings kept across processes (listings.py), as the Checkpointer uses them.

    @property
    def listings_dirty(self) -> bool:
        return self.listings.listings_dirty

    @property
    def has_listings(self) -> bool:
        return self.listings.has_listings

    def export_dirs(self, everything: bool = False) -> DirsExport | None:
        return self.listings.export_dirs(everything)

    def export_failed(self, export: DirsExport) -> None:
        self.listings.export_failed(export)

    def import_dirs(self, meta: bytes | None, rows: Sequence[DirRow]) -> bool:
        return self.listings.import_dirs(meta, rows)

    def verify_imported(self) -> set[str]:
        return self.listings.verify_imported()

    def listed_paths(self, exclude: Collection[str] = ()) -> list[str]:
        return self.listings.listed_paths(exclude)

    def listed_count(self) -> int:
        return self.listings.listed_count()

    def ignore_rules(self) -> IgnoreTree:
        """The ignore rules as they are now (.gitignore files read as needed): fresh per scan,
        since .gitignore files may have changed since the last one. Also for the watcher and
        the LSP server, which must ignore exactly what the scan ignores."""
        return IgnoreTree(self.root, self._ignored_dirs, self._ignored_files)

    def full_scan(
        self,
        head: Mapping[str, HeadRow],
        verified: Collection[str] = (),
        deadline: float | None = None,
        *,
        stream: bool = False,
        progress: Progress | None = None,
    ) -> ScanResult:
        """``verified``: directories :meth:`verify_imported` found unchanged, taken as listed.
        ``deadline`` (``time.monotonic()``): past it the walk stops, and the result says so.
        ``stream``: changes may be ``deferred`` (read when the checkpoint is written: scan/file.py).
        ``progress``: told ("scan", files found, None) as the walk goes (it may raise to stop it)."""
        result = ScanResult()
        if self.listings.check_gitignores():
            verified = ()
        ignore = self.ignore_rules()
        stack = ignore.base_stack()  # the root's own .gitignore is read when it is listed
        self.listings.note_external(ignore.external)
        self._walk(
            "",
            stack,
            ignore,
            head,
            result,
            verified=verified,
            deadline=deadline,
            check=self._stream_check if stream else self._check,
            progress=progress,
        )
        log.debug(
            "walk: %d directories (%d listed, %d vouched for by their stored stats), %d files",
            result.walked,
            result.listed,
            len(verified),
            result.seen,
        )
        return result

    def _walk(
        self,
        start: str,
        start_stack: Stack,
        ignore: IgnoreTree,
        head: Mapping[str, HeadRow],
        result: ScanResult,
        *,
        verified: Collection[str] = (),
        deadline: float | None = None,
        check: FileCheck | None = None,
        progress: Progress | None = None,
    ) -> None:
        """Walk below ``start`` and record, in ``result``, what differs from ``head``.

        Deletions are reported only for head paths below ``start``, and only when the walk
        reached every directory before ``deadline``.
        """
        todo: list[tuple[str, Stack | None]] = [(start, start_stack)]
        workers = WALK_THREADS if not self.listings.has_listings and len(head) >= PARALLEL_MIN_FILES else 1
        check = check or self._check
        walks = [
            _Walk(ignore, head, result, [], [], [], check, verified, deadline=deadline, progress=progress)
            for _ in range(workers)
        ]
        if workers == 1:
            # Iterative walk: deep trees must not hit the recursion limit.
            walk = walks[0]
            while todo:
                # Past the deadline, no new directory; the first is always walked, so that
                # hooks that keep running out of time still make progress.
                if deadline is not None and walk.visited and time.monotonic() > deadline:
                    walk.stopped = True
                    break
                self._visit(*todo.pop(), walk)
                todo.extend(walk.todo)
                walk.todo.clear()
                if progress is not None:
                    progress("scan", len(walk.seen) + walk.untracked, None)
        else:
            self._walk_parallel(todo, walks)
        if any(w.stopped for w in walks):
            result.complete = False
        seen = [p for w in walks for p in w.seen]
        unreadable = [u for w in walks for u in w.unreadable]
        vouched = [v for w in walks for v in w.vouched]
        vouched_files = sum(len(files) for _, files in vouched)
        result.seen += sum(w.untracked for w in walks) + vouched_files
        skipped = result.skipped
        result.seen += len(seen)
        result.walked += sum(len(w.visited) for w in walks)
        result.listed += sum(w.listed for w in walks)
        if not result.complete:
            return  # what was not reached is neither pruned nor reported deleted
        if not start:
            self.listings.prune({d for w in walks for d in w.visited})
        # A tracked file that grew past the size cap (or became unreadable) is reported as
        # skipped and stays tracked; only files that are really gone are recorded as deleted.
        if not start and len(seen) + vouched_files == len(head):
            return  # every tracked file was found: nothing deleted (the usual case)
        found = set(seen)
        for rel_dir, files in vouched:
            prefix = rel_dir + "/" if rel_dir else ""
            found.update(prefix + name for name in files)
        keep = {s.path for s in skipped}
        start_prefix = start + "/" if start else ""
        for path in head:
            if path in found or path in keep or not path.startswith(start_prefix):
                continue
            if unreadable and any(path.startswith(u) for u in unreadable):
                continue
            result.changes.append(FileChange(path, None))

    def _walk_parallel(self, todo: list[tuple[str, Stack | None]], walks: list[_Walk]) -> None:
        """Directories shared by several threads. A stat() releases the GIL, so one thread's
        system calls overlap with another's Python: what git status gets from its threads."""
        cond = threading.Condition()
        active = [0]
        started = [False]
        errors: list[BaseException] = []

        def work(walk: _Walk) -> None:
            while True:
                with cond:
                    while not todo and active[0]:
                        cond.wait()
                    if not todo:
                        return
                    if walk.deadline is not None and started[0] and time.monotonic() > walk.deadline:
                        walk.stopped = True
                        todo.clear()
                        cond.notify_all()
                        return
                    item = todo.pop()
                    active[0] += 1
                    started[0] = True
                try:
                    self._visit(*item, walk)
                    if walk.progress is not None and walk is walks[0]:
                        walk.progress("scan", sum(len(w.seen) + w.untracked for w in walks), None)
                except BaseException as exc:  # re-raised by the caller's thread below
                    errors.append(exc)
                finally:
                    with cond:
                        todo.extend(walk.todo)
                        walk.todo.clear()
                        if errors:
                            todo.clear()
                        active[0] -= 1
                        cond.notify_all()

        threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in walks[1:]]
        for t in threads:
            t.start()
        work(walks[0])
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def _visit(self, rel_dir: str, stack: Stack | None, walk: _Walk) -> None:
        """``stack``: the rules of the directories above ``rel_dir`` (its own .gitignore is
        read when its listing shows one); None when not worked out yet."""
        if rel_dir in walk.verified:
            listing = self.listings.get(rel_dir)
            if listing is not None:
                # Checked just before the walk: same entries, every file as head has it.
                walk.visited.append(rel_dir)
                walk.vouched.append((rel_dir, listing.files))
                walk.todo.extend((d, None) for d in listing.subdirs)
                walk.result.skipped.extend(listing.skips)
                return
        try:
            # Listing through a directory fd makes each entry's stat an fstatat() relative to
            # it (no path walk from /: about a third cheaper), and O_NOFOLLOW refuses a
            # directory swapped for a symlink since its parent was listed.
            fd = os.open(f"{self._root}/{rel_dir}" if rel_dir else self._root, DIR_FLAGS)
        except OSError as exc:
            if rel_dir:
                walk.result.skipped.append(Skipped(rel_dir, f"{UNREADABLE_DIR}: {exc.strerror}"))
                walk.unreadable.append(rel_dir + "/")
            return
        walk.visited.append(rel_dir)
        try:
            dst = os.fstat(fd)
            key = (dst.st_mtime_ns, dst.st_ctime_ns, dst.st_ino)
            listing = self.listings.get(rel_dir)
            if listing is not None and listing.key == key:
                self._walk_listing(fd, rel_dir, listing, walk)
                return
            if stack is None:  # below a directory taken from its listing: rules not read yet
                stack = walk.ignore.outer_stack(rel_dir)
                if stack is None:
                    return
            # A directory changed within the coarse file-time tick could change again without
            # a new mtime: its listing is not kept (the stat cache has the same rule).
            racy = time.time_ns() - max(dst.st_mtime_ns, dst.st_ctime_ns) < store_head.RACY_NS
            self._walk_dir(fd, rel_dir, stack, walk, None if racy else key)
        finally:
            os.close(fd)  # the entries' stat() needs it open until here

    def _walk_listing(self, fd: int, rel_dir: str, listing: Listing, walk: _Walk) -> None:
        """An unchanged directory: stat the files it had, without listing it again."""
        head_get = walk.head.get
        seen = walk.seen
        result = walk.result
        check = walk.check
        max_bytes = self.max_file_bytes
        stat = os.stat
        prefix = rel_dir + "/" if rel_dir else ""
        for name in listing.files:
            rel = prefix + name
            try:
                st = stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed this instant: the next walk lists the directory again
            except OSError as exc:
                result.skipped.append(Skipped(rel, f"unreadable: {exc.strerror}"))
                continue
            cached = head_get(rel)
            if cached is not None:
                seen.append(rel)
                if vouches(cached, st, max_bytes):
                    continue
            else:
                walk.untracked += 1
            check(rel, st, cached, result)
        walk.todo.extend((d, None) for d in listing.subdirs)
        result.skipped.extend(listing.skips)

    def _walk_dir(
        self, fd: int, rel_dir: str, stack: Stack, walk: _Walk, key: tuple[int, int, int] | None
    ) -> None:
        """One directory of the walk: its entries sorted into subdirectories and files (by
        their d_type: no stat), each kind matched against the rules at once, then each file
        kept stat'ed. The stat loop runs once per file in the workspace, so it is kept flat:
        it is what the baseline scan costs."""
        ignore = walk.ignore
        result = walk.result
        skipped = result.skipped
        prefix = rel_dir + "/" if rel_dir else ""
        walk.listed += 1
        try:
            with os.scandir(fd) as it:
                entries = list(it)
        except OSError as exc:
            if rel_dir:
                skipped.append(Skipped(rel_dir, f"{UNREADABLE_DIR}: {exc.strerror}"))
                walk.unreadable.append(prefix)
            return
        skips: list[Skipped] = []
        dir_names, names = _split_entries(entries, prefix, skips)
        has_gitignore = GITIGNORE in names
        if has_gitignore:
            stack = ignore.extend(stack, rel_dir)
        ignored_dirs = ignore.ignored_dirs
        dir_names = unignored(stack, prefix, [n for n in dir_names if n not in ignored_dirs], True)
        subdirs = [prefix + n for n in dir_names]
        walk.todo.extend((d, stack) for d in subdirs)
        ignored_files = ignore.ignored_files
        files = unignored(stack, prefix, [n for n in names if n not in ignored_files], False)
        head_get = walk.head.get
        seen = walk.seen
        consider = walk.check
        max_bytes = self.max_file_bytes
        stat = os.stat
        regular = stat_mod.S_IFREG
        deadline = walk.deadline
        for first in range(0, len(files), _DEADLINE_EVERY):
            if deadline is not None and first and time.monotonic() > deadline:
                walk.stopped = True  # this directory is not remembered: it was not seen whole
                skipped.extend(skips)
                return
            for name in files[first : first + _DEADLINE_EVERY] if len(files) > _DEADLINE_EVERY else files:
                rel = prefix + name
                try:
                    st = stat(name, dir_fd=fd, follow_symlinks=False)
                except OSError as exc:
                    skipped.append(Skipped(rel, f"unreadable: {exc.strerror}"))
                    continue
                cached = head_get(rel)
                if cached is not None:
                    seen.append(rel)
                    # file.vouches(), inline: the common case, once per file
                    if (
                        cached[4] == st.st_mtime_ns
                        and cached[3] == st.st_size
                        and cached[5] == st.st_ino
                        and st.st_mode == regular | cached[2]
                        and st.st_size <= max_bytes
                    ):
                        continue
                else:
                    walk.untracked += 1
                consider(rel, st, cached, result)
        if has_gitignore or not rel_dir:
            skips.extend(ignore.problems(rel_dir))  # kept with the listing: said at every scan
        skipped.extend(skips)
        if key is not None:
            self.listings.remember(rel_dir, fd, Listing(key, files, subdirs, skips, has_gitignore))

    def scan_paths(
        self, paths: Iterable[str], head: Mapping[str, HeadRow], *, stream: bool = False
    ) -> ScanResult:
        """Check only ``paths`` (absolute or workspace-relative). Ignored paths are dropped.

        ``head`` needs to hold only the entries for ``paths`` (and, for a directory, below it).
        ``stream``: as for :meth:`full_scan`.
        """
        result = ScanResult()
        check = self._stream_check if stream else self._check
        ignore = self.ignore_rules()
        done: set[str] = set()
        for raw in paths:
            try:
                rel = normalize_rel(self.root, raw)
            except OutsideWorkspaceError as exc:
                log.warning("not tracking %s: %s", raw, exc.message)
                continue
            if not valid_name(rel):
                result.skipped.append(Skipped(printable_name(rel), BAD_NAME_REASON))
                continue
            if rel in done:
                continue
            done.add(rel)
            if ignore.path_ignored(rel):
                continue
            if self._symlinked_parent(rel):
                # Reached through a symlinked directory: the walk never follows those, so the
                # told path must not be tracked either (or the next full scan would delete it).
                continue
            result.seen += 1
            try:
                st = os.lstat(self.root / rel)
            except (FileNotFoundError, NotADirectoryError):
                if rel in head:
                    result.changes.append(FileChange(rel, None))
                below = rel + "/"
                # A deleted directory: every tracked file below it is gone too.
                result.changes.extend(FileChange(p, None) for p in head if p.startswith(below))
                continue
            except OSError as exc:
                result.skipped.append(Skipped(rel, f"unreadable: {exc.strerror}"))
                continue
            if stat_mod.S_ISDIR(st.st_mode):
                # A directory event (e.g. a directory moved in): look at what is below it.
                stack = ignore.outer_stack(rel)
                if stack is not None:
                    result.seen -= 1
                    self._walk(rel, stack, ignore, head, result, check=check)
                continue
            check(rel, st, head.get(rel), result)
        if len(done) > 1:
            # A told directory and a told path below it (a watcher reports both for a directory
            # moved in): one change per path, or the checkpoint would record it twice.
            changes: dict[str, FileChange] = {}
            for c in result.changes:
                changes.setdefault(c.path, c)
            updates: dict[str, StatEntry] = {}
            for u in result.stat_updates:
                updates.setdefault(u.path, u)
            result.changes, result.stat_updates = list(changes.values()), list(updates.values())
        return result

    def _symlinked_parent(self, rel: str) -> bool:
        parent = rel.rpartition("/")[0]
        if not parent:
            return False
        path = os.path.join(self.root, parent)
        try:
            return os.path.realpath(path) != path
        except OSError:  # a component swapped between realpath's lstat and readlink
            return True
