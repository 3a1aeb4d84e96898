"""Hand-off commands: push, pull, and resume from another machine (docs/handoff.md)."""

from __future__ import annotations

import argparse
from typing import Any

from tether.cli.common import add_output_flags, open_store, register_parsers
from tether.cli.output import emit
from tether.humanize import plural


def register(sub: Any, only: str | None = None) -> None:
    register_parsers(sub, PARSERS, only)


def _push_parser(sub: Any) -> None:
    p = sub.add_parser(
        "push", help="send this workspace's checkpoints to the git remote (refs/tether/..., nothing else)"
    )
    p.add_argument("remote", nargs="?", default="origin", help="git remote name or URL (default: origin)")
    _identity(p)
    p.add_argument("--include-buffers", action="store_true", help="also send unsaved-buffer text")
    p.add_argument(
        "--include-terminal", action="store_true", help="also send pane scrollback and shell history"
    )
    add_output_flags(p)
    p.set_defaults(handler=cmd_push)


def _pull_parser(sub: Any) -> None:
    p = sub.add_parser("pull", help="import the checkpoints other machines pushed for this workspace")
    p.add_argument("remote", nargs="?", default="origin", help="git remote name or URL (default: origin)")
    _identity(p)
    add_output_flags(p)
    p.set_defaults(handler=cmd_pull)


def _handoff_parser(sub: Any) -> None:
    p = sub.add_parser(
        "handoff",
        help="resume another machine's session: pull, preview its files, take its task, recreate tmux",
        description="`tether handoff REMOTE[/WHO]` (also `tether resume --from REMOTE[/WHO]`): pulls, "
        "shows which files would change (nothing is written without --apply), and with --apply "
        "restores them (undoable), takes the task, next steps and step log, and recreates the tmux "
        "layout with this machine's paths.",
    )
    p.add_argument("source", metavar="REMOTE[/WHO]", help="git remote (name or URL) and optionally whose")
    _identity(p)
    p.add_argument("--apply", action="store_true", help="write the files and take the task (undoable)")
    p.add_argument("--no-run", action="store_true", help="when recreating tmux, run no command")
    add_output_flags(p)
    p.set_defaults(handler=cmd_handoff)


# Each command's parser, built only for the command a command line names (CLI start-up).
PARSERS = {
    "push": _push_parser,
    "pull": _pull_parser,
    "handoff": _handoff_parser,
}


def _identity(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--as",
        dest="who",
        default=None,
        help="this clone's name in the ref (default: user-host-xxxx, xxxx drawn once per clone)",
    )
    p.add_argument(
        "--workspace-id", default=None, help="shared id of the project (default: its first commit)"
    )


def cmd_push(args: argparse.Namespace) -> int:
    from tether.remote.handoff import Handoff

    with open_store(args) as store:
        res = Handoff(store, args.who, args.workspace_id).push(
            args.remote, include_buffers=args.include_buffers, include_terminal=args.include_terminal
        )
    text = (
        f"pushed {plural(len(res.checkpoints), 'checkpoint')} to {args.remote} as {res.ref}"
        if res.checkpoints
        else f"{res.ref} on {args.remote} is up to date"
    )
    if res.left_out:
        text += f"\nleft out (secret-looking): {', '.join(res.left_out)}"
    emit(args, res.to_wire(), text)
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from tether.remote.handoff import Handoff

    with open_store(args) as store:
        res = Handoff(store, args.who, args.workspace_id).pull(args.remote)
    lines = [
        f"imported {plural(len(infos), 'checkpoint')} from {who} (now {infos[-1].id})"
        for who, infos in res.imported.items()
    ] or [f"nothing new on {args.remote}"]
    emit(args, res.to_wire(), "\n".join(lines))
    return 0


def split_source(source: str) -> tuple[str, str | None]:
    """``origin/alice@box`` → (origin, alice@box); a URL keeps its slashes unless ``#who``."""
    if "#" in source:
        remote, _, who = source.partition("#")
        return remote, who or None
    if "://" not in source and not source.startswith(("/", ".")) and "/" in source:
        remote, _, who = source.partition("/")
        return remote, who or None
    return source, None


def cmd_handoff(args: argparse.Namespace) -> int:
    from tether.remote.resume_from import resume_from

    remote, who = split_source(args.source)
    with open_store(args) as store:
        data, text = resume_from(
            store,
            remote,
            who,
            me=args.who,
            ws_id=args.workspace_id,
            apply=args.apply,
            run=not args.no_run,
            state_dir=args.state_dir,
        )
    emit(args, data, text)
    return 0
