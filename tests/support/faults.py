"""Helpers for fault-injection, secrets and load tests: store audits, tree digests, a tiny tmpfs.

Everything here checks the store *from the outside*: raw SQLite queries next to the Store API,
so a bug in the Store cannot hide itself from the audit.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat
import subprocess
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from tether.model import blob_hash
from tether.store.db import DB_NAME, Store


def tree_files(root: Path, skip: Iterable[str] = (".git",)) -> dict[str, bytes]:
    """Every regular file under ``root`` (relative POSIX path -> bytes), symlinks excluded."""
    out: dict[str, bytes] = {}
    skip_set = set(skip)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip_set]
        for name in filenames:
            p = Path(dirpath) / name
            if p.is_symlink() or not p.is_file():
                continue
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def digest_files(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(path.encode("utf-8", "surrogateescape") + b"\0")
        h.update(hashlib.sha256(files[path]).digest())
    return h.hexdigest()


def tree_digest(root: Path) -> str:
    return digest_files(tree_files(root))


def dir_fingerprint(root: Path) -> dict[str, tuple[int, bytes | str]]:
    """Mode and content (or link target) of everything under ``root``: a sentinel's fingerprint."""
    out: dict[str, tuple[int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = p.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = (st.st_mode, os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = (st.st_mode, p.read_bytes())
            else:
                out[rel] = (st.st_mode, "")
    return out


def db_path_for(store_state: Path, root: Path) -> Path:
    with Store.open(root, store_state) as s:
        return s.db_path


def audit_store(root: Path, state: Path) -> list[int]:
    """Open the store, run SQLite's integrity check and verify no checkpoint is half-visible.

    Every checkpoint's changes and attachments must reference blobs that exist and hash right,
    every manifest must be fully readable, parents must exist. Returns the checkpoint ids.
    """
    with Store.open(root, state) as store:
        db = sqlite3.connect(f"file:{store.db_path}?mode=ro", uri=True)
        try:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert db.execute("PRAGMA foreign_key_check").fetchall() == []
            ids = [r[0] for r in db.execute("SELECT id FROM checkpoints ORDER BY id")]
            orphans = db.execute(
                "SELECT COUNT(*) FROM changes WHERE checkpoint NOT IN (SELECT id FROM checkpoints)"
            ).fetchone()[0]
            assert orphans == 0, f"{orphans} changes rows without their checkpoint"
            missing = db.execute(
                """
                SELECT COUNT(*) FROM (
                  SELECT hash FROM changes WHERE hash IS NOT NULL
                  UNION ALL SELECT hash FROM attachments UNION ALL SELECT hash FROM head
                ) WHERE hash NOT IN (SELECT hash FROM blobs)
                """
            ).fetchone()[0]
            assert missing == 0, f"{missing} references to missing blobs"
            parents = db.execute(
                "SELECT COUNT(*) FROM checkpoints WHERE parent IS NOT NULL "
                "AND parent NOT IN (SELECT id FROM checkpoints)"
            ).fetchone()[0]
            assert parents == 0
            for digest, codec, data, size in db.execute("SELECT hash, codec, data, size FROM blobs"):
                raw = zlib.decompress(data) if codec == "zlib" else bytes(data)
                assert len(raw) == size and blob_hash(raw) == digest, f"blob {digest[:12]} damaged"
        finally:
            db.close()
        for n in ids[-3:]:
            for entry in store.manifest(n).values():
                store.read_blob(entry.hash)
        return ids


def manifest_files(root: Path, state: Path, n: int) -> dict[str, bytes]:
    with Store.open(root, state) as store:
        return {p: store.read_blob(e.hash) for p, e in store.manifest(n).items()}


# --- secrets -------------------------------------------------------------------------------


def state_bytes(state: Path) -> Iterator[tuple[str, bytes]]:
    """Every byte Tether keeps: each file under ``state`` as is, every zlib stream found anywhere
    in it inflated, plus every SQLite value (inflated too).

    Blobs and live state may be zlib-compressed, so a plain grep of the files would miss a
    secret stored compressed. The raw scan also reaches what no query returns: stale WAL frames,
    free pages, the hand-off repository's loose objects and packs.
    """
    for dirpath, _dirs, files in os.walk(state):
        for name in files:
            p = Path(dirpath) / name
            if p.is_symlink():
                continue
            data = p.read_bytes()
            yield str(p), data
            for offset, inflated in zlib_streams(data):
                yield f"{p}@{offset}:inflated", inflated
            if name == DB_NAME:
                yield from _db_cells(p)


_ZLIB_HEADERS = (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda")


def zlib_streams(data: bytes, chunk: int = 256) -> Iterator[tuple[int, bytes]]:
    """(offset, inflated bytes) of every zlib stream starting anywhere in ``data``, inflated as
    far as it goes: a stream cut by an SQLite page boundary still gives its first part."""
    pos = data.find(b"\x78")
    while pos != -1:
        if data[pos : pos + 2] in _ZLIB_HEADERS:
            d = zlib.decompressobj()
            out = bytearray()
            with contextlib.suppress(zlib.error):
                for at in range(pos, min(len(data), pos + (4 << 20)), chunk):
                    out += d.decompress(data[at : at + chunk])
                    if d.eof or len(out) > 16 << 20:
                        break
            if out:
                yield pos, bytes(out)
        pos = data.find(b"\x78", pos + 1)


def _db_cells(db_path: Path) -> Iterator[tuple[str, bytes]]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                for i, value in enumerate(row):
                    if isinstance(value, str):
                        cell = value.encode("utf-8", "surrogateescape")
                    elif isinstance(value, bytes):
                        cell = value
                    else:
                        continue
                    where = f"{db_path}:{table}[{i}]"
                    yield where, cell
                    with contextlib.suppress(zlib.error):
                        yield where + ":inflated", zlib.decompress(cell)
    finally:
        db.close()


def find_planted(state: Path, needles: Iterable[str]) -> list[tuple[str, str]]:
    """(where, needle) for every planted value found anywhere in the state dir."""
    wanted = [n.encode() for n in needles]
    hits = []
    for where, data in state_bytes(state):
        for n in wanted:
            if n in data:
                hits.append((where, n.decode()))
    return hits


def bad_permissions(state: Path) -> list[str]:
    """Paths under ``state`` (itself included) that are not 0700 dirs / 0600 files (git's
    read-only objects in the hand-off repository are 0400: no other bit is allowed)."""
    bad = []
    for dirpath, _dirnames, filenames in os.walk(state):
        d = Path(dirpath)
        if stat.S_IMODE(d.stat().st_mode) != 0o700:
            bad.append(f"{d} {oct(stat.S_IMODE(d.stat().st_mode))}")
        for name in filenames:
            p = d / name
            st = p.lstat()
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISREG(st.st_mode) and mode != 0o600 and not (mode == 0o400 and "/objects/" in str(p)):
                bad.append(f"{p} {oct(mode)}")
    return bad


# --- a real small file system ------------------------------------------------------------


def mount_tmpfs(where: Path, size: str) -> str | None:
    """Mount a tmpfs of ``size`` at ``where``; None on success, else why it cannot be done here."""
    if os.geteuid() != 0:
        return "needs root to mount a small tmpfs"
    where.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    if res.returncode != 0:
        return f"mount -t tmpfs failed: {res.stderr.strip()}"
    return None


def unmount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=20, check=False)
