"""Change discovery against real files: stat cache, .gitignore, skips, odd names, symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tether.checkpoints.checkpointer import Checkpointer
from tether.scan.result import BAD_NAME_REASON
from tether.scan.scanner import Scanner
from tether.store.db import Store


@pytest.fixture
def store(workspace: Path, state_dir: Path) -> Store:
    s = Store.open(workspace, state_dir)
    yield s  # type: ignore[misc]
    s.close()


@pytest.fixture
def trust_fresh_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust stats and directory listings at once (no racy-timestamp window), so that tests
    that just created their files exercise the cached paths instead of waiting 2 s."""
    import tether.store.head

    monkeypatch.setattr(tether.store.head, "RACY_NS", 0)


def write(root: Path, rel: str, data: bytes | str = "x\n") -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


def tracked(store: Store) -> set[str]:
    return set(store.head())


def test_touch_without_content_change_makes_no_checkpoint(workspace: Path, store: Store) -> None:
    p = write(workspace, "a.txt", "hello\n")
    cp = Checkpointer(store)
    assert cp.checkpoint("manual").info is not None
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns - 50_000_000_000))
    out = cp.checkpoint("manual")
    assert out.info is None
    assert [s.path for s in out.scan.stat_updates] == ["a.txt"]
    # The refreshed stat cache now vouches for the file: nothing is re-read next time.
    assert store.head()["a.txt"].mtime_ns == p.stat().st_mtime_ns
    again = cp.checkpoint("manual")
    assert again.info is None and again.scan.stat_updates == []


def test_same_size_edit_with_same_mtime_is_detected_by_inode(workspace: Path, store: Store) -> None:
    p = write(workspace, "a.txt", "aaaa\n")
    cp = Checkpointer(store)
    cp.checkpoint("manual")
    st = p.stat()
    # Editors save by writing a new file and renaming it over: new inode, same size, and a
    # coarse-mtime filesystem can give the same mtime.
    tmp = write(workspace, "a.txt.new", "bbbb\n")
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, p)
    assert p.stat().st_mtime_ns == st.st_mtime_ns and p.stat().st_size == st.st_size
    info = cp.checkpoint("manual").info
    assert info is not None and info.files == ("a.txt",)
    assert store.read_blob(store.manifest(info.id)["a.txt"].hash) == b"bbbb\n"


def test_same_size_edit_in_place_with_new_mtime_is_detected(workspace: Path, store: Store) -> None:
    p = write(workspace, "a.txt", "aaaa\n")
    cp = Checkpointer(store)
    cp.checkpoint("manual")
    st = p.stat()
    p.write_bytes(b"cccc\n")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # one nanosecond later, same second
    info = cp.checkpoint("manual").info
    assert info is not None and info.files == ("a.txt",)


def test_mode_change_is_recorded(workspace: Path, store: Store) -> None:
    p = write(workspace, "run.sh", "#!/bin/sh\n")
    p.chmod(0o644)
    cp = Checkpointer(store)
    cp.checkpoint("manual")
    p.chmod(0o755)
    info = cp.checkpoint("manual").info
    assert info is not None and store.manifest(info.id)["run.sh"].mode == 0o755


def test_deletion_is_recorded(workspace: Path, store: Store) -> None:
    write(workspace, "a.txt")
    write(workspace, "d/b.txt")
    cp = Checkpointer(store)
    first = cp.checkpoint("manual").info
    assert first is not None
    (workspace / "a.txt").unlink()
    (workspace / "d/b.txt").unlink()
    info = cp.checkpoint("manual").info
    assert info is not None and set(info.files) == {"a.txt", "d/b.txt"}
    assert store.manifest(info.id) == {}
    assert set(store.manifest(first.id)) == {"a.txt", "d/b.txt"}


def test_told_deleted_directory_records_every_file_below(workspace: Path, store: Store) -> None:
    write(workspace, "d/one.txt")
    write(workspace, "d/sub/two.txt")
    write(workspace, "keep.txt")
    cp = Checkpointer(store)
    cp.checkpoint("manual")
    for p in ("d/sub/two.txt", "d/one.txt"):
        (workspace / p).unlink()
    (workspace / "d/sub").rmdir()
    (workspace / "d").rmdir()
    info = cp.checkpoint("save", paths=["d"]).info
    assert info is not None and set(info.files) == {"d/one.txt", "d/sub/two.txt"}
    assert tracked(store) == {"keep.txt"}


