"""Which ignore rules apply where in one workspace: git's precedence (a deeper ``.gitignore`` over
a shallower one, over the repository's ``info/exclude``, over the user's ``core.excludesFile``)
plus Tether's own never-tracked names. Pattern files are read once per scan, as untrusted input."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tether.model import Skipped
from tether.scan.ignore import Rules, rules_from_bytes
from tether.scan.ignore_sources import excludes_sources, read_pattern_file
from tether.scan.result import GITIGNORE, IGNORE_RULES_REASON

log = logging.getLogger(__name__)

Stack = tuple[Rules, ...]


def ignored_by(checks: Stack, rel: str, name: str, is_dir: bool) -> bool:
    """Whether ``rel`` (named ``name``) is ignored by the rules in ``checks``, which hold the
    applicable pattern files, deepest first: the deepest with a matching pattern decides."""
    for rules in checks:
        verdict = rules.verdict(rel, name, is_dir)
        if verdict is not None:
            return verdict
    return False


def unignored(stack: Stack, prefix: str, names: list[str], is_dir: bool) -> list[str]:
    """The entries ``names`` of one directory (``prefix``: its path and "/", or "" for the
    root) that the rules in ``stack`` (shallowest first) do not ignore: :func:`ignored_by`
    for a whole directory at once, the walk's way."""
    if not stack or not names:
        return names
    decided = stack[-1].verdicts(prefix, names, is_dir)
    for rules in stack[-2::-1]:  # a shallower file decides what the deeper ones did not
        for name, verdict in rules.verdicts(prefix, names, is_dir).items():
            decided.setdefault(name, verdict)
    if not decided:
        return names
    return [name for name in names if not decided.get(name)]


class IgnoreTree:
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
        return self.extend(self.base_stack(), "")

    def base_stack(self) -> Stack:
        """The rules from the sources outside the tree (read once)."""
        if self._base is None:
            base: list[Rules] = []
            for path, shown in excludes_sources(self.root):
                rules = self._load(path, shown, True, "", "")
                if rules is not None:
                    base.append(rules)
            self._base = tuple(base)
        return self._base

    def problems(self, rel_dir: str) -> list[Skipped]:
        """Pattern files read for ``rel_dir`` that were not wholly applied, and why."""
        return self._problems.get(rel_dir, [])

    def extend(self, stack: Stack, rel_dir: str) -> Stack:
        rules = self.rules_for(rel_dir)
        return (*stack, rules) if rules is not None else stack

    def ignored(self, rel: str, name: str, is_dir: bool, stack: Stack) -> bool:
        if name in (self.ignored_dirs if is_dir else self.ignored_files):
            return True
        return ignored_by(stack[::-1], rel, name, is_dir)

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

    def outer_stack(self, rel_dir: str) -> Stack | None:
        """Rules that apply inside ``rel_dir`` except its own .gitignore (a walk adds that one
        when its listing shows one), or None when ``rel_dir`` itself is ignored."""
        if not rel_dir:
            return self.base_stack()
        parent, _, name = rel_dir.rpartition("/")
        stack = self.stack_for(parent)
        if stack is None or self.ignored(rel_dir, name, True, stack):
            return None
        return stack

    def path_ignored(self, rel: str, is_dir: bool = False) -> bool:
        """Whether ``rel`` (a file unless ``is_dir``) or any of its parent directories is ignored."""
        if is_dir:
            return self.stack_for(rel) is None
        parent, _, name = rel.rpartition("/")
        stack = self.stack_for(parent)
        return stack is None or self.ignored(rel, name, False, stack)
