// Sends tether/cursor (throttled) so a resume can put the cursor back where it was.
import * as vscode from "vscode";
import { CLIENT_NOTIFY_CURSOR, CursorParams } from "./protocol";

export const CURSOR_THROTTLE_MS = 300;

export function cursorParams(editor: vscode.TextEditor): CursorParams | undefined {
  const doc = editor.document;
  if (doc.uri.scheme !== "file" || !vscode.workspace.getWorkspaceFolder(doc.uri)) {
    return undefined;
  }
  const pos = editor.selection.active;
  const params: CursorParams = { uri: doc.uri.toString(), line: pos.line, character: pos.character };
  const vr = editor.visibleRanges[0];
  if (vr) {
    params.visibleRange = { start: vr.start.line, end: vr.end.line };
  }
  return params;
}

/**
 * Trailing-edge throttle: at most one notification per CURSOR_THROTTLE_MS, always ending with the
 * latest position. `send` returns false when no server is running (the position is then dropped:
 * the next move sends a fresh one).
 */
export class CursorReporter implements vscode.Disposable {
  private pending: CursorParams | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly subs: vscode.Disposable[] = [];

  constructor(private readonly send: (method: string, params: CursorParams) => void) {
    const onEditor = (e: vscode.TextEditor | undefined): void => {
      if (e) {
        this.queue(cursorParams(e));
      }
    };
    this.subs.push(
      vscode.window.onDidChangeTextEditorSelection((e) => onEditor(e.textEditor)),
      vscode.window.onDidChangeTextEditorVisibleRanges((e) => onEditor(e.textEditor)),
      vscode.window.onDidChangeActiveTextEditor(onEditor),
    );
  }

  private queue(p: CursorParams | undefined): void {
    if (!p) {
      return;
    }
    this.pending = p;
    if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), CURSOR_THROTTLE_MS);
    }
  }

  /** Sends the pending position now (before a checkpoint, so it carries the latest cursor). */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const p = this.pending;
    this.pending = undefined;
    if (p) {
      this.send(CLIENT_NOTIFY_CURSOR, p);
    }
  }

  dispose(): void {
    if (this.timer) {
      clearTimeout(this.timer);
    }
    for (const s of this.subs) {
      s.dispose();
    }
  }
}
