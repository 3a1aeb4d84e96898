"""Session commands: ``tether start``, ``tether attach``, ``tether doctor``."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from tether import paths
from tether.cli.common import add_output_flags, find_workspace, register_parsers
from tether.cli.output import emit, warn
from tether.errors import CorruptStoreError, TetherError, TmuxError
from tether.text import escape
from tether.tmux.config import RunPolicy
from tether.tmux.link import TmuxLink
from tether.tmux.user import user_link

if TYPE_CHECKING:
    from tether.tmux.watch import StoredSnapshot


def register(sub: Any, only: str | None = None) -> None:
    register_parsers(sub, PARSERS, only)


def _start_parser(sub: Any) -> None:
    p = sub.add_parser("start", help="create (or find) the workspace's tmux session and print its name")
    p.add_argument("--attach", action="store_true", help="attach to it when run from a terminal")
    add_output_flags(p)
    p.set_defaults(handler=cmd_start)


def _attach_parser(sub: Any) -> None:
    p = sub.add_parser(
        "attach", help="attach to the workspace's tmux session, recreating it from the last snapshot if dead"
    )
    p.add_argument("--print", action="store_true", help="print the attach command instead of running it")
    p.add_argument(
        "--no-run",
        action="store_true",
        help="when recreating, type every recorded command without running any (even allowlisted ones)",
    )
    add_output_flags(p)
    p.set_defaults(handler=cmd_attach)


def _doctor_parser(sub: Any) -> None:
    p = sub.add_parser("doctor", help="check tmux, the state dir and the store; non-zero exit on problems")
    add_output_flags(p)
    p.set_defaults(handler=cmd_doctor)


# Each command's parser, built only for the command a command line names (CLI start-up).
PARSERS = {
    "start": _start_parser,
    "attach": _attach_parser,
    "doctor": _doctor_parser,
}


def _link(args: argparse.Namespace) -> TmuxLink:
    root = find_workspace(args)
    state = Path(args.state_dir) if args.state_dir else None
    link, warnings = user_link(root, state)
    for w in warnings:
        warn(w)
    return link


def _exec_attach(argv: list[str]) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)


def _snapshot_now(link: TmuxLink, force: bool) -> None:
    """Record the session at once (and set its hooks): a reboot a second later brings it back."""
    from tether.tmux.watch import TmuxWatch

    TmuxWatch(link).check_now(force=force)


def cmd_start(args: argparse.Namespace) -> int:
    link = _link(args)
    name, created = link.ensure_session()
    _snapshot_now(link, force=created)
    argv = link.attach_argv()
    emit(args, {"session": name, "created": created, "attach": argv}, name)
    if args.attach:
        if not sys.stdin.isatty():
            raise TetherError("--attach needs a terminal; run the printed attach command from one")
        return _exec_attach(argv)
    return 0


def _latest_snapshot(args: argparse.Namespace, root: Path) -> StoredSnapshot | None:
    """The newest tmux snapshot of this workspace, without creating a store that does not exist."""
    from tether.store.db import DB_NAME, Store, workspace_key
    from tether.tmux.watch import latest_snapshot

    base = Path(args.state_dir) if args.state_dir else paths.state_dir()
    if not (base / "workspaces" / workspace_key(root) / DB_NAME).exists():
        return None
    with Store.open(root, args.state_dir) as store:
        return latest_snapshot(store)


def cmd_attach(args: argparse.Namespace) -> int:
    link = _link(args)
    result: dict[str, Any] = {"session": link.session, "recreated": False, "checkpoint": None}
    if not link.alive():
        found = _latest_snapshot(args, link.root)
        if found is not None:
            policy = RunPolicy(mode="never" if args.no_run else "allowlist")
            report = link.restore(found.data, policy)
            _snapshot_now(link, force=True)
            result.update(recreated=report.recreated, checkpoint=found.checkpoint, restore=report.to_json())
            ran = [p for p in report.panes if p.action == "ran"]
            typed = [p for p in report.panes if p.action == "typed"]
            print(
                f"tether: recreated {link.session} from {found.describe()}: {len(report.panes)} panes, "
                f"{len(ran)} commands re-run, {len(typed)} typed and waiting for Enter",
                file=sys.stderr,
            )
            for m in report.missing_secrets:
                print(f"tether: not restored (secret, re-export it): {escape(m)}", file=sys.stderr)
            for w in report.warnings:
                warn(w)
        else:
            print(
                f"tether: no snapshot of {link.session} was ever recorded: starting a new session",
                file=sys.stderr,
            )
            link.ensure_session()
            _snapshot_now(link, force=True)
            result["recreated"] = True
    argv = link.attach_argv()
    result["attach"] = argv
    if args.print or args.json:
        emit(args, result, " ".join(argv))
        return 0
    if not sys.stdin.isatty():
        raise TetherError("not a terminal: use `tether attach --print` to get the attach command")
    return _exec_attach(argv)


def _version(pkg: str) -> str | None:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None


def _recovery(db_path: Path) -> str:
    from tether.store.integrity import recovery_hint

    return recovery_hint(db_path)


def _config_warnings(path: Path) -> list[str]:
    from tether.user_config import load_user_config

    _data, warnings = load_user_config(path)
    return warnings


def cmd_doctor(args: argparse.Namespace) -> int:
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"check": name, "ok": ok, "detail": detail})

    # tmux
    from tether.tmux import version as tmux_version

    tmux = shutil.which("tmux")
    if tmux is None:
        check("tmux", False, "tmux not found on PATH (install it: apt-get install tmux / brew install tmux)")
    else:
        try:
            v = tmux_version.version_of(tmux)
            if v.too_old:
                check("tmux", False, tmux_version.too_old_message(v))
            else:
                check("tmux", True, f"{tmux}: {v.text or 'no version printed'}")
        except TmuxError as exc:
            check("tmux", False, exc.message)

    # state dir
    try:
        sd = paths.state_dir(args.state_dir)
        with tempfile.NamedTemporaryFile(dir=sd, prefix=".doctor-"):
            pass
        mode = sd.stat().st_mode & 0o777
        check("state dir", mode == 0o700, f"{sd} (mode {mode:o}{'' if mode == 0o700 else ', expected 700'})")
    except OSError as exc:
        check("state dir", False, f"not writable: {exc}")
        sd = None

    # store (only when one exists for this workspace; doctor never creates it)
    db_path = None
    try:
        root = find_workspace(args)
        from tether.store.db import DB_NAME, Store, workspace_key

        db_path = sd / "workspaces" / workspace_key(root) / DB_NAME if sd is not None else None
        if db_path is not None and db_path.exists():
            with Store.open(root, args.state_dir) as store:
                # Every page and every blob: doctor is where a slow, thorough look belongs.
                problems = store.verify(deep=True)
                latest = store.latest() if not problems else None
                damage = store.recorded_wal_damage() if not problems else None
            if problems:
                check("store", False, f"{store.corrupt}\n{_recovery(db_path)}")
            else:
                check("store", True, f"intact; last checkpoint {latest.id if latest else 'none'}")
            if damage is not None:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(damage[0]))
                # Found at this open: an error; found earlier and recorded: said, not failed.
                check("log", store.wal_damage is None, f"{damage[1]} (found {when})")
        else:
            check("store", True, f"no store yet for {root}")
    except CorruptStoreError as exc:
        check("store", False, f"{exc.message}\n{_recovery(db_path)}" if db_path else exc.message)
    except TetherError as exc:
        check("store", False, exc.message)
    except Exception as exc:  # a broken store must be reported, not crash doctor
        check("store", False, f"{type(exc).__name__}: {exc}")

    # tmux session of this workspace (informational)
    try:
        link = _link(args)
        check("session", True, f"{link.session}: {'running' if link.alive() else 'not running'}")
    except (TmuxError, TetherError) as exc:
        check("session", True, f"unknown: {exc.message}")

    # process facts: /proc, else psutil + ps; each fact that cannot be had is named
    from tether import procs

    facts = procs.report()
    if facts["missing"]:
        detail = f"{facts['backend']}; cannot be had here:" + "".join(f"\n- {m}" for m in facts["missing"])
    else:
        detail = f"{facts['backend']}: argv, cwd, environment, start time, boot identity, foreground job"
    check("processes", not facts["missing"], detail)

    # the user's config file (the only source of commands to run)
    from tether.user_config import config_candidates

    used, shadowed = config_candidates()
    where = f"{used}{'' if used.is_file() else ' (absent: defaults)'}"
    if shadowed:
        where += "".join(f"\nalso found, ignored: {p}" for p in shadowed)
    warnings = _config_warnings(used) if used.is_file() else []
    check("config", not warnings, where + "".join(f"\n{w}" for w in warnings))

    py_ok = sys.version_info >= (3, 11)
    check("python", py_ok, f"{platform.python_version()} ({sys.executable})")
    pygls = _version("pygls")
    check("pygls", pygls is not None, pygls or "not installed")

    ok = all(c["ok"] for c in checks)
    indent = "\n" + " " * 16  # a detail's further lines under its first
    text = "\n".join(
        f"{'ok ' if c['ok'] else 'ERR'}  {c['check']:<10} {c['detail'].replace(chr(10), indent)}"
        for c in checks
    )
    emit(args, {"ok": ok, "checks": checks}, text)
    return 0 if ok else 1
