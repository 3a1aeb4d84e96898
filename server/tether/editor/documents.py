"""What the editor has open: the open set, versions, cursors, and the dirty-buffer journal.

No pygls here: the LSP layer keeps the text up to date (it applies incremental edits) and hands
us the resulting text, the edit position and the version. Only ``file://`` documents inside the
workspace are tracked; anything else (``/etc/passwd``, ``untitled:``) is ignored, so nothing
outside the workspace is ever journaled or written.

The journal is the editor's hot-exit: every open document with unsaved edits, with its text and
the hash of the on-disk file it was edited from (``baseHash``). Resume applies a buffer only if
the file on disk still has that hash, so a stale buffer never overwrites newer work.
All methods are thread-safe: the checkpoint thread reads snapshots while the event loop edits.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from tether.errors import OutsideWorkspaceError
from tether.paths import normalize_rel
from tether.record import dataclass, field
from tether.sha import sha256_hex

JOURNAL_VERSION = 1


def text_hash(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return sha256_hex(data)


def uri_to_path(uri: str) -> str | None:
    """The filesystem path of a ``file://`` URI, or None for other schemes."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    if parsed.netloc not in ("", "localhost"):
        return None
    return unquote(parsed.path) or None


def path_to_uri(path: Path | str) -> str:
    return Path(path).absolute().as_uri()


def end_position(text: str) -> tuple[int, int]:
    """Position just past the end of ``text`` (line, UTF-16 character), as LSP counts."""
    line = text.count("\n")
    last = text[text.rfind("\n") + 1 :]
    return line, utf16_len(last)


def utf16_len(s: str) -> int:
    return len(s) + sum(1 for ch in s if ord(ch) > 0xFFFF)


@dataclass
class Doc:
    uri: str
    path: str  # workspace-relative POSIX path
    version: int
    # None: a buffer over maxFileBytes, tracked (open, dirty, cursor) without its text: keeping
    # and re-hashing 50 MB per keystroke would stall the event loop, and it is never journaled.
    text: str | None
    language_id: str
    base_hash: str  # hash of the on-disk content the unsaved edits start from ("" without text)
    dirty: bool = False
    cursor: tuple[int, int] | None = None
    visible: tuple[int, int] | None = None  # first/last visible line, when the client says
    opened: float = field(default_factory=time.time)
    edited: float | None = None
    # Whether unsaved text may be journaled: the path is not ignored or secret-looking. None:
    # not vetted yet (checked off the event loop right after didOpen; the journal writer vets
    # such buffers itself before storing them).
    journal_text: bool | None = None


@dataclass(frozen=True)
class Cursor:
    line: int
    character: int


