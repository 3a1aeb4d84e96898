"""Recorded build/test runs, and whether they still hold for the tree on disk.

``tether run -- pytest -q`` checkpoints the workspace first, so the run is tied to the exact tree
it ran on, then runs the command with the user's terminal (a pty when stdout is a terminal, so
colours and progress bars behave; a pipe otherwise) while keeping a tail of its output. The run
(command, cwd, exit code, duration, redacted output tail, checkpoint) goes into the store's live
state ``runs``.

A run stays *valid* while no tracked file differs from its checkpoint: "tests passed at
checkpoint 12, no tracked file changed since: no need to re-run". Otherwise it is *stale* and the
changed files are named.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from tether import protocol, safefs
from tether.errors import BadParamsError, NoCheckpointError, OutsideWorkspaceError
from tether.humanize import plural
from tether.model import FileChange, blob_hash, iso_time
from tether.paths import normalize_rel
from tether.record import dataclass, field
from tether.redact import redact_argv, redact_lines
from tether.store.db import Store
from tether.text import strip_controls, strip_escapes

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
# subprocess, select, signal and shlex are imported by `tether run` where it runs the command:
# a step reads the recorded runs only.
if TYPE_CHECKING:
    import subprocess
    from typing import IO, Any

    from tether.checkpoints.checkpointer import Checkpointer
    from tether.scan.result import ScanResult

log = logging.getLogger(__name__)

STATE_NAME = "runs"
MAX_RUNS = 100
TAIL_LINES = 60
TAIL_LINE_CHARS = 400
# Bytes of raw output kept while the command runs (only the tail is stored).
TAIL_BYTES = 64 * 1024
SUMMARY_COMMANDS = 5


@dataclass
class Run:
    id: int
    command: list[str]
    cwd: str  # workspace-relative ("." for the root), or absolute when outside it
    exit_code: int
    duration: float  # seconds
    started: str  # ISO time
    checkpoint: int | None
    output_tail: list[str] = field(default_factory=list)  # redacted, control characters removed

    @property
    def command_text(self) -> str:
        import shlex

        return shlex.join(self.command)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "command": self.command,
            "cwd": self.cwd,
            "exitCode": self.exit_code,
            "duration": round(self.duration, 3),
            "started": self.started,
            "checkpoint": self.checkpoint,
            "outputTail": self.output_tail,
        }

    @classmethod
    def from_json(cls, d: Any) -> Run | None:
        if not isinstance(d, dict):
            return None
        cmd = d.get("command")
        if not isinstance(cmd, list) or not cmd or not all(isinstance(x, str) for x in cmd):
            return None
        code = d.get("exitCode")
        cp = d.get("checkpoint")
        tail = d.get("outputTail")
        dur = d.get("duration")
        return cls(
            id=d["id"] if isinstance(d.get("id"), int) else 0,
            command=cmd,
            cwd=str(d.get("cwd") or "."),
            exit_code=code if isinstance(code, int) else -1,
            duration=float(dur) if isinstance(dur, int | float) else 0.0,
            started=str(d.get("started") or ""),
            checkpoint=cp if isinstance(cp, int) and not isinstance(cp, bool) else None,
            output_tail=[x for x in tail if isinstance(x, str)] if isinstance(tail, list) else [],
        )


@dataclass
class RunSummary:
    command: str
    exit_code: int
    checkpoint: int
    stale: bool
    changed_since: list[str]
    summary: str
    run_id: int = 0
    started: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "exitCode": self.exit_code,
            "checkpoint": self.checkpoint,
            "stale": self.stale,
            "changedSince": self.changed_since,
            "summary": self.summary,
        }


# --- storage ------------------------------------------------------------------------------------


def load_runs(store: Store) -> list[Run]:
    """Recorded runs, oldest first."""
    return _decode(store.get_state(STATE_NAME))


def _decode(data: bytes | None) -> list[Run]:
    if not data:
        return []
    try:
        doc = json.loads(data)
    except ValueError:
        log.warning("recorded runs in the store are unreadable; ignoring them")
        return []
    items = doc.get("runs") if isinstance(doc, dict) else None
    return [r for r in (Run.from_json(x) for x in items) if r] if isinstance(items, list) else []


def save_run(store: Store, run: Run) -> Run:
    """Append ``run`` (its id assigned here, in the same transaction as the append)."""
    saved: list[Run] = []

    def fn(data: bytes | None) -> bytes:
        runs = _decode(data)
        run.id = (runs[-1].id if runs else 0) + 1
        runs.append(run)
        saved.append(run)
        return json.dumps(
            {"runs": [r.to_json() for r in runs[-MAX_RUNS:]]}, ensure_ascii=False, separators=(",", ":")
        ).encode()

    store.update_state(STATE_NAME, fn)
    return saved[-1]


# --- output tail ---------------------------------------------------------------------------------


def clean_tail(raw: bytes, lines: int = TAIL_LINES, *, cut: bool = False) -> list[str]:
    """The last ``lines`` lines of terminal output: escapes stripped, ``\\r`` overwrites applied,
    secrets redacted. ``cut``: ``raw`` is the end of a longer output, its first line partial."""
    text = raw.decode("utf-8", errors="replace")
    text = strip_escapes(text).replace("\r\n", "\n")
    out: list[str] = []
    for raw_line in text.split("\n")[1 if cut else 0 :]:
        # A progress bar rewrites its line with \r: what a terminal would show is the last part.
        out.append(strip_controls(raw_line.rsplit("\r", 1)[-1].replace("\t", "    ")).rstrip())
    while out and not out[-1]:
        out.pop()
    # Redacted as one block (a private key spans lines) and before lines are cut to length (a
    # token cut short no longer has its shape).
    out = redact_lines(out[-lines * 2 :])[-lines:]
    return [line[: TAIL_LINE_CHARS - 1] + "…" if len(line) > TAIL_LINE_CHARS else line for line in out]


class _Tail:
    def __init__(self, limit: int = TAIL_BYTES) -> None:
        self.buf = bytearray()
        self.limit = limit

    def add(self, chunk: bytes) -> None:
        self.buf += chunk
        if len(self.buf) > 2 * self.limit:
            del self.buf[: len(self.buf) - self.limit]

    def value(self) -> bytes:
        return bytes(self.buf[-self.limit :])


# --- running -------------------------------------------------------------------------------------


def _rel_cwd(root: Path, cwd: Path) -> str:
    if cwd == root:
        return "."
    try:
        rel = normalize_rel(root, cwd)
    except OutsideWorkspaceError:
        return str(cwd)
    return rel


def _copy_winsize(src_fd: int, dst_fd: int) -> None:
    import fcntl
    import termios

    with contextlib.suppress(OSError):
        size = fcntl.ioctl(src_fd, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst_fd, termios.TIOCSWINSZ, size)


# After the command exits, output still arriving (from what it left running in the background
# holding the terminal) is read for this long, then the run is over.
DRAIN_SECONDS = 0.5


def _pump(fd: int, out: IO[bytes] | None, tail: _Tail, proc: subprocess.Popen[bytes]) -> None:
    import select

    exited_at: float | None = None
    while True:
        if exited_at is None and proc.poll() is not None:
            exited_at = time.monotonic()
        if exited_at is not None and time.monotonic() - exited_at > DRAIN_SECONDS:
            break
        try:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the pty's other side closed
            break
        if not chunk:
            break
        tail.add(chunk)
        if out is not None:
            try:
                out.write(chunk)
                out.flush()
            except (BrokenPipeError, ValueError):
                out = None


def execute(
    argv: Sequence[str], cwd: Path, out: IO[bytes] | None = None, use_pty: bool | None = None
) -> tuple[int, bytes, float]:
    """Run ``argv`` showing its output on ``out``; returns (exit code, output tail, seconds).

    Exit codes follow the shell: 127 not found, 126 not executable, 128+N killed by signal N.
    """
    # Ctrl-C goes to the whole foreground process group: the command decides what it means, and
    # we must survive it to record the run. A Python-level handler (not SIG_IGN) is reset to
    # the default in the child at exec, so the command still gets a normal SIGINT.
    import signal

    old_handler: Any = None
    if threading.current_thread() is threading.main_thread():
        old_handler = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        return _execute(argv, cwd, out, use_pty)
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)


def _execute(
    argv: Sequence[str], cwd: Path, out: IO[bytes] | None, use_pty: bool | None
) -> tuple[int, bytes, float]:
    import subprocess

    if use_pty is None:
        use_pty = out is not None and _isatty(out)
    tail = _Tail()
    start = time.monotonic()
    master = slave = -1
    proc: subprocess.Popen[bytes]
    try:
        if use_pty:
            import pty

            master, slave = pty.openpty()
            if out is not None and _isatty(out):
                _copy_winsize(out.fileno(), slave)
            proc = subprocess.Popen(list(argv), cwd=cwd, stdout=slave, stderr=slave, close_fds=True)
            os.close(slave)
            slave = -1
            _pump(master, out, tail, proc)
        else:
            proc = subprocess.Popen(list(argv), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            assert proc.stdout is not None
            _pump(proc.stdout.fileno(), out, tail, proc)
            proc.stdout.close()
    except FileNotFoundError:
        return 127, f"tether: command not found: {argv[0]}\n".encode(), time.monotonic() - start
    except PermissionError:
        return 126, f"tether: permission denied: {argv[0]}\n".encode(), time.monotonic() - start
    finally:
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)
    code = proc.wait()
    if code < 0:
        code = 128 - code
    return code, tail.value(), time.monotonic() - start


def _isatty(stream: IO[bytes]) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False


def record_run(
    store: Store,
    checkpointer: Checkpointer,
    argv: Sequence[str],
    cwd: Path | str,
    *,
    out: IO[bytes] | None = None,
    use_pty: bool | None = None,
) -> Run:
    """Checkpoint, run ``argv`` in ``cwd`` (output shown on ``out``), record and return the run."""
    argv = list(argv)
    if not argv or not argv[0]:
        raise BadParamsError("nothing to run: give a command after `--`, e.g. `tether run -- pytest -q`")
    cwd_path = Path(cwd).resolve()
    if not cwd_path.is_dir():
        raise BadParamsError(f"cannot run in {cwd}: not a directory")
    redacted = redact_argv(argv)
    import shlex

    command = shlex.join(redacted)
    outcome = checkpointer.checkpoint(
        protocol.TRIGGER_MANUAL, f"before run: {command}"[:200], full=True, allow_empty=store.latest() is None
    )
    info = outcome.info or store.latest()
    started = iso_time(time.time())
    code, raw, seconds = execute(argv, cwd_path, out, use_pty)
    run = Run(
        id=0,
        command=redacted,
        cwd=_rel_cwd(store.root, cwd_path),
        exit_code=code,
        duration=seconds,
        started=started,
        checkpoint=info.id if info else None,
        # A full buffer is the end of a longer output: its first line may start mid-secret.
        output_tail=clean_tail(raw, cut=len(raw) >= TAIL_BYTES),
    )
    return save_run(store, run)


# --- validity --------------------------------------------------------------------------------------


def current_hashes(store: Store, scan: ScanResult | None = None) -> dict[str, str]:
    """Content hash of every tracked file as it is on disk now (head + a stat-cache scan)."""
    head = store.head()
    if scan is None:
        from tether.checkpoints.checkpointer import Checkpointer

        scan = Checkpointer(store).scan_workspace()
    current = {p: e.hash for p, e in head.items()}
    for c in scan.changes:
        digest = change_hash(store.root, c)
        if digest is None:
            current.pop(c.path, None)
        else:
            current[c.path] = digest
    return current


def change_hash(root: Path, c: FileChange) -> str | None:
    """The content hash a scan found for a path (None: deleted); a deferred change's bytes
    were not kept by the scan: hashed from the disk now."""
    if c.content is not None:
        return blob_hash(c.content)
    if not c.deferred:
        return None
    found = safefs.read_file(root, c.path)
    return blob_hash(found[0]) if found is not None else None


def changed_since(store: Store, checkpoint: int, current: dict[str, str]) -> list[str]:
    base = {p: e.hash for p, e in store.manifest(checkpoint).items()}
    return sorted(p for p in set(base) | set(current) if base.get(p) != current.get(p))


# Beyond these, comparing two whole manifests is cheaper than walking deltas path by path.
MAX_DELTA_CHECKPOINTS = 200
MAX_DELTA_PATHS = 2000


class LiveTree:
    """Tracked files as they are on disk now: the store's head overlaid with a stat-cache scan.

    ``changed_since(n)`` costs O(paths changed since n), not O(workspace): only paths in the
    deltas of the checkpoints after ``n`` or changed on disk can differ from checkpoint ``n``.
    """

    def __init__(self, store: Store, scan: ScanResult | None = None) -> None:
        self.store = store
        if scan is None:
            from tether.checkpoints.checkpointer import Checkpointer

            scan = Checkpointer(store).scan_workspace()
        self.scan = scan
        self._disk = {c.path: change_hash(store.root, c) for c in scan.changes}

    def hash(self, path: str) -> str | None:
        if path in self._disk:
            return self._disk[path]
        entry = self.store.head([path]).get(path)
        return entry.hash if entry else None

    def changed_since(self, checkpoint: int) -> list[str]:
        """Tracked paths whose content differs now from checkpoint ``checkpoint`` (NoCheckpointError
        when it was collected)."""
        self.store.checkpoint_origin(checkpoint)  # NoCheckpointError when collected
        latest = self.store.latest_id()
        last = latest if latest is not None else checkpoint
        candidates = set(self._disk)
        if last - checkpoint > MAX_DELTA_CHECKPOINTS:
            return changed_since(self.store, checkpoint, current_hashes(self.store, self.scan))
        for n in range(checkpoint + 1, last + 1):
            try:
                candidates.update(self.store.get_checkpoint(n).files)
            except NoCheckpointError:
                continue
            if len(candidates) > MAX_DELTA_PATHS:
                return changed_since(self.store, checkpoint, current_hashes(self.store, self.scan))
        out = []
        for path in candidates:
            entry = self.store.entry_at(checkpoint, path)
            if (entry.hash if entry else None) != self.hash(path):
                out.append(path)
        return sorted(out)


def _names(paths: list[str], n: int = 5) -> str:
    return ", ".join(paths[:n]) + (f" and {len(paths) - n} more" if len(paths) > n else "")


def summarize(run: Run, changed: list[str] | None) -> RunSummary:
    verdict = "passed" if run.exit_code == 0 else f"failed (exit {run.exit_code})"
    head = f"`{run.command_text}` {verdict} at checkpoint {run.checkpoint}"
    if changed is None:
        text = f"{head}; that checkpoint is gone (gc): re-run to be sure"
        stale = True
    elif not changed:
        advice = "no need to re-run" if run.exit_code == 0 else "it would fail the same way"
        text = f"{head}; no tracked file changed since: {advice}"
        stale = False
    else:
        text = f"{head}; {plural(len(changed), 'file')} changed since: {_names(changed)}: re-run"
        stale = True
    return RunSummary(
        command=run.command_text,
        exit_code=run.exit_code,
        checkpoint=run.checkpoint or 0,
        stale=stale,
        changed_since=changed or [],
        summary=text,
        run_id=run.id,
        started=run.started,
    )


def run_summaries(
    store: Store, scan: ScanResult | None = None, limit: int = SUMMARY_COMMANDS
) -> list[RunSummary]:
    """The latest run of each recent command (newest first), with its validity now."""
    runs = load_runs(store)
    latest: dict[str, Run] = {}
    for r in reversed(runs):
        if r.command_text not in latest and r.checkpoint is not None:
            latest[r.command_text] = r
        if len(latest) >= limit:
            break
    if not latest:
        return []
    live = LiveTree(store, scan)
    cache: dict[int, list[str] | None] = {}
    out = []
    for r in latest.values():
        assert r.checkpoint is not None
        if r.checkpoint not in cache:
            try:
                cache[r.checkpoint] = live.changed_since(r.checkpoint)
            except NoCheckpointError:
                cache[r.checkpoint] = None
        out.append(summarize(r, cache[r.checkpoint]))
    return out


def default_out() -> IO[bytes]:
    return sys.stdout.buffer
