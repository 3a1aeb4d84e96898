"""Change discovery: which workspace files differ from the store's head.

Two entry points with different costs:

- :meth:`Scanner.full_scan` walks the tree once (honouring .gitignore files, skipping nested
  ``.git`` and ``node_modules``) and hashes only files whose (mtime, size, inode) differ from the
  stat cache. This is the session-start baseline and the periodic safety net.
- :meth:`Scanner.scan_paths` looks only at the paths it is told about (editor saves, watcher
  events, ``tether step``): O(changed files), whatever the workspace size.
"""

from __future__ import annotations

import logging
import os
import stat as stat_mod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pathspec

from tether.errors import OutsideWorkspaceError
from tether.paths import normalize_rel
from tether.store import FileChange, Skipped, StatEntry, blob_hash

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


@dataclass
class ScanResult:
    changes: list[FileChange] = field(default_factory=list)
    stat_updates: list[StatEntry] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    seen: int = 0

    @property
    def changed_paths(self) -> list[str]:
        return sorted(c.path for c in self.changes)


class _Ignore:
    """Stacked .gitignore rules; a deeper file's verdict overrides a shallower one's."""

    def __init__(self, root: Path, ignored_dirs: frozenset[str], ignored_files: frozenset[str]) -> None:
        self.root = root
        self.ignored_dirs = ignored_dirs
        self.ignored_files = ignored_files
        self._specs: dict[str, pathspec.GitIgnoreSpec | None] = {}

    def spec_for(self, rel_dir: str) -> pathspec.GitIgnoreSpec | None:
        if rel_dir not in self._specs:
            path = self.root / rel_dir / ".gitignore" if rel_dir else self.root / ".gitignore"
            spec = None
            try:
                with path.open("r", encoding="utf-8", errors="replace") as fh:
                    lines = fh.read().splitlines()
                if any(line.strip() and not line.startswith("#") for line in lines):
                    spec = pathspec.GitIgnoreSpec.from_lines(lines)
            except (FileNotFoundError, NotADirectoryError):
                pass
            except OSError as exc:
                log.warning("cannot read %s: %s", path, exc)
            self._specs[rel_dir] = spec
        return self._specs[rel_dir]

    def ignored(self, rel: str, is_dir: bool, stack: list[tuple[str, pathspec.GitIgnoreSpec]]) -> bool:
        name = rel.rsplit("/", 1)[-1]
        if is_dir and name in self.ignored_dirs:
            return True
        if not is_dir and name in self.ignored_files:
            return True
        verdict: bool | None = None
        for base, spec in stack:
            sub = rel[len(base) + 1 :] if base else rel
            res = spec.check_file(sub + "/" if is_dir else sub)
            if res.include is not None:
                verdict = res.include
        return bool(verdict)

    def stack_for(self, rel_dir: str) -> list[tuple[str, pathspec.GitIgnoreSpec]]:
        parts = PurePosixPath(rel_dir).parts if rel_dir else ()
        stack = []
        for i in range(len(parts) + 1):
            base = "/".join(parts[:i])
            spec = self.spec_for(base)
            if spec is not None:
                stack.append((base, spec))
        return stack

    def path_ignored(self, rel: str) -> bool:
        """Whether ``rel`` (a file) or any of its parent directories is ignored."""
        parts = rel.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            parent = "/".join(parts[: i - 1])
            if self.ignored(d, True, self.stack_for(parent)):
                return True
        return self.ignored(rel, False, self.stack_for("/".join(parts[:-1])))


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

    def _ignore(self) -> _Ignore:
        # Fresh per scan: .gitignore files may have changed since the last one.
        return _Ignore(self.root, self._ignored_dirs, self._ignored_files)

    # --- whole tree -----------------------------------------------------------------------

    def full_scan(self, head: Mapping[str, StatEntry]) -> ScanResult:
        result = ScanResult()
        ignore = self._ignore()
        seen: set[str] = set()
        # Iterative walk: deep trees must not hit the recursion limit.
        todo: list[tuple[str, list[tuple[str, pathspec.GitIgnoreSpec]]]] = [("", [])]
        while todo:
            rel_dir, parent_stack = todo.pop()
            spec = ignore.spec_for(rel_dir)
            stack = [*parent_stack, (rel_dir, spec)] if spec is not None else parent_stack
            abs_dir = os.path.join(self.root, rel_dir) if rel_dir else str(self.root)
            try:
                entries = list(os.scandir(abs_dir))
            except OSError as exc:
                if rel_dir:
                    result.skipped.append(Skipped(rel_dir, f"unreadable directory: {exc.strerror}"))
                continue
            for entry in entries:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if ignore.ignored(rel, is_dir, stack):
                    continue
                if is_dir:
                    todo.append((rel, stack))
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    result.skipped.append(Skipped(rel, f"unreadable: {exc.strerror}"))
                    continue
                seen.add(rel)
                self._consider(rel, st, head.get(rel), result)
        result.seen = len(seen)
        # A tracked file that grew past the size cap is reported as skipped, not recorded as deleted.
        skipped = {s.path for s in result.skipped}
        for path in head:
            if path not in seen and path not in skipped:
                result.changes.append(FileChange(path, None))
        return result

    # --- told paths -----------------------------------------------------------------------

    def scan_paths(self, paths: Iterable[str], head: Mapping[str, StatEntry]) -> ScanResult:
        """Check only ``paths`` (absolute or workspace-relative). Ignored paths are dropped."""
        result = ScanResult()
        ignore = self._ignore()
        for raw in paths:
            try:
                rel = normalize_rel(self.root, raw)
            except OutsideWorkspaceError as exc:
                log.warning("not tracking %s: %s", raw, exc.message)
                continue
            if ignore.path_ignored(rel):
                continue
            result.seen += 1
            try:
                st = os.lstat(self.root / rel)
            except FileNotFoundError:
                if rel in head:
                    result.changes.append(FileChange(rel, None))
                continue
            except NotADirectoryError:
                if rel in head:
                    result.changes.append(FileChange(rel, None))
                continue
            except OSError as exc:
                result.skipped.append(Skipped(rel, f"unreadable: {exc.strerror}"))
                continue
            if stat_mod.S_ISDIR(st.st_mode):
                # A directory event (e.g. a directory moved in): look at what is below it.
                sub = self._scan_subtree(rel, head)
                result.changes.extend(sub.changes)
                result.stat_updates.extend(sub.stat_updates)
                result.skipped.extend(sub.skipped)
                result.seen += sub.seen
                continue
            self._consider(rel, st, head.get(rel), result)
        return result

    def _scan_subtree(self, rel_dir: str, head: Mapping[str, StatEntry]) -> ScanResult:
        result = ScanResult()
        sub_head = {p: e for p, e in head.items() if p.startswith(rel_dir + "/")}
        whole = Scanner(self.root / rel_dir, self.max_file_bytes, self._ignored_dirs, self._ignored_files)
        inner = whole.full_scan({p[len(rel_dir) + 1 :]: e for p, e in sub_head.items()})
        for c in inner.changes:
            result.changes.append(FileChange(f"{rel_dir}/{c.path}", c.content, c.mode, c.mtime_ns, c.ino))
        for s in inner.stat_updates:
            result.stat_updates.append(
                StatEntry(f"{rel_dir}/{s.path}", s.hash, s.mode, s.size, s.mtime_ns, s.ino)
            )
        for k in inner.skipped:
            result.skipped.append(Skipped(f"{rel_dir}/{k.path}", k.reason, k.size))
        result.seen = inner.seen
        return result

    # --- one file -------------------------------------------------------------------------

    def _consider(self, rel: str, st: os.stat_result, cached: StatEntry | None, result: ScanResult) -> None:
        if stat_mod.S_ISLNK(st.st_mode):
            result.skipped.append(Skipped(rel, "symlink (not followed)"))
            return
        if not stat_mod.S_ISREG(st.st_mode):
            return  # sockets, fifos, devices: nothing to checkpoint
        if st.st_size > self.max_file_bytes:
            result.skipped.append(Skipped(rel, f"larger than {self.max_file_bytes} bytes", st.st_size))
            return
        mode = stat_mod.S_IMODE(st.st_mode)
        if (
            cached is not None
            and cached.mtime_ns == st.st_mtime_ns
            and cached.size == st.st_size
            and cached.ino == st.st_ino
            and cached.mode == mode
        ):
            return
        try:
            with open(self.root / rel, "rb") as fh:
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
        if cached is not None and cached.hash == blob_hash(content) and cached.mode == mode:
            result.stat_updates.append(
                StatEntry(rel, cached.hash, mode, len(content), st.st_mtime_ns, st.st_ino)
            )
            return
        result.changes.append(FileChange(rel, content, mode, st.st_mtime_ns, st.st_ino))
