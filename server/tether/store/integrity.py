"""Whether the store may be written: damage is looked for before Tether writes, and remembered.

SQLite notices a damaged page only when it reads that page. A command that writes, then reads a
damaged page, would otherwise have written to a store it then calls corrupt. So:

- :func:`check_schema` runs at every open, before anything else touches the database: the
  schema text must decode and hold Tether's tables (a damaged ``sqlite_master`` otherwise
  surfaces as a ``UnicodeDecodeError`` from the sqlite3 module, or as "no such column" later).
- :func:`verify` runs before a process's first write, unless the verdict file says the database
  is exactly as a Tether process that had checked it left it: ``PRAGMA integrity_check`` (every
  page's structure, the free list, indexes against tables) plus what SQLite does not check
  (every text value decodes, every live-state value inflates). ``tether doctor`` runs it deep
  (every blob's checksum too).
- A store judged corrupt, by these checks or by any read, is never written again: the verdict
  file (``tether.db.verdict`` next to it, 0600) records it for the database file as it is, so
  every later command and the language server refuse to write, until the file is moved aside.

The verdict names the database file by (device, inode, size, mtime): any write by something
other than a Tether process that checked it first makes the next writer check again.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
import zlib
from pathlib import Path

from tether.errors import CorruptStoreError

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

VERDICT_SUFFIX = ".verdict"

# The tables of the current schema and the columns Tether reads (store/*.py), by
# the schema version that introduced them.
EXPECTED: dict[int, dict[str, tuple[str, ...]]] = {
    1: {
        "meta": ("key", "value"),
        "blobs": ("hash", "size", "codec", "data"),
        "checkpoints": ("id", "parent", "created", "trigger", "message"),
        "changes": ("checkpoint", "path", "hash", "mode", "size"),
        "attachments": ("checkpoint", "name", "hash"),
        "head": ("path", "hash", "mode", "size", "mtime_ns", "ino"),
        "skipped": ("path", "reason", "size"),
        "state": ("name", "updated", "codec", "data"),
    },
    2: {
        "scan_dirs": ("dir", "mtime_ns", "ctime_ns", "ino", "gitignore", "files", "subdirs", "skips", "stats")
    },
    3: {"checkpoints": ("origin",)},
    4: {
        "watchers": ("id", "pid", "started", "boot", "state", "seq", "meta", "acked", "updated"),
        "dirty": ("watcher", "path", "seq"),
    },
}
# Tables whose every value is read back when verifying (blobs: only their keys; their data is
# checked by hash when read, and by `tether doctor`).
_SMALL_TABLES = (
    "meta",
    "checkpoints",
    "changes",
    "attachments",
    "head",
    "skipped",
    "scan_dirs",
    "watchers",
    "dirty",
)


def corrupt_error(db_path: Path, detail: str) -> CorruptStoreError:
    return CorruptStoreError(
        f"the store {db_path} is corrupt ({detail}). Tether will not write to it. "
        f"Move it aside (e.g. `mv {db_path} {db_path}.bad`) to start a new history; "
        "`tether doctor` says how to keep what is still readable."
    )


def recovery_hint(db_path: Path) -> str:
    """What to type to move a damaged store aside, keeping what is readable."""
    bad = db_path.with_name(db_path.name + ".bad")
    moves = [f"mv {db_path} {bad}"]
    for side in ("-wal", "-shm"):
        p = db_path.with_name(db_path.name + side)
        if p.exists():
            moves.append(f"mv {p} {bad}{side}")
    return (
        f"to recover: move it aside ({'; '.join(moves)}): the next checkpoint starts a new history. "
        f"To keep what is still readable, export it into the new store with the sqlite3 shell "
        f"(3.29 or newer): `sqlite3 {bad} .recover | sqlite3 {db_path}`, then run `tether doctor` again"
    )


_DAMAGE_WORDS = ("malformed", "not a database", "corrupt", "decode", "unsupported file format")


def is_damage(exc: BaseException) -> bool:
    """Whether an error reading the database means its content is damaged (not a lock, a full
    disk or an I/O error, which say nothing about the file and must not judge it corrupt)."""
    if isinstance(exc, UnicodeDecodeError | zlib.error):
        return True
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    msg = str(exc)
    if any(w in msg for w in _DAMAGE_WORDS):
        return True
    return not isinstance(exc, sqlite3.OperationalError | sqlite3.IntegrityError | sqlite3.ProgrammingError)


def _damaged(db_path: Path, exc: BaseException) -> CorruptStoreError:
    if isinstance(exc, UnicodeDecodeError):
        return corrupt_error(db_path, "the schema or a text value is not valid UTF-8")
    return corrupt_error(db_path, str(exc))


# --- checks ------------------------------------------------------------------------------------


def check_schema(db: sqlite3.Connection, db_path: Path) -> None:
    """Refuse a store whose schema is damaged or not Tether's, before anything reads or writes
    it. A new (empty) database passes. Raises CorruptStoreError.

    The place for every check that must hold before the first statement of a command."""
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        rows = db.execute(
            "SELECT CAST(type AS BLOB), CAST(name AS BLOB), CAST(sql AS BLOB) FROM sqlite_master"
        ).fetchall()
        for row in rows:
            for value in row:
                if value is not None:
                    bytes(value).decode("utf-8")
        if version == 0 and not rows:
            return  # a new store: the migrations create the schema
        have: dict[str, set[str]] = {}
        for since, tables in EXPECTED.items():
            if since > max(version, 1):
                continue
            for table, columns in tables.items():
                if table not in have:
                    have[table] = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
                missing = [c for c in columns if c not in have[table]]
                if not have[table]:
                    raise corrupt_error(db_path, f"table {table} is missing from the schema")
                if missing:
                    raise corrupt_error(db_path, f"table {table} lacks {', '.join(missing)}")
    except CorruptStoreError:
        raise
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        if not is_damage(exc):
            raise  # locked, disk I/O: the caller says so, the store is not judged
        raise _damaged(db_path, exc) from exc


def verify(db: sqlite3.Connection, deep: bool = False) -> list[str]:
    """Problems found in the database (empty: none): SQLite's ``integrity_check`` (every page,
    the free list, indexes against their tables) and what it does not check (text decodes, live
    state inflates). ``deep`` also checks every blob against its hash (reads every byte)."""
    problems: list[str] = []
    try:
        # integrity_check, not quick_check: an index that disagrees with its table would make a
        # later insert fail with a constraint error instead of saying the store is damaged.
        found = [str(r[0]) for r in db.execute("PRAGMA integrity_check(20)")]
        if found != ["ok"]:
            return found
        # Only the tables there are: another process may be creating the schema right now.
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table in _SMALL_TABLES:
            if table in tables:
                for _row in db.execute(f"SELECT * FROM {table}"):  # every text value decodes
                    pass
        if "blobs" in tables:
            for _row in db.execute("SELECT hash, size, codec FROM blobs"):
                pass
        if "state" in tables:
            for name, codec, data in db.execute("SELECT name, codec, data FROM state"):
                if codec == "zlib":
                    zlib.decompress(data)
                elif codec != "raw":
                    problems.append(f"live state {name!r} has an unknown codec {codec!r}")
        if deep and "blobs" in tables:
            from tether.model import blob_hash

            for digest, codec, data, size in db.execute("SELECT hash, codec, data, size FROM blobs"):
                raw = zlib.decompress(data) if codec == "zlib" else bytes(data)
                if len(raw) != size or blob_hash(raw) != digest:
                    problems.append(f"blob {digest[:12]} fails its checksum")
                    if len(problems) >= 20:
                        break
    except (sqlite3.DatabaseError, UnicodeDecodeError, zlib.error) as exc:
        if not is_damage(exc):
            raise  # locked, disk I/O: not a verdict on the file
        problems.append(str(exc) if not isinstance(exc, UnicodeDecodeError) else "a text value is not UTF-8")
    return problems


# --- the verdict file --------------------------------------------------------------------------


def identity(db_path: Path) -> list[int] | None:
    """The database file as the verdict names it: (device, inode, size, mtime)."""
    try:
        st = os.stat(db_path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def _verdict_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + VERDICT_SUFFIX)


def read_verdict(db_path: Path) -> dict[str, Any] | None:
    """The recorded verdict, when it is about the database file as it is now."""
    try:
        doc = json.loads(_verdict_path(db_path).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("db") != identity(db_path):
        return None
    return doc


def write_verdict(db_path: Path, verdict: str, detail: str = "") -> None:
    """Record ``verdict`` ("ok" or "corrupt") for the database file as it is now. Best effort: a
    lost "ok" costs one verification; a lost "corrupt" is found again by the next check."""
    ident = identity(db_path)
    if ident is None:
        return
    doc = {"db": ident, "verdict": verdict, "detail": detail, "time": time.time()}
    path = _verdict_path(db_path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(OSError):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(json.dumps(doc).encode())
            if verdict != "ok":
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    with contextlib.suppress(OSError):
        tmp.unlink()


def wal_has_frames(db_path: Path) -> bool:
    """Whether the write-ahead log holds anything past its 32-byte header."""
    try:
        return os.stat(db_path.with_name(db_path.name + "-wal")).st_size > 32
    except OSError:
        return False


def close_without_checkpoint(db: sqlite3.Connection, db_path: Path) -> None:
    """Close ``db`` without SQLite's checkpoint-on-close, which would copy the write-ahead log
    into a database judged corrupt: a read-only connection holding a read lock meanwhile makes
    the close skip it (and a read-only connection never checkpoints)."""
    ro: sqlite3.Connection | None = None
    with contextlib.suppress(sqlite3.Error):
        ro = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None, timeout=1)
        ro.execute("BEGIN")
        ro.execute("PRAGMA user_version").fetchone()
        ro.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone()
    try:
        db.close()
    finally:
        if ro is not None:
            with contextlib.suppress(sqlite3.Error):
                ro.close()


__all__ = [
    "VERDICT_SUFFIX",
    "check_schema",
    "close_without_checkpoint",
    "corrupt_error",
    "identity",
    "is_damage",
    "read_verdict",
    "recovery_hint",
    "verify",
    "wal_has_frames",
    "write_verdict",
]
