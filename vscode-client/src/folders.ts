// Which workspace folders Tether tracks: pure decisions over paths and settings (no vscode import,
// so the rules are testable on their own).
import * as fs from "fs";
import * as path from "path";

/** What makes a folder a project: the server's own root markers (server/tether/paths.py). */
export const PROJECT_MARKERS = [".git", ".hg", ".agent-session.json"] as const;

/** `tether.track`: "auto" tracks projects, "always" any folder, "never" none. */
export type TrackSetting = "auto" | "always" | "never";

export function parseTrack(v: unknown): TrackSetting {
  return v === "always" || v === "never" ? v : "auto";
}

/** The marker found in the folder or the nearest of its parents (a package of a monorepo opened
 * on its own is a project too), or undefined. */
export function projectMarker(folder: string, exists: (p: string) => boolean = fs.existsSync): string | undefined {
  let dir = path.resolve(folder);
  for (;;) {
    for (const m of PROJECT_MARKERS) {
      const p = path.join(dir, m);
      if (exists(p)) {
        return p;
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) {
      return undefined;
    }
    dir = parent;
  }
}

export interface FolderInput {
  /** Key (the folder's URI as a string). */
  key: string;
  name: string;
  fsPath: string;
  track: TrackSetting;
}

export type FolderDecision =
  | { key: string; tracked: true; reason: "project" | "setting" }
  | { key: string; tracked: false; reason: "notProject" | "setting" | "nested"; inside?: string };

export function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

/**
 * One server per tracked folder; a folder nested in another tracked folder is covered by the outer
 * one's server (its files are the outer workspace's files: two servers would checkpoint them twice).
 */
export function decideFolders(
  folders: readonly FolderInput[],
  isProject: (fsPath: string) => boolean,
): FolderDecision[] {
  const wanted = folders.map((f): FolderDecision => {
    if (f.track === "never") {
      return { key: f.key, tracked: false, reason: "setting" };
    }
    if (f.track === "always") {
      return { key: f.key, tracked: true, reason: "setting" };
    }
    return isProject(f.fsPath)
      ? { key: f.key, tracked: true, reason: "project" }
      : { key: f.key, tracked: false, reason: "notProject" };
  });
  return wanted.map((d, i) => {
    if (!d.tracked) {
      return d;
    }
    const me = folders[i];
    const outer = folders.find(
      (o, j) => j !== i && wanted[j].tracked && isInside(me.fsPath, o.fsPath) && path.resolve(o.fsPath) !== path.resolve(me.fsPath),
    );
    if (outer) {
      return { key: d.key, tracked: false, reason: "nested", inside: outer.key };
    }
    // Two folders entries for the same directory: the first one has the server.
    const same = folders.findIndex((o, j) => j < i && wanted[j].tracked && path.resolve(o.fsPath) === path.resolve(me.fsPath));
    if (same >= 0) {
      return { key: d.key, tracked: false, reason: "nested", inside: folders[same].key };
    }
    return d;
  });
}

/** The tracked folder whose server owns a file: the tracked folder that contains it. */
export function owningFolder<T extends { fsPath: string }>(file: string, tracked: readonly T[]): T | undefined {
  let best: T | undefined;
  for (const f of tracked) {
    if (isInside(file, f.fsPath) && (!best || f.fsPath.length < best.fsPath.length)) {
      best = f;
    }
  }
  return best;
}
