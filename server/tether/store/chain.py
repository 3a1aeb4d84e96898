"""The checkpoint chain as written inside a store transaction: one checkpoint's rows (its delta,
head, the directory listings' stats, its attachments), stat refreshes, the skipped files, and
chains imported from another machine. Every function takes the open transaction."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from tether.model import (
    CheckpointInfo,
    FileChange,
    ImportedCheckpoint,
    Progress,
    Skipped,
    StatEntry,
    blob_hash,
)
from tether.store import blobs, scan_dirs
from tether.store.head import Applied

TYPE_CHECKING = False
if TYPE_CHECKING:
    from concurrent.futures import Future

# The checkpoints of one origin (bound with `IS ?`, so None selects this machine's).
SAME_ORIGIN = "SELECT id FROM checkpoints WHERE origin IS ?"


def refresh_stats(tx: sqlite3.Connection, entries: list[StatEntry]) -> list[Applied]:
    """Head rows whose content is unchanged get their new stat. Only rows whose stat really
    changes are written: a file still too fresh to vouch for is re-read by every scan, and
    each would otherwise be a write (and an fsync) that leaves head as it was."""
    refreshed = []
    for e in entries:
        cur = tx.execute(
            "UPDATE head SET mtime_ns=?, ino=?, size=? WHERE path=? AND hash=? "
            "AND (mtime_ns!=? OR ino!=? OR size!=?)",
            (e.mtime_ns, e.ino, e.size, e.path, e.hash, e.mtime_ns, e.ino, e.size),
        )
        if cur.rowcount > 0:
            refreshed.append(e)
    scan_dirs.refresh_stats(tx, [e.path for e in refreshed])
    return [(e.path, e, True) for e in refreshed]


def changed_attachments(tx: sqlite3.Connection, attachments: Mapping[str, bytes]) -> list[str]:
    """Names whose bytes differ from this machine's latest attachment of that name."""
    out = []
    for name, data in attachments.items():
        prev = tx.execute(
            f"SELECT hash FROM attachments WHERE name=? AND checkpoint IN ({SAME_ORIGIN}) "
            "ORDER BY checkpoint DESC LIMIT 1",
            (name, None),
        ).fetchone()
        if prev is None or prev[0] != blob_hash(data):
            out.append(name)
    return out


def insert_checkpoint(
    tx: sqlite3.Connection,
    *,
    trigger: str,
    message: str | None,
    real: list[tuple[FileChange, str | None]],
    attachments: Mapping[str, bytes],
    vouch: Callable[[int], int],
    applied: list[Applied] | None,
) -> CheckpointInfo:
    """The checkpoint row, its delta, head and the listings' stats, its attachments.
    ``applied`` (None: not wanted) gets the head rows written, for the store's head cache."""
    last = tx.execute("SELECT MAX(id) FROM checkpoints WHERE origin IS NULL").fetchone()[0]
    now = time.time()
    cur = tx.execute(
        "INSERT INTO checkpoints(parent, created, trigger, message) VALUES (?,?,?,?)",
        (last, now, trigger, message),
    )
    number = int(cur.lastrowid or 0)
    deleted = [c.path for c, d in real if d is None]
    written = [(c, d) for c, d in real if d is not None] if deleted else real
    blobs.put_many(tx, [(d, c.content) for c, d in written if d is not None and c.content is not None])
    tx.executemany(
        "INSERT INTO changes(checkpoint, path, hash, mode, size) VALUES (?,?,NULL,0,0)",
        [(number, p) for p in deleted],
    )
    tx.executemany("DELETE FROM head WHERE path=?", [(p,) for p in deleted])
    # Generators, not lists: a first checkpoint of a big tree writes a row per file.
    tx.executemany(
        "INSERT INTO changes(checkpoint, path, hash, mode, size) VALUES (?,?,?,?,?)",
        ((number, c.path, d, c.mode, c.size) for c, d in written),
    )
    tx.executemany(
        "INSERT OR REPLACE INTO head(path, hash, mode, size, mtime_ns, ino) VALUES (?,?,?,?,?,?)",
        ((c.path, d, c.mode, c.size, vouch(c.mtime_ns), c.ino) for c, d in written),
    )
    scan_dirs.refresh_stats(tx, [c.path for c, _ in real])
    if applied is not None:
        applied.extend((p, None, False) for p in deleted)
        applied.extend(
            (c.path, StatEntry(c.path, d, c.mode, c.size, vouch(c.mtime_ns), c.ino), False)
            for c, d in written
            if d is not None
        )
    for name, data in attachments.items():
        tx.execute(
            "INSERT INTO attachments(checkpoint, name, hash) VALUES (?,?,?)",
            (number, name, blobs.put(tx, data)),
        )
    return CheckpointInfo(
        id=number,
        time=now,
        trigger=trigger,
        message=message,
        parent=last,
        files=tuple(sorted(c.path for c, _ in real)),
    )


# A streamed checkpoint reads, hashes and compresses its deferred files in batches of about
# this many bytes (or files), on STREAM_THREADS threads (file reads, sha256 and zlib release
# the GIL) while this thread inserts the batch before: at most two batches are held at once.
BATCH_BYTES = 8 * 1024 * 1024
BATCH_FILES = 1024
STREAM_THREADS = 2

# What a checkpoint's reader says of a deferred file: its bytes (a FileChange with content),
# why it cannot be taken (Skipped), or None: it changed or went since it was scanned (left out,
# head keeps its old row, the next scan finds it).
Reader = Callable[[FileChange], "FileChange | Skipped | None"]
_Loaded = tuple[FileChange, str, int, str, bytes] | Skipped | None


