"""What `tether setup AGENT` writes for each agent, and the plan/apply steps around it.

A plan is a list of :class:`Change` (a file's text before and after), computed from the files as
they are: nothing is written until every file of the agent has been read and edited in memory,
so a malformed file stops the whole setup with nothing changed.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tether.record import dataclass
from tether.setup import blocks, jsonedit, tomledit

AGENTS = ("claude", "codex", "gemini", "opencode", "aider")
HOOK_KIND = {"claude": "claude-code", "codex": "codex", "gemini": "gemini", "opencode": "opencode"}
_OURS = re.compile(r"(?:^|[\s/'\"])tether['\"]?\s+hook\b")

INSTRUCTIONS = """\
## Tether
- At the start of a session run `tether resume --print` and continue from its next steps.
- After each unit of work run `tether step --done "<what you did>" --next "<next step>" ...`.
- Run tests and builds through Tether: `tether run -- <command>` (e.g. `tether run -- pytest -q`).
- Before re-running tests, check `tether status`: a run marked "no need to re-run" still holds.
"""

POST_COMMIT = """\
# Tether: one step per commit (aider commits after each change it makes).
tether step --done "commit $(git rev-parse --short HEAD): $(git log -1 --format=%s)" >/dev/null 2>&1 || true
"""


class SetupError(Exception):
    """A file that cannot be edited safely (malformed, or written in a form we do not change)."""


@dataclass
class Change:
    path: Path
    old: str | None  # None: the file does not exist
    new: str | None  # None: the file is removed (it held only Tether's entries)
    executable: bool = False

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def diff(self) -> str:
        a = [] if self.old is None else self.old.splitlines(keepends=True)
        b = [] if self.new is None else self.new.splitlines(keepends=True)
        lines = difflib.unified_diff(
            a,
            b,
            "/dev/null" if self.old is None else str(self.path),
            "/dev/null" if self.new is None else str(self.path),
        )
        return "".join(ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n" for ln in lines)


@dataclass
class Options:
    root: Path  # the project
    user: bool = False
    mcp: bool = False
    remove: bool = False
    command: str = "tether"
    home: Path | None = None  # for tests; else the environment's
    env: dict[str, str] | None = None


def tether_command() -> str:
    """`tether` when it is on PATH (config files stay the same on every machine), else this
    program's absolute path."""
    if shutil.which("tether"):
        return "tether"
    exe = Path(sys.argv[0])
    return shlex.quote(str(exe.resolve())) if exe.name == "tether" and exe.exists() else "tether"


# --- reading and writing -------------------------------------------------------------------------

_MAX_CONFIG = 4 * 1024 * 1024


def read_text(path: Path) -> str | None:
    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_file():
        raise SetupError(f"{path}: not a regular file; left untouched")
    if path.stat().st_size > _MAX_CONFIG:
        raise SetupError(f"{path}: larger than {_MAX_CONFIG // 1024 // 1024} MiB; left untouched")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SetupError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start}); left untouched") from None
    except OSError as exc:
        raise SetupError(f"{path}: {exc.strerror}") from None


