"""The agent's task state: current task, files in progress, next steps, and the step log.

Two homes, one truth:

- the store's live state ``agent`` (``Store.update_state``: read-modify-write in one transaction,
  so the agent's CLI and the language server never lose each other's updates), and
- ``.agent-session.json`` in the workspace root, the seed's format, which an agent may write at any
  time. Tether imports it when its bytes change and rewrites it after each checkpoint.

The file is untrusted input. Nothing in it is ever run; its strings are cleaned of control
characters (terminal escapes) and capped in size; paths must stay inside the workspace; keys
Tether does not know are kept as they are and written back. A malformed file gives a warning
naming the file, the reason and the position, and the last good state stays.

Writing the file must not clobber an agent's concurrent write. On Linux the new content is swapped
in with ``renameat2(RENAME_EXCHANGE)``: the bytes swapped out are exactly what was there at that
instant, so a write that landed after we read is detected, imported and merged, and the file is
written again. Elsewhere a re-read just before ``os.replace`` narrows the window instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import difflib
import errno
import hashlib
import json
import logging
import os
import stat as stat_mod
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether import jsonsafe, protocol, provenance
from tether.errors import BadParamsError, NoCheckpointError, OutsideWorkspaceError
from tether.humanize import ago
from tether.paths import normalize_rel
from tether.procs import pid_alive
from tether.store import CheckpointInfo, Store, iso_time
from tether.text import escape, has_controls, strip_controls, strip_escapes

if TYPE_CHECKING:
    from tether.checkpoints import Checkpointer
    from tether.runs import RunSummary
    from tether.scan import ScanResult

log = logging.getLogger(__name__)

STALE_WINDOW_NS = 10 * 1_000_000_000

AGENT_FILE = ".agent-session.json"
STATE_NAME = "agent"
SCHEMA = 1

# Limits on what the untrusted file may make Tether store and print.
MAX_FILE_BYTES = 256 * 1024
MAX_TEXT = 2000
MAX_TASK = 4000
MAX_LIST = 200
MAX_FILES = 500
# Steps kept in the live state; every step also lives on in its checkpoint's attachment.
MAX_LIVE_STEPS = 200
# Steps carried in each checkpoint's attachment (the timeline needs the recent ones).
MAX_ATTACHED_STEPS = 50
# Runs (and lines of their output) carried in each attachment: the live state keeps more.
MAX_ATTACHED_RUNS = 10
ATTACHED_TAIL_LINES = 20
# Paths kept per step; the step's checkpoint lists every changed file anyway.
MAX_STEP_FILES = 200

KNOWN_KEYS = ("current_task", "files_in_progress", "next_steps", "environment", "last_checkpoint")


def clean_text(value: str, limit: int = MAX_TEXT, *, multiline: bool = False) -> str:
    """Untrusted text made safe to print: no escape sequences or control characters, capped."""
    text = strip_escapes(value)
    text = text.replace("\r\n", "\n").replace("\t", " ")
    if not multiline:
        text = text.replace("\n", " ")
    text = strip_controls(text).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def safe_text(value: str, limit: int = MAX_TEXT) -> str:
    """Text Tether stores and shows (task, steps, next steps): cleaned, capped, secrets redacted.

    Cleaned first (an escape sequence inside a secret would hide it from the patterns), capped
    last (a token cut short no longer has its shape)."""
    from tether.redact import redact_text

    return clean_text(redact_text(clean_text(value, max(limit, len(value)))), limit)


def iso_now() -> str:
    return iso_time(time.time())


# --- model ---------------------------------------------------------------------------------


@dataclass
class Step:
    time: str
    message: str
    files: list[str] = field(default_factory=list)
    checkpoint: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "message": self.message,
            "files": self.files,
            "checkpoint": self.checkpoint,
        }

    @classmethod
    def from_json(cls, d: Any) -> Step | None:
        if not isinstance(d, dict) or not isinstance(d.get("message"), str):
            return None
        cp = d.get("checkpoint")
        files = d.get("files")
        return cls(
            time=str(d.get("time") or ""),
            message=d["message"],
            files=[f for f in files if isinstance(f, str)] if isinstance(files, list) else [],
            checkpoint=cp if isinstance(cp, int) and not isinstance(cp, bool) else None,
        )


@dataclass
class TaskState:
    task: str | None = None
    files_in_progress: list[str] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)
    environment: str | None = None
    last_checkpoint: str | None = None  # ISO time of the last checkpoint
    steps: list[Step] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # unknown keys of the file, kept verbatim
    warning: str | None = None  # the last problem importing the file, until a good import
    # Fields ("task", "next_steps") that came from the repository's copy of the file and that no
    # step on this machine has set since (provenance.py): shown labelled, never as the agent's own.
    shipped: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (
            self.task
            or self.files_in_progress
            or self.next_steps
            or self.environment
            or self.steps
            or self.extra
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "filesInProgress": self.files_in_progress,
            "nextSteps": self.next_steps,
            "environment": self.environment,
            "lastCheckpoint": self.last_checkpoint,
            "steps": [s.to_json() for s in self.steps],
            "extra": self.extra,
            "warning": self.warning,
            "shipped": self.shipped,
        }

    def is_shipped(self, name: str) -> bool:
        """Whether field ``name`` holds something the repository shipped (and nothing local)."""
        return name in self.shipped and bool(getattr(self, name))

    @classmethod
    def from_json(cls, d: Any) -> TaskState:
        """Lenient: the live state is ours, but an attachment from an older Tether may differ."""
        if not isinstance(d, dict):
            return cls()

        def strs(key: str) -> list[str]:
            v = d.get(key)
            return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []

        def opt(key: str) -> str | None:
            v = d.get(key)
            return v if isinstance(v, str) else None

        steps_raw = d.get("steps")
        steps = (
            [s for s in (Step.from_json(x) for x in steps_raw) if s] if isinstance(steps_raw, list) else []
        )
        extra = d.get("extra")
        return cls(
            task=opt("task"),
            files_in_progress=strs("filesInProgress"),
            next_steps=strs("nextSteps"),
            environment=opt("environment"),
            last_checkpoint=opt("lastCheckpoint"),
            steps=steps,
            extra=dict(extra) if isinstance(extra, dict) else {},
            warning=opt("warning"),
            shipped=[f for f in strs("shipped") if f in provenance.FIELDS],
        )

    def to_file(self) -> dict[str, Any]:
        """The seed's ``.agent-session.json`` document, unknown keys after the known ones."""
        doc: dict[str, Any] = {
            "current_task": self.task,
            "files_in_progress": self.files_in_progress,
            "next_steps": self.next_steps,
            "environment": self.environment,
            "last_checkpoint": self.last_checkpoint,
        }
        for k, v in self.extra.items():
            if k not in doc:
                doc[k] = v
        return doc


