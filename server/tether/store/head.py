"""Head: the tracked files as of the last checkpoint and the stat that vouches for each, read as
a whole walk needs it (every row, cached across calls) or as a told-paths check needs it (a few).
"""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import itemgetter

from tether.model import HeadRow, StatEntry
from tether.store.sql import select_in

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from tether.store.db import Store

# Stat-cache entries younger than this are not trusted (see stat_voucher).
RACY_NS = 2_000_000_000

_COLUMNS = "path, hash, mode, size, mtime_ns, ino"
# One applied head change: (path, new entry or None for a deletion, whether it only refreshes the stat).
Applied = tuple[str, StatEntry | None, bool]


def stat_voucher(now_ns: int) -> Callable[[int], int]:
    """Which mtimes may vouch for content in the stat cache.

    File times are coarse (a kernel tick on ext4, 1-2 s elsewhere): a file rewritten within
    the same tick after it was read keeps its mtime and, with the same size, would look
    unchanged forever ("racy git"). An mtime that recent is stored as 0, so the next scan
    reads the file once more and records its stat when it is old enough to be trusted.
    """

    def vouch(mtime_ns: int) -> int:
        return 0 if now_ns - mtime_ns < RACY_NS else mtime_ns

    return vouch


def read_rows(db: sqlite3.Connection, paths: Sequence[str], under: Iterable[str] = ()) -> list[Any]:
    """Head rows of ``paths`` and of every tracked file below the directories ``under``."""
    rows = list(select_in(db, f"SELECT {_COLUMNS} FROM head WHERE path IN ({{keys}})", paths))
    for u in under:
        prefix = u.rstrip("/") + "/"
        # Range scan on the primary key: paths starting with prefix.
        rows.extend(
            db.execute(
                f"SELECT {_COLUMNS} FROM head WHERE path >= ? AND path < ?", (prefix, prefix[:-1] + "0")
            )
        )
    return rows


class HeadCache:
    """Every head row, kept by a long-lived store (the LSP server's) across calls: valid while
    ``PRAGMA data_version`` says no other connection has committed. This store's own commits do
    not change data_version: they are applied to the cache as they are made."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._rows: dict[str, HeadRow] | None = None
        self._version = -1

    def _data_version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchall()[0][0])  # finished: no snapshot kept

    def fresh(self) -> dict[str, HeadRow] | None:
        """The cached rows when no other connection committed since they were read."""
        if self._rows is not None and self._version == self._data_version():
            return self._rows
        return None

    def full(self) -> dict[str, HeadRow]:
        rows = self.fresh()
        if rows is None:
            version = self._data_version()
            # One tuple per tracked file and nothing else: the cyclic GC has nothing to find in
            # them, but would be run over and over (across every live object) while they are
            # allocated, which costs more than the load itself at 50k files.
            paused = gc.isenabled()
            gc.disable()
            try:
                found = self._db.execute(f"SELECT {_COLUMNS} FROM head").fetchall()
                rows = dict(zip(map(itemgetter(0), found), found, strict=True))
            finally:
                if paused:
                    gc.enable()
            self._rows, self._version = rows, version
        return rows

    def apply(self, applied: Iterable[Applied] | None, was_fresh: bool) -> None:
        """Keep the cache in step with this store's own commit (``was_fresh``: the cache was
        fresh when the transaction began; if not, or if another writer committed around it, it
        is dropped and read again next time; ``applied`` None: too many rows changed to keep a
        second copy of them while they are written, dropped too)."""
        if self._rows is None:
            return
        if applied is None or not was_fresh or self.fresh() is None:
            self._rows = None
            return
        cache = self._rows
        for path, entry, refresh in applied:
            if entry is None:
                cache.pop(path, None)
                continue
            old = cache.get(path)
            if refresh and (old is None or old[1] != entry.hash):
                continue  # mirrors the SQL: a stat refresh applies only where the hash matches
            cache[path] = entry


class LazyHead(Mapping[str, HeadRow]):
    """Head rows read when asked for: for a walk that expects to need few of them (a new
    process whose stored directory stats vouch for most directories). Iterating reads them all.

    Use inside :meth:`Store.snapshot`, so the rows read one by one and the count agree.
    """

    def __init__(self, store: Store, preload: Sequence[str] = (), count: int | None = None) -> None:
        """``count``: the number of head rows, when the caller just read it (same snapshot)."""
        self._store = store
        self._rows: dict[str, HeadRow | None] = {}
        self._all: Mapping[str, HeadRow] | None = None
        self._len: int | None = count
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
