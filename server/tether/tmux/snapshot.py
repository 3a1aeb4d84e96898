"""A tmux session as saved (:class:`TmuxSnapshot`): windows, layouts, panes with their cwd, command,
scrollback, history, environment and agent. One parser reads it back, validating every field: a
snapshot is a file on disk (and, pulled from another machine, untrusted input)."""

from __future__ import annotations

import json
import re
from typing import Any

from tether.conversations.probe import PaneAgent
from tether.errors import TmuxError
from tether.record import dataclass, field
from tether.text import strip_controls
from tether.tmux.env import EnvVar

SCHEMA_VERSION = 1
MAX_WINDOW_INDEX = 9999
UID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LAYOUT_RE = re.compile(r"^[0-9a-f]{4},[0-9x,\[\]{}]+$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SnapshotFormatError(TmuxError):
    """Snapshot data is malformed or from an unknown schema; nothing was created."""


@dataclass
class PaneSnapshot:
    uid: str  # stable id (tmux user option @tether_pane), survives recreation
    index: int  # position in the window's pane list
    active: bool
    cwd: str
    width: int
    height: int
    shell: list[str] | None  # argv of the pane's own process when it is a shell
    command: list[str] | None  # full argv of the foreground job (None: idle shell)
    dead: bool
    dead_status: int | None
    scrollback: list[str]  # redacted
    history: list[str]  # redacted, oldest first
    env: list[EnvVar]
    agent: PaneAgent | None = None  # the coding agent in the foreground and its conversation


@dataclass
class WindowSnapshot:
    index: int
    name: str
    layout: str
    zoomed: bool
    active: bool
    width: int
    height: int
    panes: list[PaneSnapshot]


@dataclass
class TmuxSnapshot:
    session: str
    root: str
    windows: list[WindowSnapshot]
    env: list[EnvVar]  # session environment (diff over tmux's global environment)
    schema: int = SCHEMA_VERSION
    # Process facts this machine could not give when it was taken (procs.missing_facts), said
    # on resume: a pane without a command may have been running one nobody could see.
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        # Hand-written: dataclasses.asdict deep-copies every scrollback string (~5x slower).
        return {
            "schema": self.schema,
            "session": self.session,
            "root": self.root,
            "env": [e.to_json() for e in self.env],
            "windows": [
                {
                    "index": w.index,
                    "name": w.name,
                    "layout": w.layout,
                    "zoomed": w.zoomed,
                    "active": w.active,
                    "width": w.width,
                    "height": w.height,
                    "panes": [
                        {
                            "uid": p.uid,
                            "index": p.index,
                            "active": p.active,
                            "cwd": p.cwd,
                            "width": p.width,
                            "height": p.height,
                            "shell": p.shell,
                            "command": p.command,
                            "dead": p.dead,
                            "dead_status": p.dead_status,
                            "scrollback": p.scrollback,
                            "history": p.history,
                            "env": [e.to_json() for e in p.env],
                            "agent": p.agent.to_json() if p.agent else None,
                        }
                        for p in w.panes
                    ],
                }
                for w in self.windows
            ],
            "missing": list(self.missing),
        }

    def to_bytes(self) -> bytes:
        """Canonical JSON: sorted keys, no whitespace, so unchanged sessions dedupe in the store."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes | str) -> TmuxSnapshot:
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SnapshotFormatError(f"tmux snapshot is not valid JSON: {exc}") from None
        return cls.from_json(doc)

    @classmethod
    def salvage(cls, data: bytes | str) -> TmuxSnapshot | None:
        """What can be read of a snapshot that may be old or damaged, for showing (pane history):
        malformed fields left at defaults, malformed windows and panes skipped. None when it is
        not a JSON object at all. Never for restoring: that is :meth:`from_bytes`."""
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(doc, dict):
            return None
        v = _Validator(strict=False)
        windows = [
            v.window(w, f"windows[{i}]", i)
            for i, w in enumerate(v.lst(doc, "windows", "snapshot"))
            if isinstance(w, dict)
        ]
        return cls(
            session=v.text(doc, "session", "snapshot"),
            root=v.text(doc, "root", "snapshot"),
            windows=windows,
            env=v.envs(doc, "snapshot"),
            schema=doc["schema"] if isinstance(doc.get("schema"), int) else 0,
            missing=_missing(doc),
        )

    @classmethod
    def from_json(cls, doc: Any) -> TmuxSnapshot:
        """Validate everything before anything is created: a bad snapshot raises, whole."""
        v = _Validator()
        obj = v.obj(doc, "snapshot")
        schema = obj.get("schema")
        if schema != SCHEMA_VERSION:
            raise SnapshotFormatError(
                f"tmux snapshot schema {schema!r} is not supported (expected {SCHEMA_VERSION})"
            )
        windows = [v.window(w, f"windows[{i}]", i) for i, w in enumerate(v.lst(obj, "windows", "snapshot"))]
        if not windows:
            raise SnapshotFormatError("tmux snapshot has no windows")
        seen: set[int] = set()
        uids: set[str] = set()
        for w in windows:
            if w.index in seen:
                raise SnapshotFormatError(f"tmux snapshot: window index {w.index} appears twice")
            seen.add(w.index)
            for p in w.panes:
                if p.uid in uids:
                    raise SnapshotFormatError(f"tmux snapshot: pane id {p.uid!r} appears twice")
                uids.add(p.uid)
        return cls(
            session=v.text(obj, "session", "snapshot"),
            root=v.text(obj, "root", "snapshot"),
            windows=windows,
            env=v.envs(obj, "snapshot"),
            schema=SCHEMA_VERSION,
            missing=_missing(obj),
        )


def _missing(doc: dict[str, Any]) -> list[str]:
    """The ``missing`` notes, bounded (a snapshot may come from another machine); never an error:
    they only add words to what resume says."""
    raw = doc.get("missing")
    if not isinstance(raw, list):
        return []
    notes = (strip_controls(m).replace("\n", " ")[:300] for m in raw[:8] if isinstance(m, str))
    return [n for n in notes if n.strip()]


class _Validator:
    """The one reader of snapshot documents. ``strict`` (restore, import): any malformed field
    raises :class:`SnapshotFormatError`, whole. Else (showing pane history): what is malformed is
    left at a default or skipped and the rest is read (:meth:`TmuxSnapshot.salvage`)."""

    def __init__(self, strict: bool = True) -> None:
        self.strict = strict

    def _bad(self, message: str, default: Any) -> Any:
        if self.strict:
            raise SnapshotFormatError(f"tmux snapshot: {message}")
        return default

    def obj(self, x: Any, where: str) -> dict[str, Any]:
        if not isinstance(x, dict):
            raise SnapshotFormatError(f"tmux snapshot: {where} must be an object")
        return x

    def lst(self, o: dict[str, Any], key: str, where: str) -> list[Any]:
        x = o.get(key)
        if not isinstance(x, list):
            return self._bad(f"{where}.{key} must be a list", [])  # type: ignore[no-any-return]
        return x

    def text(self, o: dict[str, Any], key: str, where: str, *, optional: bool = False) -> str:
        x = o.get(key)
        if x is None and optional:
            return ""
        if not isinstance(x, str) or ("\x00" in x and self.strict):
            return self._bad(f"{where}.{key} must be a string", "")  # type: ignore[no-any-return]
        return x

    def integer(
        self, o: dict[str, Any], key: str, where: str, lo: int = 0, hi: int = 100_000, *, default: int = 0
    ) -> int:
        x = o.get(key)
        if not isinstance(x, int) or isinstance(x, bool) or not lo <= x <= hi:
            return self._bad(f"{where}.{key} must be an integer in [{lo}, {hi}]", default)  # type: ignore[no-any-return]
        return x

    def boolean(self, o: dict[str, Any], key: str, where: str) -> bool:
        x = o.get(key)
        if not isinstance(x, bool):
            return self._bad(f"{where}.{key} must be true or false", False)  # type: ignore[no-any-return]
        return x

    def strlist(self, o: dict[str, Any], key: str, where: str, *, nullable: bool) -> list[str] | None:
        x = o.get(key)
        if x is None and nullable:
            return None
        if isinstance(x, list) and not self.strict:
            return [s for s in x if isinstance(s, str)]  # the strings among them
        if not isinstance(x, list) or not all(isinstance(s, str) and "\x00" not in s for s in x):
            return self._bad(f"{where}.{key} must be a list of strings", None if nullable else [])  # type: ignore[no-any-return]
        return list(x)

    def env(self, x: Any, where: str) -> EnvVar:
        o = self.obj(x, where)
        name = self.text(o, "name", where)
        kind = o.get("kind")
        if kind not in ("volatile", "project", "secret") or not _ENV_NAME_RE.match(name):
            raise SnapshotFormatError(f"tmux snapshot: {where} is not a valid variable")
        value = o.get("value")
        if kind != "project":
            value = None  # never trust a stored value for a secret/volatile name
        elif not isinstance(value, str) or "\x00" in value:
            raise SnapshotFormatError(f"tmux snapshot: {where}.value must be a string")
        return EnvVar(name, kind, value, self.text(o, "source", where))

    def envs(self, o: dict[str, Any], where: str) -> list[EnvVar]:
        out = []
        for i, e in enumerate(self.lst(o, "env", where)):
            try:
                out.append(self.env(e, f"{where}.env[{i}]" if where != "snapshot" else f"env[{i}]"))
            except SnapshotFormatError:
                if self.strict:
                    raise
        return out

    def pane(self, x: Any, where: str, position: int) -> PaneSnapshot:
        o = self.obj(x, where)
        uid = self.text(o, "uid", where)
        if not UID_RE.match(uid):
            uid = self._bad(f"{where}.uid {uid!r} is not a valid pane id", "")
        cwd = self.text(o, "cwd", where)
        if not cwd.startswith("/"):
            cwd = self._bad(f"{where}.cwd must be an absolute path", cwd)
        command = self.strlist(o, "command", where, nullable=True)
        if command is not None and not command:
            command = self._bad(f"{where}.command must not be empty", None)
        status = o.get("dead_status")
        if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
            status = self._bad(f"{where}.dead_status must be an integer or null", None)
        return PaneSnapshot(
            uid=uid,
            index=self.integer(o, "index", where, default=position),
            active=self.boolean(o, "active", where),
            cwd=cwd,
            width=self.integer(o, "width", where, 1, default=1),
            height=self.integer(o, "height", where, 1, default=1),
            shell=self.strlist(o, "shell", where, nullable=True),
            command=command,
            dead=self.boolean(o, "dead", where),
            dead_status=status,
            scrollback=self.strlist(o, "scrollback", where, nullable=False) or [],
            history=self.strlist(o, "history", where, nullable=False) or [],
            env=self.envs(o, where),
            # Absent in older snapshots; an id not of the agent's form is dropped, never typed.
            agent=PaneAgent.from_json(o.get("agent")),
        )

    def window(self, x: Any, where: str, position: int) -> WindowSnapshot:
        o = self.obj(x, where)
        layout = self.text(o, "layout", where)
        if self.strict and not _LAYOUT_RE.match(layout):
            raise SnapshotFormatError(f"tmux snapshot: {where}.layout {layout!r} is not a tmux layout")
        if self.strict and layout_checksum(layout.split(",", 1)[1]) != layout.split(",", 1)[0]:
            raise SnapshotFormatError(f"tmux snapshot: {where}.layout has a bad checksum")
        panes = []
        for i, p in enumerate(self.lst(o, "panes", where)):
            if not self.strict and not isinstance(p, dict):
                continue
            panes.append(self.pane(p, f"{where}.panes[{i}]", i))
        if self.strict and not panes:
            raise SnapshotFormatError(f"tmux snapshot: {where} has no panes")
        if self.strict and _layout_pane_count(layout) != len(panes):
            raise SnapshotFormatError(
                f"tmux snapshot: {where}.layout describes {_layout_pane_count(layout)} panes, "
                f"but {len(panes)} are listed"
            )
        name = self.text(o, "name", where)
        if self.strict and "\n" in name:
            raise SnapshotFormatError(f"tmux snapshot: {where}.name contains a newline")
        return WindowSnapshot(
            index=self.integer(o, "index", where, 0, MAX_WINDOW_INDEX, default=position),
            name=name,
            layout=layout,
            zoomed=self.boolean(o, "zoomed", where),
            active=self.boolean(o, "active", where),
            width=self.integer(o, "width", where, 1, 10_000, default=1),
            height=self.integer(o, "height", where, 1, 10_000, default=1),
            panes=sorted(panes, key=lambda p: p.index) if self.strict else panes,
        )


def layout_checksum(body: str) -> str:
    """tmux's 16-bit layout checksum (layout-custom.c), the 4 hex digits before the first comma."""
    csum = 0
    for ch in body.encode():
        csum = (csum >> 1) + ((csum & 1) << 15)
        csum = (csum + ch) & 0xFFFF
    return f"{csum:04x}"


def _layout_pane_count(layout: str) -> int:
    """Leaf cells of a layout string: ``WxH,X,Y,ID`` (an id) vs ``WxH,X,Y{``/``[`` (a split)."""
    body = layout.split(",", 1)[1]
    return len(re.findall(r"\d+x\d+,\d+,\d+,\d+", body))
