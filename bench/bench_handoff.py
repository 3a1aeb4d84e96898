"""Hand-off push vs plain git push, in one run, on a generated workspace.

    .venv/bin/python bench/bench_handoff.py            # 10k files
    .venv/bin/python bench/bench_handoff.py --quick    # 1k files (CI smoke)

Measures (median of --reps runs; every baseline measured in the same run on the same tree):
(a) `tether push` after one step (one file changed) vs `git push` of a one-file commit, both to
    the same bare remote over file://, each a fresh process (CLI start-up included: what a user
    pays); plus the objects each adds to the remote. Then where a push's time goes: the
    interpreter (`python -c pass`), the imports of the push path, and, timed in this process,
    opening the store, the hand-off state, the remote's URL, the export (store reads and one
    `git fast-import`) and the `git push`; and the in-process push as a whole vs `git push`;
(b) the first `tether push` of the whole tree (a checkpoint of every file) to an empty remote vs a
    `git push` of a commit of the same tree to another empty remote;
(c) writing the first export's objects: `git fast-import` fed from the store (what push does) vs
    the plumbing path `hash-object -w --stdin-paths` + `update-index --index-info` (temporary
    index) + `write-tree` + `commit-tree`, into fresh bare repositories.
Target: (a) <= 2x git push.

Tether's modules are byte-compiled first, as pip does at install (see bench_cli.py).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

import tether.remote.handoff as handoff_mod
from tether.checkpoints.checkpointer import Checkpointer
from tether.remote import export as export_mod
from tether.remote.gitrepo import SideRepo
from tether.remote.handoff import Handoff
from tether.store.db import Store

ENV = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | {
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@example.invalid",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}
SERVER = str(Path(__file__).resolve().parents[1] / "server")


def git(cwd: Path, *args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> bytes:
    res = subprocess.run(
        ["git", *args], cwd=cwd, input=input, capture_output=True, env=env or ENV, check=True
    )
    return res.stdout


def tether(root: Path, state: Path, *args: str) -> None:
    env = ENV | {"PYTHONPATH": SERVER}
    subprocess.run(
        [sys.executable, "-m", "tether", "-C", str(root), "--state-dir", str(state), *args],
        env=env,
        check=True,
        capture_output=True,
    )


def objects(bare: Path) -> int:
    fields = dict(line.split(": ") for line in git(bare, "count-objects", "-v").decode().splitlines())
    return int(fields["count"]) + int(fields["in-pack"])


def make_tree(root: Path, n: int) -> list[str]:
    rnd = random.Random(7)
    rels = []
    for i in range(n):
        rel = f"pkg{i % 40}/sub{i % 7}/mod{i}.py"
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("".join(f"value_{rnd.randrange(10**6)} = {i}\n" for _ in range(30)))
        rels.append(rel)
    return rels


def timed(fn: object) -> float:
    t = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t


class Phases:
    """Wall time of each phase of an in-process push, by wrapping the functions it calls."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}

    def add(self, name: str, seconds: float) -> None:
        self.times.setdefault(name, []).append(seconds)

    def wrap(self, owner: object, attr: str, name: str, when: object = None) -> None:
        real = getattr(owner, attr)

        def timed_call(*a: object, **k: object) -> object:
            t = time.perf_counter()
            try:
                return real(*a, **k)
            finally:
                if when is None or when(*a, **k):  # type: ignore[operator]
                    self.add(name, time.perf_counter() - t)

        setattr(owner, attr, timed_call)

    def push(self, ws: Path, state: Path) -> float:
        t0 = time.perf_counter()
        with Store.open(ws, state) as store:
            t1 = time.perf_counter()
            h = Handoff(store, "bench")
            t2 = time.perf_counter()
            h.push("origin")
            t3 = time.perf_counter()
        t4 = time.perf_counter()
        self.add("open the store", t1 - t0)
        self.add("hand-off state (side repo, ids)", t2 - t1)
        self.add("close the store", t4 - t3)
        return t4 - t0


