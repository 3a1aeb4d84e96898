"""Fetched commits → imported checkpoints, after checking every object.

A fetched commit is untrusted input. Before anything is written to the store, every commit of
every incoming ref is read and checked: a linear first-parent chain, only ``files/`` and
``tether/`` at the top, file paths that stay inside the workspace (no empty, ``.``, ``..`` or
``.git`` component), regular files only (a symlink or submodule entry is refused, not skipped),
blobs under the size cap, side files that parse. One bad object refuses the whole pull.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tether import jsonsafe
from tether.errors import HandoffError
from tether.model import ImportedCheckpoint
from tether.protocol import ATTACH_AGENT, ATTACH_EDITOR, ATTACH_TMUX, TRIGGER_MANUAL, TRIGGERS
from tether.record import dataclass
from tether.redact import redact_json
from tether.remote.export import ATTACHMENT_FILES, BUFFERS_FILE, FORMAT, META_FILE, redact_tmux_doc
from tether.remote.gitrepo import SideRepo

MAX_COMMITS = 2000
MAX_SIDE_BYTES = 32 * 1024 * 1024
ATTACH_HANDOFF = "handoff"  # imported only: the commit's meta.json (its number on the other machine)
ATTACH_BUFFERS = "buffers"  # imported only: the other machine's unsaved text (--include-buffers)
_SIDE_NAMES = {v: k for k, v in ATTACHMENT_FILES.items()} | {BUFFERS_FILE: ATTACH_BUFFERS}
_FILE_MODES = {"100644": 0o644, "100755": 0o755}


@dataclass
class Incoming:
    who: str
    commit: str
    items: list[ImportedCheckpoint]
    other_root: str | None


def check_path(path: str) -> str:
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", "..") or part.casefold().rstrip(". ") == ".git" or "\x00" in part:
            raise HandoffError(f"refusing a fetched object: the path {path!r} would escape the workspace")
    return path


def _diff_entries(side: SideRepo, commit: str) -> list[tuple[str, str, str]]:
    """(new mode, new sha, path) for each path the commit changes against its first parent."""
    raw = side.git(
        ["diff-tree", "-r", "-z", "--root", "--no-renames", "--no-commit-id", "--raw", commit],
        what="reading a fetched commit",
    ).stdout
    fields = raw.split(b"\x00")
    out: list[tuple[str, str, str]] = []
    i = 0
    while i < len(fields) - 1:
        head = fields[i].decode("ascii", "replace")
        if not head.startswith(":"):
            raise HandoffError("refusing a fetched commit: unreadable tree listing")
        meta = head[1:].split(" ")
        path = fields[i + 1].decode("utf-8", "surrogateescape")
        out.append((meta[1], meta[3], path))
        i += 2
    return out


class _Objects:
    """One `git cat-file --batch` for every blob of a pull."""

    def __init__(self, side: SideRepo) -> None:
        self.side = side

    def check(self, shas: list[str], limit: dict[str, int]) -> None:
        if not shas:
            return
        res = self.side.git(["cat-file", "--batch-check"], input=("\n".join(shas) + "\n").encode())
        for line in res.stdout.decode().splitlines():
            parts = line.split()
            if len(parts) != 3 or parts[1] != "blob":
                raise HandoffError(f"refusing a fetched object: {line.strip()} (missing or not a file)")
            if int(parts[2]) > limit[parts[0]]:
                raise HandoffError(
                    f"refusing a fetched object: blob {parts[0][:12]} is {int(parts[2])} bytes, "
                    f"over the {limit[parts[0]]}-byte cap"
                )

    def read(self, shas: list[str]) -> dict[str, bytes]:
        uniq = sorted(set(shas))
        if not uniq:
            return {}
        res = self.side.git(["cat-file", "--batch"], input=("\n".join(uniq) + "\n").encode())
        data = res.stdout
        out: dict[str, bytes] = {}
        pos = 0
        for sha in uniq:
            nl = data.index(b"\n", pos)
            header = data[pos:nl].decode().split()
            if len(header) != 3 or header[1] != "blob":
                raise HandoffError(f"refusing a fetched object: {sha[:12]} is missing or not a file")
            size = int(header[2])
            out[sha] = data[nl + 1 : nl + 1 + size]
            pos = nl + 1 + size + 1
        return out


def read_incoming(
    side: SideRepo, who: str, old: str | None, new: str, *, root: Path, max_file_bytes: int
) -> Incoming:
    """Check and decode the commits ``old..new`` of one machine's ref (nothing written)."""
    if old is not None and old != new and not side.is_ancestor(old, new):
        raise HandoffError(
            f"the hand-off ref of {who} was rewritten on the remote (not a fast-forward of what was "
            "imported before); nothing was imported. Ask its owner, or drop the local import of it."
        )
    rng = [new] if old is None else [new, f"^{old}"]
    listing = side.git(["rev-list", "--reverse", "--parents", *rng], what="listing fetched commits")
    rows = [line.split() for line in listing.stdout.decode().splitlines()]
    if len(rows) > MAX_COMMITS:
        raise HandoffError(f"refusing {len(rows)} fetched commits from {who} (more than {MAX_COMMITS})")
    expected_parent = old
    per_commit: list[tuple[str, list[tuple[str, str, str]]]] = []
    limits: dict[str, int] = {}
    for row in rows:
        commit, parents = row[0], row[1:]
        if len(parents) > 1 or (parents[0] if parents else None) != expected_parent:
            raise HandoffError(f"refusing the fetched history of {who}: not one straight line of checkpoints")
        expected_parent = commit
        entries = _diff_entries(side, commit)
        for mode, sha, path in entries:
            top, _, rest = path.partition("/")
            deleted = mode == "000000"
            if top == "files" and rest:
                check_path(rest)
                if not deleted and mode not in _FILE_MODES:
                    kind = {"120000": "a symlink", "160000": "a submodule"}.get(mode, f"mode {mode}")
                    raise HandoffError(f"refusing a fetched object: {rest!r} is {kind}, not a regular file")
                if not deleted:
                    limits[sha] = min(limits.get(sha, max_file_bytes), max_file_bytes)
            elif top == "tether" and rest in (*_SIDE_NAMES, META_FILE):
                if not deleted:
                    if mode != "100644":
                        raise HandoffError(f"refusing a fetched object: tether/{rest} has mode {mode}")
                    limits[sha] = MAX_SIDE_BYTES
            else:
                raise HandoffError(f"refusing a fetched object: unexpected entry {path!r} in {commit[:12]}")
        per_commit.append((commit, entries))
    objects = _Objects(side)
    objects.check(sorted(limits), limits)
    blobs = objects.read(list(limits))
    items: list[ImportedCheckpoint] = []
    other_root: str | None = None
    side_now: dict[str, bytes] = {}
    for commit, entries in per_commit:
        changes: list[tuple[str, bytes | None, int]] = []
        for mode, sha, path in entries:
            top, _, rest = path.partition("/")
            if top == "files":
                changes.append((rest, None if mode == "000000" else blobs[sha], _FILE_MODES.get(mode, 0o644)))
            elif mode == "000000":
                side_now.pop(rest, None)
            else:
                side_now[rest] = blobs[sha]
        meta = _meta(side_now.get(META_FILE), commit)
        other_root = meta["root"]
        attachments = {
            _SIDE_NAMES[name]: _map_side(name, data, other_root, root)
            for name, data in side_now.items()
            if name in _SIDE_NAMES
        }
        # Kept so that the other machine's checkpoint numbers (in its runs) map to ours.
        attachments[ATTACH_HANDOFF] = json.dumps(meta, sort_keys=True).encode()
        items.append(
            ImportedCheckpoint(
                created=float(meta["created"]),
                trigger=meta["trigger"] if meta["trigger"] in TRIGGERS else TRIGGER_MANUAL,
                message=meta["message"] if isinstance(meta.get("message"), str) else None,
                changes=changes,
                attachments=attachments,
            )
        )
    return Incoming(who, new, items, other_root)


def _meta(data: bytes | None, commit: str) -> dict[str, Any]:
    try:
        meta = jsonsafe.loads(data) if data else None
    except ValueError:
        meta = None
    if (
        not isinstance(meta, dict)
        or meta.get("format") != FORMAT
        or not isinstance(meta.get("root"), str)
        or not isinstance(meta.get("created"), int | float)
        or not isinstance(meta.get("trigger"), str)
    ):
        raise HandoffError(f"refusing the fetched commit {commit[:12]}: no readable tether/{META_FILE}")
    return meta


def _map_side(name: str, data: bytes, other_root: str, root: Path) -> bytes:
    """Parse (refusing what does not parse) and map the other machine's paths to this one's."""
    from tether.tmux.snapshot import SnapshotFormatError, TmuxSnapshot

    kind = _SIDE_NAMES[name]
    try:
        doc = jsonsafe.loads(data)
    except ValueError:
        raise HandoffError(
            f"refusing a fetched object: tether/{name} is not JSON (or nests too deep)"
        ) from None
    if not isinstance(doc, dict):
        raise HandoffError(f"refusing a fetched object: tether/{name} is not a JSON object")
    here = os.fsdecode(root)
    if kind == ATTACH_TMUX:
        try:
            snap = TmuxSnapshot.from_json(doc)
        except SnapshotFormatError as exc:
            raise HandoffError(f"refusing a fetched object: tether/{name}: {exc.message}") from None
        doc = redact_tmux_doc(snap.to_json())
        doc["root"] = here
        for w in doc["windows"]:
            for p in w["panes"]:
                p["cwd"] = map_path(p["cwd"], other_root, here)
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if kind in (ATTACH_EDITOR, ATTACH_BUFFERS):
        from tether.editor.documents import path_to_uri

        for key in ("files", "buffers"):
            entries = doc.get(key, [])
            if not isinstance(entries, list):
                raise HandoffError(f"refusing a fetched object: tether/{name}: {key} is not a list")
            kept = []
            for e in entries:
                if isinstance(e, dict) and isinstance(e.get("path"), str):
                    check_path(e["path"])
                    e["uri"] = path_to_uri(root / e["path"])
                    kept.append(e)
            doc[key] = kept
        return json.dumps(doc, sort_keys=True).encode()
    if kind == ATTACH_AGENT:
        doc = redact_json(doc)  # steps and task as another machine (maybe an older Tether) wrote them
        return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    return data


def map_path(path: str, other_root: str, here: str) -> str:
    """``other_root/sub`` → ``here/sub``; anything outside the other root → ``here``."""
    other = other_root.rstrip("/") or "/"
    if path == other:
        return here
    if path.startswith(other + "/"):
        rest = path[len(other) + 1 :]
        try:
            check_path(rest)
        except HandoffError:
            return here
        return os.path.join(here, rest)
    return here