def test_told_directory_moved_in_is_scanned_with_root_gitignore(workspace: Path, store: Store) -> None:
    write(workspace, ".gitignore", "*.log\n")
    cp = Checkpointer(store)
    cp.checkpoint("manual")
    write(workspace, "moved/a.py", "print(1)\n")
    write(workspace, "moved/debug.log", "noise\n")
    info = cp.checkpoint("save", paths=[str(workspace / "moved")]).info
    assert info is not None and info.files == ("moved/a.py",)


def test_told_directory_and_files_below_it_record_each_change_once(workspace: Path, store: Store) -> None:
    write(workspace, "d/gone.txt")
    cp = Checkpointer(store)
    cp.checkpoint("manual")
    write(workspace, "moved/a.py", "print(1)\n")
    (workspace / "d" / "gone.txt").unlink()
    # What a watcher reports for a directory moved in and a directory emptied: both levels.
    info = cp.checkpoint("save", paths=["moved", "moved/a.py", "d", "d/gone.txt"]).info
    assert info is not None and sorted(info.files) == ["d/gone.txt", "moved/a.py"]


def test_file_over_cap_is_skipped_reported_and_not_deleted(workspace: Path, store: Store) -> None:
    p = write(workspace, "big.bin", b"small")
    cp = Checkpointer(store, max_file_bytes=1000)
    first = cp.checkpoint("manual").info
    assert first is not None
    p.write_bytes(b"y" * 5000)
    out = cp.checkpoint("manual")
    assert out.info is None  # nothing recordable changed
    assert [(s.path, s.size) for s in out.scan.skipped] == [("big.bin", 5000)]
    assert [s.path for s in store.skipped()] == ["big.bin"]
    assert "big.bin" in tracked(store)  # still tracked at its last recorded content
    # Told about it (an editor save): same verdict, and the report survives.
    out = cp.checkpoint("save", paths=["big.bin"])
    assert out.info is None and [s.path for s in store.skipped()] == ["big.bin"]
    # Shrinks below the cap again: recorded, and no longer reported.
    p.write_bytes(b"ok")
    info = cp.checkpoint("manual").info
    assert info is not None and info.files == ("big.bin",)
    assert store.skipped() == []


def test_gitignore_root_nested_and_negation(workspace: Path, store: Store) -> None:
    write(workspace, ".gitignore", "*.log\nbuild/\n!keep.log\n/only_root.txt\n")
    write(workspace, "a.log")
    write(workspace, "keep.log")
    write(workspace, "sub/b.log")
    write(workspace, "sub/keep.log")
    write(workspace, "build/out.o")
    write(workspace, "src/build/gen.c")  # "build/" matches at any depth
    write(workspace, "only_root.txt")
    write(workspace, "sub/only_root.txt")  # anchored pattern: only the root one is ignored
    write(workspace, "sub/.gitignore", "*.tmp\n!important.log\n")
    write(workspace, "sub/x.tmp")
    write(workspace, "sub/important.log")  # nested negation overrides the root's *.log
    write(workspace, "x.tmp")  # the nested rule does not apply at the root
    write(workspace, "src/main.py")
    Checkpointer(store).checkpoint("manual")
    assert tracked(store) == {
        ".gitignore",
        "keep.log",
        "sub/keep.log",
        "sub/only_root.txt",
        "sub/.gitignore",
        "sub/important.log",
        "x.tmp",
        "src/main.py",
    }


def test_gitignore_applies_to_told_paths_too(workspace: Path, store: Store) -> None:
    write(workspace, ".gitignore", "dist/\n*.pyc\n")
    write(workspace, "dist/bundle.js")
    write(workspace, "m.pyc")
    write(workspace, "node_modules/x/index.js")
    write(workspace, "ok.py")
    out = Checkpointer(store).checkpoint(
        "save", paths=["dist/bundle.js", "m.pyc", "node_modules/x/index.js", "ok.py"]
    )
    assert out.info is not None and out.info.files == ("ok.py",)


def test_nested_git_and_node_modules_skipped(workspace: Path, store: Store) -> None:
    write(workspace, ".git/HEAD", "ref: refs/heads/main\n")
    write(workspace, "vendor/lib/.git/config", "[core]\n")
    write(workspace, "vendor/lib/code.c")
    write(workspace, "web/node_modules/left-pad/index.js")
    write(workspace, "web/app.js")
    Checkpointer(store).checkpoint("manual")
    assert tracked(store) == {"vendor/lib/code.c", "web/app.js"}


