--- Wire names shared with the server.
---
--- Mirror of server/tether/protocol.py: the strings must be identical.
--- tests/unit/test_protocol_mirror.py fails when they drift.
local M = {}

M.SERVER_NAME = 'tether'

-- workspace/executeCommand names (client -> server)
M.CMD_RESUME = 'tether.resume'
M.CMD_CHECKPOINT = 'tether.checkpoint'
M.CMD_TIMELINE = 'tether.timeline'
M.CMD_DIFF = 'tether.diff'
M.CMD_RESTORE = 'tether.restore'
M.CMD_STEP = 'tether.step'
M.CMD_STATUS = 'tether.status'
M.CMD_FILE_AT = 'tether.fileAt'
M.CMD_START_SESSION = 'tether.startSession'

M.COMMANDS = {
  M.CMD_RESUME,
  M.CMD_CHECKPOINT,
  M.CMD_TIMELINE,
  M.CMD_DIFF,
  M.CMD_RESTORE,
  M.CMD_STEP,
  M.CMD_STATUS,
  M.CMD_FILE_AT,
  M.CMD_START_SESSION,
}

-- server -> client notifications
M.NOTIFY_STATUS = 'tether/status'
M.NOTIFY_OPEN_TERMINAL = 'tether/openTerminal'
M.NOTIFY_SHOW_NEXT_STEPS = 'tether/showNextSteps'
M.NOTIFY_RESTORING_BUFFERS = 'tether/restoringBuffers'

M.NOTIFICATIONS = {
  M.NOTIFY_STATUS,
  M.NOTIFY_OPEN_TERMINAL,
  M.NOTIFY_SHOW_NEXT_STEPS,
  M.NOTIFY_RESTORING_BUFFERS,
}

-- The label of the workspace/applyEdit that puts a journaled unsaved buffer back.
M.LABEL_RESTORE_EDIT = 'Tether: restore unsaved changes'

-- client -> server notifications (LSP has no standard one for cursors)
M.CLIENT_NOTIFY_CURSOR = 'tether/cursor' -- {uri, line, character}

M.CLIENT_NOTIFICATIONS = { M.CLIENT_NOTIFY_CURSOR }

-- tether/status "state" values
M.STATE_IDLE = 'idle'
M.STATE_BUSY = 'busy'
M.STATE_ERROR = 'error'

-- Checkpoint triggers, as shown in the timeline
M.TRIGGER_SAVE = 'save'
M.TRIGGER_STEP = 'step'
M.TRIGGER_PERIODIC = 'periodic'
M.TRIGGER_MANUAL = 'manual'
M.TRIGGER_RESTORE = 'restore'
M.TRIGGER_BASELINE = 'baseline'

M.TRIGGERS = {
  M.TRIGGER_SAVE,
  M.TRIGGER_STEP,
  M.TRIGGER_PERIODIC,
  M.TRIGGER_MANUAL,
  M.TRIGGER_RESTORE,
  M.TRIGGER_BASELINE,
}

-- JSON-RPC error data.reason of failed commands
M.ERR_NO_CHECKPOINT = 'noCheckpoint'
M.ERR_BAD_PARAMS = 'badParams'
M.ERR_OUTSIDE_WORKSPACE = 'outsideWorkspace'
M.ERR_STORE = 'storeError'
M.ERR_TMUX = 'tmuxError'

return M
