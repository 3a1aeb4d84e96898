"""Checkpoints an agent asks for: steps and manual checkpoints, each carrying the agent state and,
when the workspace's tmux session runs, its snapshot.

The CLI (``tether step``, ``tether checkpoint``) and the MCP server (``record_step``,
``checkpoint``) both go through here, so a step is the same whichever way it was recorded.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from tether import protocol
from tether.agent.model import Step, TaskState
from tether.agent.session import AgentSession
from tether.checkpoints.checkpointer import Checkpointer, CheckpointOutcome
from tether.errors import TmuxError
from tether.humanize import plural
from tether.model import CheckpointInfo
from tether.record import dataclass, field
from tether.scan.result import ScanResult
from tether.store.db import Store
from tether.text import escape

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from tether.tmux.link import TmuxLink

log = logging.getLogger(__name__)


def _tmux_provider(root: Path, state: str | os.PathLike[str] | None) -> Callable[[], bytes | None]:
    """The tmux snapshot at each checkpoint (None when the session does not run). When no tmux
    server can be listening at the link's socket (tmux/presence.py), neither tmux nor the tmux
    link is touched: only whether the installed tmux is too old is said, from the state dir's
    record of ``tmux -V`` (no process while the binary is unchanged), and looked at once per
    checkpointer (a long-lived server's steps do not search PATH again). Otherwise the link is built
    at the first checkpoint: a hook that finds nothing changed never imports it."""
    links: list[TmuxLink] = []
    sockets: list[str | None] = []
    warned: list[bool] = []
    version_checked: list[bool] = []

    def too_old(message: str) -> None:
        # Said once per process; the files' checkpoint goes on.
        if not warned:
            warned.append(True)
            print(f"tether: warning: {message}; tmux panes are not recorded", file=sys.stderr)

    def snapshot() -> bytes | None:
        from tether.tmux.presence import link_socket, server_may_run

        if not sockets:
            sockets.append(link_socket(_configured_socket()))
        if not links and not server_may_run(sockets[0]):
            if not version_checked:
                version_checked.append(True)
                _check_version(state, too_old)
            return None
        if not links:
            from tether.tmux.user import user_link

            # Warnings are printed by the tmux commands, not at every step.
            links.append(user_link(root, os.fspath(state) if state is not None else None)[0])
        try:
            return links[0].snapshot_bytes()
        except TmuxError as exc:
            # An old tmux (tmux_version.TmuxTooOldError, matched by its reason so that `tether
            # step` does not import the module).
            if exc.reason == "tmuxTooOld":
                too_old(exc.message)
            return None

    return snapshot


def _configured_socket() -> str | None:
    """``[tmux] socketPath`` of the user's config file, read only when the file exists."""
    from tether.user_config import config_path, load_user_config

    path = config_path()
    if not path.is_file():
        return None
    data, _ = load_user_config(path)
    if data.get("tmux") is None:
        return None
    from tether.tmux.config import TmuxConfig

    return TmuxConfig.from_wire(data["tmux"], trusted=True)[0].socket_path


def _check_version(state: str | os.PathLike[str] | None, say: Callable[[str], None]) -> None:
    """Say (through ``say``) when the tmux on PATH is too old, as every tmux entry point does."""
    from tether.tmux.presence import which_tmux

    path = which_tmux()
    if path is None:
        return  # no tmux, no session to record: nothing to say at every step
    from tether import paths
    from tether.tmux import version as tmux_version

    try:
        v = tmux_version.cached_version(path, paths.state_dir(state))
    except TmuxError as exc:
        log.info("tmux -V: %s", exc.message)
        return
    if v.too_old:
        say(tmux_version.too_old_message(v))


def add_providers(cp: Checkpointer, session: AgentSession, state: str | os.PathLike[str] | None) -> None:
    cp.add_provider(protocol.ATTACH_AGENT, session.provider)
    cp.add_provider(protocol.ATTACH_TMUX, _tmux_provider(session.root, state))


def make_checkpointer(
    store: Store, session: AgentSession, state: str | os.PathLike[str] | None = None, *, watched: bool = True
) -> Checkpointer:
    """A checkpointer whose checkpoints carry the agent state and, when tmux runs, its snapshot.
    ``watched``: its whole-workspace scans use a live file watcher's dirty set (scan/dirty.py)."""
    cp = Checkpointer(store, watched=watched)
    add_providers(cp, session, state)
    return cp


def record_conversations(
    root: Path,
    state: str | os.PathLike[str] | None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    source: str = "step",
) -> tuple[list[Any], str | None]:
    """Record the conversation ids the agent running this step put in its tools' environment
    (``CLAUDE_CODE_SESSION_ID``, ``CODEX_THREAD_ID``, ``GEMINI_SESSION_ID``; an agent's stdio MCP
    servers get them too). Returns (conversations, warning); never raises: the id is a bonus,
    the step itself must be recorded."""
    from tether.conversations.record import record_from_env

    try:
        return record_from_env(root, state, env, cwd=cwd, source=source), None
    except Exception as exc:
        return [], f"could not record the conversation id: {exc}"


@dataclass
class StepOutcome:
    info: CheckpointInfo
    step: Step | None  # None only if the step was trimmed away by a flood of concurrent steps
    state: TaskState
    conversations: list[Any] = field(default_factory=list)
    warning: str | None = None  # about the agent's file (said once per distinct bad content)

    @property
    def touched(self) -> list[str]:
        return self.step.files if self.step is not None else list(self.info.files)

    def lines(self) -> list[str]:
        touched = self.touched
        names = ", ".join(map(escape, touched[:6])) + (" …" if len(touched) > 6 else "")
        out = [
            f"step recorded in checkpoint {self.info.id}: {plural(len(touched), 'file')} changed since "
            "the last step" + (f" ({names})" if touched else "")
        ]
        if self.state.next_steps:
            out.append("next:")
            out.extend(f"  {i + 1}. {escape(s)}" for i, s in enumerate(self.state.next_steps))
        return out


def record_step(
    store: Store,
    session: AgentSession,
    checkpointer: Checkpointer,
    done: str,
    *,
    next_steps: list[str] | None = None,
    task: str | None = None,
    files: list[str] | None = None,
    scan: ScanResult | Callable[[], ScanResult] | None = None,
    later: list[Callable[[], None]] | None = None,
) -> StepOutcome:
    """A step (what was done, what comes next) and its checkpoint. ``next_steps=None`` ticks off
    a next step equal to ``done``; ``[]`` clears them. ``files`` (absolute, or relative to the
    workspace root) become the files in progress; OutsideWorkspaceError names a bad one.
    ``scan``: what changed, when the caller knows (else a stat walk of the workspace), or a
    function saying it (AgentSession.step). ``later``: see AgentSession.step."""
    recorded = session.step(
        checkpointer, done, next_steps=next_steps, task=task, files=files, scan=scan, later=later
    )
    info, state = recorded.info, recorded.state
    # Another process may have recorded a step meanwhile: ours is the one with our checkpoint.
    step = next((st for st in reversed(state.steps) if st.checkpoint == info.id), None)
    return StepOutcome(info, step, state, warning=recorded.warning)


def manual_checkpoint(
    session: AgentSession,
    checkpointer: Checkpointer,
    message: str | None = None,
    paths: list[str] | None = None,
) -> CheckpointOutcome:
    """A checkpoint asked for by name (``tether checkpoint``): of ``paths`` only when given (fast),
    else of the whole workspace; written even when nothing changed."""
    if paths:
        outcome = checkpointer.checkpoint(protocol.TRIGGER_MANUAL, message, paths=paths, allow_empty=True)
    else:
        outcome = checkpointer.checkpoint(protocol.TRIGGER_MANUAL, message, full=True, allow_empty=True)
    assert outcome.info is not None  # allow_empty
    session.after_checkpoint(outcome.info)
    return outcome
