"""What the workspace's tmux session is made of and what may run in it: windows, capture limits, the
shell, and the re-run allowlist (a command in a recreated pane runs only when the user's own config
allows it; anything else is typed and waits for Enter)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from tether.errors import TmuxError
from tether.record import dataclass, field

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


def as_run_policy(p: RunPolicy | str | None) -> RunPolicy:
    if p is None:
        return RunPolicy()
    if isinstance(p, RunPolicy):
        return p
    if p in ("allowlist", "never"):
        return RunPolicy(mode=p)  # type: ignore[arg-type]
    raise TmuxError(f"unknown run policy {p!r} (expected 'allowlist' or 'never')")
