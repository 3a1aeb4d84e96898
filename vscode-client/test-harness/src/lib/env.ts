// Where things are: repo, tools, the Tether executable; and private, throwaway run directories.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

export const HARNESS_DIR = path.resolve(__dirname, "..");
export const EXT_DIR = path.resolve(HARNESS_DIR, "..");
export const REPO_DIR = path.resolve(EXT_DIR, "..");
export const TOOLS_DIR = process.env.TETHER_TOOLS_DIR ?? path.join(REPO_DIR, ".tools");
export const NODE24 = path.join(TOOLS_DIR, "node24/node_modules/node/bin/node");
export const CS_ENTRY = path.join(TOOLS_DIR, "code-server/node_modules/code-server/out/node/entry.js");
export const CHROMIUM = process.env.TETHER_CHROMIUM ?? "/usr/bin/chromium";
export const TETHER_BIN = process.env.TETHER_BIN ?? path.join(REPO_DIR, ".venv/bin/tether");
export const ARTIFACTS_DIR = process.env.TETHER_ARTIFACTS_DIR ?? path.join(REPO_DIR, "artifacts/vscode");

export function checkTools(): string[] {
  const missing: string[] = [];
  for (const [what, p] of [
    ["Node 24", NODE24],
    ["code-server", CS_ENTRY],
    ["chromium", CHROMIUM],
    ["tether", TETHER_BIN],
  ] as const) {
    if (!fs.existsSync(p)) {
      missing.push(`${what} (${p})`);
    }
  }
  return missing;
}

export interface RunDirs {
  root: string;
  workspace: string;
  stateDir: string;
  tmuxDir: string;
  tmuxSocket: string;
}

/**
 * A private run: workspace and Tether state under one temp dir; the tmux socket in its own short
 * dir directly under /tmp (socket paths must stay under ~107 bytes). Nothing touches the user's
 * default tmux server or state dir.
 */
export function makeRunDirs(prefix: string, opts: { git?: boolean } = {}): RunDirs {
  const root = fs.mkdtempSync(path.join(process.env.TETHER_HARNESS_TMP ?? "/tmp", `${prefix}-`));
  const workspace = path.join(root, "ws");
  const stateDir = path.join(root, "state");
  fs.mkdirSync(workspace, { recursive: true });
  if (opts.git !== false) {
    // A project, as a user's workspace is: Tether tracks folders with .git (or .agent-session.json).
    gitInit(workspace);
  }
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const tmuxDir = fs.mkdtempSync("/tmp/tthx-");
  fs.chmodSync(tmuxDir, 0o700);
  return { root, workspace: fs.realpathSync(workspace), stateDir, tmuxDir, tmuxSocket: path.join(tmuxDir, "sock") };
}

export function log(...args: unknown[]): void {
  const t = (process.uptime()).toFixed(2).padStart(7);
  console.log(`[${t}s]`, ...args);
}

export function gitInit(dir: string): void {
  execFileSync("git", ["init", "-q", dir], { stdio: "ignore", timeout: 30_000 });
}
