// Tether for VS Code: one `tether lsp` per tracked workspace folder, the checkpoint indicator of the
// active editor's folder, and the commands.
import * as vscode from "vscode";
import { CHECKPOINT_SCHEME, CheckpointContentProvider, CheckpointUi } from "./checkpoints";
import { CursorReporter } from "./cursor";
import { decideFolders, FolderDecision, owningFolder, parseTrack, projectMarker } from "./folders";
import { offerInstall } from "./install";
import { agentResumeMessage } from "./notifications";
import {
  CheckpointInfo,
  CMD_CHECKPOINT,
  CMD_RESUME,
  CMD_START_SESSION,
  CMD_STEP,
  ResumeResult,
  ShowNextStepsParams,
  StartSessionResult,
  Status,
} from "./protocol";
import { errText, ServerManager } from "./server";
import { CommandError, FolderSession, isStatus, SessionDeps } from "./session";
import { FolderContext, IndicatorSource, IndicatorView, phaseSummary, renderIndicator, StatusIndicator } from "./status";

export { isStatus };

/** Returned from activate(): used by the extension-host tests, and usable by other extensions. */
export interface TetherApi {
  /** The first tracked folder's server (the only one in a single-folder window). */
  readonly manager: ServerManager;
  readonly indicator: () => IndicatorView;
  readonly lastStatus: () => Status | undefined;
  readonly lastNextSteps: () => ShowNextStepsParams | undefined;
  /** How many tether/openTerminal notifications were handled (opened or re-shown). */
  readonly terminalRequests: () => number;
  readonly exec: <T>(command: string, params?: object) => Promise<T>;
  readonly ui: CheckpointUi;
  /** Resolves once a tether/status with the predicate true has arrived (or already has). */
  readonly whenStatus: (pred: (s: Status) => boolean, timeoutMs?: number) => Promise<Status>;
  /** Every tracked folder's session, in workspace order. */
  readonly sessions: () => FolderSession[];
  /** Why each workspace folder is tracked or not. */
  readonly decisions: () => FolderDecision[];
}

const NOT_TRACKED_HINT = "it has no .git, .hg or .agent-session.json";

