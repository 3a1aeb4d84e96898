"""The one chained tmux invocation that recreates a session, planned without running anything:
:func:`plan_chain` turns window and pane plans into tmux commands (and the bytes each pane replays),
:func:`pack` joins commands into as few invocations as tmux's message size allows."""

from __future__ import annotations

from collections.abc import Mapping

from tether.record import dataclass, field
from tether.tmux.panes import PANE_OPTION

# Session option naming the workspace.
ROOT_OPTION = "@tether_root"
PLACEHOLDER_INDEX = 99999
PLACEHOLDER_NAME = "tether-init"
# tmux's client refuses a command message over MAX_IMSGSIZE (16384) minus headers.
CHAIN_BUDGET = 16000


def fmt_escape(text: str) -> str:
    """For arguments tmux expands as formats (-c, -n): ``#`` would otherwise run ``#(...)``."""
    return text.replace("#", "##")


def chain_arg(text: str) -> str:
    """A trailing ``;`` ends a tmux command in a chain; ``\\;`` is tmux's escape for a literal one."""
    return text[:-1] + "\\;" if text.endswith(";") else text


def pack(commands: list[list[str]], budget: int = CHAIN_BUDGET) -> list[list[str]]:
    """Join commands with ``;`` into as few argv lists as fit tmux's message size."""
    chains: list[list[str]] = []
    cur: list[str] = []
    size = 0
    for raw in commands:
        cmd = [raw[0], *(chain_arg(a) for a in raw[1:])]
        csize = sum(len(a.encode()) + 1 for a in cmd) + 2
        if cur and size + csize > budget:
            chains.append(cur)
            cur, size = [], 0
        if cur:
            cur.append(";")
        cur.extend(cmd)
        size += csize
    if cur:
        chains.append(cur)
    return chains


@dataclass
class PanePlan:
    uid: str
    cwd: str
    env: dict[str, str]
    scrollback: list[str]
    history: list[str] | None  # None: keep the pane's existing history file
    keys: str | None = None
    enter: bool = False


@dataclass
class WindowPlan:
    index: int | None
    name: str
    layout: str | None
    zoomed: bool
    active: bool
    active_pane: int
    panes: list[PanePlan]


@dataclass(frozen=True)
class SessionPlan:
    """Everything the chain needs, settled beforehand: no tmux, disk or clock behind it."""

    session: str
    root: str
    width: int
    height: int
    history_limit: int
    windows: list[WindowPlan]
    # Restored project variables of the session (set first, sorted) and Tether's own plumbing
    # (hooks dir, replay file, shell): both set before any pane exists.
    env: Mapping[str, str] = field(default_factory=dict)
    plumbing: Mapping[str, str] = field(default_factory=dict)
    start_cmd: str = "true"  # what each pane's /bin/sh runs, with its replay slice as arguments


@dataclass(frozen=True)
class Chain:
    commands: list[list[str]]  # one chained invocation's commands, before :func:`pack`
    replay: bytes  # every pane's scrollback then command, each pane told its slice


def plan_chain(plan: SessionPlan) -> Chain:
    """The tmux commands that create ``plan``'s session, windows and panes in one invocation.

    A placeholder window lets history-limit and the session environment be set before the real
    panes exist (both are read when a pane is created); it is killed at the end. Each pane runs
    ``/bin/sh -c START offset length keys_at keys_length enter`` over the shared replay bytes.
    """
    s = f"={plan.session}:"
    cmds: list[list[str]] = [
        [
            "new-session", "-d", "-s", plan.session, "-n", PLACEHOLDER_NAME,
            "-x", str(max(plan.width, 10)), "-y", str(max(plan.height, 5)),
            "-c", fmt_escape(plan.root), "--", "sleep", "86400",
        ],
        ["move-window", "-s", s, "-t", f"{s}{PLACEHOLDER_INDEX}"],
        ["set-option", "-t", s, "history-limit", str(plan.history_limit)],
        ["set-option", "-t", s, ROOT_OPTION, plan.root],
    ]  # fmt: skip
    for name, value in [*sorted(plan.env.items()), *plan.plumbing.items()]:
        cmds.append(["set-environment", "-t", s, name, value])
    replay = bytearray()
    next_index = 0
    active_window: str | None = None
    for w in plan.windows:
        idx = w.index if w.index is not None else next_index
        next_index = max(next_index, idx + 1)
        wt = f"{s}{idx}"
        for k, p in enumerate(w.panes):
            chunk = "".join(ln + "\n" for ln in p.scrollback).encode()
            offset = len(replay)
            replay += chunk
            # The command is typed by the pane itself (send-keys -l), once its terminal has echo
            # off, so it shows once, at the prompt.
            keys = (p.keys or "").encode()
            keys_at = len(replay)
            replay += keys
            pane_env = {**p.env, "TETHER_PANE_ID": p.uid}
            if p.env:
                pane_env["TETHER_KEEP_PANE_ENV"] = " ".join(sorted(p.env))
            if "PATH" in p.env:
                pane_env["TETHER_PANE_PATH"] = p.env["PATH"]
            env_args = [a for name, value in pane_env.items() for a in ("-e", f"{name}={value}")]
            argv = [
                "/bin/sh", "-c", plan.start_cmd, "tether",
                str(offset), str(len(chunk)), str(keys_at), str(len(keys)), "1" if p.enter else "0",
            ]  # fmt: skip
            # Panes default to the tmux client's cwd, the root here: most need no -c at all.
            cwd = [] if p.cwd == plan.root else ["-c", fmt_escape(p.cwd)]
            if k == 0:
                # -n also turns automatic-rename off for the window.
                cmds.append(
                    ["new-window", "-d", "-t", wt, "-n", fmt_escape(w.name), *cwd, *env_args, "--", *argv]
                )
                # Pane indexes are addressed from 0 whatever the user's pane-base-index.
                cmds.append(["set-option", "-w", "-t", wt, "pane-base-index", "0"])
            else:
                # Without -d the new pane becomes active, so the next split follows it and panes
                # keep their order.
                cmds.append(["split-window", "-t", wt, *cwd, *env_args, "--", *argv])
                if k % 4 == 0:
                    # Each split halves the newest pane: rebalance now and then so dozens of
                    # panes never run out of room before the final layout is applied.
                    cmds.append(["select-layout", "-t", wt, "tiled"])
            cmds.append(["set-option", "-p", "-t", f"{wt}.{k}", PANE_OPTION, p.uid])
        if w.layout:
            cmds.append(["select-layout", "-t", wt, w.layout])
        cmds.append(["select-pane", "-t", f"{wt}.{w.active_pane}"])
        if w.zoomed and len(w.panes) > 1:
            cmds.append(["resize-pane", "-Z", "-t", f"{wt}.{w.active_pane}"])
        cmds.append(["set-option", "-w", "-u", "-t", wt, "pane-base-index"])
        if w.active or active_window is None:
            active_window = wt
    cmds.append(["kill-window", "-t", f"{s}{PLACEHOLDER_INDEX}"])
    if active_window:
        cmds.append(["select-window", "-t", active_window])
    return Chain(cmds, bytes(replay))


def join(commands: list[list[str]]) -> list[str]:
    """Commands as one chained argv (no size limit: for short chains like a session's hooks)."""
    out: list[str] = []
    for i, c in enumerate(commands):
        if i:
            out.append(";")
        out.extend([c[0], *(chain_arg(a) for a in c[1:])])
    return out