def test_binary_huge_non_utf8_and_unicode_names(workspace: Path, store: Store) -> None:
    binary = bytes(range(256)) * 40
    latin1 = "café\n".encode("latin-1")
    huge = os.urandom(3 * 1024 * 1024)  # incompressible, under the default cap
    write(workspace, "img.bin", binary)
    write(workspace, "latin1.txt", latin1)
    write(workspace, "huge.dat", huge)
    write(workspace, "ünïcødé/日本語 ファイル.txt", "こんにちは\n")
    write(workspace, "with space.txt", "s\n")
    write(workspace, "new\nline.txt", "n\n")
    write(workspace, "empty", b"")
    info = Checkpointer(store).checkpoint("manual").info
    assert info is not None
    man = store.manifest(info.id)
    assert store.read_blob(man["img.bin"].hash) == binary
    assert store.read_blob(man["latin1.txt"].hash) == latin1
    assert store.read_blob(man["huge.dat"].hash) == huge
    assert store.read_blob(man["ünïcødé/日本語 ファイル.txt"].hash) == "こんにちは\n".encode()
    assert store.read_blob(man["new\nline.txt"].hash) == b"n\n"
    assert store.read_blob(man["empty"].hash) == b""
    assert "with space.txt" in man


def test_non_utf8_file_name_is_skipped_with_reason(workspace: Path, store: Store) -> None:
    bad = os.fsencode(workspace) + b"/bad\xff\xfe.txt"
    with open(bad, "wb") as fh:
        fh.write(b"data")
    os.mkdir(os.fsencode(workspace) + b"/dir\xe9")
    with open(os.fsencode(workspace) + b"/dir\xe9/inner.txt", "wb") as fh:
        fh.write(b"data")
    write(workspace, "good.txt")
    out = Checkpointer(store).checkpoint("manual")
    assert out.info is not None and out.info.files == ("good.txt",)
    reasons = {s.path: s.reason for s in store.skipped()}
    assert reasons == {"bad\\xff\\xfe.txt": BAD_NAME_REASON, "dir\\xe9": BAD_NAME_REASON}
    # Told about it by name (a watcher event): same clear skip, nothing crashes.
    told = Checkpointer(store).checkpoint("save", paths=[os.fsdecode(bad)])
    assert told.info is None
    assert [s.reason for s in told.scan.skipped] == [BAD_NAME_REASON]


