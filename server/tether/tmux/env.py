"""Environment classification for tmux snapshots.

A snapshot keeps the environment as a *classified diff* against tmux's global environment:

- ``volatile``: tied to one login or one tmux server (agent sockets, display, TMUX_PANE...). Only the
  name is kept; restoring a stale SSH_AUTH_SOCK is what breaks VS Code's persistent terminals.
- ``secret``: the name looks like a credential, or the value holds one (a token, a URL with a
  password, a connection-string key: anything :mod:`tether.redact` would redact). The value is
  never stored, only the name and where it came from, so a resume can say "re-export GITHUB_TOKEN".
- ``project``: everything else; name and value are kept and re-applied to recreated panes.

What counts as secret is decided in :mod:`tether.redact`, like every other redaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from tether.record import dataclass
from tether.redact import contains_secret, is_secret_name, secret_name_re

EnvKind = Literal["volatile", "project", "secret"]

VOLATILE_NAMES: frozenset[str] = frozenset(
    {
        "SSH_AUTH_SOCK",
        "SSH_AGENT_PID",
        "SSH_CONNECTION",
        "SSH_CLIENT",
        "SSH_TTY",
        "SSH_ASKPASS",
        "GPG_AGENT_INFO",
        "DISPLAY",
        "WAYLAND_DISPLAY",
        "XAUTHORITY",
        "WINDOWID",
        "DBUS_SESSION_BUS_ADDRESS",
        "KRB5CCNAME",
        "TERM_SESSION_ID",
        "SHLVL",
        "PWD",
        "OLDPWD",
        "_",
        "COLUMNS",
        "LINES",
        "STY",
        "INVOCATION_ID",
        "JOURNAL_STREAM",
        "MANAGERPID",
        "VSCODE_IPC_HOOK_CLI",
        "VSCODE_GIT_IPC_HANDLE",
        "VSCODE_GIT_ASKPASS_NODE",
        "VSCODE_GIT_ASKPASS_MAIN",
        "GIT_ASKPASS",
        "NVIM",
        "NVIM_LISTEN_ADDRESS",
        # Set by tmux itself for every pane.
        "TERM",
        "TERM_PROGRAM",
        "TERM_PROGRAM_VERSION",
        "COLORTERM",
    }
)
VOLATILE_PREFIXES: tuple[str, ...] = ("TMUX", "XDG_SESSION_", "XDG_RUNTIME_DIR", "XDG_VTNR", "XDG_SEAT")

# Tether's own plumbing variables (history file paths) are re-created on restore, never diffed.
INTERNAL_PREFIX = "TETHER_"


@dataclass(frozen=True)
class EnvVar:
    """One classified variable. ``value`` is None for volatile and secret variables, always."""

    name: str
    kind: EnvKind
    value: str | None
    source: str  # "session" (tmux session environment) or "pane" (the pane's process env)

    def to_json(self) -> dict[str, str | None]:
        return {"name": self.name, "kind": self.kind, "value": self.value, "source": self.source}


def is_volatile(name: str) -> bool:
    return name in VOLATILE_NAMES or name.startswith(VOLATILE_PREFIXES)


def classify(name: str, value: str, extra_secret_patterns: Sequence[str] = ()) -> EnvKind:
    """Volatile wins over secret (SSH_AUTH_SOCK is a socket path, not a credential)."""
    if is_volatile(name):
        return "volatile"
    if is_secret_name(name, extra_secret_patterns) or contains_secret(value):
        return "secret"
    return "project"


def classify_env(
    env: Mapping[str, str],
    source: str,
    base: Mapping[str, str] | None = None,
    extra_secret_patterns: Sequence[str] = (),
) -> list[EnvVar]:
    """Classify the variables of ``env`` that are new or changed relative to ``base``.

    Secret and volatile values are dropped here, before anything can serialise them.
    """
    pattern = secret_name_re(extra_secret_patterns)
    out: list[EnvVar] = []
    for name in sorted(env):
        value = env[name]
        if name.startswith(INTERNAL_PREFIX):
            continue
        if base is not None and base.get(name) == value:
            continue
        if is_volatile(name):
            kind: EnvKind = "volatile"
        elif pattern.search(name) or contains_secret(value):
            kind = "secret"
        else:
            kind = "project"
        out.append(EnvVar(name, kind, value if kind == "project" else None, source))
    return out


def parse_environ(raw: bytes) -> dict[str, str]:
    """Parse /proc/<pid>/environ (NUL-separated NAME=value)."""
    env: dict[str, str] = {}
    for item in raw.split(b"\0"):
        if not item or b"=" not in item:
            continue
        name, _, value = item.partition(b"=")
        env[name.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return env


def parse_show_environment(text: str) -> tuple[dict[str, str], set[str]]:
    """Parse ``tmux show-environment`` output: (set variables, names marked for removal ``-NAME``)."""
    env: dict[str, str] = {}
    removed: set[str] = set()
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("-"):
            removed.add(line[1:])
            continue
        name, sep, value = line.partition("=")
        if sep:
            env[name] = value
    return env, removed
