"""Content-addressed blobs: sha256 of the raw bytes, zlib-compressed when that helps, stored once
and shared by every checkpoint (and attachment, and live state value) that holds them."""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterable
from operator import itemgetter
from pathlib import Path

from tether.errors import CorruptStoreError
from tether.model import blob_hash
from tether.store.sql import select_in

# Compressing tiny or incompressible data costs more than it saves.
COMPRESS_MIN = 64


def compress(data: bytes) -> tuple[str, bytes]:
    if len(data) >= COMPRESS_MIN:
        packed = zlib.compress(data, 1)
        if len(packed) < len(data) * 0.9:
            return "zlib", packed
    return "raw", data


def decompress(codec: str, data: bytes) -> bytes:
    if codec == "zlib":
        return zlib.decompress(data)
    if codec == "raw":
        return bytes(data)
    raise CorruptStoreError(f"unknown blob codec {codec!r}")


def put(db: sqlite3.Connection, data: bytes, digest: str | None = None) -> str:
    """Store ``data`` unless it is there already; its hash."""
    digest = digest or blob_hash(data)
    if db.execute("SELECT 1 FROM blobs WHERE hash=?", (digest,)).fetchone() is None:
        codec, packed = compress(data)
        db.execute(
            "INSERT INTO blobs(hash, size, codec, data) VALUES (?,?,?,?)", (digest, len(data), codec, packed)
        )
    return digest


def put_many(db: sqlite3.Connection, items: Iterable[tuple[str, bytes]]) -> None:
    """Store each (hash, data) not stored yet: one query for which are."""
    unique = dict(items)
    have = {r[0] for r in select_in(db, "SELECT hash FROM blobs WHERE hash IN ({keys})", list(unique))}
    rows = []
    for digest, data in unique.items():
        if digest not in have:
            codec, packed = compress(data)
            rows.append((digest, len(data), codec, packed))
    rows.sort(key=itemgetter(0))  # in key order (see insert_new)
    db.executemany("INSERT INTO blobs(hash, size, codec, data) VALUES (?,?,?,?)", rows)


def insert_new(db: sqlite3.Connection, rows: list[tuple[str, int, str, bytes]]) -> None:
    """Insert (hash, size, codec, packed) rows of blobs compressed already, those not stored yet."""
    if not rows:
        return
    have = {
        r[0] for r in select_in(db, "SELECT hash FROM blobs WHERE hash IN ({keys})", [r[0] for r in rows])
    }
    seen: set[str] = set()
    new = []
    for row in rows:
        if row[0] not in have and row[0] not in seen:
            seen.add(row[0])
            new.append(row)
    # In key order: the table is a b-tree by hash, and inserts that follow one another through
    # it touch fewer pages (measured: 40% less time for a first checkpoint's blobs).
    new.sort(key=itemgetter(0))
    db.executemany("INSERT INTO blobs(hash, size, codec, data) VALUES (?,?,?,?)", new)


def read(db: sqlite3.Connection, digest: str, db_path: Path) -> bytes:
    """The blob's bytes, checked against their hash."""
    rows = db.execute("SELECT codec, data, size FROM blobs WHERE hash=?", (digest,)).fetchall()
    if not rows:
        raise CorruptStoreError(f"blob {digest[:12]} is missing from {db_path}")
    try:
        data = decompress(rows[0][0], rows[0][1])
    except zlib.error as exc:
        raise CorruptStoreError(f"blob {digest[:12]} in {db_path} is damaged: {exc}") from exc
    if blob_hash(data) != digest:
        raise CorruptStoreError(f"blob {digest[:12]} in {db_path} fails its checksum")
    return data
