"""Untrusted text on its way to a terminal, an editor message or an agent's context.

File names, ``.agent-session.json`` strings, pane output and tmux window names are written by
whoever wrote the repository (or by the agent). Printed raw, a name holding ``ESC ] 52`` writes
the user's clipboard, ``ESC [ 2J`` clears the screen, C1 bytes act as 8-bit escapes on some
terminals, and bidi overrides (U+202E) or zero-width characters make a name read as another.

Two operations, one character set:

- :func:`escape` shows such characters as visible escapes (``\\x1b``, ``\\u202e``), so a path
  stays recognisable and distinct. Everything shown to a person or an agent goes through it.
- :func:`strip_controls` / :func:`strip_escapes` remove them, for text that is *stored* after
  cleaning (task text, output tails, scrollback).
"""

from __future__ import annotations

import re
import sys

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


class LazyPattern:
    """A regular expression compiled at its first use, not at import: every CLI process imports
    the modules that hold them (~0.1 ms a pattern), and most use few of them."""

    __slots__ = ("_flags", "_re", "pattern")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern = pattern
        self._flags = flags
        self._re: re.Pattern[str] | None = None

    def compiled(self) -> re.Pattern[str]:
        if self._re is None:
            self._re = re.compile(self.pattern, self._flags)
        return self._re

    def search(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        return self.compiled().search(text, pos, endpos)

    def fullmatch(self, text: str) -> re.Match[str] | None:
        return self.compiled().fullmatch(text)

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        return self.compiled().finditer(text)

    def sub(self, repl: str | Callable[[re.Match[str]], str], text: str) -> str:
        return self.compiled().sub(repl, text)


# CSI / OSC / other escape sequences (stripped whole when cleaning text for storage).
ESCAPE_RE = LazyPattern(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
# C0 (but tab and newline), DEL and C1 control characters.
CONTROL_RE = LazyPattern(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# Shown escaped: every character Python does not call printable (C0/C1 controls, DEL, format
# characters such as bidi overrides and zero-width spaces, line/paragraph separators, private
# use, unassigned code points, lone surrogates from undecodable bytes, spaces other than " "),
# plus the Hangul fillers, which are letters that render as nothing.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")


def _hidden(ch: str) -> bool:
    return not ch.isprintable() or ch in _BLANK_LETTERS


def _code(ch: str) -> str:
    n = ord(ch)
    if n < 0x100:
        return f"\\x{n:02x}"
    if n < 0x10000:
        return f"\\u{n:04x}"
    return f"\\U{n:08x}"


def _escape_line(line: str) -> str:
    if line.isprintable() and (line.isascii() or _BLANK_LETTERS.isdisjoint(line)):
        return line
    return "".join(_code(ch) if _hidden(ch) else ch for ch in line)


def escape(text: str, *, multiline: bool = False) -> str:
    """``text`` with control, escape-introducing and invisible/bidi characters shown escaped.

    Single-line (the default, for paths and names): tab, newline and carriage return are escaped
    too, so a name cannot start a fake line. ``multiline``: newlines, tabs and CRLF stay.
    """
    if not multiline:
        return _escape_line(text)
    if text.isprintable() and (text.isascii() or _BLANK_LETTERS.isdisjoint(text)):
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        crlf = line.endswith("\r") and i < len(lines) - 1
        body = line[:-1] if crlf else line
        parts = body.split("\t")
        lines[i] = "\t".join(_escape_line(p) for p in parts) + ("\r" if crlf else "")
    return "\n".join(lines)


def escape_json(text: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``) with DEL, C1 and invisible/bidi
    characters written as ``\\uXXXX`` escapes: the same JSON value, nothing raw reaches a terminal.
    (json.dumps already escapes C0; such characters only occur inside strings.)"""
    if text.isascii() and "\x7f" not in text:
        return text
    out = []
    for ch in text:
        n = ord(ch)
        if n < 0x7F or not _hidden(ch):
            out.append(ch)
        elif n < 0x10000:
            out.append(f"\\u{n:04x}")
        else:
            n -= 0x10000
            out.append(f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}")
    return "".join(out)


def strip_escapes(text: str) -> str:
    return ESCAPE_RE.sub("", text)


def strip_controls(text: str) -> str:
    """Remove C0 (but tab and newline), DEL and C1 characters."""
    return CONTROL_RE.sub("", text)


def has_controls(text: str) -> bool:
    return CONTROL_RE.search(text) is not None