def write(change: Change) -> None:
    if change.new is None:
        change.path.unlink(missing_ok=True)  # a symlink goes, not the file it points to
        return
    # A symlinked config (a dotfiles repository) is written through, keeping the link.
    path = change.path.resolve() if change.path.is_symlink() else change.path
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if path.exists() else (0o755 if change.executable else 0o644)
    if change.executable:
        mode |= 0o111
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tether-tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(change.new.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --- editors -------------------------------------------------------------------------------------


def _json_change(path: Path, edit: Callable[[Any], Any], comments: bool = False) -> Change:
    old = read_text(path)
    if old is None or not old.strip():
        value: Any = {}
    else:
        try:
            value = jsonedit.loads(old, comments)
        except jsonedit.JsonSyntaxError as exc:
            raise SetupError(f"{path}: malformed JSON ({exc}); left untouched") from None
        if not isinstance(value, dict):
            raise SetupError(f"{path}: expected a JSON object at the top; left untouched")
    new_value = edit(_copy(value))
    if old is None or not old.strip():
        if new_value == {}:
            return Change(path, old, old)
        return Change(path, old, jsonedit.dumps(new_value))
    if new_value == {} and value != {}:
        return Change(path, old, None)  # it held only Tether's entries
    return Change(path, old, jsonedit.patch(old, new_value, comments))


def _copy(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    return v


def _block_change(
    path: Path, body: str | None, comment: str, executable: bool = False, header: str = ""
) -> Change:
    old = read_text(path)
    text = old if old is not None else header
    try:
        new = blocks.set_block(text, body, comment)
    except blocks.BlockError as exc:
        raise SetupError(f"{path}: {exc}; left untouched") from None
    if old is None and body is None:
        return Change(path, None, None)
    if new.strip() == header.strip():
        return Change(path, old, None)
    return Change(path, old, new, executable)


def _toml_change(path: Path, table_path: tuple[str, ...], table: dict[str, Any] | None) -> Change:
    old = read_text(path)
    try:
        new = tomledit.set_table(old or "", table_path, table)
    except tomledit.TomlEditError as exc:
        raise SetupError(f"{path}: {exc}; left untouched") from None
    if old is None and table is None:
        return Change(path, None, None)
    if not new.strip() and (old or "").strip():
        return Change(path, old, None)
    return Change(path, old, new)


def _is_ours(hook: Any) -> bool:
    return (
        isinstance(hook, dict)
        and isinstance(hook.get("command"), str)
        and bool(_OURS.search(hook["command"]))
    )


def merge_hooks(settings: dict[str, Any], spec: dict[str, list[dict[str, Any]]] | None) -> dict[str, Any]:
    """``settings`` with Tether's hook groups set to ``spec`` (None: removed), in the
    Claude-style shape ``{"hooks": {Event: [{"matcher"?, "hooks": [{"type", "command"}]}]}}``
    shared by Claude Code, Codex and Gemini CLI. Other hooks are kept as they are."""
    hooks = settings.get("hooks")
    if hooks is not None and not isinstance(hooks, dict):
        raise SetupError('"hooks" is not an object')
    hooks = hooks or {}
    ours: dict[str, list[Any]] = {}
    for event, groups in hooks.items():
        if isinstance(groups, list):
            mine = [
                g for g in groups if isinstance(g, dict) and any(_is_ours(h) for h in g.get("hooks") or [])
            ]
            if mine:
                ours[event] = mine
    if ours == (spec or {}):
        return settings  # already as asked: the user's own (even empty) entries stay as they are
    stripped: dict[str, Any] = {}
    for event, groups in hooks.items():
        if event not in ours:
            stripped[event] = groups
            continue
        kept = []
        for g in groups:
            inner = g.get("hooks") if isinstance(g, dict) else None
            if isinstance(inner, list) and any(_is_ours(h) for h in inner):
                rest = [h for h in inner if not _is_ours(h)]
                if rest:
                    kept.append({**g, "hooks": rest})
            else:
                kept.append(g)
        if kept:
            stripped[event] = kept
    for event, groups in (spec or {}).items():
        stripped[event] = list(stripped.get(event, [])) + groups
    out = dict(settings)
    if stripped:
        out["hooks"] = stripped
    else:
        out.pop("hooks", None)
    return out


def _set_key(doc: dict[str, Any], parent: str, name: str, value: Any | None) -> dict[str, Any]:
    container = doc.get(parent)
    if container is not None and not isinstance(container, dict):
        raise SetupError(f'"{parent}" is not an object')
    container = dict(container or {})
    if value is None:
        if name not in container:
            return doc
        container.pop(name)
    else:
        container[name] = value
    out = dict(doc)
    if container:
        out[parent] = container
    else:
        out.pop(parent, None)
    return out


def _approve(doc: dict[str, Any], name: str, on: bool) -> dict[str, Any]:
    names = doc.get("enabledMcpjsonServers")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise SetupError('"enabledMcpjsonServers" is not a list of names')
    names = list(names or [])
    if on == (name in names):
        return doc
    names = [*names, name] if on else [n for n in names if n != name]
    out = dict(doc)
    if names:
        out["enabledMcpjsonServers"] = names
    else:
        out.pop("enabledMcpjsonServers", None)
    return out


def _guard(path: Path, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def run(doc: Any) -> Any:
        try:
            return fn(doc)
        except SetupError as exc:
            raise SetupError(f"{path}: {exc}; left untouched") from None

    return run


def _hook_group(command: str, matcher: str | None = None, **extra: Any) -> dict[str, Any]:
    group: dict[str, Any] = {} if matcher is None else {"matcher": matcher}
    group["hooks"] = [{"type": "command", "command": command, **extra}]
    return group


# --- per agent -----------------------------------------------------------------------------------


def _home(opts: Options) -> Path:
    return opts.home if opts.home is not None else Path.home()


def _env(opts: Options, name: str) -> str | None:
    env = opts.env if opts.env is not None else os.environ
    return env.get(name) or None


def claude_hooks(command: str) -> dict[str, list[dict[str, Any]]]:
    hook = f"{command} hook claude-code"
    return {
        "SessionStart": [_hook_group(hook)],
        # Every tool, MCP tools included: the scan behind the hook costs little when nothing changed.
        "PostToolUse": [_hook_group(hook, "*")],
        # PostToolUse fires on success only; a Bash command that edits then fails lands here.
        "PostToolUseFailure": [_hook_group(hook, "*")],
        "Stop": [_hook_group(hook)],
    }


def _mcp_argv(opts: Options) -> tuple[str, list[str]]:
    parts = shlex.split(opts.command)
    return parts[0], [*parts[1:], "mcp"]


def plan_claude(opts: Options) -> list[Change]:
    config = Path(_env(opts, "CLAUDE_CONFIG_DIR") or _home(opts) / ".claude")
    base = config if opts.user else opts.root / ".claude"
    if opts.mcp:
        command, args = _mcp_argv(opts)
        server = None if opts.remove else {"type": "stdio", "command": command, "args": args, "env": {}}
        if opts.user:
            # User-scope servers live in Claude's global state file (what `claude mcp add -s user` edits).
            state = (
                config / ".claude.json" if _env(opts, "CLAUDE_CONFIG_DIR") else _home(opts) / ".claude.json"
            )
            return [_json_change(state, _guard(state, lambda d: _set_key(d, "mcpServers", "tether", server)))]
        mcp = opts.root / ".mcp.json"
        # The user asked for this server by name: record Claude Code's approval of it in the
        # user's own, uncommitted settings.local.json (what answering Claude's prompt does).
        local = base / "settings.local.json"
        return [
            _json_change(mcp, _guard(mcp, lambda d: _set_key(d, "mcpServers", "tether", server))),
            _json_change(local, _guard(local, lambda d: _approve(d, "tether", not opts.remove))),
        ]
    settings = base / "settings.json"
    spec = None if opts.remove else claude_hooks(opts.command)
    md = config / "CLAUDE.md" if opts.user else opts.root / "CLAUDE.md"
    return [
        _json_change(settings, _guard(settings, lambda d: merge_hooks(d, spec))),
        _block_change(md, None if opts.remove else INSTRUCTIONS, "<!-- %s -->"),
    ]


def codex_hooks(command: str) -> dict[str, list[dict[str, Any]]]:
    hook = f"{command} hook codex"
    return {
        "SessionStart": [_hook_group(hook)],
        "PostToolUse": [_hook_group(hook)],
        "Stop": [_hook_group(hook)],
    }


def plan_codex(opts: Options) -> list[Change]:
    home = Path(_env(opts, "CODEX_HOME") or _home(opts) / ".codex")
    base = home if opts.user else opts.root / ".codex"
    if opts.mcp:
        command, args = _mcp_argv(opts)
        table = None if opts.remove else {"command": command, "args": args}
        return [_toml_change(base / "config.toml", ("mcp_servers", "tether"), table)]
    hooks = base / "hooks.json"
    spec = None if opts.remove else codex_hooks(opts.command)
    md = home / "AGENTS.md" if opts.user else opts.root / "AGENTS.md"
    return [
        _json_change(hooks, _guard(hooks, lambda d: merge_hooks(d, spec))),
        _block_change(md, None if opts.remove else INSTRUCTIONS, "<!-- %s -->"),
    ]


def gemini_hooks(command: str) -> dict[str, list[dict[str, Any]]]:
    hook = f"{command} hook gemini"
    extra: dict[str, Any] = {"name": "tether", "timeout": 10000}  # Gemini's timeouts are in milliseconds
    return {
        "SessionStart": [_hook_group(hook, **extra)],
        "AfterTool": [_hook_group(hook, "*", **extra)],
        "AfterAgent": [_hook_group(hook, **extra)],
    }


def plan_gemini(opts: Options) -> list[Change]:
    home = _home(opts) / ".gemini"
    base = home if opts.user else opts.root / ".gemini"
    settings = base / "settings.json"
    if opts.mcp:
        command, args = _mcp_argv(opts)
        server = None if opts.remove else {"command": command, "args": args}
        return [
            _json_change(
                settings, _guard(settings, lambda d: _set_key(d, "mcpServers", "tether", server)), True
            )
        ]
    spec = None if opts.remove else gemini_hooks(opts.command)
    md = home / "GEMINI.md" if opts.user else opts.root / "GEMINI.md"
    return [
        _json_change(settings, _guard(settings, lambda d: merge_hooks(d, spec)), True),
        _block_change(md, None if opts.remove else INSTRUCTIONS, "<!-- %s -->"),
    ]


OPENCODE_PLUGIN = """\
// Written by `tether setup opencode` (`tether setup opencode --remove` deletes it).
// Tells Tether after each tool call and when a session goes idle; never waits for it, never fails.
import { spawn } from "node:child_process";

export const TetherPlugin = async ({ directory }) => {
  const hook = (event) => {
    try {
      const child = spawn(%(argv)s, { cwd: directory, stdio: ["pipe", "ignore", "ignore"] });
      child.on("error", () => {});
      child.stdin.on("error", () => {});
      child.stdin.end(JSON.stringify({ cwd: directory, ...event }));
    } catch {}
  };
  return {
    "tool.execute.after": async (input) => {
      hook({ hook_event_name: "PostToolUse", tool_name: input.tool, session_id: input.sessionID });
    },
    event: async ({ event }) => {
      if (event.type === "session.idle") {
        hook({ hook_event_name: "Stop", session_id: event.properties?.sessionID });
      }
    },
  };
};
"""


def _opencode_plugin(command: str) -> str:
    import json

    argv = [*shlex.split(command), "hook", "opencode"]
    head, rest = argv[0], argv[1:]
    return OPENCODE_PLUGIN % {"argv": f"{json.dumps(head)}, {json.dumps(rest)}"}


def plan_opencode(opts: Options) -> list[Change]:
    config = Path(_env(opts, "XDG_CONFIG_HOME") or _home(opts) / ".config") / "opencode"
    conf = config / "opencode.json" if opts.user else opts.root / "opencode.json"
    if opts.mcp:
        command, args = _mcp_argv(opts)
        server = None if opts.remove else {"type": "local", "command": [command, *args], "enabled": True}
        return [_json_change(conf, _guard(conf, lambda d: _set_key(d, "mcp", "tether", server)), True)]
    plugin = (config if opts.user else opts.root / ".opencode") / "plugin" / "tether.js"
    old = read_text(plugin)
    if old is not None and not old.startswith("// Written by `tether setup opencode`"):
        raise SetupError(f"{plugin}: exists and was not written by Tether; left untouched")
    md = config / "AGENTS.md" if opts.user else opts.root / "AGENTS.md"
    return [
        Change(plugin, old, None if opts.remove else _opencode_plugin(opts.command)),
        _block_change(md, None if opts.remove else INSTRUCTIONS, "<!-- %s -->"),
    ]


def _git_hooks_dir(root: Path) -> Path | None:
    """Where git looks for hooks (honours worktrees and core.hooksPath); None outside a repo."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "--path-format=absolute", "--git-path", "hooks"],
            check=False,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def plan_aider(opts: Options) -> list[Change]:
    if opts.mcp:
        raise SetupError("aider has no MCP client; `tether setup aider` sets up its git hook and conventions")
    if opts.user:
        raise SetupError("aider has no user-level hooks: run `tether setup aider` in each project")
    changes: list[Change] = []
    hooks_dir = _git_hooks_dir(opts.root)
    if hooks_dir is None:
        raise SetupError(f"{opts.root}: not a git repository (aider's steps come from its commits)")
    body = None if opts.remove else POST_COMMIT.replace("tether step", f"{opts.command} step")
    changes.append(
        _block_change(hooks_dir / "post-commit", body, "# %s", executable=True, header="#!/bin/sh\n")
    )
    changes.append(
        _block_change(opts.root / "AGENTS.md", None if opts.remove else INSTRUCTIONS, "<!-- %s -->")
    )
    conf = opts.root / ".aider.conf.yml"
    text = read_text(conf) or ""
    has_read = re.search(r"^read\s*:", blocks.set_block(text, None, "# %s"), re.MULTILINE) is not None
    if not has_read or opts.remove:
        changes.append(_block_change(conf, None if opts.remove else "read: AGENTS.md", "# %s"))
    return changes


PLANNERS: dict[str, Callable[[Options], list[Change]]] = {
    "claude": plan_claude,
    "codex": plan_codex,
    "gemini": plan_gemini,
    "opencode": plan_opencode,
    "aider": plan_aider,
}


def plan(agent: str, opts: Options) -> list[Change]:
    return [c for c in PLANNERS[agent](opts) if c.changed]


def apply(changes: list[Change]) -> list[Change]:
    """Write the changes in order; on a write error, SetupError naming the file and what was
    already written."""
    done: list[Change] = []
    for c in changes:
        try:
            write(c)
        except OSError as exc:
            written = ", ".join(str(d.path) for d in done) or "nothing"
            raise SetupError(
                f"{c.path}: cannot write ({exc.strerror}); written before it: {written}"
            ) from None
        done.append(c)
    return done
