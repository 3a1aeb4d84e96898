// Finding and running `tether lsp`: launch resolution and a client manager with serialised restarts.
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as vscode from "vscode";
import {
  CloseAction,
  CloseHandlerResult,
  DidChangeConfigurationNotification,
  ErrorAction,
  ErrorHandler,
  ErrorHandlerResult,
  Executable,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  Message,
  State,
  TransportKind,
} from "vscode-languageclient/node";
import { InitializationOptions } from "./protocol";

export type LaunchSource = "tether.serverPath" | "tether.pythonPath" | "Python extension" | "PATH";

export interface ServerLaunch {
  command: string;
  args: string[];
  source: LaunchSource;
}

/** No usable executable. `notInstalled`: nothing was configured and none was found (the user is
 * offered the install command); otherwise a setting points at something unusable. */
export class ServerNotFoundError extends Error {
  constructor(
    message: string,
    readonly notInstalled = false,
  ) {
    super(message);
  }
}

export interface ResolveInputs {
  serverPath: string;
  pythonPath: string;
  workspaceFolder: string | undefined;
  env: NodeJS.ProcessEnv;
  /** The Python extension's interpreter, if that extension is installed; undefined otherwise. */
  pythonExtensionInterpreter: () => Promise<string | undefined>;
  /** Whether an interpreter can import Tether (used only for the Python extension's guess). */
  canImportTether: (python: string) => Promise<boolean>;
}

function expand(p: string, workspaceFolder: string | undefined): string {
  let out = p.trim();
  if (workspaceFolder) {
    out = out.replace(/\$\{workspaceFolder\}/g, workspaceFolder);
  }
  if (out === "~" || out.startsWith("~/")) {
    out = path.join(os.homedir(), out.slice(1));
  }
  if (!path.isAbsolute(out) && out.includes("/") && workspaceFolder) {
    out = path.resolve(workspaceFolder, out);
  }
  return out;
}

function isExecutableFile(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

export function findOnPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  if (name.includes("/")) {
    return isExecutableFile(name) ? name : undefined;
  }
  for (const dir of (env.PATH ?? "").split(path.delimiter)) {
    if (!dir) {
      continue;
    }
    const candidate = path.join(dir, name);
    if (isExecutableFile(candidate)) {
      return candidate;
    }
  }
  return undefined;
}

/**
 * Order: tether.serverPath → tether.pythonPath → the Python extension's interpreter (only when
 * it has Tether installed) → `tether` on PATH. A setting that is set but unusable is an error of
 * its own: silently falling through would start a different Tether than the user asked for.
 */
export async function resolveServerLaunch(inp: ResolveInputs): Promise<ServerLaunch> {
  if (inp.serverPath.trim()) {
    const p = expand(inp.serverPath, inp.workspaceFolder);
    const found = findOnPath(p, inp.env);
    if (!found) {
      throw new ServerNotFoundError(
        `tether.serverPath is set to "${inp.serverPath}", which is not an executable file.`,
      );
    }
    return { command: found, args: ["lsp"], source: "tether.serverPath" };
  }
  if (inp.pythonPath.trim()) {
    const p = expand(inp.pythonPath, inp.workspaceFolder);
    const found = findOnPath(p, inp.env);
    if (!found) {
      throw new ServerNotFoundError(
        `tether.pythonPath is set to "${inp.pythonPath}", which is not an executable file.`,
      );
    }
    return { command: found, args: ["-m", "tether", "lsp"], source: "tether.pythonPath" };
  }
  let interpreter: string | undefined;
  try {
    interpreter = await inp.pythonExtensionInterpreter();
  } catch {
    interpreter = undefined;
  }
  if (interpreter && isExecutableFile(interpreter) && (await inp.canImportTether(interpreter))) {
    return { command: interpreter, args: ["-m", "tether", "lsp"], source: "Python extension" };
  }
  const onPath = findOnPath("tether", inp.env);
  if (onPath) {
    return { command: onPath, args: ["lsp"], source: "PATH" };
  }
  const tried = ["tether.serverPath (not set)", "tether.pythonPath (not set)"];
  tried.push(
    interpreter
      ? `the Python extension's interpreter ${interpreter} (cannot import tether)`
      : "the Python extension's interpreter (none)",
  );
  tried.push("`tether` on PATH (not found)");
  throw new ServerNotFoundError(`cannot find the Tether language server. Tried: ${tried.join("; ")}.`, true);
}

function withTimeout<T>(p: Thenable<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(undefined), ms);
    Promise.resolve(p).then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      () => {
        clearTimeout(t);
        resolve(undefined);
      },
    );
  });
}

