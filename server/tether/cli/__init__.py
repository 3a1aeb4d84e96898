"""`tether` command line. One module per command group, each exposing ``register(subparsers)``.

A group's handlers receive the parsed ``argparse.Namespace`` and return an exit code. They print
through :mod:`tether.cli.output` so that ``--json`` is honoured uniformly.
"""

from __future__ import annotations

import gc
import os
import sys

from tether import __version__
from tether.errors import TetherError

# argparse (with gettext) and importlib are imported by the functions that use them: `tether
# --version` needs neither; nor typing, whose TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any

# Command groups, imported lazily by name: a command imports only its own group, so `tether step`
# (run by agents after every tool call) does not pay for the tmux link, git plumbing or pygls.
GROUPS = (
    "tether.cli.files",
    "tether.cli.workspaces",
    "tether.cli.session",
    "tether.cli.agent",
    "tether.cli.lsp",
    "tether.cli.mcp",
    "tether.cli.setup",
    "tether.cli.remote",
    "tether.cli.completion",
)

# Every command, its group and its one-line help, known without importing any group (`tether
# --help` lists them from here). tests/unit/test_cli_startup.py checks it against what each
# group registers.
COMMANDS: dict[str, tuple[str, str]] = {
    "checkpoint": ("tether.cli.files", "record the workspace now (or only PATHS)"),
    "log": ("tether.cli.files", "list checkpoints, newest first"),
    "diff": ("tether.cli.files", "diff checkpoint A against B (default: the live workspace)"),
    "restore": ("tether.cli.files", "restore files (or the whole workspace) to checkpoint N"),
    "status": ("tether.cli.files", "last checkpoint, pending changes, skipped files"),
    "gc": ("tether.cli.files", "drop old checkpoints by count, age or size"),
    "list": ("tether.cli.workspaces", "list workspaces with checkpoints"),
    "start": ("tether.cli.session", "create (or find) the workspace's tmux session and print its name"),
    "attach": (
        "tether.cli.session",
        "attach to the workspace's tmux session, recreating it from the last snapshot if dead",
    ),
    "doctor": ("tether.cli.session", "check tmux, the state dir and the store; non-zero exit on problems"),
    "step": (
        "tether.cli.agent",
        "record an agent step (what was done, what comes next) and checkpoint the workspace",
    ),
    "next": ("tether.cli.agent", "print the next steps"),
    "steps": ("tether.cli.agent", "the step log, newest last: message, checkpoint, files"),
    "task": ("tether.cli.agent", "print or set the current task (and environment name)"),
    "run": (
        "tether.cli.agent",
        "run a build/test command and record it (exit code, output tail, checkpoint)",
    ),
    "resume": ("tether.cli.agent", "bring back the tmux session and print the hand-off"),
    "hook": (
        "tether.cli.agent",
        "entry point for agent hooks (reads the hook's JSON on stdin; never fails the agent)",
    ),
    "lsp": ("tether.cli.lsp", "run the language server on stdio (started by editors)"),
    "mcp": ("tether.cli.mcp", "run the MCP server on stdio (started by agents: `tether setup AGENT --mcp`)"),
    "setup": (
        "tether.cli.setup",
        "write Tether's hooks and instructions (or, with --mcp, its MCP server) into an agent's config",
    ),
    "push": (
        "tether.cli.remote",
        "send this workspace's checkpoints to the git remote (refs/tether/..., nothing else)",
    ),
    "pull": ("tether.cli.remote", "import the checkpoints other machines pushed for this workspace"),
    "handoff": (
        "tether.cli.remote",
        "resume another machine's session: pull, preview its files, take its task, recreate tmux",
    ),
    "completion": ("tether.cli.completion", "print a shell completion script (bash, zsh or fish)"),
}

