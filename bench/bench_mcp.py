"""MCP tool-call round trips beside their CLI equivalents, in the same run, A and B in turn.

A running `tether mcp` (the SDK's own client over real stdio) against a fresh CLI process per
call, as an agent pays each:

- `handoff` vs `tether resume --print`;
- `record_step` vs `tether step`, each after a one-file edit (target: MCP >= 5x faster).

Both write the same store at 10k files (`--files`); neither reaches a tmux server (the socket
is pointed at a path that does not exist, so both pay the same failed snapshot attempt).

    .venv/bin/python bench/bench_mcp.py [--files 10000] [--repeat 7] [--json]

The ratio is CLI time / MCP time per pair; the median of the pairs is reported. Exit status 1
when the step target is missed. Tether's modules are byte-compiled first, as pip does at install
(bench_cli.py): without that, with PYTHONDONTWRITEBYTECODE set, every CLI process would compile
them again and the ratio would flatter the MCP server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cli import RACY_WAIT, TETHER, compile_tether, make_workspace

STEP_TARGET = 5.0


def timed_cli(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{argv}: {res.stderr.decode(errors='replace')}")
    return elapsed


async def timed_tool(s: ClientSession, name: str, args: dict[str, object]) -> float:
    t0 = time.perf_counter()
    res = await asyncio.wait_for(s.call_tool(name, args), 120)
    elapsed = time.perf_counter() - t0
    if getattr(res, "is_error", True):
        raise SystemExit(f"{name}: {res}")
    return elapsed


async def pairs(
    name: str,
    mcp: Callable[[], Awaitable[float]],
    cli: Callable[[], float],
    repeat: int,
    target: float | None,
    before: Callable[[], None] | None = None,
) -> dict[str, object]:
    tm, tc, ratios = [], [], []
    for _ in range(repeat):
        if before:
            before()
        m = await mcp()
        if before:
            before()
        c = cli()
        tm.append(m)
        tc.append(c)
        ratios.append(c / m)
    ratio = statistics.median(ratios)
    return {
        "name": name,
        "mcp_ms": round(statistics.median(tm) * 1000, 1),
        "cli_ms": round(statistics.median(tc) * 1000, 1),
        "ratio": round(ratio, 2),
        "ratios": [round(r, 2) for r in ratios],
        "target": target,
        "ok": target is None or ratio >= target,
    }


async def run(opts: argparse.Namespace) -> list[dict[str, object]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="tether-bench-mcp-") as tmp:
        ws = Path(tmp) / "ws"
        ws.mkdir()
        state = Path(tmp) / "state"
        extra = {"TETHER_STATE_DIR": str(state), "TETHER_TMUX_SOCKET": str(Path(tmp) / "no-tmux")}
        if os.environ.get("PYTHONPATH"):
            # The SDK gives the server only a few variables of ours: without this, a run from a
            # worktree (PYTHONPATH=<worktree>/server) would time the installed package's server.
            extra["PYTHONPATH"] = os.environ["PYTHONPATH"]
        env = {**os.environ, **extra}
        env.pop("TMUX", None)
        make_workspace(ws, opts.files)
        cli = [TETHER, "-C", str(ws)]
        subprocess.run(
            [*cli, "step", "--done", "baseline", "--task", "bench"], env=env, check=True, capture_output=True
        )
        time.sleep(RACY_WAIT)
        target = ws / "pkg000" / "mod00000.py"
        counter = iter(range(10**9))

        def edit() -> None:
            with target.open("a") as fh:
                fh.write(f"x = {next(counter)}\n")
            time.sleep(RACY_WAIT)

        params = StdioServerParameters(
            command=TETHER, args=["mcp", "--log-file", str(Path(tmp) / "mcp.log")], cwd=str(ws), env=extra
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            await timed_tool(s, "handoff", {})  # the first call opens the store and warms the scanner
            rows.append(
                await pairs(
                    f"handoff vs `tether resume --print`, {opts.files} files",
                    lambda: timed_tool(s, "handoff", {}),
                    lambda: timed_cli([*cli, "resume", "--print"], env),
                    opts.repeat,
                    None,
                )
            )
            n = iter(range(10**9))
            rows.append(
                await pairs(
                    f"record_step vs `tether step`, one file changed, {opts.files} files",
                    lambda: timed_tool(s, "record_step", {"done": f"mcp step {next(n)}"}),
                    lambda: timed_cli([*cli, "step", "--done", f"cli step {next(n)}"], env),
                    opts.repeat,
                    STEP_TARGET,
                    before=edit,
                )
            )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    opts = ap.parse_args()
    compile_tether()
    rows = asyncio.run(run(opts))
    if opts.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'measure':62} {'MCP ms':>8} {'CLI ms':>8} {'CLI/MCP':>8} {'target':>7}")
        for r in rows:
            mark = "" if r["target"] is None else ("ok" if r["ok"] else "MISS")
            goal = "" if r["target"] is None else f">= {r['target']}"
            print(f"{r['name']:62} {r['mcp_ms']:>8} {r['cli_ms']:>8} {r['ratio']:>8} {goal:>7} {mark}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
