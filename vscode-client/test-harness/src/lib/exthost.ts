// The extension host's own log in code-server: which extensions activated, and why.
import * as fs from "fs";
import * as path from "path";

function walk(d: string): string[] {
  if (!fs.existsSync(d)) {
    return [];
  }
  return fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]));
}

/** Every extension host log of this code-server (one per browser window). */
export function exthostLogs(csDir: string): string[] {
  return walk(path.join(csDir, "user-data/logs")).filter((f) => path.basename(f) === "remoteexthost.log");
}

export function exthostText(csDir: string): string {
  return exthostLogs(csDir)
    .map((f) => fs.readFileSync(f, "utf8"))
    .join("\n");
}

/** The activation lines of an extension: "…_doActivateExtension tether.tether, startup: …, activationEvent: '…'". */
export function activations(csDir: string, extId: string): string[] {
  return exthostText(csDir)
    .split("\n")
    .filter((l) => l.includes(`_doActivateExtension ${extId},`));
}

/** Startup is over once onStartupFinished extensions were activated: every workspaceContains
 * activation that was going to happen has happened by then. Only logs not in `known` count (a
 * new browser window has a new extension host, with a new log). */
export function startupFinished(csDir: string, known: readonly string[] = []): boolean {
  return exthostLogs(csDir)
    .filter((f) => !known.includes(f))
    .some((f) => /activationEvent: 'onStartupFinished'/.test(fs.readFileSync(f, "utf8")));
}

/** The activation lines of an extension in the logs not in `known`. */
export function newActivations(csDir: string, extId: string, known: readonly string[]): string[] {
  return exthostLogs(csDir)
    .filter((f) => !known.includes(f))
    .flatMap((f) => fs.readFileSync(f, "utf8").split("\n"))
    .filter((l) => l.includes(`_doActivateExtension ${extId},`));
}
