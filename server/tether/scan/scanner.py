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

import contextlib
import gc
import json
import logging
import os
import select
import signal
import stat as stat_mod
import sys
import threading
import time
from array import array
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tether.errors import OutsideWorkspaceError
from tether.model import FileChange, HeadRow, Skipped, StatEntry, blob_hash
from tether.paths import normalize_rel, restore_temp_pid
from tether.scan.ignore import Rules, rules_from_bytes
from tether.scan.ignore_sources import excludes_sources, read_pattern_file
from tether.store import head as store_head
from tether.store.scan_dirs import STAT, DirRow, DirsExport

log = logging.getLogger(__name__)

DEFAULT_MAX_FILE_BYTES = 5 * 1024 * 1024
# Never tracked, with or without a .gitignore: VCS internals, dependency trees, caches.
DEFAULT_IGNORED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        ".venv",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
        ".cache",
    }
)
# Tether's own state file is captured as the "agent" attachment; tracking it as a file would make
# every checkpoint rewrite look like a change.
DEFAULT_IGNORED_FILES = frozenset({".agent-session.json", ".DS_Store"})
GITIGNORE = ".gitignore"
# 3: git-exact ignore matching (tether.scan.ignore), info/exclude and core.excludesFile read.
LISTINGS_FORMAT = 3
# Threads for a whole-tree walk that lists directories, from this many tracked files on (below,
# one thread is faster). A walk from kept listings only stats files: Python work under the GIL,
# faster on one thread (measured: 30 vs 39 ms at 10k files, 167 vs 202 ms at 50k).
WALK_THREADS = 2
PARALLEL_MIN_FILES = 2000
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
# Checking stored directory stats is split with a forked child from this many listed files
# on: stat() and building its result are Python work under the GIL, so threads cannot share
# it (measured at 50k files: 113 ms on one process, 63 ms on two). And only from this many
# files per MiB the process holds: fork copies its page tables and exit tears them down
# (measured ~6 ms at 100 MiB resident), which a small check would not win back.
FORK_MIN_FILES = 5000
FORK_FILES_PER_MIB = 60
# "0": never fork for the stat check.
FORK_ENV = "TETHER_SCAN_FORK"
# Bound on the wait for that child; past it, its half is walked file by file instead.
FORK_TIMEOUT_S = 30.0
BAD_NAME_REASON = "file name is not valid UTF-8 (not tracked)"
# A walk with a deadline looks at the clock between directories and every this many entries.
_DEADLINE_EVERY = 256

IGNORE_RULES_REASON = "ignore rules not all applied"


