"""`tether hook AGENT`: the agents' hooks (`tether setup AGENT` writes them; docs/agents.md).

Run after every tool call, so parsed without argparse when called as the hooks call it
(:func:`plain_hook_args`; anything else goes through the full parser), and what a hook that
finds nothing changed does not need is imported where it is used.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time

from tether import jsonsafe, protocol
from tether.cli import GLOBAL_VALUE_OPTIONS
from tether.cli.workspace import open_store
from tether.humanize import plural
from tether.scan.result import AGENT_FILE
from tether.text import escape

log = logging.getLogger(__name__)

# typing is not imported at run time: TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any

    from tether.agent.session import AgentSession
    from tether.checkpoints.checkpointer import Checkpointer
    from tether.scan.result import ScanResult, Taken
    from tether.store.db import Store


class HookArgs:
    """What a hook's command line says (the full parser's Namespace has the same fields)."""

    def __init__(self, kind: str, workspace: str | None = None, state_dir: str | None = None) -> None:
        self.kind = kind
        self.workspace = workspace
        self.state_dir = state_dir
        self.json = False
        self.verbose = 0


def plain_hook_args(argv: Sequence[str]) -> HookArgs | None:
    """``[-C DIR | --workspace DIR | --state-dir DIR]... hook AGENT``, the way hooks call Tether,
    read without argparse; None for any other command line (the full parser reads it)."""
    values: dict[str, str] = {}
    i = 0
    while i < len(argv) and argv[i] in GLOBAL_VALUE_OPTIONS:
        if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
            return None
        values[GLOBAL_VALUE_OPTIONS[argv[i]]] = argv[i + 1]
        i += 2
    if len(argv) != i + 2 or argv[i] != "hook" or argv[i + 1] not in HOOK_AGENTS:
        return None
    return HookArgs(argv[i + 1], values.get("workspace"), values.get("state_dir"))


_HOOK_INPUT_LIMIT = 1024 * 1024


def _hook_input() -> dict[str, Any]:
    try:
        raw = sys.stdin.read(_HOOK_INPUT_LIMIT) if not sys.stdin.isatty() else ""
        doc = jsonsafe.loads(raw) if raw.strip() else {}
    except (ValueError, OSError, UnicodeDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


class HookAgent:
    """What differs between the agents' hooks: event names, where the project is, the output.
    (A plain class: a dataclass costs a millisecond to create, at every hook.)"""

    __slots__ = ("json_output", "label", "project_env", "stop_events", "stop_json", "tool_events")

    def __init__(
        self,
        label: str,  # in checkpoint and step messages
        project_env: tuple[str, ...],  # env vars naming the project dir
        tool_events: frozenset[str],  # after a tool call (success or failure)
        stop_events: frozenset[str],  # end of a turn
        *,
        json_output: bool,  # stdout must be one JSON object (Gemini), else plain text is context
        stop_json: bool = False,  # the Stop hook must print JSON (Codex)
    ) -> None:
        self.label = label
        self.project_env = project_env
        self.tool_events = tool_events
        self.stop_events = stop_events
        self.json_output = json_output
        self.stop_json = stop_json


HOOK_AGENTS = {
    "claude-code": HookAgent(
        "claude",
        ("CLAUDE_PROJECT_DIR",),
        frozenset({"PostToolUse", "PostToolUseFailure"}),
        frozenset({"Stop"}),
        json_output=False,
    ),
    "codex": HookAgent(
        "codex", (), frozenset({"PostToolUse"}), frozenset({"Stop"}), json_output=False, stop_json=True
    ),
    "gemini": HookAgent(
        "gemini",
        ("GEMINI_PROJECT_DIR", "CLAUDE_PROJECT_DIR"),
        frozenset({"AfterTool"}),
        frozenset({"AfterAgent"}),
        json_output=True,
    ),
    "opencode": HookAgent("opencode", (), frozenset({"PostToolUse"}), frozenset({"Stop"}), json_output=False),
}

# Claude Code keeps at most 10,000 characters of a hook's context; the others are given the same.
HANDOFF_CAP = 10_000
_TRUNCATED = "\n… (hand-off cut to fit the agent's hook limit: `tether resume --print` prints all of it)"


def cap_handoff(text: str, cap: int = HANDOFF_CAP) -> str:
    """The hand-off cut at a line boundary so that it, with the note saying so, fits ``cap``."""
    if len(text) <= cap:
        return text
    room = cap - len(_TRUNCATED)
    cut = text.rfind("\n", 0, room)
    return text[: cut if cut > room // 2 else room] + _TRUNCATED


def _hook_message(event: dict[str, Any], label: str = "claude") -> str:
    """A short, redacted checkpoint message naming the tool and what it worked on."""
    from tether.agent.model import safe_text

    tool = event.get("tool_name")
    tool = tool if isinstance(tool, str) else "tool"
    tool_input = event.get("tool_input")
    detail = ""
    if isinstance(tool_input, dict):
        for key in ("command", "file_path", "notebook_path", "path"):
            value = tool_input.get(key)
            if isinstance(value, str) and value:
                detail = value
                break
    text = f"{label} {tool}: {detail}" if detail else f"{label} {tool}"
    return safe_text(text, 120)


# The agent waits for its hook after every tool call (and Gemini CLI kills it at the 10 s that
# `tether setup` gives it): a workspace walk that has not finished by then stops, and the hook
# checkpoints what it found. TETHER_HOOK_BUDGET (seconds) overrides it.
HOOK_SCAN_BUDGET_S = 4.0
HOOK_BUDGET_ENV = "TETHER_HOOK_BUDGET"


def hook_budget() -> float:
    raw = os.environ.get(HOOK_BUDGET_ENV)
    if raw:
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if 0 <= value < float("inf"):
            return value
        from tether.cli.output import warn

        warn(f"{HOOK_BUDGET_ENV}={raw!r} is not a number of seconds: using {HOOK_SCAN_BUDGET_S}")
    return HOOK_SCAN_BUDGET_S


def cmd_hook(args: HookArgs) -> int:
    """Never raises and always returns 0: a hook must not break or block the agent."""
    budget = hook_budget()
    deadline = time.monotonic() + budget
    agent = HOOK_AGENTS[args.kind]
    event = _hook_input()
    out: list[str] = []
    try:
        _run_hook(args, event, agent, out, deadline=deadline, budget=budget)
    except Exception as exc:  # reported, never fatal for the agent
        print(f"tether hook: {escape(str(exc), multiline=True)}", file=sys.stderr)
    _hook_output(agent, event.get("hook_event_name"), "".join(out))
    return 0


def _hook_output(agent: HookAgent, name: Any, context: str) -> None:
    """Print what the agent expects on stdout: Gemini parses every hook's stdout as JSON (plain
    text would become a message shown to the user); Codex's Stop hook must print JSON."""
    # The agent's context is a terminal of sorts: nothing raw from the workspace reaches it.
    context = cap_handoff(escape(context, multiline=True)) if context else ""
    try:
        if agent.json_output:
            doc: dict[str, Any] = {}
            if context:
                doc = {"hookSpecificOutput": {"hookEventName": name, "additionalContext": context}}
            sys.stdout.write(json.dumps(doc) + "\n")
        elif agent.stop_json and name in agent.stop_events:
            sys.stdout.write("{}\n")
        elif context:
            sys.stdout.write(context)
        sys.stdout.flush()
    except (OSError, ValueError) as exc:  # the agent closed our stdout
        print(f"tether hook: {exc}", file=sys.stderr)


