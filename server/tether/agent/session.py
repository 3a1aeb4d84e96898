"""The agent's task state of one workspace (:class:`AgentSession`): current task, files in
progress, next steps, and the step log.

Two homes, one truth:

- the store's live state ``agent`` (``Store.update_state``: read-modify-write in one transaction,
  so the agent's CLI and the language server never lose each other's updates), and
- ``.agent-session.json`` in the workspace root (:mod:`tether.agent.session_file`), the seed's
  format, which an agent may write at any time. Tether imports it when its bytes change and
  rewrites it after each checkpoint, merging a concurrent agent write.
"""

from __future__ import annotations

import json
import logging
import os
import stat as stat_mod
import time
from collections.abc import Callable
from pathlib import Path

from tether import protocol
from tether.agent import provenance
from tether.agent.model import (
    ATTACHED_TAIL_LINES,
    MAX_ATTACHED_RUNS,
    MAX_ATTACHED_STEPS,
    MAX_FILES,
    MAX_LIST,
    MAX_LIVE_STEPS,
    MAX_STEP_FILES,
    MAX_TASK,
    MAX_TEXT,
    SCHEMA,
    STALE_WINDOW_NS,
    STATE_NAME,
    AgentDoc,
    Step,
    TaskState,
    _apply_cli_patch,
    _merge_files,
    _shipped_after,
    iso_now,
    safe_text,
)
from tether.agent.session_file import FilePatch, SessionFile, apply_patch, file_digest, parse_session_file
from tether.errors import BadParamsError, NoCheckpointError, OutsideWorkspaceError
from tether.model import CheckpointInfo, iso_time
from tether.paths import normalize_rel
from tether.record import dataclass, replace
from tether.scan.result import AGENT_FILE
from tether.store.db import Store

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from tether.checkpoints.checkpointer import Checkpointer
    from tether.scan.result import ScanResult

log = logging.getLogger(__name__)

# How far back the first step looks for the baseline its session started from (saves and
# watcher checkpoints come in between; a session without a baseline in them has none).
SESSION_START_LOOKBACK = 200


