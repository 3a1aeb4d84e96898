"""The MCP stdio transport's pieces (tether/mcp/stdio.py) on real pipes, in process. The whole
transport, with `tether mcp` over real pipes, is tests/e2e/test_mcp.py."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tether.mcp.stdio import Lines, Writer, _Flow, servable


def test_only_pipes_and_sockets_are_served_on_the_loop(tmp_path: Path) -> None:
    r, w = os.pipe()
    f = os.open(tmp_path / "file", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        assert servable(r) and servable(w)
        assert not servable(f)
        assert not servable(987)  # not open
    finally:
        for fd in (r, w, f):
            os.close(fd)


async def test_lines_are_read_as_text_and_an_oversized_one_is_dropped() -> None:
    reader = asyncio.StreamReader(limit=64)
    reader.feed_data(b'{"a": 1}\n' + b"x" * 500 + b"\n" + '{"b": "\xe9"}\n'.encode() + b"\xff\n")
    reader.feed_eof()
    got = [line async for line in Lines(reader)]
    assert got == ['{"a": 1}\n', '{"b": "\xe9"}\n', "\ufffd\n"]


async def test_the_writer_writes_and_flush_waits_while_the_pipe_is_full() -> None:
    loop = asyncio.get_running_loop()
    r, w = os.pipe()
    reader_file = os.fdopen(r, "rb", buffering=0)
    transport, flow = await loop.connect_write_pipe(_Flow, os.fdopen(w, "wb", buffering=0))
    try:
        out = Writer(transport, flow)
        big = "y" * (1 << 20) + "\n"  # more than a pipe holds: the transport buffers the rest
        await out.write(big)
        flush = asyncio.ensure_future(out.flush())
        await asyncio.sleep(0.05)
        assert not flush.done()  # nobody reads yet
        got = b""
        while len(got) < len(big):
            got += await loop.run_in_executor(None, reader_file.read, 1 << 16)
        await asyncio.wait_for(flush, 5)
        assert got == big.encode()
    finally:
        transport.close()
        reader_file.close()
