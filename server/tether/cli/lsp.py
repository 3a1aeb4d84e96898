"""`tether lsp`: the language server over stdio.

stdout is the LSP transport: logs go to a file in the state dir (or stderr with
``--log-file -``), and ``sys.stdout`` is pointed at stderr so a stray print cannot corrupt
the protocol stream.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys
from pathlib import Path
from typing import Any

from tether import __version__

LOG_NAME = "lsp.log"


def register(sub: Any, only: str | None = None) -> None:  # one command: nothing to leave out
    p = sub.add_parser("lsp", help="run the language server on stdio (started by editors)")
    p.add_argument("--version", action="version", version=f"tether {__version__}")
    p.add_argument("--stdio", action="store_true", help="accepted for editor compatibility (the default)")
    p.add_argument(
        "--log-file",
        default=None,
        metavar="PATH",
        help=f"log file ('-' for stderr; default: <state dir>/{LOG_NAME})",
    )
    p.add_argument(
        "--log-level", default=os.environ.get("TETHER_LOG_LEVEL", "INFO"), help="DEBUG, INFO, WARNING…"
    )
    p.set_defaults(handler=cmd_lsp)


class _PrivateRotatingHandler(logging.handlers.RotatingFileHandler):
    """A few MB of logs at most, in 0600 files (paths and messages may name the user's files)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, maxBytes=2 * 1024 * 1024, backupCount=2, encoding="utf-8", delay=True)

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        return os.fdopen(fd, "a", encoding="utf-8")

    def format(self, record: logging.LogRecord) -> str:
        # A logged command line, checkpoint message or error may quote a secret.
        from tether.redact import redact_text

        return redact_text(super().format(record))


def setup_logging(
    args: argparse.Namespace, name: str = LOG_NAME, quiet: tuple[str, ...] = ("pygls",)
) -> None:
    """Logs to ``--log-file`` (``-``: stderr; default: ``<state dir>/NAME``), never stdout: it is
    the protocol's. The ``quiet`` loggers log their messages' bodies at INFO: warnings only."""
    from tether.paths import ensure_private_dir, state_dir

    level = getattr(logging, str(args.log_level).upper(), logging.INFO)
    handler: logging.Handler
    if args.log_file == "-":
        handler = logging.StreamHandler(sys.stderr)
    else:
        path = Path(args.log_file) if args.log_file else state_dir(args.state_dir) / name
        ensure_private_dir(path.parent)
        handler = _PrivateRotatingHandler(path)
    handler.setFormatter(logging.Formatter(f"%(asctime)s {os.getpid()} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    # pygls logs every message body at INFO: far too much, and it would hold file contents.
    for logger in quiet:
        logging.getLogger(logger).setLevel(max(level, logging.WARNING))


def cmd_lsp(args: argparse.Namespace) -> int:
    setup_logging(args)
    from tether.lsp.config import Config
    from tether.lsp.server import create_server

    transport_out = sys.stdout.buffer
    sys.stdout = sys.stderr
    config = Config(state_dir=args.state_dir) if args.state_dir else Config()
    server = create_server(config)
    logging.getLogger(__name__).info("tether %s lsp starting (pid %d)", __version__, os.getpid())
    server.start_io(sys.stdin.buffer, transport_out)
    return 0
