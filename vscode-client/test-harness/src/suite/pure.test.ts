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
import { phaseSummary, relativeTime, renderIndicator } from "../../../src/status";
import { decideFolders, owningFolder, parseTrack, projectMarker, TrackSetting } from "../../../src/folders";
import { INSTALL_COMMAND, REPOSITORY_URL } from "../../../src/install";

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
        // Not installed at all (the user is offered the install command), unlike a bad setting.
        assert.ok(e instanceof ServerNotFoundError && e.notInstalled);
        return true;
      });
      await assert.rejects(resolveServerLaunch(base({ serverPath: "/nonexistent/tether" })), (e: Error) => {
        assert.ok(e instanceof ServerNotFoundError && !e.notInstalled);
        return true;
      });
    });
  });

  describe("which folders are tracked", () => {
    let dir: string;
    const mk = (...parts: string[]): string => {
      const p = path.join(dir, ...parts);
      fs.mkdirSync(p, { recursive: true });
      return p;
    };
    const folder = (fsPath: string, track: TrackSetting = "auto") => ({ key: `file://${fsPath}`, name: path.basename(fsPath), fsPath, track });
    const isProject = (p: string): boolean => projectMarker(p) !== undefined;

    before(() => {
      dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "tether-folders-")));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("finds the markers in the folder or a parent, and nothing in a plain folder", () => {
      const repo = mk("repo");
      mk("repo", ".git");
      assert.strictEqual(projectMarker(repo), path.join(repo, ".git"));
      assert.strictEqual(projectMarker(mk("repo", "packages", "web")), path.join(repo, ".git"));
      const agentOnly = mk("agent");
      fs.writeFileSync(path.join(agentOnly, ".agent-session.json"), "{}");
      assert.strictEqual(projectMarker(agentOnly), path.join(agentOnly, ".agent-session.json"));
      const exists = (p: string): boolean => p.startsWith(dir) && fs.existsSync(p);
      assert.strictEqual(projectMarker(mk("plain", "sub"), exists), undefined);
    });

    it("tracks every project folder of a multi-root workspace, not only the first", () => {
      const a = mk("multi", "api");
      const b = mk("multi", "web");
      const c = mk("multi", "notes");
      mk("multi", "api", ".git");
      mk("multi", "web", ".hg");
      const d = decideFolders([folder(a), folder(b), folder(c)], (p) => fs.existsSync(path.join(p, ".git")) || fs.existsSync(path.join(p, ".hg")));
      assert.deepStrictEqual(
        d.map((x) => [path.basename(x.key), x.tracked, x.reason]),
        [
          ["api", true, "project"],
          ["web", true, "project"],
          ["notes", false, "notProject"],
        ],
      );
    });

    it("honours tether.track per folder, and covers a nested folder by the outer one's server", () => {
      const outer = mk("nest", "outer");
      mk("nest", "outer", ".git");
      const inner = mk("nest", "outer", "inner");
      const plain = mk("nest", "plain");
      const d = decideFolders([folder(inner), folder(outer), folder(plain, "always"), folder(outer, "never")], isProject);
      assert.deepStrictEqual(d[0], { key: `file://${inner}`, tracked: false, reason: "nested", inside: `file://${outer}` });
      assert.deepStrictEqual(d[1], { key: `file://${outer}`, tracked: true, reason: "project" });
      assert.deepStrictEqual(d[2], { key: `file://${plain}`, tracked: true, reason: "setting" });
      assert.deepStrictEqual(d[3], { key: `file://${outer}`, tracked: false, reason: "setting" });
      assert.strictEqual(parseTrack("always"), "always");
      assert.strictEqual(parseTrack("sometimes"), "auto");
      assert.strictEqual(parseTrack(undefined), "auto");
    });

    it("routes a file to the folder whose server owns it", () => {
      const folders = [{ fsPath: "/w/api", n: 1 }, { fsPath: "/w/web", n: 2 }];
      assert.strictEqual(owningFolder("/w/api/src/a.py", folders)?.n, 1);
      assert.strictEqual(owningFolder("/w/web/index.ts", folders)?.n, 2);
      assert.strictEqual(owningFolder("/w/api-old/a.py", folders), undefined);
      assert.strictEqual(owningFolder("/elsewhere/a.py", folders), undefined);
    });
  });

  describe("multi-root indicator and the install offer", () => {
    it("names the folder it speaks of and summarises the others", () => {
      const v = renderIndicator({ kind: "running", status: status() }, NOW, {
        name: "api",
        path: "/w/api",
        others: ["web: Resume agent session"],
      });
      assert.strictEqual(v.text, "$(history) api: #7 · 2m ago · 4 files");
      assert.match(v.tooltip, /Folder: api \(\/w\/api\)/);
      assert.match(v.tooltip, /Other folders:\n {2}web: Resume agent session/);
      const resume = renderIndicator({ kind: "running", status: status({ resumeAvailable: true }) }, NOW, { name: "web", path: "/w/web", others: [] });
      assert.strictEqual(resume.text, "$(debug-restart) web: Resume agent session");
      assert.strictEqual(phaseSummary({ kind: "running", status: status({ resumeAvailable: true }) }, NOW), "Resume agent session");
      assert.strictEqual(phaseSummary({ kind: "running", status: status() }, NOW), "#7 · 2m ago · 4 files");
    });

    it("says when tether is not installed, and when a folder is not tracked", () => {
      const ni = renderIndicator({ kind: "notInstalled", message: "cannot find the Tether language server" }, NOW);
      assert.strictEqual(ni.text, "$(error) Tether: not installed");
      assert.strictEqual(ni.command, "tether.installHelp");
      const off = renderIndicator({ kind: "untracked", folder: "notes" }, NOW);
      assert.strictEqual(off.text, "$(circle-slash) Tether: off");
      assert.strictEqual(off.command, "tether.trackFolder");
      assert.match(off.tooltip, /notes/);
    });

    it("offers an install command from the project's repository, not `pip install tether`", () => {
      assert.strictEqual(INSTALL_COMMAND, `pipx install "git+${REPOSITORY_URL}"`);
      assert.doesNotMatch(INSTALL_COMMAND, /pip install tether/);
    });

    it("keeps the folder in checkpoint URIs of a multi-root workspace", () => {
      const u = checkpointUri("src/a b.py", 3, "file:///w/api");
      assert.deepStrictEqual(parseCheckpointUri(u), { path: "src/a b.py", checkpoint: 3, folder: "file:///w/api" });
    });
  });
}
