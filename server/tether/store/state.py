"""Live state: named values that are not part of any checkpoint (the agent's task state, the
editors' unsaved-buffer journals, the latest tmux snapshot, the scan's rules), compressed like
blobs and replaced in place."""

from __future__ import annotations

import sqlite3
import time

from tether.store import blobs


def read(db: sqlite3.Connection, name: str) -> bytes | None:
    # fetchall: a statement left unfinished would keep its read snapshot (and the connection
    # would not see later commits of other processes).
    rows = db.execute("SELECT codec, data FROM state WHERE name=?", (name,)).fetchall()
    return blobs.decompress(rows[0][0], rows[0][1]) if rows else None


def write(tx: sqlite3.Connection, name: str, data: bytes) -> None:
    codec, packed = blobs.compress(data)
    tx.execute(
        "INSERT OR REPLACE INTO state(name, updated, codec, data) VALUES (?,?,?,?)",
        (name, time.time(), codec, packed),
    )
