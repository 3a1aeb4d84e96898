"""The scanner's pattern sources (.gitignore at every depth, info/exclude, core.excludesFile),
read as untrusted input: bounded, never blocking, what was not applied reported with the
scan's skips; and a walk that stops at its deadline without losing or inventing anything."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.checkpoints.checkpointer import Checkpointer
from tether.scan.ignore import MAX_PATTERN_BYTES
from tether.scan.ignore_sources import MAX_FILE_BYTES
from tether.scan.result import IGNORE_RULES_REASON
from tether.scan.scanner import Scanner
from tether.store.db import Store


@pytest.fixture(autouse=True)
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private home: the user's own git config and ignore file stay out of these tests."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    return home


@pytest.fixture
def store(workspace: Path, state_dir: Path) -> Iterator[Store]:
    s = Store.open(workspace, state_dir)
    yield s
    s.close()


@pytest.fixture
def trust_fresh_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    import tether.store.head

    monkeypatch.setattr(tether.store.head, "RACY_NS", 0)


def write(root: Path, rel: str, data: bytes | str = "x\n") -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


def rule_warnings(skipped: list[object]) -> dict[str, str]:
    return {s.path: s.reason for s in skipped if s.reason.startswith(IGNORE_RULES_REASON)}  # type: ignore[attr-defined]


def test_overlong_pattern_is_not_applied_and_reported_at_every_scan(
    workspace: Path, store: Store, state_dir: Path, trust_fresh_stats: None
) -> None:
    write(workspace, "sub/.gitignore", "*.log\n" + "*a" * MAX_PATTERN_BYTES + "\n")
    write(workspace, "sub/x.log")
    write(workspace, "sub/y.txt")
    out = Checkpointer(store).checkpoint("manual")
    assert set(store.head()) == {"sub/.gitignore", "sub/y.txt"}  # the rest of the file applies
    warnings = rule_warnings(out.scan.skipped)
    assert list(warnings) == ["sub/.gitignore"] and "line 2" in warnings["sub/.gitignore"]
    assert "sub/.gitignore" in rule_warnings(store.skipped())  # what `tether status` lists
    # A new process walks from the stored listings (the file is not read again): still said.
    with Store.open(workspace, state_dir) as again:
        scan = Checkpointer(again).scan_workspace()
        assert "sub/.gitignore" in rule_warnings(scan.skipped)


def test_symlinked_gitignore_is_not_followed(workspace: Path, store: Store, tmp_path: Path) -> None:
    target = write(tmp_path, "outside", "*.txt\n")
    os.symlink(target, workspace / ".gitignore")
    (workspace / "sub").mkdir()
    os.symlink("/dev/zero", workspace / "sub" / ".gitignore")
    write(workspace, "a.txt")
    write(workspace, "sub/b.txt")
    out = Checkpointer(store).checkpoint("manual")
    assert {"a.txt", "sub/b.txt"} <= set(store.head())  # neither file's rules applied
    warnings = rule_warnings(out.scan.skipped)
    assert "symbolic link" in warnings[".gitignore"] and "symbolic link" in warnings["sub/.gitignore"]


@pytest.mark.timeout(60)
def test_fifo_gitignore_does_not_block(workspace: Path, store: Store) -> None:
    os.mkfifo(workspace / ".gitignore")
    write(workspace, "a.txt")
    out = Checkpointer(store).checkpoint("manual")
    assert "a.txt" in store.head()
    assert "not a regular file" in rule_warnings(out.scan.skipped)[".gitignore"]


def test_huge_gitignore_applies_its_first_part(workspace: Path, store: Store) -> None:
    line = b"# " + b"c" * 1000 + b"\n"
    body = b"first\n" + line * (MAX_FILE_BYTES // len(line) + 10) + b"last\n"
    write(workspace, ".gitignore", body)
    write(workspace, "first")
    write(workspace, "last")
    out = Checkpointer(store).checkpoint("manual")
    assert "first" not in store.head() and "last" in store.head()
    assert "larger than" in rule_warnings(out.scan.skipped)[".gitignore"]


def test_info_exclude_applies_and_its_edits_are_seen(
    workspace: Path, store: Store, trust_fresh_stats: None
) -> None:
    write(workspace, ".git/info/exclude", "# git's template\n*.bak\n")
    write(workspace, "a.bak")
    write(workspace, "a.txt")
    write(workspace, "b.tmp")
    cp = Checkpointer(store)
    cp.checkpoint("manual")
    assert set(store.head()) == {"a.txt", "b.tmp"}
    # The listings kept by the scanner were filtered with the old file: they are dropped.
    write(workspace, ".git/info/exclude", "*.bak\n*.tmp\n")
    out = cp.checkpoint("manual")
    assert [c.path for c in out.scan.changes] == ["b.tmp"] and set(store.head()) == {"a.txt"}
    # A .gitignore overrides info/exclude.
    write(workspace, ".gitignore", "!a.bak\n")
    cp.checkpoint("manual")
    assert set(store.head()) == {".gitignore", "a.txt", "a.bak"}


def test_worktree_info_exclude_is_the_common_dirs(workspace: Path, store: Store, tmp_path: Path) -> None:
    common = tmp_path / "main.git"
    write(common, "info/exclude", "*.bak\n")
    write(common, "worktrees/ws/commondir", "../..\n")
    write(workspace, ".git", f"gitdir: {common / 'worktrees' / 'ws'}\n")
    write(workspace, "a.bak")
    write(workspace, "a.txt")
    Checkpointer(store).checkpoint("manual")
    assert "a.txt" in store.head() and "a.bak" not in store.head()


def test_core_excludes_file_default_and_configured(workspace: Path, user_config: Path) -> None:
    write(user_config, ".config/git/ignore", "*.swp\n")
    write(workspace, "a.swp")
    write(workspace, "a.orig")
    write(workspace, "a.txt")
    rules = Scanner(workspace).ignore_rules()
    assert rules.path_ignored("a.swp") and not rules.path_ignored("a.orig")
    # core.excludesFile in the user's config replaces the default (quotes, "~/", comments).
    write(user_config, ".gitconfig", '[user]\n\tname = x\n[core]\n\texcludesFile = "~/ign" ; mine\n')
    write(user_config, "ign", "*.orig\n")
    rules = Scanner(workspace).ignore_rules()
    assert rules.path_ignored("a.orig") and not rules.path_ignored("a.swp")
    # The repository's config comes last and wins; a subsection is not [core].
    config = f'[core "x"]\n\texcludesfile = /nowhere\n[core]\nexcludesfile={workspace}/ex\n'
    write(workspace, ".git/config", config)
    write(workspace, "ex", "a.txt\n")
    rules = Scanner(workspace).ignore_rules()
    assert rules.path_ignored("a.txt") and not rules.path_ignored("a.orig")
    # info/exclude overrides core.excludesFile.
    write(workspace, ".git/info/exclude", "!a.txt\n")
    assert not Scanner(workspace).ignore_rules().path_ignored("a.txt")


@pytest.mark.timeout(60)
def test_excludes_file_pointing_at_a_device_or_fifo(workspace: Path, user_config: Path) -> None:
    os.mkfifo(user_config / "fifo")
    for target in ("/dev/zero", str(user_config / "fifo")):
        write(workspace, ".git/config", f"[core]\nexcludesFile = {target}\n")
        write(workspace, "a.txt")
        scanner = Scanner(workspace)
        rules = scanner.ignore_rules()
        assert not rules.path_ignored("a.txt")
        assert "not a regular file" in rules.problems("")[0].reason


def test_walk_stops_at_its_deadline_and_reports_nothing_it_did_not_see(
    workspace: Path, store: Store, trust_fresh_stats: None
) -> None:
    for d in range(20):
        write(workspace, f"d{d}/a.txt")
    cp = Checkpointer(store)
    cp.checkpoint("manual")
    write(workspace, "big.dat", b"x" * (6 * 1024 * 1024))  # over the size cap: a skip
    cp.checkpoint("manual")
    assert [s.path for s in store.skipped()] == ["big.dat"]
    for d in range(20):
        write(workspace, f"d{d}/a.txt", "changed\n")
    write(workspace, "top.txt")
    cp = Checkpointer(store)
    cp.deadline = time.monotonic() - 1  # already past: only the first directory is walked
    scan = cp.scan_workspace()
    assert not scan.complete and scan.changed_paths == ["top.txt"]  # nothing invented deleted
    out = cp.checkpoint("manual")
    assert out.info is not None and out.info.files == ("top.txt",)  # what it found is recorded
    assert [s.path for s in store.skipped()] == ["big.dat"]  # a partial walk drops no skip
    assert len(store.head()) == 21  # none reported deleted
    cp.deadline = None
    out = cp.checkpoint("manual")
    assert out.scan.complete and len(out.scan.changes) == 20


def test_symlinked_excludes_file_keeps_the_listings(
    workspace: Path, store: Store, user_config: Path, trust_fresh_stats: None
) -> None:
    """A dotfiles manager links ~/.config/git/ignore: scans keep their listings until it changes."""
    real = write(user_config, "dotfiles/ignore", "*.swp\n")
    (user_config / ".config" / "git").mkdir(parents=True)
    os.symlink(real, user_config / ".config" / "git" / "ignore")
    write(workspace, "a.swp")
    write(workspace, "a.txt")
    cp = Checkpointer(store)
    cp.checkpoint("manual")
    scanner = cp.scanner
    assert set(store.head()) == {"a.txt"} and scanner.has_listings
    assert not scanner.listings.check_gitignores()  # nothing changed: listings kept
    write(user_config, "dotfiles/ignore", "*.swp\n*.txt\n")
    assert scanner.listings.check_gitignores()
    cp.checkpoint("manual")
    assert set(store.head()) == set()
