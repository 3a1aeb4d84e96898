// Where Tether runs, in a real VS Code (code-server) driven by headless Chromium, with the packaged
// .vsix and the real `tether lsp`:
//
// 1. A folder that is not a project (no .git, .hg, .agent-session.json): the extension does not
//    activate (read from the extension host's own log), no status item, no server. "Tether: Track
//    this folder" starts it and writes the opt-in to the folder's settings; a new window on the
//    folder then tracks it by itself.
// 2. A multi-root workspace (two repositories and a plain folder): one server per repository (read
//    from /proc: processes and their cwd), the status bar names the active editor's folder, a save
//    checkpoints in its own folder only, the plain folder says "off".
// 3. No `tether` anywhere: an error offers the install command; "Copy install command" puts it on
//    the clipboard, "Type it in a terminal" types it without running it, "Install instructions"
//    opens the README; pointing tether.serverPath at Tether recovers.
import * as fs from "fs";
import * as path from "path";
import { Browser, BrowserContext, Page } from "playwright-core";
import { launchBrowser } from "./lib/browser";
import { CodeServer, startCodeServer } from "./lib/codeserver";
import { ARTIFACTS_DIR, checkTools, gitInit, log, makeRunDirs, RunDirs, TETHER_BIN } from "./lib/env";
import { activations, exthostLogs, newActivations, startupFinished } from "./lib/exthost";
import { copyExtensionLogs } from "./lib/logs";
import { tetherServers } from "./lib/procs";
import { Results } from "./lib/results";
import { killPrivateTmux } from "./lib/tmux";
import { escapeQuickInput, focusWorkbench, openFile, runCommand, statusItemText, tab, tetherStatusItem, toast, waitForWorkbench } from "./lib/workbench";

const EXT_ID = "tether.tether";
const results = new Results();
let shot = 0;

