"""File history commands: checkpoint, log, diff, restore, status, gc."""

from __future__ import annotations

import argparse
import sys

from tether.checkpoints import restore as restore_mod
from tether.checkpoints.checkpointer import Checkpointer
from tether.checkpoints.diffing import diff_text
from tether.cli.common import (
    add_output_flags,
    non_negative_float,
    non_negative_int,
    open_store,
    parse_checkpoint,
    positive_int,
    register_parsers,
)
from tether.cli.output import emit
from tether.cli.parser import DOUBLE_DASH, Parser
from tether.cli.terminal import add_pager_flag, paint_diff, paint_log, paint_stat, show
from tether.errors import BadParamsError
from tether.humanize import checkpoint_line, plural, size
from tether.text import escape

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def register(sub: Any, only: str | None = None) -> None:
    register_parsers(sub, PARSERS, only)


def _checkpoint_parser(sub: Any) -> None:
    p = sub.add_parser("checkpoint", help="record the workspace now (or only PATHS)")
    p.add_argument("-m", "--message", default=None, metavar="TEXT", help="a note shown in `tether log`")
    p.add_argument("paths", nargs="*", metavar="PATH", help="only look at these paths (fast)")
    p.add_argument("--full", action="store_true", help="walk the whole workspace (the default)")
    add_output_flags(p)
    p.set_defaults(handler=cmd_checkpoint)


def _log_parser(sub: Any) -> None:
    p = sub.add_parser("log", help="list checkpoints, newest first")
    p.add_argument("-n", "--limit", type=positive_int, default=20, help="how many (default 20)")
    p.add_argument("--all", action="store_true", help="every checkpoint")
    add_pager_flag(p)
    add_output_flags(p)
    p.set_defaults(handler=cmd_log)


def _diff_parser(sub: Any) -> None:
    p = sub.add_parser(
        "diff",
        help="diff checkpoint A against B (default: the live workspace)",
        usage="tether diff [--stat] A [B] [-- PATH ...]",
    )
    p.add_argument("--stat", action="store_true", help="only list changed paths")
    add_pager_flag(p)
    add_output_flags(p)
    p.add_argument("a", type=parse_checkpoint, metavar="A", help="checkpoint number to diff from")
    # `diff 1 -- 2` names a file "2": the handler must see where `--` was.
    p.keep_double_dash = True
    p.add_argument(
        "rest",
        nargs=argparse.REMAINDER,
        metavar="[B] [-- PATH ...]",
        help="checkpoint to diff to (default: the live workspace), then only these paths",
    )
    p.set_defaults(handler=cmd_diff)


def _restore_parser(sub: Any) -> None:
    p = sub.add_parser("restore", help="restore files (or the whole workspace) to checkpoint N")
    p.add_argument("n", type=parse_checkpoint, metavar="N", help="checkpoint number (see `tether log`)")
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or directories (default: all)")
    p.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    add_output_flags(p)
    p.set_defaults(handler=cmd_restore)


def _status_parser(sub: Any) -> None:
    p = sub.add_parser("status", help="last checkpoint, pending changes, skipped files")
    add_output_flags(p)
    p.set_defaults(handler=cmd_status)


def _gc_parser(sub: Any) -> None:
    p = sub.add_parser("gc", help="drop old checkpoints by count, age or size")
    p.add_argument("--keep", type=non_negative_int, default=None, help="keep the newest N checkpoints")
    p.add_argument(
        "--max-age-days",
        type=non_negative_float,
        default=None,
        metavar="DAYS",
        help="drop checkpoints older than DAYS (fractions allowed)",
    )
    p.add_argument("--max-size", default=None, help="e.g. 500M, 2G")
    add_output_flags(p)
    p.set_defaults(handler=cmd_gc)


# Each command's parser, built only for the command a command line names (CLI start-up).
PARSERS = {
    "checkpoint": _checkpoint_parser,
    "log": _log_parser,
    "diff": _diff_parser,
    "restore": _restore_parser,
    "status": _status_parser,
    "gc": _gc_parser,
}


