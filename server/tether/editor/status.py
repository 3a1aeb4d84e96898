"""What a status says, defined once: the counts, the label, the tooltip, and when a resume is
offered. The language server's ``tether/status`` and ``tether status`` (CLI) are computed here;
the clients only show ``text`` and ``tooltip``. No pygls, no store writes.

- **Files in progress**: the files the agent named (``.agent-session.json`` /
  ``tether step --file``), then the files open in a running editor on this workspace (this one's
  documents, other live servers' journals), each once.
- **Label**: ``#12 · 2m ago · 4 files`` (``· N files`` left out when none is in progress);
  ``checkpointing…`` from the moment a save is noticed until its checkpoint is written;
  ``no checkpoint yet``; ``error: …``.
- **Resume offer**: only when a resume would bring back something not already there: unsaved
  text the editor does not hold (while the file on disk is still the one it was typed on), or,
  after a crash, files not open — until this session has made its own checkpoint or step (then
  the old file list is superseded). A clean exit alone offers nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tether.humanize import ago, plural
from tether.procs import cmdline_bytes
from tether.record import dataclass
from tether.text import escape

if TYPE_CHECKING:
    from tether.model import CheckpointInfo

MAX_TOOLTIP_FILES = 8


def files_in_progress(agent_files: Iterable[str], editor_files: Iterable[str]) -> list[str]:
    return list(dict.fromkeys([*agent_files, *editor_files]))


def server_alive(journal: Mapping[str, Any]) -> bool:
    """Whether a journal's writer is a live ``tether lsp`` process other than this one."""
    pid = journal.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or pid == os.getpid():
        return False
    raw = cmdline_bytes(pid)
    if not raw:
        return False
    argv = raw.rstrip(b"\0").split(b"\0")
    return any(b"tether" in a for a in argv) and b"lsp" in argv


def live_editor_files(journals: Sequence[Mapping[str, Any]], exclude_session: str | None = None) -> list[str]:
    """Files open in the running editors whose journals these are (newest use last)."""
    out: list[str] = []
    for j in journals:
        if j.get("sessionId") == exclude_session or not server_alive(j):
            continue
        files = j.get("files")
        for f in files if isinstance(files, list) else []:
            if isinstance(f, dict) and isinstance(f.get("path"), str):
                out.append(f["path"])
    return list(dict.fromkeys(out))


# --- label and tooltip ----------------------------------------------------------------------


@dataclass(frozen=True)
class StatusFacts:
    last: CheckpointInfo | None
    files: Sequence[str]  # files in progress
    dirty: int  # unsaved buffers
    checkpointing: bool
    error: str | None = None
    next_step: str | None = None
    tmux: Mapping[str, Any] | None = None  # {"session", "alive"}
    resume: bool = False


def status_text(f: StatusFacts, now: float | None = None) -> str:
    if f.error:
        return f"error: {escape(f.error)}"
    if f.checkpointing:
        return "checkpointing…"
    if f.last is None:
        return "no checkpoint yet"
    parts = [f"#{f.last.id}", ago(f.last.time, now)]
    if f.files:
        parts.append(plural(len(f.files), "file"))
    return " · ".join(parts)


def status_tooltip(f: StatusFacts, now: float | None = None) -> str:
    lines: list[str] = []
    if f.error:
        lines.append(f"Tether error: {escape(f.error)}")
    if f.resume:
        lines.append("A previous session left work that is not open here: resume it.")
    if f.checkpointing:
        lines.append("Checkpointing what was just saved…")
    last = f.last
    if last is None:
        lines.append("No checkpoint yet")
    else:
        what = f"{last.trigger}{': ' + escape(last.message) if last.message else ''}"
        verb = "recorded" if last.trigger == "baseline" else "changed"
        changed = f"{plural(len(last.files), 'file')} {verb}"
        if last.files:
            changed += f" ({_names(last.files)})"
        lines.append(f"Checkpoint #{last.id} ({what}), {ago(last.time, now)}: {changed}")
    if f.files:
        lines.append(f"Files in progress: {len(f.files)} ({_names(f.files)})")
    else:
        lines.append("Files in progress: none")
    if f.dirty:
        lines.append(f"Unsaved buffers: {f.dirty}")
    if f.next_step:
        lines.append(f"Next step: {escape(f.next_step)}")
    if f.tmux:
        state = "running" if f.tmux.get("alive") else "not running"
        lines.append(f"Terminal: tmux session {escape(str(f.tmux.get('session')))} ({state})")
    return "\n".join(lines)


def _names(paths: Sequence[str]) -> str:
    more = " …" if len(paths) > MAX_TOOLTIP_FILES else ""
    return ", ".join(map(escape, paths[:MAX_TOOLTIP_FILES])) + more


# --- resume offer ---------------------------------------------------------------------------


def resume_offer(
    candidate: Mapping[str, Any] | None,
    open_docs: Mapping[str, str],
    restorable: Callable[[str, str], bool],
    superseded: bool,
) -> bool:
    """Whether to offer a resume of ``candidate`` (the previous session's journal).

    ``open_docs``: path -> sha256 of the text this editor holds; ``restorable(path, baseHash)``:
    the file on disk is still the one the unsaved text was typed on.
    """
    if not candidate:
        return False
    from tether.editor.documents import text_hash

    for b in _items(candidate, "buffers"):
        path, text, base = b.get("path"), b.get("text"), b.get("baseHash")
        if not (isinstance(path, str) and isinstance(text, str) and isinstance(base, str)):
            continue
        if open_docs.get(path) != text_hash(text) and restorable(path, base):
            return True
    if candidate.get("clean") or superseded:
        return False
    return any(
        isinstance(f.get("path"), str) and f["path"] not in open_docs for f in _items(candidate, "files")
    )


def merge_pending(newer: dict[str, Any], older: Mapping[str, Any] | None) -> dict[str, Any]:
    """A newer journal replaces the pending one; unsaved buffers of the older one it does not
    have are carried over, so a resume that was never run loses nothing."""
    if not older:
        return newer
    have = {b.get("path") for b in _items(newer, "buffers")}
    carried = [b for b in _items(older, "buffers") if b.get("path") not in have]
    if not carried:
        return newer
    return {**newer, "buffers": [*_items(newer, "buffers"), *carried]}


def _items(doc: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    items = doc.get(key)
    return [x for x in items if isinstance(x, dict)] if isinstance(items, list) else []


def dumps(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc).encode("utf-8")
