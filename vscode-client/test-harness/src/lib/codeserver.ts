// A real code-server (VS Code 1.139) in its own process group, with private HOME/user data.
import { ChildProcess, execFile, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import { CS_ENTRY, log, NODE24 } from "./env";

export interface CodeServerOptions {
  /** Directory for user data, extensions, HOME, logs of this instance. */
  dir: string;
  workspace: string;
  /** Extra environment for code-server (inherited by the extension host and `tether lsp`). */
  env: Record<string, string>;
  settings: Record<string, unknown>;
  vsix?: string;
  smokeTestDriver?: boolean;
  /** Keep code-server's own editor defaults (auto save after a delay, hot exit), as a new user
   * has them; the tests otherwise turn both off to control saves themselves. */
  editorDefaults?: boolean;
}

export interface CodeServer {
  url: string;
  authority: string;
  pid: number;
  dir: string;
  /** SIGKILL the whole process group: code-server, extension host, and the language server. */
  kill(): Promise<void>;
}

function get(url: string): Promise<number> {
  return new Promise((resolve) => {
    http
      .get(url, (r) => {
        r.resume();
        resolve(r.statusCode ?? 0);
      })
      .on("error", () => resolve(0));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = http.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === "object" ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

function isolatedEnv(dir: string, extra: Record<string, string>): NodeJS.ProcessEnv {
  const home = path.join(dir, "home");
  const tmp = path.join(dir, "tmp");
  fs.mkdirSync(home, { recursive: true });
  fs.mkdirSync(tmp, { recursive: true });
  const env: NodeJS.ProcessEnv = { ...process.env };
  // Never let anything inside reach a tmux server of the user.
  delete env.TMUX;
  delete env.TMUX_PANE;
  return {
    ...env,
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, ".config"),
    XDG_DATA_HOME: path.join(home, ".local/share"),
    XDG_CACHE_HOME: path.join(home, ".cache"),
    XDG_STATE_HOME: path.join(home, ".local/state"),
    TMPDIR: tmp,
    ...extra,
  };
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env, timeout: timeoutMs, encoding: "utf8" }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(" ")}: ${err.message}\n${stderr}`)) : resolve(stdout),
    );
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function startCodeServer(o: CodeServerOptions): Promise<CodeServer> {
  const udd = path.join(o.dir, "user-data");
  const exd = path.join(o.dir, "extensions");
  fs.mkdirSync(path.join(udd, "User"), { recursive: true });
  fs.mkdirSync(exd, { recursive: true });
  fs.writeFileSync(path.join(o.dir, "config.yaml"), "auth: none\n");
  // Machine-scoped settings (tether.serverPath) are read from the remote "Machine" settings in
  // code-server, not from User settings: write both.
  fs.mkdirSync(path.join(udd, "Machine"), { recursive: true });
  fs.writeFileSync(path.join(udd, "Machine/settings.json"), JSON.stringify(o.settings, null, 1));
  fs.writeFileSync(
    path.join(udd, "User/settings.json"),
    JSON.stringify(
      {
        "security.workspace.trust.enabled": false,
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": false,
        "workbench.welcomePage.walkthroughs.openOnInstall": false,
        "extensions.autoCheckUpdates": false,
        "extensions.autoUpdate": false,
        "update.mode": "none",
        "telemetry.telemetryLevel": "off",
        "chat.disableAIFeatures": true,
        ...(o.editorDefaults ? {} : { "files.hotExit": "off", "files.autoSave": "off" }),
        // DOM renderer: the terminal's text is then readable by the UI tests
        "terminal.integrated.gpuAcceleration": "off",
        "workbench.secondarySideBar.defaultVisibility": "hidden",
        "editor.autoClosingBrackets": "never",
        "editor.autoClosingQuotes": "never",
        ...o.settings,
      },
      null,
      1,
    ),
  );
  const env = isolatedEnv(o.dir, o.env);
  const common = ["--config", path.join(o.dir, "config.yaml"), "--user-data-dir", udd, "--extensions-dir", exd];
  if (o.vsix) {
    const out = await run(NODE24, [CS_ENTRY, ...common, "--install-extension", o.vsix], env, 120_000);
    log("install-extension:", out.trim().split("\n").slice(-1)[0]);
  }
  const port = await freePort();
  const args = [
    CS_ENTRY,
    ...common,
    "--bind-addr",
    `127.0.0.1:${port}`,
    "--auth",
    "none",
    "--disable-telemetry",
    "--disable-update-check",
    "--disable-workspace-trust",
    "--disable-getting-started-override",
  ];
  if (o.smokeTestDriver) {
    args.push("--vscode-option", "enable-smoke-test-driver");
  }
  args.push(o.workspace);
  const logFd = fs.openSync(path.join(o.dir, "code-server.log"), "a");
  // detached: own process group, so one kill(-pgid) ends code-server and all its children.
  const child: ChildProcess = spawn(NODE24, args, { env, detached: true, stdio: ["ignore", logFd, logFd] });
  fs.closeSync(logFd);
  const pid = child.pid;
  if (!pid) {
    throw new Error("code-server did not start");
  }
  child.unref();
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while ((await get(`${url}/healthz`)) !== 200) {
    if (Date.now() > deadline || !pidAlive(pid)) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // already gone
      }
      throw new Error(`code-server did not answer /healthz; see ${path.join(o.dir, "code-server.log")}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  log(`code-server pid ${pid} ready at ${url}`);
  let killed = false;
  return {
    url,
    authority: `127.0.0.1:${port}`,
    pid,
    dir: o.dir,
    async kill() {
      if (killed) {
        return;
      }
      killed = true;
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        return;
      }
      const end = Date.now() + 10_000;
      while (pidAlive(pid) && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}
