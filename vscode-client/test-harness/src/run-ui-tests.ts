// UI tests in a real VS Code (code-server) driven by headless Chromium, with the packaged .vsix and
// the real `tether lsp` on a private state dir and tmux socket.
//
// Story: session A edits and saves a file, leaves unsaved text in another, records a step and
// checkpoints; then code-server A is SIGKILLed (no clean shutdown: editor, extension host and
// server die together). Session B is a fresh code-server with a NEW user-data dir (so VS Code's own
// hot exit cannot be what brings the text back) on the same workspace and Tether state:
// the status bar offers "Resume agent session"; the command reopens the files and restores the
// unsaved text; the timeline lists the checkpoints; the diff preview opens; a restore is confirmed
// in the modal dialog and puts the file back.
import * as fs from "fs";
import * as path from "path";
import { Browser, Page } from "playwright-core";
import { launchBrowser, newPage } from "./lib/browser";
import { CodeServer, startCodeServer } from "./lib/codeserver";
import { ARTIFACTS_DIR, checkTools, log, makeRunDirs, RunDirs, TETHER_BIN } from "./lib/env";
import { Results } from "./lib/results";
import { copyExtensionLogs } from "./lib/logs";
import { killPrivateTmux } from "./lib/tmux";
import {
  activeEditorText,
  escapeQuickInput,
  focusWorkbench,
  openFile,
  quickInput,
  quickInputBox,
  quickRows,
  runCommand,
  statusItemText,
  tab,
  tetherStatusItem,
  toast,
  waitForWorkbench,
} from "./lib/workbench";

const SAVED_APP = 'def main():\n    return 1\n';
const TYPED_SAVED = "# saved in session A";
const UNSAVED = "UNSAVED MARKER 42";
const AGENT_EDIT = "def main():\n    return 2  # AGENT EDIT\n";

const results = new Results();
let shot = 0;

