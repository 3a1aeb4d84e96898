"""Every name Tether puts on the wire, in one place.

The VS Code client mirrors these in ``vscode-client/src/protocol.ts`` and the Neovim
client in ``neovim-client/lua/tether/protocol.lua``; ``tests/unit/test_protocol_mirror.py``
fails when they drift. docs/protocol.md documents payloads.
"""

from __future__ import annotations

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

SERVER_NAME: Final = "tether"

# workspace/executeCommand names (client -> server)
CMD_RESUME: Final = "tether.resume"
CMD_CHECKPOINT: Final = "tether.checkpoint"
CMD_TIMELINE: Final = "tether.timeline"
CMD_DIFF: Final = "tether.diff"
CMD_RESTORE: Final = "tether.restore"
CMD_STEP: Final = "tether.step"
CMD_STATUS: Final = "tether.status"
CMD_FILE_AT: Final = "tether.fileAt"
CMD_START_SESSION: Final = "tether.startSession"

COMMANDS: Final = (
    CMD_RESUME,
    CMD_CHECKPOINT,
    CMD_TIMELINE,
    CMD_DIFF,
    CMD_RESTORE,
    CMD_STEP,
    CMD_STATUS,
    CMD_FILE_AT,
    CMD_START_SESSION,
)

# server -> client notifications
NOTIFY_STATUS: Final = "tether/status"
NOTIFY_OPEN_TERMINAL: Final = "tether/openTerminal"
NOTIFY_SHOW_NEXT_STEPS: Final = "tether/showNextSteps"
NOTIFY_RESTORING_BUFFERS: Final = "tether/restoringBuffers"

NOTIFICATIONS: Final = (
    NOTIFY_STATUS,
    NOTIFY_OPEN_TERMINAL,
    NOTIFY_SHOW_NEXT_STEPS,
    NOTIFY_RESTORING_BUFFERS,
)

# The label of the workspace/applyEdit that puts a journaled unsaved buffer back.
LABEL_RESTORE_EDIT: Final = "Tether: restore unsaved changes"

# client -> server notifications (LSP has no standard one for cursors)
CLIENT_NOTIFY_CURSOR: Final = "tether/cursor"  # {uri, line, character}

CLIENT_NOTIFICATIONS: Final = (CLIENT_NOTIFY_CURSOR,)

# Checkpoint triggers, stored verbatim and shown in timelines.
TRIGGER_SAVE: Final = "save"
TRIGGER_STEP: Final = "step"
TRIGGER_PERIODIC: Final = "periodic"
TRIGGER_MANUAL: Final = "manual"
TRIGGER_RESTORE: Final = "restore"
TRIGGER_BASELINE: Final = "baseline"

TRIGGERS: Final = (
    TRIGGER_SAVE,
    TRIGGER_STEP,
    TRIGGER_PERIODIC,
    TRIGGER_MANUAL,
    TRIGGER_RESTORE,
    TRIGGER_BASELINE,
)

# tether/status "state" values
STATE_IDLE: Final = "idle"
STATE_BUSY: Final = "busy"
STATE_ERROR: Final = "error"

# Names of per-checkpoint attachments in the store (JSON documents).
ATTACH_EDITOR: Final = "editor"  # open files, cursors, dirty buffers
ATTACH_TMUX: Final = "tmux"  # tmux snapshot
ATTACH_AGENT: Final = "agent"  # task, next steps, step log, runs

# Error codes in command results ({"error": {"code": ..., "message": ...}}).
ERR_NO_CHECKPOINT: Final = "noCheckpoint"
ERR_BAD_PARAMS: Final = "badParams"
ERR_OUTSIDE_WORKSPACE: Final = "outsideWorkspace"
ERR_STORE: Final = "storeError"
ERR_TMUX: Final = "tmuxError"
