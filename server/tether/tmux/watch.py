"""The tmux side made durable on its own: a snapshot whenever the structure of a Tether session,
a pane's working directory or a pane's foreground command changes, not only at checkpoints.

Three triggers call :func:`check`:

- tmux hooks set on Tether's sessions only (``after-new-window``, ``after-split-window``,
  ``pane-exited``, ``window-layout-changed``…) run ``<state>/tmux/<session>/watch.sh`` in the
  background (``run-shell -b``), which is ``python -m tether.tmux.watch``;
- the pane shell hook Tether installs runs the same script after a ``cd`` (bash: at the next
  prompt; zsh: ``chpwd``), in a background subshell: the prompt never waits for it;
- :class:`TmuxWatch`, a thread the language server (and the MCP server) runs, checks every few
  seconds; it also catches a new foreground command, which no hook reports.

A check costs one ``list-panes -s`` call and a few /proc reads (the fingerprint; without /proc,
one ``ps`` call and psutil), and imports
nothing heavy. Only a changed fingerprint loads the tmux link and the store and writes a
snapshot (store live state :data:`STATE_LIVE`). Scrollback and shell history alone (the
"content") are snapshotted at most every :data:`CONTENT_INTERVAL` seconds. Checks of one session
are serialised with a lock file, across processes and threads. Resume uses the newer of that
snapshot and the last checkpoint's (:func:`latest_snapshot`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from tether.procs import foreground_cmdline, foreground_groups

if TYPE_CHECKING:
    import logging

    from tether.store.db import Store
    from tether.tmux.link import TmuxLink

# The hooks' process imports only what an unchanged session needs (no dataclasses, logging,
# store or tmux link): it runs after every `cd` and on every window change.


def _log() -> logging.Logger:
    import logging

    return logging.getLogger(__name__)


STATE_LIVE = "tmux.live"  # store live state: b"<header line>\n" + snapshot JSON
_HEADER = b"tether-tmux-live 1"
HOOKS_OPTION = "@tether_hooks"
# 2: the launcher runs `python -m tether.tmux.watch` (sessions hooked with 1 get the new one).
HOOKS_VERSION = "2"
WATCH_INTERVAL = 3.0
CONTENT_INTERVAL = 60.0
LOCK_TIMEOUT = 10.0
_TMUX_TIMEOUT = 10.0
_SEP = "\x1f"
# Leading fields are split off; the rest of the line is the pane's structure as tmux sees it.
_FORMAT = _SEP.join(
    (
        "#{history_size}",
        "#{@tether_pane}",
        "#{pane_pid}",
        "#{" + HOOKS_OPTION + "}",
        "#{window_index}",
        "#{window_zoomed_flag}",
        "#{pane_id}",
        "#{pane_dead}",
        "#{window_layout}",
        "#{pane_current_path}",
        "#{window_name}",
    )
)
# Session hooks that mean "the structure may have changed". Session hooks shadow the global ones
# of the same name, so the user's global entries are copied in front of Tether's.
HOOKS = (
    "after-new-window",
    "after-split-window",
    "after-kill-pane",
    "after-rename-window",
    "pane-exited",
    "pane-died",
    "window-layout-changed",
    "window-renamed",
    "window-unlinked",
)
_OUR_INDEX = 90

Outcome = Literal["snapshot", "unchanged", "gone", "busy", "failed"]


class Target(NamedTuple):
    """Everything a check needs, also written into the session's launcher script."""

    root: Path
    session: str
    state_dir: Path  # resolved: the store's and the tmux link's
    tmux_bin: str
    socket_path: str | None  # None: tmux's default server
    # The capture options of the link (TmuxConfig wire form: scrollbackLines, historyLines,
    # envSecretPatterns); never anything that runs a command.
    config: dict[str, Any] = {}  # a NamedTuple default: shared, never mutated

    def tmux_argv(self) -> list[str]:
        return [self.tmux_bin, *(["-S", self.socket_path] if self.socket_path else [])]

    @property
    def session_dir(self) -> Path:
        return self.state_dir / "tmux" / self.session

    @property
    def launcher(self) -> Path:
        return self.session_dir / "watch.sh"