class Documents:
    """The open set of one workspace."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._docs: dict[str, Doc] = {}
        self._lock = threading.Lock()
        self._generation = 0  # bumped on every change the journal cares about
        self.edited_paths: set[str] = set()

    # --- events from the editor -----------------------------------------------------------

    def rel_path(self, uri: str) -> str | None:
        """Workspace-relative path of ``uri``, or None when it is not a file in the workspace."""
        path = uri_to_path(uri)
        if path is None:
            return None
        try:
            return normalize_rel(self.root, path)
        except OutsideWorkspaceError:
            return None

    def open(self, uri: str, version: int, text: str | None, language_id: str = "") -> Doc | None:
        rel = self.rel_path(uri)
        if rel is None:
            return None
        # Assume the buffer starts equal to the disk file; the editor may reopen with unsaved
        # text (its own hot exit), which is_dirty_vs_disk() detects off-loop.
        base = text_hash(text) if text is not None else ""
        doc = Doc(uri, rel, version, text, language_id, base_hash=base)
        if text is None:
            doc.journal_text = False
        with self._lock:
            prev = self._docs.get(uri)
            if prev is not None and prev.cursor is not None:
                doc.cursor = prev.cursor
            self._docs[uri] = doc
            self._generation += 1
        return doc

    def change(
        self, uri: str, version: int, text: str | None, edit_end: tuple[int, int] | None = None
    ) -> Doc | None:
        """An edit; ``text`` None: the buffer is (now) over the size cap, tracked without text."""
        with self._lock:
            doc = self._docs.get(uri)
            if doc is None:
                return None
            doc.version = version
            doc.text = text
            if text is None:
                doc.dirty = True
                doc.journal_text = False
            else:
                doc.dirty = text_hash(text) != doc.base_hash if len(text) < 65536 else True
            doc.edited = time.time()
            if edit_end is not None:
                doc.cursor = edit_end
            self._generation += 1
            self.edited_paths.add(doc.path)
            return doc

    def save(self, uri: str, text: str | None = None) -> Doc | None:
        with self._lock:
            doc = self._docs.get(uri)
            if doc is None:
                return None
            if text is not None and doc.text is not None:
                doc.text = text
            doc.base_hash = text_hash(doc.text) if doc.text is not None else ""
            doc.dirty = False
            self._generation += 1
            self.edited_paths.add(doc.path)
            return doc

    def close(self, uri: str) -> Doc | None:
        with self._lock:
            doc = self._docs.pop(uri, None)
            if doc is not None:
                self._generation += 1
            return doc

    def set_cursor(self, uri: str, line: int, character: int) -> Doc | None:
        with self._lock:
            doc = self._docs.get(uri)
            if doc is None:
                return None
            if doc.cursor != (line, character):
                doc.cursor = (line, character)
                self._generation += 1
            return doc

    def set_visible(self, uri: str, first: int, last: int) -> Doc | None:
        with self._lock:
            doc = self._docs.get(uri)
            if doc is None:
                return None
            doc.visible = (first, last)
            return doc

    def set_journal_text(self, uri: str, allowed: bool) -> None:
        with self._lock:
            doc = self._docs.get(uri)
            if doc is not None and doc.journal_text != allowed:
                doc.journal_text = allowed
                self._generation += 1

    def mark_base(self, uri: str, disk_hash: str) -> None:
        """Record the on-disk hash a reopened buffer differs from (editor-side hot exit)."""
        with self._lock:
            doc = self._docs.get(uri)
            if doc is not None and not doc.dirty and disk_hash != doc.base_hash:
                doc.base_hash = disk_hash
                doc.dirty = True
                self._generation += 1

    # --- queries --------------------------------------------------------------------------

    def get(self, uri: str) -> Doc | None:
        with self._lock:
            return self._docs.get(uri)

    def all(self) -> list[Doc]:
        with self._lock:
            return list(self._docs.values())

    def dirty(self) -> list[Doc]:
        with self._lock:
            return [d for d in self._docs.values() if d.dirty]

    @property
    def generation(self) -> int:
        return self._generation

    def open_paths(self) -> list[str]:
        with self._lock:
            return sorted({d.path for d in self._docs.values()})

    # --- persisted forms ------------------------------------------------------------------

    def snapshot(self, session_id: str, with_text: bool, max_text: int | None = None) -> dict[str, Any]:
        """Editor state as a JSON-able dict: the journal (with text) or the checkpoint attachment."""
        with self._lock:
            docs = sorted(self._docs.values(), key=lambda d: d.edited or d.opened)
            files = [
                {
                    "path": d.path,
                    "uri": d.uri,
                    "languageId": d.language_id,
                    "version": d.version,
                    "cursor": list(d.cursor) if d.cursor else None,
                    "visible": list(d.visible) if d.visible else None,
                    "dirty": d.dirty,
                    "edited": d.edited,
                }
                for d in docs
            ]
            buffers = (
                [
                    {
                        "path": d.path,
                        "uri": d.uri,
                        "text": d.text,
                        "baseHash": d.base_hash,
                        "vetted": d.journal_text is True,
                    }
                    for d in docs
                    if d.dirty
                    and d.text is not None
                    and d.journal_text is not False
                    and (max_text is None or len(d.text) <= max_text)
                ]
                if with_text
                else []
            )
        # The most recently touched document is last: it gets focus on resume.
        return {
            "version": JOURNAL_VERSION,
            "sessionId": session_id,
            "updated": time.time(),
            "files": files,
            "buffers": buffers,
        }

    def attachment_bytes(self, session_id: str) -> bytes:
        """The "editor" checkpoint attachment: open files, cursors, dirty flags (no text)."""
        snap = self.snapshot(session_id, with_text=False)
        # Stable bytes when nothing but the timestamp moved, so the store dedups it.
        snap.pop("updated", None)
        for f in snap["files"]:
            f.pop("version", None)
            f.pop("edited", None)
        return json.dumps(snap, sort_keys=True).encode("utf-8")


def parse_editor_state(data: bytes | None) -> dict[str, Any] | None:
    """Decode a journal or attachment; None when absent or unreadable (never raises)."""
    if not data:
        return None
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("files", []), list):
        return None
    return obj


def has_content(state: dict[str, Any] | None) -> bool:
    return bool(state and (state.get("files") or state.get("buffers")))