async function screenshot(page: Page, name: string): Promise<void> {
  shot += 1;
  const file = path.join(ARTIFACTS_DIR, `ui-${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file }).catch((e) => log("screenshot failed", String(e)));
}

async function check(page: Page, name: string, fn: () => Promise<void>): Promise<boolean> {
  try {
    await fn();
    results.pass(name);
    return true;
  } catch (e) {
    results.fail(name, e instanceof Error ? e.message.split("\n")[0] : String(e));
    await screenshot(page, `FAILED-${name.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}`);
    await escapeQuickInput(page).catch(() => undefined);
    return false;
  }
}

/** Bounded wait on a Node-side condition (file contents), polling every 100 ms. */
async function waitUntil(cond: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
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

async function startSession(dirs: RunDirs, name: string, vsix: string): Promise<CodeServer> {
  return startCodeServer({
    dir: path.join(dirs.root, name),
    workspace: dirs.workspace,
    env: { TETHER_STATE_DIR: dirs.stateDir, TETHER_TMUX_SOCKET: dirs.tmuxSocket },
    settings: { "tether.serverPath": TETHER_BIN, "tether.trace.server": "messages" },
    vsix,
  });
}

async function openWorkbench(browser: Browser, cs: CodeServer, ws: string): Promise<Page> {
  const page = await newPage(browser);
  await page.goto(`${cs.url}/?folder=${encodeURIComponent(ws)}`);
  await waitForWorkbench(page);
  return page;
}

async function sessionA(browser: Browser, dirs: RunDirs, vsix: string): Promise<boolean> {
  const cs = await startSession(dirs, "cs-a", vsix);
  let ok = true;
  try {
    const page = await openWorkbench(browser, cs, dirs.workspace);
    ok &&= await check(page, "A: the status bar shows the Tether indicator", async () => {
      await tetherStatusItem(page).waitFor({ timeout: 60_000 });
      const text = await waitStatus(page, /no checkpoint yet|ago/);
      // $(sync~spin) while the server's baseline scan runs (state "busy"), then $(history)
      await tetherStatusItem(page)
        .locator(".codicon-history")
        .waitFor({ timeout: 30_000 })
        .catch(() => {
          throw new Error(`no $(history) icon in ${JSON.stringify(text)}`);
        });
      await screenshot(page, "a-startup");
    });
    ok &&= await check(page, "A: edit + save one file, leave unsaved text in another, record a step, checkpoint", async () => {
      await focusWorkbench(page);
      await openFile(page, "app.py");
      await page.keyboard.press("Control+End");
      await page.keyboard.type(TYPED_SAVED);
      await page.keyboard.press("Control+S");
      // At once: "checkpointing…", then the save's checkpoint by number.
      await waitStatus(page, /^checkpointing…$/, 5_000);
      await page.locator(".tabs-container .tab.active:not(.dirty)", { hasText: "app.py" }).waitFor({ timeout: 15_000 });
      await waitUntil(() => fs.readFileSync(path.join(dirs.workspace, "src/app.py"), "utf8").includes(TYPED_SAVED), "app.py saved");
      await waitStatus(page, /^#\d+ · just now · 1 file$/, 10_000);
      await screenshot(page, "a-saved");

      await openFile(page, "todo.txt");
      await page.keyboard.press("Control+End");
      await page.keyboard.type(UNSAVED);
      await page.locator(".tabs-container .tab.dirty", { hasText: "todo.txt" }).waitFor({ timeout: 15_000 });

      await runCommand(page, "Tether: Record step…");
      const answers = ["wrote main in app.py", "add tests; fix lint", "demo task for the UI test"];
      for (const [i, answer] of answers.entries()) {
        await page.locator(".quick-input-widget", { hasText: `record step (${i + 1}/3)` }).waitFor({ timeout: 10_000 });
        const box = quickInputBox(page);
        await box.fill(answer);
        await box.press("Enter");
      }
      await quickInput(page).waitFor({ state: "hidden", timeout: 10_000 });
      await toast(page, "add tests").waitFor({ timeout: 20_000 });

      await runCommand(page, "Tether: Checkpoint now");
      await page.locator(".part.statusbar", { hasText: /Tether: checkpoint #\d+/ }).waitFor({ timeout: 20_000 });
      await waitStatus(page, /just now|\ds ago/);
      await screenshot(page, "a-after-checkpoint");
    });
    ok &&= await check(page, "A: Tether: Start agent session opens a terminal attached to the tmux session", async () => {
      await focusWorkbench(page);
      await runCommand(page, "Tether: Start agent session");
      await page.locator(".part.panel", { hasText: /tether-/ }).first().waitFor({ timeout: 20_000 });
      await page.locator(".part.panel .xterm").first().waitFor({ timeout: 20_000 });
      // the terminal is a real tmux client: the status line of tmux shows up in it
      await page.locator(".part.panel .xterm-rows", { hasText: /\[tether-/ }).first().waitFor({ timeout: 20_000 });
      await screenshot(page, "a-agent-terminal");
    });
  } finally {
    log("killing code-server A (SIGKILL to its process group: no clean shutdown)");
    await cs.kill();
    fs.copyFileSync(path.join(cs.dir, "code-server.log"), path.join(ARTIFACTS_DIR, "ui-code-server-a.log"));
    copyExtensionLogs(cs.dir, "ui-a");
  }
  return ok;
}

async function sessionB(browser: Browser, dirs: RunDirs, vsix: string): Promise<void> {
  const cs = await startSession(dirs, "cs-b", vsix);
  try {
    const page = await openWorkbench(browser, cs, dirs.workspace);
    await check(page, "B: the status bar offers Resume agent session", async () => {
      await tetherStatusItem(page).waitFor({ timeout: 60_000 });
      await waitStatus(page, /Resume agent session/);
      if ((await tetherStatusItem(page).locator(".codicon-debug-restart").count()) < 1) {
        throw new Error("no $(debug-restart) icon");
      }
      await screenshot(page, "b-resume-offered");
    });
    await check(page, "B: Tether: Resume agent session reopens files and restores unsaved text", async () => {
      await focusWorkbench(page);
      await runCommand(page, "Tether: Resume agent session");
      await tab(page, "app.py").waitFor({ timeout: 20_000 });
      const todo = page.locator(".tabs-container .tab.dirty", { hasText: "todo.txt" }).first();
      await todo.waitFor({ timeout: 20_000 });
      await todo.click();
      await page.locator(".tabs-container .tab.active", { hasText: "todo.txt" }).waitFor({ timeout: 10_000 });
      const text = await activeEditorText(page);
      if (!text.includes(UNSAVED)) {
        throw new Error(`todo.txt editor does not show the unsaved text: ${JSON.stringify(text)}`);
      }
      const disk = fs.readFileSync(path.join(dirs.workspace, "todo.txt"), "utf8");
      if (disk.includes(UNSAVED)) {
        throw new Error("the unsaved text was written to disk");
      }
      await screenshot(page, "b-resumed");
    });
    await check(page, "B: resume reattaches the agent's tmux session in a terminal", async () => {
      await page.locator(".part.panel .xterm-rows", { hasText: /\[tether-/ }).first().waitFor({ timeout: 20_000 });
    });
    await check(page, "B: the next steps are shown after resume", async () => {
      await toast(page, "add tests").waitFor({ timeout: 20_000 });
    });
    await check(page, "B: after resume the indicator shows the last checkpoint again (no error)", async () => {
      await waitStatus(page, /^#\d+ · (just now|\d+[mhd] ago)( · \d+ files?)?$/, 20_000);
      await tetherStatusItem(page).locator(".codicon-history").waitFor({ timeout: 30_000 });
    });

    // An agent changes app.py on disk (not through the editor).
    const appPath = path.join(dirs.workspace, "src/app.py");
    const savedInA = fs.readFileSync(appPath, "utf8");
    fs.writeFileSync(appPath, AGENT_EDIT);

    await check(page, "B: Tether: Show timeline lists the checkpoints", async () => {
      await runCommand(page, "Tether: Show timeline");
      const rows = quickRows(page);
      await rows.filter({ hasText: "manual" }).first().waitFor({ timeout: 20_000 });
      const texts = await rows.allInnerTexts();
      if (!texts.some((t) => /#\d+ step/.test(t) && t.includes("wrote main in app.py"))) {
        throw new Error(`no step checkpoint in ${JSON.stringify(texts)}`);
      }
      if (!texts.some((t) => /#\d+ manual/.test(t) && /ago|just now/.test(t) && /files?/.test(t))) {
        throw new Error(`no manual checkpoint with time and files in ${JSON.stringify(texts)}`);
      }
      await screenshot(page, "b-timeline");
    });
    await check(page, "B: picking a checkpoint opens the diff preview", async () => {
      if (!(await quickRows(page).first().isVisible().catch(() => false))) {
        await runCommand(page, "Tether: Show timeline");
      }
      await quickRows(page).filter({ hasText: "manual" }).first().click();
      await quickRows(page).filter({ hasText: "Diff with workspace" }).first().click();
      // With several changed files a file picker comes first; with one the diff opens at once.
      const diffEditor = page.locator(".monaco-diff-editor").first();
      const filePicker = page.locator(".quick-input-widget", { hasText: "files differ from the workspace" });
      await diffEditor.or(filePicker).first().waitFor({ timeout: 20_000 });
      if (await filePicker.isVisible()) {
        await quickRows(page).filter({ hasText: "src/app.py" }).first().click();
      }
      await diffEditor.waitFor({ timeout: 20_000 });
      await page.locator(".tabs-container .tab.active", { hasText: /app\.py \(checkpoint #\d+ ↔ workspace\)/ }).waitFor({ timeout: 10_000 });
      // The checkpoint side is filled asynchronously by the content provider (tether.fileAt).
      const original = page.locator(".monaco-diff-editor .editor.original .view-lines").first();
      await page
        .locator(".monaco-diff-editor .editor.original .view-lines", { hasText: TYPED_SAVED })
        .first()
        .waitFor({ timeout: 15_000 })
        .catch(async () => {
          throw new Error(`the checkpoint side does not show the saved text: ${JSON.stringify(await original.innerText())}`);
        });
      await screenshot(page, "b-diff-preview");
    });
    await check(page, "B: Restore checkpoint… previews, asks, and restores the file", async () => {
      await focusWorkbench(page);
      await runCommand(page, "Tether: Restore checkpoint…");
      await quickRows(page).filter({ hasText: "manual" }).first().click();
      await page.locator(".quick-input-widget", { hasText: "files to restore" }).waitFor({ timeout: 20_000 });
      await quickRows(page).filter({ hasText: "src/app.py" }).first().waitFor({ timeout: 10_000 });
      await page.locator(".monaco-diff-editor").first().waitFor({ timeout: 20_000 });
      await screenshot(page, "b-restore-preview");
      await quickInputBox(page).press("Enter");
      const dialog = page.locator(".monaco-dialog-box");
      await dialog.waitFor({ timeout: 10_000 });
      await screenshot(page, "b-restore-confirm");
      await dialog.locator(".monaco-button", { hasText: /^Restore$/ }).click();
      await waitUntil(() => fs.readFileSync(appPath, "utf8") === savedInA, "src/app.py restored to the checkpoint");
      const restoredToast = toast(page, /restored \d+ files? from checkpoint #\d+/);
      await restoredToast.waitFor({ timeout: 15_000 });
      await screenshot(page, "b-restored");
    });
    await check(page, "B: Undo in the restore notification brings the agent's edit back", async () => {
      await toast(page, /restored \d+ files? from checkpoint #\d+/).locator(".monaco-button", { hasText: "Undo" }).click();
      await waitUntil(() => fs.readFileSync(appPath, "utf8") === AGENT_EDIT, "src/app.py back to the agent's edit");
      await toast(page, /restore undone/).waitFor({ timeout: 15_000 });
    });
    await check(page, "B: a server that cannot start shows an error with Show logs", async () => {
      // As a user would: point tether.serverPath (a machine setting) at nothing.
      const machineSettings = path.join(cs.dir, "user-data/Machine/settings.json");
      const saved = fs.readFileSync(machineSettings, "utf8");
      const bad = { ...JSON.parse(saved), "tether.serverPath": "/nonexistent/tether" };
      fs.writeFileSync(machineSettings, JSON.stringify(bad, null, 1));
      try {
        const err = toast(page, /tether\.serverPath is set to "\/nonexistent\/tether"/);
        await err.waitFor({ timeout: 30_000 });
        await waitStatus(page, /^Tether$/, 10_000);
        await tetherStatusItem(page).locator(".codicon-error").waitFor({ timeout: 10_000 });
        await screenshot(page, "b-server-error");
        await err.locator(".monaco-button", { hasText: "Show logs" }).click();
        await page.locator(".part.panel .monaco-editor .view-lines", { hasText: "not an executable file" }).first().waitFor({ timeout: 15_000 });
        await screenshot(page, "b-server-error-logs");
      } finally {
        fs.writeFileSync(machineSettings, saved);
      }
      // back to a running server (which may offer to resume the session it was cut off from)
      await waitStatus(page, /ago|no checkpoint yet|Resume agent session/, 60_000);
    });
  } finally {
    await cs.kill();
    fs.copyFileSync(path.join(cs.dir, "code-server.log"), path.join(ARTIFACTS_DIR, "ui-code-server-b.log"));
    copyExtensionLogs(cs.dir, "ui-b");
  }
}

async function main(): Promise<number> {
  const vsix = process.argv[2] ? path.resolve(process.argv[2]) : "";
  const missing = checkTools();
  if (!vsix || !fs.existsSync(vsix)) {
    missing.push(`the extension package (usage: run-ui-tests.js path/to/tether.vsix; got ${JSON.stringify(vsix)})`);
  }
  if (missing.length) {
    console.error(`missing: ${missing.join(", ")}`);
    console.log("0 passed, 1 failed");
    return 1;
  }
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  for (const f of fs.readdirSync(ARTIFACTS_DIR)) {
    if (f.startsWith("ui-")) {
      fs.rmSync(path.join(ARTIFACTS_DIR, f));
    }
  }
  const dirs = makeRunDirs("tether-ui");
  fs.mkdirSync(path.join(dirs.workspace, "src"));
  fs.writeFileSync(path.join(dirs.workspace, "src/app.py"), SAVED_APP);
  fs.writeFileSync(path.join(dirs.workspace, "todo.txt"), "- buy milk\n");
  log("run dir", dirs.root);
  let browser: Browser | undefined;
  try {
    browser = await launchBrowser(dirs.root);
    const aOk = await sessionA(browser, dirs, vsix);
    if (aOk) {
      await sessionB(browser, dirs, vsix);
    } else {
      results.fail("B: session B", "skipped because session A failed");
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
