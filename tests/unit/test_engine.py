"""The language server's engine without pygls: a recording fake editor and virtual time drive the
save debounce and its max delay, the journal's timing and the status throttle. The store is real
(a temporary one); no subprocess, no waiting on a clock."""

from __future__ import annotations

import heapq
import itertools
import json
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tether import protocol as P
from tether.editor.resume import STATE_JOURNAL
from tether.lsp.config import Config, TmuxSettings
from tether.lsp.engine import Engine

URI = "file://{root}/{name}"


class FakeTimers:
    """Virtual time: callbacks run when :meth:`advance` passes their time, in order."""

    def __init__(self) -> None:
        self.t = 1000.0
        self._queue: list[tuple[float, int, Callable[[], None], _Handle]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.t

    def call_later(self, delay: float, fn: Callable[[], None]) -> _Handle:
        handle = _Handle()
        heapq.heappush(self._queue, (self.t + delay, next(self._seq), fn, handle))
        return handle

    def advance(self, dt: float) -> None:
        end = self.t + dt
        while self._queue and self._queue[0][0] <= end:
            when, _, fn, handle = heapq.heappop(self._queue)
            self.t = when
            if not handle.cancelled:
                fn()
        self.t = end


class _Handle:
    cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClient:
    supports_show_document = False
    supports_progress = False

    def __init__(self) -> None:
        self.notes: list[tuple[str, dict[str, Any]]] = []
        self.messages: list[tuple[str, str]] = []

    def notify(self, method: str, params: Mapping[str, Any]) -> None:
        self.notes.append((method, dict(params)))

    def show_message(self, level: str, text: str) -> None:
        self.messages.append((level, text))

    async def show_document(self, uri: str, line: int, character: int, focus: bool) -> bool:
        return True

    async def apply_edit(
        self, label: str, uri: str, end: tuple[int, int], text: str
    ) -> tuple[bool, str | None]:
        return True, None

    async def progress_begin(
        self, title: str, message: str | None = None, on_cancel: Callable[[], None] | None = None
    ) -> object | None:
        return None

    def progress_report(self, token: object | None, message: str | None, percentage: int | None) -> None:
        pass

    def progress_end(self, token: object | None, message: str | None = None) -> None:
        pass

    def statuses(self) -> list[dict[str, Any]]:
        return [p for m, p in self.notes if m == P.NOTIFY_STATUS]


@pytest.fixture
def timers() -> FakeTimers:
    return FakeTimers()


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


@pytest.fixture
async def eng(
    workspace: Path, state_dir: Path, timers: FakeTimers, client: FakeClient
) -> AsyncIterator[Engine]:
    config = Config(
        save_debounce_ms=1000,
        save_max_delay_ms=3000,
        buffer_journal_debounce_ms=1000,
        status_min_interval_ms=250,
        baseline_scan=False,
        watcher=False,
        checkpoint_interval_seconds=0,
        tmux=TmuxSettings(enabled=False),
        state_dir=str(state_dir),
    )
    engine = Engine(workspace, config, client, timers)
    await engine.start()
    await engine.drain()
    yield engine
    await engine.close()


def uri(eng: Engine, name: str) -> str:
    return URI.format(root=eng.root, name=name)


async def written(eng: Engine) -> list[tuple[str, ...]]:
    """Every checkpoint's files, oldest first (read in the worker thread, as the engine does)."""
    await eng.drain()
    infos = await eng.run(lambda: eng.backend.store.list_checkpoints(None))
    return [i.files for i in reversed(infos)]


async def journal_text(eng: Engine, name: str) -> str | None:
    data = await eng.run(lambda: eng.backend.store.get_state(STATE_JOURNAL))
    for session in json.loads(data or b'{"sessions": []}').get("sessions", []):
        for buf in session.get("buffers", []):
            if buf.get("path") == name:
                return str(buf.get("text"))
    return None


async def test_saves_settle_into_one_checkpoint(eng: Engine, timers: FakeTimers) -> None:
    (eng.root / "a.txt").write_text("a\n")
    (eng.root / "b.txt").write_text("b\n")
    eng.saves.changed(["a.txt"], True)
    timers.advance(0.5)
    eng.saves.changed(["b.txt"], True)  # within the debounce: pushes it back
    timers.advance(0.875)
    assert await written(eng) == []
    timers.advance(0.125)  # 1 s after the last save
    assert await written(eng) == [("a.txt", "b.txt")]
    assert eng.last_checkpoint is not None and eng.last_checkpoint.trigger == P.TRIGGER_SAVE


async def test_a_stream_of_saves_is_checkpointed_at_the_max_delay(eng: Engine, timers: FakeTimers) -> None:
    for i in range(4):  # a save every 0.75 s: each within the 1 s debounce of the one before
        (eng.root / f"f{i}.txt").write_text(f"{i}\n")
        eng.saves.changed([f"f{i}.txt"], True)
        timers.advance(0.75 if i < 3 else 0.5)
    assert await written(eng) == []  # 2.75 s after the first save
    timers.advance(0.25)  # 3 s (saveMaxDelayMs) after the first, though the last was 0.75 s ago
    assert await written(eng) == [("f0.txt", "f1.txt", "f2.txt", "f3.txt")]


async def test_echoes_of_a_save_do_not_push_it_back(eng: Engine, timers: FakeTimers) -> None:
    (eng.root / "a.txt").write_text("a\n")
    eng.saves.changed(["a.txt"], True)
    for _ in range(3):
        timers.advance(0.25)
        eng.saves.changed(["a.txt"], False)  # the watcher / the editor's file events, same file
    timers.advance(0.125)
    assert await written(eng) == []
    timers.advance(0.125)  # 1 s after the save itself
    assert await written(eng) == [("a.txt",)]


async def test_the_status_says_checkpointing_from_the_save_on(
    eng: Engine, timers: FakeTimers, client: FakeClient
) -> None:
    (eng.root / "a.txt").write_text("a\n")
    timers.advance(1)
    eng.saves.changed(["a.txt"], True)
    assert client.statuses()[-1]["checkpointing"] is True  # at once, not after the debounce
    timers.advance(1)
    await eng.drain()
    timers.advance(1)
    assert client.statuses()[-1]["checkpointing"] is False
    assert client.statuses()[-1]["lastCheckpoint"]["files"] == ["a.txt"]


async def test_journal_waits_for_typing_to_settle_but_not_for_ever(eng: Engine, timers: FakeTimers) -> None:
    eng.editing.did_open(uri(eng, "a.py"), 1, "v1\n", "python")
    await eng.drain()  # the open's checks (ignored? secret-looking?) are done
    timers.advance(5)
    await eng.drain()
    assert await journal_text(eng, "a.py") is None  # never edited: nothing unsaved to keep
    for v in range(2, 6):  # typing: an edit every 0.5 s
        eng.editing.did_change(uri(eng, "a.py"), v, f"v{v}\n", (0, 2))
        timers.advance(0.5)
        await eng.drain()
        if v < 5:
            assert await journal_text(eng, "a.py") is None, v
    # 2 s after the first unjournaled edit, though typing goes on: written.
    assert await journal_text(eng, "a.py") == "v5\n"


async def test_cursor_moves_never_postpone_the_journal(eng: Engine, timers: FakeTimers) -> None:
    eng.editing.did_open(uri(eng, "a.py"), 1, "v1\n", "python")
    await eng.drain()
    eng.editing.did_change(uri(eng, "a.py"), 2, "v2\n", (0, 2))
    for i in range(7):
        timers.advance(0.125)
        eng.editing.set_cursor(uri(eng, "a.py"), 0, i % 3)
    await eng.drain()
    assert await journal_text(eng, "a.py") is None
    timers.advance(0.125)  # 1 s after the edit: the cursor moves did not push it back
    await eng.drain()
    assert await journal_text(eng, "a.py") == "v2\n"


async def test_status_is_throttled_and_the_last_state_always_arrives(
    eng: Engine, timers: FakeTimers, client: FakeClient
) -> None:
    eng.editing.did_open(uri(eng, "a.py"), 1, "x\n", "python")
    await eng.drain()
    timers.advance(1)
    before = len(client.statuses())
    eng.editing.did_change(uri(eng, "a.py"), 2, "y\n", (0, 1))  # dirty: sent at once
    eng.editing.did_open(uri(eng, "b.py"), 1, "z\n", "python")  # within 250 ms: deferred
    eng.editing.did_change(uri(eng, "b.py"), 2, "w\n", (0, 1))
    await eng.drain()
    sent = client.statuses()[before:]
    assert [s["dirtyBuffers"] for s in sent] == [1]
    timers.advance(0.25)
    sent = client.statuses()[before:]
    assert [s["dirtyBuffers"] for s in sent] == [1, 2]  # one trailing send, the freshest state
    timers.advance(5)
    eng.update_status()  # nothing changed: nothing sent
    assert len(client.statuses()) == before + 2


async def test_busy_shows_in_the_status(eng: Engine, timers: FakeTimers, client: FakeClient) -> None:
    timers.advance(1)
    with eng.busy():
        assert client.statuses()[-1]["state"] == P.STATE_BUSY
        timers.advance(1)
    assert client.statuses()[-1]["state"] == P.STATE_IDLE


async def test_nothing_is_sent_before_start(workspace: Path, state_dir: Path, timers: FakeTimers) -> None:
    client = FakeClient()
    engine = Engine(workspace, Config(state_dir=str(state_dir), watcher=False), client, timers)
    engine.update_status()
    engine.editing.did_open(uri(engine, "a.py"), 1, "x\n", "python")
    assert client.statuses() == []
    await engine.drain()
    await engine.close()


async def test_a_gone_editor_does_not_lose_the_save_at_exit(
    eng: Engine, timers: FakeTimers, client: FakeClient
) -> None:
    # `:w | qa!`: the save arrives, then the pipe closes before its debounce; the status updates
    # the checkpoint sends now fail, and the checkpoint must be written all the same.
    (eng.root / "a.txt").write_text("saved then quit\n")
    eng.saves.changed(["a.txt"], True)

    def broken(method: str, params: Mapping[str, Any]) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    client.notify = broken  # type: ignore[method-assign]
    timers.advance(0.5)  # past the status throttle: the next status is sent at once
    await eng.shutdown()
    assert await written(eng) == [("a.txt",)]
