"""The coding agents Tether knows (Claude Code, Codex, Gemini CLI, opencode, aider, Copilot CLI):
which one an argv runs, the form of each one's conversation ids, and how to resume a conversation.

- **detection**: an argv (the pane's foreground job, from /proc) names one of :data:`AGENTS`, run
  directly, through its npm launcher (``node …/codex.js``) or an interpreter (``python -m aider``);
- **id validation per agent** (:func:`valid_id`): an id is only ever a UUID (``ses_…`` for
  opencode), so a record holding ``x; rm -rf ~`` or a newline is refused before it reaches tmux;
- **resume argv** (:func:`resume_argv`): the original argv with the conversation flag added or
  replaced and any one-shot prompt dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from tether.record import dataclass
from tether.text import LazyPattern

log = logging.getLogger(__name__)

AGENTS: tuple[str, ...] = ("claude", "codex", "gemini", "opencode", "aider", "copilot")
# Hook kinds and other spellings of an agent's name.
ALIASES: Mapping[str, str] = {"claude-code": "claude", "gemini-cli": "gemini", "copilot-cli": "copilot"}
# Environment variables an agent puts in the shell of the tools it runs (``tether step`` reads them).
ENV_IDS: tuple[tuple[str, str], ...] = (
    ("CLAUDE_CODE_SESSION_ID", "claude"),
    ("CODEX_THREAD_ID", "codex"),
    ("GEMINI_SESSION_ID", "gemini"),
)

# fullmatch only: `$` would accept a trailing newline, which a terminal turns into Enter.
_UUID_RE = LazyPattern(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_OPENCODE_RE = LazyPattern(r"ses_[A-Za-z0-9]{8,64}")
# npm packages (a path component of the launcher script) -> agent.
_PACKAGES: Mapping[str, str] = {
    "claude-code": "claude",
    "codex": "codex",
    "gemini-cli": "gemini",
    "opencode-ai": "opencode",
    "copilot": "copilot",
    "aider-chat": "aider",
}
# Interpreters an agent's launcher runs under: the JS agents' npm launchers, aider's Python entry
# point. A Python script named claude.py is not Claude Code.
_INTERPRETERS: Mapping[str, frozenset[str]] = {
    "node": frozenset({"claude", "codex", "gemini", "opencode", "copilot"}),
    "bun": frozenset({"claude", "codex", "gemini", "opencode", "copilot"}),
    "deno": frozenset({"claude", "codex", "gemini", "opencode", "copilot"}),
    "python": frozenset({"aider"}),
}


def canonical(agent: str) -> str | None:
    name = ALIASES.get(agent, agent)
    return name if name in AGENTS else None


def valid_id(agent: str, value: object) -> str | None:
    """``value`` when it has the form of ``agent``'s conversation ids, else None (aider has none)."""
    if not isinstance(value, str):
        return None
    if agent == "opencode":
        return value if _OPENCODE_RE.fullmatch(value) else None
    if agent in ("claude", "codex", "gemini", "copilot"):
        return value.lower() if _UUID_RE.fullmatch(value) else None
    return None


# ----------------------------------------------------------------------------------------- detect


def _name_of(token: str) -> str | None:
    base = os.path.basename(token)
    for suffix in (".js", ".mjs", ".cjs", ".exe", ".py"):
        base = base.removesuffix(suffix)
    if base in AGENTS:
        return base
    parts = Path(token).parts
    for part in parts[:-1]:
        if part in _PACKAGES:
            return _PACKAGES[part]
    return None


def detect_agent(argv: Sequence[str] | None) -> tuple[str, int] | None:
    """(agent, index of its program in argv) when argv runs one of :data:`AGENTS`.

    ``claude …`` → ("claude", 0); ``node /usr/lib/node_modules/@openai/codex/bin/codex.js`` →
    ("codex", 1); ``python3 -m aider`` → ("aider", 2).
    """
    if not argv:
        return None
    name = _name_of(argv[0])
    if name:
        return name, 0
    interp = os.path.basename(argv[0])
    allowed = next((names for k, names in _INTERPRETERS.items() if interp.startswith(k)), None)
    if len(argv) > 1 and allowed is not None:
        i = 1
        while i < len(argv) and argv[i].startswith("-") and argv[i] != "-m":
            i += 1  # interpreter flags (node --max-old-space-size=…)
        if i + 1 < len(argv) and argv[i] == "-m":
            mod = argv[i + 1].split(".")[0]
            return (mod, i + 1) if mod in allowed else None
        if i < len(argv):
            name = _name_of(argv[i])
            if name in allowed:
                return name, i
    return None


# ----------------------------------------------------------------------------------- resume argv


@dataclass(frozen=True)
class _Spec:
    value: frozenset[str]  # options taking a required value (kept with it)
    optional: frozenset[str] = frozenset()  # options with an optional value (kept)
    drop: frozenset[str] = frozenset()  # boolean options to drop
    drop_value: frozenset[str] = frozenset()  # options with a value to drop
    drop_optional: frozenset[str] = frozenset()  # options with an optional value to drop
    variadic: frozenset[str] = frozenset()  # value options taking every word up to the next option
    keep_positionals: bool = False
    subcommands: frozenset[str] = frozenset()  # non-interactive subcommands: nothing to resume