def test_symlinks_are_never_followed(workspace: Path, store: Store, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret\n")
    write(workspace, "real/inner.txt", "inner\n")
    (workspace / "link_out").symlink_to(outside)
    (workspace / "link_file").symlink_to(outside / "secret.txt")
    (workspace / "link_in").symlink_to(workspace / "real")
    out = Checkpointer(store).checkpoint("manual")
    assert tracked(store) == {"real/inner.txt"}
    reasons = {s.path: s.reason for s in out.scan.skipped}
    assert set(reasons) == {"link_out", "link_file", "link_in"}
    assert all("symlink" in r for r in reasons.values())
    # Told paths through symlinked directories are not tracked either.
    told = Checkpointer(store).checkpoint("save", paths=["link_in/inner.txt", "link_out/secret.txt"])
    assert told.info is None
    assert tracked(store) == {"real/inner.txt"}


def test_told_paths_outside_workspace_are_ignored(workspace: Path, store: Store, tmp_path: Path) -> None:
    (tmp_path / "elsewhere.txt").write_text("no\n")
    out = Checkpointer(store).checkpoint("save", paths=[str(tmp_path / "elsewhere.txt"), "../elsewhere.txt"])
    assert out.info is None and tracked(store) == set()


def test_incremental_scan_reads_only_told_paths(workspace: Path, store: Store) -> None:
    for i in range(50):
        write(workspace, f"pkg/m{i}.py", f"x = {i}\n")
    cp = Checkpointer(store)
    cp.checkpoint("manual")
    write(workspace, "pkg/m7.py", "x = 'seven'\n")
    write(workspace, "pkg/m8.py", "x = 'eight'\n")  # changed but not told: not part of it
    out = cp.checkpoint("save", paths=["pkg/m7.py"])
    assert out.scan.seen == 1
    assert out.info is not None and out.info.files == ("pkg/m7.py",)
    # note_changed + a later checkpoint picks up what was noted.
    cp.note_changed(["pkg/m8.py"])
    info = cp.checkpoint("save").info
    assert info is not None and info.files == ("pkg/m8.py",)


def test_unreadable_directory_is_skipped_and_its_files_not_deleted(workspace: Path, store: Store) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every directory")
    write(workspace, "locked/a.txt")
    cp = Checkpointer(store)
    cp.checkpoint("manual")
    (workspace / "locked").chmod(0)
    try:
        out = cp.checkpoint("manual")
        assert out.info is None and "locked/a.txt" in tracked(store)
        assert [s.path for s in out.scan.skipped] == ["locked"]
    finally:
        (workspace / "locked").chmod(0o700)


def test_scanner_full_scan_is_pure(workspace: Path, store: Store) -> None:
    write(workspace, "a.txt")
    result = Scanner(workspace).full_scan(store.head())
    assert result.changed_paths == ["a.txt"] and store.latest() is None


def test_parallel_walk_finds_the_same_as_serial(
    workspace: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tether.scan.scanner as scan_mod

    write(workspace, ".gitignore", "*.log\n")
    for i in range(300):
        write(workspace, f"d{i % 17}/s{i % 5}/f{i}.txt", f"{i}\n")
        if i % 10 == 0:
            write(workspace, f"d{i % 17}/x{i}.log", "ignored\n")
    Checkpointer(store).checkpoint("manual")
    for i in range(0, 300, 7):
        write(workspace, f"d{i % 17}/s{i % 5}/f{i}.txt", f"changed {i}\n")
    for i in range(1, 300, 11):
        (workspace / f"d{i % 17}/s{i % 5}/f{i}.txt").unlink()
    write(workspace, "d3/new.txt", "new\n")
    serial = Scanner(workspace).full_scan(store.head())
    monkeypatch.setattr(scan_mod, "PARALLEL_MIN_FILES", 0)
    monkeypatch.setattr(scan_mod, "WALK_THREADS", 2)  # one by default: the threaded walk stays right
    parallel = Scanner(workspace).full_scan(store.head())
    assert parallel.changed_paths == serial.changed_paths
    assert parallel.seen == serial.seen
    expected = {*range(0, 300, 7), *range(1, 300, 11)}
    assert len(serial.changes) == len(expected) + 1


def test_warm_scanner_sees_gitignore_edits_and_new_nested_gitignore(
    workspace: Path, store: Store, trust_fresh_stats: None
) -> None:
    """One long-lived Checkpointer (as in the server) reuses directory listings between walks."""
    write(workspace, ".gitignore", "*.log\n")
    write(workspace, "src/a.py", "a\n")
    write(workspace, "src/deep/b.py", "b\n")
    write(workspace, "src/deep/c.tmp", "c\n")
    cp = Checkpointer(store)
    cp.checkpoint("manual")
    assert tracked(store) == {".gitignore", "src/a.py", "src/deep/b.py", "src/deep/c.tmp"}
    # Editing the root .gitignore (no directory changes) re-filters everything.
    write(workspace, ".gitignore", "*.log\n*.tmp\n")
    info = cp.checkpoint("periodic").info
    assert info is not None and "src/deep/c.tmp" in info.files
    assert "src/deep/c.tmp" not in tracked(store)
    # A new nested .gitignore applies below it, even to directories listed before.
    write(workspace, "src/.gitignore", "deep/\n")
    cp.checkpoint("periodic")
    assert tracked(store) == {".gitignore", "src/.gitignore", "src/a.py"}
    # ... and removing it brings them back.
    (workspace / "src/.gitignore").unlink()
    cp.checkpoint("periodic")
    assert tracked(store) == {".gitignore", "src/a.py", "src/deep/b.py"}


def test_warm_scanner_sees_in_place_edits_additions_and_removals(
    workspace: Path, store: Store, trust_fresh_stats: None
) -> None:
    write(workspace, "d/a.txt", "1\n")
    write(workspace, "d/b.txt", "1\n")
    cp = Checkpointer(store)
    cp.checkpoint("manual")
    cp.checkpoint("periodic")  # listings cached
    with open(workspace / "d/a.txt", "a") as fh:  # in place: the directory does not change
        fh.write("more\n")
    write(workspace, "d/sub/new.txt", "n\n")
    (workspace / "d/b.txt").unlink()
    info = cp.checkpoint("periodic").info
    assert info is not None and set(info.files) == {"d/a.txt", "d/b.txt", "d/sub/new.txt"}
    assert tracked(store) == {"d/a.txt", "d/sub/new.txt"}


def test_listings_kept_for_the_next_process_stay_correct(
    workspace: Path, state_dir: Path, store: Store, trust_fresh_stats: None
) -> None:
    write(workspace, ".gitignore", "*.log\n")
    write(workspace, "d/a.txt", "1\n")
    write(workspace, "d/e/b.txt", "1\n")
    write(workspace, "only-ignored/x.log", "noise\n")
    Checkpointer(store).checkpoint("manual")
    assert {r.dir for r in store.scan_dirs()[1]} == {"", "d", "d/e", "only-ignored"}  # for the next session
    # A "new session": another store handle and checkpointer, after changes of every kind.
    with open(workspace / "d/a.txt", "a") as fh:
        fh.write("in place\n")
    write(workspace, "d/e/new.txt", "n\n")
    write(workspace, "only-ignored/found.txt", "not ignored\n")
    write(workspace, ".gitignore", "*.log\nb.txt\n")
    with Store.open(workspace, state_dir) as other:
        cp = Checkpointer(other)
        info = cp.checkpoint("periodic").info
        assert cp.scanner.has_listings
        assert info is not None
        assert set(info.files) == {
            ".gitignore",
            "d/a.txt",
            "d/e/new.txt",
            "d/e/b.txt",  # now ignored: no longer tracked
            "only-ignored/found.txt",
        }
        assert set(other.head()) == {".gitignore", "d/a.txt", "d/e/new.txt", "only-ignored/found.txt"}
        assert other.scan_dirs_consistent() == []


def test_new_process_touched_files_refresh_the_stat_cache_without_a_checkpoint(
    workspace: Path, state_dir: Path, store: Store, trust_fresh_stats: None
) -> None:
    """A new process checks stored directory stats first: a touched file fails that check, is
    read once, found unchanged, and only its stat is refreshed (in head and the stored stats)."""
    a = write(workspace, "d/a.txt", "same\n")
    write(workspace, "d/b.txt", "b\n")
    Checkpointer(store).checkpoint("manual")
    assert store.scan_dirs()[1]
    st = a.stat()
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns - 50_000_000_000))
    with Store.open(workspace, state_dir) as other:
        cp = Checkpointer(other)
        out = cp.checkpoint("periodic")
        assert cp.scanner.has_listings
        assert out.info is None
        assert [u.path for u in out.scan.stat_updates] == ["d/a.txt"]
        assert other.head_rows()["d/a.txt"][4] == a.stat().st_mtime_ns
        assert cp.checkpoint("periodic").scan.stat_updates == []
        assert other.scan_dirs_consistent() == []
    assert store.head()["d/a.txt"].mtime_ns == a.stat().st_mtime_ns  # the first handle sees it too
    with Store.open(workspace, state_dir) as third:  # and a third process vouches for d whole
        cp = Checkpointer(third)
        assert cp.checkpoint("periodic").scan.stat_updates == []


