// The status-bar checkpoint indicator, fed by tether/status and by the client's own lifecycle.
import * as vscode from "vscode";
import { Status } from "./protocol";

export const STATUS_ITEM_ID = "tether.status";

/** What the indicator shows; kept apart from the VS Code item so it can be asserted in tests. */
export interface IndicatorView {
  text: string;
  tooltip: string;
  command: string | undefined;
  background: "error" | "warning" | undefined;
}

export type Phase =
  | { kind: "noFolder" }
  | { kind: "untracked"; folder: string }
  | { kind: "starting" }
  | { kind: "running"; status: Status | undefined }
  | { kind: "notInstalled"; message: string }
  | { kind: "failed"; message: string };

/** In a multi-root workspace: which folder the indicator speaks of, and what the others say. */
export interface FolderContext {
  name: string;
  path: string;
  /** One line per other folder ("web: Resume agent session"). */
  others: string[];
}

/** "just now", "45s ago", "2m ago", "3h ago", "2d ago". */
export function relativeTime(iso: string, now: number = Date.now()): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) {
    return "?";
  }
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 10) {
    return "just now";
  }
  if (s < 60) {
    return `${s}s ago`;
  }
  const m = Math.floor(s / 60);
  if (m < 60) {
    return `${m}m ago`;
  }
  const h = Math.floor(m / 60);
  if (h < 48) {
    return `${h}h ago`;
  }
  return `${Math.floor(h / 24)}d ago`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** Pure mapping from the phase (and, in a multi-root workspace, its folder) to what the status bar
 * shows. The folder's name leads the text only when there are several folders. */
export function renderIndicator(phase: Phase, now: number = Date.now(), folder?: FolderContext): IndicatorView {
  const v = renderPhase(phase, now);
  if (!folder) {
    return v;
  }
  const m = /^(\$\([^)]*\)) ?(.*)$/.exec(v.text);
  const [icon, rest] = m ? [m[1], m[2]] : ["", v.text];
  const label = rest.replace(/^Tether:? ?/, "") || "Tether";
  const others = folder.others.length ? `\n\nOther folders:\n${folder.others.map((o) => `  ${o}`).join("\n")}` : "";
  return {
    ...v,
    text: `${icon} ${folder.name}: ${label}`.trim(),
    tooltip: `${v.tooltip}\nFolder: ${folder.name} (${folder.path})${others}`,
  };
}

/** One short line for a folder that is not the one shown ("web: #3 · 2m ago"). */
export function phaseSummary(phase: Phase, now: number = Date.now()): string {
  return renderPhase(phase, now)
    .text.replace(/\$\([^)]*\)\s*/g, "")
    .replace(/^Tether:? ?/, "") || "Tether";
}

function renderPhase(phase: Phase, now: number): IndicatorView {
  switch (phase.kind) {
    case "noFolder":
      return {
        text: "$(history) Tether",
        tooltip: "Tether: open a folder to track it",
        command: undefined,
        background: undefined,
      };
    case "untracked":
      return {
        text: "$(circle-slash) Tether: off",
        tooltip: `Tether does not track ${phase.folder}: it has no .git, .hg or .agent-session.json.\n\nClick to track it anyway.`,
        command: "tether.trackFolder",
        background: undefined,
      };
    case "notInstalled":
      return {
        text: "$(error) Tether: not installed",
        tooltip: `Tether: ${phase.message}\n\nClick for the install command.`,
        command: "tether.installHelp",
        background: "error",
      };
    case "starting":
      return {
        text: "$(sync~spin) Tether",
        tooltip: "Tether: starting the language server…",
        command: "tether.showLogs",
        background: undefined,
      };
    case "failed":
      return {
        text: "$(error) Tether",
        tooltip: `Tether: ${phase.message}\n\nClick to show the logs.`,
        command: "tether.showLogs",
        background: "error",
      };
    case "running":
      break;
  }
  const s = phase.status;
  if (!s) {
    return {
      text: "$(history) Tether",
      tooltip: "Tether: connected, waiting for the first status",
      command: "tether.showTimeline",
      background: undefined,
    };
  }
  const details = statusDetails(s, now);
  if (s.state === "error") {
    return {
      text: "$(error) Tether: error",
      tooltip: `Tether error: ${s.error ?? "unknown"}\n\n${details}\n\nClick to show the logs.`,
      command: "tether.showLogs",
      background: "error",
    };
  }
  if (s.resumeAvailable) {
    return {
      text: "$(debug-restart) Resume agent session",
      tooltip: `Tether\n\n${details}\n\nClick to resume.`,
      command: "tether.resumeSession",
      background: "warning",
    };
  }
  const spin = s.checkpointing || s.state === "busy";
  const icon = spin ? "$(sync~spin)" : "$(history)";
  // The server's label ("#12 · 2m ago · 4 files", "checkpointing…"): one wording for every client.
  const label = s.lastCheckpoint || s.checkpointing ? serverLabel(s, now) : "Tether: no checkpoint yet";
  return {
    text: `${icon} ${label}`,
    tooltip: `Tether${s.state === "busy" && !s.checkpointing ? " (working…)" : ""}\n\n${details}\n\nClick to show the timeline.`,
    command: "tether.showTimeline",
    background: undefined,
  };
}

