// Tether for VS Code: starts `tether lsp`, shows the checkpoint indicator, and offers the commands.
import * as vscode from "vscode";
import { ExecuteCommandRequest, LanguageClient, ResponseError } from "vscode-languageclient/node";
import { CHECKPOINT_SCHEME, CheckpointContentProvider, CheckpointUi } from "./checkpoints";
import { CursorReporter } from "./cursor";
import {
  agentResumeMessage,
  normalizeNextSteps,
  openTerminal,
  showNextSteps,
  validateOpenTerminal,
} from "./notifications";
import {
  CheckpointInfo,
  CMD_CHECKPOINT,
  CMD_RESUME,
  CMD_START_SESSION,
  CMD_STEP,
  NOTIFY_OPEN_TERMINAL,
  NOTIFY_SHOW_NEXT_STEPS,
  NOTIFY_STATUS,
  ResumeResult,
  ShowNextStepsParams,
  StartSessionResult,
  Status,
} from "./protocol";
import { errText, ServerManager } from "./server";
import { IndicatorView, StatusIndicator } from "./status";

/** Returned from activate(): used by the extension-host tests, and usable by other extensions. */
export interface TetherApi {
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
}

export function isStatus(v: unknown): v is Status {
  if (!v || typeof v !== "object") {
    return false;
  }
  const o = v as Record<string, unknown>;
  return (
    typeof o.state === "string" &&
    typeof o.resumeAvailable === "boolean" &&
    typeof o.filesInProgress === "number" &&
    (o.lastCheckpoint === null || typeof o.lastCheckpoint === "object")
  );
}

class CommandError extends Error {}

