// The VS Code part of docs/getting-started.md, as a new user lives it: code-server with its own
// editor defaults (auto save after a delay, hot exit), the packaged .vsix, the real `tether lsp`
// on a private state dir and tmux socket. Every claim the guide makes about what the screen shows
// is checked here, and each step leaves a screenshot (artifacts/vscode/walk-*.png) to compare the
// guide's wording with.
//
// Story: open the project (status bar: the baseline checkpoint, its tooltip), start the agent
// session (a terminal on tmux), edit a file (code-server saves it by itself: "checkpointing…" then
// the checkpoint), record a step (next steps toast). Then the machine "reboots": code-server and
// the tmux server are SIGKILLed. A fresh code-server (new user data: VS Code's own hot exit cannot
// help) on the same project offers "Resume agent session"; clicking it reopens the file, recreates
// the tmux session in a terminal and shows the next steps.
import * as fs from "fs";
import * as path from "path";
import { Browser, Page } from "playwright-core";
import { launchBrowser, newPage } from "./lib/browser";
import { CodeServer, startCodeServer } from "./lib/codeserver";
import { ARTIFACTS_DIR, checkTools, log, makeRunDirs, RunDirs, TETHER_BIN } from "./lib/env";
import { copyExtensionLogs } from "./lib/logs";
import { Results } from "./lib/results";
import { killPrivateTmux } from "./lib/tmux";
import {
  focusWorkbench,
  norm,
  openFile,
  quickInputBox,
  runCommand,
  statusItemText,
  tab,
  tetherStatusItem,
  toast,
  waitForWorkbench,
} from "./lib/workbench";
import { execFileSync } from "child_process";

const results = new Results();
let shot = 0;

