"""Checkpoint store: one SQLite database (WAL) per workspace.

A checkpoint is one ``BEGIN IMMEDIATE`` transaction holding its delta (changed paths only),
any new blobs and attachments, and the updated ``head`` (the tracked state plus its stat cache),
so it exists whole or not at all, even when the writer is SIGKILLed mid-way. Blobs are
content-addressed (sha256 of the raw bytes), zlib-compressed when that helps, and shared by
every checkpoint that references them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sqlite3
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from tether.errors import CorruptStoreError, NoCheckpointError, StoreError, TetherError
from tether.model import (
    CheckpointInfo,
    FileChange,
    FileEntry,
    GcReport,
    HeadRow,
    ImportedCheckpoint,
    Progress,
    Skipped,
    StatEntry,
    blob_hash,
)
from tether.paths import STATE_DIR_ENV, ensure_private_dir, state_dir
from tether.redact import redact_text
from tether.sha import sha256_hex
from tether.store import blobs, chain, gc, integrity, scan_dirs, schema, state, walcheck
from tether.store.head import Applied, HeadCache, read_rows, stat_voucher
from tether.store.scan_dirs import DirRow, DirsExport
from tether.store.sql import DAMAGE, select_in, store_error, translate

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Concatenate, NoReturn, ParamSpec, TypeVar

    _P = ParamSpec("_P")
    _R = TypeVar("_R")

log = logging.getLogger(__name__)

DB_NAME = "tether.db"
BUSY_TIMEOUT_MS = 15_000
# Live state: the rules the stored directory listings were filtered with (scan_dirs.py).
SCAN_META = "scan.meta"
WAL_DAMAGE_KEY = "walDamage"
HEAD_CACHE_APPLY_MAX = 10_000


def workspace_key(root: Path) -> str:
    """Directory name for a workspace's store: readable basename + hash of the full path."""
    digest = sha256_hex(os.fsencode(root))[:12]
    base = "".join(c if c.isalnum() or c in "-_." else "_" for c in root.name)[:40] or "root"
    return f"{base}-{digest}"


_SAME_ORIGIN = chain.SAME_ORIGIN
# A live state's read-modify-write in a checkpoint's transaction: the stored bytes (None: none)
# and the checkpoint written (None: none) -> the new bytes (None: leave it as it was).
StateUpdate = Callable[[bytes | None, CheckpointInfo | None], bytes | None]
_COLS = "id, parent, created, trigger, message, origin"


