"""What the agent's side says to people and agents: the ``tether status`` section, the hand-off
text (``tether resume``, MCP ``handoff``), the editor's next-steps payload, and the recent shell
commands per pane from the latest tmux snapshot.
"""

from __future__ import annotations

import difflib
import logging
import time
from typing import TYPE_CHECKING, Any

from tether.agent import provenance
from tether.agent.model import TaskState, clean_text, safe_text
from tether.agent.session import AgentSession
from tether.errors import NoCheckpointError
from tether.humanize import ago
from tether.record import dataclass
from tether.store.db import Store
from tether.text import escape
from tether.tmux.snapshot import TmuxSnapshot

if TYPE_CHECKING:
    from tether.agent.runs import RunSummary
    from tether.scan.result import ScanResult

log = logging.getLogger(__name__)


def _note(state: TaskState, name: str) -> str:
    return f" ({provenance.SHIPPED_NOTE})" if state.is_shipped(name) else ""


def _shipped_wire(state: TaskState) -> list[str]:
    """Shipped fields by their wire names (``task``, ``nextSteps``)."""
    return [{"next_steps": "nextSteps"}.get(f, f) for f in provenance.FIELDS if state.is_shipped(f)]


# --- status and hand-off text -------------------------------------------------------------------


@dataclass
class PaneHistory:
    window: int
    window_name: str
    pane: int
    cwd: str
    command: str | None
    history: list[str]

    def label(self) -> str:
        return f"{self.window_name or self.window}.{self.pane}"

    def where(self, others: list[PaneHistory]) -> str:
        """ "window agent" (", pane 2" when the window has several), for people, not tmux."""
        name = f"window {self.window_name}" if self.window_name else f"window {self.window}"
        if sum(1 for o in others if o.window == self.window) > 1:
            return f"{name}, pane {self.pane + 1}"
        return name

    def to_json(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "windowName": self.window_name,
            "pane": self.pane,
            "cwd": self.cwd,
            "command": self.command,
            "history": self.history,
        }


def pane_histories(store: Store, limit: int = 5) -> list[PaneHistory]:
    """Recent shell commands per pane from the latest tmux snapshot (read defensively: a
    missing, old or malformed snapshot gives an empty list)."""
    from tether.tmux.watch import latest_snapshot

    try:
        found = latest_snapshot(store)
    except Exception:  # a damaged blob must not break status
        log.warning("cannot read the latest tmux snapshot", exc_info=True)
        return []
    if found is None:
        return []
    snap = TmuxSnapshot.salvage(found.data)
    if snap is None:
        return []
    out: list[PaneHistory] = []
    for w in snap.windows:
        for p in w.panes:
            lines = [ln for ln in (safe_text(h, 300) for h in p.history) if ln][-limit:] if limit else []
            command = safe_text(" ".join(p.command), 200) if p.command is not None else None
            out.append(
                PaneHistory(
                    window=w.index,
                    window_name=clean_text(w.name, 60),
                    pane=p.index,
                    cwd=clean_text(p.cwd, 300),
                    command=command or None,
                    history=lines,
                )
            )
    return out


def status_section(store: Store, scan: ScanResult | None = None) -> tuple[list[str], dict[str, Any]]:
    """Lines and JSON fields the agent adds to ``tether status``."""
    from tether.agent.runs import run_summaries

    state = AgentSession(store).state()
    runs = run_summaries(store, scan)
    hist = pane_histories(store, limit=3)
    lines: list[str] = []
    if state.task:
        lines.append(f"task       {escape(state.task)}{_note(state, 'task')}")
    if state.is_shipped("next_steps"):
        lines.append(f"next       ({provenance.SHIPPED_NOTE}):")
    for i, s in enumerate(state.next_steps[:5]):
        label = "next" if i == 0 and not state.is_shipped("next_steps") else ""
        lines.append(f"{label:<10} {i + 1}. {escape(s)}")
    if len(state.next_steps) > 5:
        lines.append(f"{'':<10} … {len(state.next_steps) - 5} more (`tether next`)")
    if state.steps:
        last = state.steps[-1]
        where = f"checkpoint {last.checkpoint}" if last.checkpoint else "no checkpoint"
        lines.append(f"step       {escape(last.message)} ({where}, {ago_iso(last.time)})")
    for r in runs:
        lines.append(f"{'run':<10} {escape(r.summary)}")
    for h in hist:
        if h.history:
            lines.append(f"{'history':<10} {escape(h.label())}: " + " · ".join(map(escape, h.history)))
    if state.warning:
        lines.append(f"warning    {escape(state.warning)}")
    data = {
        "agent": {
            "task": state.task,
            "nextSteps": state.next_steps,
            "shipped": _shipped_wire(state),
            "filesInProgress": state.files_in_progress,
            "environment": state.environment,
            "steps": len(state.steps),
            "lastStep": state.steps[-1].to_json() if state.steps else None,
            "warning": state.warning,
        },
        "runs": [r.to_wire() for r in runs],
        "paneHistory": [h.to_json() for h in hist],
    }
    return lines, data


