"""Printing for the CLI: plain text for people, one JSON document for agents (``--json``).

Both go through :mod:`tether.text`: file names, task text and pane output are untrusted, and a
terminal must never receive their control or escape characters raw.
"""

from __future__ import annotations

import json
import sys

from tether.text import escape, escape_json

# Neither argparse nor typing at run time (agents' hooks print through here).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any


def emit(args: object, data: Any, text: str | None = None) -> None:
    """Print ``data`` as JSON under --json (``args.json``), else ``text`` (when given)."""
    if getattr(args, "json", False):
        sys.stdout.write(escape_json(json.dumps(data, indent=2, ensure_ascii=False, default=str)))
        sys.stdout.write("\n")
    elif text is not None:
        text = escape(text, multiline=True)
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")


def error(args: argparse.Namespace, message: str, reason: str = "error") -> None:
    if getattr(args, "json", False):
        json.dump({"error": {"reason": reason, "message": message}}, sys.stdout)
        sys.stdout.write("\n")
    print(f"tether: error: {escape(message, multiline=True)}", file=sys.stderr)


def warn(message: str | None) -> None:
    if message:
        print(f"tether: warning: {escape(message, multiline=True)}", file=sys.stderr)
