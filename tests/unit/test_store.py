"""The SQLite store: deltas, dedup, gc folding, corruption, permissions, schema versions."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.errors import CorruptStoreError, NoCheckpointError, StoreError
from tether.model import FileChange
from tether.store.db import Store
from tether.store.schema import SCHEMA_VERSION


@pytest.fixture
def store(workspace: Path, state_dir: Path) -> Iterator[Store]:
    s = Store.open(workspace, state_dir)
    yield s
    s.close()


def change(path: str, content: bytes | None, mode: int = 0o644) -> FileChange:
    return FileChange(path, content, mode, mtime_ns=1, ino=1)


def manifest_bytes(store: Store, n: int) -> dict[str, bytes]:
    return {p: store.read_blob(e.hash) for p, e in store.manifest(n).items()}


def fill_history(store: Store, rounds: int = 12) -> None:
    """Adds, edits, deletions and re-adds across many checkpoints, with attachments."""
    for i in range(rounds):
        changes = [change(f"f{i}.txt", f"file {i}\n".encode())]
        if i % 3 == 0:
            changes.append(change("shared.txt", f"shared v{i}\n".encode()))
        if i % 4 == 1 and i > 1:
            changes.append(change(f"f{i - 2}.txt", None))  # delete an older file
        if i == 7:
            changes.append(change("f0.txt", b"file 0 back\n"))
        attach = {"tmux": f"tmux {i // 2}".encode()} if i % 5 else None
        assert store.create_checkpoint("save", f"round {i}", changes, attachments=attach) is not None


def test_checkpoint_stores_deltas_not_full_manifests(store: Store) -> None:
    store.create_checkpoint("manual", None, [change("a", b"1"), change("b", b"2")])
    info = store.create_checkpoint("save", None, [change("a", b"3")])
    assert info is not None and info.files == ("a",) and info.parent == 1
    rows = store._db.execute("SELECT checkpoint, path FROM changes ORDER BY checkpoint, path").fetchall()
    assert rows == [(1, "a"), (1, "b"), (2, "a")]
    assert manifest_bytes(store, 2) == {"a": b"3", "b": b"2"}
    assert manifest_bytes(store, 1) == {"a": b"1", "b": b"2"}


def test_blobs_are_deduplicated_and_compressed(store: Store) -> None:
    text = b"the same line\n" * 1000
    store.create_checkpoint("manual", None, [change("a", text), change("b", text)])
    store.create_checkpoint("manual", None, [change("c", text)])
    count, stored = store._db.execute("SELECT COUNT(*), SUM(LENGTH(data)) FROM blobs").fetchone()
    assert count == 1 and stored < len(text) // 10


def test_no_change_means_no_checkpoint_unless_allowed(store: Store) -> None:
    store.create_checkpoint("manual", None, [change("a", b"1")])
    assert store.create_checkpoint("save", None, [change("a", b"1")]) is None
    assert store.create_checkpoint("save", None, [change("gone", None)]) is None
    info = store.create_checkpoint("manual", "marker", [], allow_empty=True)
    assert info is not None and info.files == () and info.message == "marker"


def test_checkpoint_numbers_and_lookup(store: Store) -> None:
    with pytest.raises(NoCheckpointError, match="no checkpoints yet"):
        store.get_checkpoint(1)
    for i in range(3):
        store.create_checkpoint("save", None, [change("a", str(i).encode())])
    assert [c.id for c in store.list_checkpoints()] == [3, 2, 1]
    assert store.latest() is not None and store.latest().id == 3  # type: ignore[union-attr]
    with pytest.raises(NoCheckpointError, match="the latest is 3"):
        store.manifest(9)
    with pytest.raises(NoCheckpointError, match="the latest is 3"):
        store.checkpoint_origin(9)
    assert store.checkpoint_origin(2) is None  # made here
    assert store.latest_id() == 3 and store.latest_id("elsewhere") is None


def test_a_first_checkpoints_files_are_not_read_to_look_at_a_later_change(store: Store) -> None:
    """A step's "changed since the last step" and entry_at read a checkpoint's number and
    origin, not the list of its files: after a first checkpoint of a big tree that list is the
    whole workspace (~50 ms at 10k files, on every first step)."""
    from tether.agent.runs import LiveTree
    from tether.scan.result import ScanResult

    store.create_checkpoint("baseline", None, [change(f"f{i}", b"x") for i in range(500)])
    store.create_checkpoint("step", None, [change("f1", b"y")])
    reads: list[str] = []
    store._db.set_trace_callback(reads.append)
    try:
        assert LiveTree(store, ScanResult()).changed_since(1) == ["f1"]
    finally:
        store._db.set_trace_callback(None)
    # The deltas after checkpoint 1 are read (checkpoint 2's one file), never checkpoint 1's list.
    assert any("FROM changes WHERE checkpoint=2 " in q for q in reads), reads
    assert not any("FROM changes WHERE checkpoint=1 " in q for q in reads), reads


def test_newest_with_trigger_looks_only_within_the_last_checkpoints(store: Store) -> None:
    from tether.model import ImportedCheckpoint

    assert store.newest_with_trigger("baseline", 10) is None
    for i, trigger in enumerate(["baseline", "save", "baseline", "save", "save"]):
        store.create_checkpoint(trigger, None, [change("a", str(i).encode())])
    assert store.newest_with_trigger("baseline", 10) == 3
    assert store.newest_with_trigger("baseline", 3) == 3  # 5, 4, 3
    assert store.newest_with_trigger("baseline", 2) is None  # 5, 4
    # Another machine's checkpoints are not this machine's baseline.
    store.import_checkpoints("laptop", [ImportedCheckpoint(1.0, "baseline", None, [("b", b"b", 0o644)])])
    assert store.newest_with_trigger("baseline", 10) == 3
    assert store.newest_with_trigger("baseline", 10, origin="laptop") == 6


def test_attachments_only_stored_when_changed(store: Store) -> None:
    store.create_checkpoint("save", None, [change("a", b"1")], attachments={"tmux": b"t1"})
    # Only the attachment changed: still a checkpoint (the terminals moved on).
    assert store.create_checkpoint("save", None, [], attachments={"tmux": b"t2"}) is not None
    assert store.create_checkpoint("save", None, [], attachments={"tmux": b"t2"}) is None
    assert store.attachment(1, "tmux") == b"t1"
    assert store.attachment(2, "tmux") == b"t2"
    assert store.latest_attachment("tmux") == (2, b"t2")
    assert store.latest_attachment("tmux", at=1) == (1, b"t1")
    assert store.latest_attachment("nope") is None


def test_live_state_round_trip(store: Store) -> None:
    assert store.get_state("journal") is None
    store.put_state("journal", b"x" * 5000)
    assert store.get_state("journal") == b"x" * 5000
    store.delete_state("journal")
    assert store.get_state("journal") is None


def test_gc_keeps_every_kept_manifest_and_attachment_unchanged(store: Store) -> None:
    fill_history(store)
    ids = [c.id for c in store.list_checkpoints(limit=None)]
    before = {n: manifest_bytes(store, n) for n in ids}
    attach_before = {n: store.latest_attachment("tmux", at=n) for n in ids}
    report = store.gc(keep_last=5)
    kept = [c.id for c in store.list_checkpoints(limit=None)]
    assert kept == ids[:5]
    assert sorted(report.removed_checkpoints) == sorted(ids[5:])
    for n in kept:
        assert manifest_bytes(store, n) == before[n], n
        assert store.latest_attachment("tmux", at=n) == attach_before[n], n
    assert report.removed_blobs > 0
    # Every blob still referenced is readable; no orphan blobs remain.
    orphans = store._db.execute(
        "SELECT COUNT(*) FROM blobs WHERE hash NOT IN (SELECT hash FROM changes WHERE hash IS NOT NULL)"
        " AND hash NOT IN (SELECT hash FROM attachments)"
    ).fetchone()[0]
    assert orphans == 0
    # New checkpoints after gc continue the numbering and the history.
    info = store.create_checkpoint("save", None, [change("after.txt", b"a")])
    assert info is not None and info.id == ids[0] + 1
    assert manifest_bytes(store, info.id) == {**before[ids[0]], "after.txt": b"a"}


def test_gc_by_age_and_size(store: Store) -> None:
    fill_history(store, rounds=6)
    old = time.time() - 10 * 86400
    store._db.execute("UPDATE checkpoints SET created=? WHERE id<=3", (old,))
    latest_manifest = manifest_bytes(store, 6)
    report = store.gc(max_age_days=5)
    assert sorted(report.removed_checkpoints) == [1, 2, 3]
    assert manifest_bytes(store, 6) == latest_manifest
    report = store.gc(max_bytes=0)  # as small as possible: only the newest survives
    assert [c.id for c in store.list_checkpoints(limit=None)] == [6]
    assert manifest_bytes(store, 6) == latest_manifest
    assert report.bytes_after <= report.bytes_before


def test_gc_age_older_than_everything_keeps_newest(store: Store) -> None:
    fill_history(store, rounds=3)
    store._db.execute("UPDATE checkpoints SET created=?", (time.time() - 100 * 86400,))
    store.gc(max_age_days=1)
    assert [c.id for c in store.list_checkpoints(limit=None)] == [3]


def test_gc_on_empty_store(store: Store) -> None:
    report = store.gc(keep_last=1, max_age_days=1, max_bytes=0)
    assert report.removed_checkpoints == []


def test_two_store_handles_on_one_workspace_dedupe_the_same_edit(workspace: Path, state_dir: Path) -> None:
    a = Store.open(workspace, state_dir)
    b = Store.open(workspace, state_dir)
    try:
        a.head()  # warm a's head cache, then let b commit behind its back
        assert b.create_checkpoint("save", None, [change("x", b"1")]) is not None
        assert a.create_checkpoint("save", None, [change("x", b"1")]) is None
        assert set(a.head()) == {"x"}  # the cache noticed b's commit
        assert a.create_checkpoint("save", None, [change("x", b"2")]) is not None
        assert b.head()["x"].hash == a.head()["x"].hash
    finally:
        a.close()
        b.close()


def test_head_rows_follow_own_and_other_commits(workspace: Path, state_dir: Path) -> None:
    a = Store.open(workspace, state_dir)
    b = Store.open(workspace, state_dir)
    try:
        a.create_checkpoint("save", None, [change("x", b"1"), change("y", b"1")])
        rows = a.head_rows()
        assert set(rows) == {"x", "y"}
        assert a.head()["x"] == rows["x"] and a.head()["x"].hash == rows["x"][1]
        a.create_checkpoint("save", None, [change("x", b"2"), change("y", None)])
        rows = a.head_rows()  # kept in step with a's own commit
        assert set(rows) == {"x"} and rows["x"][1] == a.head()["x"].hash
        b.create_checkpoint("save", None, [change("z", b"3")])
        assert set(a.head_rows()) == {"x", "z"}  # b's commit is noticed
        assert a.head(["z"])["z"].hash == b.head()["z"].hash
    finally:
        a.close()
        b.close()


def test_a_write_that_need_not_be_durable_only_skips_the_wait_for_the_disk(
    workspace: Path, state_dir: Path
) -> None:
    a = Store.open(workspace, state_dir)
    b = Store.open(workspace, state_dir)
    try:

        def synchronous(s: Store) -> int:
            return int(s._db.execute("PRAGMA synchronous").fetchone()[0])

        assert synchronous(a) == 2  # FULL: every commit is fsynced
        inside: list[int] = []
        with a.write(durable=False) as tx:
            inside.append(synchronous(a))
            tx.execute("INSERT INTO meta(key, value) VALUES ('k1', 'v1')")
        assert inside == [1]  # NORMAL for that commit only
        assert synchronous(a) == 2 and b.get_meta("k1") == "v1"  # committed, seen by others
        with pytest.raises(RuntimeError), a.write(durable=False) as tx:
            tx.execute("INSERT INTO meta(key, value) VALUES ('k2', 'v2')")
            raise RuntimeError("rolled back")
        assert synchronous(a) == 2 and b.get_meta("k2") is None
        # A connection whose commits never wait (a file watcher's) stays so.
        b.commits_need_not_outlive_the_boot()
        with b.write(durable=False) as tx:
            tx.execute("INSERT INTO meta(key, value) VALUES ('k3', 'v3')")
        with b.write() as tx:
            tx.execute("INSERT INTO meta(key, value) VALUES ('k4', 'v4')")
        assert synchronous(b) == 1 and a.get_meta("k4") == "v4"
    finally:
        a.close()
        b.close()


# --- files on disk: permissions --------------------------------------------------------------


def mode_of(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_permissions_private_even_with_umask_000(workspace: Path, tmp_path: Path) -> None:
    base = tmp_path / "fresh" / "nested" / "state"
    old = os.umask(0)
    try:
        s = Store.open(workspace, base)
        try:
            s.create_checkpoint("manual", None, [change("a", b"1")])
            db = s.db_path
            for p in (base.parent.parent, base.parent, base, db.parent.parent, db.parent):
                assert mode_of(p) == 0o700, p
            assert mode_of(db) == 0o600
            # While a connection is open the WAL and shared-memory files exist: private too.
            for suffix in ("-wal", "-shm"):
                side = db.with_name(db.name + suffix)
                assert side.exists() and mode_of(side) == 0o600, side
        finally:
            s.close()
    finally:
        os.umask(old)


def test_existing_loose_state_dir_is_tightened(workspace: Path, tmp_path: Path) -> None:
    base = tmp_path / "loose"
    base.mkdir(mode=0o755)
    base.chmod(0o755)
    Store.open(workspace, base).close()
    assert mode_of(base) == 0o700


# --- corruption and schema versions ----------------------------------------------------------


def snapshot(p: Path) -> tuple[bytes, int]:
    return p.read_bytes(), p.stat().st_mtime_ns


def make_db(workspace: Path, state_dir: Path) -> Path:
    s = Store.open(workspace, state_dir)
    for i in range(30):
        s.create_checkpoint("save", None, [change(f"f{i}", os.urandom(3000))])
    path = s.db_path
    s.close()
    return path


@pytest.mark.parametrize("damage", ["garbage", "truncated_header", "truncated_pages", "damaged_pages"])
def test_corrupt_db_gives_clear_error_and_is_not_modified(
    workspace: Path, state_dir: Path, damage: str
) -> None:
    db = make_db(workspace, state_dir)
    data = db.read_bytes()
    if damage == "garbage":
        db.write_bytes(os.urandom(8192))
    elif damage == "truncated_header":
        db.write_bytes(data[:40])
    elif damage == "truncated_pages":
        db.write_bytes(data[: len(data) // 3])
    else:
        # Keep the 100-byte header, smash every page after the first with garbage.
        page = int.from_bytes(data[16:18], "big")
        db.write_bytes(data[:page] + os.urandom(len(data) - page))
    before = snapshot(db)
    with pytest.raises(CorruptStoreError) as err:
        s = Store.open(workspace, state_dir)
        try:
            # Damage may sit in pages that opening does not touch: any read must say so too.
            for c in s.list_checkpoints(limit=None):
                s.manifest(c.id)
            s.create_checkpoint("save", None, [change("new", b"x")])
        finally:
            s.close()
    assert "corrupt" in err.value.message and str(db) in err.value.message
    assert "mv " in err.value.message  # tells the user what to do
    assert snapshot(db) == before


def test_newer_schema_is_refused_with_clear_error(workspace: Path, state_dir: Path) -> None:
    db = make_db(workspace, state_dir)
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    before = snapshot(db)
    with pytest.raises(StoreError, match="newer than this Tether"):
        Store.open(workspace, state_dir)
    assert snapshot(db) == before


def test_migration_from_empty_file(workspace: Path, state_dir: Path) -> None:
    s = Store.open(workspace, state_dir)
    db = s.db_path
    s.close()
    for side in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        side.unlink(missing_ok=True)
    db.touch(mode=0o600)  # an empty file: a crash right after creating it
    s = Store.open(workspace, state_dir)
    try:
        assert s._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert s.create_checkpoint("manual", None, [change("a", b"1")]) is not None
    finally:
        s.close()


def test_store_of_another_root_is_refused(workspace: Path, state_dir: Path) -> None:
    s = Store.open(workspace, state_dir)
    s._db.execute("UPDATE meta SET value='/elsewhere' WHERE key='root'")
    s.close()
    with pytest.raises(StoreError, match="belongs to /elsewhere"):
        Store.open(workspace, state_dir)


def test_open_non_directory_workspace(tmp_path: Path, state_dir: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        Store.open(f, state_dir)


def test_damaged_blob_is_reported(store: Store) -> None:
    info = store.create_checkpoint("manual", None, [change("a", b"payload" * 100)])
    assert info is not None
    digest = store.manifest(info.id)["a"].hash
    store._db.execute("UPDATE blobs SET data=? WHERE hash=?", (b"not zlib", digest))
    with pytest.raises(CorruptStoreError, match="damaged"):
        store.read_blob(digest)
    store._db.execute("UPDATE blobs SET data=?, codec='raw' WHERE hash=?", (b"other", digest))
    with pytest.raises(CorruptStoreError, match="checksum"):
        store.read_blob(digest)


def test_unusable_state_dir_is_a_clear_store_error(workspace: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be")
    with pytest.raises(StoreError, match="cannot use the store location") as err:
        Store.open(workspace, blocker / "state")
    assert "TETHER_STATE_DIR" in err.value.message


def test_loose_db_file_mode_is_tightened(workspace: Path, state_dir: Path) -> None:
    s = Store.open(workspace, state_dir)
    db = s.db_path
    s.close()
    db.chmod(0o644)
    Store.open(workspace, state_dir).close()
    assert mode_of(db) == 0o600
