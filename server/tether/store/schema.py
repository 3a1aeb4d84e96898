"""The store's schema: tables, the migrations between versions, and the checks that a file is an
SQLite database whose schema this Tether can read."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from tether.errors import CorruptStoreError, StoreError
from tether.store import scan_dirs

_SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE blobs (
    hash TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    codec TEXT NOT NULL,          -- 'raw' | 'zlib'
    data BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE checkpoints (
    id INTEGER PRIMARY KEY,       -- per-workspace number shown to users
    parent INTEGER,
    created REAL NOT NULL,
    trigger TEXT NOT NULL,
    message TEXT
);
CREATE TABLE changes (            -- the delta: only paths that changed vs the parent
    checkpoint INTEGER NOT NULL REFERENCES checkpoints(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    hash TEXT,                    -- NULL: deleted at this checkpoint
    mode INTEGER NOT NULL DEFAULT 420,
    size INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (path, checkpoint)
) WITHOUT ROWID;
CREATE INDEX changes_by_checkpoint ON changes(checkpoint);
CREATE TABLE attachments (
    checkpoint INTEGER NOT NULL REFERENCES checkpoints(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (checkpoint, name)
) WITHOUT ROWID;
CREATE INDEX attachments_by_name ON attachments(name, checkpoint);
CREATE TABLE head (               -- tracked files now + stat cache (mtime/size/inode)
    path TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    mode INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE skipped (path TEXT PRIMARY KEY, reason TEXT NOT NULL, size INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE state (name TEXT PRIMARY KEY, updated REAL NOT NULL, codec TEXT NOT NULL, data BLOB NOT NULL)
    WITHOUT ROWID;
"""


def _add_origin(db: sqlite3.Connection) -> None:
    # Idempotent: a database rolled back to an older user_version keeps its columns.
    if not any(r[1] == "origin" for r in db.execute("PRAGMA table_info(checkpoints)")):
        _run_script(db, _SCHEMA_V3)


# Each migration takes the schema from version i to i+1, inside one transaction.
def _run_script(db: sqlite3.Connection, script: str) -> None:
    # Not executescript(): it COMMITs first, which would break the migration's transaction.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


# v2: per-directory listings with their packed stat cache (scan_dirs.py) replace the one
# listings blob that lived in ``state`` (it carried no stats and was rewritten whole).
_SCHEMA_V2 = scan_dirs.SCHEMA + ";\nDELETE FROM state WHERE name='scan.listings'"
# origin: NULL for this machine's checkpoints, else where an imported one came from.
_SCHEMA_V3 = "ALTER TABLE checkpoints ADD COLUMN origin TEXT"

# v4: the file watchers of long-lived processes and what each saw change (store/watchers.py).
# IF NOT EXISTS: a database rolled back to an older user_version keeps its tables.
_SCHEMA_V4 = """
CREATE TABLE IF NOT EXISTS watchers (
    id TEXT PRIMARY KEY,          -- one watcher run: a new id each time a watcher starts
    pid INTEGER NOT NULL,         -- the process running it, known by
    started INTEGER NOT NULL,     -- its start (procs.start_token: pid reuse)
    boot TEXT NOT NULL,           -- and the boot it runs in
    state TEXT NOT NULL,          -- 'baseline' | 'trusted' | 'off'
    seq INTEGER NOT NULL,         -- its last event batch
    meta TEXT NOT NULL,           -- JSON: what its dirty set is valid for (scanner, pattern files)
    acked TEXT NOT NULL,          -- sync marks it answered, newest last
    updated REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dirty (            -- paths a trusted watcher saw change, not known to be in head
    watcher TEXT NOT NULL,
    path TEXT NOT NULL,
    seq INTEGER NOT NULL,         -- the batch of its last event
    PRIMARY KEY (watcher, path)
) WITHOUT ROWID
"""

MIGRATIONS: Sequence[Callable[[sqlite3.Connection], object]] = (
    lambda db: _run_script(db, _SCHEMA_V1),
    lambda db: _run_script(db, _SCHEMA_V2),
    _add_origin,
    lambda db: _run_script(db, _SCHEMA_V4),
)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite3.Connection, db_path: Path, before_write: Callable[[], None]) -> None:
    """Bring the schema to :data:`SCHEMA_VERSION`, one transaction per version (``before_write``
    runs before each: a store judged corrupt is never migrated)."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"store {db_path} has schema {version}, newer than this Tether ({SCHEMA_VERSION}); upgrade Tether"
        )
    while version < SCHEMA_VERSION:
        before_write()
        db.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the lock.
            current = db.execute("PRAGMA user_version").fetchone()[0]
            if current == version:
                MIGRATIONS[version](db)
                db.execute(f"PRAGMA user_version={version + 1}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        version = db.execute("PRAGMA user_version").fetchone()[0]


def check_header(db_path: Path) -> None:
    """Refuse to touch a file that is not an SQLite database (sqlite would only fail later)."""
    try:
        with db_path.open("rb") as fh:
            header = fh.read(16)
    except OSError as exc:
        if exc.errno == errno.EACCES:
            raise StoreError(f"cannot read the store {db_path}: permission denied") from exc
        raise StoreError(f"cannot read the store {db_path}: {exc}") from exc
    if header != b"SQLite format 3\x00":
        raise CorruptStoreError(
            f"the store {db_path} is corrupt (not an SQLite database). Tether will not write to it. "
            f"Move it aside (e.g. `mv {db_path} {db_path}.bad`) to start a new history."
        )
