// Checkpoint contents as read-only documents, diff previews, the timeline picker and the restore flow.
import * as path from "path";
import * as vscode from "vscode";
import {
  CheckpointInfo,
  CMD_DIFF,
  CMD_FILE_AT,
  CMD_RESTORE,
  CMD_TIMELINE,
  DiffResult,
  FileAtResult,
  FileDiff,
  RestoreResult,
  TimelineResult,
} from "./protocol";
import { relativeTime } from "./status";

export const CHECKPOINT_SCHEME = "tether-checkpoint";

export type Exec = <T>(command: string, params?: object) => Promise<T>;

/**
 * tether-checkpoint:/src/app.py?checkpoint=3&folder=file%3A%2F%2F%2Fws — the path keeps the file
 * name so languages are detected; `folder` says whose server has the checkpoint (multi-root).
 */
export function checkpointUri(relPath: string, checkpoint: number | "empty", folder?: string): vscode.Uri {
  const q = new URLSearchParams(checkpoint === "empty" ? { empty: "1" } : { checkpoint: String(checkpoint) });
  if (folder) {
    q.set("folder", folder);
  }
  return vscode.Uri.from({
    scheme: CHECKPOINT_SCHEME,
    path: "/" + relPath.replace(/^\/+/, ""),
    query: q.toString(),
  });
}

export interface CheckpointRef {
  path: string;
  checkpoint: number | "empty";
  folder?: string;
}

export function parseCheckpointUri(uri: vscode.Uri): CheckpointRef | undefined {
  const rel = uri.path.replace(/^\/+/, "");
  const params = new URLSearchParams(uri.query);
  const folder = params.get("folder");
  const withFolder = (r: CheckpointRef): CheckpointRef => (folder ? { ...r, folder } : r);
  if (params.get("empty") === "1") {
    return withFolder({ path: rel, checkpoint: "empty" });
  }
  const n = Number(params.get("checkpoint"));
  if (!rel || !Number.isInteger(n) || n < 1) {
    return undefined;
  }
  return withFolder({ path: rel, checkpoint: n });
}

/** Read-only: VS Code never offers to edit or save documents of a content provider's scheme. */
export class CheckpointContentProvider implements vscode.TextDocumentContentProvider {
  /** `execFor(folder)`: the server of that folder (undefined: the current one). */
  constructor(private readonly execFor: (folder: string | undefined) => Exec) {}

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const ref = parseCheckpointUri(uri);
    if (!ref) {
      throw new Error(`Tether: malformed checkpoint URI ${uri.toString()}`);
    }
    if (ref.checkpoint === "empty") {
      return "";
    }
    const res = await this.execFor(ref.folder)<FileAtResult>(CMD_FILE_AT, { checkpoint: ref.checkpoint, path: ref.path });
    if (!res.exists) {
      return "";
    }
    if (res.binary || res.text === null) {
      return `(binary file ${ref.path} at checkpoint #${ref.checkpoint}: not shown)`;
    }
    return res.text;
  }
}

const TRIGGER_ICONS: Record<string, string> = {
  save: "$(save)",
  step: "$(debug-step-over)",
  periodic: "$(clock)",
  manual: "$(bookmark)",
  restore: "$(discard)",
  baseline: "$(circle-outline)",
};

export function timelineItem(cp: CheckpointInfo, now: number = Date.now()): vscode.QuickPickItem & { checkpoint: CheckpointInfo } {
  const files = cp.files.length;
  const shown = cp.files.slice(0, 3).join(", ") + (files > 3 ? ", …" : "");
  return {
    label: `${TRIGGER_ICONS[cp.trigger] ?? "$(history)"} #${cp.id} ${cp.trigger}`,
    description: cp.message ?? "",
    detail: `${relativeTime(cp.time, now)} · ${files} file${files === 1 ? "" : "s"}${files ? ": " + shown : ""}`,
    checkpoint: cp,
  };
}

export class CheckpointUi {
  constructor(
    private readonly exec: Exec,
    private readonly root: () => vscode.Uri | undefined,
  ) {}

  private requireRoot(): vscode.Uri {
    const r = this.root();
    if (!r) {
      throw new Error("Tether needs an open folder.");
    }
    return r;
  }

  async timeline(limit = 50): Promise<CheckpointInfo[]> {
    const res = await this.exec<TimelineResult>(CMD_TIMELINE, { limit });
    return Array.isArray(res?.checkpoints) ? res.checkpoints : [];
  }

  async pickCheckpoint(title: string): Promise<CheckpointInfo | undefined> {
    const qp = vscode.window.createQuickPick<vscode.QuickPickItem & { checkpoint: CheckpointInfo }>();
    qp.title = title;
    qp.placeholder = "Loading checkpoints…";
    qp.matchOnDescription = true;
    qp.matchOnDetail = true;
    qp.busy = true;
    qp.show();
    try {
      const cps = await this.timeline();
      qp.items = cps.map((cp) => timelineItem(cp));
      qp.placeholder = cps.length
        ? "Pick a checkpoint (trigger, message, files, time)"
        : "No checkpoints yet: save a file or run “Tether: Checkpoint now”";
      qp.busy = false;
      return await new Promise<CheckpointInfo | undefined>((resolve) => {
        qp.onDidAccept(() => resolve(qp.selectedItems[0]?.checkpoint));
        qp.onDidHide(() => resolve(undefined));
      });
    } finally {
      qp.dispose();
    }
  }