let activeSessions: (() => FolderSession[]) | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<TetherApi> {
  const output = vscode.window.createOutputChannel("Tether", { log: true });
  context.subscriptions.push(output);

  const sessions = new Map<string, FolderSession>();
  let decisions: FolderDecision[] = [];
  /** The folder last shown: kept while the active editor is not a workspace file. */
  let lastFolderKey: string | undefined;

  const tracked = (): FolderSession[] => {
    const order = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.toString());
    return [...sessions.values()].sort((a, b) => order.indexOf(a.key) - order.indexOf(b.key));
  };
  activeSessions = tracked;

  /** The session that owns a file (its folder, or the tracked folder it is nested in). */
  const sessionFor = (uri: vscode.Uri | undefined): FolderSession | undefined => {
    if (!uri || uri.scheme !== "file") {
      return undefined;
    }
    return owningFolder(uri.fsPath, tracked().map((s) => ({ fsPath: s.folder.uri.fsPath, s })))?.s;
  };

  /** The workspace folder the user is in: the active editor's, else the one last shown. */
  const activeFolder = (): vscode.WorkspaceFolder | undefined => {
    const doc = vscode.window.activeTextEditor?.document.uri;
    const f = doc ? vscode.workspace.getWorkspaceFolder(doc) : undefined;
    if (f) {
      lastFolderKey = f.uri.toString();
      return f;
    }
    const folders = vscode.workspace.workspaceFolders ?? [];
    return folders.find((x) => x.uri.toString() === lastFolderKey) ?? tracked()[0]?.folder ?? folders[0];
  };

  const indicatorSource = (): IndicatorSource | undefined => {
    const folders = vscode.workspace.workspaceFolders ?? [];
    if (!folders.length) {
      return { phase: { kind: "noFolder" } };
    }
    if (!sessions.size) {
      return undefined; // nothing tracked in this window: Tether stays out of the way
    }
    const folder = activeFolder();
    if (!folder) {
      return undefined;
    }
    const session = sessions.get(folder.uri.toString()) ?? sessionFor(folder.uri);
    const phase = session ? session.phase : ({ kind: "untracked", folder: folder.name } as const);
    if (folders.length < 2) {
      return { phase };
    }
    const ctx: FolderContext = {
      name: folder.name,
      path: folder.uri.fsPath,
      others: tracked()
        .filter((s) => s !== session)
        .map((s) => `${s.folder.name}: ${phaseSummary(s.phase)}`),
    };
    return { phase, folder: ctx };
  };

  const indicator = new StatusIndicator(indicatorSource);
  context.subscriptions.push(indicator);

  const cursors = new CursorReporter((method, params) => {
    const s = sessionFor(vscode.Uri.parse(params.uri));
    const client = s?.manager.current;
    if (s && client && s.manager.running) {
      client.sendNotification(method, params).catch((e: unknown) => output.warn(`${method}: ${errText(e)}`));
    }
  });
  context.subscriptions.push(cursors);

  const restartAll = async (): Promise<void> => {
    await Promise.all(tracked().map((s) => s.manager.restart()));
  };

  const sessionDeps: SessionDeps = {
    output,
    changed: () => indicator.refresh(),
    notInstalled: (tried) => void offerInstall({ extensionUri: context.extensionUri, output, restart: restartAll }, tried),
    flushCursors: () => cursors.flush(),
    clientOptions: () => ({
      middleware: {
        window: {
          // Reopened files must each keep a tab: preview tabs would replace one another.
          showDocument: async (params, token, next) => {
            if (params.external) {
              return next(params, token);
            }
            try {
              const uri = vscode.Uri.parse(params.uri);
              const sel = params.selection;
              output.trace(`showDocument ${params.uri} ${JSON.stringify(sel)}`);
              await vscode.window.showTextDocument(uri, {
                preview: false,
                preserveFocus: params.takeFocus !== true,
                selection: sel
                  ? new vscode.Range(sel.start.line, sel.start.character, sel.end.line, sel.end.character)
                  : undefined,
              });
              return { success: true };
            } catch (e) {
              output.warn(`showDocument ${params.uri}: ${errText(e)}`);
              return { success: false };
            }
          },
        },
      },
    }),
  };

  /** Starts servers for folders that became tracked, stops those that no longer are. */
  const sync = async (): Promise<void> => {
    const folders = vscode.workspace.workspaceFolders ?? [];
    decisions = decideFolders(
      folders.map((f) => ({
        key: f.uri.toString(),
        name: f.name,
        fsPath: f.uri.fsPath,
        track: f.uri.scheme === "file" ? parseTrack(vscode.workspace.getConfiguration("tether", f.uri).get("track")) : "never",
      })),
      (p) => projectMarker(p) !== undefined,
    );
    const want = new Set(decisions.filter((d) => d.tracked).map((d) => d.key));
    const stops: Promise<void>[] = [];
    for (const [key, s] of sessions) {
      if (!want.has(key)) {
        sessions.delete(key);
        output.info(`no longer tracking ${s.folder.uri.fsPath}`);
        stops.push(s.stop().finally(() => s.dispose()));
      }
    }
    for (const f of folders) {
      const key = f.uri.toString();
      if (want.has(key) && !sessions.has(key)) {
        const s = new FolderSession(f, sessionDeps);
        sessions.set(key, s);
        // Not awaited: activation must not wait for servers (a failure is shown by the manager).
        void s.manager.start();
      }
    }
    for (const d of decisions) {
      if (!d.tracked) {
        output.info(`not tracking ${d.key}: ${d.reason === "nested" ? `inside ${d.inside}` : d.reason === "setting" ? "tether.track is \"never\"" : NOT_TRACKED_HINT}`);
      }
    }
    indicator.refresh();
    await Promise.all(stops);
  };

  /** The folder a command acts on: the active editor's; else the only one; else the user picks. */
  const pickSession = async (prefer?: (s: FolderSession) => boolean): Promise<FolderSession> => {
    const all = tracked();
    if (!all.length) {
      const f = activeFolder();
      throw new CommandError(
        f
          ? `Tether is not tracking ${f.name} (${NOT_TRACKED_HINT}). Run "Tether: Track this folder" to track it.`
          : "Tether needs an open folder.",
      );
    }
    const preferred = prefer ? all.filter(prefer) : [];
    const current = sessionFor(vscode.window.activeTextEditor?.document.uri) ?? (all.length === 1 ? all[0] : undefined);
    if (current && (!prefer || preferred.includes(current) || !preferred.length)) {
      return current;
    }
    if (preferred.length === 1) {
      return preferred[0];
    }
    const choices = preferred.length ? preferred : all;
    const pick = await vscode.window.showQuickPick(
      choices.map((s) => ({ label: s.folder.name, description: phaseSummary(s.phase), detail: s.folder.uri.fsPath, s })),
      { title: "Tether: which folder?", placeHolder: "Pick the workspace folder" },
    );
    if (!pick) {
      throw new CancelledError();
    }
    return pick.s;
  };

  const execFor = (folder: string | undefined) => {
    return <T>(command: string, params?: object): Promise<T> => {
      const s = folder ? sessions.get(folder) : (sessionFor(vscode.window.activeTextEditor?.document.uri) ?? tracked()[0]);
      if (!s) {
        return Promise.reject(new CommandError("no Tether server for this checkpoint's folder."));
      }
      return s.exec<T>(command, params);
    };
  };
  context.subscriptions.push(
    vscode.workspace.registerTextDocumentContentProvider(CHECKPOINT_SCHEME, new CheckpointContentProvider(execFor)),
  );

  /** Wraps a command: errors become a message with "Show logs"; results are returned for tests. */
  const register = (id: string, fn: (...args: unknown[]) => Promise<unknown>): void => {
    context.subscriptions.push(
      vscode.commands.registerCommand(id, async (...args: unknown[]) => {
        try {
          return await fn(...args);
        } catch (e) {
          if (e instanceof CancelledError) {
            return undefined;
          }
          const msg = errText(e);
          output.error(`${id}: ${msg}`);
          const notTracked = !tracked().length && !!vscode.workspace.workspaceFolders?.length;
          const actions = notTracked ? ["Track this folder"] : ["Show logs"];
          void vscode.window.showErrorMessage(`Tether: ${msg}`, ...actions).then((c) => {
            if (c === "Show logs") {
              output.show(true);
            } else if (c === "Track this folder") {
              void vscode.commands.executeCommand("tether.trackFolder");
            }
          });
          return undefined;
        }
      }),
    );
  };

  register("tether.resumeSession", async () => {
    const s = await pickSession((x) => !!x.lastStatus?.resumeAvailable);
    const res = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Window, title: `Tether: resuming ${s.folder.name}` },
      () => s.exec<ResumeResult>(CMD_RESUME, {}),
    );
    vscode.window.setStatusBarMessage(resumeStatusMessage(res), 8000);
    if (res.noTerminal) {
      void vscode.window.showWarningMessage(`Tether: no terminal: ${res.noTerminal}`);
    }
    const agents = agentResumeMessage(res.terminal?.agents);
    if (agents) {
      void vscode.window.showInformationMessage(`Tether: ${agents}`);
    }
    // What the snapshot could not record (no /proc and no psutil…): said, never silent.
    const told: unknown = res.terminal?.warnings;
    const warnings = Array.isArray(told) ? told.filter((w): w is string => typeof w === "string") : [];
    if (warnings.length) {
      void vscode.window.showWarningMessage(`Tether: ${warnings.join("; ")}`);
    }
    if (res.skippedBuffers.length) {
      void vscode.window.showWarningMessage(
        `Tether: unsaved edits not restored: ${res.skippedBuffers.map((x) => `${x.path} (${x.reason})`).join("; ")}`,
      );
    }
    return res;
  });

  register("tether.checkpointNow", async (arg?: unknown) => {
    const s = await pickSession();
    const message = typeof arg === "string" ? arg : undefined;
    const cp = await s.exec<CheckpointInfo>(CMD_CHECKPOINT, message ? { message } : {});
    vscode.window.setStatusBarMessage(
      `$(check) Tether: checkpoint #${cp.id} (${cp.files.length} file${cp.files.length === 1 ? "" : "s"} changed)`,
      5000,
    );
    return cp;
  });

  register("tether.showTimeline", async () => (await pickSession()).ui.showTimeline());
  register("tether.restoreCheckpoint", async (arg?: unknown) =>
    (await pickSession()).ui.restore(typeof arg === "number" ? arg : undefined),
  );

  register("tether.recordStep", async () => {
    const s = await pickSession();
    const done = await vscode.window.showInputBox({
      title: "Tether: record step (1/3)",
      prompt: "What was done in this step?",
      placeHolder: "e.g. wrote the tests for the login form",
      ignoreFocusOut: true,
      validateInput: (v) => (v.trim() ? undefined : "Describe what was done"),
    });
    if (done === undefined) {
      return undefined;
    }
    const next = await vscode.window.showInputBox({
      title: "Tether: record step (2/3)",
      prompt: "Next steps, separated by ';' (optional)",
      placeHolder: "e.g. fix lint; update the docs",
      ignoreFocusOut: true,
    });
    if (next === undefined) {
      return undefined;
    }
    const task = await vscode.window.showInputBox({
      title: "Tether: record step (3/3)",
      prompt: "Current task (optional; empty keeps the current one)",
      ignoreFocusOut: true,
    });
    if (task === undefined) {
      return undefined;
    }
    const params: { done: string; next?: string[]; task?: string } = { done: done.trim() };
    const steps = next
      .split(";")
      .map((x) => x.trim())
      .filter(Boolean);
    if (steps.length) {
      params.next = steps;
    }
    if (task.trim()) {
      params.task = task.trim();
    }
    const cp = await s.exec<CheckpointInfo>(CMD_STEP, params);
    vscode.window.setStatusBarMessage(`$(check) Tether: step recorded (checkpoint #${cp.id})`, 5000);
    return cp;
  });

  register("tether.startAgentSession", async () => {
    const s = await pickSession();
    const res = await s.exec<StartSessionResult>(CMD_START_SESSION, {});
    vscode.window.setStatusBarMessage(
      `$(terminal-tmux) Tether: ${res.created ? "created" : "attached to"} tmux session ${res.session}`,
      5000,
    );
    return res;
  });

  /** Opt in (or out) for one folder: a workspace-folder setting, so it holds the next time too. */
  const setTrack = async (value: "always" | "never"): Promise<FolderDecision[]> => {
    const folders = vscode.workspace.workspaceFolders ?? [];
    if (!folders.length) {
      throw new CommandError("open a folder first.");
    }
    // The folder the user is in, when the command applies to it; otherwise ask.
    const current = activeFolder();
    const applies = (f: vscode.WorkspaceFolder): boolean => {
      const on = sessions.has(f.uri.toString()) || !!sessionFor(f.uri);
      return value === "always" ? !on : on;
    };
    const folder =
      folders.length === 1
        ? folders[0]
        : current && applies(current)
          ? current
          : await vscode.window.showWorkspaceFolderPick({
              placeHolder: value === "always" ? "Track which folder with Tether?" : "Stop tracking which folder?",
            });
    if (!folder) {
      return decisions;
    }
    await vscode.workspace
      .getConfiguration("tether", folder.uri)
      .update("track", value, folders.length === 1 ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.WorkspaceFolder);
    // onDidChangeConfiguration syncs too; this makes the result visible to the caller at once.
    await sync();
    return decisions;
  };
  register("tether.trackFolder", () => setTrack("always"));
  register("tether.untrackFolder", () => setTrack("never"));
  register("tether.installHelp", async () => {
    await offerInstall({ extensionUri: context.extensionUri, output, restart: restartAll }, tracked()[0]?.manager.lastError ?? "");
  });
  register("tether.restartServer", async () => {
    if (!tracked().length) {
      await sync();
    }
    await restartAll();
  });
  register("tether.showLogs", async () => output.show(true));

  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration("tether.serverPath") || e.affectsConfiguration("tether.pythonPath")) {
        void restartAll();
      } else if (e.affectsConfiguration("tether.track")) {
        void sync();
      } else if (e.affectsConfiguration("tether")) {
        for (const s of tracked()) {
          void s.manager.notifyConfigurationChanged();
        }
      }
    }),
    // Each folder has its own server: adding or removing one leaves the others running.
    vscode.workspace.onDidChangeWorkspaceFolders(() => void sync()),
    vscode.window.onDidChangeActiveTextEditor(() => indicator.refresh()),
    { dispose: () => tracked().forEach((s) => s.dispose()) },
  );

  await sync();

  const primary = (): FolderSession => {
    const s = tracked()[0];
    if (!s) {
      throw new CommandError(`Tether is not tracking any folder of this window (${NOT_TRACKED_HINT}).`);
    }
    return s;
  };

  return {
    get manager() {
      return primary().manager;
    },
    indicator: () => indicator.current ?? renderIndicator({ kind: "noFolder" }),
    lastStatus: () => tracked()[0]?.lastStatus,
    lastNextSteps: () => tracked()[0]?.lastNextSteps,
    terminalRequests: () => tracked()[0]?.terminalRequests ?? 0,
    exec: <T>(command: string, params?: object) => primary().exec<T>(command, params),
    get ui() {
      return primary().ui;
    },
    whenStatus: (pred, timeoutMs) => primary().whenStatus(pred, timeoutMs),
    sessions: tracked,
    decisions: () => decisions,
  };
}

class CancelledError extends Error {}

/** Short enough for the status bar ("… reattached tmux session t" was cut): the session's name
 * and the details are in the terminal's title and the notifications. */
export function resumeStatusMessage(res: ResumeResult): string {
  const n = res.opened.length;
  const bits = [`${n} file${n === 1 ? "" : "s"}`];
  if (res.restoredBuffers.length) {
    bits.push(`${res.restoredBuffers.length} unsaved`);
  }
  if (res.terminal) {
    bits.push(res.terminal.recreated ? "terminal recreated" : "terminal back");
  }
  const cp = res.checkpoint !== null ? ` #${res.checkpoint}` : "";
  return `$(check) Tether: resumed${cp} · ${bits.join(" · ")}`;
}

/** Awaited by VS Code: each server gets an orderly shutdown (it journals the editor on shutdown). */
export async function deactivate(): Promise<void> {
  await Promise.all((activeSessions?.() ?? []).map((s) => s.stop()));
}
