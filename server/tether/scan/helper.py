"""The stored-stats check of a large tree, shared with a helper process.

stat() and comparing its result are Python work under the GIL, so threads cannot share the
check; a second process can, on a second core. The helper is a fresh interpreter
(``python -I -S scan/statcheck.py``, started with posix_spawn: nothing runs between fork and
exec, no at-fork handler, safe beside the LSP server's threads).

The two take the directories from both ends: this process from the first one up, the helper
from the last one down, each verdict sent as it is known. They meet wherever their speeds put
them, so the split needs no guess: a helper still starting up (~6.5 ms), slowed down by a busy
machine, failing or answering badly only leaves more directories to this process, which never
waits for it; once they meet the helper is stopped. A command that knows a walk is coming
starts the helper early (:func:`warmed`), so that its start-up overlaps the command's other
work.

The request goes through a pipe (enlarged where the system allows), written from a thread.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import sys
import threading
import time

from tether.scan import statcheck
from tether.scan.statcheck import RECORD, Checker, VerifyItem, verify_dirs

# typing is not imported at run time (CLI start-up).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

log = logging.getLogger(__name__)

_SIGKILL = 9  # signal.SIGKILL everywhere; the signal module is ~0.5 ms of every CLI process

# Split from this many listed files on: below, the helper's start-up is not paid back.
MIN_FILES = 8000
# The helper's part: the directories after the first quarter of the files (it takes them from
# the last one down, this process from the first one up, until they meet).
HELPER_FROM = 0.25
# "0": always one process (benchmarks compare with it; also a way out should a helper misbehave).
ENV = "TETHER_SCAN_HELPER"
# How often this process looks at the helper's verdicts: every this many files it checked.
POLL_FILES = 256
# The pipe's size asked for: a request this large is written without waiting for the helper.
PIPE_SIZE = 1 << 20
_SCRIPT = statcheck.__file__

# The helper :func:`warmed` started, until a check takes it.
_warm: _Helper | None = None
_warm_lock = threading.Lock()


def enabled() -> bool:
    """Not switched off, and a helper can be started: posix_spawn, an interpreter, and the
    script as a file (an install of bytecode only has none: one process then)."""
    return (
        os.environ.get(ENV) != "0"
        and hasattr(os, "posix_spawn")
        and bool(sys.executable)
        and os.path.isfile(_SCRIPT)
    )


@contextlib.contextmanager
def warmed(files: int | None = None) -> Iterator[None]:
    """Start the helper now, for a stat check of about ``files`` files coming in this block: its
    start-up then overlaps the block's work before the check. ``files`` None: not known yet (a
    command that may walk, as it starts: cli/__init__.py). A helper already waiting is kept for
    that check, and none is started. Not used by the block's end, it is stopped and reaped."""
    global _warm
    started = None
    if (files is None or files >= MIN_FILES) and enabled():
        with _warm_lock:
            waiting = _warm is not None
        started = None if waiting else _Helper.spawn()
    if started is not None:
        with _warm_lock:
            if _warm is None:
                _warm = started
            else:  # another block's helper is waiting already
                started.release()
                started = None
    try:
        yield
    finally:
        if started is not None:
            with _warm_lock:
                unused = _warm is started
                if unused:
                    _warm = None
            if unused:
                started.release()


def verify_split(root: str, items: Sequence[VerifyItem], stat_format: str) -> list[int]:
    """:func:`~tether.scan.statcheck.verify_dirs`, on two processes when the tree is large.

    This process checks directories from the first one up and the helper from the last one
    down; they meet wherever their speeds put them (a helper still starting, slowed down or
    failing only leaves more to this process, which never waits for it)."""
    global _warm
    with _warm_lock:
        helper, _warm = _warm, None
    total = sum(len(it[2]) for it in items)
    if total < MIN_FILES or not enabled():
        if helper is not None:
            helper.release()
        return verify_dirs(root, items, stat_format)
    if helper is None:
        helper = _Helper.spawn()
        if helper is None:
            return verify_dirs(root, items, stat_format)
    lo, count = 0, 0
    while lo < len(items) - 1 and count < total * HELPER_FROM:
        count += len(items[lo][2])
        lo += 1
    began = time.monotonic()
    writing = helper.send(root, items[lo:], stat_format)
    check = Checker(root, stat_format)
    ok: list[int] = []
    mine, frontier, since_poll = 0, len(items), POLL_FILES
    try:
        while mine < frontier:
            if since_poll >= POLL_FILES:
                frontier, since_poll = helper.frontier(lo, len(items)), 0
                if mine >= frontier:
                    break
            item = items[mine]
            if check(item):
                ok.append(mine)
            since_poll += len(item[2]) + 1
            mine += 1
    finally:
        theirs = sorted(i for i in helper.finish(writing) if i >= mine)
    log.debug(
        "stat check of %d files shared with helper %d (started %.1f ms before): this process "
        "checked %d directories, the helper %d, in %.1f ms; %d of %d unchanged",
        total,
        helper.pid,
        (began - helper.started) * 1000,
        mine,
        len(items) - mine,
        (time.monotonic() - began) * 1000,
        len(ok) + len(theirs),
        len(items),
    )
    return ok + theirs