/** The Python extension's active interpreter, read through its public API without depending on it. */
export async function pythonExtensionInterpreter(folder: vscode.Uri | undefined): Promise<string | undefined> {
  const ext = vscode.extensions.getExtension("ms-python.python");
  if (!ext) {
    return undefined;
  }
  // The API is used loosely (no typings, no dependency): shapes differ between its versions.
  const api: any = ext.isActive ? ext.exports : await withTimeout(ext.activate(), 10_000);
  if (!api) {
    return undefined;
  }
  const envs = api.environments;
  if (envs?.getActiveEnvironmentPath) {
    const envPath = envs.getActiveEnvironmentPath(folder);
    const resolved = envs.resolveEnvironment ? await withTimeout(envs.resolveEnvironment(envPath), 10_000) : undefined;
    const exe = (resolved as any)?.executable?.uri?.fsPath ?? envPath?.path;
    if (typeof exe === "string" && exe) {
      return exe;
    }
  }
  const details = api.settings?.getExecutionDetails?.(folder);
  const cmd = details?.execCommand?.[0];
  return typeof cmd === "string" && cmd ? cmd : undefined;
}

export function canImportTether(python: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(python, ["-c", "import tether.protocol"], { timeout: 10_000 }, (err) => resolve(!err));
  });
}

export function initializationOptions(): InitializationOptions {
  const cfg = vscode.workspace.getConfiguration("tether");
  const opts: InitializationOptions = {};
  const interval = cfg.get<unknown>("checkpointIntervalSeconds");
  if (typeof interval === "number" && Number.isFinite(interval) && interval >= 0) {
    opts.checkpointIntervalSeconds = Math.floor(interval);
  }
  return opts;
}

export interface ManagerHooks {
  /** Called with each new client before it starts, to register notification handlers. */
  onClientCreated(client: LanguageClient): void;
  onStarting(): void;
  onRunning(): void;
  onFailed(message: string): void;
  /** No `tether` anywhere and none configured: the caller offers the install command. */
  onNotInstalled(tried: string): void;
  /** Last chance to notify a running server before an orderly stop. */
  beforeStop(): void;
  clientOptions(): Partial<LanguageClientOptions>;
}

const MAX_CRASHES = 3;
const CRASH_WINDOW_MS = 3 * 60_000;

