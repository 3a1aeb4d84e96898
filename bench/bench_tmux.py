"""tmux link vs the per-pane approach (tmux-resurrect's), in one run, on 1 / 10 / 50 panes.

    .venv/bin/python bench/bench_tmux.py              # 1, 10, 50 panes, 5 reps
    .venv/bin/python bench/bench_tmux.py --panes 50 --reps 3

Every pane holds ~1000 lines of scrollback. Medians of --reps runs (baselines at 50 panes: reps-2,
at least 3), measured in the same run against the same tmux server (a private socket under /tmp,
killed at the end):

- snapshot: ``TmuxLink.snapshot_bytes()`` with its change cache cleared (one ``list-panes -a``, one
  chained capture, /proc reads, redaction, canonical JSON) vs one ``tmux capture-pane`` and one
  ``ps`` per pane after a ``list-panes`` (what tmux-resurrect does per save);
- snapshot, unchanged: the same call when nothing changed (fingerprint only);
- restore: ``TmuxLink.restore()`` of a killed session (one chained tmux command, or a few when the
  chain exceeds tmux's 16 KiB message) vs one tmux call per pane (new-window / split-window with
  the same scrollback replay) plus one select-layout per window.

Targets: snapshot of 50 panes >= 5x faster than per-pane calls; restore of 50 panes <= 0.5 s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from tether.tmux.config import TmuxConfig
from tether.tmux.link import TmuxLink

TMUX = shutil.which("tmux") or "tmux"
PANES_PER_WINDOW = 4
FILL = (
    "seq -f 'scrollback line %g: the quick brown fox jumps over the lazy dog' 1 1000; "
    "exec bash --noprofile --norc -i"
)


def median_time(fn: Callable[[], object], reps: int, before: Callable[[], object] | None = None) -> float:
    times = []
    for _ in range(reps):
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class Bench:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.sock = str(tmp / "s")
        self.ws = tmp / "ws"
        self.ws.mkdir()
        self.state = tmp / "state"

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([TMUX, "-S", self.sock, *args], capture_output=True, text=True, check=False)
        if check and res.returncode != 0:
            raise SystemExit(f"tmux {args[0]} failed: {res.stderr.strip()}")
        return res

    def link(self) -> TmuxLink:
        cfg = TmuxConfig(socket_path=self.sock, shell="/bin/bash", shell_rc=False, scrollback_lines=2000)
        return TmuxLink(self.ws, cfg, state_dir=self.state)

    def populate(self, n: int) -> TmuxLink:
        """A session with n panes (4 per window), each with ~1000 lines of scrollback."""
        link = self.link()
        link.kill()
        # A session of its own keeps the server up while the measured session is killed/recreated
        # (tmux exits with its last session; a client racing that exit fails).
        if self.tmux("has-session", "-t", "=keeper", check=False).returncode != 0:
            self.tmux("new-session", "-d", "-s", "keeper", "sleep", "3600")
        s = link.session
        cmds: list[str] = ["new-session", "-d", "-s", s, "-x", "200", "-y", "60", "-c", str(self.ws), FILL]
        made = 1
        win = 0
        while made < n:
            if made % PANES_PER_WINDOW == 0:
                win += 1
                cmds += [";", "new-window", "-d", "-t", f"={s}:{win}", "-c", str(self.ws), FILL]
            else:
                cmds += [";", "split-window", "-t", f"={s}:{win}", "-c", str(self.ws), FILL]
                cmds += [";", "select-layout", "-t", f"={s}:{win}", "tiled"]
            made += 1
        self.tmux(*cmds)

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            out = self.tmux("list-panes", "-s", "-t", f"={s}:", "-F", "#{history_size}").stdout.split()
            if len(out) == n and all(int(x) >= 900 for x in out):
                break
            time.sleep(0.1)
        else:
            raise SystemExit(f"panes did not fill their scrollback: {out}")
        return link

    def resurrect_save(self, session: str) -> int:
        """tmux-resurrect's shape: list panes once, then per pane one capture-pane and one ps."""
        rows = self.tmux(
            "list-panes", "-s", "-t", f"={session}:", "-F", "#{pane_id}\t#{pane_pid}\t#{pane_current_path}"
        ).stdout.splitlines()
        total = 0
        for row in rows:
            pane_id, pid, _cwd = row.split("\t")
            text = self.tmux("capture-pane", "-p", "-J", "-S", "-2000", "-t", pane_id).stdout
            ps = subprocess.run(
                ["ps", "-eo", "ppid=,args="], capture_output=True, text=True, check=True
            ).stdout
            children = [ln for ln in ps.splitlines() if ln.split(None, 1)[0] == pid]
            total += len(text) + len(children)
        return total

    def per_pane_restore(self, session: str, layout: list[tuple[int, str, int]]) -> int:
        """One tmux call per pane (new-window / split-window replaying scrollback), one select-layout
        per window: the shape of tmux-resurrect's restore."""
        replay = self.tmp / "replay.txt"
        replay.write_text("scrollback line\n" * 1000)
        start = f"cat {replay}; exec bash --noprofile --norc -i"
        calls = 0
        self.tmux("new-session", "-d", "-s", session, "-x", "200", "-y", "60", "-c", str(self.ws), start)
        calls += 1
        for win, lay, panes in layout:
            for k in range(panes):
                if win == 0 and k == 0:
                    continue
                if k == 0:
                    self.tmux("new-window", "-d", "-t", f"={session}:{win}", "-c", str(self.ws), start)
                else:
                    self.tmux("split-window", "-t", f"={session}:{win}", "-c", str(self.ws), start)
                    self.tmux("select-layout", "-t", f"={session}:{win}", "tiled")
                calls += 1
            self.tmux("select-layout", "-t", f"={session}:{win}", lay)
            calls += 1
        return calls

    def kill_session(self, session: str) -> None:
        """Kill the session and wait for its shells to exit, so the next timed restore does not
        share the CPU with 50 dying bash processes."""
        res = self.tmux("list-panes", "-s", "-t", f"={session}:", "-F", "#{pane_pid}", check=False)
        pids = [int(p) for p in res.stdout.split()] if res.returncode == 0 else []
        self.tmux("kill-session", "-t", f"={session}", check=False)
        deadline = time.monotonic() + 10
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)]
            time.sleep(0.02)

    def shutdown(self) -> None:
        res = self.tmux("display-message", "-p", "#{pid}", check=False)
        pids = self.tmux("list-panes", "-a", "-F", "#{pane_pid}", check=False).stdout.split()
        if res.returncode == 0 and res.stdout.strip():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(res.stdout.strip()), signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--panes", type=int, nargs="*", default=[1, 10, 50])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tb-", dir="/tmp"))  # short: unix socket path limit
    home = tmp / "home"
    home.mkdir()
    os.environ["HOME"] = str(home)
    os.environ.pop("TMUX", None)
    bench = Bench(tmp)
    results: list[dict[str, float]] = []
    t_start = time.perf_counter()
    try:
        for n in args.panes:
            link = bench.populate(n)
            s = link.session

            def fresh_snapshot(lk: TmuxLink = link) -> bytes | None:
                lk._cache = None  # measure a real capture, not the unchanged-session shortcut
                return lk.snapshot_bytes()

            data = fresh_snapshot()
            assert data is not None
            snap = link.snapshot()
            assert snap is not None and sum(len(w.panes) for w in snap.windows) == n
            assert all(len(p.scrollback) >= 900 for w in snap.windows for p in w.panes)
            ours = median_time(fresh_snapshot, args.reps)
            cached = median_time(link.snapshot_bytes, args.reps)
            base_reps = args.reps if n < 50 else max(3, args.reps - 2)  # keeps the run under a minute
            theirs = median_time(lambda s=s: bench.resurrect_save(s), base_reps)

            layout = [(w.index, w.layout, len(w.panes)) for w in snap.windows]
            calls_ours = 0

            def our_restore(lk: TmuxLink = link, d: bytes = data) -> None:
                report = lk.restore(d, "never")
                assert report.recreated

            def kill(s: str = s) -> None:
                bench.kill_session(s)

            r_ours = median_time(our_restore, args.reps, before=kill)
            got = len(bench.tmux("list-panes", "-s", "-t", f"={s}:", "-F", "#{pane_id}").stdout.split())
            assert got == n, f"restored {got} panes, expected {n}"
            calls_ours = _count_chains(link, data, bench, s)
            calls_theirs = 0

            def their_restore(s: str = s, lay: list[tuple[int, str, int]] = layout) -> None:
                nonlocal calls_theirs
                calls_theirs = bench.per_pane_restore(s, lay)

            r_theirs = median_time(their_restore, base_reps, before=kill)
            bench.kill_session(s)
            results.append(
                {
                    "panes": n,
                    "snap": ours,
                    "snap_cached": cached,
                    "snap_base": theirs,
                    "restore": r_ours,
                    "restore_base": r_theirs,
                    "calls": calls_ours,
                    "calls_base": calls_theirs,
                    "bytes": len(data),
                }
            )
    finally:
        bench.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    ms = 1000.0
    print(f"tmux link benchmark (median of {args.reps}; tmux {_tmux_version()}; ~1000 scrollback lines/pane)")
    print(
        f"{'panes':>5} | {'snapshot':>9} {'per-pane':>9} {'speedup':>8} {'unchanged':>9} {'JSON':>8} | "
        f"{'restore':>8} {'per-pane':>9} {'speedup':>8} {'tmux calls':>11}"
    )
    for r in results:
        snap_x = r["snap_base"] / r["snap"]
        rest_x = r["restore_base"] / r["restore"]
        print(
            f"{int(r['panes']):>5} | {r['snap'] * ms:>7.1f}ms {r['snap_base'] * ms:>7.1f}ms "
            f"{snap_x:>7.1f}x {r['snap_cached'] * ms:>7.2f}ms {r['bytes'] / 1024:>6.0f}KB | "
            f"{r['restore'] * ms:>6.1f}ms {r['restore_base'] * ms:>7.1f}ms {rest_x:>7.1f}x "
            f"{int(r['calls']):>4} vs {int(r['calls_base']):<4}"
        )
    big = max(results, key=lambda r: r["panes"])
    snap_ok = big["snap_base"] / big["snap"] >= 5
    restore_ok = big["restore"] <= 0.5
    print(
        f"targets at {int(big['panes'])} panes: snapshot >= 5x per-pane: "
        f"{'PASS' if snap_ok else 'FAIL'} ({big['snap_base'] / big['snap']:.1f}x); "
        f"restore <= 0.5 s: {'PASS' if restore_ok else 'FAIL'} ({big['restore']:.3f} s)"
    )
    load = os.getloadavg()
    print(
        f"total bench time {time.perf_counter() - t_start:.1f}s; load average {load[0]:.1f} on "
        f"{os.cpu_count()} CPUs (absolute times scale with load; ratios are from the same run)"
    )
    return 0 if snap_ok and restore_ok else 1


def _count_chains(link: TmuxLink, data: bytes, bench: Bench, session: str) -> int:
    """How many tmux invocations our restore used (counted by wrapping the runner once)."""
    bench.kill_session(session)
    calls = 0
    orig = link._run

    def counting(args: object, check: bool = True, cwd: str | None = None) -> object:
        nonlocal calls
        calls += 1
        return orig(args, check, cwd)  # type: ignore[arg-type]

    link._run = counting  # type: ignore[method-assign]
    try:
        link.restore(data, "never")
    finally:
        link._run = orig  # type: ignore[method-assign]
    return calls


def _tmux_version() -> str:
    return subprocess.run([TMUX, "-V"], capture_output=True, text=True, check=False).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
