"""The ``tether/status`` payload (and the ``tether.status`` command's result): the engine's facts
put through the one status model (``editor/status.py``) that ``tether status`` also uses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tether import protocol as P
from tether.editor import status as status_model
from tether.model import CheckpointInfo
from tether.text import escape


def shown(info: CheckpointInfo) -> dict[str, Any]:
    """A checkpoint for the editor to display: its message (a step's text, a hook's command line)
    escaped like every workspace-derived string an editor shows."""
    wire = info.to_wire()
    for key in ("message", "origin"):
        if isinstance(wire.get(key), str):
            wire[key] = escape(wire[key])
    return wire


def payload(
    root: Path,
    *,
    busy: bool,
    error: str | None,
    last: CheckpointInfo | None,
    files: Sequence[str],
    dirty: int,
    checkpointing: bool,
    next_step: str | None,
    tmux: dict[str, Any] | None,
    resume: bool,
) -> dict[str, Any]:
    if error:
        state = P.STATE_ERROR
    elif busy:
        state = P.STATE_BUSY
    else:
        state = P.STATE_IDLE
    facts = status_model.StatusFacts(
        last=last,
        files=files,
        dirty=dirty,
        checkpointing=checkpointing and not error,
        error=error,
        next_step=next_step,
        tmux=tmux,
        resume=resume,
    )
    return {
        "workspace": str(root),
        "state": state,
        "error": error,
        "lastCheckpoint": shown(last) if last else None,
        "filesInProgress": len(files),
        "dirtyBuffers": dirty,
        "tmux": dict(tmux) if tmux is not None else None,
        "resumeAvailable": resume,
        "checkpointing": facts.checkpointing,
        "nextStep": next_step,
        "text": status_model.status_text(facts),
        "tooltip": status_model.status_tooltip(facts),
    }