def cmd_checkpoint(args: argparse.Namespace) -> int:
    from tether.agent.session import AgentSession
    from tether.agent.steps import make_checkpointer, manual_checkpoint
    from tether.cli.progress import terminal_progress

    with open_store(args) as store:
        # The checkpoint carries the agent (and tmux) state and rewrites .agent-session.json.
        session = AgentSession(store)
        cp = make_checkpointer(store, session, args.state_dir)
        with terminal_progress(cp):
            outcome = manual_checkpoint(
                session, cp, args.message, args.paths if args.paths and not args.full else None
            )
        info = outcome.info
        assert info is not None  # allow_empty
        skipped = [s.to_wire() for s in outcome.scan.skipped]
        emit(
            args,
            {**info.to_wire(), "skipped": skipped},
            f"checkpoint {info.id}: {plural(len(info.files), 'file')} changed"
            + (f", {len(skipped)} skipped (see `tether status`)" if skipped else ""),
        )
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        items = store.list_checkpoints(limit=None if args.all else args.limit)
        show(
            args,
            {"checkpoints": [i.to_wire() for i in items]},
            "\n".join(checkpoint_line(i) for i in items) if items else "no checkpoints yet",
            paint_log,
        )
    return 0


def _split_diff_args(rest: list[str], args: argparse.Namespace) -> tuple[int | None, list[str]]:
    """``[B] [-- PATH ...]`` after A; options given after A (``--stat``, ``--json``, ``-C DIR``…)
    are honoured too."""
    from tether.cli import add_global_options

    if DOUBLE_DASH in rest:
        i = rest.index(DOUBLE_DASH)
        before, paths = rest[:i], rest[i + 1 :]
    else:
        before, paths = rest, []
    flags = Parser(prog="tether diff", add_help=False)
    flags.add_argument("--stat", action="store_true", default=argparse.SUPPRESS)
    flags.add_argument("--no-pager", action="store_true", default=argparse.SUPPRESS)
    add_global_options(flags, after_command=True)
    given, words = flags.parse_known_args(before)
    for key, value in vars(given).items():
        setattr(args, key, value)
    for word in words:
        if word.startswith("-") and not word[1:].isdigit():
            raise BadParamsError(f"diff: unknown option {word!r}")
    b: int | None = None
    if words and words[0].lstrip("-").isdigit():
        try:
            b = parse_checkpoint(words.pop(0))
        except argparse.ArgumentTypeError as exc:
            raise BadParamsError(f"diff: {exc}") from None
    # Like git, paths may also follow without `--` when they cannot be read as B.
    return b, [*words, *paths]


def cmd_diff(args: argparse.Namespace) -> int:
    b, paths = _split_diff_args(list(args.rest), args)
    with open_store(args) as store:
        diffs = restore_mod.diff(
            store, args.a, b, paths or None, checkpointer=Checkpointer(store, watched=True)
        )
        stat_lines = "\n".join(f"{d.status[0].upper()} {escape(d.path)}" for d in diffs)
        text = stat_lines if args.stat else diff_text(diffs)
        data = {"from": args.a, "to": b, "paths": paths, "files": [d.to_wire() for d in diffs]}
        show(args, data, text, paint_stat if args.stat else paint_diff)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        result = restore_mod.restore(
            store, Checkpointer(store), args.n, args.paths or None, dry_run=args.dry_run
        )
        if not result.files:
            text = f"nothing to restore: the workspace matches checkpoint {args.n}"
        elif args.dry_run:
            text = (
                diff_text(result.files)
                + f"dry run: {plural(len(result.files), 'file')} would change; nothing was written"
            )
        else:
            text = (
                f"restored {plural(len(result.files), 'file')} from checkpoint {args.n}; "
                f"undo with `tether restore {result.undo_checkpoint}`"
            )
        emit(args, result.to_wire(), text)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from tether.agent.status import workspace_status

    with open_store(args) as store:
        status = workspace_status(store, Checkpointer(store, watched=True))
        if status.warning:
            print(f"tether: warning: {status.warning}", file=sys.stderr)
        emit(args, status.data, status.text)
    return 0


def parse_size(text: str) -> int:
    """``500M``, ``2G``, ``1.5GiB``, ``4096`` → bytes."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    try:
        value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise BadParamsError(f"--max-size: cannot read {text!r} (use e.g. 500M or 2G)")
    return int(value)


def cmd_gc(args: argparse.Namespace) -> int:
    if args.keep is None and args.max_age_days is None and args.max_size is None:
        raise BadParamsError("gc needs at least one of --keep, --max-age-days, --max-size")
    max_bytes = parse_size(args.max_size) if args.max_size is not None else None
    with open_store(args) as store:
        report = store.gc(keep_last=args.keep, max_age_days=args.max_age_days, max_bytes=max_bytes)
        emit(
            args,
            report.to_wire(),
            f"removed {plural(len(report.removed_checkpoints), 'checkpoint')} and "
            f"{plural(report.removed_blobs, 'blob')}; store {size(report.bytes_before)} → "
            f"{size(report.bytes_after)}",
        )
    return 0