def _f(names: str) -> frozenset[str]:
    return frozenset(names.split())


# From each pinned CLI's --help (claude 2.1.328, codex 0.169.0, gemini 0.61.0, opencode 1.18.33,
# copilot 1.0.102, aider 0.86). An option missing here is read as a boolean flag.
_SPECS: Mapping[str, _Spec] = {
    "claude": _Spec(
        value=_f(
            "--add-dir --agent --agents --allowedTools --allowed-tools --append-system-prompt "
            "--append-system-prompt-file --autocompact --betas --debug-file --disallowedTools "
            "--disallowed-tools --effort --environment --fallback-model --file --input-format "
            "--json-schema --max-budget-usd --mcp-config --model -n --name --output-format "
            "--permission-mode --permission-prompts --plugin-dir --plugin-url "
            "--remote-control-session-name-prefix --setting-sources --settings --system-prompt "
            "--system-prompt-file --system-prompt-snapshot --tools --permission-prompt-tool"
        ),
        optional=_f("-d --debug -w --worktree --prompt-suggestions --remote-control --cloud"),
        drop=_f("-c --continue --fork-session -p --print --bg --background"),
        drop_value=_f("--session-id"),
        drop_optional=_f("-r --resume --from-pr --teleport"),
        variadic=_f(
            "--add-dir --allowedTools --allowed-tools --disallowedTools --disallowed-tools --betas "
            "--file --mcp-config --tools"
        ),
        subcommands=_f("mcp config doctor update install setup-token migrate-installer plugin agents"),
    ),
    "codex": _Spec(
        value=_f(
            "-c --config --enable --disable --remote --remote-auth-token-env -i --image -m --model "
            "--local-provider -p --profile -s --sandbox -C --cd --add-dir -a --ask-for-approval"
        ),
        drop=_f("--last --all --include-non-interactive"),
        subcommands=_f(
            "exec e review login logout mcp plugin app-server remote-control completion update doctor "
            "sandbox debug apply queue archive delete migrate-rollouts migrate-nfs-db unarchive fork "
            "cloud exec-server features help agents"
        ),
    ),
    "gemini": _Spec(
        value=_f(
            "-m --model -w --worktree --approval-mode --policy --admin-policy "
            "--allowed-mcp-server-names --allowed-tools -e --extensions --include-directories -o "
            "--output-format"
        ),
        drop_value=_f(
            "-p --prompt -i --prompt-interactive -r --resume --session-id --session-file --delete-session"
        ),
        drop=_f("--list-sessions"),
        subcommands=_f("mcp extensions extension skills hooks"),
    ),
    "opencode": _Spec(
        value=_f("--log-level --port --hostname --mdns-domain --cors -m --model --agent"),
        drop=_f("-c --continue --fork"),
        drop_value=_f("-s --session --prompt"),
        keep_positionals=True,  # the project directory
        subcommands=_f(
            "completion acp mcp attach run debug providers auth agent upgrade uninstall serve web "
            "models stats export import github pr session plugin plug db"
        ),
    ),
    "aider": _Spec(
        value=_f(
            "--model --weak-model --editor-model --api-key --openai-api-key --anthropic-api-key "
            "--edit-format --chat-mode --read --file --config -c --env-file --map-tokens "
            "--chat-history-file --input-history-file --reasoning-effort --thinking-tokens --test-cmd "
            "--lint-cmd --encoding --message-file -f --model-settings-file"
        ),
        drop=_f("--restore-chat-history --no-restore-chat-history"),
        drop_value=_f("--message --msg -m --message-file -f"),
        keep_positionals=True,  # the files to edit
    ),
    "copilot": _Spec(
        value=_f(
            "--model --reasoning-effort --context --auto-tier --agent -n --name -C --log-dir "
            "--extension-sdk-path --log-level --stream --output-format --add-dir --attachment "
            "--disable-mcp-server --add-github-mcp-toolset --add-github-mcp-tool --plugin-dir "
            "--additional-mcp-config --mcp-github-auth --max-autopilot-continues --mode "
            "--environment-host --environment-compute-id --dynamic-retrieval --enable-mcp-server "
            "--max-ai-credits --usage-output-file"
        ),
        optional=_f(
            "--share --bash-env --mouse --allow-tool --deny-tool --available-tools --excluded-tools "
            "--secret-env-vars --allow-url --deny-url"
        ),
        drop=_f("--continue -s --silent"),
        drop_value=_f("-i --interactive -p --prompt --session-id"),
        drop_optional=_f("-r --resume --connect"),
        subcommands=_f("mcp login logout help update version plugin init"),
    ),
}


