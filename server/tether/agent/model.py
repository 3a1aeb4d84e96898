"""The agent's task state as Tether keeps it: task, files in progress, next steps, the step log,
and the cleaning every stored text goes through. Pure: no store, no disk.
"""

from __future__ import annotations

import json
import logging
import time

from tether.agent import provenance
from tether.model import iso_time
from tether.record import dataclass, field, replace
from tether.text import strip_controls, strip_escapes

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    pass

log = logging.getLogger(__name__)

STALE_WINDOW_NS = 10 * 1_000_000_000

STATE_NAME = "agent"
SCHEMA = 1

# Limits on what the untrusted file may make Tether store and print.
MAX_FILE_BYTES = 256 * 1024
MAX_TEXT = 2000
MAX_TASK = 4000
MAX_LIST = 200
MAX_FILES = 500
# Steps kept in the live state; every step also lives on in its checkpoint's attachment.
MAX_LIVE_STEPS = 200
# Steps carried in each checkpoint's attachment (the timeline needs the recent ones).
MAX_ATTACHED_STEPS = 50
# Runs (and lines of their output) carried in each attachment: the live state keeps more.
MAX_ATTACHED_RUNS = 10
ATTACHED_TAIL_LINES = 20
# Paths kept per step; the step's checkpoint lists every changed file anyway.
MAX_STEP_FILES = 200

KNOWN_KEYS = ("current_task", "files_in_progress", "next_steps", "environment", "last_checkpoint")


def clean_text(value: str, limit: int = MAX_TEXT, *, multiline: bool = False) -> str:
    """Untrusted text made safe to print: no escape sequences or control characters, capped."""
    text = strip_escapes(value)
    text = text.replace("\r\n", "\n").replace("\t", " ")
    if not multiline:
        text = text.replace("\n", " ")
    text = strip_controls(text).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def safe_text(value: str, limit: int = MAX_TEXT) -> str:
    """Text Tether stores and shows (task, steps, next steps): cleaned, capped, secrets redacted.

    Cleaned first (an escape sequence inside a secret would hide it from the patterns), capped
    last (a token cut short no longer has its shape)."""
    from tether.redact import redact_text

    return clean_text(redact_text(clean_text(value, max(limit, len(value)))), limit)


def iso_now() -> str:
    return iso_time(time.time())


# --- model ---------------------------------------------------------------------------------


@dataclass
class Step:
    time: str
    message: str
    files: list[str] = field(default_factory=list)
    checkpoint: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "message": self.message,
            "files": self.files,
            "checkpoint": self.checkpoint,
        }

    @classmethod
    def from_json(cls, d: Any) -> Step | None:
        if not isinstance(d, dict) or not isinstance(d.get("message"), str):
            return None
        cp = d.get("checkpoint")
        files = d.get("files")
        return cls(
            time=str(d.get("time") or ""),
            message=d["message"],
            files=[f for f in files if isinstance(f, str)] if isinstance(files, list) else [],
            checkpoint=cp if isinstance(cp, int) and not isinstance(cp, bool) else None,
        )


@dataclass
class TaskState:
    task: str | None = None
    files_in_progress: list[str] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)
    environment: str | None = None
    last_checkpoint: str | None = None  # ISO time of the last checkpoint
    steps: list[Step] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # unknown keys of the file, kept verbatim
    warning: str | None = None  # the last problem importing the file, until a good import
    # Fields ("task", "next_steps") that came from the repository's copy of the file and that no
    # step on this machine has set since (provenance.py): shown labelled, never as the agent's own.
    shipped: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (
            self.task
            or self.files_in_progress
            or self.next_steps
            or self.environment
            or self.steps
            or self.extra
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "filesInProgress": self.files_in_progress,
            "nextSteps": self.next_steps,
            "environment": self.environment,
            "lastCheckpoint": self.last_checkpoint,
            "steps": [s.to_json() for s in self.steps],
            "extra": self.extra,
            "warning": self.warning,
            "shipped": self.shipped,
        }

    def is_shipped(self, name: str) -> bool:
        """Whether field ``name`` holds something the repository shipped (and nothing local)."""
        return name in self.shipped and bool(getattr(self, name))

    @classmethod
    def from_json(cls, d: Any) -> TaskState:
        """Lenient: the live state is ours, but an attachment from an older Tether may differ."""
        if not isinstance(d, dict):
            return cls()

        def strs(key: str) -> list[str]:
            v = d.get(key)
            return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []

        def opt(key: str) -> str | None:
            v = d.get(key)
            return v if isinstance(v, str) else None

        steps_raw = d.get("steps")
        steps = (
            [s for s in (Step.from_json(x) for x in steps_raw) if s] if isinstance(steps_raw, list) else []
        )
        extra = d.get("extra")
        return cls(
            task=opt("task"),
            files_in_progress=strs("filesInProgress"),
            next_steps=strs("nextSteps"),
            environment=opt("environment"),
            last_checkpoint=opt("lastCheckpoint"),
            steps=steps,
            extra=dict(extra) if isinstance(extra, dict) else {},
            warning=opt("warning"),
            shipped=[f for f in strs("shipped") if f in provenance.FIELDS],
        )

    def to_file(self) -> dict[str, Any]:
        """The seed's ``.agent-session.json`` document, unknown keys after the known ones."""
        doc: dict[str, Any] = {
            "current_task": self.task,
            "files_in_progress": self.files_in_progress,
            "next_steps": self.next_steps,
            "environment": self.environment,
            "last_checkpoint": self.last_checkpoint,
        }
        for k, v in self.extra.items():
            if k not in doc:
                doc[k] = v
        return doc


