"""The workspace's tmux session: create, attach, snapshot and recreate.

Costs are what matter here (tmux-resurrect spends ~20 s saving 86 panes by forking per pane), so
every hot path is a single tmux invocation:

- metadata of all panes: one ``list-panes -a -F`` call (also the change fingerprint);
- scrollback of all panes + the session environment: one chained invocation
  (``display-message -p MARKER \\; capture-pane -p ...`` per pane);
- recreation: one chained invocation creating every window and pane with its cwd, layout, zoom,
  active pane, environment, scrollback replay and (per policy) the command to re-run.

The tmux client sends a whole chain as one message (16 KiB max), so a very large chain is split into
as few invocations as fit; 50 panes fit in one.

Values read back from a snapshot (cwd, names, commands) are treated as untrusted text: they only
reach tmux as separate argv elements, escaped where tmux would expand formats (``#``) or split
commands (a trailing ``;``), and commands are only ever typed with ``send-keys -l``.

No pygls/lsprotocol here: this module is called from worker threads of the LSP server and the CLI.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, Literal

from tether import paths, procs
from tether.conversations.agents import plain_argv, resume_argv
from tether.conversations.probe import PaneAgent, probe
from tether.conversations.record import ConversationLog
from tether.errors import TmuxError
from tether.record import asdict, dataclass, field
from tether.redact import REDACTED, is_redacted, redact_argv, redact_lines
from tether.sha import sha256, sha256_hex
from tether.text import strip_controls
from tether.tmux import hooks as hooks_mod
from tether.tmux import version as tmux_version
from tether.tmux.chain import (
    PanePlan,
    SessionPlan,
    WindowPlan,
    pack,
    plan_chain,
)
from tether.tmux.config import RunPolicy, TmuxConfig, WindowSpec, as_run_policy, matches_allowlist
from tether.tmux.env import EnvVar, classify_env, parse_environ, parse_show_environment
from tether.tmux.foreground import foreground_argv
from tether.tmux.history import redact_file, tail_lines, write_private
from tether.tmux.panes import FIELDS, LIST_FORMAT, PANE_OPTION, SEP, PaneInfo, parse_rows, split_sections
from tether.tmux.presence import link_socket
from tether.tmux.snapshot import UID_RE, PaneSnapshot, TmuxSnapshot, WindowSnapshot
from tether.tmux.version import TmuxTooOldError

log = logging.getLogger(__name__)

_TMUX_TIMEOUT = 30.0
_SESSION_SAFE_RE = re.compile(r"[^A-Za-z0-9_-]+")


# --------------------------------------------------------------------------------------------- config


# ------------------------------------------------------------------------------------------- snapshot


# ------------------------------------------------------------------------------------------ restore


@dataclass
class PaneRestore:
    uid: str
    window: int
    command: list[str] | None
    action: Literal["ran", "typed", "none"]
    agent: str | None = None  # the coding agent whose conversation the pane resumes
    conversation: str | None = None


@dataclass
class RestoreReport:
    session: str
    recreated: bool
    panes: list[PaneRestore] = field(default_factory=list)
    missing_secrets: list[str] = field(default_factory=list)  # "NAME (source)"
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------ helpers


def session_name_for(root: Path) -> str:
    """``tether-<basename>-<hash6>``: stable per workspace path, only tmux-safe characters."""
    resolved = str(Path(root).resolve())
    base = _SESSION_SAFE_RE.sub("-", Path(resolved).name).strip("-")[:32] or "root"
    digest = sha256_hex(resolved.encode())[:6]
    return f"tether-{base}-{digest}"


# --------------------------------------------------------------------------------------------- link


class TmuxLink:
    """The tmux session of one workspace. Every method blocks: call it off the event loop."""

    def __init__(self, root: Path, config: TmuxConfig | None = None, state_dir: Path | None = None) -> None:
        self.root = Path(root).resolve()
        self.config = config or TmuxConfig()
        self.session = session_name_for(self.root)
        self.socket_path: str | None = link_socket(self.config.socket_path)
        self._state_dir = state_dir
        self._cache: tuple[str, TmuxSnapshot, bytes] | None = None
        self._last_uids: dict[str, str] = {}
        self._dirs: dict[str, Path] = {}  # tmux pane id -> uid, from the last capture
        self._redacted: dict[str, tuple[int, int]] = {}  # history file -> (inode, bytes redacted)

    # -- plumbing

    def _tmux_bin(self) -> str:
        # Missing or older than 3.0: said as such, not as tmux's usage text or "no server".
        return tmux_version.require()

    def base_argv(self) -> list[str]:
        argv = [self._tmux_bin()]
        if self.socket_path:
            argv += ["-S", self.socket_path]
        return argv

    def _run(
        self, args: Sequence[str], check: bool = True, cwd: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [*self.base_argv(), *args]
        try:
            res = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=_TMUX_TIMEOUT,
                stdin=subprocess.DEVNULL,
                check=False,
                cwd=cwd,
            )
        except subprocess.TimeoutExpired:
            raise TmuxError(f"tmux did not answer within {_TMUX_TIMEOUT:.0f}s ({args[0]})") from None
        except OSError as exc:
            raise TmuxError(f"cannot run tmux: {exc}") from exc
        if check and res.returncode != 0:
            raise TmuxError(self._explain(res.stderr, args[0]))
        return res

    def _explain(self, stderr: str, what: str) -> str:
        err = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
        where = self.socket_path or "the default socket"
        if "no server running" in err or "error connecting" in err:
            return f"no tmux server is running at {where} ({err})"
        return f"tmux {what} failed: {err}"

    def _state(self) -> Path:
        # Hook scripts and history files live here: never through a symlink (a state dir the
        # user put inside a repository could hold one the repository shipped).
        base = paths.state_dir(self._state_dir)
        return paths.ensure_private_dir(base / "tmux", base)

    def _session_dir(self, sub: str) -> Path:
        d = self._dirs.get(sub)
        if d is None or not d.is_dir():
            tmux = self._state()
            d = self._dirs[sub] = paths.ensure_private_dir(tmux / self.session / sub, tmux)
        return d

    def history_file(self, uid: str) -> Path:
        return self._session_dir("hist") / f"{uid}.hist"

    def _install_hooks(self) -> Path:
        return hooks_mod.install(self._state())

    def _shell(self) -> tuple[str, str]:
        """(kind, path) of the shell Tether starts in its panes; only bash and zsh get the hook."""
        shell = self.config.shell or os.environ.get("SHELL") or "/bin/sh"
        resolved = shutil.which(shell) or shell
        kind = os.path.basename(resolved)
        return (kind if kind in ("bash", "zsh") else "other"), resolved

    # -- public API

    def alive(self) -> bool:
        """Whether the session runs. An old tmux is an error, not "not running"."""
        try:
            return self._run(["has-session", "-t", f"={self.session}"], check=False).returncode == 0
        except TmuxTooOldError:
            raise
        except TmuxError:
            return False

    def attach_argv(self) -> list[str]:
        return [*self.base_argv(), "attach-session", "-t", f"={self.session}"]

    def kill(self) -> None:
        """Kill the workspace's session (not the server); a missing session is not an error."""
        if self.alive():
            self._run(["kill-session", "-t", f"={self.session}"], check=False)
        self._cache = None

    def ensure_session(self) -> tuple[str, bool]:
        """Create the session from the configured windows when it does not exist."""
        if self.alive():
            return self.session, False
        specs = self.config.windows or [WindowSpec("shell")]
        plans: list[WindowPlan] = []
        for i, spec in enumerate(specs):
            cwd = self.root
            if spec.cwd:
                cand = Path(spec.cwd).expanduser()
                cwd = cand if cand.is_absolute() else self.root / cand
            pane = PanePlan(
                uid=_new_uid(),
                cwd=str(cwd),
                env={},
                scrollback=[],
                history=None,
                # The user's own config file: its commands run; others are typed and wait.
                keys=spec.command or None,
                enter=bool(spec.command) and spec.run,
            )
            plans.append(WindowPlan(None, spec.name, None, False, i == 0, 0, [pane]))
        self._create(plans, 200, 50)
        return self.session, True

    def panes(self) -> list[PaneInfo]:
        """Live metadata of this session's panes (one list-panes call). Raises TmuxError when the
        server is not running."""
        res = self._run(["list-panes", "-a", "-F", LIST_FORMAT])
        return [r for r in parse_rows(res.stdout) if r.session == self.session]

    def snapshot(self) -> TmuxSnapshot | None:
        """The session as a snapshot, or None when it is not running.

        When the pane metadata (including history sizes, cursors and window activity) and the
        history files are unchanged since the last call, the previous snapshot is returned without
        capturing anything.
        """
        res = self._run(["list-panes", "-a", "-F", LIST_FORMAT], check=False)
        if res.returncode != 0:
            return None
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith(self.session + SEP)]
        rows = [r for r in parse_rows("\n".join(lines)) if r.session == self.session]
        if not rows:
            return None
        uid_col = FIELDS.index(PANE_OPTION)
        # The uid column is left out: the first snapshot assigns uids, which must not count as a change.
        stripped = [SEP.join(ln.split(SEP)[:uid_col] + ln.split(SEP)[uid_col + 1 :]) for ln in lines]
        fp = self._fingerprint(stripped, [(r.pane_id, r.uid) for r in rows])
        if self._cache is not None and self._cache[0] == fp:
            return self._cache[1]
        snap = self._capture(rows)
        if snap is None:
            return None
        by_row = self._last_uids
        self._cache = (
            self._fingerprint(stripped, [(r.pane_id, by_row.get(r.pane_id, r.uid)) for r in rows]),
            snap,
            snap.to_bytes(),
        )
        return snap

    def snapshot_bytes(self) -> bytes | None:
        """Canonical JSON of :meth:`snapshot` (the checkpoint attachment), None when not running."""
        snap = self.snapshot()
        if snap is None:
            return None
        if self._cache is not None and self._cache[1] is snap:
            return self._cache[2]
        return snap.to_bytes()

    def restore(
        self, snapshot: TmuxSnapshot | bytes | dict[str, Any], run_policy: RunPolicy | str | None = None
    ) -> RestoreReport:
        """Reattach if alive (nothing re-run), else recreate the session from ``snapshot``."""
        if isinstance(snapshot, bytes | str):
            snap = TmuxSnapshot.from_bytes(snapshot)
        elif isinstance(snapshot, dict):
            snap = TmuxSnapshot.from_json(snapshot)
        else:
            snap = TmuxSnapshot.from_json(snapshot.to_json())  # re-validate objects built in code
        policy = as_run_policy(run_policy)
        if self.alive():
            return RestoreReport(session=self.session, recreated=False)
        report = RestoreReport(session=self.session, recreated=True)
        # Said, never silent: a pane recorded without its command may have been running one.
        report.warnings.extend(f"this snapshot could not record {m}" for m in snap.missing)
        plans: list[WindowPlan] = []
        session_env = {e.name: e.value for e in snap.env if e.kind == "project" and e.value is not None}
        for e in snap.env:
            if e.kind == "secret":
                report.missing_secrets.append(f"{e.name} ({e.source})")
        for w in sorted(snap.windows, key=lambda w: w.index):
            pplans: list[PanePlan] = []
            active = 0
            for i, p in enumerate(w.panes):
                if p.active:
                    active = i
                env = {e.name: e.value for e in p.env if e.kind == "project" and e.value is not None}
                for e in p.env:
                    if e.kind == "secret":
                        report.missing_secrets.append(f"{e.name} ({e.source}, pane {p.uid})")
                keys: str | None = None
                enter = False
                action: Literal["ran", "typed", "none"] = "none"
                resume = (
                    resume_argv(p.agent.name, p.command, p.agent.id)
                    if p.agent and p.command and not p.dead
                    else None
                )
                # A command saved with a secret taken out holds the placeholder where the secret
                # was: it is typed for the user to fill in, never run (allowlisted or not).
                placeholder = is_redacted(p.command)
                if placeholder and not p.dead:
                    report.warnings.append(
                        f"pane {p.uid}: its command held a secret, typed with {REDACTED} in its "
                        "place: fill it in before pressing Enter"
                    )
                if resume is not None:
                    # The agent comes back on its own conversation; it runs only when the user's
                    # own config says so (an allowlist entry for `claude` is not enough).
                    keys = shlex.join(resume)
                    run_it = p.uid in policy.confirmed or self.config.agent_resume == "run"
                    enter = policy.mode == "allowlist" and run_it and not is_redacted(resume)
                    action = "ran" if enter else "typed"
                elif p.command and not p.dead:
                    keys = shlex.join(plain_argv(p.command) if p.agent else p.command)
                    if (
                        policy.mode == "allowlist"
                        and not placeholder
                        and (
                            p.uid in policy.confirmed
                            or matches_allowlist(
                                p.command,
                                self.config.allowlist,
                                root=self.root,
                                cwd=p.cwd,
                                search_path=env.get("PATH")
                                or session_env.get("PATH")
                                or os.environ.get("PATH"),
                            )
                        )
                    ):
                        enter = True
                        action = "ran"
                    else:
                        action = "typed"
                cwd = p.cwd
                if not os.path.isdir(cwd):
                    report.warnings.append(f"pane {p.uid}: {cwd} no longer exists; started in {self.root}")
                    cwd = str(self.root)
                pplans.append(PanePlan(p.uid, cwd, env, p.scrollback, p.history, keys, enter))
                report.panes.append(
                    PaneRestore(
                        p.uid,
                        w.index,
                        resume if resume is not None else p.command,
                        action,
                        p.agent.name if resume is not None and p.agent else None,
                        p.agent.id if resume is not None and p.agent else None,
                    )
                )
            plans.append(WindowPlan(w.index, w.name, w.layout, w.zoomed, w.active, active, pplans))
        width = max(w.width for w in snap.windows)
        height = max(w.height for w in snap.windows)
        self._create(plans, width, height, session_env)
        return report

    # -- internals

    def _fingerprint(self, lines: list[str], uids: list[tuple[str, str]]) -> str:
        h = sha256()
        for ln in lines:
            h.update(ln.encode())
            h.update(b"\n")
        for pane_id, uid in uids:
            if not UID_RE.match(uid):
                h.update(f"{pane_id}:-\n".encode())
                continue
            try:
                st = os.stat(self.history_file(uid))
                h.update(f"{pane_id}:{uid}:{st.st_size}:{st.st_mtime_ns}\n".encode())
            except OSError:
                h.update(f"{pane_id}:{uid}:-\n".encode())
        h.update(repr((self.config.scrollback_lines, self.config.history_lines)).encode())
        # A conversation id told by a hook or a step changes what an agent pane resumes.
        with suppress(OSError):
            st = os.stat(ConversationLog.for_workspace(self.root, self._state_dir).path)
            h.update(f"conversations:{st.st_size}:{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def _capture(self, rows: list[PaneInfo]) -> TmuxSnapshot | None:
        nonce = secrets.token_hex(8)
        n = self.config.scrollback_lines
        cmds: list[list[str]] = []
        uids: dict[str, str] = {}
        for i, r in enumerate(rows):
            uid = r.uid if UID_RE.match(r.uid) else ""
            if not uid:
                uid = _new_uid()
                cmds.append(["set-option", "-p", "-t", r.pane_id, PANE_OPTION, uid])
            uids[r.pane_id] = uid
            cmds.append(["display-message", "-p", f"@@tether-{nonce}-p{i}@@"])
            if n > 0:
                cmds.append(["capture-pane", "-p", "-J", "-S", f"-{n}", "-t", r.pane_id])
        cmds.append(["display-message", "-p", f"@@tether-{nonce}-genv@@"])
        cmds.append(["show-environment", "-g"])
        cmds.append(["display-message", "-p", f"@@tether-{nonce}-senv@@"])
        cmds.append(["show-environment", "-t", f"={self.session}:"])
        out: list[str] = []
        for chain in pack(cmds):
            res = self._run(chain, check=False)
            if res.returncode != 0:
                if not self.alive():
                    return None  # killed between the two calls
                raise TmuxError(self._explain(res.stderr, "capture-pane"))
            out.append(res.stdout)
        self._last_uids = uids
        sections = split_sections("".join(out), nonce)
        global_env, _ = parse_show_environment("\n".join(sections.get("genv", [])))
        session_env, _removed = parse_show_environment("\n".join(sections.get("senv", [])))
        extra = self.config.env_secret_patterns
        windows: dict[int, WindowSnapshot] = {}
        groups = procs.foreground_groups(r.pane_pid for r in rows if not r.dead)
        for i, r in enumerate(rows):
            text = sections.get(f"p{i}", [])
            # One regex pass over the pane's text, not one per line.
            scroll = [ln.rstrip() for ln in strip_controls("\n".join(text)).split("\n")] if text else []
            while scroll and not scroll[-1]:
                scroll.pop()
            shell, command = (None, None) if r.dead else foreground_argv(r.pane_pid, groups)
            agent = self._pane_agent(r, command, uids[r.pane_id], groups) if command else None
            pane_env: list[EnvVar] = []
            if not r.dead:
                raw = procs.environ_bytes(r.pane_pid)
                if raw is not None:
                    base = {**global_env, **session_env}
                    pane_env = classify_env(parse_environ(raw), "pane", base, extra)
            uid = uids[r.pane_id]
            pane = PaneSnapshot(
                uid=uid,
                index=r.pane_index,
                active=r.pane_active,
                cwd=r.cwd or str(self.root),
                width=r.width,
                height=r.height,
                shell=shell,
                command=redact_argv(command) if command else None,
                dead=r.dead,
                dead_status=r.dead_status,
                scrollback=redact_lines(scroll),
                # Redacted again: the file may have grown since it was redacted in place.
                history=redact_lines(
                    tail_lines(redact_file(self.history_file(uid), self._redacted), self.config.history_lines)
                ),
                env=pane_env,
                agent=agent,
            )
            w = windows.get(r.window_index)
            if w is None:
                w = windows[r.window_index] = WindowSnapshot(
                    index=r.window_index,
                    name=r.window_name,
                    layout=r.layout,
                    zoomed=r.zoomed,
                    active=r.window_active,
                    width=r.window_width,
                    height=r.window_height,
                    panes=[],
                )
            w.panes.append(pane)
        return TmuxSnapshot(
            session=self.session,
            root=str(self.root),
            windows=[windows[k] for k in sorted(windows)],
            env=classify_env(session_env, "session", global_env, extra),
            missing=procs.missing_facts(),
        )

    def _pane_agent(
        self, row: PaneInfo, command: list[str], uid: str, groups: dict[int, int]
    ) -> PaneAgent | None:
        """The agent in the pane and its conversation: its own records first, else what hooks and
        steps told (the durable record, by pane then cwd). A live id is recorded there too, since
        Claude's per-process records do not survive a reboot. Never raises."""
        pid = procs.foreground_pid(row.pane_pid, groups)
        found = probe(pid, command, row.cwd)
        if found is None:
            return None
        try:
            record = ConversationLog.for_workspace(self.root, self._state_dir)
            if found.id is not None:
                record.record(found.name, found.id, cwd=row.cwd, pane=uid, source=found.source)
                return found
            told = record.latest(found.name, pane=uid, cwd=row.cwd, since=procs.start_time(pid))
        except OSError as exc:
            log.debug("conversation record unavailable: %s", exc)
            return found
        return PaneAgent(found.name, told.id, "told") if told is not None else found

    def _create(
        self, plans: list[WindowPlan], width: int, height: int, session_env: dict[str, str] | None = None
    ) -> None:
        """Create the session with all windows and panes: one chained tmux invocation."""
        if not self.root.is_dir():
            raise TmuxError(f"cannot create the tmux session: workspace {self.root} does not exist")
        tmux = self._tmux_bin()  # an old or missing tmux is reported before anything is written
        hooks = self._install_hooks()
        kind, shell_path = self._shell()
        replay_dir = self._session_dir("replay")
        _remove_stale(replay_dir, max_age=600.0)
        # One replay file for all panes (one write, not one per pane); each pane reads its slice.
        replay_path = replay_dir / f"replay-{secrets.token_hex(6)}.txt"
        login = self.config.shell_rc and self.config.login_shell and _takes_login_flag(kind, shell_path)
        env = session_env or {}
        plan = SessionPlan(
            session=self.session,
            root=str(self.root),
            width=width,
            height=height,
            history_limit=max(2000, self.config.scrollback_lines),
            windows=plans,
            env=env,
            plumbing={
                "TETHER_HOOKS": str(hooks),
                "TETHER_HIST_DIR": str(self._session_dir("hist")),
                "TETHER_REPLAY": str(replay_path),
                "TETHER_SHELL_RC": "1" if self.config.shell_rc else "0",
                "TETHER_SHELL_KIND": kind,
                "TETHER_SHELL_LOGIN": "1" if login else "0",
                # Names (not values) of the restored variables the login files must not override.
                "TETHER_KEEP_ENV": " ".join(sorted(env)),
                "TETHER_SESSION_PATH": env.get("PATH", ""),
                "TETHER_SHELL": shell_path,
                "TETHER_TMUX": tmux,
            },
            start_cmd=hooks_mod.START_CMD,
        )
        chain = plan_chain(plan)
        try:
            for w in plans:
                for p in w.panes:
                    hist = self.history_file(p.uid)
                    if p.history or not hist.exists():
                        write_private(hist, "".join(line + "\n" for line in (p.history or [])).encode())
            if chain.replay:
                write_private(replay_path, chain.replay)
            for i, argv in enumerate(pack(chain.commands)):
                res = self._run(argv, check=False, cwd=str(self.root))
                if res.returncode != 0:
                    msg = self._explain(res.stderr, "new-session" if i == 0 else "new-window")
                    if i > 0 or self.alive():
                        # Half a session is worse than none: the snapshot stays, the user retries.
                        self._run(["kill-session", "-t", f"={self.session}"], check=False)
                    raise TmuxError(msg)
        except BaseException:
            replay_path.unlink(missing_ok=True)
            raise
        self._cache = None
        log.info("tmux session %s created (%d windows)", self.session, len(plans))


# Shells that start as login shells with `-l` (bash and zsh are handled by the hook).
_LOGIN_FLAG_SHELLS = frozenset({"bash", "zsh", "sh", "dash", "ash", "ksh", "mksh", "fish", "tcsh", "csh"})


def _takes_login_flag(kind: str, path: str) -> bool:
    return kind in ("bash", "zsh") or os.path.basename(path) in _LOGIN_FLAG_SHELLS


def _remove_stale(d: Path, max_age: float) -> None:
    """Replay files of earlier restores (their panes have long read them)."""
    now = time.time()
    for f in d.glob("replay-*.txt"):
        with suppress(OSError):
            if now - f.stat().st_mtime > max_age:
                f.unlink()


def _new_uid() -> str:
    return "p" + secrets.token_hex(6)
