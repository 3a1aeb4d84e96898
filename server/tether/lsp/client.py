"""What the engine needs from the editor connection (``server.py`` implements it over pygls; the
engine's unit tests with a recording fake)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol


class ClientPort(Protocol):
    """What the engine needs from the editor connection."""

    supports_show_document: bool
    supports_progress: bool

    def notify(self, method: str, params: Mapping[str, Any]) -> None: ...

    def show_message(self, level: str, text: str) -> None: ...

    async def show_document(self, uri: str, line: int, character: int, focus: bool) -> bool: ...

    async def apply_edit(
        self, label: str, uri: str, end: tuple[int, int], text: str
    ) -> tuple[bool, str | None]: ...

    async def progress_begin(
        self, title: str, message: str | None = None, on_cancel: Callable[[], None] | None = None
    ) -> object | None:
        """A work-done progress token (None: the client refused one). ``on_cancel``: the
        progress is cancellable, and this is called (on the event loop) when the user cancels."""
        ...

    def progress_report(self, token: object | None, message: str | None, percentage: int | None) -> None: ...

    def progress_end(self, token: object | None, message: str | None = None) -> None: ...