@dataclass
class AgentDoc:
    """What the store keeps under ``agent``: the state plus bookkeeping about the file."""

    state: TaskState
    file_hash: str | None = None  # sha256 of the file's bytes last imported or written
    bad_hash: str | None = None  # sha256 of the last malformed content (warn once per content)
    # The file as last imported or written: the common base of a three-way merge, so a field the
    # agent did not touch in its write does not undo what Tether changed meanwhile.
    file_base: dict[str, Any] | None = None
    # Hashes of Tether's own recent renderings of the file. Two Tether processes (the CLI and the
    # language server) both write it; one must not import the other's older rendering as if the
    # agent had written it.
    own: list[str] = field(default_factory=list)
    # mtime of the newest agent-written file imported. Two Tether processes can each hold a copy
    # of the agent's bytes from different moments; importing the older one after the newer would
    # move the state backwards. mtime, not ctime: a rename (ours or the agent's) resets ctime.
    agent_mtime_ns: int = 0

    @classmethod
    def load(cls, data: bytes | None) -> AgentDoc:
        if not data:
            return cls(TaskState())
        try:
            d = json.loads(data)
        except ValueError:
            log.warning("agent state in the store is unreadable; starting empty")
            return cls(TaskState())
        if not isinstance(d, dict):
            return cls(TaskState())
        fh, bh, base, own = d.get("fileHash"), d.get("badHash"), d.get("fileBase"), d.get("own")
        return cls(
            TaskState.from_json(d.get("state")),
            fh if isinstance(fh, str) else None,
            bh if isinstance(bh, str) else None,
            base if isinstance(base, dict) else None,
            [h for h in own if isinstance(h, str)] if isinstance(own, list) else [],
            mt if isinstance(mt := d.get("agentMtimeNs"), int) and not isinstance(mt, bool) else 0,
        )

    def dump(self) -> bytes:
        return json.dumps(
            {
                "schema": SCHEMA,
                "state": self.state.to_json(),
                "fileHash": self.file_hash,
                "badHash": self.bad_hash,
                "fileBase": self.file_base,
                "own": self.own,
                "agentMtimeNs": self.agent_mtime_ns,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()


def _shipped_after(old: TaskState, new: TaskState, from_repo: bool) -> list[str]:
    """``shipped`` once the file's fields are taken in: a changed field is the repository's
    when the file came from it, this machine's otherwise."""
    out = set(old.shipped)
    for name in provenance.FIELDS:
        if getattr(new, name) != getattr(old, name):
            if from_repo and getattr(new, name):
                out.add(name)
            else:
                out.discard(name)
    return [f for f in provenance.FIELDS if f in out]


def _merge_files(current: list[str], touched: list[str], limit: int = 20) -> list[str]:
    """Files in progress after a step: the ones touched first, then the earlier ones."""
    out = list(touched)
    out.extend(f for f in current if f not in out)
    return out[:limit]


def _apply_cli_patch(state: TaskState, patch: dict[str, Any]) -> TaskState:
    new = replace(state, steps=list(state.steps))
    # Set by a step on this machine: this machine's from now on.
    new.shipped = [f for f in state.shipped if not (f == "task" and "task" in patch)]
    new.shipped = [f for f in new.shipped if not (f == "next_steps" and "next_steps" in patch)]
    if "task" in patch:
        new.task = patch["task"]
    if "environment" in patch:
        new.environment = patch["environment"]
    if "next_steps" in patch:
        new.next_steps = list(patch["next_steps"])
    elif "done" in patch:
        # `tether step --done "update tests"` ticks off the next step it names.
        done = patch["done"].casefold()
        new.next_steps = [s for s in new.next_steps if s.casefold() != done]
    if "files" in patch:
        new.files_in_progress = list(patch["files"])
    return new


def parse_attachment(data: bytes, checkpoint: int | None = None) -> tuple[TaskState, list[dict[str, Any]]]:
    """Read an ``agent`` attachment; a step without a checkpoint belongs to ``checkpoint``."""
    try:
        doc = json.loads(data)
    except ValueError:
        return TaskState(), []
    state = TaskState.from_json(doc)
    for s in state.steps:
        if s.checkpoint is None:
            s.checkpoint = checkpoint
    runs = doc.get("runs") if isinstance(doc, dict) else None
    return state, [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []
