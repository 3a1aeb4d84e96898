"""This machine's checkpoints → git commits in the side repository, through one `git fast-import`.

Commit layout (one per checkpoint, first parent = the previous exported checkpoint)::

    files/<path>        the tracked files (100644 / 100755), as of that checkpoint
    tether/meta.json    checkpoint number, time, trigger, this machine's root, who
    tether/agent.json   task, next steps, step log, runs (the "agent" attachment), redacted again
    tether/editor.json  open files and cursors (no text)
    tether/tmux.json    windows, panes, cwd, commands; redacted at capture and again here
    tether/buffers.json unsaved-buffer text: only with --include-buffers

fast-import rather than hash-object/mktree/commit-tree: the store already holds per-checkpoint
deltas, and fast-import takes exactly that (M/D lines on top of the parent commit), builds the
trees itself and writes one pack, in one process. A tree per checkpoint through mktree would need
every directory's tree rebuilt by hand and a process (or a batch) per level.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from typing import IO, Any

from tether.errors import HandoffError, NoCheckpointError
from tether.git import clean_env
from tether.model import CheckpointInfo, FileEntry
from tether.protocol import ATTACH_AGENT, ATTACH_EDITOR, ATTACH_TMUX
from tether.record import dataclass
from tether.redact import contains_secret, looks_secret, redact_argv, redact_json, redact_lines, redact_text
from tether.remote.gitrepo import SideRepo
from tether.store.db import Store

FORMAT = 1
TRAILER = "Tether-Checkpoint:"
ATTACHMENT_FILES = {ATTACH_AGENT: "agent.json", ATTACH_EDITOR: "editor.json", ATTACH_TMUX: "tmux.json"}
BUFFERS_FILE = "buffers.json"
META_FILE = "meta.json"


@dataclass(frozen=True)
class ExportResult:
    commit: str | None  # None: nothing new to export
    checkpoints: list[int]
    left_out: list[str]  # secret-looking paths never exported


def _quote(path: str) -> bytes:
    """C-style quoted path for fast-import (always quoted: any byte is then safe)."""
    out = ['"']
    for ch in path:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out).encode("utf-8", "surrogateescape")


def redact_tmux_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """A tmux snapshot (JSON) redacted again, whatever wrote it (an older Tether, another
    machine): commands, scrollback and history through the redaction, any env value that is not
    a plain project value, or that holds a secret, dropped."""
    panes = [p for w in doc.get("windows", []) if isinstance(w, dict) for p in w.get("panes", [])]
    for holder in [doc, *panes]:
        if not isinstance(holder, dict):
            continue
        env = holder.get("env")
        for e in env if isinstance(env, list) else []:
            if not isinstance(e, dict):
                continue
            value = e.get("value")
            if e.get("kind") != "project" or (isinstance(value, str) and contains_secret(value)):
                if e.get("kind") == "project":
                    e["kind"] = "secret"
                e["value"] = None
        if holder is doc:
            continue
        if isinstance(holder.get("command"), list) and all(isinstance(a, str) for a in holder["command"]):
            holder["command"] = redact_argv(holder["command"])
        for key in ("scrollback", "history"):
            lines = holder.get(key)
            if isinstance(lines, list) and all(isinstance(x, str) for x in lines):
                holder[key] = redact_lines(lines)
    return doc


def strip_tmux(data: bytes, include_terminal: bool) -> bytes:
    """The tmux snapshot without scrollback/history (unless asked), redacted again."""
    doc = redact_tmux_doc(json.loads(data))
    if not include_terminal:
        for w in doc.get("windows", []):
            for p in w.get("panes", []):
                p["scrollback"] = []
                p["history"] = []
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def strip_editor(data: bytes) -> bytes:
    doc = json.loads(data)
    doc["buffers"] = []  # the attachment has no text; a hand-made one must not smuggle it out
    return json.dumps(doc, sort_keys=True).encode()


def last_exported(side: SideRepo, ref: str) -> tuple[str | None, int | None, float | None]:
    """(commit, checkpoint number, its time) of the last commit on ``ref`` in the side repo:
    read from the loose ref and commit object when they are loose (after every incremental
    push), else asked of git."""
    loose = side.loose_commit(ref)
    if loose is not None:
        sha, body = loose
    else:
        res = side.git(["log", "-1", "--format=%H%n%B", ref, "--"], check=False)
        if res.returncode != 0:
            return None, None, None  # no such ref yet
        sha, _, body = res.stdout.decode("utf-8", "replace").partition("\n")
    for line in body.splitlines():
        if line.startswith(TRAILER):
            parts = line[len(TRAILER) :].split()
            try:
                return sha, int(parts[0]), float(parts[1])
            except (IndexError, ValueError):
                break
    return sha, None, None


def export(
    store: Store,
    side: SideRepo,
    ref: str,
    staging_ref: str,
    who: str,
    *,
    include_buffers: bool = False,
    include_terminal: bool = False,
    buffers: Callable[[], bytes | None] | None = None,
) -> ExportResult:
    """Write commits for this machine's checkpoints newer than the last pushed one."""
    parent, base_id, base_time = last_exported(side, ref)
    if base_id is not None:
        try:
            if store.get_checkpoint(base_id).time != base_time:
                base_id = None  # a different history (store recreated): send the full tree
        except NoCheckpointError:
            base_id = None  # dropped by gc: send the full tree
    todo = [store.get_checkpoint(n) for n in store.checkpoint_ids(after=base_id or 0)]
    if not todo:
        return ExportResult(parent, [], [])
    left_out: set[str] = set()
    proc = subprocess.Popen(
        [
            "git",
            "--git-dir",
            str(side.path),
            "fast-import",
            "--quiet",
            "--force",
            "--date-format=raw",
            "--done",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,  # the answer to get-mark: the last commit's id
        stderr=subprocess.PIPE,
        env=clean_env(),
    )
    assert proc.stdin is not None
    try:
        _stream(
            proc.stdin,
            store,
            todo,
            ref=staging_ref,
            parent=parent,
            base_id=base_id,
            who=who,
            left_out=left_out,
            include_buffers=include_buffers,
            include_terminal=include_terminal,
            buffers=buffers,
        )
        proc.stdin.write(b"get-mark :%d\ndone\n" % todo[-1].id)
    except BrokenPipeError:
        pass
    out, err = proc.communicate()  # closes stdin; fast-import then finishes and exits
    if proc.returncode != 0:
        raise HandoffError(f"writing git objects failed: {err.decode('utf-8', 'replace').strip()}")
    commit = out.decode("ascii", "replace").strip() or None
    if commit is None:
        raise HandoffError("git fast-import did not report the new commit")
    return ExportResult(commit, [c.id for c in todo], sorted(left_out))


def _stream(
    out: IO[bytes],
    store: Store,
    todo: list[CheckpointInfo],
    *,
    ref: str,
    parent: str | None,
    base_id: int | None,
    who: str,
    left_out: set[str],
    include_buffers: bool,
    include_terminal: bool,
    buffers: Callable[[], bytes | None] | None,
) -> None:
    blob_marks: dict[str, int] = {}
    next_mark = 1 << 40  # above any checkpoint number (checkpoint marks are their numbers)

    def blob(data: bytes, key: str | None = None) -> str:
        nonlocal next_mark
        if key is not None and key in blob_marks:
            return f":{blob_marks[key]}"
        next_mark += 1
        out.write(b"blob\nmark :%d\ndata %d\n" % (next_mark, len(data)))
        out.write(data)
        out.write(b"\n")
        if key is not None:
            blob_marks[key] = next_mark
        return f":{next_mark}"

    def file_line(entry: FileEntry) -> bytes:
        mode = "100755" if entry.mode & 0o111 else "100644"
        ref_ = blob(store.read_blob(entry.hash), entry.hash)
        return f"M {mode} {ref_} ".encode() + _quote("files/" + entry.path) + b"\n"

    prev = base_id
    for i, cp in enumerate(todo):
        lines: list[bytes] = []
        if prev is not None and cp.parent == prev:
            for path, entry in store.delta(cp.id):
                if looks_secret(path):
                    left_out.add(path)
                    continue
                if entry is None:
                    lines.append(b"D " + _quote("files/" + path) + b"\n")
                else:
                    lines.append(file_line(entry))
        else:
            lines.append(b"deleteall\n")
            for path, entry in sorted(store.manifest(cp.id).items()):
                if looks_secret(path):
                    left_out.add(path)
                    continue
                lines.append(file_line(entry))
        side = _side_files(store, cp, who, include_terminal)
        last = i == len(todo) - 1
        if include_buffers and last and buffers is not None:
            raw = buffers()
            if raw:
                side[BUFFERS_FILE] = raw
        for name in [*ATTACHMENT_FILES.values(), BUFFERS_FILE]:
            if name in side:
                lines.append(f"M 100644 {blob(side[name])} ".encode() + _quote("tether/" + name) + b"\n")
            else:
                lines.append(b"D " + _quote("tether/" + name) + b"\n")
        lines.append(f"M 100644 {blob(side[META_FILE])} ".encode() + _quote("tether/" + META_FILE) + b"\n")
        msg = redact_text(cp.message or f"{cp.trigger} checkpoint {cp.id}").strip() or f"checkpoint {cp.id}"
        msg += f"\n\n{TRAILER} {cp.id} {cp.time!r}\n"
        mb = msg.encode("utf-8", "replace")
        out.write(f"commit {ref}\nmark :{cp.id}\n".encode())
        out.write(f"committer tether <tether@{who}> {int(cp.time)} +0000\n".encode())
        out.write(b"data %d\n" % len(mb) + mb + b"\n")
        if i == 0 and parent is not None:
            out.write(f"from {parent}\n".encode())
        for line in lines:
            out.write(line)
        out.write(b"\n")
        prev = cp.id


def _side_files(store: Store, cp: CheckpointInfo, who: str, include_terminal: bool) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for name, fname in ATTACHMENT_FILES.items():
        found = store.latest_attachment(name, at=cp.id)
        if found is None:
            continue
        data = found[1]
        try:
            if name == ATTACH_TMUX:
                data = strip_tmux(data, include_terminal)
            elif name == ATTACH_EDITOR:
                data = strip_editor(data)
            elif name == ATTACH_AGENT:
                data = json.dumps(redact_json(json.loads(data)), sort_keys=True).encode()
        except (ValueError, AttributeError, TypeError):
            continue  # an unreadable attachment is not worth sending
        files[fname] = data
    meta: dict[str, Any] = {
        "format": FORMAT,
        "checkpoint": cp.id,
        "created": cp.time,
        "trigger": cp.trigger,
        "message": redact_text(cp.message) if cp.message else cp.message,
        "root": os.fsdecode(store.root),
        "who": who,
    }
    files[META_FILE] = json.dumps(meta, sort_keys=True).encode()
    return files