class _Helper:
    def __init__(self, pid: int, request: int, answer: int) -> None:
        self.pid = pid
        self.started = time.monotonic()
        self._request = request
        self._answer = answer
        os.set_blocking(answer, False)
        self._pending = b""
        self._low: int | None = None  # the lowest index it has reported
        self._ok: list[int] = []
        self._gone = False  # no more verdicts will come
        self._void = False  # it answered out of order: none of its verdicts is used

    @classmethod
    def spawn(cls) -> _Helper | None:
        try:
            req_r, req_w = os.pipe()
        except OSError as exc:
            log.debug("no helper for the stat check (%s): one process", exc)
            return None
        try:
            ans_r, ans_w = os.pipe()
        except OSError as exc:
            os.close(req_r)
            os.close(req_w)
            log.debug("no helper for the stat check (%s): one process", exc)
            return None
        _enlarge(req_w)
        try:
            # Only 0, 1 and 2 reach the helper: every other descriptor is close-on-exec.
            pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-I", "-S", _SCRIPT],
                os.environ,
                file_actions=[(os.POSIX_SPAWN_DUP2, req_r, 0), (os.POSIX_SPAWN_DUP2, ans_w, 1)],
            )
        except OSError as exc:
            os.close(req_w)
            os.close(ans_r)
            log.debug("no helper for the stat check (%s): one process", exc)
            return None
        finally:
            os.close(req_r)
            os.close(ans_w)
        return cls(pid, req_w, ans_r)

    def send(self, root: str, part: Sequence[VerifyItem], stat_format: str) -> threading.Thread:
        """Hand the helper its directories, from a thread that owns the pipe's writing end from
        now on: a request larger than the pipe would otherwise hold this process until the
        helper reads it. The end of file (the thread closing it) starts the helper's work."""
        data = marshal.dumps((stat_format, root, list(part)))
        fd, self._request = self._request, -1
        writer = threading.Thread(target=self._write, args=(fd, data), name="tether-statcheck", daemon=True)
        writer.start()
        return writer

    def _write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:  # BrokenPipeError: it is gone (or was stopped by finish())
            log.debug("stat check helper %d: %s (this process checks the rest)", self.pid, exc)
        finally:
            os.close(fd)

    def frontier(self, lo: int, end: int) -> int:
        """The lowest index from which on (``end`` excluded) the helper has reported every
        directory; ``end`` while it has reported none, or once it answered out of order (then
        none of its verdicts is used). A helper that is gone keeps what it reported."""
        if self._void:
            return end
        if not self._gone:
            try:
                chunk = os.read(self._answer, 1 << 16)
            except BlockingIOError:
                chunk = None
            except OSError:
                chunk = b""
            if chunk == b"":  # done with its part, or ended: no more verdicts
                self._gone = True
            elif chunk:
                self._take(chunk, lo, end)
        return self._low if self._low is not None and not self._void else end

    def _take(self, chunk: bytes, lo: int, end: int) -> None:
        self._pending += chunk
        usable = len(self._pending) - len(self._pending) % RECORD.size
        for (value,) in RECORD.iter_unpack(self._pending[:usable]):
            index = lo + (value if value >= 0 else -1 - value)
            if index != (self._low if self._low is not None else end) - 1 or index < lo:
                log.warning("stat check helper %d answered out of order: its verdicts are not used", self.pid)
                self._void = True
                self._ok.clear()
                return
            self._low = index
            if value >= 0:
                self._ok.append(index)
        self._pending = self._pending[usable:]

    def finish(self, writer: threading.Thread) -> list[int]:
        """Stop the helper (it may still be checking directories this process did), reap it,
        and give the indices it vouched for."""
        self._signal()
        # Its pipe's reading end is gone with it: the writer ends (EPIPE) before its descriptor
        # is closed, so it never writes to a number reused meanwhile.
        writer.join()
        self._reap()
        return [] if self._void else list(self._ok)

    def release(self) -> None:
        """Let it go unused: stopped, so that reaping it never waits for its start-up to end.
        (A helper whose parent dies reads an empty request and leaves by itself.)"""
        self._signal()
        self._reap()

    def _signal(self) -> None:
        with contextlib.suppress(OSError):
            os.kill(self.pid, _SIGKILL)

    def _reap(self) -> None:
        for fd in (self._request, self._answer):
            if fd >= 0:
                os.close(fd)
        self._request = self._answer = -1
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _enlarge(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except (ImportError, AttributeError, OSError):
        pass  # the default size: a large request waits for the helper to read it
