"""Checkpoint store: one SQLite database (WAL) per workspace.

A checkpoint is one ``BEGIN IMMEDIATE`` transaction holding its delta (changed paths only),
any new blobs and attachments, and the updated ``head`` (the tracked state plus its stat cache),
so it exists whole or not at all, even when the writer is SIGKILLed mid-way. Blobs are
content-addressed (sha256 of the raw bytes), zlib-compressed when that helps, and shared by
every checkpoint that references them.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import gc
import hashlib
import inspect
import json
import logging
import os
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from tether.errors import CorruptStoreError, NoCheckpointError, StoreError, StoreFullError, TetherError
from tether.model import (
    CheckpointInfo,
    FileChange,
    FileEntry,
    GcReport,
    HeadRow,
    ImportedCheckpoint,
    Skipped,
    StatEntry,
    blob_hash,
)
from tether.paths import STATE_DIR_ENV, ensure_private_dir, state_dir
from tether.redact import redact_text
from tether.store import integrity, scan_dirs, walcheck
from tether.store.scan_dirs import DirRow, DirsExport

log = logging.getLogger(__name__)

DB_NAME = "tether.db"
BUSY_TIMEOUT_MS = 15_000
# Compressing tiny or incompressible data costs more than it saves.
COMPRESS_MIN = 64
# Stat-cache entries younger than this are not trusted (see _stat_voucher).
RACY_NS = 2_000_000_000
# Bound on host parameters per statement (SQLite's default limit is 32766 since 3.32).
_CHUNK = 500
# Live state: the rules the stored directory listings were filtered with (scan_dirs.py).
SCAN_META = "scan.meta"
WAL_DAMAGE_KEY = "walDamage"


def workspace_key(root: Path) -> str:
    """Directory name for a workspace's store: readable basename + hash of the full path."""
    digest = hashlib.sha256(os.fsencode(root)).hexdigest()[:12]
    base = "".join(c if c.isalnum() or c in "-_." else "_" for c in root.name)[:40] or "root"
    return f"{base}-{digest}"


# --- schema -------------------------------------------------------------------------------

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
# The checkpoints of one origin (bound with `IS ?`, so None selects this machine's).
_SAME_ORIGIN = "SELECT id FROM checkpoints WHERE origin IS ?"
_COLS = "id, parent, created, trigger, message, origin"

MIGRATIONS: Sequence[Callable[[sqlite3.Connection], object]] = (
    lambda db: _run_script(db, _SCHEMA_V1),
    lambda db: _run_script(db, _SCHEMA_V2),
    _add_origin,
)
SCHEMA_VERSION = len(MIGRATIONS)


def _compress(data: bytes) -> tuple[str, bytes]:
    if len(data) >= COMPRESS_MIN:
        packed = zlib.compress(data, 1)
        if len(packed) < len(data) * 0.9:
            return "zlib", packed
    return "raw", data


def _decompress(codec: str, data: bytes) -> bytes:
    if codec == "zlib":
        return zlib.decompress(data)
    if codec == "raw":
        return bytes(data)
    raise CorruptStoreError(f"unknown blob codec {codec!r}")


def _translate(exc: sqlite3.Error, db_path: Path) -> StoreError:
    msg = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("disk is full" in msg or "disk I/O" in msg):
        return StoreFullError(
            f"the disk holding {db_path} is full: the checkpoint was not written "
            "(earlier checkpoints are intact). Free some space or run `tether gc`."
        )
    if isinstance(exc, sqlite3.OperationalError) and "locked" in msg:
        return StoreError(f"the store {db_path} stayed locked by another writer for too long: {msg}")
    if integrity.is_damage(exc):
        return integrity.corrupt_error(db_path, msg)
    return StoreError(f"store error in {db_path}: {msg}")


# What reading a damaged store raises besides sqlite3.Error: text that does not decode (also in
# sqlite3's own error messages), compressed data that does not inflate.
_DAMAGE = (sqlite3.Error, UnicodeDecodeError, zlib.error)


def _store_error(exc: BaseException, db_path: Path) -> StoreError:
    if isinstance(exc, sqlite3.Error):
        return _translate(exc, db_path)
    if isinstance(exc, UnicodeDecodeError):
        return integrity.corrupt_error(db_path, "a text value is not valid UTF-8")
    return integrity.corrupt_error(db_path, f"compressed data is damaged: {exc}")