def printable_name(name: str) -> str:
    """A name safe to store and print: undecodable bytes (surrogate escapes) shown as ``\\xNN``."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def valid_name(name: str) -> bool:
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class ScanResult:
    changes: list[FileChange] = field(default_factory=list)
    stat_updates: list[StatEntry] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    seen: int = 0
    # None: the whole workspace was walked. Else the paths looked at (a told-paths scan): what
    # it found says nothing about the rest, e.g. about files skipped elsewhere.
    scope: list[str] | None = None
    # False when a walk stopped at its deadline: ``changes`` holds what it found until then,
    # and no deletion is reported (the directories not reached were not looked at).
    complete: bool = True

    @property
    def changed_paths(self) -> list[str]:
        return sorted(c.path for c in self.changes)

    @property
    def changed_set(self) -> set[str]:
        return {c.path for c in self.changes}


Stack = tuple[Rules, ...]


def _ignored(checks: Stack, rel: str, name: str, is_dir: bool) -> bool:
    """Whether ``rel`` (named ``name``) is ignored by the rules in ``checks``, which hold the
    applicable pattern files, deepest first: the deepest with a matching pattern decides."""
    for rules in checks:
        verdict = rules.verdict(rel, name, is_dir)
        if verdict is not None:
            return verdict
    return False


class _Ignore:
    """Ignore rules per directory, read once per scan; a deeper .gitignore overrides a
    shallower one, which overrides the repository's info/exclude, which overrides the user's
    core.excludesFile."""

    def __init__(self, root: Path, ignored_dirs: frozenset[str], ignored_files: frozenset[str]) -> None:
        self.root = root
        self.ignored_dirs = ignored_dirs
        self.ignored_files = ignored_files
        self._rules: dict[str, Rules | None] = {}
        # Per directory ("" also for the sources outside the tree): what was not applied.
        self._problems: dict[str, list[Skipped]] = {}
        self._base: Stack | None = None
        # Sources outside the tree (absolute path → (mtime, size, inode)): listings filtered
        # with them are kept only while these are unchanged.
        self.external: dict[str, tuple[int, int, int]] = {}

    def _load(self, path: str, shown: str, follow: bool, rel_dir: str, base: str) -> Rules | None:
        data, problems, key = read_pattern_file(path, follow)
        if follow:
            self.external[path] = key
        rules = None
        if data:
            rules, parse_problems = rules_from_bytes(data, base)
            problems = [*problems, *(str(p) for p in parse_problems)]
        if problems:
            reason = f"{IGNORE_RULES_REASON}: " + "; ".join(problems)
            self._problems.setdefault(rel_dir, []).append(Skipped(shown, reason))
            log.debug("%s: %s", shown, reason)
        return rules if rules else None

    def rules_for(self, rel_dir: str) -> Rules | None:
        if rel_dir in self._rules:
            return self._rules[rel_dir]
        rel = f"{rel_dir}/{GITIGNORE}" if rel_dir else GITIGNORE
        rules = self._load(os.path.join(self.root, rel), rel, False, rel_dir, rel_dir)
        self._rules[rel_dir] = rules
        return rules

    def root_stack(self) -> Stack:
        """The rules for the workspace root: the sources outside the tree, then its .gitignore."""
        if self._base is None:
            base: list[Rules] = []
            for path, shown in excludes_sources(self.root):
                rules = self._load(path, shown, True, "", "")
                if rules is not None:
                    base.append(rules)
            self._base = tuple(base)
        return self.extend(self._base, "")

    def problems(self, rel_dir: str) -> list[Skipped]:
        """Pattern files read for ``rel_dir`` that were not wholly applied, and why."""
        return self._problems.get(rel_dir, [])

    def extend(self, stack: Stack, rel_dir: str) -> Stack:
        rules = self.rules_for(rel_dir)
        return (*stack, rules) if rules is not None else stack

    def ignored(self, rel: str, name: str, is_dir: bool, stack: Stack) -> bool:
        if name in (self.ignored_dirs if is_dir else self.ignored_files):
            return True
        return _ignored(stack[::-1], rel, name, is_dir)

    def stack_for(self, rel_dir: str) -> Stack | None:
        """Rules that apply inside ``rel_dir``, or None when ``rel_dir`` itself is ignored."""
        stack = self.root_stack()
        if not rel_dir:
            return stack
        parts = rel_dir.split("/")
        for i, name in enumerate(parts):
            d = "/".join(parts[: i + 1])
            if self.ignored(d, name, True, stack):
                return None
            stack = self.extend(stack, d)
        return stack

    def path_ignored(self, rel: str, is_dir: bool = False) -> bool:
        """Whether ``rel`` (a file unless ``is_dir``) or any of its parent directories is ignored."""
        if is_dir:
            return self.stack_for(rel) is None
        parent, _, name = rel.rpartition("/")
        stack = self.stack_for(parent)
        return stack is None or self.ignored(rel, name, False, stack)


@dataclass(slots=True)
class _Listing:
    """A directory's entries as the last walk saw them, valid while the directory's own
    (mtime, ctime, inode) is unchanged: no entry was added, removed or renamed since."""

    key: tuple[int, int, int]
    files: list[str]  # names of the entries to stat: not ignored, not a directory
    subdirs: list[str]
    skips: list[Skipped]
    has_gitignore: bool


@dataclass(slots=True)
class _Walk:
    """What one walk's directories share."""

    ignore: _Ignore
    head: Mapping[str, HeadRow]
    result: ScanResult
    seen: list[str]  # tracked paths found (each once: a tree has no duplicate paths)
    todo: list[tuple[str, Stack | None]]  # subdirectories found in the directory being visited
    unreadable: list[str]
    verified: Collection[str] = ()  # directories checked whole against stored stats
    vouched: list[tuple[str, list[str]]] = field(default_factory=list)  # verified ones reached
    visited: list[str] = field(default_factory=list)
    untracked: int = 0
    deadline: float | None = None  # time.monotonic(); past it the walk stops
    stopped: bool = False


