"""Agent commands: step, next, task, run, resume.

These are what an agent (or its hooks) calls: ``tether step --done MSG --next STEP`` after a unit
of work, ``tether run -- pytest -q`` for builds and tests, ``tether resume --print`` at the start
of a session to get its context back.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator

from tether.agent.session import AgentSession
from tether.agent.steps import make_checkpointer
from tether.cli.common import add_output_flags, non_negative_int, open_store, register_parsers
from tether.cli.hook import HOOK_AGENTS, cmd_hook
from tether.cli.output import emit
from tether.cli.step import cmd_step
from tether.errors import TetherError
from tether.scan.result import AGENT_FILE
from tether.text import escape

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
# The hand-off text (agent/handoff.py, with the tmux snapshot readers under it) is imported by
# the commands that print it: not by `tether hook` after every tool call, nor by `tether step`.
if TYPE_CHECKING:
    from typing import Any

    from tether.store.db import Store


def register(sub: Any, only: str | None = None) -> None:
    register_parsers(sub, PARSERS, only)


def _step_parser(sub: Any) -> None:
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


def _next_parser(sub: Any) -> None:
    p = sub.add_parser("next", help="print the next steps")
    add_output_flags(p)
    p.set_defaults(handler=cmd_next)


def _steps_parser(sub: Any) -> None:
    p = sub.add_parser("steps", help="the step log, newest last: message, checkpoint, files")
    p.add_argument("-n", "--limit", type=non_negative_int, default=20, help="how many (default 20; 0: all)")
    add_output_flags(p)
    p.set_defaults(handler=cmd_steps)


def _task_parser(sub: Any) -> None:
    p = sub.add_parser("task", help="print or set the current task (and environment name)")
    p.add_argument("text", nargs="?", default=None, help="the new task (default: print the current one)")
    p.add_argument("--clear", action="store_true", help="clear the task")
    p.add_argument("--environment", "-e", default=None, metavar="NAME", help="e.g. development, staging")
    add_output_flags(p)
    p.set_defaults(handler=cmd_task)


def _run_parser(sub: Any) -> None:
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


def _resume_parser(sub: Any) -> None:
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


def _hook_parser(sub: Any) -> None:
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


# Each command's parser, built only for the command a command line names (CLI start-up).
PARSERS = {
    "step": _step_parser,
    "next": _next_parser,
    "steps": _steps_parser,
    "task": _task_parser,
    "run": _run_parser,
    "resume": _resume_parser,
    "hook": _hook_parser,
}


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
