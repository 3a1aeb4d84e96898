"""Agent commands: step, next, task, run, resume.

These are what an agent (or its hooks) calls: ``tether step --done MSG --next STEP`` after a unit
of work, ``tether run -- pytest -q`` for builds and tests, ``tether resume --print`` at the start
of a session to get its context back.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tether import jsonsafe, protocol
from tether.agent.model import AGENT_FILE
from tether.agent.session import AgentSession
from tether.agent.steps import make_checkpointer, record_conversations, record_step
from tether.cli.common import add_output_flags, non_negative_int, open_store
from tether.cli.output import emit
from tether.errors import TetherError
from tether.humanize import plural
from tether.text import escape

# The hand-off text (agent/handoff.py, with the tmux snapshot readers under it) is imported by
# the commands that print it: not by `tether hook` after every tool call, nor by `tether step`.
if TYPE_CHECKING:
    from tether.checkpoints.checkpointer import Checkpointer
    from tether.scan.result import ScanResult
    from tether.store.db import Store


def register(sub: Any) -> None:
    p = sub.add_parser(
        "step",
        help="record an agent step (what was done, what comes next) and checkpoint the workspace",
    )
    p.add_argument("--done", "-d", required=True, metavar="MSG", help="what this step did")
    p.add_argument(
        "--next",
        "-n",
        dest="next_steps",
        action="extend",
        nargs="+",
        metavar="STEP",
        default=None,
        help="the next steps (replace the current list); repeat or give several",
    )
    p.add_argument("--no-next", action="store_true", help="clear the next steps")
    p.add_argument("--task", default=None, metavar="TEXT", help="set the current task")
    p.add_argument(
        "--file",
        "-f",
        dest="files",
        action="extend",
        nargs="+",
        metavar="PATH",
        default=None,
        help="files this step worked on (become the files in progress)",
    )
    add_output_flags(p)
    p.set_defaults(handler=cmd_step)

    p = sub.add_parser("next", help="print the next steps")
    add_output_flags(p)
    p.set_defaults(handler=cmd_next)

    p = sub.add_parser("steps", help="the step log, newest last: message, checkpoint, files")
    p.add_argument("-n", "--limit", type=non_negative_int, default=20, help="how many (default 20; 0: all)")
    add_output_flags(p)
    p.set_defaults(handler=cmd_steps)

    p = sub.add_parser("task", help="print or set the current task (and environment name)")
    p.add_argument("text", nargs="?", default=None, help="the new task (default: print the current one)")
    p.add_argument("--clear", action="store_true", help="clear the task")
    p.add_argument("--environment", "-e", default=None, metavar="NAME", help="e.g. development, staging")
    add_output_flags(p)
    p.set_defaults(handler=cmd_task)

    p = sub.add_parser(
        "run",
        help="run a build/test command and record it (exit code, output tail, checkpoint)",
        description="Run CMD, showing its output, and record the run against a checkpoint of the "
        "tree it ran on. Exits with CMD's exit code.",
    )
    p.add_argument(
        "cmd", nargs=argparse.REMAINDER, metavar="-- CMD ...", help="the command and its arguments, after --"
    )
    add_output_flags(p)
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("resume", help="bring back the tmux session and print the hand-off")
    p.add_argument(
        "--print",
        dest="print_only",
        action="store_true",
        help="only print the hand-off for an agent's context (touch nothing)",
    )
    p.add_argument("--attach", action="store_true", help="attach to the tmux session afterwards")
    p.add_argument(
        "--no-run",
        action="store_true",
        help="when recreating, type every command but run none (not even allowlisted ones)",
    )
    p.add_argument(
        "--from",
        dest="from_remote",
        metavar="REMOTE[/WHO]",
        default=None,
        help="resume another machine's session pushed to this git remote (see `tether handoff`)",
    )
    p.add_argument("--apply", action="store_true", help="with --from: write the files and take the task")
    add_output_flags(p)
    p.set_defaults(handler=cmd_resume)

    p = sub.add_parser(
        "hook",
        help="entry point for agent hooks (reads the hook's JSON on stdin; never fails the agent)",
        description="`tether hook AGENT` for the agents' hooks (`tether setup AGENT` writes them; "
        "see docs/agents.md). SessionStart prints the hand-off in the form the agent adds to its "
        "context; after a tool call, what the tool changed is checkpointed; at the end of a turn a "
        "step is recorded when files changed. Always exits 0, so Tether never blocks the agent.",
    )
    p.add_argument(
        "kind",
        choices=list(HOOK_AGENTS),
        metavar="AGENT",
        help="the agent calling: " + ", ".join(HOOK_AGENTS),
    )
    p.set_defaults(handler=cmd_hook)


def _warn(message: str | None) -> None:
    from tether.cli.output import warn

    warn(message)


@contextlib.contextmanager
def _agent(
    args: argparse.Namespace, lenient: bool = False
) -> Iterator[tuple[Store, AgentSession, str | None]]:
    """The workspace's store and agent session, the agent's latest file taken in first (an agent
    may have just written it); a warning about that file is printed once, here. ``lenient``:
    a failure to take the file in is only a warning (`tether run` must run its command)."""
    with open_store(args) as store:
        session = AgentSession(store)
        try:
            _, warning = session.import_file()
        except Exception as exc:
            if not lenient:
                raise
            warning = f"could not read {AGENT_FILE}: {exc}"
        _warn(warning)
        yield store, session, warning


def _abs(paths: list[str] | None) -> list[str] | None:
    # Paths on the command line are relative to where the agent stands, not to the workspace root.
    return [os.path.abspath(p) for p in paths] if paths is not None else None


def cmd_step(args: argparse.Namespace) -> int:
    with _agent(args) as (store, session, warning):
        _, conv_warning = record_conversations(store.root, args.state_dir)
        _warn(conv_warning)
        from tether.cli.progress import terminal_progress

        cp = make_checkpointer(store, session, args.state_dir)
        with terminal_progress(cp):  # a first step in a big tree walks and stores all of it
            outcome = record_step(
                store,
                session,
                cp,
                args.done,
                next_steps=[] if args.no_next else args.next_steps,
                task=args.task,
                files=_abs(args.files),
            )
        state = outcome.state
        emit(
            args,
            {
                "checkpoint": outcome.info.to_wire(),
                "step": outcome.step.to_json() if outcome.step else None,
                "task": state.task,
                "nextSteps": state.next_steps,
                "filesInProgress": state.files_in_progress,
                "warning": warning,
            },
            "\n".join(outcome.lines()),
        )
    return 0


def cmd_next(args: argparse.Namespace) -> int:
    with _agent(args) as (_store, session, _warning):
        state = session.state()
        text = (
            "\n".join(f"{i + 1}. {escape(s)}" for i, s in enumerate(state.next_steps))
            if state.next_steps
            else "no next steps recorded (`tether step --done MSG --next STEP`)"
        )
        data: dict[str, Any] = {"task": state.task, "nextSteps": state.next_steps}
        if state.is_shipped("next_steps"):
            from tether.agent.provenance import SHIPPED_NOTE

            text = f"({SHIPPED_NOTE})\n{text}"
            data["shipped"] = ["nextSteps"]
        emit(args, data, text)
    return 0


def cmd_steps(args: argparse.Namespace) -> int:
    from tether.agent.handoff import ago_iso

    with _agent(args) as (_store, session, _):
        steps = session.state().steps
        if args.limit > 0:
            steps = steps[-args.limit :]
        lines = []
        for st in steps:
            cp = f"checkpoint {st.checkpoint}" if st.checkpoint else "no checkpoint"
            shown = ", ".join(escape(f) for f in st.files[:5])
            files = f"  ({shown}{' …' if len(st.files) > 5 else ''})" if st.files else ""
            lines.append(f"{ago_iso(st.time):>9}  {cp:<15} {escape(st.message)}{files}")
        emit(
            args,
            {"steps": [st.to_json() for st in steps]},
            "\n".join(lines) if lines else "no steps recorded (`tether step --done MSG`)",
        )
    return 0


def cmd_task(args: argparse.Namespace) -> int:
    with _agent(args) as (_store, session, _warning):
        if args.clear or args.text is not None or args.environment is not None:
            task = "" if args.clear else args.text
            state = session.set_fields(task=task, environment=args.environment)
        else:
            state = session.state()
        text = escape(state.task) if state.task else "no task recorded (`tether task TEXT`)"
        if state.environment:
            text += f"\nenvironment: {escape(state.environment)}"
        emit(args, {"task": state.task, "environment": state.environment}, text)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from tether.agent.runs import record_run

    argv = list(args.cmd)
    if argv and argv[0] == "--":
        argv = argv[1:]
    with _agent(args, lenient=True) as (store, session, _):
        sys.stdout.flush()
        run = record_run(
            store, make_checkpointer(store, session, args.state_dir), argv, os.getcwd(), out=sys.stdout.buffer
        )
        if run.checkpoint is not None:
            session.after_checkpoint(store.get_checkpoint(run.checkpoint))
        verdict = "ok" if run.exit_code == 0 else f"exit {run.exit_code}"
        print(
            f"tether: run {run.id} recorded: `{escape(run.command_text)}` {verdict} in {run.duration:.1f}s "
            f"at checkpoint {run.checkpoint}",
            file=sys.stderr,
        )
        if args.json:
            emit(args, run.to_json())
    return run.exit_code


def _restore_tmux(
    store: Store, state: str | None, run: bool
) -> tuple[list[str], dict[str, Any] | None, list[str] | None]:
    """Reattach or recreate the workspace's tmux session. Returns (lines, data, attach argv)."""
    import shlex

    from tether.tmux.config import RunPolicy
    from tether.tmux.user import user_link

    link, warnings = user_link(store.root, state)
    for w in warnings:
        _warn(w)
    try:
        if link.alive():
            argv = link.attach_argv()
            return (
                [f"tmux: session {link.session} is alive; attach with `{' '.join(argv)}`"],
                {"session": link.session, "recreated": False},
                argv,
            )
        from tether.tmux.watch import TmuxWatch, latest_snapshot

        found = latest_snapshot(store)
        if found is None:
            return (
                [
                    f"tmux: session {link.session} is not running and no snapshot of it was ever "
                    "recorded: no terminal to bring back (`tether start` creates one and records it)"
                ],
                None,
                None,
            )
        report = link.restore(found.data, RunPolicy(mode="allowlist" if run else "never"))
        TmuxWatch(link).check_now(force=True, store=store)
    except TetherError as exc:
        return [f"tmux: could not restore the session: {exc.message}"], {"error": exc.message}, None
    argv = link.attach_argv()
    lines = [f"tmux: recreated session {report.session} from {found.describe()}"]
    for p in report.panes:
        if p.agent:
            from tether.conversations.record import describe

            what = describe(p.agent, p.conversation)
            verb = "resumed" if p.action == "ran" else "typed, waiting for Enter"
            lines.append(f"  {verb}: {escape(what)}: {escape(shlex.join(p.command or []))}")
        elif p.command and p.action == "ran":
            lines.append(f"  re-ran (allowlisted): {escape(' '.join(p.command))}")
        elif p.command and p.action == "typed":
            lines.append(f"  typed, waiting for Enter: {escape(' '.join(p.command))}")
    if report.missing_secrets:
        lines.append(
            "  secrets not restored (set them again): " + ", ".join(map(escape, report.missing_secrets))
        )
    lines.extend(f"  {escape(w)}" for w in report.warnings)
    lines.append(f"  attach with `{' '.join(argv)}`")
    return lines, report.to_json(), argv


