// One tracked workspace folder: its language server (a `tether lsp` whose workspace is that folder),
// the last status it sent, and the handlers of its notifications.
import * as vscode from "vscode";
import { ExecuteCommandRequest, LanguageClient, LanguageClientOptions, ResponseError } from "vscode-languageclient/node";
import { CheckpointUi } from "./checkpoints";
import { normalizeNextSteps, openTerminal, showNextSteps, validateOpenTerminal } from "./notifications";
import { NOTIFY_OPEN_TERMINAL, NOTIFY_SHOW_NEXT_STEPS, NOTIFY_STATUS, ShowNextStepsParams, Status } from "./protocol";
import { ServerManager } from "./server";
import { Phase } from "./status";

export class CommandError extends Error {}

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

export interface SessionDeps {
  output: vscode.LogOutputChannel;
  /** The phase or status of this folder changed: the indicator re-renders. */
  changed(): void;
  /** No `tether` anywhere: offer the install command (once, whichever folder asks). */
  notInstalled(tried: string): void;
  /** Pending cursor positions go out before a stop and before each command. */
  flushCursors(): void;
  clientOptions(): Partial<LanguageClientOptions>;
}

export class FolderSession implements vscode.Disposable {
  readonly manager: ServerManager;
  readonly ui: CheckpointUi;
  private phaseNow: Phase = { kind: "starting" };
  private status: Status | undefined;
  private nextSteps: ShowNextStepsParams | undefined;
  private terminals = 0;
  private readonly waiters = new Set<(s: Status) => void>();

  constructor(
    readonly folder: vscode.WorkspaceFolder,
    private readonly deps: SessionDeps,
  ) {
    const output = deps.output;
    this.manager = new ServerManager(output, folder, {
      onStarting: () => this.setPhase({ kind: "starting" }),
      onRunning: () => this.setPhase({ kind: "running", status: this.status }),
      onFailed: (m) => this.setPhase({ kind: "failed", message: m }),
      onNotInstalled: (tried) => {
        this.setPhase({ kind: "notInstalled", message: tried });
        deps.notInstalled(tried);
      },
      beforeStop: () => deps.flushCursors(),
      clientOptions: () => deps.clientOptions(),
      onClientCreated: (client: LanguageClient) => this.wire(client),
    });
    this.ui = new CheckpointUi((c, p) => this.exec(c, p), () => this.folder.uri);
  }

  get key(): string {
    return this.folder.uri.toString();
  }

  get phase(): Phase {
    return this.phaseNow;
  }

  get lastStatus(): Status | undefined {
    return this.status;
  }

  get lastNextSteps(): ShowNextStepsParams | undefined {
    return this.nextSteps;
  }

  /** How many tether/openTerminal notifications were handled (opened or re-shown). */
  get terminalRequests(): number {
    return this.terminals;
  }

  private setPhase(p: Phase): void {
    this.phaseNow = p;
    this.deps.changed();
  }

  private wire(client: LanguageClient): void {
    const output = this.deps.output;
    // A new server: the old one's status no longer says anything.
    this.status = undefined;
    client.onNotification(NOTIFY_STATUS, (p: unknown) => {
      if (!isStatus(p)) {
        output.warn(`ignoring malformed ${NOTIFY_STATUS}: ${JSON.stringify(p)}`);
        return;
      }
      const last = this.status;
      if (p.state === "error" && (last?.state !== "error" || last.error !== p.error)) {
        output.warn(`the server for ${this.folder.name} reports an error: ${p.error ?? "(no message)"}`);
      }
      this.status = p;
      this.setPhase({ kind: "running", status: p });
      for (const w of [...this.waiters]) {
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
      this.terminals += 1;
    });
    client.onNotification(NOTIFY_SHOW_NEXT_STEPS, (p: unknown) => {
      this.nextSteps = normalizeNextSteps(p);
      void showNextSteps(this.nextSteps, this.folder.uri);
    });
  }

  async exec<T>(command: string, params: object = {}): Promise<T> {
    // Commands that checkpoint must see the latest cursor, not one still in the throttle.
    this.deps.flushCursors();
    const client = this.manager.current;
    if (!client || !this.manager.running) {
      const why = this.manager.lastError;
      throw new CommandError(why ? `the server is not running (${why})` : "the server is not running yet.");
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
  }

  /** Resolves once a tether/status with the predicate true has arrived (or already has). */
  whenStatus(pred: (s: Status) => boolean, timeoutMs = 20_000): Promise<Status> {
    return new Promise((resolve, reject) => {
      const now = this.status;
      if (now && pred(now)) {
        resolve(now);
        return;
      }
      const waiter = (s: Status): void => {
        if (pred(s)) {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(s);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`no matching tether/status within ${timeoutMs} ms; last: ${JSON.stringify(this.status)}`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  /** Orderly stop (the server journals the editor on shutdown). */
  stop(): Promise<void> {
    return this.manager.stop();
  }

  dispose(): void {
    this.manager.dispose();
  }
}