_MAIN_EPILOG = """\
examples:
  tether start                                     tmux session for this workspace
  tether step --done "wrote tests" --next "fix lint"   record a step (a checkpoint)
  tether log                                       checkpoints, newest first
  tether diff 3 -- src/                            checkpoint 3 against the live files
  tether resume                                    bring the session back, print the hand-off
  tether status --json                             any command, for a script or an agent

`tether COMMAND --help` describes COMMAND's arguments, with examples."""

# Commands whose usual run walks the workspace (after every step or tool call of an agent).
WALKING_COMMANDS = ("hook", "step")

# Global options that take a value, and the attribute each sets: skipped when looking for the
# command name in argv, and read by the commands' plain command-line readers (hook, step).
GLOBAL_VALUE_OPTIONS = {"-C": "workspace", "--workspace": "workspace", "--state-dir": "state_dir"}


def command_of(argv: Sequence[str]) -> str | None:
    """The command named in ``argv`` (the first word that is not a global option), if any."""
    it = iter(argv)
    for word in it:
        if word == "--":
            return next(it, None)
        if word in GLOBAL_VALUE_OPTIONS:
            next(it, None)
        elif not word.startswith("-"):
            return word
    return None


def add_global_options(p: argparse.ArgumentParser, *, after_command: bool) -> None:
    """The options every command takes. After the command (``tether list --json``) they default
    to SUPPRESS, so they never reset what was given before it; an option string the command
    already uses for itself (``tether mcp --workspace``) is left to the command."""
    import argparse

    taken = set(p._option_string_actions) if after_command else set()
    group = p.add_argument_group("global options") if after_command else p
    extra: dict[str, object] = {"default": argparse.SUPPRESS} if after_command else {}
    specs: list[tuple[tuple[str, ...], dict[str, object]]] = [
        (
            ("-C", "--workspace"),
            {
                "metavar": "DIR",
                "dest": "workspace",
                "help": "workspace root (default: nearest parent with .git or .agent-session.json, "
                "else cwd); e.g. -C ~/src/app",
            },
        ),
        (("--state-dir",), {"metavar": "DIR", "dest": "state_dir", "help": "store location (tests)"}),
        (("--json",), {"action": "store_true", "dest": "json", "help": "machine-readable output"}),
        (
            ("-v", "--verbose"),
            # Counted apart after the command (a fresh namespace there); main adds both.
            {
                "action": "count",
                "dest": "verbose_after" if after_command else "verbose",
                "help": "log to stderr (-vv: debug)",
            },
        ),
    ]
    for flags, kw in specs:
        free = tuple(f for f in flags if f not in taken)
        if free:
            if not after_command and kw.get("action") == "count":
                kw["default"] = 0
            group.add_argument(*free, **{**kw, **extra})  # type: ignore[arg-type]


def _finish_command(name: str, p: argparse.ArgumentParser) -> None:
    import argparse

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.examples_for = name  # type: ignore[attr-defined]  # its epilog, built only for --help
    add_global_options(p, after_command=True)


