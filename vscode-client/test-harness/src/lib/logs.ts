// Keeps the extension's own log (the "Tether" output channel, with the LSP trace) as an artifact.
import * as fs from "fs";
import * as path from "path";
import { ARTIFACTS_DIR } from "./env";

export function copyExtensionLogs(csDir: string, prefix: string): void {
  const logs = path.join(csDir, "user-data/logs");
  if (!fs.existsSync(logs)) {
    return;
  }
  const walk = (d: string): string[] =>
    fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]));
  for (const f of walk(logs)) {
    if (f.includes(`${path.sep}tether.tether${path.sep}`)) {
      fs.copyFileSync(f, path.join(ARTIFACTS_DIR, `${prefix}-${path.basename(f)}`));
    }
  }
}