class Scanner:
    def __init__(
        self,
        root: Path,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        ignored_dirs: Iterable[str] = DEFAULT_IGNORED_DIRS,
        ignored_files: Iterable[str] = DEFAULT_IGNORED_FILES,
    ) -> None:
        self.root = root.resolve()
        self.max_file_bytes = max_file_bytes
        self._ignored_dirs = frozenset(ignored_dirs)
        self._ignored_files = frozenset(ignored_files)
        # Directory listings from the last walk (a long-lived scanner, e.g. the LSP server's,
        # then stats each tracked file without listing unchanged directories again), and the
        # .gitignore files they were filtered with: one changed, and every listing is dropped.
        self._listings: dict[str, _Listing] = {}
        self._gitignores: dict[str, tuple[int, int, int]] = {}
        self._cache_lock = threading.Lock()
        # What the store's copy lacks: listings made or dropped since the last export; and
        # whether that copy is ours at all (else the next export replaces it whole).
        self._dirty: set[str] = set()
        self._removed: set[str] = set()
        self._in_sync = False
        # Stored stats of the imported listings, until the first walk has checked them.
        self._imported_stats: dict[str, bytes] = {}

    def ignore_rules(self) -> _Ignore:
        """The ignore rules as they are now (.gitignore files read as needed): fresh per scan,
        since .gitignore files may have changed since the last one. Also for the watcher and
        the LSP server, which must ignore exactly what the scan ignores."""
        return _Ignore(self.root, self._ignored_dirs, self._ignored_files)

    # --- listings kept across processes -----------------------------------------------------

    def _meta(self) -> bytes:
        """The rules the listings were filtered with: scanner config and .gitignore stats."""
        doc = {"fp": self._fingerprint(), "gi": self._gitignores}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    def _fingerprint(self) -> list[object]:
        return [LISTINGS_FORMAT, self.max_file_bytes, sorted(self._ignored_dirs), sorted(self._ignored_files)]

    @property
    def listings_dirty(self) -> bool:
        return bool(self._dirty or self._removed or not self._in_sync)

    def export_dirs(self, everything: bool = False) -> DirsExport | None:
        """Listings changed since the last export (all of them when ``everything`` or when the
        store's copy is not ours), for the next process's first walk; None when nothing changed."""
        with self._cache_lock:
            everything = everything or not self._in_sync
            if not everything and not self._dirty and not self._removed:
                return None
            names = list(self._listings) if everything else sorted(self._dirty)
            rows = [
                DirRow(
                    rel,
                    lst.key,
                    lst.has_gitignore,
                    lst.files,
                    [d.rpartition("/")[2] for d in lst.subdirs],
                    [(k.path, k.reason, k.size) for k in lst.skips],
                )
                for rel in names
                if (lst := self._listings.get(rel)) is not None
            ]
            export = DirsExport(self._meta(), rows, [] if everything else sorted(self._removed), everything)
            self._dirty.clear()
            self._removed.clear()
            self._in_sync = True
        return export

    def export_failed(self, export: DirsExport) -> None:
        """The store did not take ``export``: offer it again next time."""
        with self._cache_lock:
            if export.everything:
                self._in_sync = False
            else:
                self._dirty.update(r.dir for r in export.rows)
                self._removed.update(export.removed)

    def import_dirs(self, meta: bytes | None, rows: Sequence[DirRow]) -> bool:
        """Adopt stored listings; False (and nothing adopted) when unusable. Each listing is
        still checked against its directory's stat before use, so stale ones are harmless."""
        if meta is None and not rows:  # none stored yet (a new store, or damaged ones refused)
            with self._cache_lock:
                self._in_sync = False
            return False
        try:
            if meta is None:
                raise ValueError("no record of the rules they were filtered with")
            doc = json.loads(meta)
            if doc["fp"] != json.loads(json.dumps(self._fingerprint())):
                raise ValueError("made with other settings")
            gitignores = {str(k): (int(v[0]), int(v[1]), int(v[2])) for k, v in doc["gi"].items()}
            listings: dict[str, _Listing] = {}
            stats: dict[str, bytes] = {}
            for r in rows:
                if len(r.stats) != STAT.size * len(r.files):
                    raise ValueError(f"stats of {r.dir or '.'} do not match its names")
                prefix = r.dir + "/" if r.dir else ""
                listings[r.dir] = _Listing(
                    r.key,
                    r.files,  # taken as decoded: no object per file (the walk joins the paths)
                    [prefix + d for d in r.subdirs],
                    [Skipped(p, why, z) for p, why, z in r.skips],
                    r.gitignore,
                )
                stats[r.dir] = r.stats
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("ignoring stored directory listings: %s", exc)
            with self._cache_lock:
                self._in_sync = False
            return False
        with self._cache_lock:
            self._listings = listings
            self._gitignores = gitignores
            self._imported_stats = stats
            self._dirty.clear()
            self._removed.clear()
            self._in_sync = True
        return True

    def verify_imported(self) -> set[str]:
        """Directories whose listing and every file's stat are as the store recorded them: a
        walk takes them as they are, without asking head about their files. Only right after
        :meth:`import_dirs` (the stored stats describe head as of that read)."""
        self._check_gitignores()
        with self._cache_lock:
            stats, self._imported_stats = self._imported_stats, {}
            items = [
                (rel, lst.key, lst.files, packed)
                for rel, packed in stats.items()
                if (lst := self._listings.get(rel)) is not None
            ]
        return {items[i][0] for i in _verify_split(str(self.root), items)}

    def listed_paths(self, exclude: Collection[str] = ()) -> list[str]:
        """Paths of the listed files, except in the directories ``exclude``."""
        with self._cache_lock:
            return [
                (rel + "/" if rel else "") + name
                for rel, lst in self._listings.items()
                if rel not in exclude
                for name in lst.files
            ]

    def listed_count(self) -> int:
        with self._cache_lock:
            return sum(len(lst.files) for lst in self._listings.values())

    @property
    def has_listings(self) -> bool:
        return bool(self._listings)

    # --- whole tree -----------------------------------------------------------------------

    def full_scan(
        self, head: Mapping[str, HeadRow], verified: Collection[str] = (), deadline: float | None = None
    ) -> ScanResult:
        """``verified``: directories :meth:`verify_imported` found unchanged, taken as listed.
        ``deadline`` (``time.monotonic()``): past it the walk stops, and the result says so."""
        result = ScanResult()
        if self._check_gitignores():
            verified = ()
        ignore = self.ignore_rules()
        stack = ignore.root_stack()
        with self._cache_lock:
            for path, key in ignore.external.items():
                if self._gitignores.get(path) != key:
                    self._gitignores[path] = key
                    self._in_sync = False  # the store's copy must learn of it
        self._walk("", stack, ignore, head, result, verified=verified, deadline=deadline)
        return result

    def _check_gitignores(self) -> bool:
        """Drop every listing when a pattern file they were filtered with changed; True if so.
        (.gitignore files by relative path, never followed; the sources outside the tree by
        absolute path, followed as they are read: a dotfile manager's symlink is usual.)"""
        with self._cache_lock:
            for rel, key in self._gitignores.items():
                try:
                    st = os.stat(rel) if os.path.isabs(rel) else os.lstat(os.path.join(self.root, rel))
                    now = (st.st_mtime_ns, st.st_size, st.st_ino)
                except OSError:
                    now = (0, 0, 0)
                if now != key:
                    self._listings.clear()
                    self._gitignores.clear()
                    self._imported_stats.clear()
                    self._dirty.clear()
                    self._removed.clear()
                    self._in_sync = False  # the stored ones go too, at the next export
                    return True
        return False

    def _walk(
        self,
        start: str,
        start_stack: Stack,
        ignore: _Ignore,
        head: Mapping[str, HeadRow],
        result: ScanResult,
        *,
        verified: Collection[str] = (),
        deadline: float | None = None,
    ) -> None:
        """Walk below ``start`` and record, in ``result``, what differs from ``head``.

        Deletions are reported only for head paths below ``start``, and only when the walk
        reached every directory before ``deadline``.
        """
        todo: list[tuple[str, Stack | None]] = [(start, start_stack)]
        workers = WALK_THREADS if not self._listings and len(head) >= PARALLEL_MIN_FILES else 1
        walks = [_Walk(ignore, head, result, [], [], [], verified, deadline=deadline) for _ in range(workers)]
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
        if not result.complete:
            return  # what was not reached is neither pruned nor reported deleted
        if not start:
            self._prune({d for w in walks for d in w.visited})
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

    def _prune(self, visited: set[str]) -> None:
        """Forget listings of directories a whole walk did not reach (removed, now ignored)."""
        with self._cache_lock:
            gone = [d for d in self._listings if d not in visited]
            for d in gone:
                del self._listings[d]
                self._dirty.discard(d)
            self._removed.update(gone)

    def _visit(self, rel_dir: str, stack: Stack | None, walk: _Walk) -> None:
        if rel_dir in walk.verified:
            listing = self._listings.get(rel_dir)
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
            fd = os.open(os.path.join(self.root, rel_dir) if rel_dir else self.root, _DIR_FLAGS)
        except OSError as exc:
            if rel_dir:
                walk.result.skipped.append(Skipped(rel_dir, f"unreadable directory: {exc.strerror}"))
                walk.unreadable.append(rel_dir + "/")
            return
        walk.visited.append(rel_dir)
        try:
            dst = os.fstat(fd)
            key = (dst.st_mtime_ns, dst.st_ctime_ns, dst.st_ino)
            listing = self._listings.get(rel_dir)
            if listing is not None and listing.key == key:
                self._walk_listing(fd, rel_dir, listing, walk)
                return
            if stack is None:  # below a directory taken from its listing: rules not read yet
                stack = walk.ignore.stack_for(rel_dir)
                if stack is None:
                    return
            # A directory changed within the coarse file-time tick could change again without
            # a new mtime: its listing is not kept (the stat cache has the same rule).
            racy = time.time_ns() - max(dst.st_mtime_ns, dst.st_ctime_ns) < store_head.RACY_NS
            self._walk_dir(fd, rel_dir, stack, walk, None if racy else key)
        finally:
            os.close(fd)  # the entries' stat() needs it open until here

    def _walk_listing(self, fd: int, rel_dir: str, listing: _Listing, walk: _Walk) -> None:
        """An unchanged directory: stat the files it had, without listing it again."""
        head_get = walk.head.get
        seen = walk.seen
        result = walk.result
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
                if _vouches(cached, st, max_bytes):
                    continue
            else:
                walk.untracked += 1
            self._consider(rel, st, cached, result)
        walk.todo.extend((d, None) for d in listing.subdirs)
        result.skipped.extend(listing.skips)

    def _remember(self, rel_dir: str, fd: int, listing: _Listing) -> None:
        with self._cache_lock:
            old = self._listings.get(rel_dir)
            if old is not None and old.has_gitignore != listing.has_gitignore:
                # A .gitignore appeared or went: listings below were filtered with other rules.
                below = rel_dir + "/" if rel_dir else ""
                for k in [k for k in self._listings if k.startswith(below)]:
                    del self._listings[k]
                    self._dirty.discard(k)
                    self._removed.add(k)
            gi = f"{rel_dir}/{GITIGNORE}" if rel_dir else GITIGNORE
            if listing.has_gitignore:
                try:
                    st = os.stat(GITIGNORE, dir_fd=fd, follow_symlinks=False)
                    self._gitignores[gi] = (st.st_mtime_ns, st.st_size, st.st_ino)
                except OSError:
                    return  # not cached: listed again next time
            else:
                self._gitignores.pop(gi, None)
            self._listings[rel_dir] = listing
            self._dirty.add(rel_dir)
            self._removed.discard(rel_dir)

    def _walk_dir(
        self, fd: int, rel_dir: str, stack: Stack, walk: _Walk, key: tuple[int, int, int] | None
    ) -> None:
        """One directory of the walk. This loop runs once per file in the workspace, so it is
        kept flat: it is what the baseline scan costs."""
        ignore, head, result, seen, todo, unreadable = (
            walk.ignore,
            walk.head,
            walk.result,
            walk.seen,
            walk.todo,
            walk.unreadable,
        )
        prefix = rel_dir + "/" if rel_dir else ""
        skipped = result.skipped
        ignored_dirs = ignore.ignored_dirs
        ignored_files = ignore.ignored_files
        max_bytes = self.max_file_bytes
        head_get = head.get
        consider = self._consider
        try:
            with os.scandir(fd) as it:
                entries = list(it)
        except OSError as exc:
            if rel_dir:
                skipped.append(Skipped(rel_dir, f"unreadable directory: {exc.strerror}"))
                unreadable.append(prefix)
            return
        checks = stack[::-1]  # deepest .gitignore first: it has the last word
        files: list[str] = []
        subdirs: list[str] = []
        skips: list[Skipped] = []
        has_gitignore = False
        deadline = walk.deadline
        for first in range(0, len(entries), _DEADLINE_EVERY):
            if deadline is not None and first and time.monotonic() > deadline:
                walk.stopped = True  # this directory is not remembered: it was not seen whole
                skipped.extend(skips)
                return
            for entry in entries[first : first + _DEADLINE_EVERY]:
                name = entry.name
                if not name.isascii() and not valid_name(name):
                    skips.append(Skipped(printable_name(prefix + name), BAD_NAME_REASON))
                    continue
                rel = prefix + name
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir:
                    if name in ignored_dirs or (checks and _ignored(checks, rel, name, True)):
                        continue
                    subdirs.append(rel)
                    todo.append((rel, ignore.extend(stack, rel)))
                    continue
                if name == GITIGNORE:
                    has_gitignore = True
                if name in ignored_files or (checks and _ignored(checks, rel, name, False)):
                    continue
                files.append(name)
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    skipped.append(Skipped(rel, f"unreadable: {exc.strerror}"))
                    continue
                cached = head_get(rel)
                if cached is not None:
                    seen.append(rel)
                    if _vouches(cached, st, max_bytes):
                        continue  # the common case
                else:
                    walk.untracked += 1
                consider(rel, st, cached, result)
        if has_gitignore or not rel_dir:
            skips.extend(ignore.problems(rel_dir))  # kept with the listing: said at every scan
        skipped.extend(skips)
        if key is not None:
            self._remember(rel_dir, fd, _Listing(key, files, subdirs, skips, has_gitignore))

    # --- told paths -----------------------------------------------------------------------

    def scan_paths(self, paths: Iterable[str], head: Mapping[str, HeadRow]) -> ScanResult:
        """Check only ``paths`` (absolute or workspace-relative). Ignored paths are dropped.

        ``head`` needs to hold only the entries for ``paths`` (and, for a directory, below it).
        """
        result = ScanResult()
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
                stack = ignore.stack_for(rel)
                if stack is not None:
                    result.seen -= 1
                    self._walk(rel, stack, ignore, head, result)
                continue
            self._consider(rel, st, head.get(rel), result)
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

    # --- one file -------------------------------------------------------------------------

    def _consider(self, rel: str, st: os.stat_result, cached: HeadRow | None, result: ScanResult) -> None:
        if cached is None and restore_temp_pid(rel.rpartition("/")[2]) is not None:
            return  # a killed restore's temp file: litter, not work (off the stat-cache fast path)
        if stat_mod.S_ISLNK(st.st_mode):
            result.skipped.append(Skipped(rel, "symlink (not followed)"))
            return
        if not stat_mod.S_ISREG(st.st_mode):
            return  # sockets, fifos, devices: nothing to checkpoint
        if st.st_size > self.max_file_bytes:
            result.skipped.append(Skipped(rel, f"larger than {self.max_file_bytes} bytes", st.st_size))
            return
        if cached is not None and _vouches(cached, st, self.max_file_bytes):
            return
        mode = stat_mod.S_IMODE(st.st_mode)
        try:
            # O_NOFOLLOW: the path was a regular file at lstat time; never read through a
            # symlink swapped in since.
            fd = os.open(self.root / rel, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
            with os.fdopen(fd, "rb") as fh:
                content = fh.read(self.max_file_bytes + 1)
        except FileNotFoundError:
            if cached is not None:
                result.changes.append(FileChange(rel, None))
            return
        except OSError as exc:
            result.skipped.append(Skipped(rel, f"unreadable: {exc.strerror}"))
            return
        if len(content) > self.max_file_bytes:
            result.skipped.append(Skipped(rel, f"larger than {self.max_file_bytes} bytes", len(content)))
            return
        if cached is not None and cached[2] == mode and cached[1] == blob_hash(content):
            result.stat_updates.append(
                StatEntry(rel, cached[1], mode, len(content), st.st_mtime_ns, st.st_ino)
            )
            return
        result.changes.append(FileChange(rel, content, mode, st.st_mtime_ns, st.st_ino))


def _vouches(cached: HeadRow, st: os.stat_result, max_bytes: int) -> bool:
    """Whether head's stat cache vouches for the file as it is now: same mtime, size and
    inode, still a regular file with the same permissions, still within the size cap."""
    # cached: (path, hash, mode, size, mtime_ns, ino)
    return (
        cached[4] == st.st_mtime_ns
        and cached[3] == st.st_size
        and cached[5] == st.st_ino
        and st.st_mode == stat_mod.S_IFREG | cached[2]
        and st.st_size <= max_bytes
    )


# --- checking stored directory stats -------------------------------------------------------

VerifyItem = tuple[str, tuple[int, int, int], list[str], bytes]  # dir, its key, names, packed stats


def _verify_dirs(root: str, items: Sequence[VerifyItem]) -> list[int]:
    """Indices of the directories whose own stat and every listed file's stat are exactly as
    stored. The packed comparison runs at C speed: per file, only the stat() call is Python."""
    ok: list[int] = []
    stat = os.stat
    unpack = STAT.iter_unpack
    for i, (rel, key, files, packed) in enumerate(items):
        try:
            fd = os.open(os.path.join(root, rel) if rel else root, _DIR_FLAGS)
        except OSError:
            continue  # gone or unreadable: the walk will say so if it still reaches it
        try:
            dst = os.fstat(fd)
            if (dst.st_mtime_ns, dst.st_ctime_ns, dst.st_ino) != key:
                continue
            got: list[tuple[int, ...]] = []
            add = got.append
            for name in files:
                st = stat(name, dir_fd=fd, follow_symlinks=False)
                add((st.st_mtime_ns, st.st_size, st.st_ino, st.st_mode))
            if got == list(unpack(packed)):
                ok.append(i)
        except OSError:
            continue
        finally:
            os.close(fd)
    return ok


def _fork_pays(total_files: int) -> bool:
    """Whether to split a stat check of ``total_files`` files with a forked child.

    A process running threads (the LSP server) forks too. That is safe here because of what
    the child does: system calls and os._exit only, so no lock another thread may have held
    at fork time (logging, stdio, sqlite's) is ever taken in it; its garbage collector is off
    from before the fork (no finalizer runs); and nothing is flushed to the inherited stdout
    (the LSP transport).
    """
    if total_files < FORK_MIN_FILES or not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return False
    if os.environ.get(FORK_ENV) == "0":
        return False
    try:
        with open("/proc/self/statm", "rb") as fh:  # sizes in pages; the second is resident
            resident_mib = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return False
    return total_files >= resident_mib * FORK_FILES_PER_MIB


def _verify_split(root: str, items: Sequence[VerifyItem]) -> list[int]:
    """:func:`_verify_dirs`, on two processes when the tree is large: a forked child checks
    half the directories and sends back the indices it vouches for. If the child fails or
    stays away too long, its directories are simply not vouched for (the walk checks them)."""
    total = sum(len(it[2]) for it in items)
    if not _fork_pays(total):
        return _verify_dirs(root, items)
    half, count = 0, 0
    while half < len(items) and count < total // 2:
        count += len(items[half][2])
        half += 1
    r, w = os.pipe()
    collecting = gc.isenabled()
    gc.disable()  # off in the child from its first instruction: no finalizer may run there
    try:
        pid = os.fork()
    except OSError as exc:
        if collecting:
            gc.enable()
        os.close(r)
        os.close(w)
        log.debug("no fork for the stat check (%s): one process", exc)
        return _verify_dirs(root, items)
    if pid == 0:  # the child: system calls only, and out through os._exit (no cleanup handlers)
        code = 1
        try:
            os.close(r)
            data = memoryview(array("i", _verify_dirs(root, items[half:])).tobytes())
            while data:
                data = data[os.write(w, data) :]
            code = 0
        finally:
            os._exit(code)
    if collecting:
        gc.enable()
    os.close(w)
    try:
        try:
            mine = _verify_dirs(root, items[:half])
        except BaseException:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        theirs = _collect_child(r, pid, time.monotonic() + FORK_TIMEOUT_S)
    finally:
        os.close(r)
    log.debug(
        "stat check of %d files split with child %d: %d of %d directories unchanged",
        total,
        pid,
        len(mine) + len(theirs),
        len(items),
    )
    return mine + [half + i for i in theirs]


def _collect_child(fd: int, pid: int, deadline: float) -> list[int]:
    chunks: list[bytes] = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                log.warning("stat check child %d took too long: its directories are walked instead", pid)
                os.kill(pid, signal.SIGKILL)
                return []
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        _, status = os.waitpid(pid, 0)  # reaped on every path: no zombie
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        log.warning("stat check child %d failed (status %d): its directories are walked instead", pid, status)
        return []
    data = b"".join(chunks)
    if len(data) % 4:
        return []
    return list(array("i", data))