async function screenshot(page: Page, name: string): Promise<void> {
  shot += 1;
  const file = path.join(ARTIFACTS_DIR, `walk-${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file }).catch((e) => log("screenshot failed", String(e)));
}

async function step(page: Page, name: string, fn: () => Promise<void>): Promise<boolean> {
  try {
    await fn();
    results.pass(name);
    return true;
  } catch (e) {
    results.fail(name, e instanceof Error ? e.message.split("\n")[0] : String(e));
    await screenshot(page, `FAILED-${name.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}`);
    return false;
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

async function start(dirs: RunDirs, name: string, vsix: string): Promise<CodeServer> {
  return startCodeServer({
    dir: path.join(dirs.root, name),
    workspace: dirs.workspace,
    env: { TETHER_STATE_DIR: dirs.stateDir, TETHER_TMUX_SOCKET: dirs.tmuxSocket },
    settings: { "tether.serverPath": TETHER_BIN },
    vsix,
    editorDefaults: true,
  });
}

async function open(browser: Browser, cs: CodeServer, ws: string): Promise<Page> {
  const page = await newPage(browser);
  await page.goto(`${cs.url}/?folder=${encodeURIComponent(ws)}`);
  await waitForWorkbench(page);
  return page;
}

async function firstSession(browser: Browser, dirs: RunDirs, vsix: string): Promise<boolean> {
  const cs = await start(dirs, "cs-1", vsix);
  let ok = true;
  try {
    const page = await open(browser, cs, dirs.workspace);
    ok &&= await step(page, "opening the folder: the status bar shows the baseline checkpoint", async () => {
      await tetherStatusItem(page).waitFor({ timeout: 60_000 });
      await waitStatus(page, /^#1 · just now$/);
      await tetherStatusItem(page).locator(".codicon-history").waitFor({ timeout: 10_000 });
      await screenshot(page, "opened");
    });
    ok &&= await step(page, "its tooltip says which checkpoint and what is in progress", async () => {
      await tetherStatusItem(page).hover();
      const hover = page.locator(".workbench-hover, .monaco-hover").filter({ hasText: "Checkpoint #1" }).first();
      await hover.waitFor({ timeout: 10_000 });
      const text = norm(await hover.innerText());
      for (const want of ["Tether", "Checkpoint #1 (baseline)", "Files in progress: none", "Click to show the timeline"]) {
        if (!text.includes(want)) {
          throw new Error(`tooltip lacks ${JSON.stringify(want)}: ${JSON.stringify(text)}`);
        }
      }
      await screenshot(page, "tooltip");
      await page.mouse.move(700, 400);
    });
    ok &&= await step(page, "Tether: Start agent session opens a terminal on the tmux session", async () => {
      await focusWorkbench(page);
      await runCommand(page, "Tether: Start agent session");
      await page.locator(".part.panel .xterm-rows", { hasText: /\[tether-/ }).first().waitFor({ timeout: 30_000 });
      await screenshot(page, "agent-terminal");
    });
    ok &&= await step(page, "an edit is saved by code-server itself, then checkpointed (checkpointing… first)", async () => {
      await openFile(page, "app.py");
      await page.keyboard.press("Control+End");
      await page.keyboard.type("\ndef shout(name):\n    return greet(name).upper()\n");
      // No Ctrl+S: code-server's default files.autoSave is "afterDelay".
      await waitStatus(page, /^checkpointing…$/, 15_000);
      await screenshot(page, "checkpointing");
      await waitStatus(page, /^#2 · just now · 1 file$/, 15_000);
      if (!fs.readFileSync(path.join(dirs.workspace, "app.py"), "utf8").includes("def shout")) {
        throw new Error("app.py was not saved by auto save");
      }
      await screenshot(page, "auto-saved");
    });
    ok &&= await step(page, "Tether: Record step… shows the next steps as a short list", async () => {
      await focusWorkbench(page);
      await runCommand(page, "Tether: Record step…");
      const answers = ["wrote shout()", "test shout(); update the README", "add a shout() helper"];
      for (const [i, answer] of answers.entries()) {
        await page.locator(".quick-input-widget", { hasText: `record step (${i + 1}/3)` }).waitFor({ timeout: 10_000 });
        await quickInputBox(page).fill(answer);
        await quickInputBox(page).press("Enter");
      }
      const t = toast(page, "next: 1. test shout()");
      await t.waitFor({ timeout: 20_000 });
      const text = norm(await t.innerText());
      if (!text.includes("Tether · add a shout() helper — next: 1. test shout(); 2. update the README")) {
        throw new Error(`next steps toast: ${JSON.stringify(text)}`);
      }
      await waitStatus(page, /^#3 · just now · 1 file$/, 15_000);
      await screenshot(page, "next-steps");
    });
  } finally {
    log("the machine reboots: code-server and the tmux server are SIGKILLed");
    await cs.kill();
    copyExtensionLogs(cs.dir, "walk-1");
    try {
      const pid = execFileSync("tmux", ["-S", dirs.tmuxSocket, "display-message", "-p", "#{pid}"]).toString().trim();
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // no tmux server
    }
  }
  return ok;
}

async function secondSession(browser: Browser, dirs: RunDirs, vsix: string): Promise<void> {
  const cs = await start(dirs, "cs-2", vsix);
  try {
    const page = await open(browser, cs, dirs.workspace);
    await step(page, "reopening the folder: the status bar offers Resume agent session", async () => {
      await tetherStatusItem(page).waitFor({ timeout: 60_000 });
      await waitStatus(page, /^Resume agent session$/);
      await tetherStatusItem(page).locator(".codicon-debug-restart").waitFor({ timeout: 10_000 });
      await screenshot(page, "resume-offered");
    });
    await step(page, "clicking it reopens the file, recreates the terminal, shows the next steps", async () => {
      await tetherStatusItem(page).click();
      // The status bar message lasts 8 s: looked for first.
      await page.locator(".part.statusbar", { hasText: /Tether: resumed( #\d+)? · 1 file · terminal recreated/ }).waitFor({ timeout: 20_000 });
      await tab(page, "app.py").waitFor({ timeout: 30_000 });
      await page.locator(".part.panel .xterm-rows", { hasText: /\[tether-/ }).first().waitFor({ timeout: 30_000 });
      await toast(page, "next: 1. test shout()").waitFor({ timeout: 20_000 });
      await waitStatus(page, /^#\d+ · (just now|\dm ago) · 1 file$/, 20_000);
      await screenshot(page, "resumed");
    });
  } finally {
    await cs.kill();
    copyExtensionLogs(cs.dir, "walk-2");
  }
}

async function main(): Promise<number> {
  const vsix = process.argv[2] ? path.resolve(process.argv[2]) : "";
  const missing = checkTools();
  if (!vsix || !fs.existsSync(vsix)) {
    missing.push(`the extension package (usage: run-walkthrough.js path/to/tether.vsix; got ${JSON.stringify(vsix)})`);
  }
  if (missing.length) {
    console.error(`missing: ${missing.join(", ")}`);
    console.log("0 passed, 1 failed");
    return 1;
  }
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  for (const f of fs.readdirSync(ARTIFACTS_DIR)) {
    if (f.startsWith("walk-")) {
      fs.rmSync(path.join(ARTIFACTS_DIR, f));
    }
  }
  const dirs = makeRunDirs("tether-walk");
  fs.writeFileSync(path.join(dirs.workspace, "app.py"), 'def greet(name):\n    return "hello " + name\n');
  execFileSync("git", ["init", "-q", dirs.workspace]);
  log("run dir", dirs.root);
  let browser: Browser | undefined;
  try {
    browser = await launchBrowser(dirs.root);
    if (await firstSession(browser, dirs, vsix)) {
      await secondSession(browser, dirs, vsix);
    } else {
      results.fail("after the reboot", "skipped because the first session failed");
    }
  } catch (e) {
    results.fail("harness", e instanceof Error ? e.stack ?? e.message : String(e));
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