/** The server's ready-made label, or the same built here from an older server's fields. */
function serverLabel(s: Status, now: number): string {
  if (s.text && s.tooltip !== undefined) {
    return s.text;
  }
  const cp = s.lastCheckpoint;
  if (!cp) {
    return "checkpointing…";
  }
  const files = s.filesInProgress ? ` · ${plural(s.filesInProgress, "file")}` : "";
  return `#${cp.id} · ${relativeTime(cp.time, now)}${files}`;
}

function statusDetails(s: Status, now: number): string {
  if (typeof s.tooltip === "string" && s.tooltip) {
    return `${s.tooltip}\nWorkspace: ${s.workspace}`;
  }
  const lines: string[] = [];
  const cp = s.lastCheckpoint;
  if (cp) {
    const msg = cp.message ? ` “${cp.message}”` : "";
    lines.push(`Last checkpoint: #${cp.id} (${cp.trigger}) ${relativeTime(cp.time, now)}${msg}`);
    lines.push(`Changed in it: ${plural(cp.files.length, "file")}`);
  } else {
    lines.push("No checkpoint yet");
  }
  lines.push(`Files in progress: ${s.filesInProgress}; unsaved buffers: ${s.dirtyBuffers}`);
  if (s.tmux) {
    lines.push(`tmux session ${s.tmux.session}: ${s.tmux.alive ? "alive" : "not running"}`);
  } else {
    lines.push("tmux: not linked");
  }
  lines.push(`Workspace: ${s.workspace}`);
  return lines.join("\n");
}

/** What the indicator shows right now: a folder's phase, or nothing (the item is hidden). */
export interface IndicatorSource {
  phase: Phase;
  folder?: FolderContext;
}

/** The one status-bar item. It shows the phase of the folder the caller picks (the active
 * editor's), and re-renders as phases change and as time passes. */
export class StatusIndicator implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly timer: NodeJS.Timeout;
  private view: IndicatorView | undefined;

  constructor(private readonly source: () => IndicatorSource | undefined) {
    this.item = vscode.window.createStatusBarItem(STATUS_ITEM_ID, vscode.StatusBarAlignment.Left, 50);
    this.item.name = "Tether";
    // The server only sends on change; the relative time must still age.
    this.timer = setInterval(() => this.refresh(), 15_000);
    this.refresh();
  }

  /** What is shown (undefined while hidden). */
  get current(): IndicatorView | undefined {
    return this.view;
  }

  refresh(): void {
    const src = this.source();
    const resume = src?.phase.kind === "running" && !!src.phase.status?.resumeAvailable;
    void vscode.commands.executeCommand("setContext", "tether.resumeAvailable", resume);
    if (!src) {
      this.view = undefined;
      this.item.hide();
      return;
    }
    const v = renderIndicator(src.phase, Date.now(), src.folder);
    this.view = v;
    this.item.text = v.text;
    this.item.tooltip = v.tooltip;
    this.item.command = v.command;
    // Screen readers (and the UI tests) find the item by this label.
    const plain = v.text.replace(/\$\([^)]*\)\s*/g, "").replace(/^Tether:?\s*/, "");
    this.item.accessibilityInformation = { label: plain ? `Tether: ${plain}` : "Tether", role: "button" };
    this.item.backgroundColor =
      v.background === "error"
        ? new vscode.ThemeColor("statusBarItem.errorBackground")
        : v.background === "warning"
          ? new vscode.ThemeColor("statusBarItem.warningBackground")
          : undefined;
    this.item.show();
  }

  dispose(): void {
    clearInterval(this.timer);
    this.item.dispose();
  }
}
