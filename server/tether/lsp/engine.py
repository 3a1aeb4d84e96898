"""The server's behaviour, independent of pygls: timers, the worker thread, commands, resume.

Threading model: the asyncio loop owns the document model and the timers; a single worker
thread owns the Store (sqlite connections are per-thread), the Checkpointer, the tmux link and
the agent state. Every blocking call goes through :meth:`Engine._run`, so the loop never waits
on disk or tmux, and store writes are serialised without extra locks. The LSP layer talks to
the client through the small :class:`ClientPort` interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from tether import protocol as P
from tether import safefs
from tether.checkpoints.checkpointer import Checkpointer
from tether.checkpoints.diffing import is_binary
from tether.editor import resume as resume_mod
from tether.editor import status as status_model
from tether.editor.candidate import ResumeCandidate
from tether.editor.documents import Documents, end_position, looks_secret, text_hash
from tether.errors import (
    BusyError,
    ClientTimeoutError,
    OutsideWorkspaceError,
    StoreError,
    TetherError,
    TmuxError,
)
from tether.humanize import plural
from tether.lsp import params as prm
from tether.lsp.config import Config
from tether.model import CheckpointInfo
from tether.paths import normalize_rel
from tether.scan.scanner import DEFAULT_IGNORED_DIRS, Scanner
from tether.store.db import Store
from tether.text import escape
from tether.user_config import agent_resume, config_path, load_user_config

log = logging.getLogger(__name__)

T = TypeVar("T")

AGENT_FILE = ".agent-session.json"
TMUX_POLL_SECONDS = 15.0
STATUS_REFRESH_SECONDS = 30.0
READY_TIMEOUT = 60.0
# A second tether.resume waits this long for the first (whose client requests are bounded).
RESUME_QUEUE_TIMEOUT = 30.0


class ClientPort(Protocol):
    """What the engine needs from the editor connection."""

    supports_show_document: bool
    supports_progress: bool

    def notify(self, method: str, params: Mapping[str, Any]) -> None: ...

    def show_message(self, level: str, text: str) -> None: ...

    async def show_document(self, uri: str, line: int, character: int, focus: bool) -> bool: ...

    async def apply_edit(
        self, label: str, uri: str, end: tuple[int, int], text: str
    ) -> tuple[bool, str | None]: ...

    async def progress_begin(self, title: str, message: str | None = None) -> object | None: ...

    def progress_end(self, token: object | None, message: str | None = None) -> None: ...


@dataclass
class _Backend:
    """Objects living in the worker thread only."""

    store: Store
    checkpointer: Checkpointer
    tmux: Any | None = None  # tether.tmux.link.TmuxLink when available
    agent: Any | None = None  # tether.agent.session.AgentSession when available
    watch: Any | None = None  # tether.tmux.watch.TmuxWatch (its own thread) with the tmux link


class Engine:
    def __init__(self, root: Path, config: Config, client: ClientPort) -> None:
        self.root = root.resolve()
        self.config = config
        self.client = client
        self.session_id = uuid.uuid4().hex
        self.docs = Documents(self.root)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tether-store")
        self._backend: _Backend | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = asyncio.Event()
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        # status
        self._last_checkpoint: CheckpointInfo | None = None
        self._tmux_status: dict[str, Any] | None = None
        self._agent_files: list[str] = []
        self._next_step: str | None = None
        self._other_editor_files: list[str] = []  # open in other live editors (their journals)
        self._candidate = ResumeCandidate()  # the previous session a resume would bring back
        self._busy = 0
        self._checkpointing = 0
        self._error: str | None = None
        self._status_sent: dict[str, Any] | None = None
        self._status_sent_at = 0.0
        self._status_timer: asyncio.TimerHandle | None = None
        # saves / watcher events awaiting a checkpoint
        self._pending_paths: set[str] = set()
        self._pending_from_editor = False
        self._pending_first = 0.0
        self._save_timer: asyncio.TimerHandle | None = None
        # journal
        self._journal_timer: asyncio.TimerHandle | None = None
        self._journal_first = 0.0
        self._journal_written_gen = -1
        self._frozen = False  # after shutdown: the journal keeps the last editing state
        self._watcher: Any | None = None
        self.checkpoints_written = 0
        self._startup_warnings: list[str] = []
        self._resume_lock = asyncio.Lock()
        self._tmux_built_from: object = None
        self._shutdown_task: asyncio.Future[None] | None = None
        self._save_tasks: set[asyncio.Task[Any]] = set()

    # --- plumbing -------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args))

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run ``coro`` beside the engine's own work (kept referenced, failures logged)."""
        return self._spawn(coro)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("background task failed", exc_info=exc)

    @property
    def backend(self) -> _Backend:
        if self._backend is None:
            raise StoreError("the store is not open yet")
        return self._backend

    async def wait_ready(self) -> None:
        if not self._ready.is_set():
            try:
                await asyncio.wait_for(self._ready.wait(), READY_TIMEOUT)
            except TimeoutError:
                raise StoreError("the Tether server is still starting; try again") from None
        if self._backend is None:
            raise StoreError(self._error or "the store could not be opened")

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            t0 = time.perf_counter()
            await self._run(self._open_backend)
            log.info("store open in %.0f ms", (time.perf_counter() - t0) * 1000)
        except TetherError as exc:
            log.error("cannot open the store: %s", exc.message)
            self._error = exc.message
            self.client.show_message("error", f"Tether: {exc.message}")
            self._ready.set()
            self.update_status()
            return
        except Exception as exc:
            log.exception("cannot open the store")
            self._error = f"cannot open the store: {exc}"
            self.client.show_message("error", f"Tether: {self._error}")
            self._ready.set()
            self.update_status()
            return
        # Busy from the start: a client sees "idle" only once the baseline is recorded.
        if self.config.baseline_scan:
            self._busy += 1
        self._ready.set()
        for w in self._startup_warnings:
            self.client.show_message("warning", w)
        self._startup_warnings.clear()
        self.update_status()
        # Settings that arrived while the store was opening (workspace/configuration).
        self._spawn(self._sync_tmux())
        if self.config.baseline_scan:
            self._spawn(self._baseline())
        if self.config.watcher:
            self._spawn(self._start_watcher())
        if self.config.checkpoint_interval_seconds > 0:
            self._spawn(self._periodic())
        self._spawn(self._poll_tmux())
        if self._backend is not None and self._backend.watch is not None:
            self._backend.watch.start()

    def _open_backend(self) -> None:
        store = Store.open(self.root, self.config.state_dir)
        if store.wal_damage:
            self._startup_warnings.append(f"Tether: {store.wal_damage}")
        cp = Checkpointer(store, self.config.max_file_bytes, self._scanner_for(store))
        backend = _Backend(store, cp)
        cp.add_provider(P.ATTACH_EDITOR, lambda: self.docs.attachment_bytes(self.session_id))
        self._candidate.claim(store)
        self._last_checkpoint = store.latest()
        backend.tmux = self._make_tmux(store.root)
        if backend.tmux is not None and self._tmux_usable():
            provider = getattr(backend.tmux, "snapshot_bytes", None)
            if callable(provider):
                cp.add_provider(P.ATTACH_TMUX, provider)
            backend.watch = self._make_watch(backend.tmux)
        backend.agent = self._make_agent(store)
        if backend.agent is not None:
            provider = getattr(backend.agent, "provider", None)
            if callable(provider):
                cp.add_provider(P.ATTACH_AGENT, provider)
        self._backend = backend
        self._refresh_side_state()

    def _scanner_for(self, store: Store) -> Scanner:
        """The store must not checkpoint itself when its directory is inside the workspace."""
        state_root = store.db_path.parents[2]
        try:
            rel = state_root.relative_to(store.root)
        except ValueError:
            return Scanner(store.root, self.config.max_file_bytes)
        if not rel.parts:
            return Scanner(store.root, self.config.max_file_bytes)
        log.warning("the state dir %s is inside the workspace: not tracking %s/", state_root, rel.parts[0])
        return Scanner(
            store.root, self.config.max_file_bytes, ignored_dirs=DEFAULT_IGNORED_DIRS | {rel.parts[0]}
        )

    def _make_tmux(self, root: Path) -> Any | None:
        self._tmux_built_from = _tmux_key(self.config)
        if not self.config.tmux.enabled:
            return None
        try:
            from tether.tmux.config import TmuxConfig
            from tether.tmux.link import TmuxLink
        except ImportError:
            log.info("tmux link not available: tmux disabled")
            return None
        try:
            wire, dropped = _safe_tmux_wire(self.config.tmux.wire or {}, root)
            if dropped:
                self._startup_warnings.append(
                    "Tether: ignoring " + ", ".join(dropped) + " from editor settings (they could come "
                    "from a workspace file and would run commands or start outside the workspace); "
                    "set them in your own Tether config"
                )
            raw = self.config.tmux.wire or {}
            # The user's own config file is the trusted base (it may name window commands and the
            # re-run allowlist); editor settings, stripped of anything that runs, go on top.
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
            cfg, warnings = TmuxConfig.from_wire(merged, trusted=True)
            # Only the user's own file decides whether agents' resume commands run.
            cfg.agent_resume, agent_warnings = agent_resume(user)
            file_warnings.extend(agent_warnings)
            # cfg.socket_path is the user's file's (Config drops it from editor settings);
            # None: $TETHER_TMUX_SOCKET, else tmux's default server.
            if "scrollbackLines" in raw:
                cfg.scrollback_lines = self.config.tmux.scrollback_lines
            self._startup_warnings.extend(f"Tether: {w}" for w in [*file_warnings, *warnings])
            state = Path(self.config.state_dir) if self.config.state_dir else None
            return TmuxLink(root, cfg, state_dir=state)
        except Exception:
            log.exception("tmux link failed to start: tmux disabled")
            return None

    async def apply_config(self, data: object, source: str) -> None:
        """Settings that arrive after start (workspace/configuration, didChangeConfiguration):
        merged over the current ones; a changed tmux section rebuilds the tmux link."""
        cfg, warnings = self.config.merged(data, source)
        for w in warnings:
            self.client.show_message("warning", w)
        self.config = cfg
        if self._backend is not None:  # else start() builds the link from this config
            await self._sync_tmux()

    async def _sync_tmux(self) -> None:
        """Rebuild the tmux link when the settings changed since it was built."""
        b = self._backend
        if b is None or self._tmux_built_from == _tmux_key(self.config):
            return

        def rebuild() -> None:
            self._startup_warnings.clear()
            b.tmux = self._make_tmux(b.store.root)
            usable = b.tmux is not None and self._tmux_usable()
            provider = getattr(b.tmux, "snapshot_bytes", None)
            if usable and callable(provider):
                b.checkpointer.add_provider(P.ATTACH_TMUX, provider)
            # The snapshot-on-change watch follows the link (another socket, another session).
            old, b.watch = b.watch, self._make_watch(b.tmux) if usable else None
            if old is not None:
                old.stop()
            if b.watch is not None:
                b.watch.start()
            self._refresh_side_state()

        await self._run(rebuild)
        for w in self._startup_warnings:
            self.client.show_message("warning", w)
        self._startup_warnings.clear()
        self.update_status()

    def _make_watch(self, link: Any) -> Any | None:
        """The tmux session is snapshotted on every change of its own, not only at checkpoints."""
        try:
            from tether.tmux.watch import TmuxWatch

            return TmuxWatch(link)
        except Exception:
            log.exception("tmux watch not started")
            return None

    def _tmux_usable(self) -> bool:
        """False (said once, at start) when the tmux on PATH is too old: checkpoints then go on
        without tmux snapshots, and the tmux commands answer with the same message."""
        from tether.tmux import version as tmux_version

        try:
            tmux_version.require()
        except tmux_version.TmuxTooOldError as exc:
            self._startup_warnings.append(f"Tether: {exc.message}; tmux sessions are not recorded")
            return False
        except TmuxError:
            pass  # not installed: the tmux commands say so when used
        return True

    def _make_agent(self, store: Store) -> Any | None:
        try:
            from tether.agent.session import AgentSession
        except ImportError:
            log.info("agent state not available")
            return None
        try:
            return AgentSession(store)
        except Exception:
            log.exception("agent state failed to load")
            return None

    def _refresh_side_state(self) -> None:
        """Worker thread: tmux liveness, the agent's files and next step, the files other live
        editors have open, and the resume candidate, for the status."""
        b = self._backend
        if b is None:
            return
        try:
            journals = resume_mod.journal_sessions(b.store.get_state(resume_mod.STATE_JOURNAL))
            self._other_editor_files = status_model.live_editor_files(journals, self.session_id)
            self._candidate.load(b.store)
        except TetherError as exc:
            log.warning("editor journals unreadable: %s", exc.message)
        if b.tmux is not None:
            try:
                alive = bool(b.tmux.alive())
                self._tmux_status = {"session": str(b.tmux.session), "alive": alive}
            except TmuxError as exc:  # an old tmux: said once at start, not at every poll
                log.debug("tmux status: %s", exc)
                self._tmux_status = {"session": str(getattr(b.tmux, "session", "")), "alive": False}
            except Exception as exc:
                log.warning("tmux status failed: %s", exc)
                self._tmux_status = {"session": str(getattr(b.tmux, "session", "")), "alive": False}
        if b.agent is not None:
            try:
                st = b.agent.state()
                files = getattr(st, "files_in_progress", None)
                if files is None and isinstance(st, Mapping):
                    files = st.get("files_in_progress") or st.get("filesInProgress")
                self._agent_files = [f for f in (files or []) if isinstance(f, str)]
                steps = getattr(st, "next_steps", None)
                self._next_step = steps[0] if isinstance(steps, list) and steps else None
            except Exception as exc:
                log.warning("agent state read failed: %s", exc)

    async def shutdown(self) -> None:
        """The editor is going away (``shutdown``, stdin closed, SIGTERM): the journal is
        written one last time and frozen, and saves still waiting for their debounced checkpoint
        get it now (`:w` then `:qa!` must not lose the save). Concurrent calls share one run."""
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.ensure_future(self._do_shutdown())
        await asyncio.shield(self._shutdown_task)

    async def _do_shutdown(self) -> None:
        with contextlib.suppress(Exception):
            await self._flush_journal(clean=True)
        self._frozen = True
        with contextlib.suppress(Exception):
            await self.flush_pending_saves()

    async def flush_pending_saves(self) -> None:
        """Checkpoint the saves the debounce is holding back, and wait for those under way."""
        if self._save_timer is not None:
            self._save_timer.cancel()
            self._save_timer = None
            self._fire_save()
        while self._save_tasks:
            await asyncio.gather(*list(self._save_tasks), return_exceptions=True)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for timer in (self._save_timer, self._journal_timer, self._status_timer):
            if timer is not None:
                timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await asyncio.get_running_loop().run_in_executor(None, self._watcher.stop)
        if self._backend is not None and self._backend.watch is not None:
            with contextlib.suppress(Exception):
                await asyncio.get_running_loop().run_in_executor(None, self._backend.watch.stop)
        if self._backend is not None:
            with contextlib.suppress(Exception):
                await self._run(self._backend.store.close)
        self._pool.shutdown(wait=False)

    # --- background jobs ------------------------------------------------------------------

    async def _baseline(self) -> None:
        # The progress token is asked for beside the scan, not before it: a client slow to answer
        # workDoneProgress/create must not hold the baseline up.
        progress = (
            self._spawn(self.client.progress_begin("Tether", "scanning workspace"))
            if self.client.supports_progress
            else None
        )
        info = None
        try:
            info = await self._checkpoint(P.TRIGGER_BASELINE, None, full=True, files_only=True)
        except TetherError:
            pass  # reported through the status (state "error")
        finally:
            self._busy -= 1
            self.update_status()
            token = None
            if progress is not None:
                if progress.done() and not progress.cancelled() and progress.exception() is None:
                    token = progress.result()
                else:
                    progress.cancel()
            msg = f"{plural(len(info.files), 'file')} recorded" if info else "up to date"
            self.client.progress_end(token, msg)

    async def _start_watcher(self) -> None:
        from tether.scan.watcher import Watcher

        # The store (and the log) may live inside the workspace: its writes are not changes.
        state = self._backend.store.db_path.parents[2] if self._backend is not None else None
        loop = asyncio.get_running_loop()

        def on_paths(paths: list[str]) -> None:
            if not self._closed:
                loop.call_soon_threadsafe(self.files_changed, paths, False)

        def start() -> Any:
            w = Watcher(
                self.root,
                on_paths,
                self.config.watcher_debounce_ms / 1000,
                exclude=[state] if state else None,
            )
            w.start()
            return w

        try:
            self._watcher = await loop.run_in_executor(None, start)
        except Exception as exc:
            log.warning("file watcher not started: %s", exc)

    async def _periodic(self) -> None:
        interval = self.config.checkpoint_interval_seconds
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(TetherError):
                await self._checkpoint(P.TRIGGER_PERIODIC, None, full=True, files_only=True)

    async def _poll_tmux(self) -> None:
        while True:
            await asyncio.sleep(TMUX_POLL_SECONDS)
            if self._backend is not None and self._backend.tmux is not None:
                with contextlib.suppress(Exception):
                    await self._run(self._refresh_side_state)
            self.update_status()

    # --- checkpoints ----------------------------------------------------------------------

    async def _checkpoint(
        self,
        trigger: str,
        message: str | None,
        *,
        paths: list[str] | None = None,
        full: bool = False,
        allow_empty: bool = False,
        files_only: bool = False,
    ) -> CheckpointInfo | None:
        await self.wait_ready()
        # A checkpoint means "keep everything now": unsaved buffers included.
        await self.flush_journal_now()
        self._busy += 1
        self._checkpointing += 1
        self.update_status()
        try:
            info = await self._run(
                lambda: self._checkpoint_sync(
                    trigger, message, paths=paths, full=full, allow_empty=allow_empty, files_only=files_only
                )
            )
        except TetherError as exc:
            self._error = exc.message
            log.error("checkpoint (%s) failed: %s", trigger, exc.message)
            raise
        except Exception as exc:
            self._error = f"checkpoint failed: {exc}"
            log.exception("checkpoint (%s) failed", trigger)
            raise StoreError(self._error) from exc
        else:
            self._error = None
            return info
        finally:
            self._busy -= 1
            self._checkpointing -= 1
            self.update_status()

    def _checkpoint_sync(
        self,
        trigger: str,
        message: str | None,
        *,
        paths: list[str] | None,
        full: bool,
        allow_empty: bool,
        files_only: bool = False,
    ) -> CheckpointInfo | None:
        b = self.backend
        outcome = b.checkpointer.checkpoint(
            trigger, message, paths=paths, full=full, allow_empty=allow_empty, files_only=files_only
        )
        if outcome.info is not None:
            self._after_checkpoint(outcome.info)
        return outcome.info

    def _after_checkpoint(self, info: CheckpointInfo) -> None:
        b = self.backend
        self._last_checkpoint = info
        self.checkpoints_written += 1
        if b.agent is not None:
            try:
                b.agent.after_checkpoint(info)
            except Exception as exc:
                log.warning("could not update %s: %s", AGENT_FILE, exc)
        self._refresh_side_state()

    def files_changed(self, paths: Sequence[str], from_editor: bool) -> None:
        """Saved or changed on disk: checkpoint after the burst settles (loop thread)."""
        if self._closed:
            return
        rels = []
        agent_file = False
        for p in paths:
            if p == AGENT_FILE:
                agent_file = True
                continue
            rels.append(p)
        if agent_file:
            self._spawn(self._import_agent_file())
        if not rels:
            return
        now = time.monotonic()
        if not self._pending_paths:
            self._pending_first = now
        echo = self._save_timer is not None and self._pending_paths.issuperset(rels)
        self._pending_paths.update(rels)
        self._pending_from_editor = self._pending_from_editor or from_editor
        if from_editor:
            self.update_status()  # "checkpointing…" at once
        if echo:
            # The same files again (the watcher, or the editor's file events, seeing the save
            # just told): the checkpoint is not pushed back.
            return
        if self._save_timer is not None:
            self._save_timer.cancel()
        delay = self.config.save_debounce_ms / 1000
        latest = self._pending_first + self.config.save_max_delay_ms / 1000
        when = max(0.0, min(now + delay, latest) - now)
        self._save_timer = asyncio.get_running_loop().call_later(when, self._fire_save)

    def _fire_save(self) -> None:
        self._save_timer = None
        paths = sorted(self._pending_paths)
        from_editor = self._pending_from_editor
        self._pending_paths.clear()
        self._pending_from_editor = False
        if paths:
            message = None if from_editor else "changed on disk"
            self._checkpointing += 1  # from the save on, until its checkpoint is written
            task = self._spawn(self._save_checkpoint(paths, message))
            self._save_tasks.add(task)
            task.add_done_callback(self._save_tasks.discard)

    async def _save_checkpoint(self, paths: list[str], message: str | None) -> None:
        try:
            with contextlib.suppress(TetherError):
                await self._checkpoint(P.TRIGGER_SAVE, message, paths=paths, files_only=True)
        finally:
            self._checkpointing -= 1
            self.update_status()

    async def _import_agent_file(self) -> None:
        await self.wait_ready()
        b = self.backend
        agent: Any = b.agent
        if agent is None:
            return

        def work() -> tuple[bool, str | None]:
            result = agent.import_file()
            changed, warning = result if isinstance(result, tuple) else (bool(result), None)
            return bool(changed), warning

        try:
            changed, warning = await self._run(work)
        except Exception as exc:
            log.warning("import of %s failed: %s", AGENT_FILE, exc)
            self.client.show_message("warning", f"Tether: could not read {AGENT_FILE}: {exc}")
            return
        if warning:
            self.client.show_message("warning", f"Tether: {warning}")
        if changed:
            with contextlib.suppress(TetherError):
                await self._checkpoint(P.TRIGGER_STEP, f"{AGENT_FILE} updated", allow_empty=True)

    # --- documents (loop thread) ----------------------------------------------------------

    def did_open(self, uri: str, version: int, text: str | None, language_id: str) -> None:
        """``text`` None: over maxFileBytes, tracked without it (see Documents)."""
        doc = self.docs.open(uri, version, text, language_id)
        if doc is None:
            log.debug("not tracking %s (outside the workspace)", uri)
            return
        if text is not None:
            self._spawn(self._check_open_base(uri, doc.path, doc.base_hash))
        self._schedule_journal()
        self.update_status()

    async def _check_open_base(self, uri: str, rel: str, opened_hash: str) -> None:
        """Off-loop checks of a newly opened document.

        Its unsaved text may be journaled only when the path is neither ignored (.gitignore,
        ``node_modules``…: never stored by checkpoints either) nor secret-looking (``.env``,
        keys). And an editor may reopen a buffer with its own unsaved text (its hot exit):
        then the buffer is dirty against the disk file, which becomes the journal's base.
        """

        def check() -> tuple[bool, str | None]:
            allowed = not looks_secret(rel) and not self._path_ignored(rel)
            try:
                found = safefs.read_file(self.root, rel)  # never through a symlinked directory
            except OSError:
                return allowed, None
            return allowed, text_hash(found[0]) if found is not None else None

        allowed, found = await asyncio.get_running_loop().run_in_executor(None, check)
        self.docs.set_journal_text(uri, allowed)
        if found is not None and found != opened_hash:
            self.docs.mark_base(uri, found)
        self._schedule_journal()
        self.update_status()

    def _path_ignored(self, rel: str) -> bool:
        from tether.scan.scanner import Scanner

        try:
            return bool(Scanner(self.root).ignore_rules().path_ignored(rel))
        except Exception as exc:  # the rule engine is scan.py's; fail closed (no text stored)
            log.debug("ignore check failed for %s: %s", rel, exc)
            return True

    def too_large(self, text: str) -> bool:
        """Whether a buffer's text is over maxFileBytes (then it is tracked without it)."""
        cap = self.config.max_file_bytes
        if len(text) > cap:
            return True
        return len(text) * 4 > cap and len(text.encode("utf-8", "surrogatepass")) > cap

    def tracks_without_text(self, uri: str) -> bool:
        doc = self.docs.get(uri)
        return doc is not None and doc.text is None

    def did_change(self, uri: str, version: int, text: str | None, edit_end: tuple[int, int] | None) -> None:
        if self.docs.change(uri, version, text, edit_end) is None:
            return
        self._schedule_journal()
        self.update_status()

    def did_save(self, uri: str, text: str | None) -> None:
        doc = self.docs.save(uri, text)
        if doc is None:
            return
        self._schedule_journal()
        self.files_changed([doc.path], True)
        self.update_status()

    def did_close(self, uri: str) -> None:
        if self._frozen:
            return
        if self.docs.close(uri) is not None:
            self._schedule_journal()
            self.update_status()

    def set_cursor(self, uri: str, line: int, character: int, visible: tuple[int, int] | None = None) -> None:
        if visible is not None:
            self.docs.set_visible(uri, *visible)
        if self.docs.set_cursor(uri, line, character) is not None:
            self._schedule_journal(restart=False)

    # --- journal --------------------------------------------------------------------------

    def _schedule_journal(self, restart: bool = True) -> None:
        """Journal ~1 s after edits settle, and at the latest 2 s after the first unjournaled
        edit, so continuous typing cannot postpone it; cursor moves never postpone it."""
        if self._frozen or self._closed:
            return
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        if self._journal_timer is not None:
            if not restart:
                return
            self._journal_timer.cancel()
        else:
            self._journal_first = now
        delay = self.config.buffer_journal_debounce_ms / 1000
        latest = self._journal_first + 2 * delay
        self._journal_timer = loop.call_later(max(0.0, min(now + delay, latest) - now), self._fire_journal)

    def _fire_journal(self) -> None:
        self._journal_timer = None
        self._spawn(self._flush_journal())

    async def _flush_journal(self, clean: bool = False) -> None:
        """``clean``: the editor shut down in order; its journal then offers a resume only for
        unsaved text it did not get back (status_model.resume_offer)."""
        if self._frozen:
            return
        gen = self.docs.generation
        if gen == self._journal_written_gen and not clean:
            return
        await self.wait_ready()
        # Like checkpoints, huge buffers are not stored (the journal is rewritten every second).
        snap = self.docs.snapshot(self.session_id, with_text=True, max_text=self.config.max_file_bytes)
        snap["pid"] = os.getpid()
        if clean:
            snap["clean"] = True

        def write() -> None:
            # Buffers opened a moment ago may not be vetted yet: do it here, off the loop.
            kept = []
            for buf in snap["buffers"]:
                if buf.pop("vetted") or not (looks_secret(buf["path"]) or self._path_ignored(buf["path"])):
                    kept.append(buf)
            snap["buffers"] = kept

            def fn(data: bytes | None) -> bytes:
                others = [
                    j for j in resume_mod.journal_sessions(data) if j.get("sessionId") != self.session_id
                ]
                return resume_mod.dump_sessions([*others, snap])

            self.backend.store.update_state(resume_mod.STATE_JOURNAL, fn)

        try:
            await self._run(write)
            self._journal_written_gen = gen
        except TetherError as exc:
            log.error("journal write failed: %s", exc.message)

    async def flush_journal_now(self) -> None:
        if self._journal_timer is not None:
            self._journal_timer.cancel()
            self._journal_timer = None
        await self._flush_journal()

    # --- status ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        last = self._last_checkpoint
        files = status_model.files_in_progress(
            self._agent_files, [*self.docs.open_paths(), *self._other_editor_files]
        )
        dirty = len(self.docs.dirty())
        if self._error:
            state = P.STATE_ERROR
        elif self._busy or not self._ready.is_set():
            state = P.STATE_BUSY
        else:
            state = P.STATE_IDLE
        checkpointing = self._checkpointing > 0 or (bool(self._pending_paths) and self._pending_from_editor)
        resume = self.resume_offered()
        facts = status_model.StatusFacts(
            last=last,
            files=files,
            dirty=dirty,
            checkpointing=checkpointing and not self._error,
            error=self._error,
            next_step=self._next_step,
            tmux=self._tmux_status,
            resume=resume,
        )
        return {
            "workspace": str(self.root),
            "state": state,
            "error": self._error,
            "lastCheckpoint": _shown(last) if last else None,
            "filesInProgress": len(files),
            "dirtyBuffers": dirty,
            "tmux": dict(self._tmux_status) if self._tmux_status is not None else None,
            "resumeAvailable": resume,
            "checkpointing": facts.checkpointing,
            "nextStep": self._next_step,
            "text": status_model.status_text(facts),
            "tooltip": status_model.status_tooltip(facts),
        }

    def resume_offered(self) -> bool:
        """Something of the previous session would come back that is not already here."""
        return self._candidate.offered((d.path, d.text) for d in self.docs.all())

    def update_status(self) -> None:
        """Send tether/status if it changed, at most every status_min_interval_ms; the last
        state is always delivered (a trailing send after the interval)."""
        if self._closed or self._loop is None:
            return
        if self._status_timer is not None:
            return  # a trailing send is already due; it computes the freshest state
        now = time.monotonic()
        wait = self._status_sent_at + self.config.status_min_interval_ms / 1000 - now
        if wait > 0:
            self._status_timer = self._loop.call_later(wait, self._status_trailing)
            return
        self._send_status()

    def _status_trailing(self) -> None:
        self._status_timer = None
        self._send_status()

    def _send_status(self) -> None:
        payload = self.status()
        if payload == self._status_sent:
            return
        self._status_sent = payload
        self._status_sent_at = time.monotonic()
        self.client.notify(P.NOTIFY_STATUS, payload)

    # --- commands -------------------------------------------------------------------------

    async def cmd_status(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return self.status()

    async def cmd_checkpoint(self, p: Mapping[str, Any]) -> dict[str, Any]:
        message = prm.opt_str(P.CMD_CHECKPOINT, p, "message")
        # Pending saves go into this checkpoint rather than a second one.
        if self._save_timer is not None:
            self._save_timer.cancel()
            self._save_timer = None
        paths = sorted(self._pending_paths)
        self._pending_paths.clear()
        await self._run(lambda: self.backend.checkpointer.note_changed(paths)) if paths else None
        info = await self._checkpoint(P.TRIGGER_MANUAL, message, full=True, allow_empty=True)
        assert info is not None
        self._candidate.superseded = True
        self.update_status()
        return _shown(info)

    async def cmd_timeline(self, p: Mapping[str, Any]) -> dict[str, Any]:
        limit = prm.opt_int(P.CMD_TIMELINE, p, "limit", 50, minimum=1)
        await self.wait_ready()
        infos = await self._run(self.backend.store.list_checkpoints, limit)
        return {"checkpoints": [_shown(i) for i in infos]}

    def _rel_paths(self, command: str, paths: list[str] | None) -> list[str] | None:
        if paths is None:
            return None
        out = []
        for raw in paths:
            candidate = raw
            if raw.startswith("file://"):
                from tether.editor.documents import uri_to_path

                candidate = uri_to_path(raw) or raw
            try:
                out.append(normalize_rel(self.root, candidate))
            except OutsideWorkspaceError as exc:
                raise OutsideWorkspaceError(f"{command}: {exc.message}") from None
        return out

    async def cmd_diff(self, p: Mapping[str, Any]) -> dict[str, Any]:
        from tether.checkpoints import restore as restore_mod

        c = P.CMD_DIFF
        a = prm.checkpoint_id(c, p, "from", required=True)
        b = prm.checkpoint_id(c, p, "to", required=False)
        paths = self._rel_paths(c, prm.opt_str_list(c, p, "paths"))
        await self.wait_ready()
        assert a is not None
        files = await self._run(restore_mod.diff, self.backend.store, a, b, paths)
        return {"from": a, "to": b, "files": [f.to_wire() for f in files]}

    async def cmd_file_at(self, p: Mapping[str, Any]) -> dict[str, Any]:
        c = P.CMD_FILE_AT
        n = prm.checkpoint_id(c, p, "checkpoint", required=True)
        raw = prm.req_str(c, p, "path")
        rels = self._rel_paths(c, [raw])
        assert rels is not None and n is not None
        rel = rels[0]
        await self.wait_ready()

        def work() -> dict[str, Any]:
            store = self.backend.store
            entry = store.entry_at(n, rel)
            if entry is None:
                return {"path": rel, "exists": False, "binary": False, "text": None}
            data = store.read_blob(entry.hash)
            binary = is_binary(data)
            return {
                "path": rel,
                "exists": True,
                "binary": binary,
                "text": None if binary else data.decode("utf-8"),
            }

        return await self._run(work)

    async def cmd_restore(self, p: Mapping[str, Any]) -> dict[str, Any]:
        from tether.checkpoints import restore as restore_mod

        c = P.CMD_RESTORE
        n = prm.checkpoint_id(c, p, "checkpoint", required=True)
        paths = self._rel_paths(c, prm.opt_str_list(c, p, "paths"))
        dry = prm.opt_bool(c, p, "dryRun", True)
        await self.wait_ready()
        assert n is not None
        if not dry:
            self._busy += 1
            self.update_status()
        try:

            def work() -> Any:
                b = self.backend
                result = restore_mod.restore(b.store, b.checkpointer, n, paths, dry_run=dry)
                latest = b.store.latest()
                if not dry and latest is not None and latest != self._last_checkpoint:
                    self._after_checkpoint(latest)
                return result

            result = await self._run(work)
        finally:
            if not dry:
                self._busy -= 1
                self.update_status()
        out: dict[str, Any] = result.to_wire()
        return out

    async def cmd_step(self, p: Mapping[str, Any]) -> dict[str, Any]:
        c = P.CMD_STEP
        done = prm.req_str(c, p, "done")
        nxt = prm.opt_str_list(c, p, "next", max_items=200)
        task = prm.opt_str(c, p, "task")
        await self.wait_ready()
        await self.flush_journal_now()
        self._busy += 1
        self.update_status()

        def work() -> tuple[CheckpointInfo | None, dict[str, Any]]:
            b = self.backend
            if b.agent is not None:
                info = b.agent.record_step(b.checkpointer, done, next_steps=nxt, task=task)
                if info is not None:
                    self._after_checkpoint(info)
                return info, self._hand_off_sync()
            out = b.checkpointer.checkpoint(P.TRIGGER_STEP, done, allow_empty=True)
            if out.info is not None:
                self._after_checkpoint(out.info)
            hand = {"task": task, "nextSteps": nxt or []}
            return out.info, hand

        try:
            info, hand = await self._run(work)
        finally:
            self._busy -= 1
            self._candidate.superseded = True
            self.update_status()
        self.client.notify(
            P.NOTIFY_SHOW_NEXT_STEPS, resume_mod.next_steps_payload(hand, self.docs.open_paths())
        )
        if info is None:
            raise StoreError("the step was not recorded")
        return _shown(info)

    def _hand_off_sync(self) -> dict[str, Any]:
        b = self.backend
        if b.agent is None:
            return {}
        try:
            hand = b.agent.hand_off()
        except Exception as exc:
            log.warning("agent hand-off failed: %s", exc)
            return {}
        return hand if isinstance(hand, dict) else {}

    async def cmd_start_session(self, p: Mapping[str, Any]) -> dict[str, Any]:
        await self.wait_ready()
        b = self.backend
        link: Any = b.tmux
        if link is None:
            raise TmuxError("tmux is disabled or not available on this machine")

        def work() -> tuple[str, bool, list[str]]:
            name, created = link.ensure_session()
            if b.watch is not None:
                # Snapshotted at once (and hooked): a reboot a second later brings it back.
                b.watch.check_now(force=bool(created), store=b.store)
            argv = list(link.attach_argv())
            self._refresh_side_state()
            return str(name), bool(created), argv

        try:
            name, created, argv = await self._run(work)
        except TetherError:
            raise
        except Exception as exc:
            raise TmuxError(f"could not start the tmux session: {exc}") from exc
        self.client.notify(P.NOTIFY_OPEN_TERMINAL, {"name": name, "argv": argv, "cwd": str(self.root)})
        self.update_status()
        return {"session": name, "created": created, "argv": argv}

    # --- resume ---------------------------------------------------------------------------

    async def cmd_resume(self, p: Mapping[str, Any]) -> dict[str, Any]:
        n = prm.checkpoint_id(P.CMD_RESUME, p, "checkpoint", required=False)
        await self.wait_ready()
        # One resume at a time: a double-clicked command must not apply the buffers twice. The
        # first one's client requests are bounded, so this wait is too.
        try:
            await asyncio.wait_for(self._resume_lock.acquire(), RESUME_QUEUE_TIMEOUT)
        except TimeoutError:
            raise BusyError(
                f"another tether.resume is still running after {RESUME_QUEUE_TIMEOUT:g} s; try again"
            ) from None
        try:
            return await self._resume(n)
        finally:
            self._resume_lock.release()

    async def _resume(self, n: int | None) -> dict[str, Any]:

        def gather() -> resume_mod.ResumePlan:
            inputs = resume_mod.load_inputs(
                self.backend.store, n, self._hand_off_sync(), self.config.resume_max_files
            )
            return resume_mod.plan(inputs)

        t0 = time.perf_counter()
        plan = await self._run(gather)
        t_plan = time.perf_counter()
        # tmux work runs in the worker while the editor messages go out.
        terminal_task = asyncio.ensure_future(self._resume_terminal())
        opened: list[str] = []
        restored: list[str] = []
        skipped = [{"path": s.path, "reason": s.reason} for s in plan.skipped]
        shows = [s for s in plan.show if not s.focus] if self.client.supports_show_document else []
        focus = [s for s in plan.show if s.focus] if self.client.supports_show_document else []
        buffers = []
        retry: set[str] = set()  # not restored, for a reason that may pass: stays pending
        for buf in plan.buffers:
            verdict, end = self._against_live_doc(buf.path, buf.text)
            if verdict == "same":
                restored.append(buf.path)  # already there (e.g. a second resume): no edit
            elif verdict is not None:
                skipped.append({"path": buf.path, "reason": verdict})
                retry.add(buf.path)
            else:
                buffers.append(
                    resume_mod.BufferEdit(buf.path, buf.uri, buf.text, end or buf.end, buf.base_hash)
                )
        if buffers:
            # Before the edits (notifications and requests keep their order): an editor with its
            # own recovery files (Neovim's swap files) decides with these which copy is newer.
            journaled = plan.journaled_at
            self.client.notify(
                P.NOTIFY_RESTORING_BUFFERS,
                {
                    "buffers": [
                        {
                            "path": b.path,
                            "uri": b.uri,
                            "journaledAt": _iso_ms(journaled) if journaled is not None else None,
                            "textHash": text_hash(b.text),
                            "baseHash": b.base_hash,
                        }
                        for b in buffers
                    ]
                },
            )
        results = await asyncio.gather(
            *(self.client.show_document(s.uri, s.line, s.character, False) for s in shows),
            *(self.client.apply_edit(P.LABEL_RESTORE_EDIT, b.uri, b.end, b.text) for b in buffers),
            return_exceptions=True,
        )
        # Requests the editor never answered (each is bounded): said in the result.
        timed_out: list[dict[str, str]] = []
        for s, ok in zip(shows, results[: len(shows)], strict=True):
            if ok is True:
                opened.append(s.path)
            elif isinstance(ok, ClientTimeoutError):
                timed_out.append({"request": ok.request, "path": s.path})
        for b, res in zip(buffers, results[len(shows) :], strict=True):
            if isinstance(res, tuple) and res[0]:
                restored.append(b.path)
            elif isinstance(res, ClientTimeoutError):
                timed_out.append({"request": res.request, "path": b.path})
                skipped.append({"path": b.path, "reason": res.message})
            else:
                why = res[1] if isinstance(res, tuple) else str(res)
                retry.add(b.path)
                skipped.append(
                    {"path": b.path, "reason": f"the editor refused the edit: {why or 'no reason'}"}
                )
        # The focused document last, so it ends up in front.
        for s in focus:
            try:
                if await self.client.show_document(s.uri, s.line, s.character, True):
                    opened.append(s.path)
            except ClientTimeoutError as exc:
                timed_out.append({"request": exc.request, "path": s.path})
            except Exception as exc:
                log.info("showDocument %s failed: %s", s.uri, exc)
        t_editor = time.perf_counter()
        terminal, no_terminal = await terminal_task
        t_term = time.perf_counter()
        log.info(
            "resume: plan %.0f ms, %d documents + %d buffers %.0f ms, terminal wait after them %.0f ms",
            (t_plan - t0) * 1000,
            len(plan.show),
            len(plan.buffers),
            (t_editor - t_plan) * 1000,
            (t_term - t_editor) * 1000,
        )
        self.client.notify(P.NOTIFY_SHOW_NEXT_STEPS, plan.next_steps)

        if plan.pending is not None:
            # Consumed only as far as it really came back: refused buffers stay for next time.
            pending = plan.pending
            with contextlib.suppress(TetherError):
                await self._run(lambda: self._candidate.consume(self.backend.store, pending, retry))
            self.update_status()
        return {
            "checkpoint": plan.checkpoint,
            "opened": opened,
            "restoredBuffers": restored,
            "skippedBuffers": skipped,
            "terminal": terminal,
            "noTerminal": no_terminal,
            "nextSteps": plan.next_steps.get("nextSteps", []),
            "timedOut": timed_out,
        }

    def _against_live_doc(self, path: str, text: str) -> tuple[str | None, tuple[int, int] | None]:
        """How a journaled buffer meets the document this editor already has open, if any:
        ("same", None) when it already holds the text, (reason, None) when it has other
        unsaved edits (never overwritten), else (None, end of its current text)."""
        for doc in self.docs.all():
            if doc.path != path:
                continue
            if doc.text is None:
                return "the document is larger than maxFileBytes: its text is not tracked", None
            if text_hash(doc.text) == text_hash(text):
                return "same", None
            if doc.dirty:
                return "the file already has different unsaved edits in this editor", None
            return None, end_position(doc.text)
        return None, None

    async def _resume_terminal(self) -> tuple[dict[str, Any] | None, str | None]:
        """(ResumeResult.terminal, ResumeResult.noTerminal): the session reattached or recreated,
        else why not (None when tmux is off)."""
        b = self._backend
        if b is None or b.tmux is None:
            return None, None

        def work() -> tuple[str, bool, list[str], list[dict[str, Any]]] | str:
            from tether.tmux.config import RunPolicy
            from tether.tmux.watch import latest_snapshot

            link: Any = b.tmux
            recreated = False
            agents: list[dict[str, Any]] = []
            if not link.alive():
                found = latest_snapshot(b.store)
                if found is None:
                    return (
                        f"the tmux session {link.session} is not running and no snapshot of it was "
                        "ever recorded, so there is no terminal to bring back (Tether: Start agent "
                        "session or `tether start` creates one and records it at once)"
                    )
                # Recorded commands run again only when they match the user's allowlist.
                report = link.restore(found.data, RunPolicy(mode="allowlist"))
                recreated = bool(report.recreated)
                if b.watch is not None:
                    b.watch.check_now(force=True, store=b.store)
                for w in report.warnings:
                    log.warning("tmux restore: %s", w)
                # Which conversation each agent pane resumes, for the client to show.
                agents = [
                    {"window": p.window, "pane": p.uid, "agent": p.agent, "conversation": p.conversation,
                     "action": p.action, "command": p.command}
                    for p in report.panes
                    if p.agent
                ]  # fmt: skip
            argv = list(link.attach_argv())
            self._refresh_side_state()
            return str(link.session), recreated, argv, agents

        try:
            out = await self._run(work)
        except Exception as exc:
            log.warning("terminal resume failed: %s", exc)
            return None, f"could not bring the tmux session back: {exc}"
        if isinstance(out, str):
            return None, out
        name, recreated, argv, agents = out
        self.client.notify(P.NOTIFY_OPEN_TERMINAL, {"name": name, "argv": argv, "cwd": str(self.root)})
        self.update_status()
        return {"session": name, "recreated": recreated, "agents": agents}, None


def _tmux_key(config: Config) -> object:
    wire = config.tmux.wire
    return config.tmux, json.dumps(wire, sort_keys=True, default=str) if wire is not None else None


def _shown(info: CheckpointInfo) -> dict[str, Any]:
    """A checkpoint for the editor to display: its message (a step's text, a hook's command line)
    escaped like every workspace-derived string an editor shows."""
    wire = info.to_wire()
    for key in ("message", "origin"):
        if isinstance(wire.get(key), str):
            wire[key] = escape(wire[key])
    return wire


def _safe_tmux_wire(raw: Mapping[str, Any], root: Path) -> tuple[dict[str, Any], list[str]]:
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


def _iso_ms(t: float) -> str:
    """ISO 8601 UTC with milliseconds: a journal and a swap file written in the same second
    must still compare."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def root_from(root_uri: str | None, root_path: str | None, folders: Sequence[str]) -> Path:
    """The workspace root from initialize params (first folder, root URI, root path, else cwd)."""
    from tether.editor.documents import uri_to_path

    for uri in [*folders, root_uri]:
        if uri:
            path = uri_to_path(uri)
            if path and os.path.isdir(path):
                return Path(path).resolve()
    if root_path and os.path.isdir(root_path):
        return Path(root_path).resolve()
    return Path.cwd().resolve()
