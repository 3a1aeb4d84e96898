"""What keeping the tmux side durable costs (tether.tmux_watch), on 1 / 10 / 50 panes.

    .venv/bin/python bench/bench_tmux_watch.py            # 1, 10, 50 panes, 7 reps
    .venv/bin/python bench/bench_tmux_watch.py --panes 10 --reps 5

Measured in one run against one private tmux server (a socket under /tmp, killed at the end),
medians of --reps:

- check, unchanged, in-process (the language server's watch thread every 3 s): one
  ``list-panes -s`` and /proc reads, nothing written;
- check, unchanged, as a hook runs it (``sh watch.sh``: a new Python process) vs
  ``python -c pass`` (the floor of any process the hook could start);
- the same two unchanged checks without /proc (``TETHER_NO_PROCFS=1``: psutil and one ``ps``
  call, as on macOS);
- check after a change (fingerprint + capture + the store write);
- change to stored: from ``tmux new-window`` (hooks) or a ``cd`` typed in a pane (shell hook) to
  the snapshot holding it in the store, end to end; the target is a kill 1 s later loses nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from tether.store.db import Store
from tether.tmux import watch as tmux_watch
from tether.tmux.config import TmuxConfig
from tether.tmux.link import TmuxLink
from tether.tmux.watch import TmuxWatch, read_live

TMUX = shutil.which("tmux") or "tmux"


def median(fn: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> float:
    t0 = time.perf_counter()
    while not cond():
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("condition not met")
        time.sleep(0.005)
    return time.perf_counter() - t0


def run(panes: int, reps: int, tmp: Path) -> dict[str, float]:
    sock_dir = Path(tempfile.mkdtemp(prefix="tb-", dir="/tmp"))
    sock = str(sock_dir / "s")
    ws = tmp / f"ws{panes}"
    (ws / "sub").mkdir(parents=True)
    state = tmp / f"state{panes}"
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    (home / ".bashrc").write_text("PS1='$ '\n")
    os.environ.update(HOME=str(home), SHELL="/bin/bash", TETHER_STATE_DIR=str(state))
    cfg = TmuxConfig(socket_path=sock, shell="/bin/bash")
    link = TmuxLink(ws, cfg, state_dir=state)
    try:
        link.ensure_session()
        for i in range(panes - 1):
            target = f"={link.session}:{i // 4}"
            if i % 4 == 3:
                subprocess.run([TMUX, "-S", sock, "new-window", "-d", "-t", f"={link.session}:"], check=True)
            else:
                subprocess.run([TMUX, "-S", sock, "split-window", "-d", "-t", target], check=True)
                subprocess.run([TMUX, "-S", sock, "select-layout", "-t", target, "tiled"], check=True)
        watch = TmuxWatch(link)
        watch.check_now(force=True)
        target = tmux_watch.target_for(link)
        # Let hooks and first prompts settle.
        wait_for(lambda: watch.check_now() == "unchanged")
        out: dict[str, float] = {}
        out["check_unchanged_ms"] = median(lambda: tmux_watch.check(target), reps) * 1000
        launcher = str(target.launcher)
        out["hook_process_ms"] = (
            median(lambda: subprocess.run(["sh", launcher, "bench"], check=True), reps) * 1000
        )
        out["python_pass_ms"] = (
            median(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), reps) * 1000
        )
        out["check_changed_ms"] = median(lambda: tmux_watch.check(target, force=True), reps) * 1000
        # The same unchanged check where /proc is missing (macOS): psutil + one `ps` call.
        os.environ["TETHER_NO_PROCFS"] = "1"
        try:
            tmux_watch.check(target, force=True)  # its fingerprint is the fallback's from now on
            out["check_unchanged_noproc_ms"] = median(lambda: tmux_watch.check(target), reps) * 1000
            out["hook_process_noproc_ms"] = (
                median(lambda: subprocess.run(["sh", launcher, "bench"], check=True), reps) * 1000
            )
        finally:
            del os.environ["TETHER_NO_PROCFS"]
            tmux_watch.check(target, force=True)

        def live_windows() -> int:
            with Store.open(ws, state) as store:
                found = read_live(store)
            return found.data.count(b'"layout"') if found else 0

        lat = []
        for _ in range(reps):
            before = live_windows()
            subprocess.run([TMUX, "-S", sock, "new-window", "-d", "-t", f"={link.session}:"], check=True)
            lat.append(wait_for(lambda b=before: live_windows() > b))
        out["new_window_to_stored_ms"] = statistics.median(lat) * 1000

        def cwd_of_first() -> str:
            with Store.open(ws, state) as store:
                found = read_live(store)
            return found.data.decode() if found else ""

        lat = []
        for i in range(reps):
            where = "sub" if i % 2 == 0 else ".."
            expect = str(ws / "sub") if i % 2 == 0 else str(ws)
            pane = f"={link.session}:0.0"
            subprocess.run([TMUX, "-S", sock, "send-keys", "-t", pane, "-l", f"cd {where}"], check=True)
            t0 = time.perf_counter()
            subprocess.run([TMUX, "-S", sock, "send-keys", "-t", pane, "Enter"], check=True)
            wait_for(lambda e=expect: f'"cwd":"{e}"' in cwd_of_first() and _pane0_cwd(cwd_of_first()) == e)
            lat.append(time.perf_counter() - t0)
        out["cd_to_stored_ms"] = statistics.median(lat) * 1000
        return out
    finally:
        subprocess.run([TMUX, "-S", sock, "kill-server"], capture_output=True, check=False)
        shutil.rmtree(sock_dir, ignore_errors=True)


def _pane0_cwd(snapshot_json: str) -> str:
    import json

    try:
        doc = json.loads(snapshot_json)
    except ValueError:
        return ""
    wins = sorted(doc["windows"], key=lambda w: w["index"])
    panes = sorted(wins[0]["panes"], key=lambda p: p["index"])
    return str(panes[0]["cwd"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--panes", type=int, nargs="*", default=[1, 10, 50])
    p.add_argument("--reps", type=int, default=7)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="tether-bench-watch-") as d:
        rows = [(n, run(n, args.reps, Path(d))) for n in args.panes]
    print(
        f"{'panes':>5} {'unchanged':>10} {'hook proc':>10} {'py pass':>8} {'ratio':>6} "
        f"{'changed':>8} {'new-win→stored':>15} {'cd→stored':>10} {'no /proc: unch.':>16} {'hook proc':>10}"
    )
    for n, r in rows:
        print(
            f"{n:>5} {r['check_unchanged_ms']:>8.1f}ms {r['hook_process_ms']:>8.1f}ms "
            f"{r['python_pass_ms']:>6.1f}ms {r['hook_process_ms'] / r['python_pass_ms']:>5.2f}x "
            f"{r['check_changed_ms']:>6.1f}ms {r['new_window_to_stored_ms']:>13.0f}ms "
            f"{r['cd_to_stored_ms']:>8.0f}ms {r['check_unchanged_noproc_ms']:>14.1f}ms "
            f"{r['hook_process_noproc_ms']:>8.1f}ms "
            f"({r['hook_process_noproc_ms'] / r['python_pass_ms']:.2f}x)"
        )


if __name__ == "__main__":
    main()