  /** The timeline, then Diff / Restore for the picked checkpoint. */
  async showTimeline(): Promise<void> {
    const cp = await this.pickCheckpoint("Tether: timeline");
    if (!cp) {
      return;
    }
    const action = await vscode.window.showQuickPick(
      [
        { label: "$(diff) Diff with workspace", id: "diff" },
        { label: "$(discard) Restore…", id: "restore" },
      ],
      { title: `Checkpoint #${cp.id} (${cp.trigger}${cp.message ? ": " + cp.message : ""})` },
    );
    if (action?.id === "diff") {
      await this.diffWithWorkspace(cp.id);
    } else if (action?.id === "restore") {
      await this.restore(cp.id);
    }
  }

  /** Opens a diff editor: checkpoint version on the left, workspace on the right. */
  async openDiff(checkpoint: number, file: FileDiff, opts: { preview: boolean; preserveFocus: boolean }): Promise<void> {
    const root = this.requireRoot();
    const left = checkpointUri(file.path, checkpoint, root.toString());
    // "added" = only in the workspace now; "deleted" = only in the checkpoint.
    const right = file.status === "deleted" ? checkpointUri(file.path, "empty", root.toString()) : vscode.Uri.joinPath(root, file.path);
    const title = `${path.posix.basename(file.path)} (checkpoint #${checkpoint} ↔ workspace)`;
    await vscode.commands.executeCommand("vscode.diff", left, right, title, {
      preview: opts.preview,
      preserveFocus: opts.preserveFocus,
    });
  }

  async diffWithWorkspace(checkpoint: number): Promise<FileDiff | undefined> {
    const res = await this.exec<DiffResult>(CMD_DIFF, { from: checkpoint, to: null });
    const files = Array.isArray(res?.files) ? res.files : [];
    if (!files.length) {
      void vscode.window.showInformationMessage(`Tether: the workspace matches checkpoint #${checkpoint}.`);
      return undefined;
    }
    let file: FileDiff | undefined = files[0];
    if (files.length > 1) {
      const pick = await vscode.window.showQuickPick(
        files.map((f) => ({ label: f.path, description: f.status, file: f })),
        { title: `Checkpoint #${checkpoint}: ${files.length} files differ from the workspace` },
      );
      file = pick?.file;
    }
    if (file) {
      await this.openDiff(checkpoint, file, { preview: true, preserveFocus: false });
    }
    return file;
  }

  /** Dry run and diff preview; returns the files a restore would change. */
  async previewRestore(checkpoint: number): Promise<FileDiff[]> {
    const dry = await this.exec<RestoreResult>(CMD_RESTORE, { checkpoint, dryRun: true });
    const files = Array.isArray(dry?.files) ? dry.files : [];
    if (files.length) {
      await this.openDiff(checkpoint, files[0], { preview: true, preserveFocus: true });
    }
    return files;
  }

  private async pickFiles(checkpoint: number, files: FileDiff[]): Promise<string[] | undefined> {
    const qp = vscode.window.createQuickPick<vscode.QuickPickItem & { file: FileDiff }>();
    qp.title = `Restore checkpoint #${checkpoint}: files to restore (Enter to continue)`;
    qp.canSelectMany = true;
    qp.items = files.map((f) => ({ label: f.path, description: f.status, file: f }));
    qp.selectedItems = qp.items;
    // Moving through the list previews each file's diff without leaving the picker.
    qp.onDidChangeActive((items) => {
      const f = items[0]?.file;
      if (f) {
        void this.openDiff(checkpoint, f, { preview: true, preserveFocus: true });
      }
    });
    qp.show();
    try {
      return await new Promise<string[] | undefined>((resolve) => {
        qp.onDidAccept(() => resolve(qp.selectedItems.map((i) => i.file.path)));
        qp.onDidHide(() => resolve(undefined));
      });
    } finally {
      qp.dispose();
    }
  }

  /** Pick → dry-run diff preview → choose files → confirm → restore (the server checkpoints first). */
  async restore(checkpoint?: number): Promise<RestoreResult | undefined> {
    const cpId = checkpoint ?? (await this.pickCheckpoint("Tether: restore which checkpoint?"))?.id;
    if (cpId === undefined) {
      return undefined;
    }
    const files = await this.previewRestore(cpId);
    if (!files.length) {
      void vscode.window.showInformationMessage(`Tether: the workspace already matches checkpoint #${cpId}.`);
      return undefined;
    }
    const paths = await this.pickFiles(cpId, files);
    if (!paths?.length) {
      return undefined;
    }
    const n = paths.length;
    const choice = await vscode.window.showWarningMessage(
      `Restore ${n} file${n === 1 ? "" : "s"} to checkpoint #${cpId}?`,
      {
        modal: true,
        detail: "The current state is checkpointed first, so this restore can be undone.",
      },
      "Restore",
    );
    if (choice !== "Restore") {
      return undefined;
    }
    const res = await this.exec<RestoreResult>(CMD_RESTORE, { checkpoint: cpId, paths, dryRun: false });
    const undo = res.undoCheckpoint;
    void vscode.window
      .showInformationMessage(
        `Tether: restored ${res.files.length} file${res.files.length === 1 ? "" : "s"} from checkpoint #${cpId}` +
          (undo !== null ? ` (undo: checkpoint #${undo}).` : "."),
        ...(undo !== null ? ["Undo"] : []),
      )
      .then(async (c) => {
        if (c === "Undo" && undo !== null) {
          await this.exec<RestoreResult>(CMD_RESTORE, { checkpoint: undo, paths, dryRun: false });
          void vscode.window.showInformationMessage(`Tether: restore undone (checkpoint #${undo}).`);
        }
      });
    return res;
  }
}