class AgentSession:
    """Task state of one workspace. Blocking (store and disk): call off the event loop."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.root = store.root
        self.file = SessionFile(self.root)
        self.path = self.file.path

    # -- reading

    def _doc(self) -> AgentDoc:
        return AgentDoc.load(self.store.get_state(STATE_NAME))

    def state(self) -> TaskState:
        return self._doc().state

    def _update(self, fn: Any, *, durable: bool = True) -> TaskState:
        """Apply ``fn(doc) -> bool`` (True: changed) in one store transaction; returns the state.
        ``durable``: as Store.write."""
        result: list[AgentDoc] = []

        def rmw(data: bytes | None) -> bytes | None:
            doc = AgentDoc.load(data)
            result.append(doc)
            return doc.dump() if fn(doc) else None

        self.store.update_state(STATE_NAME, rmw, durable=durable)
        return result[-1].state

    def _read_file(self) -> tuple[bytes | None, str | None]:
        """The file's bytes, ``(None, None)`` when absent, ``(None, reason)`` when unreadable."""
        raw, problem, _ = self.file.read()
        return raw, problem

    # -- import

    def read_file(self, taken: str | None = None) -> FileRead:
        """Read and parse ``.agent-session.json`` once (a step uses what it read throughout).
        ``taken``: the digest of the content the state has taken in; bytes with that digest are
        not parsed (the usual case: the file is as Tether last wrote or read it), their
        :class:`FileRead` has neither patch nor problem (:meth:`_import_plan` parses it if the
        state has moved on meanwhile)."""
        raw, problem, mtime = self.file.read()
        if raw is None:
            return FileRead(None, None, problem, 0)
        if taken is not None and file_digest(raw) == taken:
            return FileRead(raw, None, None, mtime)
        patch, problem = parse_session_file(raw, self.root)
        if patch is None and problem is not None:
            # An agent writing in place may be caught half-way: one bounded second look.
            time.sleep(0.02)
            again, _, again_mt = self.file.read()
            if again is not None and again != raw:
                raw, mtime = again, again_mt
                patch, problem = parse_session_file(raw, self.root)
        return FileRead(raw, patch, problem, mtime)

    def import_file(self) -> tuple[bool, str | None]:
        """Import ``.agent-session.json`` if its bytes changed since the last import or write.

        Returns ``(changed, warning)``; a warning is returned once per distinct bad content (the
        state's ``warning`` keeps it for status lines).
        """
        current = self._doc()
        read = self.read_file(current.file_hash if current.bad_hash is None else None)
        if read.raw is None and read.problem is None:
            return False, None
        return self._take_in(read, current)

    def import_bytes(
        self,
        raw: bytes,
        patch: FilePatch | None = None,
        problem: str | None = None,
        mtime_ns: int = 0,
    ) -> tuple[bool, str | None]:
        if patch is None and problem is None:
            patch, problem = parse_session_file(raw, self.root)
        return self._take_in(FileRead(raw, patch, problem, mtime_ns))

    def _take_in(self, read: FileRead, current: AgentDoc | None = None) -> tuple[bool, str | None]:
        plan = self._import_plan(read, current if current is not None else self._doc())
        if plan is None:
            # The common case (called at every checkpoint): no write transaction at all.
            return False, None
        self._update(plan.apply)
        return plan.result()

    def _import_plan(self, read: FileRead, current: AgentDoc) -> _Import | None:
        """What taking ``read`` in does to the state (applied in a write transaction, to the
        state read there); None when there is nothing to do (``current`` has it already)."""
        if read.raw is None:
            if read.problem is None:
                return None
            return self._bad_plan(read.problem, file_digest(read.problem.encode()))
        raw, patch, mtime_ns = read.raw, read.patch, read.mtime_ns
        digest = file_digest(raw)
        if current.file_hash == digest and current.bad_hash is None:
            return None  # taken in already (only good content is ever taken in)
        if patch is None and read.problem is None:
            # Not parsed (read_file: the content taken in when read), but the state moved on.
            patch, problem = parse_session_file(raw, self.root)
            read = FileRead(raw, patch, problem, mtime_ns)
        if patch is None:
            return self._bad_plan(read.problem or f"{AGENT_FILE}: unusable", digest)
        # Where a new task / next steps come from: the repository's HEAD (a clone, a pull) or
        # this machine (provenance.py).
        from_repo = False
        if {"current_task", "next_steps"} & set(patch.fields) and provenance.is_git_workspace(self.root):
            from_repo = provenance.in_repository_head(self.root, raw)
        outcome: list[tuple[bool, str | None]] = []

        def fn(doc: AgentDoc) -> bool:
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
            new = apply_patch(doc.state, patch, doc.file_base)
            new.shipped = _shipped_after(doc.state, new, from_repo)
            changed = new.to_file() != doc.state.to_file()
            doc.state = new
            doc.file_hash = digest
            doc.bad_hash = None
            doc.file_base = {**patch.extra, **patch.fields}
            outcome.append((changed, new.warning))
            return True

        def result() -> tuple[bool, str | None]:
            changed, warning = outcome[-1] if outcome else (False, None)
            if warning:
                # Callers show the returned warning (CLI: stderr, LSP: a message); the log is
                # for tracing.
                log.info("%s", warning)
            return changed, warning

        return _Import(fn, result)

    def _note_bad(self, problem: str, digest: str) -> tuple[bool, str | None]:
        plan = self._bad_plan(problem, digest)
        self._update(plan.apply)
        return plan.result()

    def _bad_plan(self, problem: str, digest: str) -> _Import:
        message = f"{problem}; keeping the last good state"
        fresh: list[bool] = []

        def fn(doc: AgentDoc) -> bool:
            fresh.append(doc.bad_hash != digest)
            if doc.bad_hash == digest and doc.state.warning == message:
                return False
            doc.bad_hash = digest
            doc.state.warning = message
            return True

        def result() -> tuple[bool, str | None]:
            if fresh and fresh[-1]:
                log.info("%s", message)
                return False, message
            return False, None

        return _Import(fn, result)

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

        def fn(doc: AgentDoc) -> bool:
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
        return self.step(checkpointer, done, next_steps, task, files, scan=scan).info

    def step(
        self,
        checkpointer: Checkpointer,
        done: str,
        next_steps: list[str] | None = None,
        task: str | None = None,
        files: list[str] | None = None,
        *,
        scan: ScanResult | Callable[[], ScanResult] | None = None,
        later: list[Callable[[], None]] | None = None,
    ) -> RecordedStep:
        """:meth:`record_step`, saying also the state after it and the warning about the file.

        One write transaction holds the checkpoint, the agent's file taken in (read and parsed
        once) and the step, so a crash never leaves a checkpoint without its step; the file is
        rewritten after it commits. ``scan`` may be a function, called once the file and the
        state are read (its wait, a file watcher's, overlaps that work). ``later``: the file's
        rewrite is left there, for a server to run once it has answered (the step is in the
        store by then; the file is its courtesy copy, and a concurrent agent write is merged
        then as now, into the state the next call reads).
        """
        message = safe_text(done, MAX_TEXT)
        if not message:
            raise BadParamsError("a step needs a message saying what was done (--done MSG)")
        patch = self._cli_patch(task, next_steps, files)
        patch["done"] = message
        seen = self._doc()
        read = self.read_file(seen.file_hash if seen.bad_hash is None else None)
        take = self._import_plan(read, seen)
        if take is not None:
            take.apply(seen)  # the state as it is once the file is taken in (in the transaction)
        # Scan first so the attachment can name the step's files; the checkpoint takes that
        # scan as it is (its stat refreshes too) and looks again only at the told paths.
        if callable(scan):
            scan = scan()
        if scan is None:
            # Streamed: a first step in a big tree does not hold every new file's bytes.
            scan = checkpointer.scan_workspace(stream=True)
        told = list(patch.get("files", []))
        changed_now = sorted(set(scan.changed_paths) | set(told))
        # A step's files are what changed since the previous step, even when another checkpoint
        # (a save, `tether run`'s) already recorded some of them in between.
        since = self._changed_since_last_step(scan, seen.state)
        touched = sorted(set(changed_now) | set(since))[:MAX_STEP_FILES]
        now = iso_now()
        preview = _apply_cli_patch(seen.state, patch)
        if "files" not in patch and touched:
            preview.files_in_progress = _merge_files(preview.files_in_progress, touched)
        preview.steps.append(Step(now, message, touched, None))
        # The file is rewritten unless it cannot be (a symlink, unreadable: _write_file says why).
        writable = read.raw is not None or read.problem is None
        after: list[tuple[AgentDoc, bytes | None]] = []

        def update(data: bytes | None, info: CheckpointInfo | None) -> bytes:
            assert info is not None  # allow_empty
            doc = AgentDoc.load(data)
            if take is not None:
                take.apply(doc)
            step = Step(now, message, sorted(set(touched) | set(info.files))[:MAX_STEP_FILES], info.id)
            doc.state = _apply_cli_patch(doc.state, patch)
            if "files" not in patch and step.files:
                doc.state.files_in_progress = _merge_files(doc.state.files_in_progress, step.files)
            doc.state.steps = [*doc.state.steps, step][-MAX_LIVE_STEPS:]
            doc.state.last_checkpoint = iso_time(info.time)
            rendering = _render(doc.state) if writable else None
            if rendering is not None and rendering != read.raw:
                # Noted as ours before the file holds it (see _note_own).
                _add_own(doc, file_digest(rendering))
            after.append((doc, rendering))
            return doc.dump()

        outcome = checkpointer.checkpoint(
            protocol.TRIGGER_STEP,
            message,
            paths=told,
            scan=scan,
            allow_empty=True,
            extra_attachments={protocol.ATTACH_AGENT: self._attachment(preview)},
            live_state={STATE_NAME: update},
        )
        info = outcome.info
        assert info is not None  # allow_empty
        doc, rendering = after[-1]
        warning = take.result()[1] if take is not None else None
        state = doc.state
        # Not writable as read (a symlink, too large): the general path says why it does not write.
        rendered = (read.raw, read.mtime_ns, rendering) if rendering is not None else None
        if later is not None:

            def rewrite() -> None:
                self._put_file(rendered)

            later.append(rewrite)
        elif self._put_file(rendered)[1]:
            state = self.state()  # an agent write that came meanwhile was merged
        return RecordedStep(info, state, warning)

    def _changed_since_last_step(self, scan: ScanResult, state: TaskState) -> list[str]:
        from tether.agent.runs import LiveTree

        last = next((st for st in reversed(state.steps) if st.checkpoint), None)
        since = last.checkpoint if last is not None else self._session_start()
        if since is None:
            return []
        try:
            return LiveTree(self.store, scan).changed_since(since)
        except NoCheckpointError:  # collected by gc
            return []

    def _session_start(self) -> int | None:
        """Before the first step, the edits of this session are those since the editor's
        baseline (an editor save or the file watcher may have checkpointed them already)."""
        return self.store.newest_with_trigger(protocol.TRIGGER_BASELINE, SESSION_START_LOOKBACK)

    # -- attachment, checkpoint hook, hand-off

    def _attachment(self, state: TaskState) -> bytes:
        from tether.agent.runs import load_runs

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
        from tether.agent.runs import load_runs

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

        def fn(doc: AgentDoc) -> bool:
            doc.state = _apply_cli_patch(doc.state, patch)
            doc.state.steps = [replace(s, checkpoint=at) for s in other.steps]
            return True

        state = self._update(fn)
        self.write_file()
        return state

    def after_checkpoint(self, info: CheckpointInfo) -> None:
        """Record the checkpoint time and rewrite the file (only when it exists or state does)."""
        stamp = iso_time(info.time)

        def fn(doc: AgentDoc) -> bool:
            if doc.state.last_checkpoint and doc.state.last_checkpoint >= stamp:
                return False
            doc.state.last_checkpoint = stamp
            return True

        state = self._update(fn)
        if state.is_empty() and not self.path.exists():
            return  # a workspace that never used agent state gets no file
        self.write_file()

    def write_file(self, rendered: Rendered | None = None) -> bool:
        """Rewrite ``.agent-session.json`` from the state, merging any concurrent agent write.

        Returns True when the file was written. The file is a courtesy copy of the state (which
        lives in the store): a workspace that cannot be written (read-only, full) only logs.
        ``rendered``: (the file's bytes as read, their mtime, the new bytes), when the caller
        took the bytes read in and noted the new ones as Tether's own (a step's transaction).
        """
        return self._put_file(rendered)[0]

    def _put_file(self, rendered: Rendered | None) -> tuple[bool, bool]:
        """(written, whether the state changed on the way: an agent write merged)."""
        try:
            return self._write_file(rendered)
        except OSError as exc:
            log.warning("could not rewrite %s: %s", self.path, exc)
            return False, rendered is None

    def _write_file(self, rendered: Rendered | None) -> tuple[bool, bool]:
        self.file.remove_stale_temps()
        for attempt in range(8):
            st = None
            if attempt == 0 and rendered is not None:
                before, _, data = rendered
                st = _lstat(self.path)
                if (before is None) != (st is None):
                    continue  # created or removed since it was read: read it again
            else:
                rendered = None
                self.import_file()
                before, _, before_mt = self.file.read()
                st = _lstat(self.path)
            if st is not None and not stat_mod.S_ISREG(st.st_mode):
                # A symlink, directory or FIFO planted there: never replace or follow it.
                log.warning("not writing %s: it is not a regular file", self.path)
                return False, rendered is None
            if before is None and st is not None:
                log.warning("not writing %s: it cannot be read back (too large?)", self.path)
                return False, rendered is None
            if rendered is None:
                if before is not None:
                    # The agent may have written between the import above and this read: the
                    # bytes the swap will be checked against must be the bytes the state has
                    # taken in.
                    self.import_bytes(before, mtime_ns=before_mt)
                data = _render(self.state())
                if before == data:
                    return False, True
                self._note_own(data)
            elif before == data:
                return False, False
            outcome = self.file.swap_in(data, before)
            if outcome is True:
                self._remember_written(data)
                return True, rendered is None
            if isinstance(outcome, tuple):
                # An agent wrote between our read and our swap: its content is in hand, merge it
                # and write again.
                self.import_bytes(outcome[0], mtime_ns=outcome[1])
                self._remember_written(data)
                continue
        log.warning("gave up rewriting %s: it keeps changing under us", self.path)
        return False, True

    def _note_own(self, data: bytes) -> None:
        digest = file_digest(data)

        self._update(lambda doc: _add_own(doc, digest))

    def _remember_written(self, data: bytes) -> None:
        digest = file_digest(data)
        base = json.loads(data)

        def fn(doc: AgentDoc) -> bool:
            doc.file_hash = digest
            doc.file_base = base
            return True

        # Not waited onto the disk (one fsync less per step): if an OS crash loses this note,
        # the file's bytes are among the state's own renderings (noted durably before the file
        # was written: _add_own, _note_own), so the next import makes the same note.
        self._update(fn, durable=False)

    def hand_off(self) -> dict[str, Any]:
        """Payload of ``tether/showNextSteps``."""
        from tether.agent.handoff import hand_off_payload, pane_histories
        from tether.agent.runs import run_summaries

        return hand_off_payload(self.state(), run_summaries(self.store), pane_histories(self.store, 3))


# The file's bytes as a step read them, their mtime, and the new bytes to write.
Rendered = tuple[bytes | None, int, bytes]


@dataclass
class FileRead:
    """``.agent-session.json`` read once: its bytes (None: absent or unusable as a file), their
    parse (None: unusable content), why it is unusable, and the mtime of the inode read."""

    raw: bytes | None
    patch: FilePatch | None
    problem: str | None
    mtime_ns: int


@dataclass
class _Import:
    """Taking a file in: ``apply(doc) -> changed``, run in a write transaction (maybe more than
    once, on different reads of the state); ``result()``: (changed, warning) of the last run."""

    apply: Callable[[AgentDoc], bool]
    result: Callable[[], tuple[bool, str | None]]


@dataclass
class RecordedStep:
    info: CheckpointInfo
    state: TaskState  # after the step
    warning: str | None  # about the agent's file, said once per distinct bad content


def _render(state: TaskState) -> bytes:
    return (json.dumps(state.to_file(), indent=2, ensure_ascii=False) + "\n").encode()


def _add_own(doc: AgentDoc, digest: str) -> bool:
    if digest in doc.own:
        return False
    doc.own = [*doc.own, digest][-16:]
    return True


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