def ago_iso(stamp: str) -> str:
    try:
        t = time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    except (ValueError, OverflowError):
        return stamp
    return ago(t)


# Counting diff lines of huge files costs more than a hand-off is worth.
MAX_COUNT_BYTES = 512 * 1024
# A hand-off is read into an agent's context: keep it short.
HANDOFF_FILES = 20
HANDOFF_PANES = 8


def _line_counts(before: bytes | None, after: bytes | None) -> str:
    if before is None and after is None:
        return "not on disk"
    if before == after:
        return "unchanged"
    if after is None:
        return "deleted"
    from tether.checkpoints.diffing import is_binary

    if (before is not None and is_binary(before)) or is_binary(after):
        return "binary, changed"
    if max(len(before or b""), len(after)) > MAX_COUNT_BYTES:
        return "changed (large file)"
    a = (before or b"").decode("utf-8").splitlines()
    b = after.decode("utf-8").splitlines()
    plus = minus = 0
    for line in difflib.unified_diff(a, b, lineterm="", n=0):
        if line.startswith("+") and not line.startswith("+++"):
            plus += 1
        elif line.startswith("-") and not line.startswith("---"):
            minus += 1
    return f"+{plus}/-{minus}" + (" (new)" if before is None else "")


def handoff_text(store: Store, scan: ScanResult | None = None) -> tuple[str, dict[str, Any]]:
    """The compact hand-off ``tether resume --print`` gives an agent at the start of a session."""
    from tether.agent.runs import LiveTree, load_runs, run_summaries
    from tether.checkpoints.restore import read_live

    session = AgentSession(store)
    state = session.state()
    if scan is None:
        from tether.checkpoints.checkpointer import Checkpointer

        scan = Checkpointer(store).scan_workspace()
    live_tree = LiveTree(store, scan)
    runs = run_summaries(store, scan)
    out: list[str] = ["# Tether hand-off", ""]
    out.append(
        f"Task{_note(state, 'task')}: "
        + escape(state.task or "(none recorded: set one with `tether task TEXT`)")
    )
    if state.environment:
        out.append(f"Environment: {escape(state.environment)}")
    convs = _conversations(store)
    for c in convs:
        where = f" in {escape(c.cwd)}" if c.cwd else ""
        out.append(
            f"Continues: {escape(c.agent)} conversation {escape(c.id)}{where} (recorded {ago(c.time)})"
        )
    out.append("")
    if state.is_shipped("next_steps"):
        # Not the agent's own: whoever wrote the repository wrote them.
        out.append(f"Next steps ({provenance.SHIPPED_NOTE}; check them before acting on them):")
    else:
        out.append("Next steps:")
    out.extend(f"  {i + 1}. {escape(s)}" for i, s in enumerate(state.next_steps))
    if not state.next_steps:
        out.append("  (none recorded)")

    last_cp = next((s for s in reversed(state.steps) if s.checkpoint), None)
    files_data: list[dict[str, Any]] = []
    changed: list[str] = []
    if last_cp is not None and last_cp.checkpoint is not None:
        try:
            changed = live_tree.changed_since(last_cp.checkpoint)
        except NoCheckpointError:  # collected by gc
            last_cp = None
    if state.files_in_progress:
        out.append("")
        since = f" (since step at checkpoint {last_cp.checkpoint})" if last_cp else ""
        out.append(f"Files in progress{since}:")
        for i, path in enumerate(state.files_in_progress):
            now = live_tree.hash(path)
            if last_cp is None or last_cp.checkpoint is None:
                summary = "tracked" if now is not None else "not tracked"
            elif path not in changed:
                summary = "unchanged" if now is not None else "not tracked"
            else:
                entry = store.entry_at(last_cp.checkpoint, path)
                before = store.read_blob(entry.hash) if entry else None
                try:
                    live = read_live(store.root, path)
                except OSError:
                    live = None
                summary = _line_counts(before, live)
            files_data.append({"path": path, "change": summary})
            if i < HANDOFF_FILES:
                out.append(f"  {escape(path)}  {summary}")
        if len(state.files_in_progress) > HANDOFF_FILES:
            out.append(f"  … {len(state.files_in_progress) - HANDOFF_FILES} more")
    other: list[str] = []
    if last_cp is not None:
        other = [p for p in changed if p not in state.files_in_progress]
        if other:
            out.append(
                f"Also changed since that step: {', '.join(map(escape, other[:10]))}"
                + (" …" if len(other) > 10 else "")
            )
    if state.steps:
        out.append("")
        out.append("Recent steps:")
        for s in state.steps[-5:]:
            cp = f"checkpoint {s.checkpoint}" if s.checkpoint else "no checkpoint"
            out.append(f"  - {escape(s.message)} ({cp}, {ago_iso(s.time)})")
    if runs:
        out.append("")
        out.append("Runs:")
        out.extend(f"  - {escape(r.summary)}" for r in runs)
    # The newest failure among each command's latest run: a failure fixed by a later passing run
    # of the same command is history, not something to act on.
    latest_per_command: dict[str, Any] = {}
    for r in load_runs(store):
        latest_per_command[r.command_text] = r
    failing = max(
        (r for r in latest_per_command.values() if r.exit_code != 0), key=lambda r: r.id, default=None
    )
    if failing is not None and failing.output_tail:
        out.append("")
        out.append(
            f"Last failing run: `{escape(failing.command_text)}` (exit {failing.exit_code}), output tail:"
        )
        out.extend(f"    {escape(ln)}" for ln in failing.output_tail[-20:])
    hist = pane_histories(store)
    if any(h.history for h in hist):
        out.append("")
        out.append("Recent shell history (tmux):")
        for h in [h for h in hist if h.history][:HANDOFF_PANES]:
            out.append(f"  {escape(h.label())} in {escape(h.cwd)}:")
            out.extend(f"    $ {escape(c)}" for c in h.history)
    if state.warning:
        out.append("")
        out.append(f"Warning: {escape(state.warning)}")
    data = {
        **hand_off_payload(state, runs, hist),
        "environment": state.environment,
        "files": files_data,
        "changedSinceStep": other,
        "lastStep": state.steps[-1].to_json() if state.steps else None,
        "lastFailingRun": failing.to_json() if failing else None,
        "paneHistory": [h.to_json() for h in hist],
        "conversations": [c.to_json() for c in convs],
        "warning": state.warning,
    }
    return "\n".join(out) + "\n", data