def _hook_scan(cp: Checkpointer, deadline: float, budget: float, taken: Taken | None) -> ScanResult:
    """What changed: the watcher's paths when one vouches for them, else the workspace walk
    within the hook's time budget (said on stderr when it ran out)."""
    if taken is not None:
        return cp.scan_taken(taken)
    cp.deadline = deadline
    scan = cp.walk()
    if not scan.complete:
        print(
            f"tether hook: the workspace scan did not finish within {budget:g} s: checkpointing the "
            f"{plural(len(scan.changes), 'change')} found so far (`tether status` shows the rest; "
            f"the next hooks go on from there)",
            file=sys.stderr,
        )
    return scan


def _keep_scan(cp: Checkpointer, scan: ScanResult) -> None:
    """What a scan that found nothing to checkpoint learned, kept for the next hook: files read
    again and found unchanged (their stats), the file watcher's paths it looked at, the
    directories it listed anew. Without it every later hook would read them again."""
    if scan.stat_updates or (scan.taken is not None and scan.taken.rows):
        # No checkpoint is made (no file changed): the store refreshes head's stats only.
        cp.checkpoint(protocol.TRIGGER_MANUAL, None, scan=scan, files_only=True)
    else:
        cp.save_listings()


def _run_hook(
    args: HookArgs,
    event: dict[str, Any],
    agent: HookAgent,
    out: list[str],
    *,
    deadline: float,
    budget: float,
) -> None:
    """Does the hook's work; what goes to the agent's context is appended to ``out``."""
    if not args.workspace:
        base = next((os.environ[v] for v in agent.project_env if os.environ.get(v)), None) or (
            event["cwd"] if isinstance(event.get("cwd"), str) else None
        )
        if base and os.path.isdir(base):
            args.workspace = base
    name = event.get("hook_event_name")
    scans = name in agent.tool_events or (name in agent.stop_events and not event.get("stop_hook_active"))
    with open_store(args) as store, _workspace_changes(store, scans) as changes:
        # Imported once the stat check's helper is starting (below _workspace_changes): ~5 ms
        # of the hook's imports that its start-up overlaps.
        from tether.agent.session import AgentSession
        from tether.conversations.record import record_hook_event

        session = AgentSession(store)
        session.import_file()
        if name == "SessionStart":
            from tether.agent.handoff import handoff_text
            from tether.agent.runs import load_runs

            try:
                if session.state().is_empty() and not load_runs(store):
                    return  # nothing to hand off: add nothing to the agent's context
                # Written before this session is recorded: it names the conversation it continues.
                text, _ = handoff_text(store)
                out.append(text)
            finally:
                record_hook_event(store.root, args.state_dir, agent.label, event)
            return
        # Every hook names the conversation it runs in: keep it for the pane's resume.
        record_hook_event(store.root, args.state_dir, agent.label, event)
        if not scans:
            return
        taken = changes()
        # The agent file was imported above; a watcher reports it (its server imports it), the
        # scan never tracks it.
        if taken is not None and not taken.rows.keys() - {AGENT_FILE}:
            # A read, an `ls`: nothing to look at, and the checkpointer is not even imported.
            log.debug("hook: the file watcher %s saw nothing change", taken.watcher[:8])
            return
        _checkpoint_changes(
            args, event, agent, store, session=session, taken=taken, deadline=deadline, budget=budget
        )


