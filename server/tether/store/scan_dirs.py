"""The scanner's directory listings as kept in the store, with each directory's stat cache.

A new process (a session start) would otherwise load the stat cache of every tracked file
(one row and one tuple per file) before it could walk. Instead each directory the last walk
listed has one row: the names to stat, its subdirectories, and the head's stat cache for those
names packed in one bytes value. A walk then stats a directory's files and compares the packed
result with that value at C speed; only a directory that differs needs head rows at all.

The packed stats are derived from ``head`` and must never disagree with it: every transaction
that changes ``head`` refreshes the rows of the directories it touched
(:func:`refresh_stats`), and a row is only ever written with stats computed from ``head`` in
the same transaction (:func:`write_rows`). A row's names and subdirectories are checked
against the directory's own (mtime, ctime, inode) by the scanner before use.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import stat as stat_mod
import struct
from collections.abc import Iterable, Sequence

from tether.record import NamedTuple
from tether.store.sql import select_in

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = logging.getLogger(__name__)

# Per listed file: mtime_ns, size, inode, st_mode (file type bits included), as the head
# vouches for them. A name head does not track gets UNTRACKED, which no stat can equal
# (size -1): its directory is always looked at file by file.
STAT = struct.Struct("<4q")
UNTRACKED = (-1, -1, -1, -1)
_UNTRACKED_BYTES = STAT.pack(*UNTRACKED)
# Above this many names in one write, one read of the whole head is cheaper than a query per directory.
_WHOLE_HEAD_FROM = 2000

SCHEMA = """
CREATE TABLE scan_dirs (          -- the last walk's listings (see scan_cache.py)
    dir TEXT PRIMARY KEY,         -- '' for the workspace root
    mtime_ns INTEGER NOT NULL,    -- the directory's own stat when it was listed
    ctime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    gitignore INTEGER NOT NULL,   -- whether it had a .gitignore
    files BLOB NOT NULL,          -- names to stat, NUL-separated UTF-8
    subdirs BLOB NOT NULL,        -- subdirectory names to walk, NUL-separated UTF-8
    skips TEXT NOT NULL,          -- JSON [[path, reason, size], ...]
    stats BLOB NOT NULL           -- per name: STAT of head's row, or UNTRACKED
) WITHOUT ROWID
"""


class DirRow(NamedTuple):
    """One directory's listing, as the scanner exports and imports it (a NamedTuple: a large
    workspace reads thousands at once)."""

    dir: str
    key: tuple[int, int, int]  # (mtime_ns, ctime_ns, ino)
    gitignore: bool
    files: list[str]
    subdirs: list[str]  # names, not paths
    skips: list[tuple[str, str, int]]
    stats: bytes = b""  # filled by the store on read


class DirsExport(NamedTuple):
    """What changed in the scanner's listings since the last export."""

    meta: bytes  # the rules the listings were filtered with (config and .gitignore stats)
    rows: list[DirRow]
    removed: list[str]
    everything: bool  # rows holds every listing: replace the stored ones wholesale


def _join(names: Sequence[str]) -> bytes:
    return "\0".join(names).encode("utf-8")


def _split(blob: bytes) -> list[str]:
    return blob.decode("utf-8").split("\0") if blob else []


def dir_of(path: str) -> str:
    return path.rpartition("/")[0]


def _pack(row: Sequence[Any] | None) -> bytes:
    """``row``: (mode, size, mtime_ns, ino) from head."""
    if row is None:
        return _UNTRACKED_BYTES
    mode, size, mtime_ns, ino = row
    return STAT.pack(mtime_ns, size, ino, stat_mod.S_IFREG | mode)


def _head_of(db: sqlite3.Connection, paths: Sequence[str]) -> dict[str, tuple[int, int, int, int]]:
    sql = "SELECT path, mode, size, mtime_ns, ino FROM head WHERE path IN ({keys})"
    return {
        path: (mode, size, mtime_ns, ino) for path, mode, size, mtime_ns, ino in select_in(db, sql, paths)
    }


def read_rows(db: sqlite3.Connection) -> list[DirRow] | None:
    """Every stored listing; None when one is damaged (then none is used, and the next export
    replaces them all)."""
    try:
        return _read_rows(db)
    except (UnicodeDecodeError, ValueError, TypeError) as exc:
        log.warning("stored directory listings are damaged (%s): walking without them", exc)
        return None


