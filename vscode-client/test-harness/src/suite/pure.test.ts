// The extension's pure parts, exercised inside the real extension host (they import `vscode`).
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { checkpointUri, parseCheckpointUri, timelineItem } from "../../../src/checkpoints";
import {
  agentResumeMessage,
  nextStepsMessage,
  normalizeNextSteps,
  validateOpenTerminal,
} from "../../../src/notifications";
import { Status } from "../../../src/protocol";
import { isStatus, resumeStatusMessage } from "../../../src/extension";
import { initializationOptions, resolveServerLaunch, ResolveInputs, ServerNotFoundError } from "../../../src/server";
import { relativeTime, renderIndicator } from "../../../src/status";

const NOW = Date.parse("2026-11-22T06:10:00Z");

function status(over: Partial<Status> = {}): Status {
  return {
    workspace: "/w",
    state: "idle",
    error: null,
    lastCheckpoint: { id: 7, time: "2026-11-22T06:08:00Z", trigger: "save", message: null, files: ["a.py"], parent: 6 },
    filesInProgress: 4,
    dirtyBuffers: 1,
    tmux: { session: "tether-w-1", alive: true },
    resumeAvailable: false,
    checkpointing: false,
    nextStep: "add tests",
    text: "#7 · 2m ago · 4 files",
    tooltip: "Checkpoint #7 (save), 2m ago: 1 file changed (a.py)\nFiles in progress: 4 (a.py, b.py, c.py, d.py)\nNext step: add tests",
    ...over,
  };
}