async function screenshot(page: Page, name: string): Promise<void> {
  shot += 1;
  const file = path.join(ARTIFACTS_DIR, `ws-${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file }).catch((e) => log("screenshot failed", String(e)));
}

async function check(page: Page, name: string, fn: () => Promise<void>): Promise<boolean> {
  try {
    await fn();
    results.pass(name);
    return true;
  } catch (e) {
    results.fail(name, e instanceof Error ? e.message.split("\n")[0] : String(e));
    await screenshot(page, `FAILED-${name.replace(/[^a-z0-9]+/gi, "-").toLowerCase().slice(0, 60)}`);
    await escapeQuickInput(page).catch(() => undefined);
    return false;
  }
}

/** Bounded wait on a Node-side condition, polling every 100 ms. */
async function waitUntil<T>(cond: () => T | undefined | false, what: string, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = cond();
    if (v) {
      return v;
    }
    if (Date.now() > end) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function waitStatus(page: Page, re: RegExp, timeoutMs = 60_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    last = await statusItemText(page).catch(() => "");
    if (re.test(last)) {
      return last;
    }
    if (Date.now() > end) {
      throw new Error(`status bar item never matched ${re}; last text: ${JSON.stringify(last)}`);
    }
    await page.waitForTimeout(50);
  }
}

async function newWindow(browser: Browser, url: string, clipboard = false): Promise<{ ctx: BrowserContext; page: Page }> {
  const ctx = await browser.newContext({
    viewport: { width: 1400, height: 900 },
    ...(clipboard ? { permissions: ["clipboard-read", "clipboard-write"] } : {}),
  });
  const page = await ctx.newPage();
  await page.goto(url);
  await waitForWorkbench(page);
  return { ctx, page };
}

function keepLogs(cs: CodeServer, prefix: string): void {
  fs.copyFileSync(path.join(cs.dir, "code-server.log"), path.join(ARTIFACTS_DIR, `${prefix}-code-server.log`));
  copyExtensionLogs(cs.dir, prefix);
  const ext = exthostLogs(cs.dir);
  ext.forEach((f, i) => fs.copyFileSync(f, path.join(ARTIFACTS_DIR, `${prefix}-exthost-${i + 1}.log`)));
}

const settings = { "tether.serverPath": TETHER_BIN, "tether.trace.server": "messages" };

async function notAProject(browser: Browser, dirs: RunDirs, vsix: string): Promise<void> {
  const folder = path.join(dirs.root, "scratch");
  fs.mkdirSync(folder);
  fs.writeFileSync(path.join(folder, "notes.txt"), "scratch notes\n");
  const cs = await startCodeServer({
    dir: path.join(dirs.root, "cs-plain"),
    workspace: folder,
    env: { TETHER_STATE_DIR: dirs.stateDir, TETHER_TMUX_SOCKET: dirs.tmuxSocket },
    settings,
    vsix,
  });
  const url = `${cs.url}/?folder=${encodeURIComponent(folder)}`;
  try {
    const first = await newWindow(browser, url);
    const page = first.page;
    await check(page, "plain folder: the extension does not activate, no status item, no server", async () => {
      await waitUntil(() => startupFinished(cs.dir), "the window's startup to finish (onStartupFinished activations)", 90_000);
      const act = activations(cs.dir, EXT_ID);
      if (act.length) {
        throw new Error(`activated anyway: ${act.join(" | ")}`);
      }
      if ((await tetherStatusItem(page).count()) !== 0) {
        throw new Error(`a Tether status item is shown: ${await statusItemText(page)}`);
      }
      const servers = tetherServers(cs.pid);
      if (servers.length) {
        throw new Error(`tether lsp runs: ${servers.map((s) => s.argv.join(" ")).join("; ")}`);
      }
      await openFile(page, "notes.txt");
      await screenshot(page, "plain-not-activated");
    });
    await check(page, "plain folder: Tether: Track this folder starts it and remembers the opt-in", async () => {
      await focusWorkbench(page);
      await runCommand(page, "Tether: Track this folder");
      await tetherStatusItem(page).waitFor({ timeout: 60_000 });
      await waitStatus(page, /no checkpoint yet|just now|ago/);
      const act = activations(cs.dir, EXT_ID);
      if (!act.some((l) => l.includes("activationEvent: 'onCommand:tether.trackFolder'"))) {
        throw new Error(`not activated by the command: ${JSON.stringify(act)}`);
      }
      const servers = await waitUntil(() => {
        const s = tetherServers(cs.pid);
        return s.length ? s : undefined;
      }, "a tether lsp process");
      if (servers.length !== 1 || servers[0].cwd !== folder) {
        throw new Error(`expected one server in ${folder}: ${JSON.stringify(servers)}`);
      }
      const written = JSON.parse(fs.readFileSync(path.join(folder, ".vscode/settings.json"), "utf8"));
      if (written["tether.track"] !== "always") {
        throw new Error(`.vscode/settings.json: ${JSON.stringify(written)}`);
      }
      await screenshot(page, "plain-tracked-by-command");
    });
    // (code-server keeps the closed window's extension host, and its server, for a while: a second
    // editor on the same workspace is a case the server handles.)
    await first.ctx.close();
    const known = exthostLogs(cs.dir);
    const second = await newWindow(browser, url);
    await check(second.page, "plain folder opted in: a new window tracks it by itself", async () => {
      await tetherStatusItem(second.page).waitFor({ timeout: 60_000 });
      // The server runs (the first window's may still be alive: two editors on one workspace).
      await waitStatus(second.page, /no checkpoint yet|just now|ago|Resume agent session/);
      const act = newActivations(cs.dir, EXT_ID, known);
      if (!act.some((l) => l.includes("activationEvent: 'workspaceContains:.vscode/settings.json'"))) {
        throw new Error(`not activated by the opt-in: ${JSON.stringify(act)}`);
      }
      await screenshot(second.page, "plain-new-window-tracked");
    });
    await second.ctx.close();
  } finally {
    await cs.kill();
    keepLogs(cs, "ws-plain");
  }
}

async function multiRoot(browser: Browser, dirs: RunDirs, vsix: string): Promise<void> {
  const base = path.join(dirs.root, "multi");
  const api = path.join(base, "api");
  const web = path.join(base, "web");
  const notes = path.join(base, "notes");
  for (const d of [api, web, notes]) {
    fs.mkdirSync(d, { recursive: true });
  }
  gitInit(api);
  gitInit(web);
  fs.writeFileSync(path.join(api, "server.py"), "def handler():\n    return 1\n");
  fs.writeFileSync(path.join(web, "index.ts"), "export const n = 1;\n");
  fs.writeFileSync(path.join(notes, "ideas.md"), "# ideas\n");
  const wsFile = path.join(base, "multi.code-workspace");
  fs.writeFileSync(wsFile, JSON.stringify({ folders: [{ path: "api" }, { path: "web" }, { path: "notes" }] }, null, 1));
  const cs = await startCodeServer({
    dir: path.join(dirs.root, "cs-multi"),
    workspace: wsFile,
    env: { TETHER_STATE_DIR: dirs.stateDir, TETHER_TMUX_SOCKET: dirs.tmuxSocket },
    settings,
    vsix,
  });
  try {
    const { ctx, page } = await newWindow(browser, `${cs.url}/?workspace=${encodeURIComponent(wsFile)}`);
    await check(page, "multi-root: one server per repository folder, none for the plain folder", async () => {
      await tetherStatusItem(page).waitFor({ timeout: 60_000 });
      const servers = await waitUntil(() => {
        const s = tetherServers(cs.pid);
        return s.length >= 2 ? s : undefined;
      }, "two tether lsp processes", 60_000);
      const cwds = servers.map((s) => s.cwd).sort();
      if (JSON.stringify(cwds) !== JSON.stringify([api, web])) {
        throw new Error(`servers run in ${JSON.stringify(cwds)}`);
      }
    });
    await check(page, "multi-root: the status bar names the active editor's folder", async () => {
      await focusWorkbench(page);
      await openFile(page, "server.py");
      // Each server's own baseline checkpoint: #1 in each folder.
      await waitStatus(page, /^api: #1 · /);
      await screenshot(page, "multi-api");
      await openFile(page, "index.ts");
      await waitStatus(page, /^web: #1 · /);
    });
    await check(page, "multi-root: a save checkpoints its own folder only", async () => {
      await page.keyboard.press("Control+End");
      await page.keyboard.type("export const m = 2;\n");
      await page.keyboard.press("Control+S");
      await waitStatus(page, /^web: #2 · just now · 1 file$/, 30_000);
      await screenshot(page, "multi-web-saved");
      await tab(page, "server.py").click();
      await waitStatus(page, /^api: #1 · /);
    });
    await check(page, "multi-root: the plain folder says Tether is off there", async () => {
      await openFile(page, "ideas.md");
      await waitStatus(page, /^notes: off$/);
      await tetherStatusItem(page).locator(".codicon-circle-slash").waitFor({ timeout: 10_000 });
      await screenshot(page, "multi-notes-off");
    });
    await ctx.close();
  } finally {
    await cs.kill();
    keepLogs(cs, "ws-multi");
  }
}

async function notInstalled(browser: Browser, dirs: RunDirs, vsix: string): Promise<void> {
  const folder = path.join(dirs.root, "project");
  fs.mkdirSync(folder);
  gitInit(folder);
  fs.writeFileSync(path.join(folder, "main.py"), "print('hi')\n");
  // A PATH without any `tether` (the harness's own venv may be on it).
  const pathNoTether = (process.env.PATH ?? "")
    .split(path.delimiter)
    .filter((d) => d && !fs.existsSync(path.join(d, "tether")))
    .join(path.delimiter);
  const cs = await startCodeServer({
    dir: path.join(dirs.root, "cs-missing"),
    workspace: folder,
    env: { TETHER_STATE_DIR: dirs.stateDir, TETHER_TMUX_SOCKET: dirs.tmuxSocket, PATH: pathNoTether },
    settings: { "tether.trace.server": "messages" },
    vsix,
  });
  try {
    const { ctx, page } = await newWindow(browser, `${cs.url}/?folder=${encodeURIComponent(folder)}`, true);
    const offer = toast(page, /the `tether` command is not installed/);
    let command = "";
    await check(page, "no tether: the error offers the install command; the status bar says not installed", async () => {
      await offer.waitFor({ timeout: 60_000 });
      await waitStatus(page, /^Tether: not installed$/);
      const text = (await offer.innerText()).replace(/\s+/g, " ");
      const m = /Install it with (pipx install "git\+\S+")/.exec(text);
      if (!m) {
        throw new Error(`no install command in ${JSON.stringify(text)}`);
      }
      command = m[1];
      for (const b of ["Copy install command", "Install instructions", "Locate tether…"]) {
        await offer.locator(".monaco-button", { hasText: b }).waitFor({ timeout: 5_000 });
      }
      await screenshot(page, "missing-offer");
    });
    await check(page, "no tether: Copy install command puts it on the clipboard", async () => {
      await offer.locator(".monaco-button", { hasText: "Copy install command" }).click();
      const copied = toast(page, /copied `pipx install/);
      await copied.waitFor({ timeout: 15_000 });
      const clip = await page.evaluate(() => navigator.clipboard.readText());
      if (clip !== command) {
        throw new Error(`clipboard has ${JSON.stringify(clip)}, expected ${JSON.stringify(command)}`);
      }
      await screenshot(page, "missing-copied");
      await copied.locator(".monaco-button", { hasText: "Type it in a terminal" }).click();
      await page.locator(".part.panel .xterm-rows", { hasText: "pipx install" }).first().waitFor({ timeout: 20_000 });
      await screenshot(page, "missing-typed-in-terminal");
    });
    await check(page, "no tether: Install instructions open the README", async () => {
      await focusWorkbench(page);
      await runCommand(page, "Tether: Install the tether command…");
      const again = toast(page, /the `tether` command is not installed/);
      await again.locator(".monaco-button", { hasText: "Install instructions" }).click();
      await page.locator(".tabs-container .tab", { hasText: /Preview (README|readme)\.md/ }).first().waitFor({ timeout: 20_000 });
      // The preview (a webview) shows the README's install section, not "cannot be found".
      const preview = page.frameLocator("iframe.webview.ready").frameLocator("#active-frame");
      await preview.locator("body", { hasText: "pipx install" }).waitFor({ timeout: 20_000 });
      await screenshot(page, "missing-instructions");
    });
    await check(page, "no tether: setting tether.serverPath recovers", async () => {
      const machine = path.join(cs.dir, "user-data/Machine/settings.json");
      fs.writeFileSync(machine, JSON.stringify({ ...settings }, null, 1));
      await waitStatus(page, /no checkpoint yet|just now|ago/, 60_000);
    });
    await ctx.close();
  } finally {
    await cs.kill();
    keepLogs(cs, "ws-missing");
  }
}