def target_for(link: TmuxLink) -> Target:
    """The target of a live :class:`~tether.tmux.link.TmuxLink`."""
    from tether import paths

    cfg = link.config
    return Target(
        root=link.root,
        session=link.session,
        state_dir=paths.state_dir(link._state_dir).resolve(),
        tmux_bin=link.base_argv()[0],
        socket_path=link.socket_path,
        config={
            "scrollbackLines": cfg.scrollback_lines,
            "historyLines": cfg.history_lines,
            "envSecretPatterns": list(cfg.env_secret_patterns),
        },
    )


# --- fingerprint ----------------------------------------------------------------------------


class Fingerprint(NamedTuple):
    structure: str  # windows, layouts, panes, cwds, foreground commands
    content: str  # scrollback sizes and history files: snapshotted at most every CONTENT_INTERVAL
    hooks: bool  # Tether's hooks are set on the session


def fingerprint(target: Target) -> Fingerprint | None:
    """One ``list-panes`` call and /proc reads; None when the session is not running."""
    try:
        res = subprocess.run(
            [*target.tmux_argv(), "list-panes", "-s", "-t", f"={target.session}", "-F", _FORMAT],
            capture_output=True,
            text=True,
            errors="surrogateescape",
            timeout=_TMUX_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _log().debug("tmux list-panes failed: %s", exc)
        return None
    if res.returncode != 0 or not res.stdout.strip():
        return None
    hist_dir = target.session_dir / "hist"
    structure: list[str] = []
    content: list[str] = []
    hooks = True
    lines = [line.split(_SEP, 4) for line in res.stdout.splitlines()]
    groups = foreground_groups(int(p[2]) for p in lines if len(p) == 5 and p[2].isdigit())
    for parts in lines:
        if len(parts) != 5:
            structure.append(_SEP.join(parts))
            continue
        history, uid, pid, hook_version, rest = parts
        hooks = hooks and hook_version == HOOKS_VERSION
        fg = foreground_cmdline(int(pid), groups) if pid.isdigit() else b""
        structure.append(rest + _SEP + fg.decode("utf-8", "surrogateescape"))
        size = -1
        if uid and "/" not in uid and uid not in (".", ".."):
            with contextlib.suppress(OSError):
                size = os.stat(hist_dir / f"{uid}.hist").st_size
        content.append(f"{uid}:{history}:{size}")
    return Fingerprint("\n".join(structure), "\n".join(content), hooks)


# --- check ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path, timeout: float) -> Iterator[bool]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.02)
        yield True
    finally:
        os.close(fd)


def _read_seen(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _write_seen(path: Path, fp: Fingerprint, when: float) -> None:
    from tether.paths import write_private_file

    doc = {"structure": fp.structure, "content": fp.content, "time": when}
    write_private_file(path, json.dumps(doc).encode("utf-8"))


def check(
    target: Target,
    *,
    force: bool = False,
    link: TmuxLink | None = None,
    store: Store | None = None,
    now: float | None = None,
) -> Outcome:
    """Snapshot the session when its fingerprint changed since the last snapshot (``force``:
    in any case). Never raises: a trigger must not fail its shell or its hook."""
    try:
        from tether.paths import ensure_private_dir

        if not target.session_dir.exists() and fingerprint(target) is None:
            return "gone"  # never ran here, and not running: nothing to create, not even a dir
        ensure_private_dir(target.session_dir)
        with _locked(target.session_dir / "watch.lock", LOCK_TIMEOUT) as got:
            if not got:
                return "busy"
            fp = fingerprint(target)
            if fp is None:
                return "gone"  # the last snapshot stays: it is what a resume recreates
            seen_path = target.session_dir / "watch.json"
            seen = _read_seen(seen_path)
            t = time.time() if now is None else now
            last = seen.get("time")
            last_time = float(last) if isinstance(last, int | float) else 0.0
            content_due = fp.content != seen.get("content") and t - last_time >= CONTENT_INTERVAL
            if not fp.hooks:
                install_hooks(target)
            if not force and fp.structure == seen.get("structure") and not content_due:
                return "unchanged"
            data = _capture(target, link)
            if data is None:
                return "gone"
            _store_live(target, data, t, store)
            # The fingerprint from before the capture: a change during it is seen next time.
            _write_seen(seen_path, fp, t)
            return "snapshot"
    except Exception as exc:
        _log().warning("tmux snapshot of %s failed: %s", target.session, exc)
        return "failed"


def _capture(target: Target, link: TmuxLink | None) -> bytes | None:
    if link is None:
        from tether.tmux.config import TmuxConfig
        from tether.tmux.link import TmuxLink

        cfg, _ = TmuxConfig.from_wire(dict(target.config))
        cfg.socket_path = target.socket_path
        link = TmuxLink(target.root, cfg, state_dir=target.state_dir)
    return link.snapshot_bytes()


def _store_live(target: Target, data: bytes, when: float, store: Store | None) -> None:
    header = _HEADER + b" " + repr(when).encode() + b" " + target.session.encode() + b"\n"
    if store is not None:
        store.put_state(STATE_LIVE, header + data)
        return
    from tether.store.db import Store

    with Store.open(target.root, target.state_dir) as own:
        own.put_state(STATE_LIVE, header + data)


# --- hooks ----------------------------------------------------------------------------------


def launcher_text(target: Target) -> str:
    import shlex

    argv = [
        sys.executable, "-m", "tether.tmux.watch",
        "--root", str(target.root),
        "--session", target.session,
        "--state-dir", str(target.state_dir),
        "--tmux", target.tmux_bin,
        "--config", json.dumps(target.config, sort_keys=True),
    ]  # fmt: skip
    if target.socket_path:
        argv += ["--socket", target.socket_path]
    return (
        "#!/bin/sh\n"
        f"# Written by Tether: snapshot tmux session {target.session} when it changed.\n"
        f'exec {shlex.join(argv)} "$@" </dev/null >/dev/null 2>&1\n'
    )


def _tmux_quote(text: str) -> str:
    """A single tmux command-language word: like sh, '…' is literal and '\\'' a quote."""
    return "'" + text.replace("'", "'\\''") + "'"


def hook_command(target: Target) -> str:
    import shlex

    # run-shell expands formats in its argument: a '#' in a path must stay a '#'.
    shell = f"sh {shlex.quote(str(target.launcher))} hook".replace("#", "##")
    return f"run-shell -b {_tmux_quote(shell)}"


def install_hooks(target: Target) -> None:
    """Write the launcher and set Tether's hooks on the session (idempotent), keeping the
    user's global hooks of the same names working for it."""
    from tether.paths import write_private_file

    write_private_file(target.launcher, launcher_text(target).encode("utf-8"))
    tmux = target.tmux_argv()
    run = subprocess.run(
        [*tmux, "show-hooks", "-g", ";", "show-hooks", "-gw"],
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=_TMUX_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    globals_: list[tuple[str, str]] = []
    for line in run.stdout.splitlines():
        name, _, rest = line.partition("[")
        index, _, command = rest.partition("] ")
        if name in HOOKS and index.isdigit() and int(index) != _OUR_INDEX and command:
            globals_.append((f"{name}[{index}]", command))
    s = f"={target.session}:"
    cmds: list[list[str]] = [["set-hook", "-t", s, name, command] for name, command in globals_]
    ours = hook_command(target)
    cmds += [["set-hook", "-t", s, f"{name}[{_OUR_INDEX}]", ours] for name in HOOKS]
    cmds.append(["set-option", "-t", s, HOOKS_OPTION, HOOKS_VERSION])
    from tether.tmux.chain import join

    res = subprocess.run(
        [*tmux, *join(cmds)],
        capture_output=True,
        text=True,
        timeout=_TMUX_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if res.returncode != 0:
        _log().warning("could not set tmux hooks on %s: %s", target.session, res.stderr.strip())


# --- reading it back ------------------------------------------------------------------------


class StoredSnapshot(NamedTuple):
    data: bytes  # snapshot JSON (tmux_link.TmuxSnapshot)
    time: float
    checkpoint: int | None  # None: taken on a change of the session, between checkpoints

    def describe(self) -> str:
        if self.checkpoint is not None:
            return f"checkpoint {self.checkpoint}"
        return "its snapshot of " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.time))


def read_live(store: Store) -> StoredSnapshot | None:
    raw = store.get_state(STATE_LIVE)
    if not raw:
        return None
    head, sep, body = raw.partition(b"\n")
    parts = head.split(b" ")
    if not sep or len(parts) < 3 or b" ".join(parts[:2]) != _HEADER:
        return None
    try:
        when = float(parts[2])
    except ValueError:
        return None
    return StoredSnapshot(body, when, None)


def latest_snapshot(store: Store) -> StoredSnapshot | None:
    """The newest tmux snapshot of the workspace: the one taken on its last change, or the last
    checkpoint's, whichever is newer; None when none was ever recorded."""
    from tether.protocol import ATTACH_TMUX

    live = read_live(store)
    found = store.latest_attachment(ATTACH_TMUX)
    at_checkpoint = None
    if found is not None:
        at_checkpoint = StoredSnapshot(found[1], store.get_checkpoint(found[0]).time, found[0])
    if live is None:
        return at_checkpoint
    if at_checkpoint is None or live.time > at_checkpoint.time:
        return live
    return at_checkpoint


# --- the service ----------------------------------------------------------------------------


class TmuxWatch:
    """Checks the workspace's tmux session every ``interval`` seconds in a daemon thread.

    Started by the language server; the MCP server starts one the same way::

        watch = TmuxWatch(link)   # a tether.tmux.link.TmuxLink (user_link(root, state_dir)[0])
        watch.start()
        ...
        watch.stop()

    No pygls here. The thread opens its own store connection only when it writes a snapshot.
    """

    def __init__(self, link: TmuxLink, interval: float = WATCH_INTERVAL) -> None:
        # Its own link: a TmuxLink keeps a snapshot cache that is not for two threads, and the
        # caller's link goes on being used by the caller (checkpoints, resume).
        self.link = type(link)(link.root, link.config, state_dir=link._state_dir)
        self.target = target_for(link)
        self.interval = interval
        self.snapshots = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def check_now(self, force: bool = False, store: Store | None = None) -> Outcome:
        """One check, in the caller's thread (e.g. right after the session was created)."""
        with self._lock:  # the link's snapshot cache is not for two threads at once
            outcome = check(self.target, force=force, link=self.link, store=store)
        if outcome == "snapshot":
            self.snapshots += 1
        return outcome

    def _loop(self) -> None:
        from tether.tmux.presence import server_may_run

        while not self._stop.wait(self.interval):
            # No tmux server at the link's socket: no process to ask every few seconds (the
            # servers run this beside an agent's steps, whose timing it would disturb).
            if server_may_run(self.link.socket_path):
                self.check_now()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="tether-tmux-watch", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def main(argv: list[str] | None = None) -> int:
    """``python -m tether.tmux.watch`` (the launcher run by hooks): one check, exit 0 always."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m tether.tmux.watch")
    p.add_argument("--root", required=True)
    p.add_argument("--session", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--tmux", default="tmux")
    p.add_argument("--socket", default=None)
    p.add_argument("--config", default="{}")
    p.add_argument("reason", nargs="?", default="manual")
    args = p.parse_args(argv)
    try:
        config = json.loads(args.config)
    except ValueError:
        config = {}
    target = Target(
        root=Path(args.root),
        session=args.session,
        state_dir=Path(args.state_dir),
        tmux_bin=args.tmux,
        socket_path=args.socket,
        config=config if isinstance(config, dict) else {},
    )
    check(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
