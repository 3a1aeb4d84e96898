"""`tether` command line. One module per command group, each exposing ``register(subparsers)``.

A group's handlers receive the parsed ``argparse.Namespace`` and return an exit code. They print
through :mod:`tether.cli.output` so that ``--json`` is honoured uniformly.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from tether import __version__
from tether.errors import TetherError

log = logging.getLogger(__name__)

# Command groups, imported lazily by name so that `tether step` does not pay for libtmux or pygls.
GROUPS = (
    "tether.cli.files",
    "tether.cli.workspaces",
    "tether.cli.session",
    "tether.cli.agent",
    "tether.cli.lsp",
    "tether.cli.setup",
    "tether.cli.remote",
)


def build_parser() -> argparse.ArgumentParser:
    from tether.cli.common import Parser

    parser = Parser(
        prog="tether",
        description="Keep an AI coding agent's working context across disconnects, and resume it.",
    )
    parser.add_argument("--version", action="version", version=f"tether {__version__}")
    parser.add_argument(
        "-C",
        "--workspace",
        metavar="DIR",
        default=None,
        help="workspace root (default: nearest parent with .git or .agent-session.json, else cwd)",
    )
    parser.add_argument("--state-dir", metavar="DIR", default=None, help="store location (tests)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in GROUPS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency, not a group not written yet
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(argv) if argv is not None else sys.argv[1:]
    from tether.cli.common import UsageError

    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        from tether.cli import output

        sys.stderr.write(exc.usage)
        output.error(argparse.Namespace(json="--json" in argv), exc.message, exc.reason)
        return exc.exit_code
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    from tether.cli import output

    try:
        code: int = handler(args)
    except TetherError as exc:
        output.error(args, exc.message, exc.reason)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `tether log | head`: the reader left; not an error worth a traceback.
        sys.stderr.close()
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