def cmd_resume(args: argparse.Namespace) -> int:
    if args.from_remote:
        from tether.cli.remote import cmd_handoff

        args.source, args.who, args.workspace_id = args.from_remote, None, None
        return cmd_handoff(args)
    with _agent(args) as (store, _session, _):
        from tether.agent.handoff import handoff_text

        text, data = handoff_text(store)
        if args.print_only:
            emit(args, data, text)
            return 0
        lines, tmux_data, attach = _restore_tmux(store, args.state_dir, not args.no_run)
        emit(args, {**data, "tmux": tmux_data}, "\n".join(lines) + "\n\n" + text)
    if args.attach and attach and sys.stdin.isatty():
        sys.stdout.flush()
        os.execvp(attach[0], attach)
    return 0


# --- agent hooks ---------------------------------------------------------------------------------

_HOOK_INPUT_LIMIT = 1024 * 1024


def _hook_input() -> dict[str, Any]:
    try:
        raw = sys.stdin.read(_HOOK_INPUT_LIMIT) if not sys.stdin.isatty() else ""
        doc = jsonsafe.loads(raw) if raw.strip() else {}
    except (ValueError, OSError, UnicodeDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


@dataclass(frozen=True)
class HookAgent:
    """What differs between the agents' hooks: event names, where the project is, the output."""

    label: str  # in checkpoint and step messages
    project_env: tuple[str, ...]  # env vars naming the project dir
    tool_events: frozenset[str]  # after a tool call (success or failure)
    stop_events: frozenset[str]  # end of a turn
    json_output: bool  # stdout must be one JSON object (Gemini), else plain text is context
    stop_json: bool = False  # the Stop hook must print JSON (Codex)


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
        _warn(f"{HOOK_BUDGET_ENV}={raw!r} is not a number of seconds: using {HOOK_SCAN_BUDGET_S}")
    return HOOK_SCAN_BUDGET_S


def cmd_hook(args: argparse.Namespace) -> int:
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


def _hook_scan(cp: Checkpointer, deadline: float, budget: float) -> ScanResult:
    """The workspace walk within the hook's time budget; says so on stderr when it ran out."""
    cp.deadline = deadline
    scan = cp.scan_workspace()
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
    if scan.stat_updates or scan.taken is not None:
        # No checkpoint is made (no file changed): the store refreshes head's stats only.
        cp.checkpoint(protocol.TRIGGER_MANUAL, None, scan=scan, files_only=True)
    else:
        cp.save_listings()


def _run_hook(
    args: argparse.Namespace,
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
    with open_store(args) as store:
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
        if name in agent.tool_events:
            cp = make_checkpointer(store, session, args.state_dir)
            # A stat-cache scan finds edits the tool made through the shell too. Nothing changed
            # (a `ls`, a read): no checkpoint, even if a tmux pane scrolled.
            scan = _hook_scan(cp, deadline, budget)
            if not scan.changes:
                _keep_scan(cp, scan)
                return
            outcome = cp.checkpoint(protocol.TRIGGER_MANUAL, _hook_message(event, agent.label), scan=scan)
            if outcome.info is not None:
                session.after_checkpoint(outcome.info)
            return
        if name in agent.stop_events and not event.get("stop_hook_active"):
            cp = make_checkpointer(store, session, args.state_dir)
            scan = _hook_scan(cp, deadline, budget)
            if scan.changes:
                session.record_step(cp, f"{agent.label}: turn finished", scan=scan)
            else:
                _keep_scan(cp, scan)
