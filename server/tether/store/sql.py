"""SQLite plumbing every store module shares: errors said as Tether's, and the one chunked
``IN (…)`` query."""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from tether.errors import StoreError, StoreFullError
from tether.store import integrity

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Bound on host parameters per statement (SQLite's default limit is 32766 since 3.32).
CHUNK = 500
# What reading a damaged store raises besides sqlite3.Error: text that does not decode (also in
# sqlite3's own error messages), compressed data that does not inflate.
DAMAGE = (sqlite3.Error, UnicodeDecodeError, zlib.error)


def select_in(
    db: sqlite3.Connection, sql: str, keys: Sequence[Any], params: Sequence[Any] = ()
) -> Iterator[Any]:
    """The rows of ``sql`` for every key in ``keys``: ``sql`` holds one ``{keys}`` where the
    ``IN (…)`` list goes, after ``params``; one statement per :data:`CHUNK` keys."""
    for i in range(0, len(keys), CHUNK):
        chunk = keys[i : i + CHUNK]
        yield from db.execute(sql.format(keys=",".join("?" * len(chunk))), [*params, *chunk])


def translate(exc: sqlite3.Error, db_path: Path) -> StoreError:
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


def store_error(exc: BaseException, db_path: Path) -> StoreError:
    """One of :data:`DAMAGE` as Tether's error."""
    if isinstance(exc, sqlite3.Error):
        return translate(exc, db_path)
    if isinstance(exc, UnicodeDecodeError):
        return integrity.corrupt_error(db_path, "a text value is not valid UTF-8")
    return integrity.corrupt_error(db_path, f"compressed data is damaged: {exc}")
