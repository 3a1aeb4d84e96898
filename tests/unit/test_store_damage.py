"""A damaged store: every command answers with the documented error (exit 5), never a
traceback, and a store judged corrupt is never written, not by the command that found the
damage, not by any later one, not at close (the write-ahead log is not copied into it)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from tether.cli import main
from tether.errors import CorruptStoreError, StoreError
from tether.model import FileChange
from tether.store.db import Store


def _cli(capsys: pytest.CaptureFixture[str], workspace: Path, *argv: str) -> tuple[int, dict[str, object]]:
    code = main(["-C", str(workspace), "--json", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, json.loads(out)


def _db(state_dir: Path) -> Path:
    [db] = list(state_dir.glob("workspaces/*/tether.db"))
    return db


def _bytes(db: Path) -> tuple[bytes, int, bytes | None]:
    wal = db.with_name(db.name + "-wal")
    return db.read_bytes(), db.stat().st_mtime_ns, wal.read_bytes() if wal.exists() else None


def _history(workspace: Path, capsys: pytest.CaptureFixture[str], steps: int = 6) -> None:
    for i in range(steps):
        (workspace / f"f{i}.txt").write_text(f"file {i}\n" * 50)
        code, _ = _cli(capsys, workspace, "step", "--done", f"step {i}", "--next", "more")
        assert code == 0


def _root_page(db: Path, table: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT rootpage FROM sqlite_master WHERE name=?", (table,)).fetchone()[0])
    finally:
        conn.close()


def _damage(db: Path, offset: int, data: bytes) -> None:
    for side in db.parent.glob(db.name + "*"):
        if side != db:
            side.unlink()
    raw = bytearray(db.read_bytes())
    raw[offset : offset + len(data)] = data
    db.write_bytes(bytes(raw))


def test_garbage_in_a_btree_page_step_says_corrupt_and_writes_nothing(
    workspace: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The probe's case: `tether step` used to record the agent state, then fail on the
    checkpoints table, answer "corrupt, will not write", and checkpoint its WAL into the file."""
    _history(workspace, capsys)
    db = _db(state_dir)
    page, size = _root_page(db, "checkpoints"), int.from_bytes(db.read_bytes()[16:18], "big")
    # 64 bytes of garbage in the cell area at the end of the page (where the rows are).
    _damage(db, (page - 1) * size + size - 96, bytes(range(200, 256)) + bytes(8))
    before = _bytes(db)
    (workspace / "new.txt").write_text("x\n")
    # The agent edited its session file: step imports it (a write) before it checkpoints.
    agent_file = workspace / ".agent-session.json"
    agent_file.write_text(json.dumps({**json.loads(agent_file.read_text()), "task": "edited by the agent"}))
    code, doc = _cli(capsys, workspace, "step", "--done", "after the damage")
    assert code == StoreError.exit_code
    assert "is corrupt" in doc["error"]["message"]  # type: ignore[index]
    assert _bytes(db) == before
    # Judged corrupt: the next writer refuses at once, still writing nothing; readers still read.
    code, doc = _cli(capsys, workspace, "checkpoint", "-m", "again")
    assert code == StoreError.exit_code and "is corrupt" in doc["error"]["message"]  # type: ignore[index]
    assert _bytes(db) == before
    # Moved aside, as the message says: a new history starts.
    db.rename(db.with_name("tether.db.bad"))
    code, _ = _cli(capsys, workspace, "checkpoint", "-m", "fresh start")
    assert code == 0


