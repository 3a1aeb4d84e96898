"""Live state: named values that are not part of any checkpoint (the agent's task state, the
editors' unsaved-buffer journals, the latest tmux snapshot, the scan's rules), compressed like
blobs and replaced in place."""

from __future__ import annotations

import sqlite3
import time

from tether.store import blobs


def read(db: sqlite3.Connection, name: str) -> bytes | None:
    row = db.execute("SELECT codec, data FROM state WHERE name=?", (name,)).fetchone()
    return blobs.decompress(row[0], row[1]) if row else None


def write(tx: sqlite3.Connection, name: str, data: bytes) -> None:
    codec, packed = blobs.compress(data)
    tx.execute(
        "INSERT OR REPLACE INTO state(name, updated, codec, data) VALUES (?,?,?,?)",
        (name, time.time(), codec, packed),
    )
