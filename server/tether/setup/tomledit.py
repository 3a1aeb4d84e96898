"""Set or remove one table of a TOML file (Codex's ``[mcp_servers.tether]``), keeping every
other byte.

The table is the region from its header line to the next header that is not one of its own
sub-tables. The edit is then checked with ``tomllib``: the file must parse, hold exactly the new
table, and hold everything else as before. A table written in another form (an inline table,
dotted keys under ``[mcp_servers]``) fails that check and is reported instead of edited.
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

_HEADER = re.compile(r"^[ \t]*\[")


class TomlEditError(ValueError):
    pass


def _key_re(part: str) -> str:
    return rf"(?:{re.escape(part)}|\"{re.escape(part)}\"|'{re.escape(part)}')"


def _table_header(path: tuple[str, ...]) -> re.Pattern[str]:
    dotted = r"\s*\.\s*".join(_key_re(p) for p in path)
    return re.compile(rf"^[ \t]*\[\[?\s*{dotted}\s*(?:\]|\.)")


def _string(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # JSON's escapes are TOML basic-string escapes


def render_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list):
        return "[" + ", ".join(render_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_bare(k)} = {render_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _bare(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _string(key)


def render_table(path: tuple[str, ...], table: dict[str, Any], newline: str = "\n") -> str:
    lines = ["[" + ".".join(_bare(p) for p in path) + "]"]
    lines.extend(f"{_bare(k)} = {render_value(v)}" for k, v in table.items())
    return newline.join(lines) + newline


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _region(text: str, path: tuple[str, ...]) -> tuple[int, int] | None:
    """Character span of the table's header and body, or None when it has no header."""
    header = _table_header(path)
    pos = 0
    start: int | None = None
    for line in _lines(text):
        if start is None:
            if header.match(line):
                start = pos
        elif _HEADER.match(line) and not header.match(line):
            return start, pos
        pos += len(line)
    return (start, pos) if start is not None else None


def _without(doc: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    out = dict(doc)
    cur = out
    for p in path[:-1]:
        nxt = cur.get(p)
        if not isinstance(nxt, dict):
            return out
        nxt = dict(nxt)
        cur[p] = nxt
        cur = nxt
    cur.pop(path[-1], None)
    # An emptied parent made only for our table ([mcp_servers] holding only tether) goes too.
    if len(path) > 1 and out.get(path[0]) == {}:
        out.pop(path[0])
    return out


def _get(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    cur: Any = doc
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return cur


def load(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TomlEditError(str(exc)) from None


def set_table(text: str, path: tuple[str, ...], table: dict[str, Any] | None) -> str:
    """``text`` with the table at ``path`` set to ``table`` (None: removed)."""
    before = load(text)
    if table is not None and _get(before, path) == table:
        return text
    if table is None and _get(before, path) is None:
        return text
    newline = "\r\n" if "\r\n" in text else "\n"
    block = render_table(path, table, newline) if table is not None else ""
    span = _region(text, path)
    if span is not None:
        start, end = span
        rest = text[end:].lstrip("\r\n")
        if block and rest:
            block += newline
        if not block and text[:start].endswith(newline * 2):
            start -= len(newline)  # the blank line that set the table apart goes with it
        new = text[:start] + block + rest
    elif table is None:
        new = text
    else:
        sep = "" if not text else (newline if text.endswith(newline) else newline * 2)
        if text and text.endswith(newline) and not text.endswith(newline * 2):
            sep = newline
        new = text + sep + block
    form_error = TomlEditError(
        f"[{'.'.join(path)}] is written in a form this editor does not change (an inline table "
        "or dotted keys); edit it by hand"
    )
    try:
        after = tomllib.loads(new)
    except tomllib.TOMLDecodeError:
        raise form_error from None
    if _without(after, path) != _without(before, path) or _get(after, path) != table:
        raise form_error
    return new
