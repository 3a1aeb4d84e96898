"""Agent-step benchmarks, each beside a baseline measured in the same run.

On generated workspaces of 1k and 10k files, after a one-file edit made "through the shell"
(no editor, nothing told to Tether):

- `record_step`: stat-cache scan of the workspace + step checkpoint + agent attachment +
  .agent-session.json rewrite (what `tether step` does, without the interpreter start-up);
- baseline: a shadow-git checkpoint (`git add -A && git commit` in a separate GIT_DIR), what
  per-step checkpointing agents use today;
- `provider()` with an unchanged .agent-session.json (paid at every checkpoint);
- `run_summaries` with one recorded run (paid by `tether status` and resume).

    .venv/bin/python bench/bench_agent.py [--sizes 1000 10000] [--repeat 5] [--json]
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "server"))

from tether import protocol  # noqa: E402
from tether.agent.runs import Run, run_summaries, save_run  # noqa: E402
from tether.agent.session import AgentSession  # noqa: E402
from tether.checkpoints.checkpointer import Checkpointer  # noqa: E402
from tether.scan.result import AGENT_FILE  # noqa: E402
from tether.store.db import Store  # noqa: E402


def make_workspace(root: Path, n: int) -> None:
    for i in range(n):
        d = root / f"pkg{i // 100:03d}"
        d.mkdir(exist_ok=True)
        (d / f"mod{i:05d}.py").write_text(f"# module {i}\nVALUE = {i}\n" + "x = 1\n" * 20)
    (root / AGENT_FILE).write_text(
        json.dumps({"current_task": "bench", "files_in_progress": [], "next_steps": ["a", "b"]})
    )


def git(gd: Path, root: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_DIR": str(gd),
        "GIT_WORK_TREE": str(root),
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@x",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@x",
    }
    subprocess.run(["git", *args], env=env, check=True, capture_output=True)


def timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def bench_size(n: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tether-bench-agent-") as tmp:
        base = Path(tmp)
        root = base / "ws"
        root.mkdir()
        make_workspace(root, n)
        gd = base / "shadow.git"
        git(gd, root, "init", "-q")
        git(gd, root, "add", "-A")
        git(gd, root, "commit", "-qm", "base")
        # As for a checkout made earlier: stats younger than store.head.RACY_NS are not trusted, so a
        # baseline taken at once would leave every file to be read again by each step.
        os.sync()
        time.sleep(2.1)
        with Store.open(root, base / "state") as store:
            cp = Checkpointer(store)
            session = AgentSession(store)
            cp.add_provider(protocol.ATTACH_AGENT, session.provider)
            cp.checkpoint(protocol.TRIGGER_BASELINE, full=True)
            step_ms, git_ms, prov_ms, runs_ms = [], [], [], []
            target = root / "pkg000" / "mod00000.py"
            for i in range(repeat):
                target.write_text(f"# edit {i}\n")
                step_ms.append(timed(lambda i=i: session.record_step(cp, f"step {i}")))  # type: ignore[misc]
                target.write_text(f"# edit {i} again\n")
                git_ms.append(
                    timed(lambda i=i: (git(gd, root, "add", "-A"), git(gd, root, "commit", "-qm", f"s{i}")))
                )  # type: ignore[misc]
                prov_ms.append(timed(session.provider))
            latest = store.latest()
            assert latest is not None
            save_run(store, Run(0, ["pytest"], ".", 0, 1.0, "t", latest.id, []))
            for _ in range(repeat):
                runs_ms.append(timed(lambda: run_summaries(store)))
    med = statistics.median
    return {
        "files": n,
        "recordStepMs": round(med(step_ms), 1),
        "shadowGitMs": round(med(git_ms), 1),
        "ratio": round(med(git_ms) / med(step_ms), 2),
        "providerMs": round(med(prov_ms), 2),
        "runSummariesMs": round(med(runs_ms), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = [bench_size(n, args.repeat) for n in args.sizes]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    head = ("files", "record_step", "shadow git", "git/step", "provider", "run validity")
    print("{:>7} {:>12} {:>11} {:>9} {:>9} {:>13}".format(*head))
    for r in rows:
        print(
            f"{r['files']:>7} {r['recordStepMs']:>10.1f}ms {r['shadowGitMs']:>9.1f}ms {r['ratio']:>8.2f}x "
            f"{r['providerMs']:>7.2f}ms {r['runSummariesMs']:>11.1f}ms"
        )


if __name__ == "__main__":
    main()
