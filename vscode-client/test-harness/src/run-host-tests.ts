// Runs the mocha suite (src/suite) INSIDE the real VS Code extension host of code-server, with the
// extension loaded from source (extensionDevelopmentPath) and the real `tether lsp`.
// The smoke-test driver lets the page URL carry extensionDevelopmentPath/extensionTestsPath.
import * as fs from "fs";
import * as path from "path";
import * as util from "util";
import { Browser } from "playwright-core";
import { launchBrowser, newPage } from "./lib/browser";
import { CodeServer, startCodeServer } from "./lib/codeserver";
import { ARTIFACTS_DIR, checkTools, EXT_DIR, HARNESS_DIR, log, makeRunDirs, TETHER_BIN } from "./lib/env";
import { copyExtensionLogs } from "./lib/logs";
import { killPrivateTmux } from "./lib/tmux";

const TIMEOUT_MS = Number(process.env.TETHER_HOST_TESTS_TIMEOUT_MS ?? 240_000);

async function main(): Promise<number> {
  const missing = checkTools();
  if (missing.length) {
    console.error(`missing tools: ${missing.join(", ")} — run vscode-client/test-harness/install-tools.sh`);
    console.log("0 passed, 1 failed");
    return 1;
  }
  const extMain = path.join(EXT_DIR, "dist/extension.js");
  const suite = path.join(HARNESS_DIR, "out/suite/index.js");
  for (const f of [extMain, suite]) {
    if (!fs.existsSync(f)) {
      console.error(`not built: ${f} (npm run build in vscode-client and in test-harness)`);
      console.log("0 passed, 1 failed");
      return 1;
    }
  }
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const dirs = makeRunDirs("tether-host");
  fs.mkdirSync(path.join(dirs.workspace, "src"));
  fs.writeFileSync(path.join(dirs.workspace, "src/app.py"), 'print("hello")\n');
  fs.writeFileSync(path.join(dirs.workspace, "notes.md"), "# notes\n");
  log("run dir", dirs.root);

  let cs: CodeServer | undefined;
  let browser: Browser | undefined;
  let result: { passed: number; failed: number } | "timeout" = "timeout";
  const consoleLines: string[] = [];
  try {
    cs = await startCodeServer({
      dir: path.join(dirs.root, "cs"),
      workspace: dirs.workspace,
      env: {
        TETHER_STATE_DIR: dirs.stateDir,
        TETHER_TMUX_SOCKET: dirs.tmuxSocket,
        TETHER_TEST_WORKSPACE: dirs.workspace,
        TETHER_TEST_BIN: TETHER_BIN,
      },
      settings: { "tether.serverPath": TETHER_BIN, "tether.trace.server": "messages" },
      smokeTestDriver: true,
    });
    browser = await launchBrowser(dirs.root);
    const page = await newPage(browser);
    let finish: (r: { passed: number; failed: number }) => void = () => undefined;
    const finished = new Promise<{ passed: number; failed: number }>((r) => (finish = r));
    page.on("console", async (m) => {
      let vals: unknown[];
      try {
        vals = await Promise.all(m.args().map((a) => a.jsonValue()));
      } catch {
        vals = [m.text()];
      }
      // extension-host console lines arrive as ['%c INFO', 'color: #33f', fmt, ...args]
      if (typeof vals[0] === "string" && /^%c (INFO|WARN|ERROR|DEBUG|TRACE)/.test(vals[0])) {
        vals = vals.slice(2);
      }
      const text = util.format(...vals);
      consoleLines.push(`${m.type()}: ${text}`);
      if (m.text().startsWith("%c ")) {
        console.log("  exthost>", text);
      }
      const mm = text.match(/TETHER-HOST-TESTS-DONE passed=(\d+) failed=(\d+)/);
      if (mm) {
        finish({ passed: Number(mm[1]), failed: Number(mm[2]) });
      }
    });
    const payload = [
      ["extensionDevelopmentPath", `vscode-remote://${cs.authority}${EXT_DIR}`],
      ["extensionTestsPath", `vscode-remote://${cs.authority}${suite}`],
    ];
    await page.goto(
      `${cs.url}/?folder=${encodeURIComponent(dirs.workspace)}&payload=${encodeURIComponent(JSON.stringify(payload))}`,
    );
    let timer: NodeJS.Timeout | undefined;
    result = await Promise.race([
      finished,
      new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
    await page.screenshot({ path: path.join(ARTIFACTS_DIR, "host-tests-final.png") }).catch(() => undefined);
  } catch (e) {
    log("ERROR", e instanceof Error ? e.stack : e);
  } finally {
    fs.writeFileSync(path.join(ARTIFACTS_DIR, "host-tests-browser-console.log"), consoleLines.join("\n"));
    await browser?.close().catch(() => undefined);
    if (cs) {
      await cs.kill();
      fs.copyFileSync(path.join(cs.dir, "code-server.log"), path.join(ARTIFACTS_DIR, "host-tests-code-server.log"));
      copyExtensionLogs(cs.dir, "host-tests");
    }
    killPrivateTmux(dirs.tmuxSocket, dirs.tmuxDir);
    if (!process.env.TETHER_KEEP_RUN_DIR) {
      fs.rmSync(dirs.root, { recursive: true, force: true });
    }
  }
  if (result === "timeout") {
    log(`the suite did not report within ${TIMEOUT_MS} ms`);
    console.log("0 passed, 1 failed");
    return 1;
  }
  console.log(`${result.passed} passed, ${result.failed} failed`);
  return result.failed === 0 && result.passed > 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    console.log("0 passed, 1 failed");
    process.exit(1);
  },
);