@contextlib.contextmanager
def _workspace_changes(store: Store, scans: bool) -> Iterator[Callable[[], Taken | None]]:
    """For a hook that looks for changes (``scans``), begun as the store is opened, so that the
    hook's other work overlaps the wait: a live file watcher's dirty set, asked for now and
    read by the function yielded (scan/dirty.py); or, when none can vouch, the helper of the
    walk's stat check, started now (scan/helper.py). The function's None: walk."""
    if not scans:
        yield lambda: None
        return
    from tether.scan import dirty, helper
    from tether.scan.result import scanner_fingerprint

    # The hook's checkpointer scans with the default settings (make_checkpointer).
    pending = dirty.begin_take(store, scanner_fingerprint())
    if pending is not None:
        try:
            yield pending.result
        finally:
            pending.cancel()
        return
    with helper.warmed(store.listed_files()):
        yield lambda: None


def _checkpoint_changes(
    args: HookArgs,
    event: dict[str, Any],
    agent: HookAgent,
    store: Store,
    *,
    session: AgentSession,
    taken: Taken | None,
    deadline: float,
    budget: float,
) -> None:
    """After a tool call, a checkpoint of what it changed; at the end of a turn, a step."""
    name = event.get("hook_event_name")
    from tether.agent.steps import make_checkpointer

    cp = make_checkpointer(store, session, args.state_dir)
    if name in agent.tool_events:
        # A stat-cache scan finds edits the tool made through the shell too. Nothing changed
        # (a `ls`, a read): no checkpoint, even if a tmux pane scrolled.
        scan = _hook_scan(cp, deadline, budget, taken)
        if not scan.changes:
            _keep_scan(cp, scan)
            return
        outcome = cp.checkpoint(protocol.TRIGGER_MANUAL, _hook_message(event, agent.label), scan=scan)
        if outcome.info is not None:
            session.after_checkpoint(outcome.info)
        return
    if name in agent.stop_events and not event.get("stop_hook_active"):
        scan = _hook_scan(cp, deadline, budget, taken)
        if scan.changes:
            session.record_step(cp, f"{agent.label}: turn finished", scan=scan)
        else:
            _keep_scan(cp, scan)
