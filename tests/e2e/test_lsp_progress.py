"""The baseline checkpoint's work-done progress over real stdio: created by the server
(window/workDoneProgress/create), cancellable, with a percentage (the bytes stored); and a cancel
from the client (window/workDoneProgress/cancel) abandons it with nothing written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lsprotocol import types

from tests.e2e.lsp_harness import start_session
from tests.support.retry import aretry_until
from tether import protocol as P
from tether.store.db import Store


def _ended(session: Any) -> list[list[Any]]:
    return [
        r
        for r in session.client.progress_reports.values()
        if r and isinstance(r[-1], types.WorkDoneProgressEnd)
    ]


async def test_baseline_progress_has_a_percentage(workspace: Path, state_dir: Path) -> None:
    for i in range(40):
        (workspace / f"m{i}.py").write_text(f"v = {i}\n" * 50)
    s = await start_session(workspace, state_dir, "visual-studio-code")
    try:
        await s.wait_status(lambda st: st["lastCheckpoint"] is not None, "baseline")
        [reports] = await aretry_until(lambda: _ended(s), timeout=10, what="progress ended")
        begin, *middle, end = reports
        assert isinstance(begin, types.WorkDoneProgressBegin)
        assert begin.cancellable is True and begin.percentage == 0
        storing = [
            r
            for r in middle
            if isinstance(r, types.WorkDoneProgressReport) and "storing" in (r.message or "")
        ]
        assert storing, middle
        percents = [r.percentage for r in middle if isinstance(r, types.WorkDoneProgressReport)]
        assert all(p is not None and 0 <= p <= 100 for p in percents)
        assert percents == sorted(p for p in percents if p is not None)
        assert end.message == "40 files recorded"
    finally:
        await s.stop()


async def test_cancelled_baseline_writes_nothing(workspace: Path, state_dir: Path) -> None:
    # Big enough that the baseline takes seconds (incompressible bytes to hash, compress and
    # write): the cancel, sent as soon as the progress begins, arrives well before its end.
    for i in range(800):
        p = workspace / f"d{i % 8}" / f"f{i}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(64 * 1024))
    s = await start_session(workspace, state_dir, "visual-studio-code")
    try:
        begun = await aretry_until(
            lambda: [
                t
                for t, r in s.client.progress_reports.items()
                if r and isinstance(r[0], types.WorkDoneProgressBegin)
            ],
            timeout=20,
            interval=0.005,
            what="progress begun",
        )
        s.client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=begun[0]))
        [reports] = await aretry_until(lambda: _ended(s), timeout=60, what="progress ended")
        assert "cancelled" in (reports[-1].message or ""), reports[-1]
        st = await s.wait_status(lambda st: st["state"] == "idle", "idle after the cancel", timeout=20)
        assert st["lastCheckpoint"] is None and st["error"] is None, st
        # Nothing half-written: no checkpoint, no head row, no blob.
        with Store.open(workspace, state_dir) as store:
            assert store.list_checkpoints() == [] and store.head() == {}
            assert store.query("SELECT count(*) FROM blobs WHERE size > 60000")[0][0] == 0
        # A checkpoint asked for afterwards records the whole tree.
        cp = await s.command(P.CMD_CHECKPOINT, {"message": "after the cancel"})
        assert len(cp["files"]) == 800
    finally:
        await s.stop()