def _batches(changes: Sequence[FileChange]) -> Iterator[list[FileChange]]:
    batch: list[FileChange] = []
    size = 0
    for c in changes:
        batch.append(c)
        size += c.size
        if size >= BATCH_BYTES or len(batch) >= BATCH_FILES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def write_streamed(
    tx: sqlite3.Connection,
    changes: Sequence[FileChange],
    current: Mapping[str, tuple[str, int]],
    read: Reader,
    progress: Progress | None = None,
) -> tuple[list[tuple[FileChange, str | None]], list[StatEntry], list[Skipped]]:
    """Deferred changes read, hashed, compressed and their new blobs inserted in bounded
    batches, inside the checkpoint's transaction (it still commits whole or not at all).
    Returns (real changes, their bytes no longer held; stat refreshes; skipped files)."""
    # Here, not at the top: a hook that finds nothing changed never streams (CLI start-up).
    from concurrent.futures import ThreadPoolExecutor

    total = sum(c.size for c in changes)
    done = 0
    real: list[tuple[FileChange, str | None]] = []
    touched: list[StatEntry] = []
    skipped: list[Skipped] = []

    def load(change: FileChange) -> _Loaded:
        got = read(change)
        if not isinstance(got, FileChange) or got.content is None:
            return got if isinstance(got, Skipped) else None
        data = got.content
        digest = blob_hash(data)
        row = current.get(change.path)
        if row is not None and row[0] == digest:
            return got, digest, len(data), "", b""  # stored already: nothing to compress
        codec, packed = blobs.compress(data)
        return got, digest, len(data), codec, packed

    def collect(batch: list[FileChange], results: list[_Loaded]) -> None:
        nonlocal done
        rows = []
        for change, loaded in zip(batch, results, strict=True):
            done += change.size
            if loaded is None:
                continue
            if isinstance(loaded, Skipped):
                skipped.append(loaded)
                continue
            got, digest, size, codec, packed = loaded
            row = current.get(got.path)
            if row is not None and row == (digest, got.mode):
                touched.append(StatEntry(got.path, digest, got.mode, size, got.mtime_ns, got.ino))
                continue
            real.append((change, digest))  # as read: the reader checked the stat (and size)
            if codec:
                rows.append((digest, size, codec, packed))
        blobs.insert_new(tx, rows)
        if progress is not None:
            progress("write", done, total)

    if progress is not None:
        progress("write", 0, total)

    def load_part(part: list[FileChange]) -> list[_Loaded]:
        return [load(c) for c in part]

    def submit(batch: list[FileChange]) -> list[Future[list[_Loaded]]]:
        # A few tasks per batch, not one per file: a task costs more than a small file.
        step = max(1, -(-len(batch) // (STREAM_THREADS * 2)))
        return [pool.submit(load_part, batch[i : i + step]) for i in range(0, len(batch), step)]

    def results(futures: list[Future[list[_Loaded]]]) -> list[_Loaded]:
        return [r for f in futures for r in f.result()]

    with ThreadPoolExecutor(STREAM_THREADS, thread_name_prefix="tether-blobs") as pool:
        pending: tuple[list[FileChange], list[Future[list[_Loaded]]]] | None = None
        try:
            for batch in _batches(changes):
                futures = submit(batch)
                if pending is not None:
                    collect(pending[0], results(pending[1]))
                pending = (batch, futures)
            if pending is not None:
                collect(pending[0], results(pending[1]))
                pending = None
        finally:
            if pending is not None:  # stopped (cancelled, an error): drop what is queued
                for f in pending[1]:
                    f.cancel()
    return real, touched, skipped


def replace_skipped(tx: sqlite3.Connection, new: list[Skipped], scope: list[str] | None) -> None:
    if scope is None:
        old = {r[0]: (r[1], r[2]) for r in tx.execute("SELECT path, reason, size FROM skipped")}
        if old == {s.path: (s.reason, s.size) for s in new}:
            return  # the usual case: avoid turning a no-op scan into a write
        tx.execute("DELETE FROM skipped")
    else:
        tx.executemany("DELETE FROM skipped WHERE path=?", [(p,) for p in scope])
    tx.executemany(
        "INSERT OR REPLACE INTO skipped(path, reason, size) VALUES (?,?,?)",
        [(s.path, s.reason, s.size) for s in new],
    )


def insert_imported(
    tx: sqlite3.Connection,
    origin: str,
    items: Sequence[ImportedCheckpoint],
    prepared: Sequence[Sequence[tuple[str, str | None, bytes | None, int]]],
    messages: Sequence[str | None],
) -> list[CheckpointInfo]:
    """``origin``'s checkpoints, each delta against the previous one of that origin."""
    out: list[CheckpointInfo] = []
    last = tx.execute("SELECT MAX(id) FROM checkpoints WHERE origin IS ?", (origin,)).fetchone()[0]
    for it, changes, message in zip(items, prepared, messages, strict=True):
        cur = tx.execute(
            "INSERT INTO checkpoints(parent, created, trigger, message, origin) VALUES (?,?,?,?,?)",
            (last, it.created, it.trigger, message, origin),
        )
        number = int(cur.lastrowid or 0)
        blobs.put_many(tx, [(d, data) for _, d, data, _ in changes if d is not None and data is not None])
        tx.executemany(
            "INSERT INTO changes(checkpoint, path, hash, mode, size) VALUES (?,?,?,?,?)",
            [
                (number, p, d, m if d is not None else 0, len(data) if data is not None else 0)
                for p, d, data, m in changes
            ],
        )
        for name, data in it.attachments.items():
            tx.execute(
                "INSERT INTO attachments(checkpoint, name, hash) VALUES (?,?,?)",
                (number, name, blobs.put(tx, data)),
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
