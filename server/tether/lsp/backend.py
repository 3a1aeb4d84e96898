"""What the language server's worker thread owns: the store, the Checkpointer, the tmux link and
its watch, the agent session. Built (and the tmux part rebuilt when settings change) in that
thread only; every method here blocks.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether import protocol as P
from tether.checkpoints.checkpointer import Checkpointer
from tether.editor import resume as resume_mod
from tether.editor import status as status_model
from tether.editor.candidate import ResumeCandidate
from tether.errors import OutsideWorkspaceError, TetherError, TmuxError
from tether.lsp.config import Config
from tether.paths import normalize_rel
from tether.record import dataclass, field
from tether.scan.result import DEFAULT_IGNORED_DIRS
from tether.scan.scanner import Scanner
from tether.store.db import Store
from tether.user_config import agent_resume, config_path, load_user_config

if TYPE_CHECKING:
    from tether.agent.session import AgentSession
    from tether.tmux.link import TmuxLink
    from tether.tmux.watch import TmuxWatch

log = logging.getLogger(__name__)


@dataclass
class SideState:
    """What the status shows beside the last checkpoint, read in the worker thread."""

    tmux: dict[str, Any] | None = None  # {"session", "alive"}; None: tmux off
    agent_files: list[str] = field(default_factory=list)
    next_step: str | None = None
    other_editor_files: list[str] = field(default_factory=list)  # open in other live editors


@dataclass
class Backend:
    store: Store
    checkpointer: Checkpointer
    agent: AgentSession | None = None
    tmux: TmuxLink | None = None
    watch: TmuxWatch | None = None  # its own thread; snapshots the session on every change
    tmux_built_from: object = None  # the settings the tmux link was built from (tmux_key)

    @classmethod
    def open(
        cls,
        root: Path,
        config: Config,
        editor_state: Callable[[], bytes | None],
        warnings: list[str],
    ) -> Backend:
        """The store and everything around it. ``editor_state``: the editor attachment's provider."""
        store = Store.open(root, config.state_dir)
        if store.wal_damage:
            warnings.append(f"Tether: {store.wal_damage}")
        cp = Checkpointer(store, config.max_file_bytes, scanner_for(store, config.max_file_bytes))
        cp.add_provider(P.ATTACH_EDITOR, editor_state)
        backend = cls(store, cp)
        backend.build_tmux(config, warnings)
        backend.agent = make_agent(store)
        if backend.agent is not None:
            cp.add_provider(P.ATTACH_AGENT, backend.agent.provider)
        return backend

    def build_tmux(self, config: Config, warnings: list[str]) -> None:
        """(Re)build the tmux link and its watch from ``config``; the old watch is stopped and
        the new one is not started (the caller starts it once the server runs)."""
        self.tmux_built_from = tmux_key(config)
        self.tmux = make_tmux(self.store.root, config, warnings)
        usable = self.tmux is not None and tmux_usable(warnings)
        if usable and self.tmux is not None:
            self.checkpointer.add_provider(P.ATTACH_TMUX, self.tmux.snapshot_bytes)
        old, self.watch = self.watch, make_watch(self.tmux) if usable and self.tmux is not None else None
        if old is not None:
            old.stop()

    def side_state(self, session_id: str, candidate: ResumeCandidate) -> SideState:
        """tmux liveness, the agent's files and next step, the files other live editors have
        open; ``candidate`` (the resume offer) is reloaded on the way."""
        side = SideState()
        try:
            journals = resume_mod.journal_sessions(self.store.get_state(resume_mod.STATE_JOURNAL))
            side.other_editor_files = status_model.live_editor_files(journals, session_id)
            candidate.load(self.store)
        except TetherError as exc:
            log.warning("editor journals unreadable: %s", exc.message)
        if self.tmux is not None:
            try:
                side.tmux = {"session": str(self.tmux.session), "alive": bool(self.tmux.alive())}
            except TmuxError as exc:  # an old tmux: said once at start, not at every poll
                log.debug("tmux status: %s", exc)
                side.tmux = {"session": str(self.tmux.session), "alive": False}
            except Exception as exc:
                log.warning("tmux status failed: %s", exc)
                side.tmux = {"session": str(self.tmux.session), "alive": False}
        if self.agent is not None:
            try:
                st = self.agent.state()
                side.agent_files = list(st.files_in_progress)
                side.next_step = st.next_steps[0] if st.next_steps else None
            except Exception as exc:
                log.warning("agent state read failed: %s", exc)
        return side

    def hand_off(self) -> dict[str, Any]:
        if self.agent is None:
            return {}
        try:
            return self.agent.hand_off()
        except Exception as exc:
            log.warning("agent hand-off failed: %s", exc)
            return {}

    def close(self) -> None:
        self.store.close()


