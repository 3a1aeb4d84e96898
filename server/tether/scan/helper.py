"""The stored-stats check of a large tree, split with a helper process.

stat() and comparing its result are Python work under the GIL, so threads cannot share the
check; a second process can, on a second core. The helper is a fresh interpreter
(``python -I -S scan/statcheck.py``, started with posix_spawn: nothing runs between fork and
exec, no at-fork handler, safe beside the LSP server's threads) that checks the last
directories while this process checks the first ones.

Its start-up (~6.5 ms, about what this process takes for 4,000 files) is what limits the gain, so
a command that knows a walk is coming starts it early (:func:`warmed`): the helper starts up
while the command does its other work, and the check is split evenly. Started at the check
itself, the helper gets fewer files to make up for its late start.

The request goes through a pipe, enlarged where the system allows so that it is written whole at
once; the answer is the list of directories the helper vouches for. A helper that fails, answers
badly or outlives :data:`TIMEOUT_S` vouches for nothing: its directories are walked as usual,
which only costs time.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import select
import sys
import threading
import time

from tether.scan import statcheck
from tether.scan.statcheck import VerifyItem, verify_dirs

# typing is not imported at run time (CLI start-up).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

log = logging.getLogger(__name__)

# Split from this many listed files on: below, the helper's start-up is not paid back.
MIN_FILES = 8000
# The helper's share of the files: per file it is slower than this process (a cold
# interpreter). Measured here at 10k files: 1.7 us per file in this process, 2.3 in the helper.
HELPER_SHARE = 0.43
# A helper started at the check itself begins ~7 ms late (spawn, start-up): this many files
# fewer, the time both take for them together; less for one started earlier, in proportion to
# how much of that time has passed.
HELPER_START_FILES = 1700
HELPER_START_S = 0.007
# "0": always one process (benchmarks compare with it; also a way out should a helper misbehave).
ENV = "TETHER_SCAN_HELPER"
# Bound on the wait for the helper (taking the request, answering); past it, it is killed and
# its half is walked.
TIMEOUT_S = 30.0
# The pipe's size asked for: a request this large is written without waiting for the helper.
PIPE_SIZE = 1 << 20
_SCRIPT = statcheck.__file__

# The helper :func:`warmed` started, until a check takes it.
_warm: _Helper | None = None
_warm_lock = threading.Lock()


def enabled() -> bool:
    return os.environ.get(ENV) != "0" and hasattr(os, "posix_spawn") and bool(sys.executable)


@contextlib.contextmanager
def warmed(files: int) -> Iterator[None]:
    """Start the helper now, for a stat check of about ``files`` files coming in this block: its
    start-up then overlaps the block's work before the check. Not used by the block's end, it
    is let go (told there is nothing to do, and reaped)."""
    global _warm
    started = _Helper.spawn() if files >= MIN_FILES and enabled() else None
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
    """:func:`~tether.scan.statcheck.verify_dirs`, on two processes when the tree is large."""
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
    late = max(0.0, 1 - (time.monotonic() - helper.started) / HELPER_START_S)
    want = int(total * HELPER_SHARE - HELPER_START_FILES * late)
    if want <= 0:  # too late for so few files
        helper.release()
        return verify_dirs(root, items, stat_format)
    split, theirs_count = len(items), 0
    while split > 1 and theirs_count < want:
        split -= 1
        theirs_count += len(items[split][2])
    if not helper.send(root, items[split:], stat_format):
        return verify_dirs(root, items, stat_format)
    began = time.monotonic()
    try:
        mine = verify_dirs(root, items[:split], stat_format)
    except BaseException:
        helper.kill()
        raise
    checked = time.monotonic()
    theirs = helper.answer(len(items) - split)
    log.debug(
        "stat check of %d files split with helper %d (%d of them, started %.1f ms before): "
        "%d of %d directories unchanged; %.1f ms here, then %.1f ms waiting for the helper",
        total,
        helper.pid,
        theirs_count,
        (began - helper.started) * 1000,
        len(mine) + len(theirs),
        len(items),
        (checked - began) * 1000,
        (time.monotonic() - checked) * 1000,
    )
    return mine + [split + i for i in theirs]


class _Helper:
    def __init__(self, pid: int, request: int, answer: int) -> None:
        self.pid = pid
        self.started = time.monotonic()
        self._request = request
        self._answer = answer

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

    def send(self, root: str, part: Sequence[VerifyItem], stat_format: str) -> bool:
        """Hand the helper its directories; False (and the helper gone) if it cannot take them."""
        data = memoryview(marshal.dumps((stat_format, root, list(part))))
        deadline = time.monotonic() + TIMEOUT_S
        try:
            os.set_blocking(self._request, False)
            while data:
                try:
                    data = data[os.write(self._request, data) :]
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if left <= 0 or not select.select([], [self._request], [], left)[1]:
                        raise TimeoutError("the helper took no request") from None
            os.close(self._request)
            self._request = -1
        except OSError as exc:  # BrokenPipeError: it is gone
            log.warning("stat check helper %d: %s (one process)", self.pid, exc)
            self.kill()
            return False
        return True

    def release(self) -> None:
        """Nothing to do: an empty request makes the helper leave at once."""
        self._reap()

    def kill(self) -> None:
        import signal  # only on this rare path: ~0.5 ms of every CLI process otherwise

        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        self._reap()

    def answer(self, count: int) -> list[int]:
        """The indices the helper vouches for, or none if it failed, answered out of range or
        took longer than :data:`TIMEOUT_S` (then it is killed). Reaped on every path."""
        deadline = time.monotonic() + TIMEOUT_S
        chunks: list[bytes] = []
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._answer], [], [], left)[0]:
                    log.warning("stat check helper %d took too long: its directories are walked", self.pid)
                    self.kill()
                    return []
                chunk = os.read(self._answer, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        except BaseException:
            self.kill()
            raise
        status = self._reap()
        try:
            got = marshal.loads(b"".join(chunks)) if status == 0 else None
        except (EOFError, ValueError, TypeError):
            got = None
        if not isinstance(got, list) or not all(type(i) is int and 0 <= i < count for i in got):
            log.warning(
                "stat check helper %d failed (status %s): its directories are walked", self.pid, status
            )
            return []
        return got

    def _reap(self) -> int | None:
        for fd in (self._request, self._answer):
            if fd >= 0:
                os.close(fd)
        self._request = self._answer = -1
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            return None
        return os.waitstatus_to_exitcode(status)


def _enlarge(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except (ImportError, AttributeError, OSError):
        pass  # the default size: a large request waits for the helper to read it
