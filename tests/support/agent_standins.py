"""Executables named like coding agents, for tests where the real CLI cannot stay up offline.

``claude`` records its argv (one JSON list per start, in ``argv.log``) and writes its session record
``<CLAUDE_CONFIG_DIR or ~/.claude>/sessions/<pid>.json`` in Claude Code 2.1's format, with the id
read from ``claude-id``; ``aider`` only records its argv (aider has no conversation id).
"""

from __future__ import annotations

import sys
from pathlib import Path

_CLAUDE = """\
#!{python}
# Stand-in for Claude Code: records its argv, writes its session record like claude 2.1 does.
import json, os, sys, time
with open({marker!r}, "a") as fh:
    fh.write(json.dumps(sys.argv[1:]) + "\\n")
sid = open({idfile!r}).read()
base = os.environ.get("CLAUDE_CONFIG_DIR") or os.path.expanduser("~/.claude")
os.makedirs(os.path.join(base, "sessions"), exist_ok=True)
with open(os.path.join(base, "sessions", f"{{os.getpid()}}.json"), "w") as fh:
    json.dump({{"pid": os.getpid(), "sessionId": sid, "cwd": os.getcwd(),
               "startedAt": int(time.time() * 1000), "version": "2.1.328", "kind": "interactive",
               "entrypoint": "cli"}}, fh)
time.sleep(3600)
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
        p.write_text(text.format(python=sys.executable, marker=str(marker), idfile=str(idfile)))
        p.chmod(0o755)
    return bin_dir, marker, idfile