class Store:
    """The checkpoint history of one workspace. Not thread-safe: one Store per thread."""

    def __init__(self, root: Path, db_path: Path, conn: sqlite3.Connection) -> None:
        self.root = root
        self.db_path = db_path
        self._db = conn
        self._head = HeadCache(conn)
        # Damage found in the write-ahead log when this store was opened (walcheck.py).
        self.wal_damage: str | None = None
        self._closed = False
        # Judged corrupt (the message): nothing is written any more, not even at close.
        self._corrupt: str | None = None
        # Checked (or vouched for by the verdict file) before this Store's first write.
        self._checked = False
        # Whether this connection's commits wait for the disk (PRAGMA synchronous FULL/NORMAL).
        self._durable = True
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
            # Not when this process has it open already (it was checked then): opening and
            # closing the file here would drop every POSIX lock this process holds on it,
            # SQLite's included, and another process could then take the last connection's
            # part and delete the write-ahead log under ours (walcheck.py avoids it the same way).
            if db_path.exists() and db_path.stat().st_size > 0 and not _OPEN.get(db_path):
                schema.check_header(db_path)
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
            raise translate(exc, db_path) from exc
        store = cls(root, db_path, conn)
        _OPEN[db_path] = _OPEN.get(db_path, 0) + 1
        try:
            store._setup(damage)
        except DAMAGE as exc:
            store.close()
            raise store_error(exc, db_path) from exc
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
        schema.migrate(self._db, self.db_path, self._before_write)
        stored_root = self.get_meta("root")
        if stored_root is None:
            with self.write() as tx:
                tx.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('root', ?)", (str(self.root),))
        elif stored_root != str(self.root):
            raise StoreError(f"store {self.db_path} belongs to {stored_root}, not {self.root}")
        if damage is not None:
            self.wal_damage = damage.message(self.db_path)
            log.warning("%s", self.wal_damage)
            # The next write reuses the damaged frames: keep what was found for `tether doctor`.
            record = json.dumps({"time": time.time(), "message": self.wal_damage})
            with self.write() as tx:
                tx.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (WAL_DAMAGE_KEY, record))

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

    def commits_need_not_outlive_the_boot(self) -> None:
        """For a connection whose writes mean something only while its process runs in this
        boot (a file watcher's dirty set): its commits skip the fsync (WAL, synchronous=NORMAL),
        still atomic and seen at once by every other connection; an OS crash may lose the last
        ones, and the new boot makes them moot. Other connections keep synchronous=FULL."""
        self._synchronous("NORMAL")
        self._durable = False

    @contextlib.contextmanager
    def write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: the write lock, waited for up to the busy
        timeout): committed when the block ends, rolled back when it raises. Every write goes
        through here, so a store judged corrupt is never written and damage found on the way
        judges it.

        ``durable=False``: for a write whose loss in an OS crash or power cut is harmless (a file
        watcher's dirty set, void in the next boot; a note that the next reader would make
        again): its commit skips the fsync (WAL, synchronous=NORMAL), still atomic, seen at
        once by every other connection and kept if the process dies; the next durable commit
        makes it durable too. The connection's own mode is back once the block ends."""
        self._before_write()
        relaxed = not durable and self._durable
        if relaxed:
            self._synchronous("NORMAL")
        try:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            try:
                yield self._db
                self._db.execute("COMMIT")
            except DAMAGE as exc:
                self._rollback()
                raise self._error(exc) from exc
            except BaseException:
                self._rollback()
                raise
        finally:
            if relaxed:
                self._synchronous("FULL")

    def _synchronous(self, mode: str) -> None:
        try:
            self._db.execute(f"PRAGMA synchronous={mode}")
        except sqlite3.Error as exc:
            raise translate(exc, self.db_path) from exc

    def _error(self, exc: BaseException) -> StoreError:
        err = store_error(exc, self.db_path)
        if isinstance(err, CorruptStoreError):
            self._judge(err)
        return err

    def _rollback(self) -> None:
        # sqlite may have rolled back already (e.g. SQLITE_FULL).
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of a read-only statement (damage said as Tether's errors)."""
        try:
            return self._db.execute(sql, params).fetchall()
        except DAMAGE as exc:
            raise self._error(exc) from exc

    def get_meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0][0] if rows else None

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
        still_current: Callable[[FileChange], bool] | None = None,
        read: chain.Reader | None = None,
        progress: Progress | None = None,
        live_state: Mapping[str, StateUpdate] | None = None,
        listings: Callable[[bool], DirsExport | None] | None = None,
    ) -> CheckpointInfo | None:
        """Write one checkpoint atomically; ``None`` when nothing changed and not ``allow_empty``.

        ``changes`` are compared with head inside the transaction, so concurrent writers that
        saw the same edit record it once. ``stat_updates`` refresh the stat cache for files whose
        content did not change (touched files). ``skipped`` replaces the skipped-files report:
        wholly when ``skipped_scope`` is None, else only for the paths in ``skipped_scope``.

        ``still_current(change)`` is asked once the write lock is held; a change it refuses is
        left out (the Checkpointer's: the file changed again since it was read, and another
        writer may have recorded the newer content already). Head keeps the old stat for it,
        so the next scan picks the file up.

        ``deferred`` changes (their bytes not held: a big checkpoint) are read with ``read`` inside
        the transaction, in bounded batches (chain.write_streamed), ``progress`` told how far the
        writing got; if ``progress`` raises (a cancel), the transaction is rolled back.

        ``live_state``: per live state name, ``fn(bytes, checkpoint)`` run in the same transaction
        (read-modify-write, as :meth:`update_state`; checkpoint None when none was written), so
        the state that goes with a checkpoint (an agent's step) commits with it or not at all.
        ``listings(everything)``: the scanner's changed directory listings, stored in the same
        transaction as :meth:`put_scan_dirs` would (asked again with ``everything=True`` when the
        stored ones were filtered with other rules).
        """
        changes = list(changes)
        deferred = [c for c in changes if c.deferred]
        if deferred:
            if read is None:
                raise ValueError("deferred changes need a reader")
            changes = [c for c in changes if not c.deferred]
        attachments = attachments or {}
        stat_updates = list(stat_updates)
        # Every caller's message (a run's command line, a hook's tool input, a client's text).
        stored_message = redact_text(message) if message else message
        skipped_list = list(skipped) if skipped is not None else None
        scope = list(skipped_scope) if skipped_scope is not None else None
        if deferred and skipped_list is None:
            # What the reader cannot take is said as skipped (for those paths only).
            skipped_list, scope = [], [c.path for c in deferred]
        # Hash outside the transaction: the write lock is held only for the writes.
        prepared = [(c, blob_hash(c.content) if c.content is not None else None) for c in changes]
        applied: list[Applied] = []
        info: CheckpointInfo | None = None
        was_fresh = self._head.fresh() is not None
        with self.write() as tx:
            current = {
                p: (d, m)
                for p, d, m in select_in(
                    tx,
                    "SELECT path, hash, mode FROM head WHERE path IN ({keys})",
                    [*(c.path for c, _ in prepared), *(c.path for c in deferred)],
                )
            }
            real: list[tuple[FileChange, str | None]] = []
            touched = list(stat_updates)
            vouch = stat_voucher(time.time_ns())
            for change, digest in prepared:
                if still_current is not None and not still_current(change):
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
            if deferred:
                assert read is not None and skipped_list is not None
                streamed, more, skips = chain.write_streamed(tx, deferred, current, read, progress)
                real += streamed
                touched += more
                skipped_list += skips
            if touched:
                applied += chain.refresh_stats(tx, [e._replace(mtime_ns=vouch(e.mtime_ns)) for e in touched])
            if skipped_list is not None:
                chain.replace_skipped(tx, skipped_list, scope)
            new_attach = chain.changed_attachments(tx, attachments)
            # A checkpoint of many files (a first one) drops the head cache rather than keep
            # a second copy of every row while it writes them: read again when next needed.
            keep_cache = len(real) <= HEAD_CACHE_APPLY_MAX
            if real or new_attach or allow_empty:
                info = chain.insert_checkpoint(
                    tx,
                    trigger=trigger,
                    message=stored_message,
                    real=real,
                    attachments=attachments,
                    vouch=vouch,
                    applied=applied if keep_cache else None,
                )
            for name, fn in (live_state or {}).items():
                new = fn(state.read(tx, name), info)
                if new is not None:
                    state.write(tx, name, new)
            if listings is not None:
                export = listings(False)
                if export is not None and not _write_scan_dirs(tx, export):
                    export = listings(True)
                    if export is not None:
                        _write_scan_dirs(tx, export)
        self._head.apply(applied if keep_cache else None, was_fresh)
        return info

    def _info(self, row: Sequence[Any]) -> CheckpointInfo:
        files = tuple(
            r[0] for r in self.query("SELECT path FROM changes WHERE checkpoint=? ORDER BY path", (row[0],))
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
        rows = self.query(
            f"SELECT {_COLS} FROM checkpoints ORDER BY id DESC LIMIT ?",
            (-1 if limit is None else limit,),
        )
        return [self._info(r) for r in rows]

    def newest_with_trigger(self, trigger: str, within: int, origin: str | None = None) -> int | None:
        """The newest of the last ``within`` checkpoints that has ``trigger`` and was made by
        ``origin`` (default: this machine), without reading any checkpoint's files."""
        rows = self.query(
            "SELECT id FROM (SELECT id, trigger, origin FROM checkpoints ORDER BY id DESC LIMIT ?) "
            "WHERE trigger=? AND origin IS ? ORDER BY id DESC LIMIT 1",
            (within, trigger, origin),
        )
        return int(rows[0][0]) if rows else None

    def checkpoint_ids(self, after: int = 0, origin: str | None = None) -> list[int]:
        """Numbers of ``origin``'s checkpoints (default: this machine's) above ``after``, oldest first."""
        rows = self.query(
            "SELECT id FROM checkpoints WHERE id>? AND origin IS ? ORDER BY id", (after, origin)
        )
        return [r[0] for r in rows]

    def get_checkpoint(self, n: int) -> CheckpointInfo:
        rows = self.query(f"SELECT {_COLS} FROM checkpoints WHERE id=?", (n,))
        if not rows:
            self._no_checkpoint(n)
        return self._info(rows[0])

    def checkpoint_origin(self, n: int) -> str | None:
        """Checkpoint ``n``'s origin (None: made here), without reading its files (a first
        checkpoint lists the whole workspace); NoCheckpointError when there is none."""
        rows = self.query("SELECT origin FROM checkpoints WHERE id=?", (n,))
        if not rows:
            self._no_checkpoint(n)
        origin: str | None = rows[0][0]
        return origin

    def _no_checkpoint(self, n: int) -> NoReturn:
        latest = self.latest_id()
        hint = f"the latest is {latest}" if latest is not None else "there are no checkpoints yet"
        raise NoCheckpointError(f"no checkpoint {n} in {self.root} ({hint})")

    def latest(self, origin: str | None = None) -> CheckpointInfo | None:
        """The newest checkpoint made here (or imported from ``origin``)."""
        rows = self.query(
            f"SELECT {_COLS} FROM checkpoints WHERE origin IS ? ORDER BY id DESC LIMIT 1", (origin,)
        )
        return self._info(rows[0]) if rows else None

    def latest_id(self, origin: str | None = None) -> int | None:
        """:meth:`latest`'s number, without reading its files."""
        rows = self.query("SELECT MAX(id) FROM checkpoints WHERE origin IS ?", (origin,))
        latest: int | None = rows[0][0] if rows else None
        return latest

    def manifest(self, n: int) -> dict[str, FileEntry]:
        """Tracked files as of checkpoint ``n``: per path, its latest change at or before ``n``."""
        origin = self.checkpoint_origin(n)
        rows = self.query(
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
        origin = self.checkpoint_origin(n)
        rows = self.query(
            "SELECT hash, mode, size FROM changes WHERE path=? AND checkpoint<=? "
            f"AND checkpoint IN ({_SAME_ORIGIN}) ORDER BY checkpoint DESC LIMIT 1",
            (path, n, origin),
        )
        if not rows or rows[0][0] is None:
            return None
        return FileEntry(path, rows[0][0], rows[0][1], rows[0][2])

    def delta(self, n: int) -> list[tuple[str, FileEntry | None]]:
        """Checkpoint ``n``'s own changes against its parent (None: deleted)."""
        rows = self.query("SELECT path, hash, mode, size FROM changes WHERE checkpoint=? ORDER BY path", (n,))
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

        with self.write() as tx:
            return chain.insert_imported(tx, origin, items, prepared, messages)

    def head(self, paths: Iterable[str] | None = None, under: Iterable[str] = ()) -> dict[str, StatEntry]:
        """Tracked files and their stat cache: all of them, or only ``paths`` and those below ``under``."""
        if paths is None:
            full = self._head.full()
            return dict(zip(full, map(StatEntry._make, full.values()), strict=True))
        wanted = list(dict.fromkeys(paths))
        cached = self._head.fresh()
        if cached is not None:
            prefixes = tuple(u.rstrip("/") + "/" for u in under)
            out = {p: StatEntry._make(cached[p]) for p in wanted if p in cached}
            if prefixes:
                out.update({p: StatEntry._make(e) for p, e in cached.items() if p.startswith(prefixes)})
            return out
        return {r[0]: StatEntry(*r) for r in read_rows(self._db, wanted, under)}

    def head_count(self) -> int:
        return int(self.query("SELECT count(*) FROM head")[0][0])

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one state of the store (other writers commit meanwhile, unseen)."""
        try:
            self._db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise translate(exc, self.db_path) from exc
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
            raise translate(exc, self.db_path) from exc

    def put_scan_dirs(self, export: DirsExport) -> bool:
        """Store changed listings, their stats taken from head in the same transaction.

        False (nothing written) when the stored listings were filtered with other rules than
        ``export.meta`` and ``export`` does not replace them all: rows filtered with different
        .gitignore files must never be mixed.
        """

        with self.write() as tx:
            return _write_scan_dirs(tx, export)

    def listed_files(self) -> int:
        """How many files the stored directory listings hold (a cheap count: no row is read)."""
        try:
            return scan_dirs.listed_files(self._db)
        except sqlite3.Error as exc:
            raise translate(exc, self.db_path) from exc

    def scan_dirs_consistent(self) -> list[str]:
        """Directories whose stored stats disagree with head (none, unless there is a bug)."""
        return scan_dirs.check_consistent(self._db)

    def head_rows(self) -> Mapping[str, HeadRow]:
        """Every tracked file's head row, for a whole-tree scan: read-only, and the cache itself
        (no copy). Cheaper than :meth:`head` on a new Store: one tuple per file, as SQLite
        returns it."""
        return self._head.full()

    def read_blob(self, digest: str) -> bytes:
        return blobs.read(self._db, digest, self.db_path)

    # --- attachments and live state -------------------------------------------------------

    def attachment(self, n: int, name: str) -> bytes | None:
        rows = self.query("SELECT hash FROM attachments WHERE checkpoint=? AND name=?", (n, name))
        return self.read_blob(rows[0][0]) if rows else None

    def latest_attachment(self, name: str, at: int | None = None) -> tuple[int, bytes] | None:
        """The newest attachment ``name`` at or before checkpoint ``at`` (default: latest)."""
        # Within ``at``'s origin: an imported checkpoint never lends its tmux layout to ours.
        rows = self.query(
            "SELECT checkpoint, hash FROM attachments WHERE name=? AND checkpoint<=? AND checkpoint IN "
            "(SELECT id FROM checkpoints WHERE origin IS (SELECT origin FROM checkpoints WHERE id=?)) "
            "ORDER BY checkpoint DESC LIMIT 1",
            (name, at if at is not None else 2**62, at if at is not None else -1),
        )
        return (rows[0][0], self.read_blob(rows[0][1])) if rows else None

    def put_state(self, name: str, data: bytes) -> None:
        with self.write() as tx:
            state.write(tx, name, data)

    def get_state(self, name: str) -> bytes | None:
        return state.read(self._db, name)

    def update_state(
        self, name: str, fn: Callable[[bytes | None], bytes | None], *, durable: bool = True
    ) -> bytes | None:
        """Read-modify-write ``name`` in one ``BEGIN IMMEDIATE`` transaction.

        Concurrent writers (the CLI of an agent and the language server) are serialised, so no
        update is lost. ``fn`` returning None leaves the state as it was. ``durable``: as
        :meth:`write`.
        """
        with self.write(durable=durable) as tx:
            new = fn(state.read(tx, name))
            if new is not None:
                state.write(tx, name, new)
        return new

    def delete_state(self, name: str) -> None:
        with self.write() as tx:
            tx.execute("DELETE FROM state WHERE name=?", (name,))

    def skipped(self) -> list[Skipped]:
        return [Skipped(*r) for r in self.query("SELECT path, reason, size FROM skipped ORDER BY path")]

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
        return gc.collect(self, keep_last, max_age_days, max_bytes)

    def compact(self) -> None:
        """Give the space of deleted rows back to the file system (after gc)."""
        self._before_write()
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.execute("VACUUM")


def _write_scan_dirs(tx: sqlite3.Connection, export: DirsExport) -> bool:
    stored = state.read(tx, SCAN_META)
    if stored != export.meta and not export.everything:
        return False
    scan_dirs.write_rows(tx, export.rows, export.removed, export.everything)
    if stored != export.meta:
        state.write(tx, SCAN_META, export.meta)
    return True


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
        except DAMAGE as exc:
            raise self._error(exc) from exc

    functools.update_wrapper(call, fn)
    return call


for _name, _attr in list(vars(Store).items()):
    if not _name.startswith("_") and isinstance(_attr, types.FunctionType):
        setattr(Store, _name, _guarded(_attr))


# Stores this process has open, per database: walcheck must not open (and close) their -shm.
_OPEN: dict[Path, int] = {}