export function definePureTests(): void {
  describe("status indicator rendering", () => {
    it("formats relative times", () => {
      assert.strictEqual(relativeTime("2026-11-22T06:09:55Z", NOW), "just now");
      assert.strictEqual(relativeTime("2026-11-22T06:09:15Z", NOW), "45s ago");
      assert.strictEqual(relativeTime("2026-11-22T06:08:00Z", NOW), "2m ago");
      assert.strictEqual(relativeTime("2026-11-22T03:10:00Z", NOW), "3h ago");
      assert.strictEqual(relativeTime("2026-11-19T06:10:00Z", NOW), "3d ago");
      assert.strictEqual(relativeTime("not a time", NOW), "?");
    });

    it("shows the server's label: checkpoint number, age, files in progress", () => {
      const v = renderIndicator({ kind: "running", status: status() }, NOW);
      assert.strictEqual(v.text, "$(history) #7 · 2m ago · 4 files");
      assert.strictEqual(v.command, "tether.showTimeline");
      assert.match(v.tooltip, /^Tether\n/);
      assert.match(v.tooltip, /Checkpoint #7 \(save\), 2m ago: 1 file changed \(a\.py\)/);
      assert.match(v.tooltip, /Next step: add tests/);
      assert.strictEqual(v.background, undefined);
    });

    it("says checkpointing… with a spinner from the moment a save is noticed", () => {
      const v = renderIndicator({ kind: "running", status: status({ checkpointing: true, text: "checkpointing…" }) }, NOW);
      assert.strictEqual(v.text, "$(sync~spin) checkpointing…");
    });

    it("builds the same label from an older server's fields", () => {
      const old = status({ tooltip: undefined, text: "2m ago · 4 files" });
      assert.strictEqual(renderIndicator({ kind: "running", status: old }, NOW).text, "$(history) #7 · 2m ago · 4 files");
    });

    it("says when there is no checkpoint yet", () => {
      const v = renderIndicator({ kind: "running", status: status({ lastCheckpoint: null }) }, NOW);
      assert.strictEqual(v.text, "$(history) Tether: no checkpoint yet");
    });

    it("turns into the resume action when a session can be resumed", () => {
      const v = renderIndicator({ kind: "running", status: status({ resumeAvailable: true }) }, NOW);
      assert.strictEqual(v.text, "$(debug-restart) Resume agent session");
      assert.strictEqual(v.command, "tether.resumeSession");
    });

    it("spins while busy and shows errors", () => {
      assert.match(renderIndicator({ kind: "running", status: status({ state: "busy" }) }, NOW).text, /^\$\(sync~spin\)/);
      const err = renderIndicator({ kind: "running", status: status({ state: "error", error: "disk full" }) }, NOW);
      assert.strictEqual(err.background, "error");
      assert.match(err.tooltip, /disk full/);
      const failed = renderIndicator({ kind: "failed", message: "cannot find the server" }, NOW);
      assert.strictEqual(failed.text, "$(error) Tether");
      assert.strictEqual(failed.command, "tether.showLogs");
    });
  });

  describe("checkpoint URIs and timeline items", () => {
    it("round-trips a checkpoint URI and keeps the file name", () => {
      const u = checkpointUri("src/app.py", 12);
      assert.strictEqual(u.scheme, "tether-checkpoint");
      assert.ok(u.path.endsWith("/app.py"));
      assert.deepStrictEqual(parseCheckpointUri(u), { path: "src/app.py", checkpoint: 12 });
      assert.deepStrictEqual(parseCheckpointUri(checkpointUri("a b/ü.txt", "empty")), {
        path: "a b/ü.txt",
        checkpoint: "empty",
      });
    });

    it("rejects malformed checkpoint URIs", () => {
      const vscode = require("vscode") as typeof import("vscode");
      assert.strictEqual(parseCheckpointUri(vscode.Uri.parse("tether-checkpoint:/a.txt?checkpoint=abc")), undefined);
      assert.strictEqual(parseCheckpointUri(vscode.Uri.parse("tether-checkpoint:/a.txt?checkpoint=0")), undefined);
      assert.strictEqual(parseCheckpointUri(vscode.Uri.parse("tether-checkpoint:/?checkpoint=3")), undefined);
    });

    it("renders trigger, message, files and relative time", () => {
      const item = timelineItem(
        { id: 3, time: "2026-11-22T06:08:00Z", trigger: "step", message: "wrote tests", files: ["a", "b", "c", "d"], parent: 2 },
        NOW,
      );
      assert.strictEqual(item.label, "$(debug-step-over) #3 step");
      assert.strictEqual(item.description, "wrote tests");
      assert.strictEqual(item.detail, "2m ago · 4 files: a, b, c, …");
    });
  });

  describe("notification payload checks", () => {
    it("accepts a well-formed openTerminal and rejects bad ones", () => {
      assert.deepStrictEqual(validateOpenTerminal({ name: "t", argv: ["tmux", "attach"], cwd: "/w" }), {
        name: "t",
        argv: ["tmux", "attach"],
        cwd: "/w",
      });
      assert.strictEqual(typeof validateOpenTerminal(null), "string");
      assert.strictEqual(typeof validateOpenTerminal({ name: "t", argv: [] }), "string");
      assert.strictEqual(typeof validateOpenTerminal({ name: "t", argv: ["tmux", 3] }), "string");
      assert.strictEqual(typeof validateOpenTerminal({ name: "", argv: ["tmux"] }), "string");
      assert.strictEqual(typeof validateOpenTerminal({ name: "t", argv: ["tmux"], cwd: 5 }), "string");
    });

    it("normalises next steps and says them as a short numbered list, without tmux jargon", () => {
      const p = normalizeNextSteps({
        task: "wire up mul",
        nextSteps: ["import mul", "add test", "lint", "docs"],
        runs: "x",
        filesInProgress: [1],
        recentCommands: [{ where: "window shell", commands: ["make"] }, { where: 3 }],
        summary: "Task: wire up mul\nNext: import mul; add test\nRecent commands in shell.0: make",
      });
      assert.deepStrictEqual(p.runs, []);
      assert.deepStrictEqual(p.filesInProgress, []);
      assert.deepStrictEqual(p.recentCommands, [{ where: "window shell", commands: ["make"] }]);
      const msg = nextStepsMessage(p);
      assert.strictEqual(msg, "Tether · wire up mul — next: 1. import mul; 2. add test; 3. lint (+1 more)");
      assert.ok(!msg.includes("shell.0") && !msg.includes("Recent commands"));
      assert.strictEqual(nextStepsMessage(normalizeNextSteps(undefined)), "Tether — no next steps recorded.");
    });
  });

  describe("resume message", () => {
    it("fits the status bar: counts, not the tmux session name", () => {
      const msg = resumeStatusMessage({
        checkpoint: 12,
        opened: ["a.py", "b.py", "c.py"],
        restoredBuffers: ["a.py"],
        skippedBuffers: [],
        terminal: { session: "tether-a-very-long-project-name-1a2b3c", recreated: false },
        nextSteps: [],
      });
      assert.strictEqual(msg, "$(check) Tether: resumed #12 · 3 files · 1 unsaved · terminal back");
      assert.ok(!msg.includes("tether-a-very"));
    });
  });

  describe("agent panes on resume", () => {
    it("names the conversation each agent pane resumes", () => {
      const sid = "1b2c3d4e-0000-4000-8000-000000000001";
      const msg = agentResumeMessage([
        { window: 3, pane: "p1", agent: "claude", conversation: sid, action: "typed", command: ["claude"] },
        { window: 4, pane: "p2", agent: "aider", conversation: null, action: "ran", command: ["aider"] },
        { window: 5, agent: 7 },
        "junk",
      ]);
      assert.strictEqual(
        msg,
        `claude resumes conversation ${sid} (window 3: typed in its pane, press Enter to run); ` +
          "aider resumes its chat history (window 4: running)",
      );
      assert.strictEqual(agentResumeMessage(undefined), "");
      assert.strictEqual(agentResumeMessage([]), "");
    });
  });

  describe("payload and settings validation", () => {
    it("accepts a real Status and ignores malformed tether/status payloads", () => {
      assert.ok(isStatus(status()));
      assert.ok(!isStatus(null));
      assert.ok(!isStatus("idle"));
      assert.ok(!isStatus({ ...status(), resumeAvailable: "yes" }));
      assert.ok(!isStatus({ ...status(), filesInProgress: "4" }));
      assert.ok(!isStatus({ ...status(), lastCheckpoint: 7 }));
    });

    it("passes only valid settings as initializationOptions", async () => {
      const vscode = require("vscode") as typeof import("vscode");
      const cfg = vscode.workspace.getConfiguration("tether");
      const before = cfg.inspect<number>("checkpointIntervalSeconds")?.globalValue;
      try {
        await cfg.update("checkpointIntervalSeconds", 120, vscode.ConfigurationTarget.Global);
        assert.deepStrictEqual(initializationOptions(), { checkpointIntervalSeconds: 120 });
        await cfg.update("checkpointIntervalSeconds", -5, vscode.ConfigurationTarget.Global);
        assert.deepStrictEqual(initializationOptions(), {}, "a negative interval falls back to the server's default");
      } finally {
        await cfg.update("checkpointIntervalSeconds", before, vscode.ConfigurationTarget.Global);
      }
    });
  });

  describe("server launch resolution", () => {
    let dir: string;
    let fakeTether: string;
    let fakePython: string;
    const base = (over: Partial<ResolveInputs>): ResolveInputs => ({
      serverPath: "",
      pythonPath: "",
      workspaceFolder: dir,
      env: { PATH: "" },
      pythonExtensionInterpreter: async () => undefined,
      canImportTether: async () => false,
      ...over,
    });

    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "tether-launch-"));
      fs.mkdirSync(path.join(dir, "bin"));
      fakeTether = path.join(dir, "bin/tether");
      fakePython = path.join(dir, "bin/python3");
      for (const f of [fakeTether, fakePython]) {
        fs.writeFileSync(f, "#!/bin/sh\n", { mode: 0o755 });
      }
      fs.writeFileSync(path.join(dir, "bin/not-exec"), "", { mode: 0o644 });
    });

    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("prefers tether.serverPath, expanding ${workspaceFolder}", async () => {
      const l = await resolveServerLaunch(base({ serverPath: "${workspaceFolder}/bin/tether", pythonPath: fakePython }));
      assert.deepStrictEqual(l, { command: fakeTether, args: ["lsp"], source: "tether.serverPath" });
    });

    it("runs `python -m tether lsp` from tether.pythonPath", async () => {
      const l = await resolveServerLaunch(base({ pythonPath: fakePython }));
      assert.deepStrictEqual(l, { command: fakePython, args: ["-m", "tether", "lsp"], source: "tether.pythonPath" });
    });

    it("gives a clear error for a set but unusable setting instead of falling through", async () => {
      await assert.rejects(
        resolveServerLaunch(base({ serverPath: path.join(dir, "bin/not-exec"), env: { PATH: path.join(dir, "bin") } })),
        (e: Error) => e instanceof ServerNotFoundError && /tether\.serverPath.*not an executable/.test(e.message),
      );
      await assert.rejects(
        resolveServerLaunch(base({ pythonPath: "/nonexistent/python" })),
        /tether\.pythonPath is set to "\/nonexistent\/python"/,
      );
    });

    it("uses the Python extension's interpreter only when it can import tether", async () => {
      const withTether = await resolveServerLaunch(
        base({ pythonExtensionInterpreter: async () => fakePython, canImportTether: async () => true }),
      );
      assert.strictEqual(withTether.source, "Python extension");
      const without = await resolveServerLaunch(
        base({ pythonExtensionInterpreter: async () => fakePython, env: { PATH: path.join(dir, "bin") } }),
      );
      assert.deepStrictEqual(without, { command: fakeTether, args: ["lsp"], source: "PATH" });
    });

    it("survives a Python extension API that throws", async () => {
      const l = await resolveServerLaunch(
        base({
          pythonExtensionInterpreter: async () => {
            throw new Error("api changed");
          },
          env: { PATH: path.join(dir, "bin") },
        }),
      );
      assert.strictEqual(l.source, "PATH");
    });

    it("lists what it tried when nothing is found", async () => {
      await assert.rejects(resolveServerLaunch(base({})), (e: Error) => {
        assert.match(e.message, /cannot find the Tether language server/);
        assert.match(e.message, /`tether` on PATH \(not found\)/);
        assert.match(e.message, /pip install tether/);
        return true;
      });
    });
  });
}
