"""The tmux server SIGKILLed while a snapshot is being taken (real tmux, private sockets).

A checkpoint taken meanwhile must still record the files, and its tmux attachment is either a
complete, valid snapshot (every pane, with its scrollback) or absent, never a partial one. The
snapshot call itself returns a snapshot, returns None, or raises TmuxError with a clear message.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.support.retry import retry_until
from tests.support.tmuxsrv import PrivateTmux, private_tmux_server
from tether.checkpoints.checkpointer import Checkpointer
from tether.errors import TmuxError
from tether.store.db import Store
from tether.tmux.config import TmuxConfig
from tether.tmux.link import TmuxLink
from tether.tmux.snapshot import TmuxSnapshot

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("TETHER_FAULT_SEED", "20261122"))
ITERATIONS = 24
WINDOWS = 3
LINES = 1500


def _session(srv: PrivateTmux, root: Path, state: Path) -> TmuxLink:
    link = TmuxLink(root, TmuxConfig(socket_path=srv.socket_path, shell="/bin/sh", shell_rc=False), state)
    link.ensure_session()
    s = link.session
    for w in range(1, WINDOWS):
        srv.cmd("new-window", "-d", "-t", f"={s}:{w}", "-n", f"w{w}", "--", "/bin/sh")
    for w in range(WINDOWS):
        srv.cmd("send-keys", "-t", f"={s}:{w}", "-l", "--", f"seq 1 {LINES}; echo END-{w}")
        srv.cmd("send-keys", "-t", f"={s}:{w}", "Enter")
    for w in range(WINDOWS):
        retry_until(
            lambda w=w: f"END-{w}\n" in srv.cmd("capture-pane", "-p", "-t", f"={s}:{w}", check=False).stdout,
            timeout=15,
            what=f"output in window {w}",
        )
    return link


def _complete(snap: TmuxSnapshot) -> bool:
    panes = [p for w in snap.windows for p in w.panes]
    return len(snap.windows) == WINDOWS and all(any("END-" in ln for ln in p.scrollback) for p in panes)


def _kill_at(srv: PrivateTmux, pid: int, delay: float) -> None:
    time.sleep(delay)  # not polling: the injected fault's timing
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def test_tmux_killed_mid_snapshot_never_stores_a_partial_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHELL", "/bin/sh")
    rng = random.Random(SEED)
    state = tmp_path / "state"
    outcomes = {"complete": 0, "absent": 0}
    calls = {"snapshot": 0, "none": 0, "tmux-error": 0}
    run_time = None
    for it in range(ITERATIONS):
        root = tmp_path / f"ws{it}"
        root.mkdir()
        (root / "a.txt").write_text(f"iteration {it}\n")
        with private_tmux_server() as srv:
            link = _session(srv, root, state)
            if run_time is None:
                t0 = time.monotonic()
                assert link.snapshot() is not None
                run_time = time.monotonic() - t0
                link = TmuxLink(link.root, link.config, state)  # a fresh link: no cached snapshot
            pid = srv.server_pid()
            assert pid
            killer = threading.Thread(target=_kill_at, args=(srv, pid, rng.uniform(0, run_time * 1.5)))
            with Store.open(root, state) as store:
                cp = Checkpointer(store)
                cp.add_provider("tmux", link.snapshot_bytes)
                killer.start()
                info = cp.checkpoint("manual", full=True, allow_empty=True).info
                killer.join()
                assert info is not None and "a.txt" in info.files, f"iteration {it}: files not recorded"
                data = store.attachment(info.id, "tmux")
            if data is None:
                outcomes["absent"] += 1
            else:
                snap = TmuxSnapshot.from_bytes(data)
                assert _complete(snap), f"seed={SEED} iteration={it}: partial snapshot stored"
                outcomes["complete"] += 1
            # The bare call after the kill: None or a clear TmuxError, nothing else.
            try:
                after = TmuxLink(link.root, link.config, state).snapshot()
                calls["none" if after is None else "snapshot"] += 1
                if after is not None:
                    assert _complete(after)
            except TmuxError as exc:
                assert exc.message
                calls["tmux-error"] += 1
    print(f"tmux kills: {ITERATIONS}, checkpoint attachments {outcomes}, later snapshot calls {calls}")
    assert outcomes["absent"] > 0 or outcomes["complete"] == ITERATIONS
