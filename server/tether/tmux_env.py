"""Environment classification and secret redaction for tmux snapshots.

A snapshot keeps the environment as a *classified diff* against tmux's global environment:

- ``volatile``: tied to one login or one tmux server (agent sockets, display, TMUX_PANE...). Only the
  name is kept; restoring a stale SSH_AUTH_SOCK is what breaks VS Code's persistent terminals.
- ``secret``: the name looks like a credential (or the value looks like a token). The value is
  never stored, only the name and where it came from, so a resume can say "re-export GITHUB_TOKEN".
- ``project``: everything else; name and value are kept and re-applied to recreated panes.

Scrollback and shell history pass through :func:`redact_text` before they enter a snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

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

DEFAULT_SECRET_PATTERNS: tuple[str, ...] = (
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "PASS$",
    "PWD$",
    "KEY",
    "CREDENTIAL",
    "AUTH",
    "PRIVATE",
    "COOKIE",
    "SESSION_ID",
    "SIGNATURE",
    "_DSN$",
    "DATABASE_URL",
)

# Value shapes that are secrets whatever the variable is called; also used to redact text.
_TOKEN_VALUE_PATTERNS: tuple[str, ...] = (
    r"gh[pousr]_[A-Za-z0-9]{20,}",  # GitHub tokens
    r"github_pat_[A-Za-z0-9_]{20,}",
    r"glpat-[A-Za-z0-9_\-]{20,}",  # GitLab
    r"sk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}",  # OpenAI / Anthropic style keys
    r"xox[abpr]-[A-Za-z0-9\-]{10,}",  # Slack
    r"(?:AKIA|ASIA)[0-9A-Z]{16}",  # AWS access key id
    r"AIza[0-9A-Za-z_\-]{35}",  # Google API key
    r"npm_[A-Za-z0-9]{36}",
    r"eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}",  # JWT
)
TOKEN_VALUE_RE = re.compile("|".join(f"(?:{p})" for p in _TOKEN_VALUE_PATTERNS))

REDACTED = "[REDACTED]"

# `password=...`, `TOKEN: ...`, `export API_KEY="..."`, `--password ...`: keep the name, drop the value.
_ASSIGN_RE = re.compile(
    r"(?P<name>[A-Za-z0-9_.\-]*(?:token|secret|passw(?:or)?d|passphrase|api[_\-]?key|access[_\-]?key"
    r"|private[_\-]?key|credential|auth)[A-Za-z0-9_.\-]*)"
    r"(?P<sep>\s*[=:]\s*|\s+)"
    r"(?P<value>\"[^\"\n]*\"|'[^'\n]*'|[^\s'\"]+)",
    re.IGNORECASE,
)
# URLs with inline credentials: scheme://user:password@host
_URL_CRED_RE = re.compile(r"(?P<pre>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]+:)(?P<pw>[^@\s/]+)(?P<at>@)")
# PEM private key bodies.
_PEM_RE = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL
)


@dataclass(frozen=True)
class EnvVar:
    """One classified variable. ``value`` is None for volatile and secret variables, always."""

    name: str
    kind: EnvKind
    value: str | None
    source: str  # "session" (tmux session environment) or "pane" (the pane's process env)

    def to_json(self) -> dict[str, str | None]:
        return {"name": self.name, "kind": self.kind, "value": self.value, "source": self.source}


def _secret_name_re(extra: Iterable[str] = ()) -> re.Pattern[str]:
    return re.compile("|".join((*DEFAULT_SECRET_PATTERNS, *extra)), re.IGNORECASE)


def is_volatile(name: str) -> bool:
    return name in VOLATILE_NAMES or name.startswith(VOLATILE_PREFIXES)


def classify(name: str, value: str, extra_secret_patterns: Sequence[str] = ()) -> EnvKind:
    """Volatile wins over secret (SSH_AUTH_SOCK is a socket path, not a credential)."""
    if is_volatile(name):
        return "volatile"
    if _secret_name_re(extra_secret_patterns).search(name):
        return "secret"
    if TOKEN_VALUE_RE.search(value) or _URL_CRED_RE.search(value):
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
    pattern = _secret_name_re(extra_secret_patterns)
    out: list[EnvVar] = []
    for name in sorted(env):
        value = env[name]
        if name.startswith(INTERNAL_PREFIX):
            continue
        if base is not None and base.get(name) == value:
            continue
        if is_volatile(name):
            kind: EnvKind = "volatile"
        elif pattern.search(name) or TOKEN_VALUE_RE.search(value) or _URL_CRED_RE.search(value):
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


# Cheap pre-filter: text containing none of these cannot hold a secret the patterns below find.
# Plain substring tests (on lowercased text) run at memory speed; a case-insensitive regex
# alternation over megabytes of scrollback took a second.
_TRIGGER_WORDS = (
    "token",
    "secret",
    "pass",
    "key",
    "private",
    "credential",
    "auth",
    "://",
    "sk-",
    "xox",
    "npm_",
)
_TRIGGER_CASED = ("AKIA", "ASIA", "AIza", "eyJ", "_pat_", "glpat-")
_TRIGGER_GH = re.compile(r"gh[pousr]_")  # literal prefix: the regex engine scans for "gh" quickly


def _triggered(text: str) -> bool:
    low = text.lower()
    return (
        any(w in low for w in _TRIGGER_WORDS)
        or any(w in text for w in _TRIGGER_CASED)
        or _TRIGGER_GH.search(text) is not None
    )


def redact_text(text: str) -> str:
    """Replace secret values in free text (scrollback, shell history) with ``[REDACTED]``."""
    if not text or not _triggered(text):
        return text
    text = _PEM_RE.sub(REDACTED, text)
    text = _URL_CRED_RE.sub(lambda m: f"{m['pre']}{REDACTED}{m['at']}", text)

    def _assign(m: re.Match[str]) -> str:
        value = m["value"]
        if value == REDACTED or value.startswith(("-", "$")):
            # `--token-file path` or `$TOKEN`: a flag or a reference, not the secret itself.
            return m.group(0)
        if m["sep"].isspace() and not _looks_secret_value(value):
            # `auth module` in prose: a space separator only counts for token-looking values.
            return m.group(0)
        return f"{m['name']}{m['sep']}{REDACTED}"

    text = _ASSIGN_RE.sub(_assign, text)
    return TOKEN_VALUE_RE.sub(REDACTED, text)


def _looks_secret_value(value: str) -> bool:
    v = value.strip("\"'")
    return len(v) >= 8 and any(c.isdigit() for c in v) and any(c.isalpha() for c in v)


def redact_lines(lines: Iterable[str]) -> list[str]:
    """Redact each line; a block without any trigger word is returned as is after one scan.

    PEM blocks span lines, so they are removed from the joined text first.
    """
    lines = list(lines)
    joined = "\n".join(lines)
    if not _triggered(joined):
        return lines
    if "PRIVATE KEY-----" in joined:
        lines = _PEM_RE.sub(REDACTED, joined).split("\n")
    return [redact_text(line) for line in lines]
