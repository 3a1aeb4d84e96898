"""Long output for a person at a terminal (``tether log``, ``tether diff``): coloured and paged,
as git does, and only then.

- Colour only when stdout is a terminal, ``NO_COLOR`` is unset or empty (no-color.org) and
  ``TERM`` is not ``dumb``.
- The pager only when stdout is a terminal and ``--no-pager`` was not given: ``$TETHER_PAGER``,
  else ``$PAGER``, else ``less`` (with ``LESS=FRX`` unless set: output that fits the screen is
  printed and ``less`` exits, colours pass through). An empty value or ``cat`` means no pager;
  with ``TERM=dumb`` only a pager the user named is used.
- ``--json`` output is never coloured nor paged.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any, TextIO

from tether.cli.output import emit
from tether.text import escape

RESET = "\x1b[m"
BOLD = "\x1b[1m"
RED = "\x1b[31m"
GREEN = "\x1b[32m"
YELLOW = "\x1b[33m"
CYAN = "\x1b[36m"

Paint = Callable[[str], str]


def color_enabled(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def pager_command() -> str | None:
    """The shell command to page through, or None for no pager (stdout not a terminal, or none
    configured). Not counting ``--no-pager``: the caller decides that."""
    try:
        if not sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    for var in ("TETHER_PAGER", "PAGER"):
        if var in os.environ:
            cmd = os.environ[var].strip()
            return None if cmd in ("", "cat") else cmd
    if os.environ.get("TERM") == "dumb" or shutil.which("less") is None:
        return None
    return "less"


def _page(text: str, cmd: str) -> bool:
    """Write ``text`` through the pager; False when it could not start (the caller prints)."""
    env = dict(os.environ)
    env.setdefault("LESS", "FRX")
    env.setdefault("LV", "-c")
    sys.stdout.flush()
    try:
        proc = subprocess.Popen(cmd, shell=True, stdin=subprocess.PIPE, env=env)
    except OSError:
        return False
    assert proc.stdin is not None
    try:
        proc.stdin.write(text.encode("utf-8", "replace"))
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the user quit the pager before the end
    while True:
        try:
            proc.wait()
            break
        except KeyboardInterrupt:
            continue  # Ctrl-C belongs to the pager (less stays open), as with git
    return True


def show(args: argparse.Namespace, data: Any, text: str, paint: Paint | None = None) -> None:
    """``data`` as JSON under --json; else ``text``, painted and paged when at a terminal."""
    if getattr(args, "json", False):
        emit(args, data)
        return
    # Escaped before it is painted: the colours are ours, every other escape is shown as text
    # (a file name must not reach the terminal, or `less -R`, as a control sequence).
    text = escape(text, multiline=True)
    if text and not text.endswith("\n"):
        text += "\n"
    if paint is not None and color_enabled():
        text = paint(text)
    cmd = None if getattr(args, "no_pager", False) else pager_command()
    if cmd is None or not text or not _page(text, cmd):
        sys.stdout.write(text)


def add_pager_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-pager", action="store_true", help="print straight to the terminal, not through $PAGER"
    )


# ------------------------------------------------------------------------------------------ paint


def _wrap(color: str, line: str) -> str:
    return f"{color}{line}{RESET}" if line else line


def paint_diff(text: str) -> str:
    out = []
    for line in text.split("\n"):
        if line.startswith(("+++ ", "--- ")):
            out.append(_wrap(BOLD, line))
        elif line.startswith("@@"):
            out.append(_wrap(CYAN, line))
        elif line.startswith("+"):
            out.append(_wrap(GREEN, line))
        elif line.startswith("-"):
            out.append(_wrap(RED, line))
        elif line.startswith(("Binary file ", "File ")):
            out.append(_wrap(BOLD, line))
        else:
            out.append(line)
    return "\n".join(out)


_STAT_COLORS = {"A": GREEN, "D": RED, "M": YELLOW}


def paint_stat(text: str) -> str:
    return "\n".join(
        f"{_STAT_COLORS[line[0]]}{line[0]}{RESET}{line[1:]}" if line[:1] in _STAT_COLORS else line
        for line in text.split("\n")
    )


_LOG_RE = re.compile(r"^(\s*\d+)(  .*)$")


def paint_log(text: str) -> str:
    """The checkpoint number of each ``tether log`` row in yellow."""
    return "\n".join(
        f"{YELLOW}{m.group(1)}{RESET}{m.group(2)}" if (m := _LOG_RE.match(line)) else line
        for line in text.split("\n")
    )
