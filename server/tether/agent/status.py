"""A workspace's status: the last checkpoint, what changed since, skipped files, and the agent's
side (task, next steps, last step, run validity, pane history).

``tether status`` prints it and the MCP ``status`` tool returns it; both call
:func:`workspace_status`. One stat-cache walk serves the whole report.
"""

from __future__ import annotations

from typing import Any

from tether.agent.handoff import status_section
from tether.agent.session import AgentSession
from tether.checkpoints.checkpointer import Checkpointer
from tether.editor.resume import STATE_JOURNAL, journal_sessions
from tether.editor.status import files_in_progress, live_editor_files
from tether.humanize import ago, plural
from tether.model import Skipped
from tether.record import dataclass
from tether.scan.result import IGNORE_RULES_REASON, ScanResult
from tether.store.db import Store
from tether.text import escape


@dataclass
class Status:
    data: dict[str, Any]  # the `--json` document
    lines: list[str]  # the text form, one line per fact
    warning: str | None  # a problem importing .agent-session.json, reported once

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def skipped_wire(items: list[Skipped]) -> list[dict[str, Any]]:
    return [s.to_wire() for s in items]


def workspace_status(
    store: Store, checkpointer: Checkpointer | None = None, scan: ScanResult | None = None
) -> Status:
    """Writes nothing but the agent file's import (an agent may have just written it).
    ``scan``: a whole-workspace scan the caller just made."""
    _, warning = AgentSession(store).import_file()
    latest = store.latest()
    if scan is None:
        scan = (checkpointer or Checkpointer(store)).scan_workspace()
    # Stored skips (from the last checkpoints) plus what this scan found now.
    by_path = {s.path: s for s in store.skipped()}
    by_path.update({s.path: s for s in scan.skipped})
    skipped = sorted(by_path.values(), key=lambda s: s.path)
    data: dict[str, Any] = {
        "workspace": str(store.root),
        "store": str(store.db_path),
        "lastCheckpoint": latest.to_wire() if latest else None,
        "changedSinceCheckpoint": scan.changed_paths,
        "skipped": skipped_wire(skipped),
    }
    lines = [f"workspace  {escape(str(store.root))}"]
    if latest:
        lines.append(
            f"last       checkpoint {latest.id}, {ago(latest.time)} ({latest.trigger})"
            + (f": {escape(latest.message)}" if latest.message else "")
        )
    else:
        lines.append("last       no checkpoint yet (run `tether checkpoint`)")
    if scan.changes:
        lines.append(
            f"changed    {plural(len(scan.changes), 'file')} since: "
            + ", ".join(escape(p) for p in scan.changed_paths[:8])
            + (" …" if len(scan.changes) > 8 else "")
        )
    else:
        lines.append("changed    nothing since the last checkpoint")
    for s in skipped:
        # A pattern file over the bounds is a warning about the rules, not a skipped file.
        label = "warning " if s.reason.startswith(IGNORE_RULES_REASON) else "skipped "
        lines.append(f"{label}   {escape(s.path)}: {escape(s.reason)}")
    agent_lines, agent_data = status_section(store, scan)
    # The same definition as the editors' status: the agent's files, then those open in editors.
    files, _agent_files = store_files_in_progress(store)
    shown = ", ".join(map(escape, files[:8])) + (" …" if len(files) > 8 else "")
    lines.append(f"files      {len(files)} in progress" + (f": {shown}" if files else ""))
    lines.extend(agent_lines)
    data.update(agent_data)
    data["filesInProgress"] = files
    return Status(data, lines, warning)


def store_files_in_progress(store: Store) -> tuple[list[str], list[str]]:
    """(files in progress, the agent's own list) as ``tether status`` computes them."""
    agent = AgentSession(store).state().files_in_progress
    editors = live_editor_files(journal_sessions(store.get_state(STATE_JOURNAL)))
    return files_in_progress(agent, editors), list(agent)