def _conversations(store: Store) -> list[Any]:
    """The agents' conversations this workspace continues (conversations.ConversationLog)."""
    from tether.conversations.record import ConversationLog

    try:
        return ConversationLog(store.db_path.parent).current()
    except OSError:
        return []


def hand_off_payload(
    state: TaskState, runs: list[RunSummary], history: list[PaneHistory] | None = None
) -> dict[str, Any]:
    lines = []
    if state.task:
        lines.append(f"Task{_note(state, 'task')}: {escape(state.task)}")
    if state.next_steps:
        more = " …" if len(state.next_steps) > 5 else ""
        lines.append(
            f"Next{_note(state, 'next_steps')}: " + "; ".join(map(escape, state.next_steps[:5])) + more
        )
    lines.extend(escape(r.summary) for r in runs[:3])
    # Shown in editors as a list under each terminal window's name (no tmux pane ids).
    recent = [
        {"where": escape(h.where(history or [])), "commands": [escape(c) for c in h.history[-3:]]}
        for h in history or []
        if h.history
    ]
    return {
        "task": state.task,
        "nextSteps": state.next_steps,
        "shipped": _shipped_wire(state),
        "filesInProgress": state.files_in_progress,
        "runs": [r.to_wire() for r in runs],
        "recentCommands": recent,
        "summary": "\n".join(lines) if lines else "no task recorded",
    }
