"""The tmux session is durable on its own (tether.tmux.watch), on a real private tmux server:
hooks on Tether's session and the pane shell hook snapshot it on every structural change or
`cd`, so a server killed right after comes back with it; an unchanged session costs a
fingerprint and writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.retry import retry_until
from tests.support.tmuxsrv import PrivateTmux
from tests.tmux.conftest import run_in, wait_prompt
from tether.store.db import Store
from tether.tmux import watch as tmux_watch
from tether.tmux.link import TmuxLink
from tether.tmux.snapshot import TmuxSnapshot
from tether.tmux.watch import STATE_LIVE, TmuxWatch, latest_snapshot, read_live

MakeLink = Callable[..., TmuxLink]


def live_snapshot(workspace: Path, state_dir: Path) -> TmuxSnapshot | None:
    with Store.open(workspace, state_dir) as store:
        found = read_live(store)
    return TmuxSnapshot.from_bytes(found.data) if found else None


def live_updated(workspace: Path, state_dir: Path) -> float | None:
    with Store.open(workspace, state_dir) as store:
        rows = store.query("SELECT updated FROM state WHERE name=?", (STATE_LIVE,))
    return float(rows[0][0]) if rows else None


def window_names(snap: TmuxSnapshot | None) -> list[str]:
    return [w.name for w in snap.windows] if snap else []


def started(make_link: MakeLink, **kw: object) -> tuple[TmuxLink, TmuxWatch]:
    link = make_link(**kw)
    link.ensure_session()
    watch = TmuxWatch(link)
    assert watch.check_now(force=True) == "snapshot"
    return link, watch


def test_new_session_is_snapshotted_and_hooked(
    tmux_server: PrivateTmux, make_link: MakeLink, workspace: Path, state_dir: Path
) -> None:
    link, _ = started(make_link)
    assert window_names(live_snapshot(workspace, state_dir)) == ["shell"]
    hooks = tmux_server.cmd("show-hooks", "-t", f"={link.session}:").stdout
    for name in ("after-new-window", "after-split-window", "after-kill-pane", "window-unlinked"):
        assert f"{name}[90] run-shell -b" in hooks, hooks
    # Only Tether's session: a session of the user's on the same server gets no hook.
    tmux_server.cmd("new-session", "-d", "-s", "users-own")
    assert "run-shell" not in tmux_server.cmd("show-hooks", "-t", "=users-own:").stdout


def test_new_window_then_server_killed_comes_back(
    tmux_server: PrivateTmux, make_link: MakeLink, workspace: Path, state_dir: Path
) -> None:
    link, _ = started(make_link)
    # The user adds a window and a split with tmux itself: no checkpoint, no Tether command.
    tmux_server.cmd("new-window", "-d", "-t", f"={link.session}:", "-n", "server")
    tmux_server.cmd("split-window", "-d", "-t", f"={link.session}:server")
    snap = retry_until(
        lambda: (
            (s := live_snapshot(workspace, state_dir))
            and len(s.windows) == 2
            and len(s.windows[1].panes) == 2
            and s
        ),
        timeout=15,
        what="the hooks' snapshot with the new window and its split",
    )
    assert window_names(snap) == ["shell", "server"]
    tmux_server.kill()

    with Store.open(workspace, state_dir) as store:
        found = latest_snapshot(store)
    assert found is not None and found.checkpoint is None  # no checkpoint was ever made
    report = make_link().restore(found.data)
    assert report.recreated
    res = tmux_server.cmd("list-windows", "-t", f"={link.session}:", "-F", "#{window_name} #{window_panes}")
    assert res.stdout.split("\n")[:2] == ["shell 1", "server 2"]


def test_cd_in_a_pane_is_snapshotted(
    tmux_server: PrivateTmux, make_link: MakeLink, workspace: Path, state_dir: Path
) -> None:
    (workspace / "sub dir").mkdir()
    link, _ = started(make_link)
    target = f"={link.session}:0"
    wait_prompt(tmux_server, target)
    run_in(tmux_server, target, "cd 'sub dir'")
    snap = retry_until(
        lambda: (
            (s := live_snapshot(workspace, state_dir)) and s.windows[0].panes[0].cwd.endswith("sub dir") and s
        ),
        timeout=15,
        what="the shell hook's snapshot after cd",
    )
    assert snap.windows[0].panes[0].cwd == str(workspace / "sub dir")


def test_unchanged_session_writes_nothing(
    tmux_server: PrivateTmux, make_link: MakeLink, workspace: Path, state_dir: Path
) -> None:
    link, watch = started(make_link)
    wait_prompt(tmux_server, f"={link.session}:0")
    # Let the hooks and the first prompt settle, then take the reference point.
    retry_until(lambda: watch.check_now() == "unchanged", timeout=10, what="a settled session")
    before = live_updated(workspace, state_dir)
    outcomes = [watch.check_now() for _ in range(5)]
    assert outcomes == ["unchanged"] * 5
    assert live_updated(workspace, state_dir) == before
    # The same check run as the hooks run it (a separate process) agrees.
    launcher = Path(state_dir).resolve() / "tmux" / link.session / "watch.sh"
    subprocess.run(["sh", str(launcher), "test"], check=True, timeout=30)
    assert live_updated(workspace, state_dir) == before


def test_scrollback_alone_is_snapshotted_at_most_every_minute(
    tmux_server: PrivateTmux, make_link: MakeLink, workspace: Path, state_dir: Path
) -> None:
    link, watch = started(make_link)
    target = tmux_watch.target_for(link)
    run_in(tmux_server, f"={link.session}:0", "seq 1 300")
    retry_until(lambda: watch.check_now() == "unchanged", timeout=10, what="a settled session")
    seen = json.loads((target.session_dir / "watch.json").read_text())
    assert tmux_watch.check(target, now=seen["time"] + 30) == "unchanged"
    run_in(tmux_server, f"={link.session}:0", "seq 1 50")
    retry_until(
        lambda: tmux_watch.fingerprint(target) and tmux_watch.fingerprint(target).content != seen["content"],  # type: ignore[union-attr]
        timeout=10,
        what="new output",
    )
    assert tmux_watch.check(target, now=seen["time"] + 61) == "snapshot"


def test_users_global_hooks_keep_working(
    tmux_server: PrivateTmux, make_link: MakeLink, tmp_path: Path
) -> None:
    marker = tmp_path / "user-hook-ran"
    tmux_server.cmd("start-server")
    tmux_server.cmd("new-session", "-d", "-s", "placeholder")
    tmux_server.cmd("set-hook", "-g", "after-new-window", f"run-shell 'touch {marker}'")
    link, _ = started(make_link)
    tmux_server.cmd("new-window", "-d", "-t", f"={link.session}:")
    retry_until(marker.exists, timeout=10, what="the user's own global hook")


def test_hostile_state_dir_path_still_hooks(
    tmux_server: PrivateTmux, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tether.tmux.config import TmuxConfig

    odd = tmp_path / "it's a #{pane_id} $(touch x) dir"
    monkeypatch.setenv("TETHER_STATE_DIR", str(odd))
    cfg = TmuxConfig(socket_path=tmux_server.socket_path, shell="/bin/bash")
    link = TmuxLink(workspace, cfg, state_dir=odd)
    link.ensure_session()
    assert TmuxWatch(link).check_now(force=True) == "snapshot"
    tmux_server.cmd("new-window", "-d", "-t", f"={link.session}:", "-n", "second")
    retry_until(
        lambda: window_names(live_snapshot(workspace, odd)) == ["shell", "second"],
        timeout=15,
        what="the hook's snapshot under an odd state dir",
    )
    assert not (workspace / "x").exists() and not Path("x").exists()


def test_no_session_is_gone_and_keeps_the_last_snapshot(
    tmux_server: PrivateTmux, make_link: MakeLink, workspace: Path, state_dir: Path
) -> None:
    _, watch = started(make_link)
    tmux_server.kill()
    assert watch.check_now() == "gone"
    assert window_names(live_snapshot(workspace, state_dir)) == ["shell"]


def test_module_entry_point_imports_little(
    tmux_server: PrivateTmux, make_link: MakeLink, state_dir: Path
) -> None:
    """The hooks' path when nothing changed loads neither the store nor the tmux link."""
    link, watch = started(make_link)
    retry_until(lambda: watch.check_now() == "unchanged", timeout=10, what="a settled session")
    t = tmux_watch.target_for(link)
    code = (
        "import sys; from tether.tmux import watch as w; from pathlib import Path;"
        f"t = w.Target(Path({str(t.root)!r}), {t.session!r}, Path({str(t.state_dir)!r}), {t.tmux_bin!r},"
        f" {t.socket_path!r}, {t.config!r});"
        "print(w.check(t)); print(sorted(m for m in sys.modules if m in"
        " ('tether.store', 'tether.store.db', 'tether.tmux.link', 'sqlite3', 'libtmux')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env={**os.environ},
    ).stdout.split("\n")
    assert out[0] == "unchanged"
    assert out[1] == "[]"