def test_damaged_or_foreign_listings_are_ignored(
    workspace: Path, state_dir: Path, store: Store, trust_fresh_stats: None
) -> None:
    write(workspace, "a.txt", "1\n")
    write(workspace, "d/b.txt", "1\n")
    cp = Checkpointer(store)
    assert cp.checkpoint("manual").info is not None
    meta, rows = store.scan_dirs()
    assert meta is not None and {r.dir for r in rows} == {"", "d"}
    assert Scanner(workspace).import_dirs(meta, rows) is True
    assert Scanner(workspace, max_file_bytes=10).import_dirs(meta, rows) is False  # other config
    assert Scanner(workspace).import_dirs(None, rows) is False  # rules unknown
    assert Scanner(workspace).import_dirs(b"garbage", rows) is False
    short = [r._replace(stats=r.stats[:-1]) for r in rows]
    assert Scanner(workspace).import_dirs(meta, short) is False  # stats do not fit the names
    # Damaged in the database itself: the next process walks without them, correctly.
    store._db.execute("UPDATE scan_dirs SET stats=x'00', files=x'ff'")
    write(workspace, "d/b.txt", "changed\n")
    with Store.open(workspace, state_dir) as other:
        info = Checkpointer(other).checkpoint("periodic").info
        assert info is not None and info.files == ("d/b.txt",)
        assert other.scan_dirs_consistent() == []  # stored again whole, from head


def test_racy_same_size_rewrite_in_the_same_tick_is_detected(workspace: Path, store: Store) -> None:
    """Read just after a write, a file could be rewritten within the same coarse mtime tick:
    a fresh stat must not vouch for its content ("racy git")."""
    p = write(workspace, "a.txt", "aaaa\n")
    cp = Checkpointer(store)
    cp.checkpoint("save", paths=["a.txt"])
    assert store.head()["a.txt"].mtime_ns == 0  # too fresh to vouch for anything
    st = p.stat()
    p.write_bytes(b"bbbb\n")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # same tick: same mtime, size, inode
    info = cp.checkpoint("periodic").info
    assert info is not None and info.files == ("a.txt",)
    # Once old enough, the stat is recorded and vouches again (nothing is re-read).
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns - 60_000_000_000))
    assert cp.checkpoint("periodic").scan.stat_updates != []
    assert cp.checkpoint("periodic").scan.stat_updates == []
