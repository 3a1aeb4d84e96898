"""Checkpoint store vs shadow git, in one run, on generated workspaces.

    .venv/bin/python bench/bench_store.py            # 1k / 10k / 50k files
    .venv/bin/python bench/bench_store.py --quick    # 1k only (CI smoke)
    .venv/bin/python bench/bench_store.py --first only --files 100000   # (e) alone

Measures (median of --reps runs, each baseline measured in the same run on the same tree):
(a) incremental checkpoint after a 1-file change — ``Checkpointer.checkpoint(paths=[file])``,
    the path the editor/watcher uses — vs a shadow-git checkpoint (``git add -A && git commit``
    with a separate GIT_DIR) and vs ``git status --porcelain``;
(b) baseline scan with nothing changed (warm stat cache: the periodic safety net; and a fresh
    Store in a new session: the session-start check) vs ``git status --porcelain``; also the
    fresh scan in a process that runs other threads, as the LSP server does (reported);
(c) restore of 100 changed files (undo checkpoint + writes + after checkpoint) vs
    ``git checkout C -- .``;
(d) worst case: a tree with long file names and a hostile .gitignore (patterns that make a
    backtracking matcher exponential), walked listing every directory (each entry matched
    against every pattern: a first walk, or one after a .gitignore changed; later walks take
    unchanged directories from their stored listings) vs ``git status --porcelain`` on the
    same tree; and the same with the plain .gitignore (same files found), for the matching's
    own cost;
(e) the first checkpoint of a big tree (--files, default 100k; --quick: 2k), in a child process
    (its peak memory from getrusage) vs ``git add -A && git commit`` on the same tree (a shadow
    repository), both on files just written (in the page cache).
Targets: (a) >= 20x faster than shadow git at 10k files and flat across sizes (50k/1k <= 3x);
(b) <= 1.5x git status; (d) <= 2x git status; (e) <= 1x git add+commit, peak memory <= 150 MB.
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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from tether.checkpoints import restore as restore_mod
from tether.checkpoints.checkpointer import Checkpointer
from tether.scan.scanner import Scanner
from tether.store.db import Store

GITIGNORE = "*.log\nbuild/\n!keep.log\n/dist\n*.tmp\n"
# Patterns that take a backtracking matcher exponential time on names of many "a" (issue 19),
# among those git itself handles fast (git's wildmatch is exponential on chains of "**/":
# bench/bench_ignore.py measures those).
HOSTILE_GITIGNORE = (
    "\n".join(
        [
            "*a*a*a*a*a*a*a*a*b",
            "*a" * 30 + "*b",
            "*[!b]" * 25 + "*b",
            "*[" + "abcdefghijklmnopqrstuvwxy" * 40 + "]*b",
            "/".join(["**/*a"] * 12) + "/b",
            "pkg*/" + "*a" * 20 + "*b",
            "!" + "*a" * 25 + "*c",
            "*b" + "*a" * 10,  # ends with "a", as the long names do: always matched against
            "*a" * 10 + "[!a]",
        ]
    )
    + "\n"
)
WORDS = [
    "def",
    "class",
    "return",
    "import",
    "self",
    "value",
    "data",
    "result",
    "None",
    "True",
    "False",
    "for",
    "in",
    "if",
    "else",
]


def make_workspace(root: Path, n_files: int, seed: int = 1, hostile: bool = False) -> list[str]:
    """A realistic tree: nested packages, a .gitignore, ignored build output, some big files.
    ``hostile``: the .gitignore has HOSTILE_GITIGNORE too, and every tenth file a long name
    of "a" (60 and more of them)."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    (root / ".gitignore").write_text(GITIGNORE + (HOSTILE_GITIGNORE if hostile else ""))
    tracked = [".gitignore"]
    per_dir = 25
    n_dirs = max(1, n_files // per_dir)
    dirs = []
    for d in range(n_dirs):
        depth = 1 + d % 4
        parts = [f"pkg{d % 7}"] + [f"mod{(d // (7 * 4**i)) % 9}_{i}" for i in range(depth - 1)] + [f"d{d}"]
        dirs.append("/".join(parts))
    for i in range(n_files - 1):
        rel = f"{dirs[i % n_dirs]}/file{i}.py"
        if hostile and i % 10 == 5:
            # Only "a": git's own matcher is exponential on these patterns when the name goes
            # on with another character ("aaa…a55"): this row compares with git where it is fast.
            rel = f"{dirs[i % n_dirs]}/{'a' * (60 + i // n_dirs * 5)}"
        if i % 100 == 0:
            body = os.urandom(64 * 1024).hex()  # a few larger, poorly compressible files
        else:
            body = "\n".join(" ".join(rng.choices(WORDS, k=8)) for _ in range(rng.randint(5, 60)))
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(body + "\n")
        tracked.append(rel)
    # Ignored material both tools must skip.
    for i in range(max(10, n_files // 50)):
        p = root / "build" / f"obj{i}.o"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"\x7fELF" + bytes(200))
    for i in range(max(5, n_files // 200)):
        (root / dirs[i % n_dirs] / f"debug{i}.log").write_text("log line\n")
    # A checkout made a while ago, as at a real session start: file times an hour old, and
    # no directory changed within the last seconds (fresh stats are not trusted, see
    # store.head.RACY_NS: without this every scan in the first 2 s would re-read every file).
    old = time.time_ns() - 3600 * 10**9
    for rel in tracked:
        os.utime(root / rel, ns=(old, old))
    os.sync()  # written back, as a checkout made earlier would be
    time.sleep(2.1)
    return tracked


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def median(samples: list[float]) -> float:
    return statistics.median(samples)


class ShadowGit:
    def __init__(self, git_dir: Path, work: Path) -> None:
        self.env = {
            **os.environ,
            "GIT_DIR": str(git_dir),
            "GIT_WORK_TREE": str(work),
            "GIT_AUTHOR_NAME": "bench",
            "GIT_AUTHOR_EMAIL": "bench@example.invalid",
            "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@example.invalid",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(git_dir.parent),
        }
        self.work = work
        self.run("init", "-q")

    def run(self, *args: str) -> str:
        out = subprocess.run(
            ["git", *args], cwd=self.work, env=self.env, check=True, capture_output=True, text=True
        )
        return out.stdout

    def checkpoint(self, message: str) -> None:
        self.run("add", "-A")
        self.run("commit", "-q", "--allow-empty", "-m", message)

    def status(self) -> str:
        return self.run("status", "--porcelain")


@dataclass
class Row:
    size: int
    values: dict[str, float] = field(default_factory=dict)


def bench_size(n: int, base: Path, reps: int) -> Row:
    ws = base / f"ws-{n}"
    tracked = make_workspace(ws, n)
    py_files = [p for p in tracked if p.endswith(".py")]
    rng = random.Random(n)
    row = Row(n)

    git = ShadowGit(base / f"shadow-{n}.git", ws)
    git.checkpoint("baseline")
    store = Store.open(ws, base / "state")
    cp = Checkpointer(store)
    t0 = time.perf_counter()
    cp.checkpoint("manual", "baseline", full=True)
    row.values["baseline_first"] = time.perf_counter() - t0

    def touch_one() -> str:
        rel = rng.choice(py_files)
        with open(ws / rel, "a") as fh:
            fh.write(f"# edit {rng.random()}\n")
        return rel

    # (a) one file changed: told checkpoint vs shadow git commit vs git status
    ours, shadow, status = [], [], []
    for _ in range(reps):
        for _ in range(3):  # cheap and fsync-bound: more samples against disk noise
            rel = touch_one()
            ours.append(timed(lambda rel=rel: cp.checkpoint("save", paths=[rel])))
        touch_one()
        shadow.append(timed(lambda: git.checkpoint("save")))
        touch_one()
        status.append(timed(git.status))
    row.values.update(incr=median(ours), shadow=median(shadow), git_status=median(status))
    # (b) starts as a session would, well after the last edit: the files (a) just appended to
    # are older than the racy-timestamp window once it starts (store.head.RACY_NS), so the stat
    # cache can vouch for them. Within 2 s of an edit every scan reads that file again.
    os.sync()
    time.sleep(2.1)
    cp.checkpoint("periodic")
    git.checkpoint("sync")

    # (b) nothing changed: warm stat cache (long-lived server) and a fresh Store (new session)
    warm, fresh, threaded, status = [], [], [], []

    def fresh_scan() -> None:
        with Store.open(ws, base / "state") as s:
            out = Checkpointer(s).checkpoint("periodic")
        assert out.info is None and not out.scan.changes, "nothing changed, nothing found"

    for _ in range(reps):
        warm.append(timed(lambda: cp.checkpoint("periodic")))
        fresh.append(timed(fresh_scan))
        status.append(timed(git.status))
        # As in the LSP server: another thread is alive while the store is scanned.
        stop = threading.Event()
        other = threading.Thread(target=stop.wait, daemon=True)
        other.start()
        try:
            threaded.append(timed(fresh_scan))
        finally:
            stop.set()
            other.join()
    row.values.update(
        scan_warm=median(warm),
        scan_fresh=median(fresh),
        scan_threaded=median(threaded),
        scan_git_status=median(status),
    )

    # (c) restore 100 changed files to checkpoint C vs git checkout C -- .
    cp.checkpoint("manual", full=True)
    git.checkpoint("C")
    c_ours = store.latest()
    assert c_ours is not None
    c_git = git.run("rev-parse", "HEAD").strip()
    victims = rng.sample(py_files, min(100, len(py_files)))
    ours, theirs = [], []
    for r in range(reps):
        for rel in victims:
            with open(ws / rel, "a") as fh:
                fh.write(f"# change {r}\n")
        ours.append(timed(lambda: restore_mod.restore(store, cp, c_ours.id, dry_run=False)))
        check = git.status()
        assert check == "", f"restore left differences: {check[:200]}"
        for rel in victims:
            with open(ws / rel, "a") as fh:
                fh.write(f"# change {r}\n")
        theirs.append(timed(lambda: git.run("checkout", c_git, "--", ".")))
    row.values.update(restore=median(ours), git_checkout=median(theirs))
    store.close()
    return row


FIRST_CHILD = """
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from tether.checkpoints.checkpointer import Checkpointer
from tether.store.db import Store
t = time.perf_counter()
with Store.open(Path(sys.argv[1]), sys.argv[2]) as store:
    out = Checkpointer(store).checkpoint("manual", "first", full=True)
seconds = time.perf_counter() - t
files = len(out.info.files) if out.info else 0
print(json.dumps({"seconds": seconds, "files": files,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def bench_first(n: int, base: Path, reps: int) -> dict[str, float]:
    """(e): the first checkpoint of an n-file tree (each run into a new store) vs shadow git's
    first ``add -A && commit`` (each run into a new repository), alternated, on one tree."""
    import json

    ws = base / f"ws-first-{n}"
    tracked = make_workspace(ws, n, seed=3)
    size = sum((ws / rel).stat().st_size for rel in tracked)
    server = str(Path(__file__).resolve().parents[1] / "server")
    ours, theirs, rss = [], [], []
    files = 0
    for r in range(reps):
        state = base / f"state-first-{n}-{r}"
        out = subprocess.run(
            [sys.executable, "-c", FIRST_CHILD, str(ws), str(state), server],
            check=False,
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, f"the first checkpoint failed: {out.stderr[-2000:]}"
        doc = json.loads(out.stdout)
        ours.append(doc["seconds"])
        rss.append(doc["maxrss_kb"] / 1024)
        files = doc["files"]
        shutil.rmtree(state, ignore_errors=True)
        git_dir = base / f"shadow-first-{n}-{r}.git"
        git = ShadowGit(git_dir, ws)
        theirs.append(timed(lambda git=git: git.checkpoint("first")))
        shutil.rmtree(git_dir, ignore_errors=True)
    assert files == len(tracked), f"the first checkpoint holds every tracked file ({files} != {len(tracked)})"
    return {"files": files, "mb": size / 2**20, "first": median(ours), "git": median(theirs), "rss": max(rss)}


def report_first(first: dict[str, float], reps: int) -> tuple[str, bool]:
    ratio = first["first"] / first["git"]
    ok_time, ok_rss = ratio <= 1, first["rss"] <= 150
    lines = [
        "",
        f"(e) first checkpoint, median of {reps} (peak memory: the largest):",
        "",
        "| files | MB | (e) tether first checkpoint (s) | git add -A && git commit (s) | tether / git |"
        " tether peak memory (MB) |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {first['files']:.0f} | {first['mb']:.0f} | {first['first']:.2f} | {first['git']:.2f} | "
        f"{ratio:.2f} | {first['rss']:.0f} |",
        "",
        f"- (e) first checkpoint, {first['files']:.0f} files: {ratio:.2f}x git add+commit (target <= 1): "
        f"{'PASS' if ok_time else 'FAIL'}",
        f"- (e) first checkpoint, {first['files']:.0f} files: peak memory {first['rss']:.0f} MB "
        f"(target <= 150): {'PASS' if ok_rss else 'FAIL'}",
    ]
    return "\n".join(lines), ok_time and ok_rss


def bench_worst(n: int, base: Path, reps: int) -> dict[str, float]:
    """(d): one tree with long names, walked listing every directory with the hostile
    .gitignore and with the plain one (the hostile patterns match none of its files, so both
    walks find the same files: the difference is the matching), each vs git status."""
    ws = base / f"ws-worst-{n}"
    make_workspace(ws, n, seed=2, hostile=True)
    git = ShadowGit(base / f"shadow-worst-{n}.git", ws)
    git.checkpoint("baseline")
    store = Store.open(ws, base / "state")
    Checkpointer(store).checkpoint("manual", "baseline", full=True)
    head = store.head_rows()
    store.close()
    out: dict[str, float] = {"files": len(head)}
    for key, text in (("hostile", GITIGNORE + HOSTILE_GITIGNORE), ("plain", GITIGNORE)):
        (ws / ".gitignore").write_text(text)

        def walk() -> None:
            scan = Scanner(ws).full_scan(head)
            assert [c.path for c in scan.changes] in ([], [".gitignore"]), "the same files either way"

        walks, status = [], []
        for _ in range(reps):
            walks.append(timed(walk))
            status.append(timed(git.status))
        out[f"walk_{key}"] = median(walks)
        out[f"git_{key}"] = median(status)
    return out


def ms(x: float) -> str:
    return f"{x * 1000:.1f}"


def report_worst(worst: dict[int, dict[str, float]]) -> tuple[str, bool]:
    lines = [
        "",
        "| files | (d) walk listing every directory, hostile .gitignore | git status | walk / git |"
        " same tree, plain .gitignore: walk | git status | walk / git | hostile walk / plain walk |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ok = True
    for n, v in worst.items():
        lines.append(
            f"| {n} | {ms(v['walk_hostile'])} | {ms(v['git_hostile'])} | "
            f"{v['walk_hostile'] / v['git_hostile']:.2f} | {ms(v['walk_plain'])} | {ms(v['git_plain'])} | "
            f"{v['walk_plain'] / v['git_plain']:.2f} | {v['walk_hostile'] / v['walk_plain']:.2f} |"
        )
    lines.append("")
    for n, v in worst.items():
        ratio = v["walk_hostile"] / v["git_hostile"]
        verdict = ratio <= 2
        ok &= verdict
        lines.append(
            f"- (d) hostile .gitignore, {n} files: walk {ratio:.2f}x git status (target <= 2): "
            f"{'PASS' if verdict else 'FAIL'}"
        )
    return "\n".join(lines), ok


def report(rows: list[Row], reps: int) -> tuple[str, bool]:
    lines = [
        f"Median of {reps} runs; times in ms; ratio = baseline / tether (higher is better for tether)"
        " except scan ratio = tether / git status (lower is better).",
        "",
        "| files | (a) tether incremental | shadow git add+commit | git status | speed-up vs shadow git |"
        " (b) scan warm | scan fresh Store | git status | warm / git | fresh / git |"
        " fresh, process with threads (as the LSP server): ms (/ git) |"
        " (c) tether restore 100 | git checkout C -- . | restore / git |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        v = r.values
        lines.append(
            f"| {r.size} | {ms(v['incr'])} | {ms(v['shadow'])} | {ms(v['git_status'])} | "
            f"{v['shadow'] / v['incr']:.0f}x | {ms(v['scan_warm'])} | {ms(v['scan_fresh'])} | "
            f"{ms(v['scan_git_status'])} | {v['scan_warm'] / v['scan_git_status']:.2f} | "
            f"{v['scan_fresh'] / v['scan_git_status']:.2f} | "
            f"{ms(v['scan_threaded'])} ({v['scan_threaded'] / v['scan_git_status']:.2f}) | "
            f"{ms(v['restore'])} | "
            f"{ms(v['git_checkout'])} | {v['restore'] / v['git_checkout']:.2f} |"
        )
    lines.append("")
    ok = True
    by_size = {r.size: r.values for r in rows}
    if 10_000 in by_size:
        ref = by_size[10_000]
        speedup = ref["shadow"] / ref["incr"]
        verdict = speedup >= 20
        ok &= verdict
        lines.append(
            f"- (a) incremental vs shadow git at 10000 files: {speedup:.0f}x (target >= 20x): "
            f"{'PASS' if verdict else 'FAIL'}"
        )
    else:  # --quick: the target is set at 10k files; smaller trees favour git
        for r in rows:
            lines.append(
                f"- (a) incremental vs shadow git at {r.size} files: "
                f"{r.values['shadow'] / r.values['incr']:.0f}x (the 20x target applies at 10000 files)"
            )
    if len(rows) > 1:
        flat = rows[-1].values["incr"] / rows[0].values["incr"]
        verdict = flat <= 3
        ok &= verdict
        lines.append(
            f"- (a) flat: incremental at {rows[-1].size} files / at {rows[0].size} files = {flat:.2f} "
            f"(target <= 3; shadow git: {rows[-1].values['shadow'] / rows[0].values['shadow']:.1f}): "
            f"{'PASS' if verdict else 'FAIL'}"
        )
    for r in rows:
        v = r.values
        for label, key in (("warm stat cache", "scan_warm"), ("fresh Store", "scan_fresh")):
            ratio = v[key] / v["scan_git_status"]
            verdict = ratio <= 1.5
            ok &= verdict
            lines.append(
                f"- (b) baseline scan, {label}, {r.size} files: {ratio:.2f}x git status (target <= 1.5): "
                f"{'PASS' if verdict else 'FAIL'}"
            )
    return "\n".join(lines), ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1k files only (CI smoke)")
    ap.add_argument("--sizes", default=None, help="comma-separated file counts (default 1000,10000,50000)")
    ap.add_argument("--reps", type=int, default=None, help="runs per measurement (default 7, quick 5)")
    ap.add_argument("--keep", action="store_true", help="keep the generated workspaces")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    ap.add_argument(
        "--worst", choices=("yes", "no", "only"), default="yes", help="(d), at the sizes up to 10000 files"
    )
    ap.add_argument("--first", choices=("yes", "no", "only"), default="yes", help="(e), at --files files")
    ap.add_argument("--files", type=int, default=None, help="(e)'s tree size (default 100000, --quick 2000)")
    ap.add_argument("--first-reps", type=int, default=None, help="(e)'s runs (default 1, --quick 3)")
    args = ap.parse_args()
    sizes = [1000] if args.quick else [int(s) for s in (args.sizes or "1000,10000,50000").split(",")]
    reps = args.reps or (5 if args.quick else 7)
    base = Path(tempfile.mkdtemp(prefix="tether-bench-", dir="/tmp"))
    os.environ["TETHER_STATE_DIR"] = str(base / "state")
    rows = []
    worst: dict[int, dict[str, float]] = {}
    first: dict[str, float] | None = None
    first_reps = args.first_reps or (3 if args.quick else 1)
    try:
        if args.first != "no":
            files = args.files or (2000 if args.quick else 100_000)
            print(f"... first checkpoint, {files} files", file=sys.stderr, flush=True)
            first = bench_first(files, base, first_reps)
        for n in sizes:
            if args.first == "only":
                break
            if args.worst != "only":
                print(f"... {n} files", file=sys.stderr, flush=True)
                rows.append(bench_size(n, base, reps))
            if args.worst != "no" and n <= 10_000:
                print(f"... {n} files, hostile .gitignore", file=sys.stderr, flush=True)
                worst[n] = bench_worst(n, base, reps)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    text, ok = report(rows, reps) if rows else ("", True)
    if worst:
        more, ok_worst = report_worst(worst)
        text, ok = text + more, ok and ok_worst
    if first is not None:
        more, ok_first = report_first(first, first_reps)
        text, ok = text + more, ok and ok_first
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    git_version = subprocess.run(
        ["git", "--version"], check=True, capture_output=True, text=True
    ).stdout.strip()
    header = (
        f"{git_version}; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs; "
        f"load average at the end {' '.join(load)}"
    )
    print(header)
    print(text)
    if args.markdown:
        args.markdown.write_text(f"{header}\n\n{text}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
