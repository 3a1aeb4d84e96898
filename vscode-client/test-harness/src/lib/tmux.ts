// The private tmux server of a run: killed by its socket, never by name.
import { execFileSync } from "child_process";
import * as fs from "fs";

export function killPrivateTmux(socket: string, dir: string): void {
  try {
    execFileSync("tmux", ["-S", socket, "kill-server"], { stdio: "ignore", timeout: 10_000 });
  } catch {
    // no server was running on this socket
  }
  // tmux 3.3a leaves the socket file behind after kill-server
  fs.rmSync(dir, { recursive: true, force: true });
}
