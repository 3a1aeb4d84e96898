"""CLI start-up, as agents pay it after every tool call: whole processes, each beside
`python -c pass` (same interpreter) timed in the same run, A and B in turn.

- `tether --version`, `tether --help` (target <= 3x);
- the Claude Code PostToolUse hook when nothing changed, at 10k files (target <= 6x);
- `tether step` after a one-file edit, at 10k files (target <= 8x);
- importing the hook path's modules alone (no target): the part of the hook that is start-up;
- with ``--watched``, the hook and the step again while another process runs a file watcher on
  the workspace, as the language server or the MCP server does (scan/feed.py): the commands then
  look only at what it saw change instead of walking (same targets).

    .venv/bin/python bench/bench_cli.py [--files 10000] [--repeat 11] [--watched] [--json]

Tether's modules are byte-compiled first, as pip does at install: with PYTHONDONTWRITEBYTECODE
set (or a read-only checkout) every run would otherwise compile them again (~80 ms).

Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TETHER = str(BIN / "tether")
# Fresh stats are not trusted for 2 s (racy timestamps): files are dated back, and each edit
# is followed by this wait, as in an agent's real rhythm.
RACY_WAIT = 2.1


# A process keeping a file watcher's dirty set in the store, as `tether lsp` and `tether mcp` do:
# watcher started, then a whole walk (what makes it trusted), then it waits for stdin to close.
WATCHER = """
import sys
from pathlib import Path
from tether.checkpoints.checkpointer import Checkpointer
from tether.scan.feed import ChangeFeed
from tether.store.db import Store
root, state = Path(sys.argv[1]), sys.argv[2]
with Store.open(root, state) as store:
    feed = ChangeFeed(store.root, exclude=[Path(state)], state_dir=state)
    assert feed.start()
    mark = feed.mark()
    out = Checkpointer(store).checkpoint("baseline", full=True, allow_empty=True, files_only=True)
    feed.after_full_scan(out.scan, mark, checkpointed=True)
    print("ready", feed.state, flush=True)
    sys.stdin.read()
    feed.stop()
"""


# What `tether hook claude-code` imports when nothing changed (tests/e2e/test_cli_startup.py
# keeps the rest out).
HOOK_MODULES = (
    "tether.cli",
    "tether.cli.hook",
    "tether.conversations.record",
    "tether.scan.dirty",
    "tether.store.watchers",
    "tether.safefs",
)


def compile_tether() -> None:
    import compileall

    import tether

    compileall.compile_dir(str(Path(tether.__file__).parent), quiet=1)


def make_workspace(root: Path, n: int) -> None:
    old = time.time() - 3600
    for i in range(n):
        d = root / f"pkg{i // 100:03d}"
        d.mkdir(exist_ok=True)
        f = d / f"mod{i:05d}.py"
        f.write_text(f"# module {i}\nVALUE = {i}\n")
        os.utime(f, (old, old))
    (root / ".git").mkdir()


def timed(argv: list[str], env: dict[str, str], stdin: bytes | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        argv, env=env, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    return time.perf_counter() - t0


def pair(
    name: str,
    a: Callable[[], float],
    b: Callable[[], float],
    repeat: int,
    target: float,
    before: Callable[[], None] | None = None,
) -> dict[str, object]:
    ta, tb, ratios = [], [], []
    for _ in range(repeat):
        if before:
            before()
        x = a()
        y = b()
        ta.append(x)
        tb.append(y)
        ratios.append(x / y)
    ratio = statistics.median(ratios)
    row = {
        "name": name,
        "tether_ms": round(statistics.median(ta) * 1000, 1),
        "baseline_ms": round(statistics.median(tb) * 1000, 1),
        "ratio": round(ratio, 2),
        "target": target or None,
        "ok": ratio <= target if target else True,
    }
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--watched", action="store_true", help="also with a file watcher running (see above)")
    opts = ap.parse_args()
    base = [sys.executable, "-c", "pass"]
    compile_tether()
    rows = []
    with tempfile.TemporaryDirectory(prefix="tether-bench-cli-") as tmp:
        ws = Path(tmp) / "ws"
        ws.mkdir()
        env = {**os.environ, "TETHER_STATE_DIR": str(Path(tmp) / "state"), "TMUX": ""}
        env.pop("TMUX", None)
        make_workspace(ws, opts.files)
        b = lambda: timed(base, env)  # noqa: E731
        # Where a hook's time goes: what importing its modules alone costs (no target).
        imports = [sys.executable, "-c", f"import {', '.join(HOOK_MODULES)}"]
        rows.append(pair("imports of the hook path alone", lambda: timed(imports, env), b, opts.repeat, 0))
        rows.append(pair("--version", lambda: timed([TETHER, "--version"], env), b, opts.repeat, 3))
        rows.append(pair("--help", lambda: timed([TETHER, "--help"], env), b, opts.repeat, 3))
        subprocess.run([TETHER, "-C", str(ws), "checkpoint"], env=env, check=True, capture_output=True)
        time.sleep(RACY_WAIT)
        event = json.dumps(
            {"session_id": "", "cwd": str(ws), "hook_event_name": "PostToolUse", "tool_name": "Read"}
        ).encode()
        hook = [TETHER, "-C", str(ws), "hook", "claude-code"]
        rows.append(
            pair(
                f"hook PostToolUse, no change, {opts.files} files",
                lambda: timed(hook, env, event),
                b,
                opts.repeat,
                6,
            )
        )
        target = ws / "pkg000" / "mod00000.py"
        counter = iter(range(10**9))

        def edit() -> None:
            with target.open("a") as fh:
                fh.write(f"x = {next(counter)}\n")
            time.sleep(RACY_WAIT)

        step = [TETHER, "-C", str(ws), "step", "--done", "bench step"]
        rows.append(
            pair(
                f"step, one file changed, {opts.files} files",
                lambda: timed(step, env),
                b,
                opts.repeat,
                8,
                before=edit,
            )
        )
        if opts.watched:
            watcher = subprocess.Popen(
                [sys.executable, "-c", WATCHER, str(ws), env["TETHER_STATE_DIR"]],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert watcher.stdout is not None
                assert watcher.stdout.readline().split() == ["ready", "trusted"]
                rows.append(
                    pair(
                        f"hook PostToolUse, no change, {opts.files} files, watched",
                        lambda: timed(hook, env, event),
                        b,
                        opts.repeat,
                        6,
                    )
                )
                rows.append(
                    pair(
                        f"step, one file changed, {opts.files} files, watched",
                        lambda: timed(step, env),
                        b,
                        opts.repeat,
                        8,
                        before=edit,
                    )
                )
            finally:
                watcher.communicate(timeout=60)
    if opts.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'measure':55} {'tether ms':>10} {'python -c pass ms':>18} {'ratio':>7} {'target':>7}")
        for r in rows:
            mark = ("ok" if r["ok"] else "MISS") if r["target"] else ""
            target = f"<= {r['target']}" if r["target"] else "-"
            print(
                f"{r['name']:55} {r['tether_ms']:>10} {r['baseline_ms']:>18} {r['ratio']:>7} "
                f"{target:>7} {mark}"
            )
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