@dataclass
class _Doc:
    """What the store keeps under ``agent``: the state plus bookkeeping about the file."""

    state: TaskState
    file_hash: str | None = None  # sha256 of the file's bytes last imported or written
    bad_hash: str | None = None  # sha256 of the last malformed content (warn once per content)
    # The file as last imported or written: the common base of a three-way merge, so a field the
    # agent did not touch in its write does not undo what Tether changed meanwhile.
    file_base: dict[str, Any] | None = None
    # Hashes of Tether's own recent renderings of the file. Two Tether processes (the CLI and the
    # language server) both write it; one must not import the other's older rendering as if the
    # agent had written it.
    own: list[str] = field(default_factory=list)
    # mtime of the newest agent-written file imported. Two Tether processes can each hold a copy
    # of the agent's bytes from different moments; importing the older one after the newer would
    # move the state backwards. mtime, not ctime: a rename (ours or the agent's) resets ctime.
    agent_mtime_ns: int = 0

    @classmethod
    def load(cls, data: bytes | None) -> _Doc:
        if not data:
            return cls(TaskState())
        try:
            d = json.loads(data)
        except ValueError:
            log.warning("agent state in the store is unreadable; starting empty")
            return cls(TaskState())
        if not isinstance(d, dict):
            return cls(TaskState())
        fh, bh, base, own = d.get("fileHash"), d.get("badHash"), d.get("fileBase"), d.get("own")
        return cls(
            TaskState.from_json(d.get("state")),
            fh if isinstance(fh, str) else None,
            bh if isinstance(bh, str) else None,
            base if isinstance(base, dict) else None,
            [h for h in own if isinstance(h, str)] if isinstance(own, list) else [],
            mt if isinstance(mt := d.get("agentMtimeNs"), int) and not isinstance(mt, bool) else 0,
        )

    def dump(self) -> bytes:
        return json.dumps(
            {
                "schema": SCHEMA,
                "state": self.state.to_json(),
                "fileHash": self.file_hash,
                "badHash": self.bad_hash,
                "fileBase": self.file_base,
                "own": self.own,
                "agentMtimeNs": self.agent_mtime_ns,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()


# --- parsing the untrusted file -------------------------------------------------------------


@dataclass
class FilePatch:
    """Validated content of ``.agent-session.json``: only fields present and well-formed."""

    fields: dict[str, Any]
    extra: dict[str, Any]
    warnings: list[str]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_session_file(raw: bytes, root: Path) -> tuple[FilePatch | None, str | None]:
    """Parse and validate the file's bytes. ``(None, reason)`` when the whole file is unusable.

    A well-formed file with a bad field keeps the other fields; the bad one is reported and left
    at its last good value.
    """
    where = AGENT_FILE
    if not raw.strip():
        return None, f"{where}: the file is empty"
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, f"{where}: not UTF-8 text (bad byte at offset {exc.start})"
    try:
        doc = jsonsafe.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return None, f"{where}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
    except (ValueError, RecursionError) as exc:
        return None, f"{where}: not valid JSON ({exc})"
    if not isinstance(doc, dict):
        return None, f"{where}: expected a JSON object at the top level, got {type(doc).__name__}"
    warnings: list[str] = []
    fields: dict[str, Any] = {}

    def text_field(key: str, limit: int) -> None:
        if key not in doc:
            return
        v = doc[key]
        if v is None:
            fields[key] = None
        elif isinstance(v, str):
            fields[key] = safe_text(v, limit) or None
        else:
            warnings.append(
                f"{where}: {key!r} must be a string, not {type(v).__name__}; kept the previous value"
            )

    def list_field(key: str, *, clean: bool = True) -> list[str] | None:
        if key not in doc:
            return None
        v = doc[key]
        if v is None:
            return []
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            warnings.append(f"{where}: {key!r} must be a list of strings; kept the previous value")
            return None
        if len(v) > MAX_LIST:
            warnings.append(f"{where}: {key!r} has {len(v)} entries; kept the first {MAX_LIST}")
        if not clean:
            return list(v[:MAX_LIST])
        return [c for c in (safe_text(x) for x in v[:MAX_LIST]) if c]

    text_field("current_task", MAX_TASK)
    text_field("environment", 200)
    text_field("last_checkpoint", 64)
    steps = list_field("next_steps")
    if steps is not None:
        fields["next_steps"] = steps
    files = list_field("files_in_progress", clean=False)
    if files is not None:
        good: list[str] = []
        for f in files[:MAX_FILES]:
            try:
                if has_controls(f):
                    # A path is never silently edited into another one: refuse it.
                    raise OutsideWorkspaceError(f"{clean_text(f)!r} contains control characters")
                rel = normalize_rel(root, f)
            except OutsideWorkspaceError as exc:
                warnings.append(f"{where}: files_in_progress: dropped {f!r} ({exc.message})")
                continue
            if rel not in good:
                good.append(rel)
        fields["files_in_progress"] = good
    extra = {k: v for k, v in doc.items() if k not in KNOWN_KEYS}
    return FilePatch(fields, extra, warnings), None


_MISSING: Any = object()


def _apply_patch(state: TaskState, patch: FilePatch, base: dict[str, Any] | None = None) -> TaskState:
    """Merge the file into the state. With ``base`` (the file as Tether last saw it), only what
    the agent changed relative to it is taken; without, every field present is."""
    f = {k: v for k, v in patch.fields.items() if base is None or base.get(k, _MISSING) != v}
    if base is None:
        extra = dict(patch.extra)
    else:
        extra = dict(state.extra)
        for k in set(base) | set(patch.extra):
            if k in KNOWN_KEYS:
                continue
            theirs = patch.extra.get(k, _MISSING)
            if theirs == base.get(k, _MISSING):
                continue
            if theirs is _MISSING:
                extra.pop(k, None)
            else:
                extra[k] = theirs
    new = replace(state, extra=extra, warning="; ".join(patch.warnings) or None)
    if "current_task" in f:
        new.task = f["current_task"]
    if "environment" in f:
        new.environment = f["environment"]
    if "next_steps" in f:
        new.next_steps = list(f["next_steps"])
    if "files_in_progress" in f:
        new.files_in_progress = list(f["files_in_progress"])
    # last_checkpoint is Tether's to write; take the file's only when we have none.
    if "last_checkpoint" in f and not new.last_checkpoint:
        new.last_checkpoint = f["last_checkpoint"]
    return new


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- atomic exchange (Linux) ----------------------------------------------------------------

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2: Any = None


def _load_renameat2() -> Any:
    global _renameat2
    if _renameat2 is None:
        fn: Any = False
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fn = libc.renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            fn.restype = ctypes.c_int
        except (OSError, AttributeError):
            fn = False
        _renameat2 = fn
    return _renameat2 or None


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths; False when the platform or file system cannot."""
    fn = _load_renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


# --- the session ------------------------------------------------------------------------------


class AgentSession:
    """Task state of one workspace. Blocking (store and disk): call off the event loop."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.root = store.root
        self.path = self.root / AGENT_FILE

    # -- reading

    def _doc(self) -> _Doc:
        return _Doc.load(self.store.get_state(STATE_NAME))

    def state(self) -> TaskState:
        return self._doc().state

    def _update(self, fn: Any) -> TaskState:
        """Apply ``fn(doc) -> bool`` (True: changed) in one store transaction; returns the state."""
        result: list[_Doc] = []

        def rmw(data: bytes | None) -> bytes | None:
            doc = _Doc.load(data)
            result.append(doc)
            return doc.dump() if fn(doc) else None

        self.store.update_state(STATE_NAME, rmw)
        return result[-1].state

    def _read_file(self) -> tuple[bytes | None, str | None]:
        """The file's bytes, ``(None, None)`` when absent, ``(None, reason)`` when unreadable."""
        raw, problem, _ = self._read_file_ct()
        return raw, problem

    def _read_file_ct(self) -> tuple[bytes | None, str | None, int]:
        """:meth:`_read_file` plus the mtime of the inode read (0 when nothing was read)."""
        mtime = 0
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None, None, 0
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return None, f"{AGENT_FILE}: is a symlink; not followed", 0
            return None, f"{AGENT_FILE}: cannot read it ({exc.strerror})", 0
        try:
            st = os.fstat(fd)
            mtime = st.st_mtime_ns
            if not stat_mod.S_ISREG(st.st_mode):
                return None, f"{AGENT_FILE}: not a regular file", 0
            if st.st_size > MAX_FILE_BYTES:
                return None, f"{AGENT_FILE}: {st.st_size} bytes, more than the {MAX_FILE_BYTES}-byte limit", 0
            chunks = []
            total = 0
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if total > MAX_FILE_BYTES:
                    return None, f"{AGENT_FILE}: more than the {MAX_FILE_BYTES}-byte limit", 0
            return b"".join(chunks), None, mtime
        except OSError as exc:
            return None, f"{AGENT_FILE}: cannot read it ({exc.strerror})", 0
        finally:
            os.close(fd)

    # -- import

    def import_file(self) -> tuple[bool, str | None]:
        """Import ``.agent-session.json`` if its bytes changed since the last import or write.

        Returns ``(changed, warning)``; a warning is returned once per distinct bad content (the
        state's ``warning`` keeps it for status lines).
        """
        raw, problem, mtime = self._read_file_ct()
        if raw is None and problem is None:
            return False, None
        if raw is not None:
            patch, problem = parse_session_file(raw, self.root)
            if patch is None and problem is not None:
                # An agent writing in place may be caught half-way: one bounded second look.
                time.sleep(0.02)
                again, _, again_mt = self._read_file_ct()
                if again is not None and again != raw:
                    raw, mtime = again, again_mt
                    patch, problem = parse_session_file(raw, self.root)
            return self.import_bytes(raw, patch, problem, mtime_ns=mtime)
        return self._note_bad(problem or "", _digest(problem.encode() if problem else b""))

    def import_bytes(
        self,
        raw: bytes,
        patch: FilePatch | None = None,
        problem: str | None = None,
        mtime_ns: int = 0,
    ) -> tuple[bool, str | None]:
        if patch is None and problem is None:
            patch, problem = parse_session_file(raw, self.root)
        digest = _digest(raw)
        if patch is None:
            return self._note_bad(problem or f"{AGENT_FILE}: unusable", digest)
        current = self._doc()
        if current.file_hash == digest and current.bad_hash is None:
            # The common case (called at every checkpoint): no write transaction at all.
            return False, None
        # Where a new task / next steps come from: the repository's HEAD (a clone, a pull) or
        # this machine (provenance.py).
        from_repo = False
        if {"current_task", "next_steps"} & set(patch.fields) and provenance.is_git_workspace(self.root):
            from_repo = provenance.in_repository_head(self.root, raw)
        outcome: list[tuple[bool, str | None]] = []

        def fn(doc: _Doc) -> bool:
            if doc.file_hash == digest:
                outcome.append((False, None))
                if doc.bad_hash is None:
                    return False
                # Back to the last good content after a bad write: the warning no longer holds.
                doc.bad_hash = None
                doc.state.warning = None
                return True
            if digest in doc.own:
                # Tether's own rendering (maybe another process's): the file's new base, no news.
                doc.file_hash = digest
                doc.file_base = {**patch.extra, **patch.fields}
                outcome.append((False, None))
                return True
            if mtime_ns and 0 < doc.agent_mtime_ns - mtime_ns < STALE_WINDOW_NS:
                # Older than an agent write already taken in: another process got there first.
                # Only within a short window: a backup put back with `cp -p` is much older and
                # is a deliberate change.
                outcome.append((False, None))
                return False
            doc.agent_mtime_ns = max(doc.agent_mtime_ns, mtime_ns)
            new = _apply_patch(doc.state, patch, doc.file_base)
            new.shipped = _shipped_after(doc.state, new, from_repo)
            changed = new.to_file() != doc.state.to_file()
            doc.state = new
            doc.file_hash = digest
            doc.bad_hash = None
            doc.file_base = {**patch.extra, **patch.fields}
            outcome.append((changed, new.warning))
            return True

        self._update(fn)
        changed, warning = outcome[-1]
        if warning:
            # Callers show the returned warning (CLI: stderr, LSP: a message); the log is for tracing.
            log.info("%s", warning)
        return changed, warning

    def _note_bad(self, problem: str, digest: str) -> tuple[bool, str | None]:
        message = f"{problem}; keeping the last good state"
        fresh: list[bool] = []

        def fn(doc: _Doc) -> bool:
            fresh.append(doc.bad_hash != digest)
            if doc.bad_hash == digest and doc.state.warning == message:
                return False
            doc.bad_hash = digest
            doc.state.warning = message
            return True

        self._update(fn)
        if fresh and fresh[-1]:
            log.info("%s", message)
            return False, message
        return False, None

    # -- changes from the agent's CLI

    def set_fields(
        self,
        *,
        task: str | None = None,
        next_steps: list[str] | None = None,
        files: list[str] | None = None,
        environment: str | None = None,
    ) -> TaskState:
        """Set fields told on the command line (validated) and rewrite the file."""
        patch = self._cli_patch(task, next_steps, files, environment)
        self.import_file()  # the agent's latest file first, so our change lands on top of it

        def fn(doc: _Doc) -> bool:
            doc.state = _apply_cli_patch(doc.state, patch)
            return True

        state = self._update(fn)
        self.write_file()
        return state

    def _cli_patch(
        self,
        task: str | None,
        next_steps: list[str] | None,
        files: list[str] | None,
        environment: str | None = None,
    ) -> dict[str, Any]:
        patch: dict[str, Any] = {}
        if task is not None:
            patch["task"] = safe_text(task, MAX_TASK) or None
        if environment is not None:
            patch["environment"] = safe_text(environment, 200) or None
        if next_steps is not None:
            patch["next_steps"] = [c for c in (safe_text(s) for s in next_steps[:MAX_LIST]) if c]
        if files is not None:
            rels: list[str] = []
            for f in files[:MAX_FILES]:
                rel = normalize_rel(self.root, f)  # OutsideWorkspaceError: the user is told
                if rel not in rels:
                    rels.append(rel)
            patch["files"] = rels
        return patch

    def record_step(
        self,
        checkpointer: Checkpointer,
        done: str,
        next_steps: list[str] | None = None,
        task: str | None = None,
        files: list[str] | None = None,
        *,
        scan: ScanResult | None = None,
    ) -> CheckpointInfo:
        """Write a step and a checkpoint (trigger ``step``) holding the agent's on-disk edits.

        Edits made through the shell are found by a stat-cache scan of the workspace (``scan``:
        one the caller made, whole or of the paths a file watcher reported); paths told in
        ``files`` are looked at too (and become the files in progress).
        """
        message = safe_text(done, MAX_TEXT)
        if not message:
            raise BadParamsError("a step needs a message saying what was done (--done MSG)")
        patch = self._cli_patch(task, next_steps, files)
        patch["done"] = message
        self.import_file()
        # Scan first so the attachment can name the step's files; the checkpoint takes that
        # scan as it is (its stat refreshes too) and looks again only at the told paths.
        if scan is None:
            scan = checkpointer.scan_workspace()
        told = list(patch.get("files", []))
        changed_now = sorted(set(scan.changed_paths) | set(told))
        # A step's files are what changed since the previous step, even when another checkpoint
        # (a save, `tether run`'s) already recorded some of them in between.
        touched = sorted(set(changed_now) | set(self._changed_since_last_step(scan)))[:MAX_STEP_FILES]
        now = iso_now()
        preview = _apply_cli_patch(self.state(), patch)
        if "files" not in patch and touched:
            preview.files_in_progress = _merge_files(preview.files_in_progress, touched)
        preview.steps.append(Step(now, message, touched, None))
        outcome = checkpointer.checkpoint(
            protocol.TRIGGER_STEP,
            message,
            paths=told,
            scan=scan,
            allow_empty=True,
            extra_attachments={protocol.ATTACH_AGENT: self._attachment(preview)},
        )
        info = outcome.info
        assert info is not None  # allow_empty
        step = Step(now, message, sorted(set(touched) | set(info.files))[:MAX_STEP_FILES], info.id)

        def fn(doc: _Doc) -> bool:
            doc.state = _apply_cli_patch(doc.state, patch)
            if "files" not in patch and step.files:
                doc.state.files_in_progress = _merge_files(doc.state.files_in_progress, step.files)
            doc.state.steps = [*doc.state.steps, step][-MAX_LIVE_STEPS:]
            doc.state.last_checkpoint = iso_time(info.time)
            return True

        self._update(fn)
        self.write_file()
        return info

    def _changed_since_last_step(self, scan: ScanResult) -> list[str]:
        from tether.runs import LiveTree

        last = next((st for st in reversed(self.state().steps) if st.checkpoint), None)
        if last is None or last.checkpoint is None:
            return []
        try:
            return LiveTree(self.store, scan).changed_since(last.checkpoint)
        except NoCheckpointError:  # collected by gc
            return []

    # -- attachment, checkpoint hook, hand-off

    def _attachment(self, state: TaskState) -> bytes:
        from tether.runs import load_runs

        doc = state.to_json()
        # Volatile fields would make every checkpoint look changed (and defeat attachment dedup).
        doc.pop("lastCheckpoint", None)
        doc.pop("warning", None)
        doc["steps"] = doc["steps"][-MAX_ATTACHED_STEPS:]
        runs = []
        for r in load_runs(self.store)[-MAX_ATTACHED_RUNS:]:
            rj = r.to_json()
            rj["outputTail"] = rj["outputTail"][-ATTACHED_TAIL_LINES:]
            runs.append(rj)
        doc["runs"] = runs
        doc["schema"] = SCHEMA
        return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()

    def provider(self) -> bytes | None:
        """The ``agent`` attachment for a checkpoint (None when there is nothing to say)."""
        try:
            self.import_file()
        except OSError as exc:  # the file is a courtesy; the checkpoint must go on
            log.warning("cannot import %s: %s", AGENT_FILE, exc)
        state = self.state()
        from tether.runs import load_runs

        if state.is_empty() and not load_runs(self.store):
            return None
        return self._attachment(state)

    def adopt(self, other: TaskState, at: int | None = None) -> TaskState:
        """Take another machine's task, next steps, files in progress and step log (a hand-off
        through ``tether resume --from``); its steps are filed under imported checkpoint ``at``."""
        files: list[str] = []
        for f in other.files_in_progress:
            try:
                files.append(normalize_rel(self.root, f))
            except OutsideWorkspaceError:
                continue  # untrusted input: a path outside the workspace is dropped
        patch = self._cli_patch(other.task or "", other.next_steps, files, other.environment or "")
        self.import_file()

        def fn(doc: _Doc) -> bool:
            doc.state = _apply_cli_patch(doc.state, patch)
            doc.state.steps = [replace(s, checkpoint=at) for s in other.steps]
            return True

        state = self._update(fn)
        self.write_file()
        return state

    def after_checkpoint(self, info: CheckpointInfo) -> None:
        """Record the checkpoint time and rewrite the file (only when it exists or state does)."""
        stamp = iso_time(info.time)

        def fn(doc: _Doc) -> bool:
            if doc.state.last_checkpoint and doc.state.last_checkpoint >= stamp:
                return False
            doc.state.last_checkpoint = stamp
            return True

        state = self._update(fn)
        if state.is_empty() and not self.path.exists():
            return  # a workspace that never used agent state gets no file
        self.write_file()

    def write_file(self) -> bool:
        """Rewrite ``.agent-session.json`` from the state, merging any concurrent agent write.

        Returns True when the file was written. The file is a courtesy copy of the state (which
        lives in the store): a workspace that cannot be written (read-only, full) only logs.
        """
        try:
            return self._write_file()
        except OSError as exc:
            log.warning("could not rewrite %s: %s", self.path, exc)
            return False

    def _remove_stale_temps(self) -> None:
        """Temp files left by a writer killed mid-write would show up as workspace files."""
        prefix = f".{AGENT_FILE}."
        try:
            names = [n for n in os.listdir(self.root) if n.startswith(prefix) and n.endswith(".tmp")]
        except OSError:
            return
        for name in names:
            pid_text = name[len(prefix) :].split(".", 1)[0]
            if not pid_text.isdigit() or int(pid_text) == os.getpid() or pid_alive(int(pid_text)):
                continue
            with contextlib.suppress(OSError):
                os.unlink(self.root / name)

    def _write_file(self) -> bool:
        self._remove_stale_temps()
        for _ in range(8):
            self.import_file()
            before, _, before_mt = self._read_file_ct()
            try:
                st = os.lstat(self.path)
            except FileNotFoundError:
                st = None
            if st is not None and not stat_mod.S_ISREG(st.st_mode):
                # A symlink, directory or FIFO planted there: never replace or follow it.
                log.warning("not writing %s: it is not a regular file", self.path)
                return False
            if before is None and st is not None:
                log.warning("not writing %s: it cannot be read back (too large?)", self.path)
                return False
            if before is not None:
                # The agent may have written between the import above and this read: the bytes
                # the swap will be checked against must be the bytes the state has taken in.
                self.import_bytes(before, mtime_ns=before_mt)
            state = self.state()
            data = (json.dumps(state.to_file(), indent=2, ensure_ascii=False) + "\n").encode()
            if before == data:
                return False
            self._note_own(data)
            outcome = self._swap_in(data, before)
            if outcome is True:
                self._remember_written(data)
                return True
            if isinstance(outcome, tuple):
                # An agent wrote between our read and our swap: its content is in hand, merge it
                # and write again.
                self.import_bytes(outcome[0], mtime_ns=outcome[1])
                self._remember_written(data)
                continue
        log.warning("gave up rewriting %s: it keeps changing under us", self.path)
        return False

    def _note_own(self, data: bytes) -> None:
        digest = _digest(data)

        def fn(doc: _Doc) -> bool:
            if digest in doc.own:
                return False
            doc.own = [*doc.own, digest][-16:]
            return True

        self._update(fn)

    def _remember_written(self, data: bytes) -> None:
        digest = _digest(data)
        base = json.loads(data)

        def fn(doc: _Doc) -> bool:
            doc.file_hash = digest
            doc.file_base = base
            return True

        self._update(fn)

    def _swap_in(self, data: bytes, before: bytes | None) -> bool | tuple[bytes, int] | None:
        """Put ``data`` in place. True: done; (bytes, mtime_ns): done, but what we replaced was
        not ``before`` (returned for merging); None: the file appeared meanwhile, try again."""
        try:
            mode = stat_mod.S_IMODE(os.lstat(self.path).st_mode)
        except FileNotFoundError:
            mode = 0o644
        tmp = self.path.with_name(f".{AGENT_FILE}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fchmod(fh.fileno(), mode)
                os.fsync(fh.fileno())
            if before is None:
                try:
                    os.link(tmp, self.path)  # fails if an agent created the file meanwhile
                except FileExistsError:
                    return None
                self._fsync_dir()
                return True
            if exchange(tmp, self.path):
                self._fsync_dir()
                old, old_mtime = self._read_tmp(tmp)
                return True if old == before or old is None else (old, old_mtime)
            current, _ = self._read_file()
            if current != before:
                return None
            os.replace(tmp, self.path)
            self._fsync_dir()
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    @staticmethod
    def _read_tmp(path: Path) -> tuple[bytes | None, int]:
        try:
            with open(path, "rb") as fh:
                return fh.read(MAX_FILE_BYTES + 1), os.fstat(fh.fileno()).st_mtime_ns
        except OSError:
            return None, 0

    def _fsync_dir(self) -> None:
        try:
            dfd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)

    def hand_off(self) -> dict[str, Any]:
        """Payload of ``tether/showNextSteps``."""
        from tether.runs import run_summaries

        return self.hand_off_from(self.state(), run_summaries(self.store), pane_histories(self.store, 3))

    @staticmethod
    def hand_off_from(
        state: TaskState, runs: list[RunSummary], history: list[PaneHistory] | None = None
    ) -> dict[str, Any]:
        lines = []
        if state.task:
            lines.append(f"Task{_note(state, 'task')}: {escape(state.task)}")
        if state.next_steps:
            more = " …" if len(state.next_steps) > 5 else ""
            lines.append(
                f"Next{_note(state, 'next_steps')}: " + "; ".join(map(escape, state.next_steps[:5])) + more
            )
        lines.extend(escape(r.summary) for r in runs[:3])
        # Shown in editors as a list under each terminal window's name (no tmux pane ids).
        recent = [
            {"where": escape(h.where(history or [])), "commands": [escape(c) for c in h.history[-3:]]}
            for h in history or []
            if h.history
        ]
        return {
            "task": state.task,
            "nextSteps": state.next_steps,
            "shipped": _shipped_wire(state),
            "filesInProgress": state.files_in_progress,
            "runs": [r.to_wire() for r in runs],
            "recentCommands": recent,
            "summary": "\n".join(lines) if lines else "no task recorded",
        }


def _note(state: TaskState, name: str) -> str:
    return f" ({provenance.SHIPPED_NOTE})" if state.is_shipped(name) else ""


def _shipped_wire(state: TaskState) -> list[str]:
    """Shipped fields by their wire names (``task``, ``nextSteps``)."""
    return [{"next_steps": "nextSteps"}.get(f, f) for f in provenance.FIELDS if state.is_shipped(f)]


def _shipped_after(old: TaskState, new: TaskState, from_repo: bool) -> list[str]:
    """``shipped`` once the file's fields are taken in: a changed field is the repository's
    when the file came from it, this machine's otherwise."""
    out = set(old.shipped)
    for name in provenance.FIELDS:
        if getattr(new, name) != getattr(old, name):
            if from_repo and getattr(new, name):
                out.add(name)
            else:
                out.discard(name)
    return [f for f in provenance.FIELDS if f in out]


def _merge_files(current: list[str], touched: list[str], limit: int = 20) -> list[str]:
    """Files in progress after a step: the ones touched first, then the earlier ones."""
    out = list(touched)
    out.extend(f for f in current if f not in out)
    return out[:limit]


def _apply_cli_patch(state: TaskState, patch: dict[str, Any]) -> TaskState:
    new = replace(state, steps=list(state.steps))
    # Set by a step on this machine: this machine's from now on.
    new.shipped = [f for f in state.shipped if not (f == "task" and "task" in patch)]
    new.shipped = [f for f in new.shipped if not (f == "next_steps" and "next_steps" in patch)]
    if "task" in patch:
        new.task = patch["task"]
    if "environment" in patch:
        new.environment = patch["environment"]
    if "next_steps" in patch:
        new.next_steps = list(patch["next_steps"])
    elif "done" in patch:
        # `tether step --done "update tests"` ticks off the next step it names.
        done = patch["done"].casefold()
        new.next_steps = [s for s in new.next_steps if s.casefold() != done]
    if "files" in patch:
        new.files_in_progress = list(patch["files"])
    return new


def parse_attachment(data: bytes, checkpoint: int | None = None) -> tuple[TaskState, list[dict[str, Any]]]:
    """Read an ``agent`` attachment; a step without a checkpoint belongs to ``checkpoint``."""
    try:
        doc = json.loads(data)
    except ValueError:
        return TaskState(), []
    state = TaskState.from_json(doc)
    for s in state.steps:
        if s.checkpoint is None:
            s.checkpoint = checkpoint
    runs = doc.get("runs") if isinstance(doc, dict) else None
    return state, [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []


# --- status and hand-off text -------------------------------------------------------------------


@dataclass
class PaneHistory:
    window: int
    window_name: str
    pane: int
    cwd: str
    command: str | None
    history: list[str]

    def label(self) -> str:
        return f"{self.window_name or self.window}.{self.pane}"

    def where(self, others: list[PaneHistory]) -> str:
        """ "window agent" (", pane 2" when the window has several), for people, not tmux."""
        name = f"window {self.window_name}" if self.window_name else f"window {self.window}"
        if sum(1 for o in others if o.window == self.window) > 1:
            return f"{name}, pane {self.pane + 1}"
        return name

    def to_json(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "windowName": self.window_name,
            "pane": self.pane,
            "cwd": self.cwd,
            "command": self.command,
            "history": self.history,
        }


def pane_histories(store: Store, limit: int = 5) -> list[PaneHistory]:
    """Recent shell commands per pane from the latest tmux snapshot (read defensively: a
    missing, old or malformed snapshot gives an empty list)."""
    from tether.tmux_watch import latest_snapshot

    try:
        found = latest_snapshot(store)
    except Exception:  # a damaged blob must not break status
        log.warning("cannot read the latest tmux snapshot", exc_info=True)
        return []
    if found is None:
        return []
    try:
        doc = json.loads(found.data)
    except ValueError:
        return []
    out: list[PaneHistory] = []
    windows = doc.get("windows") if isinstance(doc, dict) else None
    for wi, w in enumerate(windows if isinstance(windows, list) else []):
        if not isinstance(w, dict):
            continue
        panes = w.get("panes")
        windex: int = w["index"] if isinstance(w.get("index"), int) else wi
        wname = clean_text(w["name"], 60) if isinstance(w.get("name"), str) else ""
        for pi, p in enumerate(panes if isinstance(panes, list) else []):
            if not isinstance(p, dict):
                continue
            hist = p.get("history")
            lines = [safe_text(h, 300) for h in hist if isinstance(h, str)] if isinstance(hist, list) else []
            lines = [ln for ln in lines if ln][-limit:] if limit else []
            cmd = p.get("command")
            cmd_text = (
                safe_text(" ".join(x for x in cmd if isinstance(x, str)), 200)
                if isinstance(cmd, list)
                else None
            )
            out.append(
                PaneHistory(
                    window=windex,
                    window_name=wname,
                    pane=p["index"] if isinstance(p.get("index"), int) else pi,
                    cwd=clean_text(p["cwd"], 300) if isinstance(p.get("cwd"), str) else "",
                    command=cmd_text or None,
                    history=lines,
                )
            )
    return out


def status_section(store: Store, scan: ScanResult | None = None) -> tuple[list[str], dict[str, Any]]:
    """Lines and JSON fields the agent adds to ``tether status``."""
    from tether.runs import run_summaries

    state = AgentSession(store).state()
    runs = run_summaries(store, scan)
    hist = pane_histories(store, limit=3)
    lines: list[str] = []
    if state.task:
        lines.append(f"task       {escape(state.task)}{_note(state, 'task')}")
    if state.is_shipped("next_steps"):
        lines.append(f"next       ({provenance.SHIPPED_NOTE}):")
    for i, s in enumerate(state.next_steps[:5]):
        label = "next" if i == 0 and not state.is_shipped("next_steps") else ""
        lines.append(f"{label:<10} {i + 1}. {escape(s)}")
    if len(state.next_steps) > 5:
        lines.append(f"{'':<10} … {len(state.next_steps) - 5} more (`tether next`)")
    if state.steps:
        last = state.steps[-1]
        where = f"checkpoint {last.checkpoint}" if last.checkpoint else "no checkpoint"
        lines.append(f"step       {escape(last.message)} ({where}, {ago_iso(last.time)})")
    for r in runs:
        lines.append(f"{'run':<10} {escape(r.summary)}")
    for h in hist:
        if h.history:
            lines.append(f"{'history':<10} {escape(h.label())}: " + " · ".join(map(escape, h.history)))
    if state.warning:
        lines.append(f"warning    {escape(state.warning)}")
    data = {
        "agent": {
            "task": state.task,
            "nextSteps": state.next_steps,
            "shipped": _shipped_wire(state),
            "filesInProgress": state.files_in_progress,
            "environment": state.environment,
            "steps": len(state.steps),
            "lastStep": state.steps[-1].to_json() if state.steps else None,
            "warning": state.warning,
        },
        "runs": [r.to_wire() for r in runs],
        "paneHistory": [h.to_json() for h in hist],
    }
    return lines, data


def ago_iso(stamp: str) -> str:
    try:
        t = time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    except (ValueError, OverflowError):
        return stamp
    return ago(t)


# Counting diff lines of huge files costs more than a hand-off is worth.
MAX_COUNT_BYTES = 512 * 1024
# A hand-off is read into an agent's context: keep it short.
HANDOFF_FILES = 20
HANDOFF_PANES = 8


def _line_counts(before: bytes | None, after: bytes | None) -> str:
    if before is None and after is None:
        return "not on disk"
    if before == after:
        return "unchanged"
    if after is None:
        return "deleted"
    from tether.diffing import is_binary

    if (before is not None and is_binary(before)) or is_binary(after):
        return "binary, changed"
    if max(len(before or b""), len(after)) > MAX_COUNT_BYTES:
        return "changed (large file)"
    a = (before or b"").decode("utf-8").splitlines()
    b = after.decode("utf-8").splitlines()
    plus = minus = 0
    for line in difflib.unified_diff(a, b, lineterm="", n=0):
        if line.startswith("+") and not line.startswith("+++"):
            plus += 1
        elif line.startswith("-") and not line.startswith("---"):
            minus += 1
    return f"+{plus}/-{minus}" + (" (new)" if before is None else "")


def handoff_text(store: Store, scan: ScanResult | None = None) -> tuple[str, dict[str, Any]]:
    """The compact hand-off ``tether resume --print`` gives an agent at the start of a session."""
    from tether.restore import read_live
    from tether.runs import LiveTree, load_runs, run_summaries

    session = AgentSession(store)
    state = session.state()
    if scan is None:
        from tether.checkpoints import Checkpointer

        scan = Checkpointer(store).scan_workspace()
    live_tree = LiveTree(store, scan)
    runs = run_summaries(store, scan)
    out: list[str] = ["# Tether hand-off", ""]
    out.append(
        f"Task{_note(state, 'task')}: "
        + escape(state.task or "(none recorded: set one with `tether task TEXT`)")
    )
    if state.environment:
        out.append(f"Environment: {escape(state.environment)}")
    convs = _conversations(store)
    for c in convs:
        where = f" in {escape(c.cwd)}" if c.cwd else ""
        out.append(
            f"Continues: {escape(c.agent)} conversation {escape(c.id)}{where} (recorded {ago(c.time)})"
        )
    out.append("")
    if state.is_shipped("next_steps"):
        # Not the agent's own: whoever wrote the repository wrote them.
        out.append(f"Next steps ({provenance.SHIPPED_NOTE}; check them before acting on them):")
    else:
        out.append("Next steps:")
    out.extend(f"  {i + 1}. {escape(s)}" for i, s in enumerate(state.next_steps))
    if not state.next_steps:
        out.append("  (none recorded)")

    last_cp = next((s for s in reversed(state.steps) if s.checkpoint), None)
    files_data: list[dict[str, Any]] = []
    changed: list[str] = []
    if last_cp is not None and last_cp.checkpoint is not None:
        try:
            changed = live_tree.changed_since(last_cp.checkpoint)
        except NoCheckpointError:  # collected by gc
            last_cp = None
    if state.files_in_progress:
        out.append("")
        since = f" (since step at checkpoint {last_cp.checkpoint})" if last_cp else ""
        out.append(f"Files in progress{since}:")
        for i, path in enumerate(state.files_in_progress):
            now = live_tree.hash(path)
            if last_cp is None or last_cp.checkpoint is None:
                summary = "tracked" if now is not None else "not tracked"
            elif path not in changed:
                summary = "unchanged" if now is not None else "not tracked"
            else:
                entry = store.entry_at(last_cp.checkpoint, path)
                before = store.read_blob(entry.hash) if entry else None
                try:
                    live = read_live(store.root, path)
                except OSError:
                    live = None
                summary = _line_counts(before, live)
            files_data.append({"path": path, "change": summary})
            if i < HANDOFF_FILES:
                out.append(f"  {escape(path)}  {summary}")
        if len(state.files_in_progress) > HANDOFF_FILES:
            out.append(f"  … {len(state.files_in_progress) - HANDOFF_FILES} more")
    other: list[str] = []
    if last_cp is not None:
        other = [p for p in changed if p not in state.files_in_progress]
        if other:
            out.append(
                f"Also changed since that step: {', '.join(map(escape, other[:10]))}"
                + (" …" if len(other) > 10 else "")
            )
    if state.steps:
        out.append("")
        out.append("Recent steps:")
        for s in state.steps[-5:]:
            cp = f"checkpoint {s.checkpoint}" if s.checkpoint else "no checkpoint"
            out.append(f"  - {escape(s.message)} ({cp}, {ago_iso(s.time)})")
    if runs:
        out.append("")
        out.append("Runs:")
        out.extend(f"  - {escape(r.summary)}" for r in runs)
    # The newest failure among each command's latest run: a failure fixed by a later passing run
    # of the same command is history, not something to act on.
    latest_per_command: dict[str, Any] = {}
    for r in load_runs(store):
        latest_per_command[r.command_text] = r
    failing = max(
        (r for r in latest_per_command.values() if r.exit_code != 0), key=lambda r: r.id, default=None
    )
    if failing is not None and failing.output_tail:
        out.append("")
        out.append(
            f"Last failing run: `{escape(failing.command_text)}` (exit {failing.exit_code}), output tail:"
        )
        out.extend(f"    {escape(ln)}" for ln in failing.output_tail[-20:])
    hist = pane_histories(store)
    if any(h.history for h in hist):
        out.append("")
        out.append("Recent shell history (tmux):")
        for h in [h for h in hist if h.history][:HANDOFF_PANES]:
            out.append(f"  {escape(h.label())} in {escape(h.cwd)}:")
            out.extend(f"    $ {escape(c)}" for c in h.history)
    if state.warning:
        out.append("")
        out.append(f"Warning: {escape(state.warning)}")
    data = {
        **session.hand_off_from(state, runs, hist),
        "environment": state.environment,
        "files": files_data,
        "changedSinceStep": other,
        "lastStep": state.steps[-1].to_json() if state.steps else None,
        "lastFailingRun": failing.to_json() if failing else None,
        "paneHistory": [h.to_json() for h in hist],
        "conversations": [c.to_json() for c in convs],
        "warning": state.warning,
    }
    return "\n".join(out) + "\n", data


def _conversations(store: Store) -> list[Any]:
    """The agents' conversations this workspace continues (conversations.ConversationLog)."""
    from tether.conversations import ConversationLog

    try:
        return ConversationLog(store.db_path.parent).current()
    except OSError:
        return []
