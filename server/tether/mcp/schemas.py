"""The MCP tools' typed results and argument types.

Results are the documents the CLI prints with ``--json`` (camelCase on the wire, like every other
Tether output), so one reader handles both; the SDK derives each tool's ``outputSchema`` from
these models. Argument types carry their bounds, so a bad value is refused before any work, with
the argument's name in the error.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# --- arguments ---------------------------------------------------------------------------------

MAX_TEXT = 4000  # the agent state's own cap on a task; steps are cut to 2000 there
MAX_ITEMS = 200

CheckpointNumber = Annotated[
    int, Field(ge=1, le=2**31 - 1, description="a checkpoint number (see `timeline`)")
]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
PathArg = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4096,
        description="a path relative to the workspace root (or absolute, inside it)",
    ),
]
PathList = Annotated[list[PathArg], Field(max_length=MAX_ITEMS)]
TextList = Annotated[list[Text], Field(max_length=MAX_ITEMS)]
DEFAULT_MAX_CHARS = 20_000
MaxChars = Annotated[
    int,
    Field(
        ge=1000,
        le=1_000_000,
        description="cut the text at about this many characters (whole files first; default 20000)",
    ),
]


# --- results -----------------------------------------------------------------------------------


class Wire(BaseModel):
    """camelCase on the wire; keys a newer service adds are dropped, never a validation error."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, extra="ignore"
    )

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class CheckpointInfo(Wire):
    id: int
    time: str = Field(description="ISO 8601, UTC")
    trigger: str = Field(description="save, step, periodic, manual, restore or baseline")
    message: str | None
    files: list[str] = Field(description="paths changed in this checkpoint (timeline: the first 20)")
    file_count: int | None = Field(None, description="how many paths changed (timeline only)")
    parent: int | None
    origin: str | None = Field(None, description="the machine it was pulled from; null: made here")


class Skipped(Wire):
    path: str
    reason: str
    size: int


class Step(Wire):
    time: str
    message: str
    files: list[str]
    checkpoint: int | None


class RunValidity(Wire):
    command: str
    exit_code: int
    checkpoint: int
    stale: bool = Field(description="true: a tracked file changed since the run, re-run it")
    changed_since: list[str]
    summary: str


class Run(Wire):
    id: int
    command: list[str]
    cwd: str
    exit_code: int
    duration: float
    started: str
    checkpoint: int | None
    output_tail: list[str]


class PaneHistory(Wire):
    window: int
    window_name: str
    pane: int
    cwd: str
    command: str | None
    history: list[str]


class Conversation(Wire):
    agent: str
    id: str
    cwd: str | None
    pane: str | None
    source: str
    time: float


class HandoffFile(Wire):
    path: str
    change: str = Field(description="+N/-M lines since the last step, unchanged, deleted, binary…")


class Handoff(Wire):
    """What `tether resume --print --json` returns."""

    task: str | None
    environment: str | None
    next_steps: list[str]
    files_in_progress: list[str]
    files: list[HandoffFile]
    changed_since_step: list[str]
    last_step: Step | None
    runs: list[RunValidity]
    last_failing_run: Run | None
    pane_history: list[PaneHistory]
    conversations: list[Conversation]
    summary: str
    warning: str | None


class AgentStatus(Wire):
    task: str | None
    next_steps: list[str]
    files_in_progress: list[str]
    environment: str | None
    steps: int
    last_step: Step | None
    warning: str | None


class Status(Wire):
    """What `tether status --json` returns."""

    workspace: str
    store: str
    last_checkpoint: CheckpointInfo | None
    changed_since_checkpoint: list[str]
    skipped: list[Skipped]
    agent: AgentStatus
    runs: list[RunValidity]
    pane_history: list[PaneHistory]


class StepRecorded(Wire):
    """What `tether step --json` returns, plus the conversations recorded with the step."""

    checkpoint: CheckpointInfo
    step: Step | None
    task: str | None
    next_steps: list[str]
    files_in_progress: list[str]
    conversations: list[Conversation]
    warning: str | None


class NextSteps(Wire):
    task: str | None
    next_steps: list[str]
    files_in_progress: list[str]
    # Which of task / nextSteps came from the repository's committed .agent-session.json, not
    # from a step on this machine.
    shipped: list[str]
    warning: str | None


class CheckpointMade(Wire):
    checkpoint: CheckpointInfo
    skipped: list[Skipped]


class Timeline(Wire):
    checkpoints: list[CheckpointInfo] = Field(description="newest first")
    more: bool = Field(description="older checkpoints exist beyond the limit")


class DiffFile(Wire):
    path: str
    status: str = Field(description="added, modified or deleted")
    binary: bool
    diff: str | None = Field(description="unified diff; null for binary, too large, or cut by the cap")
    cut: bool = Field(description="the diff text was shortened or left out to fit max_chars")


class Diff(Wire):
    from_: int = Field(alias="from")
    to: int | None = Field(description="null: the live workspace")
    paths: list[str]
    files: list[DiffFile]
    total_chars: int = Field(description="length of the whole diff before the cap")


class FileAt(Wire):
    checkpoint: int
    path: str
    exists: bool = Field(description="false: the path was not tracked at that checkpoint")
    binary: bool
    size: int
    sha256: str | None
    text: str | None = Field(description="the content (UTF-8 text only), cut to max_chars")
    cut: bool


class Restore(Wire):
    checkpoint: int
    dry_run: bool
    files: list[DiffFile]
    undo_checkpoint: int | None = Field(description="restore this checkpoint to undo (real restore only)")
    after_checkpoint: int | None


class RunStatus(Wire):
    runs: list[RunValidity] = Field(description="the latest run of each recent command, newest first")
    hold: list[str] = Field(description="commands whose last run still holds: no need to re-run")
    rerun: list[str] = Field(description="commands to re-run: files changed since, or their checkpoint gone")
