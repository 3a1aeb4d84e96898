"""`tether mcp`: the MCP server over stdio, started by an agent (`tether setup AGENT --mcp`).

The SDK is imported only here, in the handler: no other command pays for it. stdout is the
protocol's; logs go to a file in the state dir (or stderr with ``--log-file -``).
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from tether import __version__
from tether.errors import BadParamsError

LOG_NAME = "mcp.log"
HELP = "run the MCP server on stdio (started by agents: `tether setup AGENT --mcp`)"


def register(sub: Any, only: str | None = None) -> None:  # one command: nothing to leave out
    p = sub.add_parser(
        "mcp",
        help=HELP,
        description="Serve Tether's tools (handoff, record_step, status, timeline, diff, restore…), "
        "resources (tether://handoff, tether://checkpoints/{n}, tether://steps) and the `resume` "
        "prompt over MCP on stdin/stdout. The workspace is --workspace, else the client's roots, "
        "else the nearest parent of the current directory with .git. See docs/mcp.md.",
    )
    p.add_argument("--version", action="version", version=f"tether {__version__}")
    p.add_argument(
        "--workspace",
        dest="mcp_workspace",
        metavar="DIR",
        default=None,
        help="the workspace to serve (default: the client's roots, else the cwd's)",
    )
    p.add_argument(
        "--log-file",
        default=None,
        metavar="PATH",
        help=f"log file ('-' for stderr; default: <state dir>/{LOG_NAME})",
    )
    p.add_argument(
        "--log-level", default=os.environ.get("TETHER_LOG_LEVEL", "INFO"), help="DEBUG, INFO, WARNING…"
    )
    p.set_defaults(handler=cmd_mcp)


def cmd_mcp(args: argparse.Namespace) -> int:
    named = args.mcp_workspace or args.workspace
    workspace = Path(named).expanduser().resolve() if named else None
    if workspace is not None and not workspace.is_dir():
        raise BadParamsError(f"workspace {named!r} is not a directory")
    from tether.cli.lsp import setup_logging

    setup_logging(args, LOG_NAME, quiet=())
    from tether.mcp.background import watch_tmux
    from tether.mcp.server import McpConfig, run_stdio

    logging.getLogger(__name__).info("tether %s mcp starting (pid %d)", __version__, os.getpid())
    run_stdio(McpConfig(workspace=workspace, state_dir=args.state_dir, background=(watch_tmux,)))
    return 0
