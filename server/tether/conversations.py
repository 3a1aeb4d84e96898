"""The coding agents' own conversations: which agent runs in a pane, its conversation id, how to resume it.

One concern, four parts:

- **detection**: an argv (the pane's foreground job, from /proc) names one of :data:`AGENTS`, run
  directly, through its npm launcher (``node …/codex.js``) or an interpreter (``python -m aider``);
- **the agent's own records**, read while it runs (:func:`probe`): Claude Code's
  ``<config>/sessions/<pid>.json``, Codex's rollout files matched by cwd, Gemini CLI's
  ``~/.gemini/tmp/<project>/chats/session-*.jsonl``, opencode's SQLite ``session`` table, Copilot
  CLI's ``~/.copilot/session-state/<id>/inuse.<pid>.lock``. Paths come from the agent process's own
  environment (``CLAUDE_CONFIG_DIR``, ``CODEX_HOME``, ``XDG_DATA_HOME``, ``HOME``). Every file is
  opened without following symlinks and read to a small cap; anything unreadable gives no id;
- **id validation per agent** (:func:`valid_id`): an id is only ever a UUID (``ses_…`` for
  opencode), so a record holding ``x; rm -rf ~`` or a newline is refused before it reaches tmux;
- **resume argv** (:func:`resume_argv`): the original argv with the conversation flag added or
  replaced and any one-shot prompt dropped;
- **the durable record** (:class:`ConversationLog`): "agent X, conversation Y, in this cwd/pane" as
  told by hooks and ``tether step`` (and learned at snapshots), per workspace, next to its store.
  Claude clears ``~/.claude/sessions`` at reboot, so what was learned before must be kept here.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import stat
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tether import paths

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
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_OPENCODE_RE = re.compile(r"ses_[A-Za-z0-9]{8,64}")
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
_READ_CAP = 256 * 1024  # session records are a few hundred bytes; a huge one is not theirs
_LINE_CAP = 64 * 1024
_SCAN_FILES = 200  # newest rollout / chat files looked at per probe
_LOG_NAME = "conversations.json"
_LOG_KEEP = 50


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


# ------------------------------------------------------------------------------------ live probe


@dataclass(frozen=True)
class PaneAgent:
    """The agent running in a pane, as captured in a tmux snapshot."""

    name: str
    id: str | None
    source: str  # where the id came from: a record, "argv", "told" (hook/step), or "none"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "id": self.id, "source": self.source}

    @classmethod
    def from_json(cls, doc: object) -> PaneAgent | None:
        """Validated read-back (snapshots are files on disk): a bad id is dropped, never typed."""
        if not isinstance(doc, dict):
            return None
        raw = doc.get("name")
        name = canonical(raw) if isinstance(raw, str) else None
        if name is None:
            return None
        source = doc.get("source")
        return cls(name, valid_id(name, doc.get("id")), source if isinstance(source, str) else "none")


def read_capped(path: Path | str, cap: int = _READ_CAP) -> bytes | None:
    """A regular file's bytes, never through a symlink, None when bigger than ``cap``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > cap:
            return None
        return os.read(fd, cap + 1)[:cap]
    except OSError:
        return None
    finally:
        os.close(fd)


def _first_json_line(path: Path) -> dict[str, Any] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        head = os.read(fd, _LINE_CAP)
    except OSError:
        return None
    finally:
        os.close(fd)
    line, nl, _ = head.partition(b"\n")
    if not nl and len(head) >= _LINE_CAP:
        return None
    try:
        doc = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _environ(pid: int) -> dict[str, str]:
    raw = read_capped(f"/proc/{pid}/environ", 1 << 20)
    out: dict[str, str] = {}
    for item in (raw or b"").split(b"\0"):
        k, eq, v = item.partition(b"=")
        if eq:
            out[k.decode("utf-8", "replace")] = v.decode("utf-8", "replace")
    return out


