"""Stored directory listings with their stat cache (store/scan_dirs.py, scan/listings.py): a new
process walks from them.

The packed stats must agree with ``head`` after every kind of write, and a walk from them must
find exactly what a walk without them finds.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import tether.store.head as store_head
from tether.checkpoints.checkpointer import Checkpointer
from tether.scan.scanner import Scanner
from tether.scan.statcheck import VerifyItem, verify_dirs
from tether.store.db import Store
from tether.store.scan_dirs import STAT, DirsExport
from tether.store.schema import SCHEMA_VERSION


@pytest.fixture(autouse=True)
def trust_fresh_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    # Trust just-made stats: the stored stats then vouch for files these tests just wrote.
    monkeypatch.setattr(store_head, "RACY_NS", 0)


@pytest.fixture
def store(workspace: Path, state_dir: Path) -> Iterator[Store]:
    with Store.open(workspace, state_dir) as s:
        yield s


def write(root: Path, rel: str, data: str = "x\n") -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(data)
    return p


def tree(root: Path, n: int = 60) -> None:
    write(root, ".gitignore", "*.log\nbuild/\n")
    for i in range(n):
        write(root, f"d{i % 6}/s{i % 4}/f{i}.txt", f"{i}\n")
        if i % 9 == 0:
            write(root, f"d{i % 6}/noise{i}.log", "ignored\n")
    write(root, "build/out.o", "ignored\n")


KINDS = ["append", "same-size", "touch", "delete", "new", "newdir", "rmdir", "chmod", "link"]


def fresh_scan(workspace: Path, state_dir: Path) -> list[str]:
    """What a new process's walk (from the stored listings) finds changed."""
    with Store.open(workspace, state_dir) as s:
        return Checkpointer(s).scan_workspace().changed_paths


def reference_scan(workspace: Path, store: Store) -> list[str]:
    """The same question answered with no listings at all: every directory listed, full head."""
    return Scanner(workspace).full_scan(store.head()).changed_paths


def test_stats_agree_with_head_after_every_kind_of_write(
    workspace: Path, state_dir: Path, store: Store
) -> None:
    tree(workspace)
    cp = Checkpointer(store)
    cp.checkpoint("manual")
    assert store.scan_dirs()[1] and store.scan_dirs_consistent() == []
    # A told save (content change), a touch (stat refresh only), a deletion, a new file, a mode
    # change: each written by the store in one transaction that must refresh the stats too.
    write(workspace, "d1/s1/f1.txt", "changed\n")
    cp.checkpoint("save", paths=["d1/s1/f1.txt"])
    assert store.scan_dirs_consistent() == []
    p = workspace / "d2/s2/f2.txt"
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns - 10_000_000_000))
    assert cp.checkpoint("save", paths=["d2/s2/f2.txt"]).scan.stat_updates
    assert store.scan_dirs_consistent() == []
    (workspace / "d3/s3/f3.txt").unlink()
    cp.checkpoint("save", paths=["d3/s3/f3.txt"])
    assert store.scan_dirs_consistent() == []
    write(workspace, "d4/s0/new.txt", "new\n")
    (workspace / "d5/s1/f5.txt").chmod(0o755)
    cp.checkpoint("periodic")
    assert store.scan_dirs_consistent() == []
    # Another process's checkpoint of a told path keeps the stored stats right as well.
    write(workspace, "d0/s0/f0.txt", "other process\n")
    with Store.open(workspace, state_dir) as other:
        Checkpointer(other).checkpoint("save", paths=["d0/s0/f0.txt"])
    assert store.scan_dirs_consistent() == []
    assert fresh_scan(workspace, state_dir) == [] == reference_scan(workspace, store)


