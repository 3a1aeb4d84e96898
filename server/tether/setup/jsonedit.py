"""Edit a JSON (or JSONC) document to reach a target value while keeping every other byte.

``patch(text, target)`` parses ``text`` with the span of each value, then applies the smallest
edit it finds towards ``target`` (delete a member, insert one, replace a value, recurse into
the containers both share) and parses again, until the document's value is ``target``.
Untouched members keep their formatting, comments and order; new ones copy the indentation of
their siblings.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tether.record import dataclass, field

_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_MAX_PASSES = 10_000


class JsonSyntaxError(ValueError):
    def __init__(self, message: str, text: str, pos: int) -> None:
        line = text.count("\n", 0, pos) + 1
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        super().__init__(f"{message} at line {line}, column {col}")
        self.line = line
        self.column = col


@dataclass
class Node:
    start: int
    end: int
    value: Any
    members: list[Member] = field(default_factory=list)  # objects
    items: list[Node] = field(default_factory=list)  # arrays


@dataclass
class Member:
    key: str
    start: int  # the key's opening quote
    node: Node


class _Parser:
    def __init__(self, text: str, comments: bool) -> None:
        self.text = text
        self.comments = comments
        self.pos = 0

    def fail(self, message: str) -> JsonSyntaxError:
        return JsonSyntaxError(message, self.text, self.pos)

    def skip(self) -> None:
        t = self.text
        while self.pos < len(t):
            c = t[self.pos]
            if c in " \t\r\n\ufeff":
                self.pos += 1
            elif self.comments and t.startswith("//", self.pos):
                nl = t.find("\n", self.pos)
                self.pos = len(t) if nl < 0 else nl + 1
            elif self.comments and t.startswith("/*", self.pos):
                end = t.find("*/", self.pos + 2)
                if end < 0:
                    raise self.fail("unterminated comment")
                self.pos = end + 2
            else:
                return

    def document(self) -> Node:
        self.skip()
        node = self.value()
        self.skip()
        if self.pos != len(self.text):
            raise self.fail("extra data after the JSON value")
        return node

    def value(self) -> Node:
        t = self.text
        if self.pos >= len(t):
            raise self.fail("unexpected end of file")
        c = t[self.pos]
        start = self.pos
        if c == "{":
            return self.obj()
        if c == "[":
            return self.arr()
        if c == '"':
            s = self.string()
            return Node(start, self.pos, s)
        for word, val in (("true", True), ("false", False), ("null", None)):
            if t.startswith(word, self.pos):
                self.pos += len(word)
                return Node(start, self.pos, val)
        m = _NUMBER.match(t, self.pos)
        if m and m.end() > start:
            self.pos = m.end()
            return Node(start, self.pos, json.loads(m.group()))
        raise self.fail("expected a JSON value")

    def string(self) -> str:
        t = self.text
        i = self.pos + 1
        while i < len(t):
            c = t[i]
            if c == "\\":
                i += 2
                continue
            if c == '"':
                break
            if c < " ":
                self.pos = i
                raise self.fail("control character in a string")
            i += 1
        else:
            raise self.fail("unterminated string")
        try:
            s = json.loads(t[self.pos : i + 1])
        except ValueError as exc:
            raise self.fail(f"bad string ({exc})") from None
        self.pos = i + 1
        return str(s)

    def obj(self) -> Node:
        node = Node(self.pos, self.pos, {})
        self.pos += 1
        self.skip()
        if self.text.startswith("}", self.pos):
            self.pos += 1
            node.end = self.pos
            return node
        while True:
            self.skip()
            if not self.text.startswith('"', self.pos):
                raise self.fail("expected a quoted key")
            kstart = self.pos
            key = self.string()
            self.skip()
            if not self.text.startswith(":", self.pos):
                raise self.fail("expected ':'")
            self.pos += 1
            self.skip()
            child = self.value()
            node.members.append(Member(key, kstart, child))
            node.value[key] = child.value
            self.skip()
            if self.text.startswith(",", self.pos):
                self.pos += 1
                continue
            if self.text.startswith("}", self.pos):
                self.pos += 1
                node.end = self.pos
                return node
            raise self.fail("expected ',' or '}'")

    def arr(self) -> Node:
        node = Node(self.pos, self.pos, [])
        self.pos += 1
        self.skip()
        if self.text.startswith("]", self.pos):
            self.pos += 1
            node.end = self.pos
            return node
        while True:
            self.skip()
            child = self.value()
            node.items.append(child)
            node.value.append(child.value)
            self.skip()
            if self.text.startswith(",", self.pos):
                self.pos += 1
                continue
            if self.text.startswith("]", self.pos):
                self.pos += 1
                node.end = self.pos
                return node
            raise self.fail("expected ',' or ']'")


def parse(text: str, comments: bool = False) -> Node:
    """The document's tree with spans; JsonSyntaxError (with line and column) if malformed."""
    return _Parser(text, comments).document()


def loads(text: str, comments: bool = False) -> Any:
    return parse(text, comments).value


