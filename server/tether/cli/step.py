"""`tether step`: record an agent step and checkpoint the workspace.

Agents call it after each unit of work, so its usual command line is read without argparse
(:func:`plain_step_args`: argparse with gettext and locale under it, and the parser, are ~4 ms
of a ~75 ms process); anything else goes through the full parser (cli/agent.py registers the
command), which gives the same namespace.
"""

from __future__ import annotations

import os

from tether.agent.session import AgentSession
from tether.agent.steps import make_checkpointer, record_conversations, record_step
from tether.cli import GLOBAL_VALUE_OPTIONS
from tether.cli.output import emit, warn
from tether.cli.workspace import open_store

# typing and argparse are not imported at run time (CLI start-up).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


class StepArgs:
    """What a plain step command line says (the full parser's Namespace has the same fields)."""

    def __init__(self) -> None:
        self.workspace: str | None = None
        self.state_dir: str | None = None
        self.json = False
        self.verbose = 0
        self.done = ""
        self.next_steps: list[str] | None = None
        self.no_next = False
        self.task: str | None = None
        self.files: list[str] | None = None


_VERBOSE = {"-v": 1, "--verbose": 1, "-vv": 2}
_STEP_VALUE = {"--done": "done", "-d": "done", "--task": "task"}
_STEP_LIST = {"--next": "next_steps", "-n": "next_steps", "--file": "files", "-f": "files"}


def plain_step_args(argv: Sequence[str]) -> StepArgs | None:
    """``[-C DIR | --workspace DIR | --state-dir DIR | --json | -v]... step --done MSG
    [--next STEP... | --no-next] [--task TEXT] [--file PATH...] [--json]``, each option as its
    own word and no value starting with ``-``, read without argparse; None for anything else
    (the full parser reads it, and says what is wrong)."""
    args = StepArgs()
    done = False
    i, n = 0, len(argv)
    while i < n and argv[i] != "step":
        word = argv[i]
        if word in GLOBAL_VALUE_OPTIONS and i + 1 < n and not argv[i + 1].startswith("-"):
            setattr(args, GLOBAL_VALUE_OPTIONS[word], argv[i + 1])
            i += 2
        elif word == "--json":
            args.json = True
            i += 1
        elif word in _VERBOSE:
            args.verbose += _VERBOSE[word]
            i += 1
        else:
            return None
    i += 1
    while i < n:
        word = argv[i]
        if word in _STEP_VALUE and i + 1 < n and not argv[i + 1].startswith("-"):
            setattr(args, _STEP_VALUE[word], argv[i + 1])
            done = done or _STEP_VALUE[word] == "done"
            i += 2
        elif word in _STEP_LIST:
            j = i + 1
            while j < n and not argv[j].startswith("-"):
                j += 1
            if j == i + 1:
                return None  # no value: the parser's error
            name = _STEP_LIST[word]
            setattr(args, name, [*(getattr(args, name) or []), *argv[i + 1 : j]])
            i = j
        elif word == "--no-next":
            args.no_next = True
            i += 1
        elif word == "--json":
            args.json = True
            i += 1
        else:
            return None
    if i > n or not done:
        return None
    return args


def _abs(paths: list[str] | None) -> list[str] | None:
    # Paths on the command line are relative to where the agent stands, not to the workspace root.
    return [os.path.abspath(p) for p in paths] if paths is not None else None


def cmd_step(args: StepArgs) -> int:
    """``args``: :class:`StepArgs`, or the full parser's Namespace with the same fields."""
    # Not _agent: the step takes the agent's file in itself, read and parsed once, in the step's
    # own transaction (AgentSession.step); its warning is the step's.
    with open_store(args) as store:
        session = AgentSession(store)
        cp = make_checkpointer(store, session, args.state_dir)
        # A file watcher's sync starts now: the work up to the step's scan overlaps its wait.
        with cp.workspace_changes(stream=True) as changes:
            _, conv_warning = record_conversations(store.root, args.state_dir)
            warn(conv_warning)
            from tether.cli.progress import terminal_progress

            with terminal_progress(cp):  # a first step in a big tree walks and stores all of it
                outcome = record_step(
                    store,
                    session,
                    cp,
                    args.done,
                    next_steps=[] if args.no_next else args.next_steps,
                    task=args.task,
                    files=_abs(args.files),
                    scan=changes,
                )
        state = outcome.state
        warn(outcome.warning)
        emit(
            args,
            {
                "checkpoint": outcome.info.to_wire(),
                "step": outcome.step.to_json() if outcome.step else None,
                "task": state.task,
                "nextSteps": state.next_steps,
                "filesInProgress": state.files_in_progress,
                "warning": outcome.warning,
            },
            "\n".join(outcome.lines()),
        )
    return 0