async function main(): Promise<number> {
  const vsix = process.argv[2] ? path.resolve(process.argv[2]) : "";
  const missing = checkTools();
  if (!vsix || !fs.existsSync(vsix)) {
    missing.push(`the extension package (usage: run-workspace-tests.js path/to/tether.vsix; got ${JSON.stringify(vsix)})`);
  }
  if (missing.length) {
    console.error(`missing: ${missing.join(", ")}`);
    console.log("0 passed, 1 failed");
    return 1;
  }
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  for (const f of fs.readdirSync(ARTIFACTS_DIR)) {
    if (f.startsWith("ws-")) {
      fs.rmSync(path.join(ARTIFACTS_DIR, f));
    }
  }
  const dirs = makeRunDirs("tether-ws", { git: false });
  log("run dir", dirs.root);
  let browser: Browser | undefined;
  try {
    browser = await launchBrowser(dirs.root);
    const only = process.env.TETHER_WS_ONLY;
    for (const [name, fn] of [
      ["plain", notAProject],
      ["multi", multiRoot],
      ["missing", notInstalled],
    ] as const) {
      if (!only || only === name) {
        await fn(browser, dirs, vsix).catch((e) => results.fail(`${name}: harness`, e instanceof Error ? e.stack ?? e.message : String(e)));
      }
    }
  } finally {
    await browser?.close().catch(() => undefined);
    killPrivateTmux(dirs.tmuxSocket, dirs.tmuxDir);
    if (!process.env.TETHER_KEEP_RUN_DIR) {
      fs.rmSync(dirs.root, { recursive: true, force: true });
    }
  }
  log(`screenshots in ${ARTIFACTS_DIR}`);
  console.log(results.summaryLine());
  return results.failed === 0 && results.passed > 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    console.log("0 passed, 1 failed");
    process.exit(1);
  },
);
