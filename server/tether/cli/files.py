"""File history commands: checkpoint, log, diff, restore, status, gc."""

from __future__ import annotations

import argparse
import time
from typing import Any

from tether import restore as restore_mod
from tether.checkpoints import Checkpointer
from tether.cli.common import open_store, parse_checkpoint
from tether.cli.output import emit
from tether.errors import BadParamsError
from tether.humanize import ago, plural, size
from tether.protocol import TRIGGER_MANUAL
from tether.store import CheckpointInfo


def register(sub: Any) -> None:
    p = sub.add_parser("checkpoint", help="record the workspace now")
    p.add_argument("-m", "--message", default=None)
    p.add_argument("--full", action="store_true", help="walk the whole workspace (default: stat-cache scan)")
    p.set_defaults(handler=cmd_checkpoint)

    p = sub.add_parser("log", help="list checkpoints, newest first")
    p.add_argument("-n", "--limit", type=int, default=20)
    p.set_defaults(handler=cmd_log)

    p = sub.add_parser("diff", help="diff checkpoint A against B (default: the live workspace)")
    p.add_argument("a", type=parse_checkpoint)
    p.add_argument("b", type=parse_checkpoint, nargs="?", default=None)
    p.add_argument("paths", nargs="*", metavar="-- PATH")
    p.add_argument("--stat", action="store_true", help="only list changed paths")
    p.set_defaults(handler=cmd_diff)

    p = sub.add_parser("restore", help="restore files (or the whole workspace) to checkpoint N")
    p.add_argument("n", type=parse_checkpoint)
    p.add_argument("paths", nargs="*")
    p.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    p.set_defaults(handler=cmd_restore)

    p = sub.add_parser("status", help="last checkpoint, pending changes, skipped files")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("gc", help="drop old checkpoints by count, age or size")
    p.add_argument("--keep", type=int, default=None, help="keep the newest N checkpoints")
    p.add_argument("--max-age-days", type=float, default=None)
    p.add_argument("--max-size", default=None, help="e.g. 500M, 2G")
    p.set_defaults(handler=cmd_gc)


def _line(info: CheckpointInfo) -> str:
    msg = f"  {info.message}" if info.message else ""
    files = plural(len(info.files), "file")
    return (
        f"{info.id:>5}  {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(info.time))}  "
        f"{ago(info.time):>9}  {info.trigger:<8} {files:>9}{msg}"
    )


def cmd_checkpoint(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        outcome = Checkpointer(store).checkpoint(TRIGGER_MANUAL, args.message, full=True, allow_empty=True)
        info = outcome.info
        assert info is not None  # allow_empty
        skipped = [{"path": s.path, "reason": s.reason} for s in outcome.scan.skipped]
        emit(
            args,
            {**info.to_wire(), "skipped": skipped},
            f"checkpoint {info.id}: {plural(len(info.files), 'file')} changed"
            + (f", {len(skipped)} skipped (see `tether status`)" if skipped else ""),
        )
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        items = store.list_checkpoints(limit=args.limit)
        emit(
            args,
            {"checkpoints": [i.to_wire() for i in items]},
            "\n".join(_line(i) for i in items) if items else "no checkpoints yet",
        )
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        diffs = restore_mod.diff(store, args.a, args.b, args.paths or None)
        if args.stat:
            text = "\n".join(f"{d.status[0].upper()} {d.path}" for d in diffs)
        else:
            text = "".join(
                d.diff if d.diff is not None else f"Binary file {d.path} {d.status}\n" for d in diffs
            )
        emit(args, {"from": args.a, "to": args.b, "files": [d.to_wire() for d in diffs]}, text)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        result = restore_mod.restore(
            store, Checkpointer(store), args.n, args.paths or None, dry_run=args.dry_run
        )
        if args.dry_run:
            text = (
                "".join(d.diff or f"Binary file {d.path} {d.status}\n" for d in result.files)
                or f"nothing to restore: the workspace matches checkpoint {args.n}"
            )
        elif result.files:
            text = (
                f"restored {plural(len(result.files), 'file')} from checkpoint {args.n}; "
                f"undo with `tether restore {result.undo_checkpoint}`"
            )
        else:
            text = f"nothing to restore: the workspace matches checkpoint {args.n}"
        emit(args, result.to_wire(), text)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        latest = store.latest()
        scan = Checkpointer(store).scanner.full_scan(store.head())
        skipped = store.skipped()
        data = {
            "workspace": str(store.root),
            "store": str(store.db_path),
            "lastCheckpoint": latest.to_wire() if latest else None,
            "changedSinceCheckpoint": scan.changed_paths,
            "skipped": [{"path": s.path, "reason": s.reason, "size": s.size} for s in skipped],
        }
        lines = [f"workspace  {store.root}"]
        if latest:
            lines.append(
                f"last       checkpoint {latest.id}, {ago(latest.time)} ({latest.trigger})"
                + (f": {latest.message}" if latest.message else "")
            )
        else:
            lines.append("last       no checkpoint yet (run `tether checkpoint`)")
        if scan.changes:
            lines.append(
                f"changed    {plural(len(scan.changes), 'file')} since: "
                + ", ".join(scan.changed_paths[:8])
                + (" …" if len(scan.changes) > 8 else "")
            )
        for s in skipped:
            lines.append(f"skipped    {s.path}: {s.reason}")
        emit(args, data, "\n".join(lines))
    return 0


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    t = text.strip().upper().rstrip("B").rstrip("I")
    try:
        if t and t[-1] in units:
            return int(float(t[:-1]) * units[t[-1]])
        return int(t)
    except ValueError:
        raise BadParamsError(f"--max-size: cannot read {text!r} (use e.g. 500M or 2G)") from None


def cmd_gc(args: argparse.Namespace) -> int:
    if args.keep is None and args.max_age_days is None and args.max_size is None:
        raise BadParamsError("gc needs at least one of --keep, --max-age-days, --max-size")
    with open_store(args) as store:
        report = store.gc(
            keep_last=args.keep,
            max_age_days=args.max_age_days,
            max_bytes=parse_size(args.max_size) if args.max_size else None,
        )
        emit(
            args,
            report.to_wire(),
            f"removed {plural(len(report.removed_checkpoints), 'checkpoint')} and "
            f"{plural(report.removed_blobs, 'blob')}; store {size(report.bytes_before)} → "
            f"{size(report.bytes_after)}",
        )
    return 0