def test_invalid_utf8_in_the_schema_is_the_corrupt_error(
    workspace: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _history(workspace, capsys, 2)
    db = _db(state_dir)
    raw = db.read_bytes()
    for needle, at in ((b"tablemetameta", 5), (b"CREATE TABLE checkpoints", 14), (b"message TEXT", 1)):
        i = raw.find(needle)
        assert i > 0, needle
        _damage(db, i + at, b"\xff")
        before = _bytes(db)
        for argv in (["log"], ["status"], ["step", "--done", "x"], ["restore", "1", "--dry-run"]):
            code, doc = _cli(capsys, workspace, *argv)
            assert code == StoreError.exit_code, (needle, argv, doc)
            assert "is corrupt" in doc["error"]["message"], (needle, argv, doc)  # type: ignore[index]
            assert _bytes(db) == before, (needle, argv)
        db.write_bytes(raw)
        db.with_name(db.name + ".verdict").unlink(missing_ok=True)


def test_damage_found_while_reading_never_reaches_the_file_through_the_wal(
    workspace: Path, state_dir: Path
) -> None:
    """Written first (the WAL holds it), then a damaged blob read: judged corrupt, and closing
    leaves the file as it was instead of copying the log into it."""
    store = Store.open(workspace, state_dir)
    info = store.create_checkpoint("manual", None, [FileChange("a.txt", b"payload " * 500)])
    assert info is not None
    digest = store.manifest(info.id)["a.txt"].hash
    store.close()
    db = _db(state_dir)
    raw = db.read_bytes()
    # Damage the compressed payload in place (its row is where zlib's header is).
    at = raw.find(b"\x78\x01")
    assert at > 0
    _damage(db, at + 10, b"\x00" * 16)
    store = Store.open(workspace, state_dir)
    assert store.create_checkpoint("manual", None, [FileChange("b.txt", b"more")]) is not None
    wal = db.with_name(db.name + "-wal")
    assert wal.stat().st_size > 32
    before = db.read_bytes(), db.stat().st_mtime_ns
    with pytest.raises(CorruptStoreError):
        store.read_blob(digest)
    with pytest.raises(CorruptStoreError, match=r"is corrupt|damaged|checksum"):
        store.create_checkpoint("manual", None, [FileChange("c.txt", b"no")])
    store.close()
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before
    with pytest.raises(CorruptStoreError):
        Store.open(workspace, state_dir)  # the verdict holds for every later process


def test_a_checked_store_is_vouched_for_without_checking_again(workspace: Path, state_dir: Path) -> None:
    """The full check runs once after anything but Tether touched the file; the verdict file
    then vouches for it (its identity is the file's inode, size and mtime)."""
    with Store.open(workspace, state_dir) as s:
        s.create_checkpoint("manual", None, [FileChange("a", b"1")])
    db = _db(state_dir)
    verdict = db.with_name(db.name + ".verdict")
    doc = json.loads(verdict.read_text())
    assert doc["verdict"] == "ok" and doc["db"][1] == db.stat().st_ino
    assert (verdict.stat().st_mode & 0o777) == 0o600
    calls: list[bool] = []
    import tether.store.integrity as integrity

    real = integrity.verify

    def counting(db_: sqlite3.Connection, deep: bool = False) -> list[str]:
        calls.append(deep)
        return real(db_, deep)

    integrity.verify = counting  # type: ignore[assignment]
    try:
        with Store.open(workspace, state_dir) as s:
            s.create_checkpoint("manual", None, [FileChange("b", b"2")])
        assert calls == []
        os.utime(db, ns=(1, 1))  # touched by something else
        with Store.open(workspace, state_dir) as s:
            s.create_checkpoint("manual", None, [FileChange("c", b"3")])
        assert calls == [False]
    finally:
        integrity.verify = real  # type: ignore[assignment]


def test_restore_from_a_damaged_blob_writes_nothing_anywhere(
    workspace: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every content is checked before the undo checkpoint: a damaged one stops the restore with
    the store and the workspace as they were (a half-restored tree could not be undone, since
    the undo is a write to a store judged corrupt)."""
    (workspace / "a.txt").write_text("version one " * 300)
    (workspace / "b.txt").write_text("bee " * 300)
    assert _cli(capsys, workspace, "checkpoint")[0] == 0
    (workspace / "a.txt").write_text("version two\n")
    (workspace / "b.txt").write_text("bee two\n")
    assert _cli(capsys, workspace, "checkpoint")[0] == 0
    db = _db(state_dir)
    raw = db.read_bytes()
    at = raw.rfind(b"\x78\x01")  # a compressed content of checkpoint 1
    assert at > 0
    _damage(db, at + 12, b"\x00" * 16)
    before = _bytes(db)
    tree = {p.name: p.read_bytes() for p in workspace.iterdir() if p.is_file()}
    code, doc = _cli(capsys, workspace, "restore", "1")
    assert code == StoreError.exit_code and "is corrupt" in doc["error"]["message"]  # type: ignore[index]
    assert _bytes(db) == before
    assert {p.name: p.read_bytes() for p in workspace.iterdir() if p.is_file()} == tree


def test_a_locked_store_is_not_judged_corrupt(
    workspace: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Busy, locked, disk I/O: errors that say nothing about the file never condemn it."""
    import tether.store.db as store_mod

    with Store.open(workspace, state_dir) as s:
        s.create_checkpoint("manual", None, [FileChange("a", b"1")])
    db = _db(state_dir)
    db.with_name(db.name + ".verdict").unlink()  # the next writer checks the whole store
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO meta(key, value) VALUES ('held', 'x')")
    monkeypatch.setattr(store_mod, "BUSY_TIMEOUT_MS", 200)
    try:
        with pytest.raises(StoreError) as err, Store.open(workspace, state_dir) as s:
            s.create_checkpoint("manual", None, [FileChange("b", b"2")])
        assert not isinstance(err.value, CorruptStoreError), err.value.message
        assert "locked" in err.value.message
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not db.with_name(db.name + ".verdict").exists()
    with Store.open(workspace, state_dir) as s:
        assert s.create_checkpoint("manual", None, [FileChange("b", b"2")]) is not None