def scanner_for(store: Store, max_file_bytes: int) -> Scanner:
    """The store must not checkpoint itself when its directory is inside the workspace."""
    state_root = store.db_path.parents[2]
    try:
        rel = state_root.relative_to(store.root)
    except ValueError:
        return Scanner(store.root, max_file_bytes)
    if not rel.parts:
        return Scanner(store.root, max_file_bytes)
    log.warning("the state dir %s is inside the workspace: not tracking %s/", state_root, rel.parts[0])
    return Scanner(store.root, max_file_bytes, ignored_dirs=DEFAULT_IGNORED_DIRS | {rel.parts[0]})


def make_agent(store: Store) -> AgentSession | None:
    try:
        from tether.agent.session import AgentSession

        return AgentSession(store)
    except Exception:
        log.exception("agent state failed to load")
        return None


def tmux_key(config: Config) -> object:
    """What the tmux link is built from: a change rebuilds it."""
    wire = config.tmux.wire
    return config.tmux, json.dumps(wire, sort_keys=True, default=str) if wire is not None else None


def make_tmux(root: Path, config: Config, warnings: list[str]) -> TmuxLink | None:
    """The tmux link: the user's own config file is the trusted base (it may name window commands
    and the re-run allowlist); editor settings, stripped of anything that runs, go on top."""
    if not config.tmux.enabled:
        return None
    try:
        from tether.tmux.config import TmuxConfig
        from tether.tmux.link import TmuxLink
    except ImportError:
        log.info("tmux link not available: tmux disabled")
        return None
    try:
        raw = config.tmux.wire or {}
        wire, dropped = safe_tmux_wire(raw, root)
        if dropped:
            warnings.append(
                "Tether: ignoring " + ", ".join(dropped) + " from editor settings (they could come "
                "from a workspace file and would run commands or start outside the workspace); "
                "set them in your own Tether config"
            )
        user, file_warnings = load_user_config()
        section = user.get("tmux", {})
        if not isinstance(section, dict):
            file_warnings.append(f"{config_path()}: [tmux] must be a table; ignored")
            section = {}
        merged = dict(section)
        for key, value in wire.items():
            if key == "windows" and "windows" in section:
                continue  # the user's file names the windows together with their commands
            merged[key] = value
        cfg, more = TmuxConfig.from_wire(merged, trusted=True)
        # Only the user's own file decides whether agents' resume commands run.
        cfg.agent_resume, agent_warnings = agent_resume(user)
        file_warnings.extend(agent_warnings)
        # cfg.socket_path is the user's file's (Config drops it from editor settings);
        # None: $TETHER_TMUX_SOCKET, else tmux's default server.
        if "scrollbackLines" in raw:
            cfg.scrollback_lines = config.tmux.scrollback_lines
        warnings.extend(f"Tether: {w}" for w in [*file_warnings, *more])
        state = Path(config.state_dir) if config.state_dir else None
        return TmuxLink(root, cfg, state_dir=state)
    except Exception:
        log.exception("tmux link failed to start: tmux disabled")
        return None


def make_watch(link: TmuxLink) -> TmuxWatch | None:
    """The tmux session is snapshotted on every change of its own, not only at checkpoints."""
    try:
        from tether.tmux.watch import TmuxWatch

        return TmuxWatch(link)
    except Exception:
        log.exception("tmux watch not started")
        return None


def tmux_usable(warnings: list[str]) -> bool:
    """False (said once, at start) when the tmux on PATH is too old: checkpoints then go on
    without tmux snapshots, and the tmux commands answer with the same message."""
    from tether.tmux import version as tmux_version

    try:
        tmux_version.require()
    except tmux_version.TmuxTooOldError as exc:
        warnings.append(f"Tether: {exc.message}; tmux sessions are not recorded")
        return False
    except TmuxError:
        pass  # not installed: the tmux commands say so when used
    return True


def safe_tmux_wire(raw: Mapping[str, Any], root: Path) -> tuple[dict[str, Any], list[str]]:
    """The tmux options editor settings may set. Settings can come from a workspace file
    (``.vscode/settings.json``), which is untrusted: nothing that makes tmux run a command
    (window commands, the shell, the re-run allowlist) is taken from there, and a window starts
    only inside the workspace (the socket is Config's to drop)."""
    out: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in raw.items():
        if key in ("enabled", "socketPath", "scrollbackLines"):
            continue  # validated by Config
        if key in ("shell", "allowlist"):
            dropped.append(f"tmux.{key}")
        elif key == "windows" and isinstance(value, list):
            wins = []
            for w in value:
                if isinstance(w, Mapping):
                    drop = {"command"}
                    if w.get("command") is not None:
                        dropped.append(f"tmux.windows[{w.get('name')!r}].command")
                    cwd = w.get("cwd")
                    if isinstance(cwd, str) and not _inside(root, cwd):
                        dropped.append(f"tmux.windows[{w.get('name')!r}].cwd")
                        drop.add("cwd")
                    wins.append({k: v for k, v in w.items() if k not in drop})
                else:
                    wins.append(w)
            out[key] = wins
        else:
            out[key] = value
    return out, dropped


def _inside(root: Path, rel: str) -> bool:
    if os.path.isabs(os.path.expanduser(rel)):
        return False
    try:
        normalize_rel(root, rel)
    except OutsideWorkspaceError:
        return rel in (".", "./")
    return True
