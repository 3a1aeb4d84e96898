"""The stdio transport under pygls: a cap on the size of a message.

pygls 2.1 reads ``Content-Length: N`` and then ``stdin.read(N)`` whatever N is: a client (or a
corrupted stream) announcing 99999999999 bytes makes the server allocate that and die of
MemoryError. :class:`CappedStdin` sits between pygls and stdin: an announced length over
:data:`MAX_MESSAGE_BYTES` is answered with a JSON-RPC error (:func:`refused_response`) and its
body is skipped in small chunks; header lines are read with a bound too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, BinaryIO

from tether.logs import get_logger

log = get_logger(__name__)

# A 50 MB buffer opened in the editor still fits (JSON escapes included); 93 GB does not.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
MAX_HEADER_LINE = 8192
_CONTENT_LENGTH = re.compile(rb"^Content-Length: *(\d+)\r?\n$", re.IGNORECASE)
_SKIP_CHUNK = 1 << 20
# What pygls is handed instead of a refused header: matches none of its patterns.
_NEUTRAL = b"X-Tether-Skipped: 1\r\n"


class CappedStdin:
    """The ``readline``/``read`` pygls's stdin reader calls, with bounds (runs in pygls's
    reader thread, so skipping a refused body never blocks the event loop)."""

    def __init__(
        self,
        raw: BinaryIO,
        on_refused: Callable[[int], None],
        limit: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self._raw = raw
        self._on_refused = on_refused
        self._limit = limit
        self._skip: int | None = None  # body length of a refused message, once its headers end

    def readline(self) -> bytes:
        line = self._raw.readline(MAX_HEADER_LINE)
        if len(line) == MAX_HEADER_LINE and not line.endswith(b"\n"):
            # Not a header: drop the rest of the line rather than buffer it.
            while line and not line.endswith(b"\n"):
                line = self._raw.readline(MAX_HEADER_LINE)
            log.warning("dropped a header line longer than %d bytes", MAX_HEADER_LINE)
            return _NEUTRAL if line else b""
        m = _CONTENT_LENGTH.match(line)
        if m is not None:
            n = int(m.group(1))
            if n > self._limit:
                self._skip = n
                log.warning("refusing a %d-byte message (limit %d)", n, self._limit)
                self._on_refused(n)
                return _NEUTRAL
        if self._skip is not None and not line.strip() and line:
            n, self._skip = self._skip, None
            if not self._discard(n):
                return b""  # the input ended inside the refused body
        return line

    def _discard(self, n: int) -> bool:
        while n > 0:
            chunk = self._raw.read(min(n, _SKIP_CHUNK))
            if not chunk:
                return False
            n -= len(chunk)
        return True

    def read(self, n: int) -> bytes:
        return self._raw.read(n)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def refused_response(length: int, limit: int = MAX_MESSAGE_BYTES) -> dict[str, Any]:
    """The JSON-RPC error sent for a refused message (its id was never read: null)."""
    return {
        "jsonrpc": "2.0",
        "id": None,
        "error": {
            "code": -32600,
            "message": f"message of {length} bytes refused: more than the {limit}-byte limit",
            "data": {"reason": "messageTooLarge"},
        },
    }