def plumbing(ws: Path, rels: list[str], env: dict[str, str]) -> None:
    shas = git(ws, "hash-object", "-w", "--stdin-paths", input="\n".join(rels).encode(), env=env)
    info = "".join(f"100644 {sha}\t{rel}\n" for sha, rel in zip(shas.decode().split(), rels, strict=True))
    git(ws, "update-index", "--add", "--index-info", input=info.encode(), env=env)
    tree = git(ws, "write-tree", env=env).decode().strip()
    git(ws, "commit-tree", tree, "-m", "x", env=env)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--files", type=int, default=None)
    ap.add_argument("--reps", type=int, default=5)
    opts = ap.parse_args()
    n = opts.files or (1000 if opts.quick else 10_000)
    import compileall

    compileall.compile_dir(SERVER + "/tether", quiet=1)
    tmp = Path(tempfile.mkdtemp(prefix="bench-handoff-"))
    try:
        ws, state = tmp / "ws", tmp / "state"
        ws.mkdir()
        rels = make_tree(ws, n)
        git(ws, "init", "-q", "-b", "main")
        remote = tmp / "remote.git"
        git(tmp, "init", "-q", "--bare", str(remote))
        git(ws, "remote", "add", "origin", str(remote))
        with Store.open(ws, state) as store:
            Checkpointer(store).checkpoint("baseline", full=True)

        # (b) first push of the whole tree: tether to an empty remote vs git of the same tree.
        first_tether = timed(lambda: tether(ws, state, "push", f"file://{remote}", "--as", "bench"))
        git(ws, "add", "-A")
        git(ws, "commit", "-q", "-m", "tree")
        bare2 = tmp / "plain.git"
        git(tmp, "init", "-q", "--bare", str(bare2))
        first_git = timed(lambda: git(ws, "push", "-q", f"file://{bare2}", "main"))
        git(ws, "push", "-q", "origin", "main")  # the project's branch on the shared remote, as in life

        # (a) after one step: one file changed, checkpointed, pushed; vs a one-file commit pushed.
        t_times, g_times, t_objs, g_objs, in_times = [], [], [], [], []
        phases = Phases()
        phases.wrap(handoff_mod, "resolve_remote", "the remote's URL (git remote get-url)")
        phases.wrap(handoff_mod.export_mod, "export", "export: store reads + git fast-import")
        phases.wrap(SideRepo, "git", "git push", when=lambda self, args, **kw: "push" in args)
        for r in range(opts.reps):
            (ws / rels[r]).write_text(f"changed = {r}\n")
            with Store.open(ws, state) as store:
                Checkpointer(store).checkpoint("step", f"bench step {r}", paths=[rels[r]])
            before = objects(remote)
            t_times.append(timed(lambda: tether(ws, state, "push", "origin", "--as", "bench")))
            t_objs.append(objects(remote) - before)
            # The same push in this process: the work itself, without the CLI's start-up.
            (ws / rels[r]).write_text(f"changed again = {r}\n")
            with Store.open(ws, state) as store:
                Checkpointer(store).checkpoint("step", f"bench step {r}b", paths=[rels[r]])
            in_times.append(phases.push(ws, state))
            (ws / rels[-1 - r]).write_text(f"git change = {r}\n")
            git(ws, "commit", "-q", "-am", f"one file {r}")
            before = objects(remote)
            g_times.append(timed(lambda: git(ws, "push", "-q", "origin", "main")))
            g_objs.append(objects(remote) - before)

        # (c) writing the objects of a first export: fast-import from the store vs plumbing.
        fi_times, pl_times = [], []
        for r in range(max(1, opts.reps // 2)):
            (tmp / f"side{r}").mkdir()
            side = SideRepo.open(tmp / f"side{r}")
            with Store.open(ws, state) as store:
                t = time.perf_counter()
                export_mod.export(store, side, "refs/x/none", "refs/x/stage", "bench")
                fi_times.append(time.perf_counter() - t)
            bare = tmp / f"plumb{r}.git"
            git(tmp, "init", "-q", "--bare", str(bare))
            t = time.perf_counter()
            plumbing(ws, rels, ENV | {"GIT_DIR": str(bare), "GIT_INDEX_FILE": str(tmp / f"idx{r}")})
            pl_times.append(time.perf_counter() - t)

        def run(*code: str) -> float:
            return timed(
                lambda: subprocess.run(
                    [sys.executable, *code], env=ENV | {"PYTHONPATH": SERVER}, capture_output=True, check=True
                )
            )

        bare_python, imports = [], []
        for _ in range(max(5, opts.reps)):
            bare_python.append(run("-c", "pass"))
            imports.append(
                run("-c", "import tether.cli, tether.cli.remote, tether.remote.handoff, tether.store.db")
            )
        med = statistics.median
        ratio = med(t_times) / med(g_times)
        print(f"files: {n}, reps: {opts.reps}")
        print(
            f"(a) push after one step, as processes: tether {med(t_times) * 1000:.0f} ms "
            f"({med(t_objs):.0f} objects) | git push of a one-file commit {med(g_times) * 1000:.0f} ms "
            f"({med(g_objs):.0f} objects) | ratio {ratio:.2f}x (target <= 2x)"
        )
        print("    where a `tether push` process's time goes (medians, ms):")
        print(f"      {'python start-up (python -c pass)':44} {med(bare_python) * 1000:6.1f}")
        print(f"      {'imports of the push path':44} {(med(imports) - med(bare_python)) * 1000:6.1f}")
        for name, values in phases.times.items():
            print(f"      {name:44} {med(values) * 1000:6.1f}")
        print(
            f"    in-process push (no interpreter, no imports) {med(in_times) * 1000:.0f} ms | "
            f"ratio {med(in_times) / med(g_times):.2f}x"
        )
        print(
            f"(b) first push: tether {first_tether * 1000:.0f} ms | git push of the tree "
            f"{first_git * 1000:.0f} ms | ratio {first_tether / first_git:.2f}x"
        )
        fi, pl = med(fi_times), med(pl_times)
        print(
            f"(c) first export's objects: fast-import {fi * 1000:.0f} ms | hash-object+update-index"
            f"+write-tree+commit-tree {pl * 1000:.0f} ms | ratio {fi / pl:.2f}x"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
