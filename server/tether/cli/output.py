"""Printing for the CLI: plain text for people, one JSON document for agents (``--json``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def emit(args: argparse.Namespace, data: Any, text: str | None = None) -> None:
    """Print ``data`` as JSON under --json, else ``text`` (when given)."""
    if getattr(args, "json", False):
        json.dump(data, sys.stdout, indent=2, ensure_ascii=False, default=str)
        sys.stdout.write("\n")
    elif text is not None:
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")


def error(args: argparse.Namespace, message: str, reason: str = "error") -> None:
    if getattr(args, "json", False):
        json.dump({"error": {"reason": reason, "message": message}}, sys.stdout)
        sys.stdout.write("\n")
    print(f"tether: error: {message}", file=sys.stderr)