def listed_files(db: sqlite3.Connection) -> int:
    """How many files the stored listings hold (what a walk's stored-stats check will stat),
    without reading them: their packed stats' lengths, one row per directory."""
    row = db.execute("SELECT coalesce(sum(length(stats)), 0) FROM scan_dirs").fetchone()
    return int(row[0]) // STAT.size


def _read_rows(db: sqlite3.Connection) -> list[DirRow]:
    # _split() inline: a large workspace has thousands of rows (its read is on a new process's path)
    return [
        DirRow(
            d,
            (m, c, i),
            bool(g),
            files.decode("utf-8").split("\0") if files else [],
            subdirs.decode("utf-8").split("\0") if subdirs else [],
            [] if skips == "[]" else [(str(p), str(r), int(z)) for p, r, z in json.loads(skips)],
            stats,
        )
        for d, m, c, i, g, files, subdirs, skips, stats in db.execute(
            "SELECT dir, mtime_ns, ctime_ns, ino, gitignore, files, subdirs, skips, stats FROM scan_dirs"
        )
    ]


def write_rows(
    db: sqlite3.Connection, rows: Sequence[DirRow], removed: Iterable[str], everything: bool
) -> None:
    """Store listings; call inside the transaction that reads ``head`` for their stats."""
    if everything:
        db.execute("DELETE FROM scan_dirs")
    else:
        db.executemany("DELETE FROM scan_dirs WHERE dir=?", [(d,) for d in removed])
    paths = [(r.dir + "/" if r.dir else "") + n for r in rows for n in r.files]
    if len(paths) >= _WHOLE_HEAD_FROM:
        head = {
            p: (mode, size, mt, ino)
            for p, mode, size, mt, ino in db.execute("SELECT path, mode, size, mtime_ns, ino FROM head")
        }
    else:
        head = _head_of(db, paths)
    out = []
    for r in rows:
        prefix = r.dir + "/" if r.dir else ""
        stats = b"".join(_pack(head.get(prefix + n)) for n in r.files)
        out.append(
            (r.dir, *r.key, int(r.gitignore), _join(r.files), _join(r.subdirs), json.dumps(r.skips), stats)
        )
    db.executemany(
        "INSERT OR REPLACE INTO scan_dirs"
        "(dir, mtime_ns, ctime_ns, ino, gitignore, files, subdirs, skips, stats) VALUES (?,?,?,?,?,?,?,?,?)",
        out,
    )


def refresh_stats(db: sqlite3.Connection, paths: Iterable[str]) -> None:
    """Bring the packed stats of the directories holding ``paths`` in step with ``head``.

    Call inside the transaction that changed those head rows, after the change. Costs
    O(changed paths) queries plus one read and write of each touched directory's row.
    """
    by_dir: dict[str, list[str]] = {}
    for p in paths:
        by_dir.setdefault(dir_of(p), []).append(p)
    if not by_dir or db.execute("SELECT 1 FROM scan_dirs LIMIT 1").fetchone() is None:
        return
    for d, changed in by_dir.items():
        row = db.execute("SELECT files, stats FROM scan_dirs WHERE dir=?", (d,)).fetchone()
        if row is None:
            continue
        try:
            names = _split(row[0])
            stats = bytearray(row[1])
        except (UnicodeDecodeError, TypeError):
            names, stats = [], bytearray(b"?")
        if len(stats) != STAT.size * len(names):
            # Damaged: dropped (listed again by the next walk), never a reason to lose a checkpoint.
            db.execute("DELETE FROM scan_dirs WHERE dir=?", (d,))
            continue
        index = {n: i for i, n in enumerate(names)}
        head = _head_of(db, changed)
        prefix = d + "/" if d else ""
        for p in changed:
            name = p[len(prefix) :]
            i = index.get(name, -1)
            if i >= 0:
                stats[i * STAT.size : (i + 1) * STAT.size] = _pack(head.get(p))
        db.execute("UPDATE scan_dirs SET stats=? WHERE dir=?", (bytes(stats), d))


def check_consistent(db: sqlite3.Connection) -> list[str]:
    """Directories whose packed stats disagree with ``head``: the invariant the tests check."""
    bad = []
    for row in _read_rows(db):
        prefix = row.dir + "/" if row.dir else ""
        head = _head_of(db, [prefix + n for n in row.files])
        want = b"".join(_pack(head.get(prefix + n)) for n in row.files)
        if want != row.stats:
            bad.append(row.dir)
    return bad