def _program(agent: str, argv: Sequence[str], at: int) -> list[str]:
    """How to type the agent's program: its bare name when that is what PATH finds, else the path
    the launcher ran (an interpreter in front of a script with a shebang is dropped)."""
    prog = argv[at]
    if at > 0 and agent == "aider" and argv[at - 1] == "-m":
        return list(argv[: at + 1])  # python -m aider
    import shutil

    found = shutil.which(agent)
    if found and prog != agent:
        with contextlib.suppress(OSError):
            if os.path.realpath(found) == os.path.realpath(prog):
                return [agent]
    return [prog]


def _rewrite(spec: _Spec, args: Sequence[str]) -> tuple[list[str], list[str]]:
    """(options kept, positionals) of ``args``; dropped options and their values are left out."""
    kept: list[str] = []
    positionals: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            positionals.extend(args[i + 1 :])
            break
        if not a.startswith("-") or a == "-":
            positionals.append(a)
            i += 1
            continue
        name, eq, _ = a.partition("=")
        nxt = args[i + 1] if i + 1 < len(args) else None
        takes_next = not eq and nxt is not None
        if name in spec.drop:
            i += 1
        elif name in spec.drop_value:
            i += 1 if eq else 2
        elif name in spec.drop_optional:
            i += 2 if takes_next and nxt is not None and not nxt.startswith("-") else 1
        elif name in spec.value:
            kept.append(a)
            if takes_next and nxt is not None:
                kept.append(nxt)
                i += 1
            i += 1
            # Variadic options (claude's --add-dir <dirs...>) take what follows up to the next option.
            while not eq and name in spec.variadic and i < len(args) and not args[i].startswith("-"):
                kept.append(args[i])
                i += 1
        elif name in spec.optional:
            kept.append(a)
            if takes_next and nxt is not None and not nxt.startswith("-"):
                kept.append(nxt)
                i += 1
            i += 1
        else:
            kept.append(a)
            i += 1
    return kept, positionals


def resume_argv(agent: str, argv: Sequence[str] | None, conversation: str | None) -> list[str] | None:
    """The command that brings ``agent`` back on ``conversation``, or None when there is nothing to
    resume (a non-interactive subcommand, no id for an agent that needs one, an invalid id).

    The user's other flags are kept; a one-shot prompt (positional, ``-p``) is dropped, since the
    conversation already holds it.
    """
    agent = canonical(agent) or ""
    found = detect_agent(argv)
    if not argv or found is None or found[0] != agent:
        return None
    at = found[1]
    spec = _SPECS[agent]
    prog = _program(agent, argv, at)
    rest = list(argv[at + 1 :])
    if agent == "aider":
        kept, pos = _rewrite(spec, rest)
        return [*prog, *kept, *pos, "--restore-chat-history"]
    cid = valid_id(agent, conversation)
    if cid is None:
        return None
    if agent == "codex":
        # `codex [OPTIONS] [PROMPT]` or `codex [OPTIONS] resume [OPTIONS] [ID] [PROMPT]`.
        kept, pos = _rewrite(spec, rest)
        if pos and pos[0] in spec.subcommands:
            return None
        # A `resume` subcommand already there is replaced (its id and prompt with it).
        return [*prog, *kept, "resume", cid]
    kept, pos = _rewrite(spec, rest)
    if pos and pos[0] in spec.subcommands:
        return None
    if agent == "claude":
        return [*prog, *kept, "--resume", cid]
    if agent == "gemini":
        return [*prog, *kept, "--resume", cid]
    if agent == "opencode":
        return [*prog, *pos, *kept, "--session", cid]
    if agent == "copilot":
        return [*prog, *kept, "--resume", cid]
    return None


def plain_argv(argv: Sequence[str]) -> list[str]:
    """An agent's argv as typed (``claude --model opus``, not ``node /…/bin/claude …``), for a pane
    whose conversation is unknown; any other argv unchanged."""
    found = detect_agent(argv)
    if found is None or found[1] == 0:
        return list(argv)
    return [*_program(found[0], argv, found[1]), *argv[found[1] + 1 :]]


def argv_id(agent: str, argv: Sequence[str] | None) -> str | None:
    """The conversation id an argv itself names (``claude --resume ID``, ``codex resume ID``…)."""
    found = detect_agent(argv)
    if not argv or found is None or found[0] != agent:
        return None
    rest = list(argv[found[1] + 1 :])
    flags = {
        "claude": ("-r", "--resume", "--session-id"),
        "gemini": ("-r", "--resume", "--session-id"),
        "opencode": ("-s", "--session"),
        "copilot": ("-r", "--resume", "--session-id"),
    }.get(agent, ())
    for i, a in enumerate(rest):
        name, eq, val = a.partition("=")
        if name in flags:
            cand = val if eq else (rest[i + 1] if i + 1 < len(rest) else None)
            if valid_id(agent, cand):
                return valid_id(agent, cand)
        if agent == "codex" and a == "resume":
            for b in rest[i + 1 :]:
                if valid_id("codex", b):
                    return valid_id("codex", b)
    return None
