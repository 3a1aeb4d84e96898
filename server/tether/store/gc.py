"""Retention (``tether gc``): drop old checkpoints by count, age or size, folding their deltas
into the oldest kept one so it stays complete, then the blobs nothing references any more."""

from __future__ import annotations

import logging
import sqlite3
import time

from tether.model import GcReport

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from tether.store.db import Store

log = logging.getLogger(__name__)

# This machine's checkpoints: imported ones are left alone (their chain is the other
# machine's; pull again).
_LOCAL = "checkpoint IN (SELECT id FROM checkpoints WHERE origin IS NULL)"


def collect(
    store: Store,
    keep_last: int | None = None,
    max_age_days: float | None = None,
    max_bytes: int | None = None,
) -> GcReport:
    """The newest checkpoint is always kept, so the workspace stays restorable."""
    report = GcReport(bytes_before=store.size_bytes())
    ids = _local_ids(store)
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
        newer = store.query("SELECT MIN(id) FROM checkpoints WHERE created>=? AND origin IS NULL", (limit,))[
            0
        ][0]
        cut = max(cut, newer if newer is not None else ids[-1])
    if cut:
        _drop_before(store, min(cut, ids[-1]), report)
    if max_bytes is not None:
        # Drop oldest checkpoints one at a time until the live data fits.
        while _live_bytes(store) > max_bytes:
            remaining = _local_ids(store)
            if len(remaining) <= 1:
                break
            _drop_before(store, remaining[1], report)
    try:
        store.compact()
    except sqlite3.Error as exc:
        log.warning("vacuum after gc failed: %s", exc)
    report.bytes_after = store.size_bytes()
    return report


def _local_ids(store: Store) -> list[int]:
    return [r[0] for r in store.query("SELECT id FROM checkpoints WHERE origin IS NULL ORDER BY id")]


def _live_bytes(store: Store) -> int:
    return int(store.query("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM blobs")[0][0])


def _drop_before(store: Store, keep_from: int, report: GcReport) -> None:
    with store.write() as db:
        dropped = [
            r[0] for r in db.execute("SELECT id FROM checkpoints WHERE id<? AND origin IS NULL", (keep_from,))
        ]
        if not dropped:
            return
        # Carry each path's last state before the cut into keep_from, unless keep_from changes it.
        db.execute(
            f"""
            INSERT OR IGNORE INTO changes(checkpoint, path, hash, mode, size)
            SELECT ?, c.path, c.hash, c.mode, c.size FROM changes c
            JOIN (SELECT path, MAX(checkpoint) AS cp FROM changes WHERE checkpoint<? AND {_LOCAL}
                  GROUP BY path) m
              ON c.path=m.path AND c.checkpoint=m.cp
            WHERE c.hash IS NOT NULL
            """,
            (keep_from, keep_from),
        )
        names = [
            r[0]
            for r in db.execute(
                f"SELECT DISTINCT name FROM attachments WHERE checkpoint<? AND {_LOCAL}", (keep_from,)
            )
        ]
        for name in names:
            db.execute(
                f"""
                INSERT OR IGNORE INTO attachments(checkpoint, name, hash)
                SELECT ?, name, hash FROM attachments WHERE name=? AND checkpoint<? AND {_LOCAL}
                ORDER BY checkpoint DESC LIMIT 1
                """,
                (keep_from, name, keep_from),
            )
        db.execute(f"DELETE FROM changes WHERE checkpoint<? AND {_LOCAL}", (keep_from,))
        db.execute(f"DELETE FROM attachments WHERE checkpoint<? AND {_LOCAL}", (keep_from,))
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