/** Owns the LanguageClient. Starts, stops and restarts are queued so they never overlap. */
export class ServerManager implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private queue: Promise<void> = Promise.resolve();
  private queuedRestart: Promise<void> | undefined;
  private crashes: number[] = [];
  private lastErrorMessage: string | undefined;
  private disposed = false;

  constructor(
    private readonly output: vscode.LogOutputChannel,
    /** The workspace folder this server is the workspace of (one server per tracked folder). */
    readonly folder: vscode.WorkspaceFolder,
    private readonly hooks: ManagerHooks,
  ) {}

  get current(): LanguageClient | undefined {
    return this.client;
  }

  get lastError(): string | undefined {
    return this.lastErrorMessage;
  }

  get running(): boolean {
    return this.client?.state === State.Running;
  }

  private enqueue(job: () => Promise<void>): Promise<void> {
    const next = this.queue.then(job, job);
    this.queue = next.catch(() => undefined);
    return next;
  }

  start(): Promise<void> {
    return this.enqueue(() => this.doStart());
  }

  /** Restart requests made while one is waiting in the queue share it instead of piling up. */
  restart(): Promise<void> {
    if (this.queuedRestart) {
      return this.queuedRestart;
    }
    const p = this.enqueue(async () => {
      this.queuedRestart = undefined;
      await this.doStop();
      await this.doStart();
    });
    this.queuedRestart = p;
    return p;
  }

  /**
   * Tells a running server that settings changed; it pulls them with workspace/configuration.
   * Not left to the client's own configuration sync, which races with a restart for
   * tether.serverPath/pythonPath changes and reports a failed notification.
   */
  async notifyConfigurationChanged(): Promise<void> {
    const c = this.client;
    if (!c || c.state !== State.Running || this.queuedRestart) {
      return;
    }
    try {
      await c.sendNotification(DidChangeConfigurationNotification.type, { settings: { tether: initializationOptions() } });
    } catch (e) {
      this.output.warn(`workspace/didChangeConfiguration: ${errText(e)}`);
    }
  }

  stop(): Promise<void> {
    return this.enqueue(() => this.doStop());
  }

  private async doStop(): Promise<void> {
    const c = this.client;
    if (!c) {
      return;
    }
    if (c.state === State.Running) {
      this.hooks.beforeStop();
    }
    this.client = undefined;
    try {
      if (c.state !== State.Stopped) {
        await c.stop(5_000);
      }
    } catch (e) {
      this.output.warn(`stopping the server: ${String(e)}`);
    }
    try {
      await c.dispose(2_000);
    } catch {
      // already stopped; dispose only releases handlers here
    }
  }

  private fail(message: string): void {
    this.lastErrorMessage = message;
    this.output.error(message);
    this.hooks.onFailed(message);
    void vscode.window
      .showErrorMessage(`Tether: ${message}`, "Show logs", "Open settings")
      .then((choice) => {
        if (choice === "Show logs") {
          this.output.show(true);
        } else if (choice === "Open settings") {
          void vscode.commands.executeCommand("workbench.action.openSettings", "tether.");
        }
      });
  }

  private async doStart(): Promise<void> {
    if (this.disposed) {
      return;
    }
    const folder = this.folder;
    this.hooks.onStarting();
    const cfg = vscode.workspace.getConfiguration("tether", folder.uri);
    let launch: ServerLaunch;
    try {
      launch = await resolveServerLaunch({
        serverPath: cfg.get<string>("serverPath") ?? "",
        pythonPath: cfg.get<string>("pythonPath") ?? "",
        workspaceFolder: folder.uri.fsPath,
        env: process.env,
        pythonExtensionInterpreter: () => pythonExtensionInterpreter(folder.uri),
        canImportTether,
      });
    } catch (e) {
      this.output.info(`tether.serverPath: ${JSON.stringify(cfg.inspect("serverPath"))}`);
      if (e instanceof ServerNotFoundError && e.notInstalled) {
        this.lastErrorMessage = e.message;
        this.hooks.onNotInstalled(e.message);
        return;
      }
      this.fail(e instanceof Error ? e.message : String(e));
      return;
    }
    this.output.info(`starting ${launch.command} ${launch.args.join(" ")} (from ${launch.source}) for ${folder.uri.fsPath}`);
    const exe: Executable = {
      command: launch.command,
      args: launch.args,
      transport: TransportKind.stdio,
      options: { cwd: folder.uri.fsPath, env: process.env },
    };
    const options: LanguageClientOptions = {
      // This folder's files only: in a multi-root workspace each folder has its own server.
      documentSelector: [{ scheme: "file", pattern: { baseUri: folder.uri.toString(), pattern: "**/*" } }],
      workspaceFolder: folder,
      outputChannel: this.output,
      initializationOptions: initializationOptions(),
      errorHandler: this.errorHandler(),
      initializationFailedHandler: () => false,
      ...this.hooks.clientOptions(),
    };
    // The id stays "tether" (it names the tether.trace.server setting).
    const client = new LanguageClient("tether", `Tether (${folder.name})`, exe, options);
    keepServerCommandsUnregistered(client);
    this.hooks.onClientCreated(client);
    client.onDidChangeState((ev) => {
      if (this.client !== client) {
        return;
      }
      if (ev.newState === State.Running) {
        this.lastErrorMessage = undefined;
        this.hooks.onRunning();
      } else if (ev.newState === State.Starting) {
        this.hooks.onStarting();
      }
    });
    this.client = client;
    try {
      await client.start();
      this.lastErrorMessage = undefined;
      this.hooks.onRunning();
    } catch (e) {
      this.client = undefined;
      try {
        await client.dispose(2_000);
      } catch {
        // the process never came up
      }
      this.fail(`the server (${launch.command} ${launch.args.join(" ")}) did not start: ${errText(e)}`);
    }
  }

  private errorHandler(): ErrorHandler {
    return {
      error: (_error: Error, _message: Message | undefined, count: number | undefined): ErrorHandlerResult => ({
        action: count !== undefined && count <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown,
        handled: true,
      }),
      closed: (): CloseHandlerResult => {
        const now = Date.now();
        this.crashes = [...this.crashes.filter((t) => now - t < CRASH_WINDOW_MS), now];
        if (this.crashes.length <= MAX_CRASHES) {
          this.output.warn(`the server exited; restarting (${this.crashes.length}/${MAX_CRASHES})`);
          return { action: CloseAction.Restart, handled: true };
        }
        this.fail(`the server exited ${this.crashes.length} times in 3 minutes; not restarting it.`);
        return { action: CloseAction.DoNotRestart, handled: true };
      },
    };
  }

  dispose(): void {
    this.disposed = true;
    void this.stop();
  }
}

/**
 * The extension sends the server's commands itself (workspace/executeCommand to the folder's own
 * server). Left to the client, they would also be registered as VS Code commands, once per
 * server: in a multi-root workspace the second server would fail to start with "command
 * 'tether.resume' already exists".
 */
function keepServerCommandsUnregistered(client: LanguageClient): void {
  const feature = client.getFeature(ExecuteCommandRequest.method) as unknown as {
    initialize: (...args: unknown[]) => void;
    register: (...args: unknown[]) => void;
  };
  feature.initialize = () => undefined;
  feature.register = () => undefined;
}

export function errText(e: unknown): string {
  if (e instanceof Error) {
    return e.message;
  }
  if (e && typeof e === "object" && "message" in e) {
    return String((e as { message: unknown }).message);
  }
  return String(e);
}
