"""Executables named like coding agents, for tests where the real CLI cannot stay up offline.

``claude`` (a node script, run as ``node …/claude`` like an npm launcher) records its argv (one
JSON list per start, in ``argv.log``) and writes its session record
``<CLAUDE_CONFIG_DIR or ~/.claude>/sessions/<pid>.json`` in Claude Code 2.1's format, with the id
read from ``claude-id``. ``aider`` (a Python script, like aider) only records its argv: aider has
no conversation id.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

_CLAUDE = """\
#!{node}
// Stand-in for Claude Code (a node launcher, as its npm package had): records its argv, writes
// its session record like claude 2.1 does, stays up.
const fs = require("fs"), os = require("os"), path = require("path");
fs.appendFileSync({marker_js}, JSON.stringify(process.argv.slice(2)) + "\\n");
const sid = fs.readFileSync({idfile_js}, "utf8");
const base = process.env.CLAUDE_CONFIG_DIR || path.join(os.homedir(), ".claude");
fs.mkdirSync(path.join(base, "sessions"), {{ recursive: true }});
fs.writeFileSync(path.join(base, "sessions", process.pid + ".json"), JSON.stringify({{
  pid: process.pid, sessionId: sid, cwd: process.cwd(), startedAt: Date.now(),
  version: "2.1.328", kind: "interactive", entrypoint: "cli" }}));
setInterval(() => {{}}, 1 << 30);
"""

_AIDER = """\
#!{python}
import json, sys, time
with open({marker!r}, "a") as fh:
    fh.write(json.dumps(sys.argv[1:]) + "\\n")
time.sleep(3600)
"""


def standins(tmp: Path) -> tuple[Path, Path, Path]:
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    marker = tmp / "argv.log"
    idfile = tmp / "claude-id"
    for name, text in (("claude", _CLAUDE), ("aider", _AIDER)):
        p = bin_dir / name
        p.write_text(
            text.format(
                python=sys.executable,
                node=shutil.which("node") or "/usr/bin/node",
                marker=str(marker),
                idfile=str(idfile),
                marker_js=json.dumps(str(marker)),
                idfile_js=json.dumps(str(idfile)),
            )
        )
        p.chmod(0o755)
    return bin_dir, marker, idfile
