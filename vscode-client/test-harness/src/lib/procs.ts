// Processes of one code-server (its own process group), read from /proc: which `tether lsp`
// servers run, and in which folder.
import * as fs from "fs";
import * as path from "path";

export interface Proc {
  pid: number;
  argv: string[];
  cwd: string;
}

function readProc(pid: number): { pgrp: number; argv: string[]; cwd: string } | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z") {
      return undefined;
    }
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    let cwd = "";
    try {
      cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      // gone meanwhile
    }
    return { pgrp: Number(fields[2]), argv, cwd };
  } catch {
    return undefined;
  }
}

/** Live processes of the process group `pgid` (code-server is started as its leader). */
export function processGroup(pgid: number): Proc[] {
  const out: Proc[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) {
      continue;
    }
    const p = readProc(Number(name));
    if (p && p.pgrp === pgid) {
      out.push({ pid: Number(name), argv: p.argv, cwd: p.cwd });
    }
  }
  return out;
}

/** `tether lsp` servers below a code-server: one per tracked folder (cwd = the folder). */
export function tetherServers(pgid: number): Proc[] {
  return processGroup(pgid).filter((p) => p.argv.includes("lsp") && p.argv.some((a) => path.basename(a) === "tether"));
}