def build_parser(
    command: str | None = None, *, every_group: bool = False, list_others: bool = True
) -> argparse.ArgumentParser:
    """The parser; with ``command``, only that command's group is imported and registered (the
    others are listed by name and help only; not at all with ``list_others=False``, for a
    command line that shows no help). Unknown command or ``every_group``: every group."""
    import argparse
    import importlib

    from tether.cli.parser import Parser

    parser = Parser(
        prog="tether",
        description="Keep an AI coding agent's working context across disconnects, and resume it.",
        epilog=_MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tether {__version__}")
    add_global_options(parser, after_command=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = COMMANDS.get(command or "", (None, ""))[0]
    if every_group or (command is not None and wanted is None):
        groups: tuple[str | None, ...] = GROUPS
    else:
        groups = (wanted,) if wanted else ()
    registered: set[str] = set()
    for name in groups:
        assert name is not None
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency, not a group not written yet
                raise
            continue
        before = set(sub.choices)
        module.register(sub, command if wanted else None)
        registered |= set(sub.choices) - before
    for cmd in registered:
        _finish_command(cmd, sub.choices[cmd])
    if groups != GROUPS and (list_others or not registered):
        # The other commands, by name and help only: `tether --help` lists them and argparse's
        # "invalid choice" names them, without importing their groups.
        for cmd, (_, text) in COMMANDS.items():
            if cmd not in registered:
                sub.add_parser(cmd, help=text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; ``argv`` None: this process's own arguments (the ``tether`` script and
    ``python -m tether``, which exit after it)."""
    whole_process = argv is None
    if whole_process:
        # The imports make thousands of objects, none of them garbage: collecting while they
        # run only costs time. _run enables the collector again (and freezes what they made).
        gc.disable()
    argv = list(argv) if argv is not None else sys.argv[1:]
    if argv == ["--version"]:  # before argparse and logging are imported: scripts call it often
        sys.stdout.write(f"tether {__version__}\n")
        return 0
    command = command_of(argv)
    if whole_process and command in WALKING_COMMANDS:
        # The stat check's helper process (scan/helper.py) starts before the command's imports,
        # ~20 ms before its walk: ready when the walk begins instead of halfway through it. A
        # command that does not walk a large tree stops it unused.
        from tether.scan.helper import warmed

        with warmed():
            code = _command(argv, command, whole_process)
        return _exit_now(code)
    return _command(argv, command, whole_process)


def _exit_now(code: int) -> int:
    """End the process with ``code`` without the interpreter's teardown (every module emptied,
    every object freed: ~2-3 ms of a hook that agents run after every tool call), once nothing
    is left to finish: the exit functions (logging's) have run and the standard streams are
    flushed. With another thread still running, or a stream that cannot be flushed: returns
    ``code``, for the usual exit."""
    import atexit
    import threading

    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon and t.is_alive() for t in threading.enumerate()):
        return code
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return code
    os._exit(code)


def _command(argv: list[str], command: str | None, whole_process: bool) -> int:
    if command == "step":
        # After each unit of an agent's work: the usual step command line is read without
        # argparse too (cli/step.py); anything else is left to the parser below.
        from tether.cli.step import cmd_step, plain_step_args

        step_args = plain_step_args(argv)
        if step_args is not None:
            return _run(cmd_step, step_args, step_args.verbose, whole_process)
    if command == "hook":
        # After every tool call of an agent: a hook's usual command line is read without
        # building the parser (argparse, every argument of the agent commands); --help, a typo
        # or anything else is left to the parser below.
        from tether.cli.hook import cmd_hook, plain_hook_args

        hook_args = plain_hook_args(argv)
        if hook_args is not None:
            return _run(cmd_hook, hook_args, 0, whole_process)
    # Another command's listing (an argparse parser each) is needed by help only.
    parser = build_parser(command, list_others="-h" in argv or "--help" in argv)
    from tether.cli.parser import UsageError

    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        import argparse

        from tether.cli import output

        sys.stderr.write(exc.usage)
        output.error(argparse.Namespace(json="--json" in argv), exc.message, exc.reason)
        return exc.exit_code
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    return _run(handler, args, args.verbose + getattr(args, "verbose_after", 0), whole_process)


def _run(handler: Callable[[Any], int], args: Any, verbose: int, whole_process: bool = False) -> int:
    """Run a command's handler with logging set up (``-v``: info, ``-vv``: debug)."""
    import logging

    from tether.cli import output

    logging.basicConfig(
        level=logging.WARNING - 10 * min(verbose, 2),
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if whole_process:
        # What the imports made (modules, classes, functions) lives until the process exits: the
        # garbage collector need not look through it again, at each collection and at exit
        # (~10 ms of a hook, which agents run after every tool call). What the command itself
        # creates is collected as usual.
        gc.freeze()
        gc.enable()
    try:
        code: int = handler(args)
    except TetherError as exc:
        output.error(args, exc.message, exc.reason)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `tether log | head`: the reader left; not an error worth a traceback.
        sys.stderr.close()
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
