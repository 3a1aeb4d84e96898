"""The previous editor session a resume would bring back, as one server sees it.

At startup the journals of servers that are gone (crashed or exited) leave the live list and the
newest becomes the pending journal (``resume.STATE_PENDING``), carrying over unsaved text of an
older one that was never resumed. A resume consumes it only as far as it came back. Whether a
resume is *offered* is ``status_model.resume_offer``'s call, with what this object knows.

Store reads and writes happen in the caller's worker thread; :meth:`offered` is for the loop.
No pygls.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from tether.editor import resume as resume_mod
from tether.editor import status as status_model
from tether.editor.documents import has_content, parse_editor_state, text_hash
from tether.errors import TetherError
from tether.paths import normalize_rel
from tether.store.db import Store


class ResumeCandidate:
    def __init__(self) -> None:
        self.doc: dict[str, Any] | None = None
        # Per unsaved buffer: the file on disk is still the one the text was typed on.
        self.restorable: dict[str, bool] = {}
        # This session made a checkpoint or recorded a step on its own: a crashed session's file
        # list is past (saves do not count: with auto save every pause in typing is one).
        self.superseded = False

    def claim(self, store: Store) -> None:
        """Worker thread, at startup: retire the journals of servers that are gone; the newest
        with something in it becomes the pending one. Live servers' journals (another editor on
        this workspace) are left alone."""
        dead: list[dict[str, Any]] = []

        def fn(data: bytes | None) -> bytes | None:
            dead.clear()
            keep: list[dict[str, Any]] = []
            for j in resume_mod.journal_sessions(data):
                (keep if status_model.server_alive(j) else dead).append(j)
            return resume_mod.dump_sessions(keep) if dead else None

        store.update_state(resume_mod.STATE_JOURNAL, fn)
        candidates = [j for j in dead if has_content(j)]
        if candidates:
            newest = max(candidates, key=_updated)
            pending = parse_editor_state(store.get_state(resume_mod.STATE_PENDING))
            if pending is None or _updated(newest) >= _updated(pending):
                merged = status_model.merge_pending(newest, pending)
                store.put_state(resume_mod.STATE_PENDING, json.dumps(merged).encode("utf-8"))
        self.load(store)

    def load(self, store: Store) -> None:
        """Worker thread: (re)read the pending journal and check its buffers against the disk."""
        doc = parse_editor_state(store.get_state(resume_mod.STATE_PENDING))
        restorable: dict[str, bool] = {}
        for buf in (doc or {}).get("buffers") or []:
            path = buf.get("path") if isinstance(buf, dict) else None
            if not isinstance(path, str):
                continue
            try:
                disk = (store.root / normalize_rel(store.root, path)).read_bytes()
                restorable[path] = text_hash(disk) == buf.get("baseHash")
            except (OSError, TetherError):
                restorable[path] = False
        self.doc = doc if has_content(doc) else None
        self.restorable = restorable

    def consume(self, store: Store, pending: Mapping[str, Any], not_back: Iterable[str]) -> None:
        """Worker thread, after a resume of ``pending``: keep only the buffers that did not come
        back for a reason that may pass."""
        left = resume_mod.still_pending(pending, set(not_back))
        if left is None:
            store.delete_state(resume_mod.STATE_PENDING)
        else:
            store.put_state(resume_mod.STATE_PENDING, json.dumps(left).encode("utf-8"))
        self.load(store)

    def offered(self, docs: Iterable[tuple[str, str | None]]) -> bool:
        """Loop thread: ``docs`` are this editor's (path, text). Only the documents the journal
        has unsaved text for are hashed (the status is computed often); a buffer tracked without
        its text (over the size cap) is never journaled either."""
        if self.doc is None:
            return False
        wanted = {b.get("path") for b in self.doc.get("buffers") or [] if isinstance(b, dict)}
        open_docs = {
            path: text_hash(text) if path in wanted and text is not None else "" for path, text in docs
        }
        return status_model.resume_offer(
            self.doc, open_docs, lambda path, _base: self.restorable.get(path, False), self.superseded
        )


def _updated(journal: Mapping[str, Any]) -> float:
    value = journal.get("updated")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