def same(a: Any, b: Any) -> bool:
    """JSON equality (``1 == True`` in Python, not in JSON; key order ignored)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# --- editing -------------------------------------------------------------------------------------

Edit = tuple[int, int, str]


class _Style:
    def __init__(self, text: str) -> None:
        self.text = text
        m = re.search(r"\n([ \t]+)\S", text)
        self.unit = m.group(1) if m else "  "
        self.newline = "\r\n" if "\r\n" in text else "\n"

    def indent_at(self, pos: int) -> str:
        line_start = self.text.rfind("\n", 0, pos) + 1
        m = re.match(r"[ \t]*", self.text[line_start:])
        return m.group() if m else ""

    def multiline(self, node: Node) -> bool:
        return "\n" in self.text[node.start : node.end]

    def render(self, value: Any, indent: str, multiline: bool) -> str:
        if not multiline or not isinstance(value, (dict, list)) or not value:
            return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
        unit = self.unit if self.unit.strip(" ") == "" or self.unit == "\t" else "  "
        body = json.dumps(value, ensure_ascii=False, indent=len(unit) if unit != "\t" else "\t")
        return body.replace("\n", self.newline + indent)


def _delete_member(node: Node, i: int) -> Edit:
    ms = node.members
    if len(ms) == 1:
        return node.start + 1, node.end - 1, ""
    if i < len(ms) - 1:
        return ms[i].start, ms[i + 1].start, ""
    return ms[i - 1].node.end, ms[i].node.end, ""


def _delete_item(node: Node, i: int) -> Edit:
    its = node.items
    if len(its) == 1:
        return node.start + 1, node.end - 1, ""
    if i < len(its) - 1:
        return its[i].start, its[i + 1].start, ""
    return its[i - 1].end, its[i].end, ""


def _insert(style: _Style, node: Node, entry: str, children_starts: list[int], after: int | None) -> Edit:
    """Insert ``entry`` (a rendered member or item) after the child ending at ``after``, or into
    an empty container."""
    if after is None:
        if style.multiline(node) or not children_starts:
            outer = style.indent_at(node.start)
            inner = outer + style.unit
            return node.start + 1, node.end - 1, f"{style.newline}{inner}{entry}{style.newline}{outer}"
        return node.start + 1, node.start + 1, f"{entry}, "
    first = children_starts[0]
    sep = style.text[node.start + 1 : first]
    sep = (
        sep
        if "\n" in sep and sep.strip() == ""
        else (style.newline + style.indent_at(first) if style.multiline(node) else " ")
    )
    return after, after, f",{sep}{entry}"


def _child_indent(style: _Style, node: Node, starts: list[int]) -> str:
    return style.indent_at(starts[0]) if starts else style.indent_at(node.start) + style.unit


def _first_edit(style: _Style, node: Node, target: Any) -> Edit | None:
    if same(node.value, target):
        return None
    if isinstance(node.value, dict) and isinstance(target, dict):
        for i, m in enumerate(node.members):
            if m.key not in target:
                return _delete_member(node, i)
        last = {m.key: i for i, m in enumerate(node.members)}
        for i, m in enumerate(node.members):
            if last[m.key] != i:  # a duplicate key: JSON keeps the last one, drop the dead one
                return _delete_member(node, i)
        for m in node.members:
            sub = _first_edit(style, m.node, target[m.key])
            if sub is not None:
                return sub
        starts = [m.start for m in node.members]
        multiline = style.multiline(node) or not node.members
        indent = _child_indent(style, node, starts)
        for key, value in target.items():
            if key not in node.value:
                entry = json.dumps(key, ensure_ascii=False) + ": " + style.render(value, indent, multiline)
                after = node.members[-1].node.end if node.members else None
                return _insert(style, node, entry, starts, after)
        return None
    if isinstance(node.value, list) and isinstance(target, list):
        old, new = node.items, target
        starts = [o.start for o in old]
        for i in range(min(len(old), len(new))):
            if same(old[i].value, new[i]):
                continue
            if len(old) > len(new) and not any(same(old[i].value, v) for v in new[i:]):
                return _delete_item(node, i)
            if len(new) > len(old) and not any(same(new[i], o.value) for o in old[i:]):
                entry = style.render(new[i], _child_indent(style, node, starts), style.multiline(node))
                if i == 0:
                    return old[0].start, old[0].start, entry + "," + style.text[node.start + 1 : old[0].start]
                return _insert(style, node, entry, starts, old[i - 1].end)
            if isinstance(old[i].value, (dict, list)) and type(old[i].value) is type(new[i]):
                return _first_edit(style, old[i], new[i])
            indent = style.indent_at(old[i].start)
            return old[i].start, old[i].end, style.render(new[i], indent, style.multiline(old[i]))
        if len(old) > len(new):
            return _delete_item(node, len(new))
        entry = style.render(
            new[len(old)], _child_indent(style, node, starts), style.multiline(node) or not old
        )
        return _insert(style, node, entry, starts, old[-1].end if old else None)
    return node.start, node.end, style.render(target, style.indent_at(node.start), True)


def patch(text: str, target: Any, comments: bool = False) -> str:
    """``text`` edited so that it parses to ``target``, other bytes kept; JsonSyntaxError if
    ``text`` is malformed."""
    for _ in range(_MAX_PASSES):
        root = parse(text, comments)
        edit = _first_edit(_Style(text), root, target)
        if edit is None:
            return text
        start, end, repl = edit
        text = text[:start] + repl + text[end:]
    raise RuntimeError("json patch did not converge")  # pragma: no cover - a bug, not input


def dumps(value: Any) -> str:
    """A new file's text."""
    return json.dumps(value, ensure_ascii=False, indent=2) + "\n"
