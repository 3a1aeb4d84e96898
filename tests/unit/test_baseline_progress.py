"""The baseline's progress reporter (lsp/jobs.py): called on the worker thread, it stops the
checkpoint once the user cancelled, throttles reports (a new stage always goes out), and keeps
the latest report until the client has answered with a token."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from tether.errors import CancelledError
from tether.lsp import jobs


class Client:
    def __init__(self) -> None:
        self.reports: list[tuple[object, str | None, int | None]] = []

    def progress_report(self, token: object | None, message: str | None, percentage: int | None) -> None:
        self.reports.append((token, message, percentage))


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_reports_wait_for_the_token_then_are_throttled(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    token: asyncio.Future[object | None] = loop.create_future()
    client = Client()
    cancel = threading.Event()
    reporter = jobs._Reporter(client, token, cancel, loop)  # type: ignore[arg-type]
    reporter("scan", 10, None)
    reporter("write", 0, 1000)  # a new stage: sent at once (kept: no token yet)
    await _settle()
    assert client.reports == []
    token.set_result("tok")
    await _settle()
    assert client.reports == [("tok", "storing files: 0% (0 B of 1000 B)", 0)]  # only the latest
    reporter("write", 500, 1000)  # same stage, within REPORT_EVERY: dropped
    await _settle()
    assert len(client.reports) == 1
    monkeypatch.setattr(jobs, "REPORT_EVERY", 0.0)
    reporter("write", 1000, 1000)
    await _settle()
    assert client.reports[-1] == ("tok", "storing files: 100% (1000 B of 1000 B)", 100)


async def test_a_cancel_stops_the_work_at_its_next_report() -> None:
    loop = asyncio.get_running_loop()
    token: asyncio.Future[Any] = loop.create_future()
    cancel = threading.Event()
    reporter = jobs._Reporter(Client(), token, cancel, loop)  # type: ignore[arg-type]
    reporter("scan", 1, None)
    cancel.set()
    with pytest.raises(CancelledError):
        reporter("scan", 2, None)
    with pytest.raises(CancelledError):
        reporter("write", 0, 10)