def test_a_new_process_finds_what_a_walk_without_listings_finds(
    workspace: Path, state_dir: Path, store: Store
) -> None:
    """Random rounds of edits of every kind, each checked by a new process's walk from the
    stored listings against a walk with none; then checkpointed by that new process."""
    tree(workspace, 80)
    Checkpointer(store).checkpoint("manual")
    rng = random.Random(7)
    for rnd in range(12):
        files = sorted(
            str(p.relative_to(workspace))
            for p in workspace.rglob("*")
            if p.is_file() and not p.is_symlink() and "build" not in p.parts
        )
        for _ in range(rng.randint(1, 4)):
            rel = rng.choice(files)
            p = workspace / rel
            kind = rng.choice(KINDS)
            if not p.exists():
                continue
            if kind == "append":
                with p.open("a") as fh:
                    fh.write("more\n")
            elif kind == "same-size":  # in place, same size: only mtime (and content) differ
                data = p.read_bytes()
                p.write_bytes(bytes(reversed(data)) if data != data[::-1] else data + b"!")
                st = p.stat()
                os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
            elif kind == "touch":
                st = p.stat()
                os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns - 5_000_000_000))
            elif kind == "delete":
                p.unlink()
            elif kind == "new":
                write(workspace, f"{p.parent.relative_to(workspace)}/n{rnd}.txt", f"new {rnd}\n")
            elif kind == "newdir":
                write(workspace, f"{p.parent.relative_to(workspace)}/nd{rnd}/x.txt", "x\n")
            elif kind == "rmdir" and p.parent != workspace:
                shutil.rmtree(p.parent)
            elif kind == "chmod":
                p.chmod(0o755 if p.stat().st_mode & 0o100 == 0 else 0o644)
            elif kind == "link":
                p.unlink()
                p.symlink_to("/etc/hostname")
        expected = reference_scan(workspace, store)
        assert fresh_scan(workspace, state_dir) == expected, f"round {rnd}"
        with Store.open(workspace, state_dir) as s:
            out = Checkpointer(s).checkpoint("periodic")
            assert sorted(c.path for c in out.scan.changes) == expected
            assert s.scan_dirs_consistent() == []
        assert reference_scan(workspace, store) == []
        assert fresh_scan(workspace, state_dir) == []


def test_unchanged_directories_need_no_head_rows(
    workspace: Path, state_dir: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree(workspace)
    Checkpointer(store).checkpoint("manual")
    write(workspace, "d2/s0/f2.txt", "edited\n")
    asked: list[str] = []
    real_head = Store.head

    def spy(self: Store, paths: object = None, under: object = ()) -> object:
        if paths is not None:
            asked.extend(paths)  # type: ignore[call-overload]
        return real_head(self, paths, under)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "head", spy)
    monkeypatch.setattr(Store, "head_rows", lambda self: pytest.fail("whole head read"))
    assert fresh_scan(workspace, state_dir) == ["d2/s0/f2.txt"]
    assert asked and {a.rpartition("/")[0] for a in asked} == {"d2/s0"}


def test_directories_without_a_stored_listing_read_head_whole_then_keep_theirs(
    workspace: Path, state_dir: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Listings are not kept for directories changed within the racy window: right after the
    # first checkpoint of a new tree none is stored. A new process's walk must then read head
    # in one query, not row by row, and saving what it listed lets the next one vouch.
    tree(workspace)
    old = time.time() - 3600
    for p in [*workspace.rglob("*.txt"), workspace / ".gitignore"]:
        os.utime(p, (old, old))
    monkeypatch.setattr(store_head, "RACY_NS", 600 * 10**9)  # the files are older, not the directories
    Checkpointer(store).checkpoint("manual")
    assert store.scan_dirs()[1] == []
    monkeypatch.setattr(store_head, "RACY_NS", 0)
    asked: list[str] = []
    real_head = Store.head

    def spy(self: Store, paths: object = None, under: object = ()) -> object:
        if paths is not None:
            asked.extend(paths)  # type: ignore[call-overload]
        return real_head(self, paths, under)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "head", spy)
    with Store.open(workspace, state_dir) as s:
        cp = Checkpointer(s)
        assert cp.scan_workspace().changed_paths == []
        assert asked == []  # the whole head, once
        cp.save_listings()  # what a hook that found nothing to checkpoint does
    assert {r.dir for r in store.scan_dirs()[1]} >= {"", "d0", "d3/s1"}
    monkeypatch.setattr(Store, "head_rows", lambda self: pytest.fail("whole head read"))
    with Store.open(workspace, state_dir) as s:
        scan = Checkpointer(s).scan_workspace()
    assert scan.changed_paths == [] and scan.listed == 0 and asked == []


