"""The server's behaviour, independent of pygls: the worker thread, the lifecycle, checkpoints
from saves and from the file watcher, the journal and the status.

Threading model: the asyncio loop owns the document model and the timers; a single worker
thread owns the :class:`~tether.lsp.backend.Backend` (sqlite connections are per-thread): the
store, the Checkpointer, the tmux link and the agent state. Every blocking call goes through
:meth:`Engine.run`, so the loop never waits on disk or tmux, and store writes are serialised
without locks. The editor is reached through :class:`ClientPort`; commands are in
``commands.py``, the resume flow in ``resume.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tether import protocol as P
from tether.editor import status as status_model
from tether.editor.candidate import ResumeCandidate
from tether.editor.documents import Documents
from tether.errors import CancelledError, StoreError, TetherError
from tether.lsp import jobs
from tether.lsp import status as status_mod
from tether.lsp.backend import Backend, SideState, tmux_key
from tether.lsp.client import ClientPort
from tether.lsp.config import Config
from tether.lsp.debounce import LoopTimers, Throttle, Timers
from tether.lsp.editing import Editing
from tether.lsp.journal import Journal
from tether.lsp.saves import Saves
from tether.model import CheckpointInfo, Progress
from tether.scan.result import AGENT_FILE

if TYPE_CHECKING:
    from tether.scan.feed import ChangeFeed

log = logging.getLogger(__name__)

T = TypeVar("T")

READY_TIMEOUT = 60.0


class Engine:
    def __init__(self, root: Path, config: Config, client: ClientPort, timers: Timers | None = None) -> None:
        self.root = root.resolve()
        self.config = config
        self.client = client
        self.session_id = uuid.uuid4().hex
        self.docs = Documents(self.root)
        self.candidate = ResumeCandidate()  # the previous session a resume would bring back
        self.resume_lock = asyncio.Lock()
        self.checkpoints_written = 0
        timers = timers or LoopTimers()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tether-store")
        self._backend: Backend | None = None
        self._ready = asyncio.Event()
        self._started = False  # no status is sent before start() (the client's `initialized`)
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._jobs: set[asyncio.Task[Any]] = set()
        self._warnings: list[str] = []  # from the worker thread, shown by the loop
        self._feed: ChangeFeed | None = None  # the file watcher, durable in the store
        self._shutdown_task: asyncio.Future[None] | None = None
        # status
        self._last: CheckpointInfo | None = None
        self._side = SideState()
        self._busy = 0
        self._baseline_due = False
        self._checkpointing = 0
        self._error: str | None = None
        self._status_sent: dict[str, Any] | None = None
        self._status = Throttle(timers, self._send_status, lambda: self.config.status_min_interval_ms / 1000)
        self.journal = Journal(self, timers)
        self.saves = Saves(self, timers)
        self.editing = Editing(self)

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` in the worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def spawn(self, coro: Awaitable[Any], *, forever: bool = False) -> asyncio.Task[Any]:
        """Run ``coro`` beside the engine's own work (kept referenced, failures logged).
        ``forever``: a job that runs until close (a periodic one), not work to :meth:`drain`."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        tasks = self._jobs if forever else self._tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(_log_failure)
        return task

    async def drain(self) -> None:
        """Wait for the work spawned so far (and what it spawns) to finish."""
        while pending := [t for t in self._tasks if not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            raise StoreError("the store is not open yet")
        return self._backend

    @property
    def backend_or_none(self) -> Backend | None:
        return self._backend

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def last_checkpoint(self) -> CheckpointInfo | None:
        return self._last

    async def wait_ready(self) -> None:
        if not self._ready.is_set():
            try:
                await asyncio.wait_for(self._ready.wait(), READY_TIMEOUT)
            except TimeoutError:
                raise StoreError("the Tether server is still starting; try again") from None
        if self._backend is None:
            raise StoreError(self._error or "the store could not be opened")

    @contextlib.contextmanager
    def busy(self, checkpointing: bool = False) -> Iterator[None]:
        """The status says "busy" (and "checkpointing…") while the block runs."""
        self._busy += 1
        self._checkpointing += checkpointing
        self.update_status()
        try:
            yield
        finally:
            self._busy -= 1
            self._checkpointing -= checkpointing
            self.update_status()

    def _show_warnings(self) -> None:
        for w in self._warnings:
            self.client.show_message("warning", w)
        self._warnings.clear()

    async def start(self) -> None:
        self._started = True
        try:
            t0 = time.perf_counter()
            await self.run(self._open_backend)
            log.info("store open in %.0f ms", (time.perf_counter() - t0) * 1000)
        except Exception as exc:
            if isinstance(exc, TetherError):
                log.error("cannot open the store: %s", exc.message)
                self._error = exc.message
            else:
                log.exception("cannot open the store")
                self._error = f"cannot open the store: {exc}"
            self.client.show_message("error", f"Tether: {self._error}")
            self._ready.set()
            self.update_status()
            return
        # Busy from the start: a client sees "idle" only once the baseline is recorded.
        self._baseline_due = self.config.baseline_scan
        self._ready.set()
        self._show_warnings()
        self.update_status()
        # Settings that arrived while the store was opening (workspace/configuration).
        self.spawn(self._sync_tmux())
        self.spawn(self._watch_then_baseline())
        if self.config.checkpoint_interval_seconds > 0:
            self.spawn(jobs.periodic(self), forever=True)
        self.spawn(jobs.poll_tmux(self), forever=True)
        if self.backend.watch is not None:
            self.backend.watch.start()

    def _open_backend(self) -> None:
        backend = Backend.open(
            self.root, self.config, lambda: self.docs.attachment_bytes(self.session_id), self._warnings
        )
        self.candidate.claim(backend.store)
        self._last = backend.store.latest()
        self._backend = backend
        self.refresh_side_state()

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
        """Rebuild the tmux link (and its watch) when the settings changed since it was built."""
        b = self._backend
        if b is None or b.tmux_built_from == tmux_key(self.config):
            return

        def rebuild() -> None:
            self._warnings.clear()
            b.build_tmux(self.config, self._warnings)
            if b.watch is not None:
                b.watch.start()
            self.refresh_side_state()

        await self.run(rebuild)
        self._show_warnings()
        self.update_status()

    def refresh_side_state(self) -> None:
        """Worker thread: what the status shows beside the last checkpoint."""
        if self._backend is not None:
            self._side = self._backend.side_state(self.session_id, self.candidate)

    async def shutdown(self) -> None:
        """The editor is going away (``shutdown``, stdin closed, SIGTERM): the journal is
        written one last time and frozen, and saves still waiting for their debounced checkpoint
        get it now (`:w` then `:qa!` must not lose the save). Concurrent calls share one run."""
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.ensure_future(self._do_shutdown())
        await asyncio.shield(self._shutdown_task)

    async def _do_shutdown(self) -> None:
        with contextlib.suppress(Exception):
            await self.journal.finish()
        self.journal.frozen = True
        with contextlib.suppress(Exception):
            await self.saves.flush()

    async def _watch_then_baseline(self) -> None:
        # The watcher first: the baseline walk, made while it runs, is what lets other processes
        # trust its dirty set (a walk before it started would vouch for nothing).
        if self.config.watcher:
            self._feed = await jobs.start_watcher(self)
        if self.config.baseline_scan:
            await jobs.baseline(self)

    def baseline_done(self) -> None:
        self._baseline_due = False
        self.update_status()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.saves.cancel()
        self.journal.cancel()
        self._status.cancel()
        for task in [*self._tasks, *self._jobs]:
            task.cancel()
        loop = asyncio.get_running_loop()
        if self._feed is not None:
            with contextlib.suppress(Exception):
                await loop.run_in_executor(None, self._feed.stop)
        b = self._backend
        if b is not None and b.watch is not None:
            with contextlib.suppress(Exception):
                await loop.run_in_executor(None, b.watch.stop)
        if b is not None:
            with contextlib.suppress(Exception):
                await self.run(b.close)
        self._pool.shutdown(wait=False)

    async def checkpoint(
        self,
        trigger: str,
        message: str | None,
        *,
        paths: list[str] | None = None,
        full: bool = False,
        allow_empty: bool = False,
        files_only: bool = False,
        progress: Progress | None = None,
    ) -> CheckpointInfo | None:
        """``progress``: told how far it got, on the worker thread (it may raise CancelledError:
        the checkpoint is then abandoned, nothing written, and not counted as an error)."""
        await self.wait_ready()
        # A checkpoint means "keep everything now": unsaved buffers included.
        await self.journal.flush_now()

        feed = self._feed if full else None

        def work() -> CheckpointInfo | None:
            # A whole walk also checks the watcher (or makes it trusted: readers then need no walk).
            mark = feed.mark() if feed is not None else None
            cp = self.backend.checkpointer
            cp.progress = progress
            try:
                outcome = cp.checkpoint(
                    trigger, message, paths=paths, full=full, allow_empty=allow_empty, files_only=files_only
                )
            finally:
                cp.progress = None
            if feed is not None:
                feed.after_full_scan(outcome.scan, mark, checkpointed=True)
            if outcome.info is not None:
                self.after_checkpoint(outcome.info)
            return outcome.info

        with self.busy(checkpointing=True):
            try:
                info = await self.run(work)
            except CancelledError:
                log.info("checkpoint (%s) cancelled: nothing written", trigger)
                raise
            except TetherError as exc:
                self._error = exc.message
                log.error("checkpoint (%s) failed: %s", trigger, exc.message)
                raise
            except Exception as exc:
                self._error = f"checkpoint failed: {exc}"
                log.exception("checkpoint (%s) failed", trigger)
                raise StoreError(self._error) from exc
            self._error = None
            return info

    def after_checkpoint(self, info: CheckpointInfo) -> None:
        """Worker thread: a checkpoint was written (by us)."""
        b = self.backend
        self._last = info
        self.checkpoints_written += 1
        if b.agent is not None:
            try:
                b.agent.after_checkpoint(info)
            except Exception as exc:
                log.warning("could not update %s: %s", AGENT_FILE, exc)
        self.refresh_side_state()

    def status(self) -> dict[str, Any]:
        side = self._side
        return status_mod.payload(
            self.root,
            busy=bool(self._busy) or self._baseline_due or not self._ready.is_set(),
            error=self._error,
            last=self._last,
            files=status_model.files_in_progress(
                side.agent_files, [*self.docs.open_paths(), *side.other_editor_files]
            ),
            dirty=len(self.docs.dirty()),
            checkpointing=self._checkpointing > 0 or self.saves.checkpointing,
            next_step=side.next_step,
            tmux=side.tmux,
            resume=self.resume_offered(),
        )

    def resume_offered(self) -> bool:
        """Something of the previous session would come back that is not already here."""
        return self.candidate.offered((d.path, d.text) for d in self.docs.all())

    def update_status(self) -> None:
        """Send tether/status if it changed, at most every status_min_interval_ms; the last
        state is always delivered (a trailing send after the interval)."""
        if self._started and not self._closed:
            self._status.request()

    def _send_status(self) -> bool:
        payload = self.status()
        if payload == self._status_sent:
            return False
        self._status_sent = payload
        try:
            self.client.notify(P.NOTIFY_STATUS, payload)
        except OSError as exc:
            # The editor is gone (`:w | qa!`): the status is for nobody, but the work that asked
            # for it (the save's checkpoint at exit) must still be done.
            log.debug("status not sent: %s", exc)
        return True


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("background task failed", exc_info=exc)
