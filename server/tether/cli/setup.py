"""`tether setup AGENT`: write Tether's hooks, instructions or MCP server into an agent's config."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tether.cli.common import add_output_flags, find_workspace
from tether.cli.output import emit

AGENTS = ("claude", "codex", "gemini", "opencode", "aider")


def register(sub: Any, only: str | None = None) -> None:  # one command: nothing to leave out
    p = sub.add_parser(
        "setup",
        help="write Tether's hooks and instructions (or, with --mcp, its MCP server) into an agent's config",
        description="Merge Tether's entries into AGENT's own config files for this project (or, with "
        "--user, for every project), keeping every other setting byte for byte. Running it again "
        "changes nothing; --remove takes Tether's entries out; --dry-run prints the diff. A "
        "malformed config file is reported and left untouched. See docs/agents.md for what each "
        "agent gets.",
    )
    p.add_argument("agent", choices=AGENTS, metavar="AGENT", help="one of " + ", ".join(AGENTS))
    p.add_argument(
        "--user", action="store_true", help="the agent's user-level config instead of the project's"
    )
    p.add_argument(
        "--mcp", action="store_true", help="the MCP server entry for `tether mcp` instead of hooks"
    )
    p.add_argument("--remove", action="store_true", help="take Tether's entries out")
    p.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    p.add_argument(
        "--command",
        dest="tether_command",
        default=None,
        metavar="CMD",
        help="how the agent runs Tether (default: `tether` when on PATH, else this program's path)",
    )
    add_output_flags(p)
    p.set_defaults(handler=cmd_setup)


def cmd_setup(args: argparse.Namespace) -> int:
    from tether.setup import agents

    opts = agents.Options(
        root=find_workspace(args),
        user=args.user,
        mcp=args.mcp,
        remove=args.remove,
        command=args.tether_command or agents.tether_command(),
    )
    try:
        changes = agents.plan(args.agent, opts)
        if not args.dry_run:
            agents.apply(changes)
    except agents.SetupError as exc:
        print(f"tether setup: {exc}", file=sys.stderr)
        if args.json:
            emit(args, {"agent": args.agent, "error": str(exc), "changes": []})
        return 1
    what = "MCP server" if args.mcp else "hooks and instructions"
    verb = "would " if args.dry_run else ""
    if not changes:
        state = "absent" if args.remove else "in place"
        text = f"{args.agent}: Tether's {what} already {state}; nothing to change"
    else:
        lines = []
        for c in changes:
            action = "create" if c.old is None else "delete" if c.new is None else "update"
            lines.append(f"{verb}{action} {c.path}")
        text = "\n".join(lines)
        if args.dry_run:
            text = "".join(c.diff() for c in changes) + text
    notes = _notes(args.agent, args.mcp, args.remove, args.user) if changes and not args.dry_run else []
    emit(
        args,
        {
            "agent": args.agent,
            "dryRun": args.dry_run,
            "changes": [
                {
                    "path": str(c.path),
                    "action": "create" if c.old is None else "delete" if c.new is None else "update",
                    "diff": c.diff(),
                }
                for c in changes
            ],
        },
        "\n".join([text, *notes]),
    )
    return 0


def _notes(agent: str, mcp: bool, remove: bool, user: bool) -> list[str]:
    if remove:
        return []
    if agent == "codex" and not mcp:
        return [
            "note: Codex runs new hooks only once you trust them: open `/hooks` in Codex and trust Tether's"
        ]
    if agent == "claude" and mcp and not user:
        return [
            "note: Claude Code starts a project's .mcp.json server once you trust the workspace "
            "(approved by name in .claude/settings.local.json)"
        ]
    return []
