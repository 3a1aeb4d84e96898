// Wire names and payload types of Tether's custom LSP protocol.
// Mirror of server/tether/protocol.py (the single source of truth, documented in docs/protocol.md):
// the constant names and string values must stay identical; tests/unit/test_protocol_mirror.py
// compares them.

export const SERVER_NAME = "tether";

// workspace/executeCommand names (client -> server)
export const CMD_RESUME = "tether.resume";
export const CMD_CHECKPOINT = "tether.checkpoint";
export const CMD_TIMELINE = "tether.timeline";
export const CMD_DIFF = "tether.diff";
export const CMD_RESTORE = "tether.restore";
export const CMD_STEP = "tether.step";
export const CMD_STATUS = "tether.status";
export const CMD_FILE_AT = "tether.fileAt";
export const CMD_START_SESSION = "tether.startSession";

export const COMMANDS = [
  CMD_RESUME,
  CMD_CHECKPOINT,
  CMD_TIMELINE,
  CMD_DIFF,
  CMD_RESTORE,
  CMD_STEP,
  CMD_STATUS,
  CMD_FILE_AT,
  CMD_START_SESSION,
] as const;

// server -> client notifications
export const NOTIFY_STATUS = "tether/status";
export const NOTIFY_OPEN_TERMINAL = "tether/openTerminal";
export const NOTIFY_SHOW_NEXT_STEPS = "tether/showNextSteps";
export const NOTIFY_RESTORING_BUFFERS = "tether/restoringBuffers";

export const NOTIFICATIONS = [
  NOTIFY_STATUS,
  NOTIFY_OPEN_TERMINAL,
  NOTIFY_SHOW_NEXT_STEPS,
  NOTIFY_RESTORING_BUFFERS,
] as const;

// The label of the workspace/applyEdit that puts a journaled unsaved buffer back.
export const LABEL_RESTORE_EDIT = "Tether: restore unsaved changes";

// client -> server notifications (LSP has no standard one for cursors)
export const CLIENT_NOTIFY_CURSOR = "tether/cursor";

export const CLIENT_NOTIFICATIONS = [CLIENT_NOTIFY_CURSOR] as const;

// Checkpoint triggers, stored verbatim and shown in timelines.
export const TRIGGER_SAVE = "save";
export const TRIGGER_STEP = "step";
export const TRIGGER_PERIODIC = "periodic";
export const TRIGGER_MANUAL = "manual";
export const TRIGGER_RESTORE = "restore";
export const TRIGGER_BASELINE = "baseline";

export const TRIGGERS = [
  TRIGGER_SAVE,
  TRIGGER_STEP,
  TRIGGER_PERIODIC,
  TRIGGER_MANUAL,
  TRIGGER_RESTORE,
  TRIGGER_BASELINE,
] as const;

// tether/status "state" values
export const STATE_IDLE = "idle";
export const STATE_BUSY = "busy";
export const STATE_ERROR = "error";

// Error codes (JSON-RPC error data.reason)
export const ERR_NO_CHECKPOINT = "noCheckpoint";
export const ERR_BAD_PARAMS = "badParams";
export const ERR_OUTSIDE_WORKSPACE = "outsideWorkspace";
export const ERR_STORE = "storeError";
export const ERR_TMUX = "tmuxError";

export type Trigger = (typeof TRIGGERS)[number];

export interface CheckpointInfo {
  id: number;
  time: string;
  trigger: Trigger | string;
  message: string | null;
  files: string[];
  parent: number | null;
}

export interface FileDiff {
  path: string;
  status: "added" | "modified" | "deleted";
  binary: boolean;
  diff: string | null;
}

export interface Status {
  workspace: string;
  state: "idle" | "busy" | "error";
  error: string | null;
  lastCheckpoint: CheckpointInfo | null;
  /** The agent's files, then those open in running editors (the same count as `tether status`). */
  filesInProgress: number;
  dirtyBuffers: number;
  tmux: { session: string; alive: boolean } | null;
  /** Something of a previous session would come back that is not already open here. */
  resumeAvailable: boolean;
  /** A save was noticed and its checkpoint is not written yet (or a checkpoint is being written). */
  checkpointing?: boolean;
  nextStep?: string | null;
  /** Ready-made label: "#12 · 2m ago · 4 files", "checkpointing…", "no checkpoint yet", "error: …". */
  text: string;
  /** Ready-made multi-line tooltip: the checkpoint (trigger, files), files in progress, next step. */
  tooltip?: string;
}

export interface TimelineResult {
  checkpoints: CheckpointInfo[];
}

export interface DiffResult {
  from: number;
  to: number | null;
  files: FileDiff[];
}

export interface FileAtResult {
  path: string;
  exists: boolean;
  binary: boolean;
  text: string | null;
}

export interface RestoreResult {
  dryRun: boolean;
  files: FileDiff[];
  undoCheckpoint: number | null;
}

export interface ResumeResult {
  checkpoint: number | null;
  opened: string[];
  restoredBuffers: string[];
  skippedBuffers: { path: string; reason: string }[];
  terminal: { session: string; recreated: boolean; agents?: AgentResume[]; warnings?: string[] } | null;
  /** Why no terminal came back (e.g. no snapshot of the tmux session was ever recorded). */
  noTerminal?: string | null;
  nextSteps: string[];
  /** Requests the editor did not answer in time (the resume went on without them). */
  timedOut?: { request: string; path: string }[];
}

/** An agent pane of a recreated tmux session and the conversation it resumes. */
export interface AgentResume {
  window: number;
  pane: string;
  agent: string;
  conversation: string | null;
  action: "ran" | "typed" | "none";
  command: string[] | null;
}

export interface StartSessionResult {
  session: string;
  created: boolean;
  argv: string[];
}

export interface OpenTerminalParams {
  name: string;
  argv: string[];
  cwd: string;
}

export interface RunSummary {
  command: string;
  exitCode: number;
  checkpoint: number;
  stale: boolean;
  changedSince: string[];
  summary: string;
}

export interface RecentCommands {
  /** "window agent" (", pane 2" when the window has several). */
  where: string;
  commands: string[];
}

export interface ShowNextStepsParams {
  task: string | null;
  nextSteps: string[];
  filesInProgress: string[];
  runs: RunSummary[];
  recentCommands: RecentCommands[];
  summary: string;
  /** Which of "task" / "nextSteps" came from the repository's .agent-session.json, not this machine. */
  shipped: string[];
}

export interface CursorParams {
  uri: string;
  line: number;
  character: number;
  visibleRange?: { start: number; end: number };
}

export interface InitializationOptions {
  checkpointIntervalSeconds?: number;
}
