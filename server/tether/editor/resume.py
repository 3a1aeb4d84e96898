"""What a resume does, decided without side effects.

:func:`load_inputs` reads (store, disk); :func:`plan` is pure: given the saved editor state, the
current disk contents of the journaled files and the agent's hand-off, it says which documents
to show at which cursor, which unsaved buffers to restore (only when the file on disk is still
the one the edits were made on) and which to skip, with a reason a user can act on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tether import safefs
from tether.editor.documents import end_position, has_content, parse_editor_state, path_to_uri, text_hash
from tether.errors import OutsideWorkspaceError
from tether.paths import normalize_rel
from tether.protocol import ATTACH_EDITOR
from tether.record import dataclass, field
from tether.store.db import Store
from tether.text import escape

# Live state keys (Store.put_state). STATE_JOURNAL holds one journal per running (or
# crashed) server: {"version": 2, "sessions": [journal, ...]}, updated read-modify-write so two
# editors on one workspace never erase each other. STATE_PENDING is a dead session's journal,
# set aside at startup until it is resumed.
STATE_JOURNAL = "editor"
STATE_PENDING = "editor.pending"
JOURNALS_VERSION = 2


def journal_sessions(data: bytes | None) -> list[dict[str, Any]]:
    """The journals in STATE_JOURNAL (also reads a bare single journal); never raises."""
    if not data:
        return []
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return []
    if isinstance(doc, dict) and isinstance(doc.get("sessions"), list):
        return [j for j in doc["sessions"] if isinstance(j, dict)]
    single = parse_editor_state(data)
    return [single] if single is not None else []


def dump_sessions(sessions: list[dict[str, Any]]) -> bytes:
    return json.dumps({"version": JOURNALS_VERSION, "sessions": sessions}).encode("utf-8")


@dataclass(frozen=True)
class ShowTarget:
    path: str
    uri: str
    line: int
    character: int
    focus: bool


@dataclass(frozen=True)
class BufferEdit:
    path: str
    uri: str
    text: str
    end: tuple[int, int]  # end of the current disk text: the edit replaces all of it
    base_hash: str = ""  # sha256 of the disk content the edits were made on


@dataclass(frozen=True)
class SkippedBuffer:
    path: str
    reason: str


@dataclass(frozen=True)
class ResumeInputs:
    root: Path
    checkpoint: int | None
    editor: dict[str, Any] | None
    disk: Mapping[str, bytes | None]  # current content of journaled files (None: missing)
    hand_off: dict[str, Any] | None
    max_files: int = 30
    pending: bool = False  # ``editor`` is the previous session's journal (STATE_PENDING)


@dataclass
class ResumePlan:
    checkpoint: int | None
    show: list[ShowTarget] = field(default_factory=list)
    buffers: list[BufferEdit] = field(default_factory=list)
    skipped: list[SkippedBuffer] = field(default_factory=list)
    next_steps: dict[str, Any] = field(default_factory=dict)
    pending: dict[str, Any] | None = None  # the journal this plan consumes, if it is the pending one

    @property
    def journaled_at(self) -> float | None:
        value = self.pending.get("updated") if self.pending else None
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    @property
    def empty(self) -> bool:
        return not self.show and not self.buffers


def load_inputs(
    store: Store,
    checkpoint: int | None = None,
    hand_off: dict[str, Any] | None = None,
    max_files: int = 30,
) -> ResumeInputs:
    """Gather what :func:`plan` needs. ``checkpoint=None``: the previous session's journal, if any
    is waiting, else the latest editor attachment."""
    editor: dict[str, Any] | None = None
    pending = False
    if checkpoint is None:
        editor = parse_editor_state(store.get_state(STATE_PENDING))
        pending = has_content(editor)
        if not pending:
            found = store.latest_attachment(ATTACH_EDITOR)
            editor = parse_editor_state(found[1]) if found else None
            checkpoint = found[0] if found else None
    else:
        store.checkpoint_origin(checkpoint)  # NoCheckpointError with a hint
        found = store.latest_attachment(ATTACH_EDITOR, at=checkpoint)
        editor = parse_editor_state(found[1]) if found else None
    disk: dict[str, bytes | None] = {}
    for buf in _list(editor, "buffers"):
        rel = _safe_rel(store.root, buf.get("path"))
        if rel is None:
            continue
        try:
            live = safefs.read_file(store.root, rel)  # never through a symlinked directory
        except OSError:
            live = None
        disk[rel] = live[0] if live is not None else None
    return ResumeInputs(store.root, checkpoint, editor, disk, hand_off, max_files, pending)


def _list(state: dict[str, Any] | None, key: str) -> list[dict[str, Any]]:
    items = state.get(key) if state else None
    return [x for x in items if isinstance(x, dict)] if isinstance(items, list) else []


def _safe_rel(root: Path, path: object) -> str | None:
    # Journals are ours, but the store is a file on disk: re-validate before trusting a path.
    if not isinstance(path, str):
        return None
    try:
        rel = normalize_rel(root, path)
    except OutsideWorkspaceError:
        return None
    return rel if rel == path else None


def _cursor(value: object) -> tuple[int, int]:
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        return int(value[0]), int(value[1])
    return 0, 0


def plan(inputs: ResumeInputs) -> ResumePlan:
    root = inputs.root
    out = ResumePlan(checkpoint=inputs.checkpoint, pending=inputs.editor if inputs.pending else None)
    seen: set[str] = set()
    files = _list(inputs.editor, "files")
    for f in files:
        rel = _safe_rel(root, f.get("path"))
        if rel is None or rel in seen:
            continue
        seen.add(rel)
        line, char = _cursor(f.get("cursor"))
        out.show.append(ShowTarget(rel, path_to_uri(root / rel), line, char, focus=False))
    hand = inputs.hand_off or {}
    agent_files = hand.get("filesInProgress")
    if isinstance(agent_files, list):
        for p in agent_files:
            rel = _safe_rel(root, p)
            if rel is None or rel in seen or not (root / rel).is_file():
                continue
            seen.add(rel)
            # Agent files go first: the editor's most recent document keeps the focus (last).
            out.show.insert(0, ShowTarget(rel, path_to_uri(root / rel), 0, 0, focus=False))
    if len(out.show) > inputs.max_files:
        out.show = out.show[-inputs.max_files :] if inputs.max_files else []
    if out.show:
        last = out.show[-1]
        out.show[-1] = ShowTarget(last.path, last.uri, last.line, last.character, focus=True)

    for buf in _list(inputs.editor, "buffers"):
        rel = _safe_rel(root, buf.get("path"))
        text = buf.get("text")
        base = buf.get("baseHash")
        if rel is None or not isinstance(text, str) or not isinstance(base, str):
            continue
        disk = inputs.disk.get(rel)
        if disk is None:
            out.skipped.append(SkippedBuffer(rel, "the file no longer exists on disk"))
            continue
        if text_hash(disk) != base:
            out.skipped.append(
                SkippedBuffer(rel, "the file changed on disk after these unsaved edits were made")
            )
            continue
        if text_hash(text) == text_hash(disk):
            continue  # nothing unsaved after all
        try:
            disk_text = disk.decode("utf-8")
        except UnicodeDecodeError:
            out.skipped.append(SkippedBuffer(rel, "the file on disk is not UTF-8 text"))
            continue
        uri = path_to_uri(root / rel)
        out.buffers.append(BufferEdit(rel, uri, text, end_position(disk_text), base))
        if rel not in seen:
            seen.add(rel)
            out.show.insert(0, ShowTarget(rel, uri, 0, 0, focus=False))

    out.next_steps = next_steps_payload(hand, [s.path for s in out.show])
    return out


def still_pending(pending: Mapping[str, Any], keep: set[str]) -> dict[str, Any] | None:
    """What stays of the previous session's journal after a resume: the unsaved buffers that
    did not come back for a reason that may pass (the editor refused them, e.g. over a swap
    file, or held other edits), so a second resume can still bring them. Their files were shown;
    they are not offered again. None: nothing left to resume."""
    buffers = [b for b in _list(dict(pending), "buffers") if b.get("path") in keep]
    if not buffers:
        return None
    return {**pending, "files": [], "buffers": buffers}


def next_steps_payload(hand: Mapping[str, Any], fallback_files: list[str]) -> dict[str, Any]:
    """The ``tether/showNextSteps`` params, filled with defaults when agent state is missing."""
    task = hand.get("task")
    steps = hand.get("nextSteps")
    files = hand.get("filesInProgress")
    runs = hand.get("runs")
    summary = hand.get("summary")
    # Shown to the user (and pasted into agents): untrusted text escaped; file paths stay data.
    task = escape(task) if isinstance(task, str) else None
    steps = [escape(s) for s in steps if isinstance(s, str)] if isinstance(steps, list) else []
    agent_files = [f for f in files if isinstance(f, str)] if isinstance(files, list) else []
    # The agent's list first, then what the editor had open.
    files = list(dict.fromkeys([*agent_files, *fallback_files]))
    runs = [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []
    recent = hand.get("recentCommands")
    recent = [r for r in recent if isinstance(r, dict)] if isinstance(recent, list) else []
    if not isinstance(summary, str):
        parts = []
        if task:
            parts.append(f"Task: {task}")
        if steps:
            parts.append("Next: " + "; ".join(steps))
        if files:
            parts.append(f"{len(files)} file{'s' if len(files) != 1 else ''} in progress")
        summary = ". ".join(parts) if parts else "No task recorded"
    summary = escape(summary, multiline=True)
    shipped = hand.get("shipped")
    shipped = [f for f in shipped if f in ("task", "nextSteps")] if isinstance(shipped, list) else []
    return {
        "task": task,
        "nextSteps": steps,
        "filesInProgress": files,
        "runs": runs,
        "recentCommands": recent,
        "summary": summary,
        # Which of task / nextSteps came from the repository's file, not from this machine.
        "shipped": shipped,
    }