def process_start(pid: int) -> float | None:
    """Wall-clock start time of ``pid`` (boot time + its start tick)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            ticks = int(fh.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/stat", "rb") as fh:
            btime = next(int(ln.split()[1]) for ln in fh if ln.startswith(b"btime"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return btime + ticks / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int, limit: int = 64) -> list[int]:
    """``pid`` and its descendants (npm launchers run the native agent as a child)."""
    out = [pid]
    i = 0
    while i < len(out) and len(out) < limit:
        p = out[i]
        i += 1
        with contextlib.suppress(OSError), open(f"/proc/{p}/task/{p}/children", "rb") as fh:
            out.extend(int(x) for x in fh.read().split() if x.isdigit())
    return out[:limit]


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or os.path.expanduser("~"))


def _newest(pattern: str, limit: int = _SCAN_FILES) -> list[Path]:
    found: list[tuple[float, str]] = []
    for p in glob.glob(pattern):
        with contextlib.suppress(OSError):
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                found.append((st.st_mtime, p))
    found.sort(reverse=True)
    return [Path(p) for _, p in found[:limit]]


def _mtime(path: Path) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0


def _claude(pids: list[int], env: Mapping[str, str], cwd: str, since: float | None) -> str | None:
    base = Path(env["CLAUDE_CONFIG_DIR"]) if env.get("CLAUDE_CONFIG_DIR") else _home(env) / ".claude"
    for pid in pids:
        raw = read_capped(base / "sessions" / f"{pid}.json")
        if raw is None:
            continue
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(doc, dict) and doc.get("pid") == pid:
            sid = valid_id("claude", doc.get("sessionId"))
            if sid:
                return sid
    return None


def _codex(pids: list[int], env: Mapping[str, str], cwd: str, since: float | None) -> str | None:
    base = Path(env["CODEX_HOME"]) if env.get("CODEX_HOME") else _home(env) / ".codex"
    # Rollouts live in one directory per day: only the days since the process started (local
    # dates, a day of slack) are listed, not a heavy user's whole history.
    days = sorted(glob.glob(str(base / "sessions" / "[0-9]*" / "[0-9]*" / "[0-9]*")), reverse=True)
    if since is not None:
        first = time.strftime("%Y/%m/%d", time.localtime(since - 86400))
        days = [d for d in days if d[len(str(base / "sessions")) + 1 :] >= first]
    files: list[Path] = []
    for d in days[:31]:
        files.extend(_newest(str(Path(d) / "rollout-*.jsonl")))
        if len(files) >= _SCAN_FILES:
            break
    files.sort(key=_mtime, reverse=True)
    for path in files[:_SCAN_FILES]:
        if since is not None and _mtime(path) < since - 2:
            break  # older than the process: not its conversation (and the rest are older still)
        doc = _first_json_line(path)
        payload = doc.get("payload") if doc else None
        if not isinstance(payload, dict) or doc is None or doc.get("type") != "session_meta":
            continue
        if payload.get("cwd") == cwd:
            sid = valid_id("codex", payload.get("id"))
            if sid and path.name.endswith(f"{sid}.jsonl"):
                return sid
    return None


def _gemini(pids: list[int], env: Mapping[str, str], cwd: str, since: float | None) -> str | None:
    base = _home(env) / ".gemini"
    digest = hashlib.sha256(cwd.encode()).hexdigest()
    dirs = [base / "tmp" / digest]
    raw = read_capped(base / "projects.json")
    with contextlib.suppress(ValueError, UnicodeDecodeError, AttributeError, TypeError):
        short = json.loads(raw or b"{}").get("projects", {}).get(cwd)
        if isinstance(short, str) and short and "/" not in short and short not in (".", ".."):
            dirs.insert(0, base / "tmp" / short)
    for d in dirs:
        for path in _newest(str(d / "chats" / "session-*.jsonl")):
            if since is not None and _mtime(path) < since - 2:
                break
            doc = _first_json_line(path)
            if doc and doc.get("projectHash") == digest and doc.get("kind", "main") == "main":
                sid = valid_id("gemini", doc.get("sessionId"))
                if sid:
                    return sid
    return None


def _opencode(pids: list[int], env: Mapping[str, str], cwd: str, since: float | None) -> str | None:
    data = Path(env["XDG_DATA_HOME"]) if env.get("XDG_DATA_HOME") else _home(env) / ".local" / "share"
    db = data / "opencode" / "opencode.db"
    try:
        if not stat.S_ISREG(os.lstat(db).st_mode):
            return None
    except OSError:
        return None
    try:
        conn = sqlite3.connect(f"file:{quote(str(db))}?mode=ro", uri=True, timeout=0.5)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute(
            "SELECT id, time_updated FROM session WHERE directory = ? AND parent_id IS NULL "
            "ORDER BY time_updated DESC LIMIT 1",
            (cwd,),
        ).fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    if not row or (since is not None and isinstance(row[1], int) and row[1] / 1000 < since - 2):
        return None  # a session of an earlier run: this one has not started a conversation yet
    return valid_id("opencode", row[0])


def _copilot(pids: list[int], env: Mapping[str, str], cwd: str, since: float | None) -> str | None:
    base = Path(env["COPILOT_HOME"]) if env.get("COPILOT_HOME") else _home(env) / ".copilot"
    for pid in pids:
        for lock in glob.glob(str(base / "session-state" / "*" / f"inuse.{pid}.lock")):
            sid = valid_id("copilot", Path(lock).parent.name)
            if sid:
                return sid
    return None


_READERS = {
    "claude": (_claude, "claude-sessions"),
    "codex": (_codex, "codex-rollout"),
    "gemini": (_gemini, "gemini-chats"),
    "opencode": (_opencode, "opencode-db"),
    "copilot": (_copilot, "copilot-session-state"),
}


def probe(pid: int, argv: Sequence[str] | None, cwd: str | None = None) -> PaneAgent | None:
    """The agent ``pid`` runs (``argv`` is its command line) and its conversation id, when its own
    records tell it. Never raises: an unreadable record is no id."""
    found = detect_agent(argv)
    if found is None:
        return None
    agent = found[0]
    try:
        env = _environ(pid)
        try:
            here = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            here = cwd or ""
        reader = _READERS.get(agent)
        if reader is not None:
            sid = reader[0](_descendants(pid), env, here, process_start(pid))
            if sid:
                return PaneAgent(agent, sid, reader[1])
        sid = argv_id(agent, argv)
        if sid:
            return PaneAgent(agent, sid, "argv")
    except Exception:  # a record we cannot read is no id, never a failed snapshot
        log.debug("agent probe of pid %s failed", pid, exc_info=True)
    return PaneAgent(agent, None, "none")


# --------------------------------------------------------------------------------- durable record


@dataclass(frozen=True)
class Conversation:
    agent: str
    id: str
    cwd: str | None
    pane: str | None  # Tether's pane uid (TETHER_PANE_ID) when known
    source: str  # "hook", "step", a record name (learned at a snapshot)
    time: float

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent, "id": self.id, "cwd": self.cwd, "pane": self.pane,
            "source": self.source, "time": self.time,
        }  # fmt: skip

    @classmethod
    def from_json(cls, doc: object) -> Conversation | None:
        if not isinstance(doc, dict):
            return None
        agent = canonical(doc["agent"]) if isinstance(doc.get("agent"), str) else None
        cid = valid_id(agent, doc.get("id")) if agent else None
        t = doc.get("time")
        if agent is None or cid is None or not isinstance(t, int | float) or isinstance(t, bool):
            return None
        cwd, pane, source = doc.get("cwd"), doc.get("pane"), doc.get("source")
        return cls(
            agent,
            cid,
            cwd if isinstance(cwd, str) else None,
            pane if isinstance(pane, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", pane) else None,
            source if isinstance(source, str) else "told",
            float(t),
        )


class ConversationLog:
    """The workspace's record of agent conversations, newest last; 0600 JSON next to the store.

    Writers (hooks, steps, snapshots: several processes) update it under an flock, read-modify-
    write, and replace it atomically, so two hooks at once never lose each other's record.
    """

    def __init__(self, directory: Path, base: Path | None = None) -> None:
        self.path = directory / _LOG_NAME
        self.base = base  # the state dir: nothing below it is followed through a symlink

    @classmethod
    def for_workspace(cls, root: Path, state: str | os.PathLike[str] | None = None) -> ConversationLog:
        from tether.store import workspace_key

        base = paths.state_dir(state)
        return cls(base / "workspaces" / workspace_key(Path(root).resolve()), base)

    def entries(self) -> list[Conversation]:
        raw = read_capped(self.path, 4 << 20)
        if not raw:
            return []
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            log.warning("%s is not valid JSON; starting a new conversation record", self.path)
            return []
        items = doc.get("conversations") if isinstance(doc, dict) else None
        out = [Conversation.from_json(x) for x in items] if isinstance(items, list) else []
        return [c for c in out if c is not None]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        paths.ensure_private_dir(self.path.parent, self.base)
        fd = os.open(
            self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def record(
        self, agent: str, conversation: object, *, cwd: str | None = None, pane: str | None = None,
        source: str = "told",
    ) -> Conversation | None:  # fmt: skip
        """Record that ``agent`` runs ``conversation``; None (nothing written) when the agent is
        unknown or the id is not of its form. The same (agent, id, pane) again only refreshes it."""
        name = canonical(agent)
        cid = valid_id(name, conversation) if name else None
        if name is None or cid is None:
            return None
        entry = Conversation.from_json(
            {"agent": name, "id": cid, "cwd": cwd, "pane": pane, "source": source, "time": time.time()}
        )
        assert entry is not None
        with self._locked():
            current = self.entries()
            last = current[-1] if current else None
            same = last is not None and (last.agent, last.id, last.pane, last.cwd) == (
                name,
                cid,
                entry.pane,
                cwd,
            )
            if same and last is not None and entry.time - last.time < 60:
                return last  # a hook per tool call: no rewrite for the same fact within a minute
            keep = [c for c in current if not (c.agent == name and c.id == cid and c.pane == entry.pane)]
            keep.append(entry)
            data = json.dumps({"version": 1, "conversations": [c.to_json() for c in keep[-_LOG_KEEP:]]})
            paths.write_private_file(self.path, data.encode())
        return entry

    def latest(
        self,
        agent: str | None = None,
        *,
        pane: str | None = None,
        cwd: str | None = None,
        since: float | None = None,
    ) -> Conversation | None:
        """The newest record for ``agent`` in ``pane`` (else in ``cwd``, else any when neither is
        given), recorded at or after ``since`` (an agent process's start: an older record is an
        earlier conversation, not the one this process runs)."""
        items = [
            c
            for c in self.entries()
            if (agent is None or c.agent == agent) and (since is None or c.time >= since - 2)
        ]
        if pane is not None:
            hit = next((c for c in reversed(items) if c.pane == pane), None)
            if hit is not None or cwd is None:
                return hit
        if cwd is not None:
            return next((c for c in reversed(items) if c.cwd == cwd), None)
        return items[-1] if items else None

    def current(self, limit: int = 3) -> list[Conversation]:
        """The newest record per (agent, pane), newest first."""
        seen: set[tuple[str, str | None]] = set()
        out: list[Conversation] = []
        for c in reversed(self.entries()):
            if (c.agent, c.pane) in seen:
                continue
            seen.add((c.agent, c.pane))
            out.append(c)
            if len(out) >= limit:
                break
        return out


def record_hook_event(
    root: Path, state: str | os.PathLike[str] | None, agent: str, event: Mapping[str, Any]
) -> Conversation | None:
    """Record the ``session_id`` of a hook payload for ``agent`` (any hook kind calls this)."""
    cwd = event.get("cwd")
    try:
        return ConversationLog.for_workspace(root, state).record(
            agent,
            event.get("session_id"),
            cwd=cwd if isinstance(cwd, str) else None,
            pane=os.environ.get("TETHER_PANE_ID"),
            source="hook",
        )
    except OSError as exc:
        log.warning("cannot record the conversation id: %s", exc)
        return None


def record_from_env(
    root: Path,
    state: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    source: str = "step",
) -> list[Conversation]:
    """Record the conversation ids an agent put in the environment of what it runs
    (``CLAUDE_CODE_SESSION_ID``, ``CODEX_THREAD_ID``, ``GEMINI_SESSION_ID``; the agent's stdio MCP
    servers get them too). Every step path calls this: ``tether step`` and the MCP server's step.
    Never raises for a bad id or an unwritable state dir (nothing is recorded then)."""
    env = os.environ if env is None else env
    out: list[Conversation] = []
    if not any(env.get(var) for var, _ in ENV_IDS):
        return out
    try:
        log_ = ConversationLog.for_workspace(root, state)
    except OSError as exc:
        log.warning("cannot record the conversation id: %s", exc)
        return out
    for var, agent in ENV_IDS:
        if env.get(var):
            try:
                c = log_.record(agent, env[var], cwd=cwd or os.getcwd(), pane=env.get("TETHER_PANE_ID"),
                                source=source)  # fmt: skip
            except OSError as exc:
                log.warning("cannot record the conversation id: %s", exc)
                continue
            if c is not None:
                out.append(c)
    return out


def describe(agent: str, conversation: str | None) -> str:
    """``claude conversation 1b2c…`` / ``aider (chat history)`` for messages."""
    if agent == "aider":
        return "aider (its chat history)"
    return f"{agent} conversation {conversation}" if conversation else f"{agent} (no conversation id known)"


__all__ = [
    "AGENTS",
    "Conversation",
    "ConversationLog",
    "PaneAgent",
    "argv_id",
    "canonical",
    "describe",
    "detect_agent",
    "plain_argv",
    "probe",
    "process_start",
    "read_capped",
    "record_from_env",
    "record_hook_event",
    "resume_argv",
    "valid_id",
]