export async function activate(context: vscode.ExtensionContext): Promise<TetherApi> {
  const output = vscode.window.createOutputChannel("Tether", { log: true });
  const indicator = new StatusIndicator();
  context.subscriptions.push(output, indicator);
  const root = (): vscode.Uri | undefined => vscode.workspace.workspaceFolders?.[0]?.uri;

  let lastStatus: Status | undefined;
  let lastNextSteps: ShowNextStepsParams | undefined;
  let terminalRequests = 0;
  // Created after the manager, which it sends through.
  let cursors: CursorReporter | undefined;
  const statusWaiters = new Set<(s: Status) => void>();

  const manager = new ServerManager(output, {
    onStarting: () => indicator.setStarting(),
    onRunning: () => (lastStatus ? indicator.update(lastStatus) : indicator.setRunning()),
    onFailed: (m) => indicator.setFailed(m),
    onNoFolder: () => indicator.setNoFolder(),
    beforeStop: () => cursors?.flush(),
    clientOptions: () => ({
      middleware: {
        window: {
          // Reopened files must each keep a tab: preview tabs would replace one another.
          showDocument: async (params, _token, next) => {
            if (params.external) {
              return next(params, _token);
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
    onClientCreated: (client: LanguageClient) => {
      // A new server: the old one's status no longer says anything.
      lastStatus = undefined;
      client.onNotification(NOTIFY_STATUS, (p: unknown) => {
        if (!isStatus(p)) {
          output.warn(`ignoring malformed ${NOTIFY_STATUS}: ${JSON.stringify(p)}`);
          return;
        }
        if (p.state === "error" && (lastStatus?.state !== "error" || lastStatus.error !== p.error)) {
          output.warn(`the server reports an error: ${p.error ?? "(no message)"}`);
        }
        lastStatus = p;
        indicator.update(p);
        for (const w of [...statusWaiters]) {
          w(p);
        }
      });
      client.onNotification(NOTIFY_OPEN_TERMINAL, (p: unknown) => {
        const v = validateOpenTerminal(p);
        if (typeof v === "string") {
          output.warn(`ignoring malformed ${NOTIFY_OPEN_TERMINAL}: ${v}`);
          return;
        }
        output.info(`opening terminal ${v.name}: ${v.argv.join(" ")}`);
        openTerminal(v);
        terminalRequests += 1;
      });
      client.onNotification(NOTIFY_SHOW_NEXT_STEPS, (p: unknown) => {
        lastNextSteps = normalizeNextSteps(p);
        void showNextSteps(lastNextSteps, root());
      });
    },
  });
  context.subscriptions.push(manager);
  activeManager = manager;

  cursors = new CursorReporter((method, params) => {
    const client = manager.current;
    if (client && manager.running) {
      client.sendNotification(method, params).catch((e: unknown) => output.warn(`${method}: ${errText(e)}`));
    }
  });
  context.subscriptions.push(cursors);
  const flushCursors = (): void => cursors?.flush();

  const exec = async <T>(command: string, params: object = {}): Promise<T> => {
    // Commands that checkpoint must see the latest cursor, not one still in the throttle.
    flushCursors();
    const client = manager.current;
    if (!client || !manager.running) {
      throw new CommandError(
        manager.lastError ? `the server is not running (${manager.lastError})` : "the server is not running yet.",
      );
    }
    try {
      return (await client.sendRequest(ExecuteCommandRequest.type, { command, arguments: [params] })) as T;
    } catch (e) {
      if (e instanceof ResponseError) {
        const reason = (e.data as { reason?: string } | undefined)?.reason;
        throw new CommandError(reason ? `${e.message} (${reason})` : e.message);
      }
      throw e;
    }
  };

  const ui = new CheckpointUi(exec, root);
  context.subscriptions.push(
    vscode.workspace.registerTextDocumentContentProvider(CHECKPOINT_SCHEME, new CheckpointContentProvider(exec)),
  );

  /** Wraps a command: errors become a message with "Show logs"; results are returned for tests. */
  const register = (id: string, fn: (...args: unknown[]) => Promise<unknown>): void => {
    context.subscriptions.push(
      vscode.commands.registerCommand(id, async (...args: unknown[]) => {
        try {
          return await fn(...args);
        } catch (e) {
          const msg = errText(e);
          output.error(`${id}: ${msg}`);
          void vscode.window.showErrorMessage(`Tether: ${msg}`, "Show logs").then((c) => {
            if (c === "Show logs") {
              output.show(true);
            }
          });
          return undefined;
        }
      }),
    );
  };

  register("tether.resumeSession", async () => {
    const res = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Window, title: "Tether: resuming" },
      () => exec<ResumeResult>(CMD_RESUME, {}),
    );
    vscode.window.setStatusBarMessage(resumeStatusMessage(res), 8000);
    if (res.noTerminal) {
      void vscode.window.showWarningMessage(`Tether: no terminal: ${res.noTerminal}`);
    }
    const agents = agentResumeMessage(res.terminal?.agents);
    if (agents) {
      void vscode.window.showInformationMessage(`Tether: ${agents}`);
    }
    if (res.skippedBuffers.length) {
      void vscode.window.showWarningMessage(
        `Tether: unsaved edits not restored: ${res.skippedBuffers.map((s) => `${s.path} (${s.reason})`).join("; ")}`,
      );
    }
    return res;
  });

  register("tether.checkpointNow", async (arg?: unknown) => {
    const message = typeof arg === "string" ? arg : undefined;
    const cp = await exec<CheckpointInfo>(CMD_CHECKPOINT, message ? { message } : {});
    vscode.window.setStatusBarMessage(
      `$(check) Tether: checkpoint #${cp.id} (${cp.files.length} file${cp.files.length === 1 ? "" : "s"} changed)`,
      5000,
    );
    return cp;
  });

  register("tether.showTimeline", () => ui.showTimeline());
  register("tether.restoreCheckpoint", (arg?: unknown) => ui.restore(typeof arg === "number" ? arg : undefined));

  register("tether.recordStep", async () => {
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
      .map((s) => s.trim())
      .filter(Boolean);
    if (steps.length) {
      params.next = steps;
    }
    if (task.trim()) {
      params.task = task.trim();
    }
    const cp = await exec<CheckpointInfo>(CMD_STEP, params);
    vscode.window.setStatusBarMessage(`$(check) Tether: step recorded (checkpoint #${cp.id})`, 5000);
    return cp;
  });

  register("tether.startAgentSession", async () => {
    const res = await exec<StartSessionResult>(CMD_START_SESSION, {});
    vscode.window.setStatusBarMessage(
      `$(terminal-tmux) Tether: ${res.created ? "created" : "attached to"} tmux session ${res.session}`,
      5000,
    );
    return res;
  });

  register("tether.restartServer", () => manager.restart());
  register("tether.showLogs", async () => output.show(true));

  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration("tether.serverPath") || e.affectsConfiguration("tether.pythonPath")) {
        void manager.restart();
      } else if (e.affectsConfiguration("tether")) {
        void manager.notifyConfigurationChanged();
      }
    }),
    vscode.workspace.onDidChangeWorkspaceFolders(() => void manager.restart()),
  );

  const whenStatus = (pred: (s: Status) => boolean, timeoutMs = 20_000): Promise<Status> =>
    new Promise((resolve, reject) => {
      if (lastStatus && pred(lastStatus)) {
        resolve(lastStatus);
        return;
      }
      const waiter = (s: Status): void => {
        if (pred(s)) {
          clearTimeout(timer);
          statusWaiters.delete(waiter);
          resolve(s);
        }
      };
      const timer = setTimeout(() => {
        statusWaiters.delete(waiter);
        reject(new Error(`no matching tether/status within ${timeoutMs} ms; last: ${JSON.stringify(lastStatus)}`));
      }, timeoutMs);
      statusWaiters.add(waiter);
    });

  // Not awaited: activation must not wait for the server (a failure is shown by the manager).
  void manager.start();

  return {
    manager,
    indicator: () => indicator.current,
    lastStatus: () => lastStatus,
    lastNextSteps: () => lastNextSteps,
    terminalRequests: () => terminalRequests,
    exec,
    ui,
    whenStatus,
  };
}

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

let activeManager: ServerManager | undefined;

/** Awaited by VS Code: the server gets an orderly shutdown (it journals the editor on shutdown). */
export function deactivate(): Promise<void> | undefined {
  return activeManager?.stop();
}
