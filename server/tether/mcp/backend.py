"""The MCP server's worker: which workspace it serves, and the one thread that touches its store.

The event loop only speaks the protocol. Store, scan and tmux work run in a single worker
thread (:meth:`Backend.run`), so calls are serialised without locks and the scanner's
directory listings stay warm from one call to the next. A file watcher (:mod:`tether.scan.feed`)
tells a step which paths changed, so it looks at those instead of walking the workspace; every
whole walk (status, hand-off) checks the watcher, and a watcher found missing a change is not
used again. Other processes (the CLI, the language server, another agent's MCP server) write the
same store; SQLite's WAL and busy timeout serialise them, as for any two Tether processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlparse

from tether import protocol
from tether.agent.session import AgentSession
from tether.agent.steps import make_checkpointer
from tether.checkpoints.checkpointer import Checkpointer
from tether.errors import StoreError
from tether.paths import find_root
from tether.record import dataclass, field
from tether.scan.feed import BASELINE, ChangeFeed
from tether.scan.result import ScanResult
from tether.store.db import Store

log = logging.getLogger(__name__)

T = TypeVar("T")

ROOTS_TIMEOUT = 5.0
# After a checkpoint, how long the server waits for quiet before walking the workspace to check
# the file watcher (and, when it has no baseline yet, to set one up).
CHECK_DELAY = 1.0


@dataclass
class Workspace:
    """Objects living in the worker thread only."""

    root: Path
    state_dir: str | None
    store: Store
    session: AgentSession
    checkpointer: Checkpointer
    identity: tuple[int, int] | None  # the database file's (device, inode) when opened
    feed: ChangeFeed | None = None
    baselined: bool = False  # this server's session start is recorded (baseline)
    # Bookkeeping a call leaves for after its reply (Backend.run queues it on the worker, so it
    # is done before the next call starts): the watcher's sync mark removed, the watcher's
    # dirty paths that the call checkpointed crossed out. Neither is needed for the reply, and
    # both together cost a step ~1 ms (a directory removal, a commit).
    later: list[Callable[[], None]] = field(default_factory=list)

    def run_later(self) -> None:
        todo, self.later = self.later, []
        for fn in todo:
            try:
                fn()
            except Exception as exc:  # bookkeeping: the next call's own checks cover it
                log.warning("after a call: %s", exc)

    def scan(self) -> ScanResult:
        """Every change on disk: a stat walk of the whole workspace, which also checks (or sets
        up) the change feed."""
        mark = self.feed.mark() if self.feed is not None else None
        scan = self.checkpointer.walk()
        if self.feed is not None:
            self.feed.after_full_scan(scan, mark, checkpointed=False)
        return scan

    def baseline(self) -> None:
        """The session's start, recorded as the language server records its own: a walk of the
        whole workspace, checkpointed where it differs from the store (files only, trigger
        ``baseline``). Before an agent's first step, that step names the files changed since
        (agent/session.py), also those a hook or a save checkpointed in between."""
        mark = self.feed.mark() if self.feed is not None else None
        outcome = self.checkpointer.checkpoint(protocol.TRIGGER_BASELINE, None, full=True, files_only=True)
        if outcome.info is not None:
            self.session.after_checkpoint(outcome.info)
        if self.feed is not None:
            self.feed.after_full_scan(outcome.scan, mark, checkpointed=True)
        self.baselined = True

    @contextlib.contextmanager
    def changes(self) -> Iterator[Callable[[], ScanResult]]:
        """What changed, for a checkpoint made inside the block, as a function the block calls
        (once) when it needs it: the paths the file watcher reported when it can vouch for them
        (no walk), else a walk of the whole workspace. The watcher's sync starts as the block is
        entered, so the block's work before the call overlaps its wait. The feed learns that the
        paths are in the store only when the block ends without an error, after the reply
        (:attr:`later`)."""
        finish = self.feed.begin_take(self.later) if self.feed is not None else None
        after: list[Callable[[], None]] = []

        def scan() -> ScanResult:
            nonlocal finish
            taken = finish() if finish is not None else None
            finish = None
            feed = self.feed
            # Streamed: the checkpoint reads new files' bytes as it writes them (bounded memory).
            if taken is None:
                mark = feed.mark() if feed is not None else None
                walked = self.checkpointer.walk(stream=True)
                if feed is not None:
                    after.append(lambda: feed.after_full_scan(walked, mark, checkpointed=True))
                return walked
            paths, mark = taken
            assert feed is not None
            log.debug(
                "scan: %d paths the file watcher saw change, no walk (%s)", len(paths), ", ".join(paths[:5])
            )
            after.append(lambda: feed.done(paths, mark))
            return self.checkpointer.scan_told(paths, stream=True)

        try:
            yield scan
        finally:
            if finish is not None:
                finish()  # never asked for: the sync is still ended (its mark removed)
        self.later.extend(after)

    def close(self) -> None:
        self.run_later()
        if self.feed is not None:
            self.feed.stop()
        self.store.close()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def root_from_uris(uris: Sequence[str], cwd: Path) -> Path | None:
    """The workspace among a client's roots: the deepest one holding ``cwd``, else the first
    that is a local directory. None when no root is a local directory."""
    cwd = cwd.resolve()
    dirs: list[Path] = []
    for uri in uris:
        parsed = urlparse(uri)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            continue
        path = Path(unquote(parsed.path))
        with contextlib.suppress(OSError, RuntimeError):
            if path.is_absolute() and path.is_dir():
                dirs.append(path.resolve())
    holding = [d for d in dirs if cwd == d or d in cwd.parents]
    if holding:
        return max(holding, key=lambda d: len(d.parts))
    return dirs[0] if dirs else None


class Backend:
    """The served workspace and its worker thread."""

    def __init__(
        self, workspace: Path | None = None, state_dir: str | None = None, *, watch: bool = True
    ) -> None:
        self.state_dir = state_dir
        self.watch = watch  # steps look at the paths a file watcher reports (else they walk)
        self._explicit = workspace.resolve() if workspace is not None else None
        self._root: Path | None = None
        self._root_known = asyncio.Event()
        self._root_lock = asyncio.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tether-mcp-store")
        self._ws: Workspace | None = None  # the worker thread's
        self._checker: asyncio.Future[None] | None = None
        self._closed = False

    # --- which workspace --------------------------------------------------------------------

    @property
    def root(self) -> Path | None:
        return self._root

    async def ensure_root(self, list_roots: Callable[[], Awaitable[list[str]]] | None = None) -> Path:
        """Settle the workspace once: ``--workspace``, else the client's roots (when it has
        any to give), else the nearest parent of the cwd with ``.git`` (or the cwd)."""
        if self._root is not None:
            return self._root
        async with self._root_lock:
            if self._root is None:
                self._root = await self._choose(list_roots)
                log.info("serving workspace %s", self._root)
                self._root_known.set()
        return self._root

    async def wait_root(self) -> Path:
        """For background work: the workspace, once the first request has settled it."""
        await self._root_known.wait()
        assert self._root is not None
        return self._root

    async def _choose(self, list_roots: Callable[[], Awaitable[list[str]]] | None) -> Path:
        if self._explicit is not None:
            return self._explicit
        cwd = Path(os.getcwd())
        if list_roots is not None:
            try:
                uris = await asyncio.wait_for(list_roots(), ROOTS_TIMEOUT)
            except Exception as exc:  # a client that lists no roots still gets its cwd's workspace
                log.info("roots/list failed (%s); using the working directory", exc)
            else:
                # Stats, off the event loop like every disk access.
                root = await asyncio.to_thread(root_from_uris, uris, cwd)
                if root is not None:
                    return root
        return await asyncio.to_thread(find_root, cwd)

    # --- the worker ---------------------------------------------------------------------------

    async def run(self, fn: Callable[[Workspace], T], *, wrote: bool = False) -> T:
        """``fn(workspace)`` in the worker thread. A call cancelled by the client (or its
        disconnect) still finishes there: a step or a restore is never left half done.
        ``wrote``: ``fn`` checkpointed; a whole walk follows once the server is idle, so a change
        the file watcher missed is caught before the next step, not after it."""
        if self._closed:
            raise StoreError("the Tether MCP server is shutting down")
        root = await self.ensure_root()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, self._call, root, fn)
        finally:
            if wrote or self._needs_baseline:
                self._check_soon()

    def _check_soon(self) -> None:
        if self._closed or (self._checker is not None and not self._checker.done()):
            return
        self._checker = asyncio.ensure_future(self._check_later())

    async def _check_later(self) -> None:
        await asyncio.sleep(CHECK_DELAY)
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._pool, self._check)
        except Exception as exc:  # a background check never fails a request
            log.info("background walk failed: %s", exc)

    def _check(self) -> None:
        ws = self._ws
        if ws is not None and ws.feed is not None and not self._closed:
            if ws.baselined:
                ws.scan()
            else:
                ws.baseline()

    @property
    def _needs_baseline(self) -> bool:
        ws = self._ws
        # This server's session start not recorded yet, or a watcher that cannot vouch yet.
        return ws is not None and ws.feed is not None and (not ws.baselined or ws.feed.state == BASELINE)

    def _call(self, root: Path, fn: Callable[[Workspace], T]) -> T:
        if self._ws is not None and _identity(self._ws.store.db_path) != self._ws.identity:
            # The database file was removed or replaced under us (a reset state dir, a restored
            # backup): writing on through the old handle would write into a file nobody reads.
            log.warning("store %s was replaced; opening it again", self._ws.store.db_path)
            self._drop()
        if self._ws is None:
            store = Store.open(root, self.state_dir)
            session = AgentSession(store)
            self._ws = Workspace(
                root=store.root,
                state_dir=self.state_dir,
                store=store,
                session=session,
                checkpointer=make_checkpointer(store, session, self.state_dir, watched=False),
                identity=_identity(store.db_path),
                feed=self._start_feed(store) if self.watch else None,
            )
        ws = self._ws
        try:
            return fn(ws)
        except StoreError:
            # A store that failed (replaced, corrupt, disk full) is opened afresh next time.
            self._drop()
            raise
        finally:
            if ws.later:
                # Queued behind this call on the one worker thread: done before the next call.
                try:
                    self._pool.submit(ws.run_later)
                except RuntimeError:  # the pool is shutting down
                    ws.run_later()

    def _start_feed(self, store: Store) -> ChangeFeed | None:
        # The store may live inside the workspace: its writes are not the agent's changes.
        feed = ChangeFeed(store.root, exclude=[store.db_path.parents[2]], state_dir=self.state_dir)
        return feed if feed.start() else None

    def _drop(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                ws.close()

    async def close(self) -> None:
        """Wait for the work in progress, then close the store."""
        if self._closed:
            return
        self._closed = True
        if self._checker is not None:
            self._checker.cancel()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            await loop.run_in_executor(self._pool, self._drop)
        self._pool.shutdown(wait=False)
