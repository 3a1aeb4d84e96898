"""The editor's document notifications (didOpen, didChange, didSave, didClose, cursor moves):
the document model updated, the journal scheduled, a save handed on for its checkpoint. Loop
thread; disk reads go to a thread."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from tether import safefs
from tether.editor.documents import text_hash
from tether.logs import get_logger
from tether.lsp.journal import path_ignored
from tether.redact import looks_secret

if TYPE_CHECKING:
    from tether.lsp.engine import Engine

log = get_logger(__name__)


class Editing:
    def __init__(self, eng: Engine) -> None:
        self._eng = eng
        self.docs = eng.docs

    def did_open(self, uri: str, version: int, text: str | None, language_id: str) -> None:
        """``text`` None: over maxFileBytes, tracked without it (see Documents)."""
        doc = self.docs.open(uri, version, text, language_id)
        if doc is None:
            log.debug("not tracking %s (outside the workspace)", uri)
            return
        if text is not None:
            self._eng.spawn(self._check_open_base(uri, doc.path, doc.base_hash))
        self._edited()

    async def _check_open_base(self, uri: str, rel: str, opened_hash: str) -> None:
        """Off-loop checks of a newly opened document.

        Its unsaved text may be journaled only when the path is neither ignored (.gitignore,
        ``node_modules``…: never stored by checkpoints either) nor secret-looking (``.env``,
        keys). And an editor may reopen a buffer with its own unsaved text (its hot exit):
        then the buffer is dirty against the disk file, which becomes the journal's base.
        """
        root = self._eng.root

        def check() -> tuple[bool, str | None]:
            allowed = not looks_secret(rel) and not path_ignored(root, rel)
            try:
                found = safefs.read_file(root, rel)  # never through a symlinked directory
            except OSError:
                return allowed, None
            return allowed, text_hash(found[0]) if found is not None else None

        allowed, found = await asyncio.get_running_loop().run_in_executor(None, check)
        self.docs.set_journal_text(uri, allowed)
        if found is not None and found != opened_hash:
            self.docs.mark_base(uri, found)
        self._edited()

    def too_large(self, text: str) -> bool:
        """Whether a buffer's text is over maxFileBytes (then it is tracked without it)."""
        cap = self._eng.config.max_file_bytes
        if len(text) > cap:
            return True
        return len(text) * 4 > cap and len(text.encode("utf-8", "surrogatepass")) > cap

    def tracks_without_text(self, uri: str) -> bool:
        doc = self.docs.get(uri)
        return doc is not None and doc.text is None

    def did_change(self, uri: str, version: int, text: str | None, edit_end: tuple[int, int] | None) -> None:
        if self.docs.change(uri, version, text, edit_end) is not None:
            self._edited()

    def did_save(self, uri: str, text: str | None) -> None:
        doc = self.docs.save(uri, text)
        if doc is not None:
            self._schedule_journal()
            self._eng.saves.changed([doc.path], True)
            self._eng.update_status()

    def did_close(self, uri: str) -> None:
        if not self._eng.journal.frozen and self.docs.close(uri) is not None:
            self._edited()

    def set_cursor(self, uri: str, line: int, character: int, visible: tuple[int, int] | None = None) -> None:
        if visible is not None:
            self.docs.set_visible(uri, *visible)
        if self.docs.set_cursor(uri, line, character) is not None:
            self._schedule_journal(restart=False)  # a cursor move never postpones the journal

    def _edited(self) -> None:
        self._schedule_journal()
        self._eng.update_status()

    def _schedule_journal(self, restart: bool = True) -> None:
        if not self._eng.closed:
            self._eng.journal.schedule(restart)
