"""The file watchers of long-lived processes (the language server's, the MCP server's) as the
store records them, and the paths each one saw change: git's fsmonitor token and dirty set.

A watcher's row says who runs it (pid, that process's start time, the boot: a pid reused by
another process is not the watcher) and what its dirty set is worth: ``trusted`` only while
the watcher has run without a gap since a whole walk whose result is in head. The rules that
make it so are :mod:`tether.scan.feed`'s (the owner) and :mod:`tether.scan.dirty`'s (readers);
this module only reads and writes rows. Writers pass an open transaction (``Store.write``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping

from tether.record import dataclass
from tether.store.sql import select_in

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from tether.store.db import Store

BASELINE = "baseline"  # its dirty set is not enough: readers walk (until a whole walk)
TRUSTED = "trusted"  # every path that may differ from head is in its dirty set
OFF = "off"  # it missed a change (or cannot be synced): readers always walk
ACKED_KEEP = 32  # sync marks remembered per watcher


@dataclass(frozen=True)
class WatcherRow:
    id: str
    pid: int
    started: int
    boot: str
    state: str
    seq: int
    meta: dict[str, Any]
    acked: tuple[str, ...]


def register(tx: sqlite3.Connection, row: WatcherRow) -> None:
    tx.execute(
        "INSERT OR REPLACE INTO watchers(id, pid, started, boot, state, seq, meta, acked, updated) "
        "VALUES (?,?,?,?,?,?,?,?,?)",
        (row.id, row.pid, row.started, row.boot, row.state, row.seq, _json(row.meta), "", time.time()),
    )


def unregister(tx: sqlite3.Connection, watcher: str) -> None:
    tx.execute("DELETE FROM dirty WHERE watcher=?", (watcher,))
    tx.execute("DELETE FROM watchers WHERE id=?", (watcher,))


def set_state(
    tx: sqlite3.Connection, watcher: str, state: str, meta: Mapping[str, Any] | None = None
) -> None:
    if meta is None:
        tx.execute("UPDATE watchers SET state=?, updated=? WHERE id=?", (state, time.time(), watcher))
    else:
        tx.execute(
            "UPDATE watchers SET state=?, meta=?, updated=? WHERE id=?",
            (state, _json(meta), time.time(), watcher),
        )
    if state == OFF:
        tx.execute("DELETE FROM dirty WHERE watcher=?", (watcher,))


def add(
    tx: sqlite3.Connection, watcher: str, paths: Iterable[str], seq: int, marks: Iterable[str] = ()
) -> None:
    """Paths seen changing in batch ``seq`` (and the sync marks answered with it)."""
    tx.executemany(
        "INSERT OR REPLACE INTO dirty(watcher, path, seq) VALUES (?,?,?)", [(watcher, p, seq) for p in paths]
    )
    marks = list(marks)
    if marks:
        row = tx.execute("SELECT acked FROM watchers WHERE id=?", (watcher,)).fetchone()
        acked = [*(row[0].split() if row else []), *marks][-ACKED_KEEP:]
        tx.execute(
            "UPDATE watchers SET seq=?, acked=?, updated=? WHERE id=?",
            (seq, " ".join(acked), time.time(), watcher),
        )
    else:
        tx.execute("UPDATE watchers SET seq=?, updated=? WHERE id=?", (seq, time.time(), watcher))


def dirty(db: sqlite3.Connection | Store, watcher: str) -> dict[str, int]:
    """The watcher's dirty set: path → the batch of its last event."""
    rows = _query(db, "SELECT path, seq FROM dirty WHERE watcher=?", (watcher,))
    return {p: s for p, s in rows}


def remove(tx: sqlite3.Connection, watcher: str, rows: Mapping[str, int]) -> None:
    """Drop the paths whose content is in head now, unless seen changing again since (a batch
    after the one they were read in)."""
    tx.executemany(
        "DELETE FROM dirty WHERE watcher=? AND path=? AND seq<=?", [(watcher, p, s) for p, s in rows.items()]
    )


def remove_upto(tx: sqlite3.Connection, watcher: str, mark: int, keep: Iterable[str] = ()) -> None:
    """Drop every path last seen changing in batch ``mark`` or before, except ``keep``."""
    kept = set(keep)
    gone = [p for p, s in tx.execute("SELECT path, seq FROM dirty WHERE watcher=?", (watcher,)) if s <= mark]
    tx.executemany(
        "DELETE FROM dirty WHERE watcher=? AND path=?", [(watcher, p) for p in gone if p not in kept]
    )


def rows(db: sqlite3.Connection | Store, ids: Iterable[str] | None = None) -> list[WatcherRow]:
    sql = "SELECT id, pid, started, boot, state, seq, meta, acked FROM watchers"
    if ids is None:
        found = _query(db, sql, ())
    else:
        wanted = list(ids)
        if isinstance(db, sqlite3.Connection):
            found = list(select_in(db, sql + " WHERE id IN ({keys})", wanted))
        else:
            found = [r for r in _query(db, sql, ()) if r[0] in wanted]
    out = []
    for wid, pid, started, boot, state, seq, meta, acked in found:
        try:
            doc = json.loads(meta)
        except ValueError:
            doc = {}
        out.append(
            WatcherRow(
                wid,
                pid,
                started,
                boot,
                state,
                seq,
                doc if isinstance(doc, dict) else {},
                tuple(acked.split()),
            )
        )
    return out


def _query(db: sqlite3.Connection | Store, sql: str, params: tuple[Any, ...]) -> list[Any]:
    if isinstance(db, sqlite3.Connection):
        return db.execute(sql, params).fetchall()
    return db.query(sql, params)


def _json(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))
