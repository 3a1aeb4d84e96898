"""Property tests: hostile paths never escape the workspace.

Paths are built from hostile pieces (``..``, absolute prefixes, symlinks that lead out of the
workspace, NUL bytes, names longer than NAME_MAX, paths longer than PATH_MAX, non-UTF-8 names).
``normalize_rel`` either rejects them with OutsideWorkspaceError or returns a relative path that
stays inside; restore and scan given such paths fail with a clear TetherError or do the right
thing, and a sentinel directory outside the workspace stays byte-identical.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.faults import dir_fingerprint
from tether.checkpoints import restore as restore_mod
from tether.checkpoints.checkpointer import Checkpointer
from tether.errors import OutsideWorkspaceError, TetherError
from tether.model import FileChange
from tether.paths import normalize_rel
from tether.scan.result import valid_name
from tether.store.db import Store

NAME_MAX = os.pathconf("/", "PC_NAME_MAX")
PATH_MAX = os.pathconf("/", "PC_PATH_MAX")

SEGMENTS = st.sampled_from(
    [
        "..",
        ".",
        "",
        "src",
        "a.txt",
        "out",  # symlink to the sentinel outside
        "loop",  # symlink to itself
        "inner",  # symlink to src (inside)
        "x" * (NAME_MAX + 1),
        "y" * 200,
        "bad\x00name",
        "caf\udce9",  # non-UTF-8 byte 0xe9 as Python's surrogate escape
        "\u00e9t\u00e9",
        "~",
        "$HOME",
        "-rf",
    ]
)


@st.composite
def hostile_paths(draw: st.DrawFn) -> str:
    parts = draw(st.lists(SEGMENTS, min_size=1, max_size=6))
    path = "/".join(parts)
    prefix = draw(st.sampled_from(["", "", "/", "ROOT/", "SENTINEL/", "//"]))
    if draw(st.booleans()) and draw(st.booleans()):
        path = "/".join(["d" * 250] * (PATH_MAX // 250 + 2))  # longer than PATH_MAX
    return prefix + path


@dataclass
class World:
    base: Path
    root: Path
    sentinel: Path
    state: Path

    def expand(self, raw: str) -> str:
        return raw.replace("ROOT/", f"{self.root}/", 1).replace("SENTINEL/", f"{self.sentinel}/", 1)


@contextmanager
def world() -> Iterator[World]:
    base = Path(tempfile.mkdtemp(prefix="tether-props-")).resolve()
    try:
        root = base / "ws"
        sentinel = base / "sentinel"
        (root / "src").mkdir(parents=True)
        sentinel.mkdir()
        (sentinel / "a.txt").write_text("outside: must never change\n")
        (sentinel / "src").mkdir()
        (root / "a.txt").write_text("inside\n")
        (root / "src" / "a.txt").write_text("inside src\n")
        (root / "out").symlink_to(sentinel)
        (root / "loop").symlink_to(root / "loop")
        (root / "inner").symlink_to(root / "src")
        yield World(base, root, sentinel, base / "state")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _inside(root: Path, rel: str) -> bool:
    if rel.startswith("/") or "\x00" in rel or ".." in rel.split("/"):
        return False
    parent = os.path.realpath(os.path.dirname(os.path.join(root, rel)) or root)
    return parent == str(root) or parent.startswith(str(root) + os.sep)


@pytest.fixture(scope="module")
def shared_world() -> Iterator[World]:
    # normalize_rel writes nothing: one world serves every example.
    with world() as w:
        yield w


@settings(max_examples=300, deadline=None)
@given(raw=hostile_paths())
def test_normalize_rel_rejects_or_stays_inside(shared_world: World, raw: str) -> None:
    w = shared_world
    path = w.expand(raw)
    try:
        rel = normalize_rel(w.root, path)
    except OutsideWorkspaceError as exc:
        assert exc.message and exc.reason == "outsideWorkspace"
        return
    assert _inside(w.root, rel), (path, rel)
    assert rel == normalize_rel(w.root, rel)  # normal form is a fixed point


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raws=st.lists(hostile_paths(), min_size=1, max_size=3))
def test_restore_with_hostile_paths_never_writes_outside(raws: list[str]) -> None:
    with world() as w, Store.open(w.root, w.state) as store:
        cp = Checkpointer(store)
        first = cp.checkpoint("manual", full=True, allow_empty=True).info
        assert first is not None
        (w.root / "a.txt").write_text("changed\n")
        (w.root / "src" / "a.txt").write_text("changed src\n")
        cp.checkpoint("manual", full=True)
        outside = dir_fingerprint(w.sentinel)
        siblings = sorted(p.name for p in w.base.iterdir())
        for dry in (True, False):
            try:
                restore_mod.restore(store, cp, first.id, [w.expand(r) for r in raws], dry_run=dry)
            except TetherError as exc:
                assert exc.message
        assert dir_fingerprint(w.sentinel) == outside
        assert sorted(p.name for p in w.base.iterdir()) == siblings


@settings(max_examples=80, deadline=None)
@given(raws=st.lists(hostile_paths(), min_size=1, max_size=4))
def test_poisoned_store_paths_are_refused_at_restore(raws: list[str]) -> None:
    """A store holding hostile paths (written by a bug or by hand) still cannot write outside."""
    with world() as w, Store.open(w.root, w.state) as store:
        cp = Checkpointer(store)
        changes = {}
        for raw in raws:
            path = w.expand(raw)
            if not valid_name(path) or "\x00" in path:
                continue  # SQLite TEXT cannot hold them; the scanner never produces them
            changes[path] = FileChange(path, b"pwned\n")
        if not changes:
            return
        poisoned = store.create_checkpoint("manual", "poison", changes.values())
        outside = dir_fingerprint(w.sentinel)
        siblings = sorted(p.name for p in w.base.iterdir())
        if poisoned is not None:
            try:
                restore_mod.restore(store, cp, poisoned.id, dry_run=False)
            except TetherError as exc:
                assert exc.message
        assert dir_fingerprint(w.sentinel) == outside
        assert sorted(p.name for p in w.base.iterdir()) == siblings
        for dirpath, _dirs, files in os.walk(w.root):
            for name in files:
                p = Path(dirpath) / name
                if not p.is_symlink() and p.read_bytes() == b"pwned\n":
                    assert _inside(w.root, p.relative_to(w.root).as_posix())


NAMES = st.one_of(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
        min_size=1,
        max_size=40,
    ),
    st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b and b"\x00" not in b),
    st.just("z" * (NAME_MAX + 5)),
)


@settings(max_examples=60, deadline=None)
@given(names=st.lists(NAMES, min_size=1, max_size=8))
def test_scan_of_odd_names_never_raises_and_stores_only_clean_paths(names: list[str | bytes]) -> None:
    with world() as w, Store.open(w.root, w.state) as store:
        made: list[bytes] = []
        for name in names:
            raw = name if isinstance(name, bytes) else os.fsencode(name)
            if raw in (b".", b"..") or raw in made:
                continue
            try:
                with open(os.path.join(os.fsencode(w.root), b"src", raw), "wb") as fh:
                    fh.write(b"odd name\n")
            except OSError:
                continue  # ENAMETOOLONG and friends: the OS refused, nothing to scan
            made.append(raw)
        outcome = Checkpointer(store).checkpoint("manual", full=True, allow_empty=True)
        skipped = {s.path for s in outcome.scan.skipped}
        tracked = set(store.head())
        for raw in made:
            rel = "src/" + os.fsdecode(raw)
            if valid_name(rel):
                assert (
                    rel in tracked
                    or any(s.startswith("src/") for s in skipped)
                    or rel
                    in {
                        "src/.agent-session.json",
                        "src/.DS_Store",
                    }
                )
            else:
                assert rel not in tracked
                assert any("not valid UTF-8" in s.reason for s in outcome.scan.skipped)
        for rel in tracked:
            assert valid_name(rel) and normalize_rel(w.root, rel) == rel
            assert _inside(w.root, rel)
