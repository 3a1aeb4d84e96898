"""The MCP stdio transport on the event loop's own pipes.

The SDK's ``stdio_server()`` reads and writes the standard streams through anyio's file
wrappers: every line read and every reply written is a hand-off to a worker thread and back.
An agent's tool call arrives after seconds of quiet, when those hops cost most (bench_mcp.py:
measured ~1 ms of a round trip here). When both streams are pipes or sockets, as agents start
MCP servers, they are served as asyncio pipe transports instead, and the SDK's
``stdio_server(stdin, stdout)`` (its documented parameters) carries the protocol as before.
Anything else (a terminal, a file) keeps the SDK's own path.

As the SDK does for its own streams, fd 0 then points at the null device and fd 1 at stderr
while serving, so a child process or a stray print never reaches the wire; both are restored
on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import AsyncIterator

log = logging.getLogger(__name__)

# One JSON-RPC message per line; a longer line is dropped (and logged), not buffered without end.
MAX_LINE = 256 << 20


def servable(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class Lines:
    """Text lines read from the pipe: what the SDK's reader iterates over."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> Lines:
        return self

    async def __anext__(self) -> str:
        while True:
            try:
                line = await self._reader.readline()
            except ValueError:  # longer than MAX_LINE: asyncio has dropped it
                log.warning("dropped a message longer than %d bytes", MAX_LINE)
                continue
            if not line:
                raise StopAsyncIteration
            return line.decode("utf-8", errors="replace")


class _Flow(asyncio.Protocol):
    """Write-side flow control: ``flush`` waits while the pipe's buffer is over its high mark."""

    def __init__(self) -> None:
        self.drained = asyncio.Event()
        self.drained.set()

    def pause_writing(self) -> None:
        self.drained.clear()

    def resume_writing(self) -> None:
        self.drained.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.drained.set()  # a reader gone: nothing more to wait for


class Writer:
    """What the SDK's writer calls: ``write`` then ``flush``."""

    def __init__(self, transport: asyncio.WriteTransport, flow: _Flow) -> None:
        self._transport = transport
        self._flow = flow

    async def write(self, text: str) -> None:
        if not self._transport.is_closing():
            self._transport.write(text.encode("utf-8"))

    async def flush(self) -> None:
        await self._flow.drained.wait()


@contextlib.asynccontextmanager
async def pipes() -> AsyncIterator[tuple[Lines, Writer] | None]:
    """The standard streams as asyncio pipes; None when they are not both pipes or sockets."""
    if not (servable(0) and servable(1)):
        yield None
        return
    loop = asyncio.get_running_loop()
    wire_in = os.dup(0)
    wire_out = os.dup(1)
    saved = (os.dup(0), os.dup(1))
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
        os.dup2(2, 1)
    finally:
        os.close(null)
    reader = asyncio.StreamReader(limit=MAX_LINE)
    read_transport = write_transport = None
    try:
        # The transports own (and close) these files.
        wire_r = open(wire_in, "rb", buffering=0)  # noqa: SIM115
        read_transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), wire_r)
        wire_w = open(wire_out, "wb", buffering=0)  # noqa: SIM115
        write_transport, flow = await loop.connect_write_pipe(_Flow, wire_w)
        yield Lines(reader), Writer(write_transport, flow)
    finally:
        for transport in (read_transport, write_transport):
            if transport is not None:
                transport.close()
        for fd, keep in ((0, saved[0]), (1, saved[1])):
            with contextlib.suppress(OSError):
                os.set_blocking(keep, True)  # asyncio made the shared pipe non-blocking
                os.dup2(keep, fd)
            os.close(keep)
