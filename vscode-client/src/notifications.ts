// Handlers for the server's tether/openTerminal and tether/showNextSteps notifications.
import * as vscode from "vscode";
import { AgentResume, OpenTerminalParams, RecentCommands, ShowNextStepsParams } from "./protocol";

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === "string");
}

export function validateOpenTerminal(p: unknown): OpenTerminalParams | string {
  if (!p || typeof p !== "object") {
    return "params must be an object";
  }
  const o = p as Record<string, unknown>;
  if (typeof o.name !== "string" || !o.name) {
    return "name must be a non-empty string";
  }
  if (!isStringArray(o.argv) || o.argv.length === 0 || !o.argv[0]) {
    return "argv must be a non-empty list of strings";
  }
  if (o.cwd !== undefined && o.cwd !== null && typeof o.cwd !== "string") {
    return "cwd must be a string";
  }
  return { name: o.name, argv: o.argv, cwd: typeof o.cwd === "string" ? o.cwd : "" };
}

/**
 * Opens (or re-shows, by name) an integrated terminal running the argv. The argv is built by the
 * server itself (`tmux attach-session …`), never taken from workspace files (docs/protocol.md).
 */
export function openTerminal(p: OpenTerminalParams): vscode.Terminal {
  const existing = vscode.window.terminals.find((t) => t.name === p.name && t.exitStatus === undefined);
  if (existing) {
    existing.show(true);
    return existing;
  }
  const term = vscode.window.createTerminal({
    name: p.name,
    shellPath: p.argv[0],
    shellArgs: p.argv.slice(1),
    cwd: p.cwd || undefined,
    iconPath: new vscode.ThemeIcon("history"),
  });
  term.show(true);
  return term;
}

export function normalizeNextSteps(p: unknown): ShowNextStepsParams {
  const o = (p && typeof p === "object" ? p : {}) as Record<string, unknown>;
  const recent = Array.isArray(o.recentCommands) ? o.recentCommands : [];
  return {
    task: typeof o.task === "string" && o.task ? o.task : null,
    nextSteps: isStringArray(o.nextSteps) ? o.nextSteps : [],
    filesInProgress: isStringArray(o.filesInProgress) ? o.filesInProgress : [],
    runs: Array.isArray(o.runs) ? (o.runs as ShowNextStepsParams["runs"]).filter((r) => r && typeof r === "object") : [],
    recentCommands: recent.filter(
      (r): r is RecentCommands =>
        !!r && typeof r === "object" && typeof (r as RecentCommands).where === "string" && isStringArray((r as RecentCommands).commands),
    ),
    summary: typeof o.summary === "string" ? o.summary : "",
    shipped: isStringArray(o.shipped) ? o.shipped : [],
  };
}

const SHIPPED = " (from the repository's .agent-session.json, not recorded on this machine)";

const TOAST_STEPS = 3;

/**
 * One toast line, readable as a list: "Tether · wire up mul — next: 1. import mul; 2. add test
 * (+1 more)" (a toast collapses spaces and line breaks). The full list (and runs, files, recent
 * commands) is one click away ("Show all"). Steps the repository shipped say so.
 */
export function nextStepsMessage(p: ShowNextStepsParams): string {
  const head = p.task ? `Tether · ${p.task}` : "Tether";
  if (!p.nextSteps.length) {
    return `${head} — no next steps recorded.`;
  }
  const shown = p.nextSteps.slice(0, TOAST_STEPS).map((s, i) => `${i + 1}. ${s}`);
  const more = p.nextSteps.length > TOAST_STEPS ? ` (+${p.nextSteps.length - TOAST_STEPS} more)` : "";
  const from = p.shipped.includes("nextSteps") ? " (from the repository's .agent-session.json)" : "";
  return `${head} — next${from}: ${shown.join("; ")}${more}`;
}

type NextItem = vscode.QuickPickItem & { file?: string };

export async function showAllNextSteps(p: ShowNextStepsParams, root: vscode.Uri | undefined): Promise<void> {
  const items: NextItem[] = [];
  const sep = (label: string): NextItem => ({ label, kind: vscode.QuickPickItemKind.Separator });
  if (p.task) {
    items.push(sep(p.shipped.includes("task") ? `Task${SHIPPED}` : "Task"), { label: `$(tasklist) ${p.task}` });
  }
  items.push(sep(p.shipped.includes("nextSteps") ? `Next steps${SHIPPED}` : "Next steps"));
  if (p.nextSteps.length) {
    p.nextSteps.forEach((s, i) => items.push({ label: `${i + 1}. ${s}` }));
  } else {
    items.push({ label: "(none recorded)" });
  }
  if (p.runs.length) {
    items.push(sep("Runs"));
    for (const r of p.runs) {
      items.push({
        label: `${r.stale ? "$(warning)" : r.exitCode === 0 ? "$(pass)" : "$(error)"} ${r.command}`,
        description: r.summary,
        detail: r.changedSince?.length ? `changed since: ${r.changedSince.join(", ")}` : undefined,
      });
    }
  }
  if (p.filesInProgress.length) {
    items.push(sep("Files in progress"));
    for (const f of p.filesInProgress) {
      items.push({ label: `$(file) ${f}`, file: f });
    }
  }
  for (const r of p.recentCommands) {
    items.push(sep(`Recent commands (terminal ${r.where})`));
    for (const c of r.commands) {
      items.push({ label: `$(terminal) ${c}` });
    }
  }
  const pick = await vscode.window.showQuickPick(items, { title: "Tether: task and next steps" });
  if (pick?.file && root) {
    await vscode.window.showTextDocument(vscode.Uri.joinPath(root, pick.file), { preview: false });
  }
}

export async function showNextSteps(p: ShowNextStepsParams, root: vscode.Uri | undefined): Promise<void> {
  const actions = ["Show all"];
  if (p.filesInProgress.length && root) {
    actions.push("Open files");
  }
  const choice = await vscode.window.showInformationMessage(nextStepsMessage(p), ...actions);
  if (choice === "Show all") {
    await showAllNextSteps(p, root);
  } else if (choice === "Open files" && root) {
    for (const f of p.filesInProgress) {
      await vscode.window.showTextDocument(vscode.Uri.joinPath(root, f), { preview: false, preserveFocus: true });
    }
  }
}

/** "claude resumes conversation 1b2c… (window 3: typed in its pane, press Enter to run)" per agent
 * pane of a recreated session; malformed entries are left out. Empty when there is none. */
export function agentResumeMessage(agents: unknown): string {
  if (!Array.isArray(agents)) {
    return "";
  }
  return agents
    .filter((a): a is AgentResume => typeof a === "object" && a !== null && typeof a.agent === "string")
    .map((a) => {
      const what =
        typeof a.conversation === "string" ? `resumes conversation ${a.conversation}` : "resumes its chat history";
      const how = a.action === "ran" ? "running" : "typed in its pane, press Enter to run";
      return `${a.agent} ${what} (window ${a.window}: ${how})`;
    })
    .join("; ");
}
