// The extension in the real VS Code extension host, against the real `tether lsp` (private state
// dir and tmux socket come from the runner's environment).
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as vscode from "vscode";
import type { TetherApi } from "../../../src/extension";
import { CHECKPOINT_SCHEME, checkpointUri } from "../../../src/checkpoints";
import { CheckpointInfo, CMD_RESTORE, CMD_STEP, RestoreResult, ResumeResult, StartSessionResult } from "../../../src/protocol";

const EXT_ID = "tether.tether";

/** Bounded wait for a condition (no fixed sleeps): polls every 50 ms up to timeoutMs. */
async function waitFor<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) {
        return v;
      }
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Awaits a promise, failing after timeoutMs instead of hanging. */
async function within<T>(p: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function ws(): vscode.Uri {
  const f = vscode.workspace.workspaceFolders?.[0];
  assert.ok(f, "the runner opens a workspace folder");
  return f.uri;
}

function rel(p: string): vscode.Uri {
  return vscode.Uri.joinPath(ws(), p);
}

function allTabs(): vscode.Tab[] {
  return vscode.window.tabGroups.all.flatMap((g) => g.tabs);
}

async function closeAllReverting(): Promise<void> {
  // Revert first so no "save changes?" dialog can block the test.
  for (const doc of vscode.workspace.textDocuments) {
    if (doc.isDirty && doc.uri.scheme === "file") {
      await vscode.window.showTextDocument(doc);
      await vscode.commands.executeCommand("workbench.action.revertAndCloseActiveEditor");
    }
  }
  await vscode.commands.executeCommand("workbench.action.closeAllEditors");
}

export function defineExtensionTests(): void {
  describe("Tether extension in the real extension host", function () {
    this.timeout(60_000);
    let api: TetherApi;

    before(async function () {
      this.timeout(90_000);
      const ext = vscode.extensions.getExtension<TetherApi>(EXT_ID);
      assert.ok(ext, `${EXT_ID} not loaded`);
      api = await ext.activate();
      await waitFor(() => api.manager.running, "the language server to run", 60_000);
      await api.whenStatus(() => true, 30_000);
    });

    after(async () => {
      await closeAllReverting();
    });

    it("contributes its commands under the Tether category and registers them", async () => {
      const ext = vscode.extensions.getExtension(EXT_ID)!;
      const contributed: { command: string; category: string; title: string }[] = ext.packageJSON.contributes.commands;
      const titles = contributed.map((c) => `${c.category}: ${c.title}`);
      for (const t of [
        "Tether: Resume agent session",
        "Tether: Checkpoint now",
        "Tether: Show timeline",
        "Tether: Restore checkpoint…",
        "Tether: Record step…",
        "Tether: Start agent session",
        "Tether: Restart server",
      ]) {
        assert.ok(titles.includes(t), `missing ${t}`);
      }
      const registered = await vscode.commands.getCommands(true);
      for (const c of contributed) {
        assert.ok(registered.includes(c.command), `${c.command} not registered`);
      }
      // The server's own commands are sent to the folder's server, never registered as VS Code
      // commands (a second folder's server would clash with the first's).
      assert.ok(!registered.includes("tether.resume"));
      assert.ok(!registered.includes("tether.fileAt"));
      assert.ok(api.manager.running, "the server still runs");
    });

    it("shows the status indicator from tether/status", () => {
      const s = api.lastStatus();
      assert.ok(s, "no tether/status received");
      assert.strictEqual(s.workspace.replace(/\/+$/, ""), ws().fsPath);
      const v = api.indicator();
      assert.match(v.text, /^\$\((history|debug-restart|sync~spin)\) /, v.text);
    });

    it("Checkpoint now writes a manual checkpoint and the indicator follows", async () => {
      fs.writeFileSync(rel("notes.md").fsPath, "# notes\nversion one\n");
      const cp = await vscode.commands.executeCommand<CheckpointInfo>("tether.checkpointNow", "host test v1");
      assert.ok(cp, "command returned nothing (see the error notification)");
      assert.strictEqual(cp.trigger, "manual");
      assert.strictEqual(cp.message, "host test v1");
      const s = await api.whenStatus((x) => x.lastCheckpoint?.id === cp.id && !x.checkpointing);
      assert.match(api.indicator().text, new RegExp(`^\\$\\(history\\) #${cp.id} · just now( · \\d+ files?)?$`), api.indicator().text);
      assert.ok(s.lastCheckpoint);
      const tl = await api.ui.timeline();
      assert.strictEqual(tl[0]?.id, cp.id, "newest first");
      assert.ok(tl.some((c) => c.id === cp.id && c.message === "host test v1"));
    });

    it("shows checkpoint contents in a read-only document and opens a diff preview", async () => {
      const cp = await vscode.commands.executeCommand<CheckpointInfo>("tether.checkpointNow", "before v2");
      assert.ok(cp);
      fs.writeFileSync(rel("notes.md").fsPath, "# notes\nversion two\n");
      const doc = await vscode.workspace.openTextDocument(checkpointUri("notes.md", cp.id));
      assert.strictEqual(doc.getText(), "# notes\nversion one\n");
      assert.strictEqual(doc.uri.scheme, CHECKPOINT_SCHEME);
      // No file system provider backs the scheme: it cannot be written.
      await assert.rejects(
        Promise.resolve(vscode.workspace.fs.writeFile(doc.uri, Buffer.from("x"))),
        "checkpoint documents must not be writable",
      );
      const files = await waitFor(async () => {
        const f = await api.ui.previewRestore(cp.id);
        return f.length ? f : undefined;
      }, "the restore dry run to see notes.md changed");
      assert.deepStrictEqual(
        files.map((f) => [f.path, f.status]),
        [["notes.md", "modified"]],
      );
      const diffTab = await waitFor(
        () =>
          allTabs().find(
            (t) =>
              t.input instanceof vscode.TabInputTextDiff &&
              t.input.original.scheme === CHECKPOINT_SCHEME &&
              t.input.modified.fsPath === rel("notes.md").fsPath,
          ),
        "the diff preview tab",
      );
      assert.match(diffTab.label, new RegExp(`checkpoint #${cp.id}`));
    });

    it("shows a placeholder, not bytes, for a binary file in a checkpoint", async () => {
      fs.writeFileSync(rel("logo.bin").fsPath, Buffer.from([0, 1, 2, 255, 0, 137, 80, 78, 71]));
      const cp = await vscode.commands.executeCommand<CheckpointInfo>("tether.checkpointNow", "with a binary file");
      assert.ok(cp);
      const doc = await vscode.workspace.openTextDocument(checkpointUri("logo.bin", cp.id));
      assert.strictEqual(doc.getText(), `(binary file logo.bin at checkpoint #${cp.id}: not shown)`);
      const missing = await vscode.workspace.openTextDocument(checkpointUri("never-existed.txt", cp.id));
      assert.strictEqual(missing.getText(), "", "a file absent from the checkpoint shows as empty");
    });

    it("restores a checkpoint (after a checkpoint of its own) and can undo it", async () => {
      const tl = await api.ui.timeline();
      const target = tl.find((c) => c.message === "before v2");
      assert.ok(target);
      fs.writeFileSync(rel("notes.md").fsPath, "# notes\nversion three\n");
      const res = await api.exec<RestoreResult>(CMD_RESTORE, { checkpoint: target.id, paths: ["notes.md"], dryRun: false });
      assert.strictEqual(res.dryRun, false);
      assert.strictEqual(fs.readFileSync(rel("notes.md").fsPath, "utf8"), "# notes\nversion one\n");
      assert.ok(res.undoCheckpoint !== null, "a restore is checkpointed first");
      await api.exec<RestoreResult>(CMD_RESTORE, { checkpoint: res.undoCheckpoint, paths: ["notes.md"], dryRun: false });
      assert.strictEqual(fs.readFileSync(rel("notes.md").fsPath, "utf8"), "# notes\nversion three\n");
    });

    it("reports a clear error for a checkpoint that does not exist", async () => {
      await assert.rejects(api.exec(CMD_RESTORE, { checkpoint: 99999, dryRun: true }), (e: Error) => {
        assert.ok(e.message.length > 0);
        return true;
      });
      // through the command: no exception escapes, the user gets a message, nothing is returned
      const r = await vscode.commands.executeCommand("tether.restoreCheckpoint", 99999);
      assert.strictEqual(r, undefined);
    });

    it("a save shows checkpointing… at once, then the save's checkpoint", async () => {
      await closeAllReverting();
      fs.writeFileSync(rel("saved.txt").fsPath, "first\n");
      const doc = await vscode.workspace.openTextDocument(rel("saved.txt"));
      const editor = await vscode.window.showTextDocument(doc, { preview: false });
      await editor.edit((eb) => eb.insert(new vscode.Position(0, 0), "saved by the host test\n"));
      const before = api.lastStatus()?.lastCheckpoint?.id ?? 0;
      const shown: string[] = [];
      const seen = new Promise<void>((resolve) => {
        const timer = setInterval(() => {
          shown.push(api.indicator().text);
          if (api.lastStatus()?.lastCheckpoint?.trigger === "save" && (api.lastStatus()?.lastCheckpoint?.id ?? 0) > before) {
            clearInterval(timer);
            resolve();
          }
        }, 10);
      });
      await doc.save();
      await within(seen, 15_000, "the save checkpoint");
      assert.ok(shown.includes("$(sync~spin) checkpointing…"), JSON.stringify([...new Set(shown)]));
      const s = await api.whenStatus((x) => !x.checkpointing && x.lastCheckpoint?.trigger === "save");
      assert.deepStrictEqual(s.lastCheckpoint?.files, ["saved.txt"]);
      assert.match(api.indicator().text, /^\$\(history\) #\d+ · just now · \d+ files?$/);
      await closeAllReverting();
    });

    it("after a server restart that lost nothing, no resume is offered", async function () {
      this.timeout(90_000);
      await closeAllReverting();
      const doc = await vscode.workspace.openTextDocument(rel("notes.md"));
      const editor = await vscode.window.showTextDocument(doc, { preview: false });
      await editor.edit((eb) => eb.insert(new vscode.Position(0, 0), "still unsaved\n"));
      await api.whenStatus((s) => s.dirtyBuffers >= 1, 15_000);
      await vscode.commands.executeCommand("tether.restartServer");
      await waitFor(() => api.manager.running, "the server to run again", 60_000);
      // The editor kept its tab and its unsaved text: nothing would come back.
      const s = await api.whenStatus((x) => x.state === "idle" && x.dirtyBuffers >= 1, 30_000);
      assert.strictEqual(s.resumeAvailable, false, JSON.stringify(s));
      assert.doesNotMatch(api.indicator().text, /Resume/);
      await closeAllReverting();
    });

    it("records a step and shows the next steps", async () => {
      const cp = await api.exec<CheckpointInfo>(CMD_STEP, {
        done: "host test step",
        next: ["write more tests", "fix lint"],
        task: "exercise the extension",
      });
      assert.strictEqual(cp.trigger, "step");
      const shown = await waitFor(() => {
        const n = api.lastNextSteps();
        return n && n.nextSteps.includes("write more tests") ? n : undefined;
      }, "tether/showNextSteps");
      assert.deepStrictEqual(shown.nextSteps, ["write more tests", "fix lint"]);
      assert.strictEqual(shown.task, "exercise the extension");
      await api.whenStatus((s) => s.nextStep === "write more tests");
      assert.match(api.indicator().tooltip, /Next step: write more tests/);
    });

    it("a resume before any tmux session existed says why no terminal came back", async () => {
      const res = await vscode.commands.executeCommand<ResumeResult>("tether.resumeSession");
      assert.ok(res, "resume failed (see the error notification)");
      assert.strictEqual(res.terminal, null);
      assert.match(res.noTerminal ?? "", /is not running and no snapshot of it was ever recorded/);
    });

    it("Start agent session opens an integrated terminal running the server's argv", async function () {
      const res = await vscode.commands.executeCommand<StartSessionResult>("tether.startAgentSession");
      assert.ok(res, "startSession failed (see the error notification)");
      assert.ok(res.argv.length > 0);
      const term = await waitFor(
        () =>
          vscode.window.terminals.find((t) => {
            const o = t.creationOptions as vscode.TerminalOptions;
            return o.shellPath === res.argv[0] && JSON.stringify(o.shellArgs) === JSON.stringify(res.argv.slice(1));
          }),
        "the tmux terminal",
      );
      assert.ok(term.name.length > 0);
      // a second request reuses the terminal by name instead of opening another
      const before = vscode.window.terminals.length;
      const handled = api.terminalRequests();
      await vscode.commands.executeCommand<StartSessionResult>("tether.startAgentSession");
      await waitFor(() => api.terminalRequests() > handled, "the second tether/openTerminal to be handled");
      assert.strictEqual(vscode.window.terminals.length, before);
      term.dispose();
    });

    it("after a server restart, Resume reopens files and restores unsaved text", async function () {
      this.timeout(90_000);
      await closeAllReverting();
      const doc = await vscode.workspace.openTextDocument(rel("src/app.py"));
      const editor = await vscode.window.showTextDocument(doc, { preview: false });
      await editor.edit((eb) => eb.insert(new vscode.Position(doc.lineCount, 0), "# unsaved edit from host test\n"));
      assert.ok(doc.isDirty);
      // the cursor goes to the server as tether/cursor (throttled; flushed before a command)
      let sub: vscode.Disposable | undefined;
      const moved = new Promise<void>((resolve) => {
        sub = vscode.window.onDidChangeTextEditorSelection((e) => {
          if (e.textEditor.document === doc && e.selections[0]?.active.line === 1) {
            resolve();
          }
        });
      });
      editor.selection = new vscode.Selection(1, 3, 1, 3);
      // the selection event comes back from the workbench asynchronously; the extension's
      // listener (registered at activation) has seen it once this one has
      await within(moved, 10_000, "the selection event");
      sub?.dispose();
      const cp = await vscode.commands.executeCommand<CheckpointInfo>("tether.checkpointNow", "with unsaved edit");
      assert.ok(cp);
      await api.whenStatus((s) => s.dirtyBuffers >= 1 && s.lastCheckpoint?.id === cp.id, 15_000);

      // The editor loses its server (as in a disconnect), then the buffers go away unsaved.
      await api.manager.stop();
      await closeAllReverting();
      assert.ok(!allTabs().some((t) => t.input instanceof vscode.TabInputText && t.input.uri.fsPath === doc.uri.fsPath));
      await api.manager.start();
      await waitFor(() => api.manager.running, "the server to run again", 60_000);
      await api.whenStatus((s) => s.resumeAvailable, 30_000);
      assert.strictEqual(api.indicator().text, "$(debug-restart) Resume agent session");

      const res = await vscode.commands.executeCommand<ResumeResult>("tether.resumeSession");
      assert.ok(res, "resume failed (see the error notification)");
      assert.ok(res.opened.includes("src/app.py"), JSON.stringify(res));
      assert.ok(res.restoredBuffers.includes("src/app.py"), JSON.stringify(res));
      const restored = await waitFor(
        () => vscode.workspace.textDocuments.find((d) => d.uri.fsPath === doc.uri.fsPath && d.isDirty),
        "src/app.py to be open and dirty",
      );
      assert.strictEqual(restored.getText(), 'print("hello")\n# unsaved edit from host test\n');
      assert.strictEqual(fs.readFileSync(doc.uri.fsPath, "utf8"), 'print("hello")\n', "the file on disk is untouched");
      assert.ok(allTabs().some((t) => t.input instanceof vscode.TabInputText && t.input.uri.fsPath === doc.uri.fsPath));
      await api.whenStatus((s) => !s.resumeAvailable, 15_000);
      const reopened = await vscode.window.showTextDocument(restored, { preview: false });
      assert.deepStrictEqual(
        [reopened.selection.active.line, reopened.selection.active.character],
        [1, 3],
        "the cursor is back where it was",
      );
    });

    it("serialises restarts: concurrent requests share one queued restart", async function () {
      this.timeout(90_000);
      const first = api.manager.restart();
      const second = api.manager.restart();
      const third = api.manager.restart();
      await Promise.all([first, second, third]);
      assert.ok(api.manager.running);
      await api.whenStatus(() => true, 30_000);
      assert.strictEqual(second, third, "requests made while one is queued share it");
    });

    it("shows a clear error when the server cannot start, and recovers", async function () {
      this.timeout(120_000);
      const cfg = vscode.workspace.getConfiguration("tether");
      const original = cfg.get<string>("serverPath");
      const bad = path.join(ws().fsPath, "no-such-dir", "tether");
      try {
        await cfg.update("serverPath", bad, vscode.ConfigurationTarget.Global);
        await waitFor(() => api.manager.lastError && !api.manager.running, "the start to fail", 30_000);
        assert.match(api.manager.lastError!, /tether\.serverPath is set to ".*no-such-dir\/tether"/);
        assert.strictEqual(api.indicator().text, "$(error) Tether");
        assert.strictEqual(api.indicator().command, "tether.showLogs");
        assert.strictEqual(api.indicator().background, "error");
        await assert.rejects(api.exec("tether.status"), /server is not running/);
      } finally {
        await cfg.update("serverPath", original, vscode.ConfigurationTarget.Global);
      }
      await waitFor(() => api.manager.running, "the server to run again", 60_000);
      await api.whenStatus(() => true, 30_000);
      assert.strictEqual(api.manager.lastError, undefined);
    });
  });
}
