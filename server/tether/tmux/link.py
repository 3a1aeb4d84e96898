"""The workspace's tmux session: create, attach, snapshot and recreate.

Costs are what matter here (tmux-resurrect spends ~20 s saving 86 panes by forking per pane), so
every hot path is a single tmux invocation:

- metadata of all panes: one ``list-panes -a -F`` call (also the change fingerprint);
- scrollback of all panes + the session environment: one chained invocation
  (``display-message -p MARKER \\; capture-pane -p ...`` per pane);
- recreation: one chained invocation creating every window and pane with its cwd, layout, zoom,
  active pane, environment, scrollback replay and (per policy) the command to re-run.

The tmux client sends a whole chain as one message (16 KiB max), so a very large chain is split into
as few invocations as fit; 50 panes fit in one.

Values read back from a snapshot (cwd, names, commands) are treated as untrusted text: they only
reach tmux as separate argv elements, escaped where tmux would expand formats (``#``) or split
commands (a trailing ``;``), and commands are only ever typed with ``send-keys -l``.

No pygls/lsprotocol here: this module is called from worker threads of the LSP server and the CLI.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from tether import paths
from tether.conversations.agents import plain_argv, resume_argv
from tether.conversations.probe import PaneAgent, probe, process_start
from tether.conversations.record import ConversationLog
from tether.errors import TmuxError
from tether.redact import REDACTED, is_redacted, redact_argv, redact_lines
from tether.safefs import create_private_file
from tether.text import strip_controls
from tether.tmux import version as tmux_version
from tether.tmux.env import EnvVar, classify_env, parse_environ, parse_show_environment
from tether.tmux.version import TmuxTooOldError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SOCKET_ENV = "TETHER_TMUX_SOCKET"
PANE_OPTION = "@tether_pane"
ROOT_OPTION = "@tether_root"
MAX_WINDOW_INDEX = 9999
_PLACEHOLDER_INDEX = 99999
_PLACEHOLDER_NAME = "tether-init"
# tmux's client refuses a command message over MAX_IMSGSIZE (16384) minus headers.
_CHAIN_BUDGET = 16000
_TMUX_TIMEOUT = 30.0
_UID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LAYOUT_RE = re.compile(r"^[0-9a-f]{4},[0-9x,\[\]{}]+$")
_SESSION_SAFE_RE = re.compile(r"[^A-Za-z0-9_-]+")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

SHELLS = frozenset({"bash", "zsh", "sh", "dash", "fish", "ksh", "mksh", "tcsh", "csh", "ash", "nu", "xonsh"})
_INTERPRETERS = ("node", "python", "ruby", "perl", "bun", "deno", "sh", "bash")

DEFAULT_ALLOWLIST: tuple[str, ...] = (
    "npm run dev",
    "npm run start",
    "npm run serve",
    "npm run watch",
    "npm start",
    "npm test -- --watch*",
    "yarn dev",
    "yarn start",
    "yarn watch",
    "pnpm dev",
    "pnpm run dev",
    "pnpm start",
    "bun run dev",
    "vite",
    "next dev",
    "nuxt dev",
    "webpack serve",
    "webpack --watch",
    "tsc --watch",
    "tsc -w",
    "jest --watch*",
    "vitest",
    "vitest watch",
    "python* -m http.server",
    "python* manage.py runserver",
    "python* -m flask run",
    "flask run",
    "uvicorn",
    "gunicorn",
    "ptw",
    "pytest-watch",
    "cargo watch",
    "go run .",
    "air",
    "rails server",
    "rails s",
    "bundle exec rails server",
    "hugo server",
    "jekyll serve",
    "mkdocs serve",
    "make watch",
    "make serve",
    "watchexec",
    "entr",
    "tail -f",
    "tail -F",
)

# Format fields read for every pane, in one list-panes call. Untrusted free text (cwd, window name)
# comes last so a stray separator inside them is detected by the field count.
_FIELDS = (
    "session_name",
    "window_index",
    "window_layout",
    "window_zoomed_flag",
    "window_active",
    "window_width",
    "window_height",
    "window_activity",
    "pane_id",
    "pane_index",
    "pane_active",
    "pane_pid",
    "pane_dead",
    "pane_dead_status",
    "pane_width",
    "pane_height",
    "history_size",
    "cursor_x",
    "cursor_y",
    PANE_OPTION,
    "pane_current_path",
    "window_name",
)
_SEP = "\x1f"
_LIST_FORMAT = _SEP.join(f"#{{{f}}}" for f in _FIELDS)


# --------------------------------------------------------------------------------------------- config


@dataclass
class WindowSpec:
    """A window Tether creates in a fresh session (user config: agent / server / tests ...)."""

    name: str
    command: str | None = None
    cwd: str | None = None
    # False when the spec came from an untrusted source (editor/workspace settings): the command
    # is typed into the new window and waits for the user's Enter.
    run: bool = True


@dataclass
class TmuxConfig:
    enabled: bool = True
    socket_path: str | None = None  # None: $TETHER_TMUX_SOCKET, else tmux's default server
    scrollback_lines: int = 2000
    windows: list[WindowSpec] = field(default_factory=list)
    # Commands that may be re-run automatically on recreation. User config only: never from a
    # workspace file (see from_wire's ``trusted``).
    allowlist: list[str] = field(default_factory=lambda: list(DEFAULT_ALLOWLIST))
    history_lines: int = 500
    env_secret_patterns: list[str] = field(default_factory=list)
    shell: str | None = None  # None: $SHELL, else /bin/sh
    shell_rc: bool = True  # source the user's rc files from Tether's shell hook
    # Panes start login shells, as tmux's own do (PATH from ~/.profile, ~/.bash_profile,
    # ~/.zprofile: Homebrew, pyenv, nvm). False: interactive non-login shells (~/.bashrc only).
    login_shell: bool = True
    # An agent pane's resume command (`claude --resume ID`) is typed and waits for Enter, unless the
    # user's own config file says `[agents] resume = "run"` (user_config; never from_wire).
    agent_resume: Literal["type", "run"] = "type"

    @classmethod
    def from_wire(cls, data: Any, trusted: bool = False) -> tuple[TmuxConfig, list[str]]:
        """Build from camelCase wire data; bad values fall back to defaults with a warning.

        ``allowlist`` is honoured only when ``trusted`` (the user's own config): a workspace's
        settings must not be able to make Tether run a command.
        """
        cfg = cls()
        warnings: list[str] = []
        if data is None:
            return cfg, warnings
        if not isinstance(data, dict):
            return cfg, [f"tmux: expected an object, got {type(data).__name__}; using defaults"]

        def take(key: str, attr: str, typ: type | tuple[type, ...], check: Any = None) -> None:
            if key not in data:
                return
            value = data[key]
            if value is None and attr in ("socket_path", "shell"):
                setattr(cfg, attr, None)
                return
            if not isinstance(value, typ) or isinstance(value, bool) != (typ is bool):
                warnings.append(f"tmux.{key}: bad value {value!r}; using the default")
                return
            if check is not None and not check(value):
                warnings.append(f"tmux.{key}: bad value {value!r}; using the default")
                return
            setattr(cfg, attr, value)

        take("enabled", "enabled", bool)
        take("socketPath", "socket_path", str, len)
        take("scrollbackLines", "scrollback_lines", int, lambda v: 0 <= v <= 1_000_000)
        take("historyLines", "history_lines", int, lambda v: 0 <= v <= 100_000)
        take("shell", "shell", str, len)
        take("shellRc", "shell_rc", bool)
        take("loginShell", "login_shell", bool)
        if "envSecretPatterns" in data:
            pats = data["envSecretPatterns"]
            if isinstance(pats, list) and all(isinstance(p, str) and _valid_regex(p) for p in pats):
                cfg.env_secret_patterns = list(pats)
            else:
                warnings.append("tmux.envSecretPatterns: expected a list of regexes; ignored")
        if "allowlist" in data:
            allow = data["allowlist"]
            if not trusted:
                warnings.append("tmux.allowlist: ignored (only the user's own config may set it)")
            elif isinstance(allow, list) and all(isinstance(p, str) and p.strip() for p in allow):
                cfg.allowlist = list(allow)
            else:
                warnings.append("tmux.allowlist: expected a list of command patterns; using the default")
        if "windows" in data:
            wins = data["windows"]
            parsed: list[WindowSpec] = []
            ok = isinstance(wins, list)
            for w in wins if isinstance(wins, list) else []:
                if (
                    isinstance(w, dict)
                    and isinstance(w.get("name"), str)
                    and w["name"]
                    and isinstance(w.get("command"), str | None)
                    and isinstance(w.get("cwd"), str | None)
                ):
                    parsed.append(WindowSpec(w["name"], w.get("command"), w.get("cwd"), run=trusted))
                else:
                    ok = False
            if ok:
                cfg.windows = parsed
            else:
                warnings.append("tmux.windows: expected [{name, command?, cwd?}]; using the default")
        return cfg, warnings


def _valid_regex(p: str) -> bool:
    try:
        re.compile(p)
    except re.error:
        return False
    return True


# ------------------------------------------------------------------------------------------- snapshot


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
    def from_json(cls, doc: Any) -> TmuxSnapshot:
        """Validate everything before anything is created: a bad snapshot raises, whole."""
        v = _Validator()
        obj = v.obj(doc, "snapshot")
        schema = obj.get("schema")
        if schema != SCHEMA_VERSION:
            raise SnapshotFormatError(
                f"tmux snapshot schema {schema!r} is not supported (expected {SCHEMA_VERSION})"
            )
        windows = [v.window(w, f"windows[{i}]") for i, w in enumerate(v.lst(obj, "windows", "snapshot"))]
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
            env=[v.env(e, f"env[{i}]") for i, e in enumerate(v.lst(obj, "env", "snapshot"))],
            schema=SCHEMA_VERSION,
        )


class _Validator:
    def obj(self, x: Any, where: str) -> dict[str, Any]:
        if not isinstance(x, dict):
            raise SnapshotFormatError(f"tmux snapshot: {where} must be an object")
        return x

    def lst(self, o: dict[str, Any], key: str, where: str) -> list[Any]:
        x = o.get(key)
        if not isinstance(x, list):
            raise SnapshotFormatError(f"tmux snapshot: {where}.{key} must be a list")
        return x

    def text(self, o: dict[str, Any], key: str, where: str, *, optional: bool = False) -> str:
        x = o.get(key)
        if x is None and optional:
            return ""
        if not isinstance(x, str) or "\x00" in x:
            raise SnapshotFormatError(f"tmux snapshot: {where}.{key} must be a string")
        return x

    def integer(self, o: dict[str, Any], key: str, where: str, lo: int = 0, hi: int = 100_000) -> int:
        x = o.get(key)
        if not isinstance(x, int) or isinstance(x, bool) or not lo <= x <= hi:
            raise SnapshotFormatError(f"tmux snapshot: {where}.{key} must be an integer in [{lo}, {hi}]")
        return x

    def boolean(self, o: dict[str, Any], key: str, where: str) -> bool:
        x = o.get(key)
        if not isinstance(x, bool):
            raise SnapshotFormatError(f"tmux snapshot: {where}.{key} must be true or false")
        return x

    def strlist(self, o: dict[str, Any], key: str, where: str, *, nullable: bool) -> list[str] | None:
        x = o.get(key)
        if x is None and nullable:
            return None
        if not isinstance(x, list) or not all(isinstance(s, str) and "\x00" not in s for s in x):
            raise SnapshotFormatError(f"tmux snapshot: {where}.{key} must be a list of strings")
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

    def pane(self, x: Any, where: str) -> PaneSnapshot:
        o = self.obj(x, where)
        uid = self.text(o, "uid", where)
        if not _UID_RE.match(uid):
            raise SnapshotFormatError(f"tmux snapshot: {where}.uid {uid!r} is not a valid pane id")
        cwd = self.text(o, "cwd", where)
        if not cwd.startswith("/"):
            raise SnapshotFormatError(f"tmux snapshot: {where}.cwd must be an absolute path")
        command = self.strlist(o, "command", where, nullable=True)
        if command is not None and not command:
            raise SnapshotFormatError(f"tmux snapshot: {where}.command must not be empty")
        status = o.get("dead_status")
        if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
            raise SnapshotFormatError(f"tmux snapshot: {where}.dead_status must be an integer or null")
        return PaneSnapshot(
            uid=uid,
            index=self.integer(o, "index", where),
            active=self.boolean(o, "active", where),
            cwd=cwd,
            width=self.integer(o, "width", where, 1),
            height=self.integer(o, "height", where, 1),
            shell=self.strlist(o, "shell", where, nullable=True),
            command=command,
            dead=self.boolean(o, "dead", where),
            dead_status=status,
            scrollback=self.strlist(o, "scrollback", where, nullable=False) or [],
            history=self.strlist(o, "history", where, nullable=False) or [],
            env=[self.env(e, f"{where}.env[{i}]") for i, e in enumerate(self.lst(o, "env", where))],
            # Absent in older snapshots; an id not of the agent's form is dropped, never typed.
            agent=PaneAgent.from_json(o.get("agent")),
        )

    def window(self, x: Any, where: str) -> WindowSnapshot:
        o = self.obj(x, where)
        layout = self.text(o, "layout", where)
        if not _LAYOUT_RE.match(layout):
            raise SnapshotFormatError(f"tmux snapshot: {where}.layout {layout!r} is not a tmux layout")
        csum, body = layout.split(",", 1)
        if layout_checksum(body) != csum:
            raise SnapshotFormatError(f"tmux snapshot: {where}.layout has a bad checksum")
        panes = [self.pane(p, f"{where}.panes[{i}]") for i, p in enumerate(self.lst(o, "panes", where))]
        if not panes:
            raise SnapshotFormatError(f"tmux snapshot: {where} has no panes")
        if _layout_pane_count(layout) != len(panes):
            raise SnapshotFormatError(
                f"tmux snapshot: {where}.layout describes {_layout_pane_count(layout)} panes, "
                f"but {len(panes)} are listed"
            )
        name = self.text(o, "name", where)
        if "\n" in name:
            raise SnapshotFormatError(f"tmux snapshot: {where}.name contains a newline")
        return WindowSnapshot(
            index=self.integer(o, "index", where, 0, MAX_WINDOW_INDEX),
            name=name,
            layout=layout,
            zoomed=self.boolean(o, "zoomed", where),
            active=self.boolean(o, "active", where),
            width=self.integer(o, "width", where, 1, 10_000),
            height=self.integer(o, "height", where, 1, 10_000),
            panes=sorted(panes, key=lambda p: p.index),
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


# ------------------------------------------------------------------------------------------ restore


@dataclass
class RunPolicy:
    """Which recorded commands run again on recreation.

    ``allowlist``: commands matching the user's allowlist run (Enter pressed), the rest are typed
    and wait for the user. ``never``: everything is typed, nothing runs. ``confirmed`` lists pane
    uids whose command the user explicitly confirmed. A command saved with a secret redacted out
    of it is always typed (with the placeholder to fill in), whatever the policy.
    """

    mode: Literal["allowlist", "never"] = "allowlist"
    confirmed: frozenset[str] = frozenset()


@dataclass
class PaneRestore:
    uid: str
    window: int
    command: list[str] | None
    action: Literal["ran", "typed", "none"]
    agent: str | None = None  # the coding agent whose conversation the pane resumes
    conversation: str | None = None


@dataclass
class RestoreReport:
    session: str
    recreated: bool
    panes: list[PaneRestore] = field(default_factory=list)
    missing_secrets: list[str] = field(default_factory=list)  # "NAME (source)"
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def matches_allowlist(
    argv: Sequence[str],
    patterns: Sequence[str],
    *,
    root: Path | None = None,
    cwd: str | None = None,
    search_path: str | None = None,
) -> bool:
    """True when ``argv`` starts with the tokens of one pattern (glob per token, basename for argv[0]).

    Interpreter-launched tools (``node /usr/bin/npm run dev``, ``python3 /usr/bin/ptw``) are also
    matched with the interpreter stripped.

    With ``root`` (the workspace), a match counts only when its program resolves (relative to
    ``cwd``, or on ``search_path``) to a file outside the workspace: an allowlisted name must
    not re-run a script the repository ships (``./tools/vite``, ``sh tools/vite``). A pattern
    whose program is a path (``/opt/tools/vite --watch``, from the user's own config) matches
    that file exactly, wherever it is.
    """
    if not argv:
        return False
    candidates = [list(argv)]
    if len(argv) > 1 and os.path.basename(argv[0]).startswith(_INTERPRETERS) and not argv[1].startswith("-"):
        candidates.append(list(argv[1:]))
    for cand in candidates:
        program = cand[0]
        name = os.path.basename(program)
        for pat in patterns:
            try:
                toks = shlex.split(pat)
            except ValueError:
                continue
            if not toks or len(toks) > len(cand):
                continue
            if not all(fnmatchcase(a, t) for a, t in zip(cand[1:], toks[1:], strict=False)):
                continue
            explicit = "/" in toks[0]
            if explicit:
                if root is None or _resolve_program(program, root, cwd, search_path) != _real(toks[0]):
                    continue
                return True
            if not fnmatchcase(name, toks[0]):
                continue
            if root is None:
                return True
            found = _resolve_program(program, root, cwd, search_path)
            if found is not None and not _inside(found, root):
                return True
    return False


def _real(path: str) -> str:
    return os.path.realpath(os.path.expanduser(path))


def _inside(path: str, root: Path) -> bool:
    base = os.path.realpath(root)
    return path == base or path.startswith(base.rstrip("/") + "/")


def _resolve_program(program: str, root: Path, cwd: str | None, search_path: str | None) -> str | None:
    """The real path of the file ``program`` names when run in ``cwd``; None when not found."""
    if "/" in program:
        path = program if os.path.isabs(program) else os.path.join(cwd or str(root), program)
        found: str | None = path if os.path.isfile(path) else None
    else:
        found = shutil.which(program, path=search_path)
    return os.path.realpath(found) if found else None


# ------------------------------------------------------------------------------------------ helpers


def session_name_for(root: Path) -> str:
    """``tether-<basename>-<hash6>``: stable per workspace path, only tmux-safe characters."""
    resolved = str(Path(root).resolve())
    base = _SESSION_SAFE_RE.sub("-", Path(resolved).name).strip("-")[:32] or "root"
    digest = hashlib.sha256(resolved.encode()).hexdigest()[:6]
    return f"tether-{base}-{digest}"


def _fmt_escape(text: str) -> str:
    """For arguments tmux expands as formats (-c, -n): ``#`` would otherwise run ``#(...)``."""
    return text.replace("#", "##")


def _arg(text: str) -> str:
    """A trailing ``;`` ends a tmux command in a chain; ``\\;`` is tmux's escape for a literal one."""
    return text[:-1] + "\\;" if text.endswith(";") else text


def _pack(commands: list[list[str]], budget: int = _CHAIN_BUDGET) -> list[list[str]]:
    """Join commands with ``;`` into as few argv lists as fit tmux's message size."""
    chains: list[list[str]] = []
    cur: list[str] = []
    size = 0
    for raw in commands:
        cmd = [raw[0], *(_arg(a) for a in raw[1:])]
        csize = sum(len(a.encode()) + 1 for a in cmd) + 2
        if cur and size + csize > budget:
            chains.append(cur)
            cur, size = [], 0
        if cur:
            cur.append(";")
        cur.extend(cmd)
        size += csize
    if cur:
        chains.append(cur)
    return chains


def _read_proc(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _cmdline(pid: int) -> list[str] | None:
    raw = _read_proc(f"/proc/{pid}/cmdline")
    if not raw:
        return None
    argv = [a.decode("utf-8", "replace") for a in raw.rstrip(b"\0").split(b"\0")]
    # Programs that rewrite their title (node's process.title: "npm run dev") leave one spaced string.
    if len(argv) == 1 and " " in argv[0] and not os.path.exists(argv[0]):
        argv = argv[0].split()
    return argv


def _is_shell(argv: Sequence[str] | None) -> bool:
    return bool(argv) and os.path.basename(argv[0]).lstrip("-") in SHELLS  # type: ignore[index]


def foreground_pid(pane_pid: int) -> int:
    """The pid leading the pane's terminal foreground group (the pane's own pid when idle)."""
    raw = _read_proc(f"/proc/{pane_pid}/stat")
    try:
        tpgid = int(raw.rsplit(b")", 1)[1].split()[5]) if raw else -1
    except (IndexError, ValueError):
        tpgid = -1
    return tpgid if tpgid > 0 else pane_pid


def foreground_argv(pane_pid: int) -> tuple[list[str] | None, list[str] | None]:
    """(shell argv or None, foreground job argv or None) for a pane's process.

    The foreground job is the terminal's foreground process group (``tpgid`` in /proc/<pid>/stat);
    its leader is the job as typed (``npm`` rather than the node children it spawned). An idle
    shell is its own foreground group.
    """
    raw = _read_proc(f"/proc/{pane_pid}/stat")
    pane_argv = _cmdline(pane_pid)
    if raw is None or pane_argv is None:
        return None, None
    try:
        fields = raw.rsplit(b")", 1)[1].split()
        tpgid = int(fields[5])
    except (IndexError, ValueError):
        tpgid = -1
    shell = pane_argv if _is_shell(pane_argv) else None
    if tpgid <= 0 or tpgid == pane_pid:
        return (shell, None) if shell else (None, pane_argv)
    fg = _cmdline(tpgid)
    return shell, fg


# A history file beyond this is cut to its last _HISTORY_KEEP bytes when it is redacted (bash
# caps its own at HISTFILESIZE lines; the zsh hook only appends).
_HISTORY_MAX = 64 << 20
_HISTORY_KEEP = 16 << 20


def _redact_file(path: Path, known: dict[str, tuple[int, int]] | None = None) -> Path:
    """Redact a pane's history file in place: the shell appends commands in clear, and a secret
    typed on a command line must not stay on disk past the next snapshot.

    ``known`` maps a path to (inode, size) already redacted: the shell only appends, so only the
    lines after that offset are read again. A line the shell appends while the file is rewritten
    would be lost by the rename, so the rewrite is retried on the grown file."""
    for _attempt in range(3):
        try:
            st = os.stat(path)
            if st.st_size == 0:
                return path
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            return path
        seen = known.get(str(path)) if known is not None else None
        start = 0
        if seen is not None and seen[0] == st.st_ino and seen[1] <= len(data):
            start = data.rfind(b"\n", 0, seen[1]) + 1  # from the start of a line
        cut = len(data) > _HISTORY_MAX
        if cut:
            data = data[data.find(b"\n", len(data) - _HISTORY_KEEP) + 1 :]
            start = 0
        head, text = data[:start], data[start:].decode("utf-8", "surrogateescape")
        redacted = redact_lines(text.split("\n"))
        out = "\n".join(redacted)
        if out == text and not cut:
            if known is not None:
                known[str(path)] = (st.st_ino, len(data))
            return path
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            body = head + out.encode("utf-8", "surrogateescape")
            _write_private(tmp, body)
            if os.stat(path).st_size == st.st_size:
                os.replace(tmp, path)
                if known is not None:
                    known[str(path)] = (os.stat(path).st_ino, len(body))
                return path
            tmp.unlink()
        except OSError:
            with suppress(OSError):
                tmp.unlink()
            return path
    return path


def _tail_lines(path: Path, n: int) -> list[str]:
    if n <= 0:
        return []
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            chunk = min(size, max(4096, n * 256))
            fh.seek(size - chunk)
            data = fh.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    if chunk < size:
        lines = lines[1:]  # first line may be cut
    # bash writes "#<epoch>" lines when HISTTIMEFORMAT is set; they are not commands.
    lines = [ln for ln in lines if ln and not re.fullmatch(r"#\d+", ln)]
    return lines[-n:]


# Shell hooks Tether installs into panes it creates. They only read Tether's own env variables.
_PANE_START = """\
# Tether pane start: replay this pane's saved scrollback, type its command, become the shell.
# $1/$2 = byte offset/length of this pane's scrollback in $TETHER_REPLAY (one file per restore),
# $3/$4 = offset/length of the command to type, $5 = 1 to press Enter. Everything else comes from
# the session environment, which keeps each pane's part of the one chained tmux command short.
# tmux gives a new pane the PATH of the client that created it, over `-e PATH=…` and the session's:
# a recreated pane's own PATH comes through TETHER_PANE_PATH / TETHER_SESSION_PATH instead.
if [ -n "${TETHER_PANE_PATH-}" ]; then PATH="$TETHER_PANE_PATH"; export PATH
elif [ -n "${TETHER_SESSION_PATH-}" ]; then PATH="$TETHER_SESSION_PATH"; export PATH; fi
unset TETHER_PANE_PATH TETHER_SESSION_PATH
if [ "$2" -gt 0 ] 2>/dev/null && [ -f "$TETHER_REPLAY" ]; then
  tail -c "+$(($1 + 1))" "$TETHER_REPLAY" | head -c "$2"
fi
if [ "$4" -gt 0 ] 2>/dev/null && [ -f "$TETHER_REPLAY" ]; then
  # Typed-ahead keys would be echoed by the terminal before the shell's line editor shows them;
  # the hook of a bash/zsh pane turns echo back on first thing.
  case "$TETHER_SHELL_KIND" in
    bash|zsh) stty -echo 2>/dev/null && TETHER_ECHO_OFF=1 && export TETHER_ECHO_OFF ;;
  esac
  keys="$(tail -c "+$(($3 + 1))" "$TETHER_REPLAY" | head -c "$4")"
  "$TETHER_TMUX" send-keys -t "$TMUX_PANE" -l -- "$keys"
  if [ "$5" = 1 ]; then "$TETHER_TMUX" send-keys -t "$TMUX_PANE" Enter; fi
fi
# Login shells by default, as tmux's own panes are: PATH from the login files (Homebrew, pyenv,
# nvm) is there. bash reads Tether's hook as its rc file, which reads the login files itself;
# zsh is a real login shell whose ZDOTDIR points at Tether's files first.
case "$TETHER_SHELL_KIND" in
  bash) exec "$TETHER_SHELL" --noprofile --rcfile "$TETHER_HOOKS/hook.bash" -i ;;
  zsh)
    TETHER_ORIG_ZDOTDIR="${ZDOTDIR:-$HOME}"; ZDOTDIR="$TETHER_HOOKS/zsh"
    export TETHER_ORIG_ZDOTDIR ZDOTDIR
    if [ "$TETHER_SHELL_LOGIN" = 1 ]; then exec "$TETHER_SHELL" -l -i; fi
    exec "$TETHER_SHELL" -i ;;
  *)
    if [ "$TETHER_SHELL_LOGIN" = 1 ]; then exec "$TETHER_SHELL" -l; fi
    exec "${TETHER_SHELL:-/bin/sh}" ;;
esac
"""

_START_CMD = '. "$TETHER_HOOKS/pane-start.sh"'

_BASH_HOOK = """\
# Tether shell hook (bash), read instead of ~/.bashrc: the user's startup files, then a per-pane
# history file appended at every prompt.
# (bash itself has already read the system bashrc, e.g. /etc/bash.bashrc on Debian.)
if [ -n "$TETHER_ECHO_OFF" ]; then stty echo 2>/dev/null; unset TETHER_ECHO_OFF; fi
if [ "${TETHER_SHELL_RC:-1}" = 1 ] && [ "${TETHER_SHELL_LOGIN:-0}" = 1 ]; then
  # What a login shell reads: /etc/profile, then the first of ~/.bash_profile, ~/.bash_login,
  # ~/.profile (which, by convention, reads ~/.bashrc). The variables a recreated pane carries
  # are set again after them: /etc/profile may reset PATH.
  __tether_keep=()
  for __tether_n in ${TETHER_KEEP_ENV-} ${TETHER_KEEP_PANE_ENV-}; do
    [ -n "${!__tether_n+x}" ] && __tether_keep+=("$__tether_n=${!__tether_n}")
  done
  unset TETHER_KEEP_ENV TETHER_KEEP_PANE_ENV
  if [ -r /etc/profile ]; then . /etc/profile; fi
  __tether_f=
  for __tether_n in "$HOME/.bash_profile" "$HOME/.bash_login" "$HOME/.profile"; do
    if [ -r "$__tether_n" ]; then __tether_f=$__tether_n; break; fi
  done
  # No login file at all: ~/.bashrc, as a terminal's non-login shell would read.
  if [ -n "$__tether_f" ]; then . "$__tether_f"; elif [ -r "$HOME/.bashrc" ]; then . "$HOME/.bashrc"; fi
  for __tether_f in "${__tether_keep[@]}"; do export "$__tether_f"; done
  unset __tether_keep __tether_n __tether_f
elif [ "${TETHER_SHELL_RC:-1}" = 1 ] && [ -r "$HOME/.bashrc" ]; then
  . "$HOME/.bashrc"
fi
if [ -n "$TETHER_PANE_ID" ] && [ -n "$TETHER_HIST_DIR" ]; then
  TETHER_HISTFILE="$TETHER_HIST_DIR/$TETHER_PANE_ID.hist"
  HISTFILE="$TETHER_HISTFILE"
  HISTSIZE="${HISTSIZE:-5000}"
  HISTFILESIZE="${HISTFILESIZE:-10000}"
  # Append on exit instead of rewriting the file from memory: Tether redacts the file in place.
  shopt -s histappend
  # After a `cd`, the session is snapshotted (tether.tmux.watch) in a background subshell:
  # the prompt never waits for it.
  __tether_pwd=$PWD
  __tether_history() {
    builtin history -a
    if [ "$PWD" != "$__tether_pwd" ]; then
      __tether_pwd=$PWD
      __tether_w="${TETHER_HIST_DIR%/hist}/watch.sh"
      [ -f "$__tether_w" ] && ( sh "$__tether_w" cd >/dev/null 2>&1 & )
    fi
    return 0
  }
  case ";${PROMPT_COMMAND[*]:-};" in
    *";__tether_history;"*) ;;
    *) PROMPT_COMMAND="__tether_history${PROMPT_COMMAND:+;$PROMPT_COMMAND}" ;;
  esac
fi
"""

_ZSHENV = """\
# Tether shell hook (zsh): load the user's .zshenv from the real ZDOTDIR.
if [ -n "$TETHER_ECHO_OFF" ]; then stty echo 2>/dev/null; unset TETHER_ECHO_OFF; fi
if [[ -o login ]]; then
  # The variables a recreated pane carries, set again after the login files (.zprofile).
  typeset -gA __tether_keep
  for __tether_n in ${=TETHER_KEEP_ENV-} ${=TETHER_KEEP_PANE_ENV-}; do
    (( ${+parameters[$__tether_n]} )) && __tether_keep[$__tether_n]="${(P)__tether_n}"
  done
  unset __tether_n TETHER_KEEP_ENV TETHER_KEEP_PANE_ENV
fi
[ -r "${TETHER_ORIG_ZDOTDIR:-$HOME}/.zshenv" ] && . "${TETHER_ORIG_ZDOTDIR:-$HOME}/.zshenv"
"""

_ZPROFILE = """\
# Tether shell hook (zsh login shells): the user's .zprofile from the real ZDOTDIR, then the
# recreated pane's own variables again. zsh then reads Tether's .zshrc from this directory.
if [ "${TETHER_SHELL_RC:-1}" = 1 ]; then
  ZDOTDIR="${TETHER_ORIG_ZDOTDIR:-$HOME}"
  [ -r "$ZDOTDIR/.zprofile" ] && . "$ZDOTDIR/.zprofile"
  ZDOTDIR="$TETHER_HOOKS/zsh"
fi
for __tether_k __tether_v in "${(@kv)__tether_keep}"; do export "$__tether_k=$__tether_v"; done
unset __tether_keep __tether_k __tether_v
"""

_ZSHRC = """\
# Tether shell hook (zsh): per-pane history file, appended as each command is accepted.
ZDOTDIR="${TETHER_ORIG_ZDOTDIR:-$HOME}"
if [ "${TETHER_SHELL_RC:-1}" = 1 ] && [ -r "$ZDOTDIR/.zshrc" ]; then . "$ZDOTDIR/.zshrc"; fi
if [ -n "$TETHER_PANE_ID" ] && [ -n "$TETHER_HIST_DIR" ]; then
  TETHER_HISTFILE="$TETHER_HIST_DIR/$TETHER_PANE_ID.hist"
  HISTFILE="$TETHER_HISTFILE"
  HISTSIZE="${HISTSIZE:-5000}"
  # Tether's own appender writes the file; zsh must not rewrite it from memory (in clear) on exit.
  SAVEHIST=0
  fc -R "$HISTFILE" 2>/dev/null
  __tether_addhistory() { print -r -- "${1%%$'\\n'}" >> "$TETHER_HISTFILE"; return 0; }
  autoload -Uz add-zsh-hook 2>/dev/null && add-zsh-hook zshaddhistory __tether_addhistory
  # After a `cd`, the session is snapshotted (tether.tmux.watch) in the background.
  __tether_chpwd() {
    local w="${TETHER_HIST_DIR%/hist}/watch.sh"
    [ -f "$w" ] && ( sh "$w" cd >/dev/null 2>&1 & )
    return 0
  }
  add-zsh-hook chpwd __tether_chpwd 2>/dev/null
  unsetopt SHARE_HISTORY INC_APPEND_HISTORY 2>/dev/null
fi
"""


@dataclass
class _PanePlan:
    uid: str
    cwd: str
    env: dict[str, str]
    scrollback: list[str]
    history: list[str] | None  # None: keep the pane's existing history file
    keys: str | None = None
    enter: bool = False


@dataclass
class _WindowPlan:
    index: int | None
    name: str
    layout: str | None
    zoomed: bool
    active: bool
    active_pane: int
    panes: list[_PanePlan]


@dataclass
class PaneInfo:
    """One row of the ``list-panes -a -F`` call: live pane metadata."""

    session: str
    window_index: int
    layout: str
    zoomed: bool
    window_active: bool
    window_width: int
    window_height: int
    pane_id: str
    pane_index: int
    pane_active: bool
    pane_pid: int
    dead: bool
    dead_status: int | None
    width: int
    height: int
    history_size: int
    uid: str
    cwd: str
    window_name: str


# --------------------------------------------------------------------------------------------- link


class TmuxLink:
    """The tmux session of one workspace. Every method blocks: call it off the event loop."""

    def __init__(self, root: Path, config: TmuxConfig | None = None, state_dir: Path | None = None) -> None:
        self.root = Path(root).resolve()
        self.config = config or TmuxConfig()
        self.session = session_name_for(self.root)
        self.socket_path: str | None = self.config.socket_path or os.environ.get(SOCKET_ENV) or None
        self._state_dir = state_dir
        self._cache: tuple[str, TmuxSnapshot, bytes] | None = None
        self._last_uids: dict[str, str] = {}
        self._dirs: dict[str, Path] = {}  # tmux pane id -> uid, from the last capture
        self._redacted: dict[str, tuple[int, int]] = {}  # history file -> (inode, bytes redacted)

    # -- plumbing

    def _tmux_bin(self) -> str:
        # Missing or older than 3.0: said as such, not as tmux's usage text or "no server".
        return tmux_version.require()

    def base_argv(self) -> list[str]:
        argv = [self._tmux_bin()]
        if self.socket_path:
            argv += ["-S", self.socket_path]
        return argv

    def _run(
        self, args: Sequence[str], check: bool = True, cwd: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [*self.base_argv(), *args]
        try:
            res = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=_TMUX_TIMEOUT,
                stdin=subprocess.DEVNULL,
                check=False,
                cwd=cwd,
            )
        except subprocess.TimeoutExpired:
            raise TmuxError(f"tmux did not answer within {_TMUX_TIMEOUT:.0f}s ({args[0]})") from None
        except OSError as exc:
            raise TmuxError(f"cannot run tmux: {exc}") from exc
        if check and res.returncode != 0:
            raise TmuxError(self._explain(res.stderr, args[0]))
        return res

    def _explain(self, stderr: str, what: str) -> str:
        err = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
        where = self.socket_path or "the default socket"
        if "no server running" in err or "error connecting" in err:
            return f"no tmux server is running at {where} ({err})"
        return f"tmux {what} failed: {err}"

    def _state(self) -> Path:
        # Hook scripts and history files live here: never through a symlink (a state dir the
        # user put inside a repository could hold one the repository shipped).
        base = paths.state_dir(self._state_dir)
        return paths.ensure_private_dir(base / "tmux", base)

    def _session_dir(self, sub: str) -> Path:
        d = self._dirs.get(sub)
        if d is None or not d.is_dir():
            tmux = self._state()
            d = self._dirs[sub] = paths.ensure_private_dir(tmux / self.session / sub, tmux)
        return d

    def history_file(self, uid: str) -> Path:
        return self._session_dir("hist") / f"{uid}.hist"

    def _install_hooks(self) -> Path:
        d = self._state()
        for rel, text in (
            ("pane-start.sh", _PANE_START),
            ("hook.bash", _BASH_HOOK),
            ("zsh/.zshenv", _ZSHENV),
            ("zsh/.zprofile", _ZPROFILE),
            ("zsh/.zshrc", _ZSHRC),
        ):
            p = d / rel
            data = text.encode()
            if os.path.islink(p) or _read_proc(str(p)) != data:
                paths.write_private_file(p, data, base=d)
        return d

    def _shell(self) -> tuple[str, str]:
        """(kind, path) of the shell Tether starts in its panes; only bash and zsh get the hook."""
        shell = self.config.shell or os.environ.get("SHELL") or "/bin/sh"
        resolved = shutil.which(shell) or shell
        kind = os.path.basename(resolved)
        return (kind if kind in ("bash", "zsh") else "other"), resolved

    # -- public API

    def alive(self) -> bool:
        """Whether the session runs. An old tmux is an error, not "not running"."""
        try:
            return self._run(["has-session", "-t", f"={self.session}"], check=False).returncode == 0
        except TmuxTooOldError:
            raise
        except TmuxError:
            return False

    def attach_argv(self) -> list[str]:
        return [*self.base_argv(), "attach-session", "-t", f"={self.session}"]

    def kill(self) -> None:
        """Kill the workspace's session (not the server); a missing session is not an error."""
        if self.alive():
            self._run(["kill-session", "-t", f"={self.session}"], check=False)
        self._cache = None

    def ensure_session(self) -> tuple[str, bool]:
        """Create the session from the configured windows when it does not exist."""
        if self.alive():
            return self.session, False
        specs = self.config.windows or [WindowSpec("shell")]
        plans: list[_WindowPlan] = []
        for i, spec in enumerate(specs):
            cwd = self.root
            if spec.cwd:
                cand = Path(spec.cwd).expanduser()
                cwd = cand if cand.is_absolute() else self.root / cand
            pane = _PanePlan(
                uid=_new_uid(),
                cwd=str(cwd),
                env={},
                scrollback=[],
                history=None,
                # The user's own config file: its commands run; others are typed and wait.
                keys=spec.command or None,
                enter=bool(spec.command) and spec.run,
            )
            plans.append(_WindowPlan(None, spec.name, None, False, i == 0, 0, [pane]))
        self._create(plans, 200, 50)
        return self.session, True

    def panes(self) -> list[PaneInfo]:
        """Live metadata of this session's panes (one list-panes call). Raises TmuxError when the
        server is not running."""
        res = self._run(["list-panes", "-a", "-F", _LIST_FORMAT])
        return [r for r in _parse_rows(res.stdout) if r.session == self.session]

    def snapshot(self) -> TmuxSnapshot | None:
        """The session as a snapshot, or None when it is not running.

        When the pane metadata (including history sizes, cursors and window activity) and the
        history files are unchanged since the last call, the previous snapshot is returned without
        capturing anything.
        """
        res = self._run(["list-panes", "-a", "-F", _LIST_FORMAT], check=False)
        if res.returncode != 0:
            return None
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith(self.session + _SEP)]
        rows = [r for r in _parse_rows("\n".join(lines)) if r.session == self.session]
        if not rows:
            return None
        uid_col = _FIELDS.index(PANE_OPTION)
        # The uid column is left out: the first snapshot assigns uids, which must not count as a change.
        stripped = [_SEP.join(ln.split(_SEP)[:uid_col] + ln.split(_SEP)[uid_col + 1 :]) for ln in lines]
        fp = self._fingerprint(stripped, [(r.pane_id, r.uid) for r in rows])
        if self._cache is not None and self._cache[0] == fp:
            return self._cache[1]
        snap = self._capture(rows)
        if snap is None:
            return None
        by_row = self._last_uids
        self._cache = (
            self._fingerprint(stripped, [(r.pane_id, by_row.get(r.pane_id, r.uid)) for r in rows]),
            snap,
            snap.to_bytes(),
        )
        return snap

    def snapshot_bytes(self) -> bytes | None:
        """Canonical JSON of :meth:`snapshot` (the checkpoint attachment), None when not running."""
        snap = self.snapshot()
        if snap is None:
            return None
        if self._cache is not None and self._cache[1] is snap:
            return self._cache[2]
        return snap.to_bytes()

    def restore(
        self, snapshot: TmuxSnapshot | bytes | dict[str, Any], run_policy: RunPolicy | str | None = None
    ) -> RestoreReport:
        """Reattach if alive (nothing re-run), else recreate the session from ``snapshot``."""
        if isinstance(snapshot, bytes | str):
            snap = TmuxSnapshot.from_bytes(snapshot)
        elif isinstance(snapshot, dict):
            snap = TmuxSnapshot.from_json(snapshot)
        else:
            snap = TmuxSnapshot.from_json(snapshot.to_json())  # re-validate objects built in code
        policy = _policy(run_policy)
        if self.alive():
            return RestoreReport(session=self.session, recreated=False)
        report = RestoreReport(session=self.session, recreated=True)
        plans: list[_WindowPlan] = []
        session_env = {e.name: e.value for e in snap.env if e.kind == "project" and e.value is not None}
        for e in snap.env:
            if e.kind == "secret":
                report.missing_secrets.append(f"{e.name} ({e.source})")
        for w in sorted(snap.windows, key=lambda w: w.index):
            pplans: list[_PanePlan] = []
            active = 0
            for i, p in enumerate(w.panes):
                if p.active:
                    active = i
                env = {e.name: e.value for e in p.env if e.kind == "project" and e.value is not None}
                for e in p.env:
                    if e.kind == "secret":
                        report.missing_secrets.append(f"{e.name} ({e.source}, pane {p.uid})")
                keys: str | None = None
                enter = False
                action: Literal["ran", "typed", "none"] = "none"
                resume = (
                    resume_argv(p.agent.name, p.command, p.agent.id)
                    if p.agent and p.command and not p.dead
                    else None
                )
                # A command saved with a secret taken out holds the placeholder where the secret
                # was: it is typed for the user to fill in, never run (allowlisted or not).
                placeholder = is_redacted(p.command)
                if placeholder and not p.dead:
                    report.warnings.append(
                        f"pane {p.uid}: its command held a secret, typed with {REDACTED} in its "
                        "place: fill it in before pressing Enter"
                    )
                if resume is not None:
                    # The agent comes back on its own conversation; it runs only when the user's
                    # own config says so (an allowlist entry for `claude` is not enough).
                    keys = shlex.join(resume)
                    run_it = p.uid in policy.confirmed or self.config.agent_resume == "run"
                    enter = policy.mode == "allowlist" and run_it and not is_redacted(resume)
                    action = "ran" if enter else "typed"
                elif p.command and not p.dead:
                    keys = shlex.join(plain_argv(p.command) if p.agent else p.command)
                    if (
                        policy.mode == "allowlist"
                        and not placeholder
                        and (
                            p.uid in policy.confirmed
                            or matches_allowlist(
                                p.command,
                                self.config.allowlist,
                                root=self.root,
                                cwd=p.cwd,
                                search_path=env.get("PATH")
                                or session_env.get("PATH")
                                or os.environ.get("PATH"),
                            )
                        )
                    ):
                        enter = True
                        action = "ran"
                    else:
                        action = "typed"
                cwd = p.cwd
                if not os.path.isdir(cwd):
                    report.warnings.append(f"pane {p.uid}: {cwd} no longer exists; started in {self.root}")
                    cwd = str(self.root)
                pplans.append(_PanePlan(p.uid, cwd, env, p.scrollback, p.history, keys, enter))
                report.panes.append(
                    PaneRestore(
                        p.uid,
                        w.index,
                        resume if resume is not None else p.command,
                        action,
                        p.agent.name if resume is not None and p.agent else None,
                        p.agent.id if resume is not None and p.agent else None,
                    )
                )
            plans.append(_WindowPlan(w.index, w.name, w.layout, w.zoomed, w.active, active, pplans))
        width = max(w.width for w in snap.windows)
        height = max(w.height for w in snap.windows)
        self._create(plans, width, height, session_env)
        return report

    # -- internals

    def _fingerprint(self, lines: list[str], uids: list[tuple[str, str]]) -> str:
        h = hashlib.sha256()
        for ln in lines:
            h.update(ln.encode())
            h.update(b"\n")
        for pane_id, uid in uids:
            if not _UID_RE.match(uid):
                h.update(f"{pane_id}:-\n".encode())
                continue
            try:
                st = os.stat(self.history_file(uid))
                h.update(f"{pane_id}:{uid}:{st.st_size}:{st.st_mtime_ns}\n".encode())
            except OSError:
                h.update(f"{pane_id}:{uid}:-\n".encode())
        h.update(repr((self.config.scrollback_lines, self.config.history_lines)).encode())
        # A conversation id told by a hook or a step changes what an agent pane resumes.
        with suppress(OSError):
            st = os.stat(ConversationLog.for_workspace(self.root, self._state_dir).path)
            h.update(f"conversations:{st.st_size}:{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def _capture(self, rows: list[PaneInfo]) -> TmuxSnapshot | None:
        nonce = secrets.token_hex(8)
        n = self.config.scrollback_lines
        cmds: list[list[str]] = []
        uids: dict[str, str] = {}
        for i, r in enumerate(rows):
            uid = r.uid if _UID_RE.match(r.uid) else ""
            if not uid:
                uid = _new_uid()
                cmds.append(["set-option", "-p", "-t", r.pane_id, PANE_OPTION, uid])
            uids[r.pane_id] = uid
            cmds.append(["display-message", "-p", f"@@tether-{nonce}-p{i}@@"])
            if n > 0:
                cmds.append(["capture-pane", "-p", "-J", "-S", f"-{n}", "-t", r.pane_id])
        cmds.append(["display-message", "-p", f"@@tether-{nonce}-genv@@"])
        cmds.append(["show-environment", "-g"])
        cmds.append(["display-message", "-p", f"@@tether-{nonce}-senv@@"])
        cmds.append(["show-environment", "-t", f"={self.session}:"])
        out: list[str] = []
        for chain in _pack(cmds):
            res = self._run(chain, check=False)
            if res.returncode != 0:
                if not self.alive():
                    return None  # killed between the two calls
                raise TmuxError(self._explain(res.stderr, "capture-pane"))
            out.append(res.stdout)
        self._last_uids = uids
        sections = _split_sections("".join(out), nonce)
        global_env, _ = parse_show_environment("\n".join(sections.get("genv", [])))
        session_env, _removed = parse_show_environment("\n".join(sections.get("senv", [])))
        extra = self.config.env_secret_patterns
        windows: dict[int, WindowSnapshot] = {}
        for i, r in enumerate(rows):
            text = sections.get(f"p{i}", [])
            # One regex pass over the pane's text, not one per line.
            scroll = [ln.rstrip() for ln in strip_controls("\n".join(text)).split("\n")] if text else []
            while scroll and not scroll[-1]:
                scroll.pop()
            shell, command = (None, None) if r.dead else foreground_argv(r.pane_pid)
            agent = self._pane_agent(r, command, uids[r.pane_id]) if command else None
            pane_env: list[EnvVar] = []
            if not r.dead:
                raw = _read_proc(f"/proc/{r.pane_pid}/environ")
                if raw is not None:
                    base = {**global_env, **session_env}
                    pane_env = classify_env(parse_environ(raw), "pane", base, extra)
            uid = uids[r.pane_id]
            pane = PaneSnapshot(
                uid=uid,
                index=r.pane_index,
                active=r.pane_active,
                cwd=r.cwd or str(self.root),
                width=r.width,
                height=r.height,
                shell=shell,
                command=redact_argv(command) if command else None,
                dead=r.dead,
                dead_status=r.dead_status,
                scrollback=redact_lines(scroll),
                # Redacted again: the file may have grown since it was redacted in place.
                history=redact_lines(
                    _tail_lines(
                        _redact_file(self.history_file(uid), self._redacted), self.config.history_lines
                    )
                ),
                env=pane_env,
                agent=agent,
            )
            w = windows.get(r.window_index)
            if w is None:
                w = windows[r.window_index] = WindowSnapshot(
                    index=r.window_index,
                    name=r.window_name,
                    layout=r.layout,
                    zoomed=r.zoomed,
                    active=r.window_active,
                    width=r.window_width,
                    height=r.window_height,
                    panes=[],
                )
            w.panes.append(pane)
        return TmuxSnapshot(
            session=self.session,
            root=str(self.root),
            windows=[windows[k] for k in sorted(windows)],
            env=classify_env(session_env, "session", global_env, extra),
        )

    def _pane_agent(self, row: PaneInfo, command: list[str], uid: str) -> PaneAgent | None:
        """The agent in the pane and its conversation: its own records first, else what hooks and
        steps told (the durable record, by pane then cwd). A live id is recorded there too, since
        Claude's per-process records do not survive a reboot. Never raises."""
        pid = foreground_pid(row.pane_pid)
        found = probe(pid, command, row.cwd)
        if found is None:
            return None
        try:
            record = ConversationLog.for_workspace(self.root, self._state_dir)
            if found.id is not None:
                record.record(found.name, found.id, cwd=row.cwd, pane=uid, source=found.source)
                return found
            told = record.latest(found.name, pane=uid, cwd=row.cwd, since=process_start(pid))
        except OSError as exc:
            log.debug("conversation record unavailable: %s", exc)
            return found
        return PaneAgent(found.name, told.id, "told") if told is not None else found

    def _create(
        self, plans: list[_WindowPlan], width: int, height: int, session_env: dict[str, str] | None = None
    ) -> None:
        """Create the session with all windows and panes: one chained tmux invocation."""
        if not self.root.is_dir():
            raise TmuxError(f"cannot create the tmux session: workspace {self.root} does not exist")
        tmux = self._tmux_bin()  # an old or missing tmux is reported before anything is written
        hooks = self._install_hooks()
        kind, shell_path = self._shell()
        replay_dir = self._session_dir("replay")
        _remove_stale(replay_dir, max_age=600.0)
        # One replay file for all panes (one write, not one per pane); each pane reads its slice.
        replay_path = replay_dir / f"replay-{secrets.token_hex(6)}.txt"
        replay_buf = bytearray()
        s = f"={self.session}:"
        cmds: list[list[str]] = [
            # A placeholder window lets history-limit and the session environment be set before
            # the real panes exist (both are read when a pane is created); it is killed at the end.
            [
                "new-session",
                "-d",
                "-s",
                self.session,
                "-n",
                _PLACEHOLDER_NAME,
                "-x",
                str(max(width, 10)),
                "-y",
                str(max(height, 5)),
                "-c",
                _fmt_escape(str(self.root)),
                "--",
                "sleep",
                "86400",
            ],
            ["move-window", "-s", s, "-t", f"{s}{_PLACEHOLDER_INDEX}"],
            ["set-option", "-t", s, "history-limit", str(max(2000, self.config.scrollback_lines))],
            ["set-option", "-t", s, ROOT_OPTION, str(self.root)],
        ]
        login = self.config.shell_rc and self.config.login_shell and _takes_login_flag(kind, shell_path)
        plumbing = {
            "TETHER_HOOKS": str(hooks),
            "TETHER_HIST_DIR": str(self._session_dir("hist")),
            "TETHER_REPLAY": str(replay_path),
            "TETHER_SHELL_RC": "1" if self.config.shell_rc else "0",
            "TETHER_SHELL_KIND": kind,
            "TETHER_SHELL_LOGIN": "1" if login else "0",
            # Names (not values) of the restored variables the login files must not override.
            "TETHER_KEEP_ENV": " ".join(sorted(session_env or {})),
            "TETHER_SESSION_PATH": (session_env or {}).get("PATH", ""),
            "TETHER_SHELL": shell_path,
            "TETHER_TMUX": tmux,
        }
        for name, value in [*sorted((session_env or {}).items()), *plumbing.items()]:
            cmds.append(["set-environment", "-t", s, name, value])
        next_index = 0
        active_window: str | None = None
        try:
            for w in plans:
                idx = w.index if w.index is not None else next_index
                next_index = max(next_index, idx + 1)
                wt = f"{s}{idx}"
                for k, p in enumerate(w.panes):
                    hist = self.history_file(p.uid)
                    if p.history or not hist.exists():
                        data = "".join(line + "\n" for line in (p.history or []))
                        _write_private(hist, data.encode())
                    chunk = "".join(ln + "\n" for ln in p.scrollback).encode()
                    offset = len(replay_buf)
                    replay_buf += chunk
                    # The command is typed by the pane itself (send-keys -l), once its terminal
                    # has echo off, so it shows once, at the prompt.
                    keys = (p.keys or "").encode()
                    keys_at = len(replay_buf)
                    replay_buf += keys
                    env_args: list[str] = []
                    pane_env = {**p.env, "TETHER_PANE_ID": p.uid}
                    if p.env:
                        pane_env["TETHER_KEEP_PANE_ENV"] = " ".join(sorted(p.env))
                    if "PATH" in p.env:
                        pane_env["TETHER_PANE_PATH"] = p.env["PATH"]
                    for name, value in pane_env.items():
                        env_args += ["-e", f"{name}={value}"]
                    argv = [
                        "/bin/sh", "-c", _START_CMD, "tether",
                        str(offset), str(len(chunk)), str(keys_at), str(len(keys)), "1" if p.enter else "0",
                    ]  # fmt: skip
                    # Panes default to the tmux client's cwd, the root here: most need no -c at all.
                    cwd = [] if p.cwd == str(self.root) else ["-c", _fmt_escape(p.cwd)]
                    if k == 0:
                        # -n also turns automatic-rename off for the window.
                        cmds.append(
                            [
                                "new-window",
                                "-d",
                                "-t",
                                wt,
                                "-n",
                                _fmt_escape(w.name),
                                *cwd,
                                *env_args,
                                "--",
                                *argv,
                            ]
                        )
                        # Pane indexes are addressed from 0 whatever the user's pane-base-index.
                        cmds.append(["set-option", "-w", "-t", wt, "pane-base-index", "0"])
                    else:
                        # Without -d the new pane becomes active, so the next split follows it and
                        # panes keep their order.
                        cmds.append(["split-window", "-t", wt, *cwd, *env_args, "--", *argv])
                        if k % 4 == 0:
                            # Each split halves the newest pane: rebalance now and then so dozens
                            # of panes never run out of room before the final layout is applied.
                            cmds.append(["select-layout", "-t", wt, "tiled"])
                    cmds.append(["set-option", "-p", "-t", f"{wt}.{k}", PANE_OPTION, p.uid])
                if w.layout:
                    cmds.append(["select-layout", "-t", wt, w.layout])
                cmds.append(["select-pane", "-t", f"{wt}.{w.active_pane}"])
                if w.zoomed and len(w.panes) > 1:
                    cmds.append(["resize-pane", "-Z", "-t", f"{wt}.{w.active_pane}"])
                cmds.append(["set-option", "-w", "-u", "-t", wt, "pane-base-index"])
                if w.active or active_window is None:
                    active_window = wt if w.active or active_window is None else active_window
            cmds.append(["kill-window", "-t", f"{s}{_PLACEHOLDER_INDEX}"])
            if active_window:
                cmds.append(["select-window", "-t", active_window])
            if replay_buf:
                _write_private(replay_path, bytes(replay_buf))
            chains = _pack(cmds)
            for i, chain in enumerate(chains):
                res = self._run(chain, check=False, cwd=str(self.root))
                if res.returncode != 0:
                    msg = self._explain(res.stderr, "new-session" if i == 0 else "new-window")
                    if i > 0 or self.alive():
                        # Half a session is worse than none: the snapshot stays, the user retries.
                        self._run(["kill-session", "-t", f"={self.session}"], check=False)
                    raise TmuxError(msg)
        except BaseException:
            replay_path.unlink(missing_ok=True)
            raise
        self._cache = None
        log.info("tmux session %s created (%d windows)", self.session, len(plans))


# Shells that start as login shells with `-l` (bash and zsh are handled by the hook).
_LOGIN_FLAG_SHELLS = frozenset({"bash", "zsh", "sh", "dash", "ash", "ksh", "mksh", "fish", "tcsh", "csh"})


def _takes_login_flag(kind: str, path: str) -> bool:
    return kind in ("bash", "zsh") or os.path.basename(path) in _LOGIN_FLAG_SHELLS


def _write_private(path: Path, data: bytes) -> None:
    """0600 file in a 0700 dir, without fsync: replay and seeded history files are consumed within
    seconds and rebuilt from the snapshot if lost, so durability would only cost ~3 ms per pane."""
    fd = create_private_file(path.parent, path.name)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _remove_stale(d: Path, max_age: float) -> None:
    """Replay files of earlier restores (their panes have long read them)."""
    now = time.time()
    for f in d.glob("replay-*.txt"):
        with suppress(OSError):
            if now - f.stat().st_mtime > max_age:
                f.unlink()


def _new_uid() -> str:
    return "p" + secrets.token_hex(6)


def _policy(p: RunPolicy | str | None) -> RunPolicy:
    if p is None:
        return RunPolicy()
    if isinstance(p, RunPolicy):
        return p
    if p in ("allowlist", "never"):
        return RunPolicy(mode=p)  # type: ignore[arg-type]
    raise TmuxError(f"unknown run policy {p!r} (expected 'allowlist' or 'never')")


def _parse_rows(text: str) -> list[PaneInfo]:
    rows: list[PaneInfo] = []
    for line in text.splitlines():
        parts = line.split(_SEP)
        if len(parts) != len(_FIELDS):
            log.warning("tmux: skipping a pane line with %d fields (separator in a name?)", len(parts))
            continue
        f = dict(zip(_FIELDS, parts, strict=True))
        try:
            rows.append(
                PaneInfo(
                    session=f["session_name"],
                    window_index=int(f["window_index"]),
                    layout=f["window_layout"],
                    zoomed=f["window_zoomed_flag"] == "1",
                    window_active=f["window_active"] == "1",
                    window_width=int(f["window_width"]),
                    window_height=int(f["window_height"]),
                    pane_id=f["pane_id"],
                    pane_index=int(f["pane_index"]),
                    pane_active=f["pane_active"] == "1",
                    pane_pid=int(f["pane_pid"] or 0),
                    dead=f["pane_dead"] == "1",
                    dead_status=int(f["pane_dead_status"]) if f["pane_dead_status"] else None,
                    width=int(f["pane_width"]),
                    height=int(f["pane_height"]),
                    history_size=int(f["history_size"] or 0),
                    uid=f[PANE_OPTION],
                    cwd=f["pane_current_path"],
                    window_name=f["window_name"],
                )
            )
        except ValueError:
            log.warning("tmux: skipping an unparsable pane line")
    return rows


def _split_sections(out: str, nonce: str) -> dict[str, list[str]]:
    """Cut the chained output at the marker lines (plain string splits: 50k lines in a few ms)."""
    sections: dict[str, list[str]] = {}
    for part in ("\n" + out).split(f"\n@@tether-{nonce}-")[1:]:
        name, sep, body = part.partition("@@\n")
        if not sep:  # marker on the last line, nothing after it
            name, body = part.rstrip("\n").removesuffix("@@"), ""
        lines = body.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        sections[name] = lines
    return sections


__all__ = [
    "DEFAULT_ALLOWLIST",
    "SCHEMA_VERSION",
    "PaneInfo",
    "PaneRestore",
    "PaneSnapshot",
    "RestoreReport",
    "RunPolicy",
    "SnapshotFormatError",
    "TmuxConfig",
    "TmuxLink",
    "TmuxSnapshot",
    "WindowSnapshot",
    "WindowSpec",
    "foreground_argv",
    "foreground_pid",
    "matches_allowlist",
    "session_name_for",
]