def test_listings_of_removed_directories_are_dropped(workspace: Path, state_dir: Path, store: Store) -> None:
    tree(workspace)
    cp = Checkpointer(store)
    cp.checkpoint("manual")
    assert "d3/s1" in {r.dir for r in store.scan_dirs()[1]}
    shutil.rmtree(workspace / "d3")
    cp.checkpoint("periodic")
    assert not {r.dir for r in store.scan_dirs()[1]} & {"d3", "d3/s1", "d3/s3"}
    assert store.scan_dirs_consistent() == []


def test_listings_filtered_with_other_gitignores_are_never_mixed(
    workspace: Path, state_dir: Path, store: Store
) -> None:
    tree(workspace)
    Checkpointer(store).checkpoint("manual")
    meta, rows = store.scan_dirs()
    assert meta is not None
    # A partial export made under other rules is refused whole; a complete one replaces all.
    assert store.put_scan_dirs(DirsExport(meta + b" ", rows[:1], [], everything=False)) is False
    assert store.scan_dirs()[0] == meta and len(store.scan_dirs()[1]) == len(rows)
    assert store.put_scan_dirs(DirsExport(b"{}", rows[:1], [], everything=True)) is True
    assert len(store.scan_dirs()[1]) == 1
    # A process with the right rules then finds the stored ones unusable and rewrites them.
    write(workspace, "d1/new.txt", "n\n")
    with Store.open(workspace, state_dir) as other:
        cp = Checkpointer(other)
        assert cp.checkpoint("periodic").scan.changed_paths == ["d1/new.txt"]
    meta2, rows2 = store.scan_dirs()
    assert meta2 == meta and len(rows2) == len(rows) and store.scan_dirs_consistent() == []


def test_schema_1_store_is_migrated(workspace: Path, state_dir: Path, store: Store) -> None:
    write(workspace, "a.txt")
    Checkpointer(store).checkpoint("manual")
    db_path = store.db_path
    store.close()
    conn = sqlite3.connect(db_path)
    conn.execute("DROP TABLE scan_dirs")
    conn.execute("INSERT INTO state(name, updated, codec, data) VALUES ('scan.listings', 0, 'raw', x'00')")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    with Store.open(workspace, state_dir) as s:
        assert s._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        assert s.get_state("scan.listings") is None  # the old blob is gone
        assert Checkpointer(s).checkpoint("periodic").info is None
        assert {r.dir for r in s.scan_dirs()[1]} == {""}


# --- the stat check of stored directories -------------------------------------------------


def _items(workspace: Path, store: Store) -> list[VerifyItem]:
    Checkpointer(store).checkpoint("manual")
    _, rows = store.scan_dirs()
    return [(r.dir, r.key, r.files, r.stats) for r in rows]


def test_the_stat_check_vouches_only_for_unchanged_directories(workspace: Path, store: Store) -> None:
    tree(workspace, 120)
    items = _items(workspace, store)
    edited = set()
    for i in range(0, 120, 13):
        with (workspace / f"d{i % 6}/s{i % 4}/f{i}.txt").open("a") as fh:
            fh.write("edit\n")
        edited.add(f"d{i % 6}/s{i % 4}")
    one = verify_dirs(str(workspace), items, STAT.format)
    assert 0 < len(one) < len(items)  # some directories vouched for, the edited ones not
    assert not {items[i][0] for i in one} & edited


def test_a_checkpoint_of_told_paths_keeps_the_stored_listings(
    workspace: Path, state_dir: Path, store: Store
) -> None:
    # A process that never walked (`tether step` answered by a file watcher's dirty set, a
    # save) has no listings of its own: its checkpoints must not replace the store's with none.
    tree(workspace)
    Checkpointer(store).checkpoint("manual")
    meta, rows = store.scan_dirs()
    assert rows
    write(workspace, "d1/new.txt", "n\n")
    with Store.open(workspace, state_dir) as other:
        info = Checkpointer(other).checkpoint("save", paths=["d1/new.txt"]).info
        assert info is not None and info.files == ("d1/new.txt",)
    assert store.scan_dirs()[0] == meta
    assert {r.dir for r in store.scan_dirs()[1]} == {r.dir for r in rows}


def test_the_listed_file_count_is_what_the_stored_listings_hold(workspace: Path, store: Store) -> None:
    assert store.listed_files() == 0  # nothing stored yet
    tree(workspace, 90)
    Checkpointer(store).checkpoint("manual")
    _, rows = store.scan_dirs()
    assert store.listed_files() == sum(len(r.files) for r in rows) > 0