class Store:
    """The checkpoint history of one workspace. Not thread-safe: one Store per thread."""

    def __init__(self, root: Path, db_path: Path, conn: sqlite3.Connection) -> None:
        self.root = root
        self.db_path = db_path
        self._db = conn
        # head() cache for long-lived stores (the LSP server): valid while PRAGMA data_version
        # says no other connection has committed; our own commits update it in place.
        self._head: dict[str, HeadRow] | None = None
        self._head_version = -1
        # Damage found in the write-ahead log when this store was opened (walcheck.py).
        self.wal_damage: str | None = None
        self._closed = False
        # Judged corrupt (the message): nothing is written any more, not even at close.
        self._corrupt: str | None = None
        # Checked (or vouched for by the verdict file) before this Store's first write.
        self._checked = False
        self._vouched: object = None  # the file identity the verdict vouched for

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    def open(cls, root: Path | str, state: Path | str | None = None) -> Store:
        root = Path(root).resolve()
        if not root.is_dir():
            raise StoreError(f"workspace {root} is not a directory")
        try:
            base = state_dir(state)
            # Below the state dir nothing is followed through a symlink (safefs.private_dir).
            ws_dir = ensure_private_dir(base / "workspaces" / workspace_key(root), base)
            db_path = ws_dir / DB_NAME
            if os.path.islink(db_path):
                raise StoreError(f"the store {db_path} is a symlink; Tether does not follow it")
            if db_path.exists() and db_path.stat().st_size > 0:
                _check_header(db_path)
            # Create the file 0600 ourselves: sqlite would honour the umask.
            if not db_path.exists():
                os.close(os.open(db_path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
            elif (db_path.stat().st_mode & 0o777) != 0o600:
                db_path.chmod(0o600)
        except OSError as exc:
            where = exc.filename or "the state directory"
            raise StoreError(
                f"cannot use the store location {where}: {exc.strerror or exc}. "
                f"Set ${STATE_DIR_ENV} to a writable directory."
            ) from exc
        # Before connecting: the first connection after a crash replays the log, dropping what
        # follows a damaged frame (walcheck.py). Not while this process has the database open.
        damage = walcheck.check(db_path) if not _OPEN.get(db_path) else None
        try:
            conn = sqlite3.connect(
                db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise _translate(exc, db_path) from exc
        store = cls(root, db_path, conn)
        _OPEN[db_path] = _OPEN.get(db_path, 0) + 1
        try:
            store._setup(damage)
        except _DAMAGE as exc:
            store.close()
            raise _store_error(exc, db_path) from exc
        except CorruptStoreError as exc:
            store._judge(exc)
            store.close()
            raise
        except BaseException:
            store.close()
            raise
        return store

    def _setup(self, damage: walcheck.WalDamage | None = None) -> None:
        db = self._db
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._check_store()
        mode = self._enable_wal()
        if mode != "wal":
            log.warning("store %s: journal_mode is %s, not wal", self.db_path, mode)
        # FULL: each checkpoint is fsynced; a power cut keeps every acknowledged checkpoint.
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        for suffix in ("-wal", "-shm"):
            side = self.db_path.with_name(self.db_path.name + suffix)
            if side.exists() and (side.stat().st_mode & 0o777) != 0o600:
                side.chmod(0o600)
        self._migrate()
        stored_root = self.get_meta("root")
        if stored_root is None:
            self._tx(
                lambda: self._db.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('root', ?)", (str(self.root),)
                )
            )
        elif stored_root != str(self.root):
            raise StoreError(f"store {self.db_path} belongs to {stored_root}, not {self.root}")
        if damage is not None:
            self.wal_damage = damage.message(self.db_path)
            log.warning("%s", self.wal_damage)
            # The next write reuses the damaged frames: keep what was found for `tether doctor`.
            record = json.dumps({"time": time.time(), "message": self.wal_damage})
            self._tx(
                lambda: self._db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (WAL_DAMAGE_KEY, record)
                )
            )

    def recorded_wal_damage(self) -> tuple[float, str] | None:
        """(when, what) of the last damage found in the write-ahead log, if any."""
        raw = self.get_meta(WAL_DAMAGE_KEY)
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            return None
        if isinstance(doc, dict) and isinstance(doc.get("message"), str):
            when = doc.get("time")
            return (float(when) if isinstance(when, int | float) else 0.0), doc["message"]
        return None

    def _check_store(self) -> None:
        """Checks that must pass before the first statement of any command (reads included):
        the store judged corrupt earlier stays so, and the schema is Tether's and readable."""
        verdict = integrity.read_verdict(self.db_path)
        if verdict is not None and verdict.get("verdict") == "corrupt":
            detail = str(verdict.get("detail") or "judged corrupt earlier")
            self._corrupt = detail
            raise CorruptStoreError(detail)
        integrity.check_schema(self._db, self.db_path)

    def _before_write(self) -> None:
        """Every write goes through here: none to a store judged corrupt, and the store is
        checked before this Store's first write unless the verdict file vouches for it (the
        database file is exactly as a Tether process that had checked it left it)."""
        if self._corrupt is not None:
            raise CorruptStoreError(self._corrupt)
        if self._checked:
            return
        verdict = integrity.read_verdict(self.db_path)
        if verdict is None or verdict.get("verdict") != "ok":
            fresh = self.db_path.stat().st_size == 0
            problems = [] if fresh else integrity.verify(self._db)
            if problems:
                raise self._judge(integrity.corrupt_error(self.db_path, "; ".join(problems[:3])))
        else:
            self._vouched = verdict.get("db")
        self._checked = True

    def _judge(self, exc: CorruptStoreError) -> CorruptStoreError:
        """Record that the store is corrupt: no write from now on, by this or any process."""
        if self._corrupt is None:
            self._corrupt = exc.message
            log.info("%s", exc.message)
            integrity.write_verdict(self.db_path, "corrupt", exc.message)
        return exc

    def verify(self, deep: bool = True) -> list[str]:
        """Problems in the database (empty: none); ``deep`` reads every page and every blob.
        A problem found judges the store corrupt."""
        problems = integrity.verify(self._db, deep)
        if problems:
            self._judge(integrity.corrupt_error(self.db_path, "; ".join(problems[:3])))
        return problems

    @property
    def corrupt(self) -> str | None:
        """Why this store was judged corrupt (None: it was not)."""
        return self._corrupt

    def _enable_wal(self) -> str:
        """Switch to WAL, retrying: when two processes open a new store at the same moment,
        the switch fails with SQLITE_BUSY at once (sqlite does not call the busy handler)."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        delay = 0.005
        while True:
            try:
                current = str(self._db.execute("PRAGMA journal_mode").fetchone()[0])
                if current == "wal":
                    return current
                self._before_write()  # the switch rewrites the database header
                return str(self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.db_path} has schema {version}, newer than this Tether ({SCHEMA_VERSION}); "
                "upgrade Tether"
            )
        while version < SCHEMA_VERSION:
            self._before_write()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have migrated while we waited for the lock.
                current = self._db.execute("PRAGMA user_version").fetchone()[0]
                if current == version:
                    MIGRATIONS[version](self._db)
                    self._db.execute(f"PRAGMA user_version={version + 1}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            version = self._db.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        try:
            if self._corrupt is not None and integrity.wal_has_frames(self.db_path):
                # Closing normally would copy the write-ahead log into the damaged file.
                integrity.close_without_checkpoint(self._db, self.db_path)
                return
            self._db.close()
            if self._checked and self._corrupt is None and integrity.identity(self.db_path) != self._vouched:
                # The file as this process leaves it (closing may have checkpointed into it).
                integrity.write_verdict(self.db_path, "ok")
        finally:
            if not self._closed:
                self._closed = True
                left = _OPEN.get(self.db_path, 1) - 1
                if left > 0:
                    _OPEN[self.db_path] = left
                else:
                    _OPEN.pop(self.db_path, None)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- helpers --------------------------------------------------------------------------

    def _tx(self, fn: Callable[[], Any]) -> Any:
        self._before_write()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            result = fn()
            self._db.execute("COMMIT")
        except _DAMAGE as exc:
            self._rollback()
            raise self._error(exc) from exc
        except BaseException:
            self._rollback()
            raise
        return result

    def _error(self, exc: BaseException) -> StoreError:
        err = _store_error(exc, self.db_path)
        if isinstance(err, CorruptStoreError):
            self._judge(err)
        return err

    def _rollback(self) -> None:
        # sqlite may have rolled back already (e.g. SQLITE_FULL).
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._db.execute(sql, params).fetchall()
        except _DAMAGE as exc:
            raise self._error(exc) from exc

    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0][0] if rows else None

    def _put_blob(self, data: bytes, digest: str | None = None) -> str:
        digest = digest or blob_hash(data)
        if self._db.execute("SELECT 1 FROM blobs WHERE hash=?", (digest,)).fetchone() is None:
            codec, packed = _compress(data)
            self._db.execute(
                "INSERT INTO blobs(hash, size, codec, data) VALUES (?,?,?,?)",
                (digest, len(data), codec, packed),
            )
        return digest

    # --- checkpoints ----------------------------------------------------------------------

    def create_checkpoint(
        self,
        trigger: str,
        message: str | None,
        changes: Iterable[FileChange],
        *,
        attachments: dict[str, bytes] | None = None,
        stat_updates: Iterable[StatEntry] = (),
        allow_empty: bool = False,
        skipped: Iterable[Skipped] | None = None,
        skipped_scope: Iterable[str] | None = None,
        verify_stat: bool = False,
    ) -> CheckpointInfo | None:
        """Write one checkpoint atomically; ``None`` when nothing changed and not ``allow_empty``.

        ``changes`` are compared with head inside the transaction, so concurrent writers that
        saw the same edit record it once. ``stat_updates`` refresh the stat cache for files whose
        content did not change (touched files). ``skipped`` replaces the skipped-files report:
        wholly when ``skipped_scope`` is None, else only for the paths in ``skipped_scope``.

        ``verify_stat``: once the write lock is held, re-stat each changed file under ``root``
        and leave out those that changed again since they were read (their stat no longer
        matches the change's): another writer may have recorded the newer content already,
        and recording ours after it would make stale content the latest. The stat cache keeps
        the old stat, so the next scan picks the file up.
        """
        changes = list(changes)
        attachments = attachments or {}
        stat_updates = list(stat_updates)
        # Every caller's message (a run's command line, a hook's tool input, a client's text).
        stored_message = redact_text(message) if message else message
        skipped_list = list(skipped) if skipped is not None else None
        scope = list(skipped_scope) if skipped_scope is not None else None
        # Hash outside the transaction: the write lock is held only for the writes.
        prepared = [(c, blob_hash(c.content) if c.content is not None else None) for c in changes]
        head_applied: list[tuple[str, StatEntry | None, bool]] = []

        def write() -> CheckpointInfo | None:
            db = self._db
            head_applied.clear()
            current = self._head_rows([c.path for c, _ in prepared])
            real: list[tuple[FileChange, str | None]] = []
            touched = list(stat_updates)
            vouch = _stat_voucher(time.time_ns())
            for change, digest in prepared:
                if verify_stat and self._moved_on(change):
                    continue
                row = current.get(change.path)
                if digest is None and row is None:
                    continue  # deleting an untracked file
                if row is not None and digest == row[0] and change.mode == row[1]:
                    if digest is not None:
                        # Another writer recorded this very content already: refresh the stat only.
                        touched.append(
                            StatEntry(
                                change.path, digest, change.mode, change.size, change.mtime_ns, change.ino
                            )
                        )
                    continue
                real.append((change, digest))
            last = db.execute("SELECT MAX(id) FROM checkpoints WHERE origin IS NULL").fetchone()[0]
            new_attach: dict[str, str] = {}
            for name, data in attachments.items():
                digest = blob_hash(data)
                prev = db.execute(
                    "SELECT hash FROM attachments WHERE name=? AND checkpoint IN "
                    f"({_SAME_ORIGIN}) ORDER BY checkpoint DESC LIMIT 1",
                    (name, None),
                ).fetchone()
                if prev is None or prev[0] != digest:
                    new_attach[name] = digest
            if touched:
                # Only rows whose stat really changes are written: a file still too fresh to
                # vouch for is re-read by every scan, and each would otherwise be a write (and
                # an fsync) that leaves head as it was.
                refreshed = []
                for e in (e._replace(mtime_ns=vouch(e.mtime_ns)) for e in touched):
                    cur = db.execute(
                        "UPDATE head SET mtime_ns=?, ino=?, size=? WHERE path=? AND hash=? "
                        "AND (mtime_ns!=? OR ino!=? OR size!=?)",
                        (e.mtime_ns, e.ino, e.size, e.path, e.hash, e.mtime_ns, e.ino, e.size),
                    )
                    if cur.rowcount > 0:
                        refreshed.append(e)
                head_applied.extend((e.path, e, True) for e in refreshed)
                scan_dirs.refresh_stats(db, [e.path for e in refreshed])
            if skipped_list is not None:
                self._replace_skipped(skipped_list, scope)
            if not real and not new_attach and not allow_empty:
                return None
            now = time.time()
            cur = db.execute(
                "INSERT INTO checkpoints(parent, created, trigger, message) VALUES (?,?,?,?)",
                (last, now, trigger, stored_message),
            )
            number = int(cur.lastrowid or 0)
            deleted = [c.path for c, d in real if d is None]
            written = [(c, d) for c, d in real if d is not None]
            self._put_blobs([(d, c.content) for c, d in written if c.content is not None])
            db.executemany(
                "INSERT INTO changes(checkpoint, path, hash, mode, size) VALUES (?,?,NULL,0,0)",
                [(number, p) for p in deleted],
            )
            db.executemany("DELETE FROM head WHERE path=?", [(p,) for p in deleted])
            db.executemany(
                "INSERT INTO changes(checkpoint, path, hash, mode, size) VALUES (?,?,?,?,?)",
                [(number, c.path, d, c.mode, c.size) for c, d in written],
            )
            db.executemany(
                "INSERT OR REPLACE INTO head(path, hash, mode, size, mtime_ns, ino) VALUES (?,?,?,?,?,?)",
                [(c.path, d, c.mode, c.size, vouch(c.mtime_ns), c.ino) for c, d in written],
            )
            scan_dirs.refresh_stats(db, [c.path for c, _ in real])
            head_applied.extend((p, None, False) for p in deleted)
            head_applied.extend(
                (c.path, StatEntry(c.path, d, c.mode, c.size, vouch(c.mtime_ns), c.ino), False)
                for c, d in written
                if d is not None
            )
            for name, data in attachments.items():
                digest = self._put_blob(data)
                db.execute(
                    "INSERT INTO attachments(checkpoint, name, hash) VALUES (?,?,?)", (number, name, digest)
                )
            return CheckpointInfo(
                id=number,
                time=now,
                trigger=trigger,
                message=stored_message,
                parent=last,
                files=tuple(sorted(c.path for c, _ in real)),
            )

        fresh = self._head is not None and self._head_fresh()
        info: CheckpointInfo | None = self._tx(write)
        self._apply_to_cache(head_applied, fresh)
        return info

    def _apply_to_cache(self, applied: list[tuple[str, StatEntry | None, bool]], was_fresh: bool) -> None:
        """Keep the head cache in step with our own commit (data_version ignores those)."""
        if self._head is None:
            return
        if not was_fresh or not self._head_fresh():
            self._head = None  # someone else committed around us: reload next time
            return
        cache = self._head
        for path, entry, refresh in applied:
            if entry is None:
                cache.pop(path, None)
                continue
            old = cache.get(path)
            if refresh and (old is None or old[1] != entry.hash):
                continue  # mirrors the SQL: a stat refresh applies only where the hash matches
            cache[path] = entry

    def _moved_on(self, change: FileChange) -> bool:
        """Whether the file changed on disk after ``change`` was read from it."""
        if change.content is None:
            # Not checked: a path also stops being tracked when a .gitignore starts to cover
            # it (it still exists), and a file recreated meanwhile is found as new next scan.
            return False
        try:
            st = os.lstat(self.root / change.path)
        except OSError:
            return True  # gone (or unreadable) since it was read
        return (st.st_mtime_ns, st.st_size, st.st_ino) != (change.mtime_ns, change.size, change.ino)

    def _head_rows(self, paths: list[str]) -> dict[str, tuple[str, int]]:
        out: dict[str, tuple[str, int]] = {}
        for i in range(0, len(paths), _CHUNK):
            chunk = paths[i : i + _CHUNK]
            for path, digest, mode in self._db.execute(
                f"SELECT path, hash, mode FROM head WHERE path IN ({','.join('?' * len(chunk))})", chunk
            ):
                out[path] = (digest, mode)
        return out

    def _put_blobs(self, items: list[tuple[str, bytes]]) -> None:
        unique = dict(items)
        have: set[str] = set()
        keys = list(unique)
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i : i + _CHUNK]
            have.update(
                r[0]
                for r in self._db.execute(
                    f"SELECT hash FROM blobs WHERE hash IN ({','.join('?' * len(chunk))})", chunk
                )
            )
        rows = []
        for digest, data in unique.items():
            if digest not in have:
                codec, packed = _compress(data)
                rows.append((digest, len(data), codec, packed))
        self._db.executemany("INSERT INTO blobs(hash, size, codec, data) VALUES (?,?,?,?)", rows)

    def _replace_skipped(self, new: list[Skipped], scope: list[str] | None) -> None:
        db = self._db
        if scope is None:
            old = {r[0]: (r[1], r[2]) for r in db.execute("SELECT path, reason, size FROM skipped")}
            if old == {s.path: (s.reason, s.size) for s in new}:
                return  # the usual case: avoid turning a no-op scan into a write
            db.execute("DELETE FROM skipped")
        else:
            db.executemany("DELETE FROM skipped WHERE path=?", [(p,) for p in scope])
        db.executemany(
            "INSERT OR REPLACE INTO skipped(path, reason, size) VALUES (?,?,?)",
            [(s.path, s.reason, s.size) for s in new],
        )

    def _info(self, row: Sequence[Any]) -> CheckpointInfo:
        files = tuple(
            r[0] for r in self._query("SELECT path FROM changes WHERE checkpoint=? ORDER BY path", (row[0],))
        )
        return CheckpointInfo(
            id=row[0],
            parent=row[1],
            time=row[2],
            trigger=row[3],
            message=row[4],
            files=files,
            origin=row[5],
        )

    def list_checkpoints(self, limit: int | None = 50) -> list[CheckpointInfo]:
        rows = self._query(
            f"SELECT {_COLS} FROM checkpoints ORDER BY id DESC LIMIT ?",
            (-1 if limit is None else limit,),
        )
        return [self._info(r) for r in rows]

    def checkpoint_ids(self, after: int = 0, origin: str | None = None) -> list[int]:
        """Numbers of ``origin``'s checkpoints (default: this machine's) above ``after``, oldest first."""
        rows = self._query(
            "SELECT id FROM checkpoints WHERE id>? AND origin IS ? ORDER BY id", (after, origin)
        )
        return [r[0] for r in rows]

    def get_checkpoint(self, n: int) -> CheckpointInfo:
        rows = self._query(f"SELECT {_COLS} FROM checkpoints WHERE id=?", (n,))
        if not rows:
            latest = self.latest()
            hint = f"the latest is {latest.id}" if latest else "there are no checkpoints yet"
            raise NoCheckpointError(f"no checkpoint {n} in {self.root} ({hint})")
        return self._info(rows[0])

    def latest(self, origin: str | None = None) -> CheckpointInfo | None:
        """The newest checkpoint made here (or imported from ``origin``)."""
        rows = self._query(
            f"SELECT {_COLS} FROM checkpoints WHERE origin IS ? ORDER BY id DESC LIMIT 1", (origin,)
        )
        return self._info(rows[0]) if rows else None

    def manifest(self, n: int) -> dict[str, FileEntry]:
        """Tracked files as of checkpoint ``n``: per path, its latest change at or before ``n``."""
        origin = self.get_checkpoint(n).origin
        rows = self._query(
            f"""
            SELECT c.path, c.hash, c.mode, c.size FROM changes c
            JOIN (SELECT path, MAX(checkpoint) AS cp FROM changes
                  WHERE checkpoint<=? AND checkpoint IN ({_SAME_ORIGIN}) GROUP BY path) m
              ON c.path=m.path AND c.checkpoint=m.cp
            WHERE c.hash IS NOT NULL
            """,
            (n, origin),
        )
        return {r[0]: FileEntry(r[0], r[1], r[2], r[3]) for r in rows}

    def entry_at(self, n: int, path: str) -> FileEntry | None:
        origin = self.get_checkpoint(n).origin
        rows = self._query(
            "SELECT hash, mode, size FROM changes WHERE path=? AND checkpoint<=? "
            f"AND checkpoint IN ({_SAME_ORIGIN}) ORDER BY checkpoint DESC LIMIT 1",
            (path, n, origin),
        )
        if not rows or rows[0][0] is None:
            return None
        return FileEntry(path, rows[0][0], rows[0][1], rows[0][2])

    def delta(self, n: int) -> list[tuple[str, FileEntry | None]]:
        """Checkpoint ``n``'s own changes against its parent (None: deleted)."""
        rows = self._query(
            "SELECT path, hash, mode, size FROM changes WHERE checkpoint=? ORDER BY path", (n,)
        )
        return [(r[0], FileEntry(r[0], r[1], r[2], r[3]) if r[1] is not None else None) for r in rows]

    def import_checkpoints(self, origin: str, items: Sequence[ImportedCheckpoint]) -> list[CheckpointInfo]:
        """Record checkpoints made elsewhere, all in one transaction, as ``origin``'s chain.

        Each item's changes are its delta against the previous checkpoint of ``origin``. Head,
        the stat cache and this machine's chain are untouched: the files reach the workspace
        only through a restore.
        """
        prepared = [
            [
                (path, blob_hash(data) if data is not None else None, data, mode)
                for path, data, mode in it.changes
            ]
            for it in items
        ]
        messages = [redact_text(it.message) if it.message else it.message for it in items]

        def write() -> list[CheckpointInfo]:
            db = self._db
            out: list[CheckpointInfo] = []
            last = db.execute("SELECT MAX(id) FROM checkpoints WHERE origin IS ?", (origin,)).fetchone()[0]
            for it, changes, message in zip(items, prepared, messages, strict=True):
                cur = db.execute(
                    "INSERT INTO checkpoints(parent, created, trigger, message, origin) VALUES (?,?,?,?,?)",
                    (last, it.created, it.trigger, message, origin),
                )
                number = int(cur.lastrowid or 0)
                self._put_blobs(
                    [(d, data) for _, d, data, _ in changes if d is not None and data is not None]
                )
                db.executemany(
                    "INSERT INTO changes(checkpoint, path, hash, mode, size) VALUES (?,?,?,?,?)",
                    [
                        (number, p, d, m if d is not None else 0, len(data) if data is not None else 0)
                        for p, d, data, m in changes
                    ],
                )
                for name, data in it.attachments.items():
                    db.execute(
                        "INSERT INTO attachments(checkpoint, name, hash) VALUES (?,?,?)",
                        (number, name, self._put_blob(data)),
                    )
                out.append(
                    CheckpointInfo(
                        number,
                        it.created,
                        it.trigger,
                        message,
                        last,
                        tuple(sorted(p for p, *_ in changes)),
                        origin,
                    )
                )
                last = number
            return out

        result: list[CheckpointInfo] = self._tx(write)
        return result

    def head(self, paths: Iterable[str] | None = None, under: Iterable[str] = ()) -> dict[str, StatEntry]:
        """Tracked files and their stat cache: all of them, or only ``paths`` and those below ``under``."""
        if paths is None:
            full = self._full_head()
            return dict(zip(full, map(StatEntry._make, full.values()), strict=True))
        wanted = list(dict.fromkeys(paths))
        prefixes = [u.rstrip("/") + "/" for u in under]
        if self._head is not None and self._head_fresh():
            cached = self._head
            out = {p: StatEntry._make(cached[p]) for p in wanted if p in cached}
            if prefixes:
                out.update(
                    {p: StatEntry._make(e) for p, e in cached.items() if p.startswith(tuple(prefixes))}
                )
            return out
        rows: list[Any] = []
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i : i + _CHUNK]
            rows.extend(
                self._query(
                    "SELECT path, hash, mode, size, mtime_ns, ino FROM head WHERE path IN "
                    f"({','.join('?' * len(chunk))})",
                    chunk,
                )
            )
        for prefix in prefixes:
            # Range scan on the primary key: paths starting with prefix.
            rows.extend(
                self._query(
                    "SELECT path, hash, mode, size, mtime_ns, ino FROM head WHERE path >= ? AND path < ?",
                    (prefix, prefix[:-1] + "0"),
                )
            )
        return {r[0]: StatEntry(*r) for r in rows}

    def head_count(self) -> int:
        return int(self._query("SELECT count(*) FROM head")[0][0])

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one state of the store (other writers commit meanwhile, unseen)."""
        try:
            self._db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise _translate(exc, self.db_path) from exc
        try:
            yield
        finally:
            self._rollback()  # nothing was written: ending the read transaction is all

    def scan_dirs(self) -> tuple[bytes | None, list[DirRow]]:
        """The stored directory listings and the rules they were filtered with (None: unknown,
        e.g. when a listing is damaged; such listings must not be used)."""
        try:
            rows = scan_dirs.read_rows(self._db)
            return (self.get_state(SCAN_META), rows) if rows is not None else (None, [])
        except sqlite3.Error as exc:
            raise _translate(exc, self.db_path) from exc

    def put_scan_dirs(self, export: DirsExport) -> bool:
        """Store changed listings, their stats taken from head in the same transaction.

        False (nothing written) when the stored listings were filtered with other rules than
        ``export.meta`` and ``export`` does not replace them all: rows filtered with different
        .gitignore files must never be mixed.
        """

        def write() -> bool:
            db = self._db
            row = db.execute("SELECT codec, data FROM state WHERE name=?", (SCAN_META,)).fetchone()
            stored = _decompress(row[0], row[1]) if row else None
            if stored != export.meta and not export.everything:
                return False
            scan_dirs.write_rows(db, export.rows, export.removed, export.everything)
            if stored != export.meta:
                codec, packed = _compress(export.meta)
                db.execute(
                    "INSERT OR REPLACE INTO state(name, updated, codec, data) VALUES (?,?,?,?)",
                    (SCAN_META, time.time(), codec, packed),
                )
            return True

        return bool(self._tx(write))

    def scan_dirs_consistent(self) -> list[str]:
        """Directories whose stored stats disagree with head (none, unless there is a bug)."""
        return scan_dirs.check_consistent(self._db)

    def head_rows(self) -> Mapping[str, HeadRow]:
        """Every tracked file's head row, for a whole-tree scan: read-only, and the cache itself
        (no copy). Cheaper than :meth:`head` on a new Store: one tuple per file, as SQLite
        returns it."""
        return self._full_head()

    def _data_version(self) -> int:
        return int(self._query("PRAGMA data_version")[0][0])

    def _head_fresh(self) -> bool:
        return self._head_version == self._data_version()

    def _full_head(self) -> dict[str, HeadRow]:
        if self._head is None or not self._head_fresh():
            version = self._data_version()
            # One tuple per tracked file and nothing else: the cyclic GC has nothing to find in
            # them, but would be run over and over (across every live object) while they are
            # allocated, which costs more than the load itself at 50k files.
            paused = gc.isenabled()
            gc.disable()
            try:
                rows = self._query("SELECT path, hash, mode, size, mtime_ns, ino FROM head")
                self._head = dict(zip(map(itemgetter(0), rows), rows, strict=True))
            finally:
                if paused:
                    gc.enable()
            self._head_version = version
        return self._head

    def read_blob(self, digest: str) -> bytes:
        rows = self._query("SELECT codec, data, size FROM blobs WHERE hash=?", (digest,))
        if not rows:
            raise CorruptStoreError(f"blob {digest[:12]} is missing from {self.db_path}")
        try:
            data = _decompress(rows[0][0], rows[0][1])
        except zlib.error as exc:
            raise CorruptStoreError(f"blob {digest[:12]} in {self.db_path} is damaged: {exc}") from exc
        if blob_hash(data) != digest:
            raise CorruptStoreError(f"blob {digest[:12]} in {self.db_path} fails its checksum")
        return data

    # --- attachments and live state -------------------------------------------------------

    def attachment(self, n: int, name: str) -> bytes | None:
        rows = self._query("SELECT hash FROM attachments WHERE checkpoint=? AND name=?", (n, name))
        return self.read_blob(rows[0][0]) if rows else None

    def latest_attachment(self, name: str, at: int | None = None) -> tuple[int, bytes] | None:
        """The newest attachment ``name`` at or before checkpoint ``at`` (default: latest)."""
        # Within ``at``'s origin: an imported checkpoint never lends its tmux layout to ours.
        rows = self._query(
            "SELECT checkpoint, hash FROM attachments WHERE name=? AND checkpoint<=? AND checkpoint IN "
            "(SELECT id FROM checkpoints WHERE origin IS (SELECT origin FROM checkpoints WHERE id=?)) "
            "ORDER BY checkpoint DESC LIMIT 1",
            (name, at if at is not None else 2**62, at if at is not None else -1),
        )
        return (rows[0][0], self.read_blob(rows[0][1])) if rows else None

    def put_state(self, name: str, data: bytes) -> None:
        codec, packed = _compress(data)
        self._tx(
            lambda: self._db.execute(
                "INSERT OR REPLACE INTO state(name, updated, codec, data) VALUES (?,?,?,?)",
                (name, time.time(), codec, packed),
            )
        )

    def get_state(self, name: str) -> bytes | None:
        rows = self._query("SELECT codec, data FROM state WHERE name=?", (name,))
        return _decompress(rows[0][0], rows[0][1]) if rows else None

    def update_state(self, name: str, fn: Callable[[bytes | None], bytes | None]) -> bytes | None:
        """Read-modify-write ``name`` in one ``BEGIN IMMEDIATE`` transaction.

        Concurrent writers (the CLI of an agent and the language server) are serialised, so no
        update is lost. ``fn`` returning None leaves the state as it was.
        """

        def rmw() -> bytes | None:
            row = self._db.execute("SELECT codec, data FROM state WHERE name=?", (name,)).fetchone()
            new = fn(_decompress(row[0], row[1]) if row else None)
            if new is not None:
                codec, packed = _compress(new)
                self._db.execute(
                    "INSERT OR REPLACE INTO state(name, updated, codec, data) VALUES (?,?,?,?)",
                    (name, time.time(), codec, packed),
                )
            return new

        return self._tx(rmw)  # type: ignore[no-any-return]

    def delete_state(self, name: str) -> None:
        self._tx(lambda: self._db.execute("DELETE FROM state WHERE name=?", (name,)))

    def skipped(self) -> list[Skipped]:
        return [Skipped(*r) for r in self._query("SELECT path, reason, size FROM skipped ORDER BY path")]

    # --- retention ------------------------------------------------------------------------

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            p = self.db_path.with_name(self.db_path.name + suffix)
            if p.exists():
                total += p.stat().st_size
        return total

    def gc(
        self,
        keep_last: int | None = None,
        max_age_days: float | None = None,
        max_bytes: int | None = None,
    ) -> GcReport:
        """Drop old checkpoints (folding their deltas into the oldest kept one) and orphan blobs.

        The newest checkpoint is always kept, so the workspace stays restorable.
        """
        report = GcReport(bytes_before=self.size_bytes())
        # Imported checkpoints are left alone: their chain is the other machine's (pull again).
        ids = [r[0] for r in self._query("SELECT id FROM checkpoints WHERE origin IS NULL ORDER BY id")]
        if not ids:
            report.bytes_after = report.bytes_before
            return report
        cut = 0  # drop ids < cut
        if keep_last is not None:
            keep_last = max(keep_last, 1)
            if len(ids) > keep_last:
                cut = max(cut, ids[-keep_last])
        if max_age_days is not None:
            limit = time.time() - max_age_days * 86400
            newer = self._query(
                "SELECT MIN(id) FROM checkpoints WHERE created>=? AND origin IS NULL", (limit,)
            )[0][0]
            cut = max(cut, newer if newer is not None else ids[-1])
        if cut:
            self._drop_before(min(cut, ids[-1]), report)
        if max_bytes is not None:
            # Drop oldest checkpoints one at a time until the live data fits.
            while self._live_bytes() > max_bytes:
                remaining = [
                    r[0] for r in self._query("SELECT id FROM checkpoints WHERE origin IS NULL ORDER BY id")
                ]
                if len(remaining) <= 1:
                    break
                self._drop_before(remaining[1], report)
        try:
            self._before_write()
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.execute("VACUUM")
        except sqlite3.Error as exc:
            log.warning("vacuum after gc failed: %s", exc)
        report.bytes_after = self.size_bytes()
        return report

    def _live_bytes(self) -> int:
        row = self._query("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM blobs")
        return int(row[0][0])

    def _drop_before(self, keep_from: int, report: GcReport) -> None:
        def fold() -> None:
            db = self._db
            dropped = [
                r[0]
                for r in db.execute("SELECT id FROM checkpoints WHERE id<? AND origin IS NULL", (keep_from,))
            ]
            if not dropped:
                return
            local = "checkpoint IN (SELECT id FROM checkpoints WHERE origin IS NULL)"
            # Carry each path's last state before the cut into keep_from, unless keep_from changes it.
            db.execute(
                f"""
                INSERT OR IGNORE INTO changes(checkpoint, path, hash, mode, size)
                SELECT ?, c.path, c.hash, c.mode, c.size FROM changes c
                JOIN (SELECT path, MAX(checkpoint) AS cp FROM changes WHERE checkpoint<? AND {local}
                      GROUP BY path) m
                  ON c.path=m.path AND c.checkpoint=m.cp
                WHERE c.hash IS NOT NULL
                """,
                (keep_from, keep_from),
            )
            for name in [
                r[0]
                for r in db.execute(
                    f"SELECT DISTINCT name FROM attachments WHERE checkpoint<? AND {local}", (keep_from,)
                )
            ]:
                db.execute(
                    f"""
                    INSERT OR IGNORE INTO attachments(checkpoint, name, hash)
                    SELECT ?, name, hash FROM attachments WHERE name=? AND checkpoint<? AND {local}
                    ORDER BY checkpoint DESC LIMIT 1
                    """,
                    (keep_from, name, keep_from),
                )
            db.execute(f"DELETE FROM changes WHERE checkpoint<? AND {local}", (keep_from,))
            db.execute(f"DELETE FROM attachments WHERE checkpoint<? AND {local}", (keep_from,))
            db.execute("DELETE FROM checkpoints WHERE id<? AND origin IS NULL", (keep_from,))
            db.execute("UPDATE checkpoints SET parent=NULL WHERE id=?", (keep_from,))
            cur = db.execute(
                """
                DELETE FROM blobs WHERE hash NOT IN (SELECT hash FROM changes WHERE hash IS NOT NULL)
                  AND hash NOT IN (SELECT hash FROM attachments)
                  AND hash NOT IN (SELECT hash FROM head)
                """
            )
            report.removed_checkpoints.extend(dropped)
            report.removed_blobs += max(cur.rowcount, 0)

        self._tx(fold)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _guarded(fn: Callable[Concatenate[Store, _P], _R]) -> Callable[Concatenate[Store, _P], _R]:
    """A public Store method: reading a damaged store raises CorruptStoreError (never a raw
    sqlite3, UnicodeDecodeError or zlib error) and judges the store corrupt."""

    def call(self: Store, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(self, *args, **kwargs)
        except CorruptStoreError as exc:
            self._judge(exc)
            raise
        except TetherError:
            raise
        except _DAMAGE as exc:
            raise self._error(exc) from exc

    functools.update_wrapper(call, fn)
    return call


for _name, _attr in list(vars(Store).items()):
    if not _name.startswith("_") and inspect.isfunction(_attr):
        setattr(Store, _name, _guarded(_attr))


class LazyHead(Mapping[str, HeadRow]):
    """Head rows read when asked for: for a walk that expects to need few of them (a new
    process whose stored directory stats vouch for most directories). Iterating reads them all.

    Use inside :meth:`Store.snapshot`, so the rows read one by one and the count agree.
    """

    def __init__(self, store: Store, preload: Sequence[str] = ()) -> None:
        self._store = store
        self._rows: dict[str, HeadRow | None] = {}
        self._all: Mapping[str, HeadRow] | None = None
        self._len: int | None = None
        if preload:
            self._fetch(preload)

    def _fetch(self, paths: Sequence[str]) -> None:
        found = self._store.head(paths)
        for p in paths:
            self._rows[p] = found.get(p)

    def get(self, path: str, default: Any = None) -> Any:
        if self._all is not None:
            return self._all.get(path, default)
        try:
            row = self._rows[path]
        except KeyError:
            self._fetch([path])
            row = self._rows[path]
        return default if row is None else row

    def __getitem__(self, path: str) -> HeadRow:
        row: HeadRow | None = self.get(path)
        if row is None:
            raise KeyError(path)
        return row

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self.get(path) is not None

    def __len__(self) -> int:
        if self._all is not None:
            return len(self._all)
        if self._len is None:
            self._len = self._store.head_count()
        return self._len

    def __iter__(self) -> Iterator[str]:
        if self._all is None:
            self._all = self._store.head_rows()
        return iter(self._all)


# Stores this process has open, per database: walcheck must not open (and close) their -shm.
_OPEN: dict[Path, int] = {}


def _stat_voucher(now_ns: int) -> Callable[[int], int]:
    """Which mtimes may vouch for content in the stat cache.

    File times are coarse (a kernel tick on ext4, 1-2 s elsewhere): a file rewritten within
    the same tick after it was read keeps its mtime and, with the same size, would look
    unchanged forever ("racy git"). An mtime that recent is stored as 0, so the next scan
    reads the file once more and records its stat when it is old enough to be trusted.
    """

    def vouch(mtime_ns: int) -> int:
        return 0 if now_ns - mtime_ns < RACY_NS else mtime_ns

    return vouch


def _check_header(db_path: Path) -> None:
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
