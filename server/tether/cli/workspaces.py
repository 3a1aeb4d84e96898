"""`tether list`: every workspace the store knows, newest activity first."""

from __future__ import annotations

import argparse
import sqlite3
from typing import Any

from tether.cli.output import emit
from tether.humanize import ago, plural, size
from tether.model import iso_time
from tether.paths import state_dir
from tether.store.db import DB_NAME


def register(sub: Any, only: str | None = None) -> None:  # one command: nothing to leave out
    p = sub.add_parser("list", help="list workspaces with checkpoints")
    p.set_defaults(handler=cmd_list)


def _describe(db_path: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"store": str(db_path), "bytes": db_path.stat().st_size}
    try:
        # Read-only: listing must never create, migrate or lock anyone's store.
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=2)
        try:
            root = conn.execute("SELECT value FROM meta WHERE key='root'").fetchone()
            count, last = conn.execute("SELECT COUNT(*), MAX(created) FROM checkpoints").fetchone()
        finally:
            conn.close()
        info.update(workspace=root[0] if root else None, checkpoints=count, lastTime=last)
    except sqlite3.Error as exc:
        info.update(workspace=None, checkpoints=None, lastTime=None, error=str(exc))
    return info


def cmd_list(args: argparse.Namespace) -> int:
    base = state_dir(args.state_dir) / "workspaces"
    rows = (
        [_describe(p / DB_NAME) for p in sorted(base.iterdir()) if (p / DB_NAME).is_file()]
        if base.is_dir()
        else []
    )
    rows.sort(key=lambda r: r.get("lastTime") or 0, reverse=True)
    lines = []
    for r in rows:
        if r.get("error"):
            lines.append(f"{r['store']}: unreadable ({r['error']})")
            continue
        when = ago(r["lastTime"]) if r["lastTime"] else "never"
        lines.append(
            f"{r['workspace']}  {plural(r['checkpoints'], 'checkpoint')}, last {when}, {size(r['bytes'])}"
        )
    for r in rows:
        if r.get("lastTime"):
            r["lastTime"] = iso_time(r["lastTime"])
    emit(args, {"workspaces": rows}, "\n".join(lines) if lines else "no workspaces yet")
    return 0
