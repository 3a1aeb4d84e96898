"""Change tracking over real stdio: save bursts coalesce, agent writes on disk are seen by the
server's own watcher, the agent's state file is imported, progress and dynamic registration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from tests.e2e.lsp_harness import CLIENTS, Session, start_session
from tests.support.retry import aretry_until
from tether import protocol as P


@pytest.fixture(params=CLIENTS)
async def session(request: pytest.FixtureRequest, workspace: Path, state_dir: Path) -> Any:
    for i in range(5):
        (workspace / f"m{i}.py").write_text(f"v = {i}\n")
    (workspace / ".gitignore").write_text("build/\n")
    s = await start_session(workspace, state_dir, str(request.param))
    await s.wait_status(lambda st: st["lastCheckpoint"] is not None, "baseline")
    yield s
    await s.stop()


async def test_baseline_progress_and_watch_registration(session: Session) -> None:
    caps = session.client.capabilities
    assert caps is not None  # recorded client capabilities
    first = (await session.timeline())[-1]
    assert first["trigger"] == "baseline" and len(first["files"]) == 6
    if caps.window and caps.window.work_done_progress:
        reports = await aretry_until(
            lambda: [
                r
                for r in session.client.progress_reports.values()
                if r and type(r[-1]).__name__ == "WorkDoneProgressEnd"
            ],
            timeout=10,
            what="progress ended",
        )
        kinds = [type(r).__name__ for r in reports[0]]
        assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd"
    ws = caps.workspace
    if ws and ws.did_change_watched_files and ws.did_change_watched_files.dynamic_registration:
        assert [r.method for r in session.registrations] == [types.WORKSPACE_DID_CHANGE_WATCHED_FILES]
    else:
        assert session.registrations == []


async def test_save_burst_is_one_checkpoint(session: Session, workspace: Path) -> None:
    before = len(await session.timeline())
    uris = [session.open(f"m{i}.py", f"v = {i}\n") for i in range(5)]
    for i, uri in enumerate(uris):
        session.edit(uri, 2, 0, 4, 0, 5, str(i * 10 + 7))
        (workspace / f"m{i}.py").write_text(f"v = {i * 10 + 7}\n")
        session.save(uri)
    st = await session.wait_status(
        lambda s: s["lastCheckpoint"] and s["lastCheckpoint"]["trigger"] == "save", "save checkpoint"
    )
    assert sorted(st["lastCheckpoint"]["files"]) == [f"m{i}.py" for i in range(5)]
    # Nothing else arrives for the same burst (the watcher saw the same writes).
    await session.command(P.CMD_STATUS, {})
    timeline = await session.timeline()
    saves = [c for c in timeline[: len(timeline) - before] if c["trigger"] == "save"]
    assert len(saves) == 1
    assert st["dirtyBuffers"] == 0


async def test_agent_disk_writes_are_checkpointed(session: Session, workspace: Path) -> None:
    (workspace / "m3.py").write_text("v = 'agent'\n")
    (workspace / "new_module.py").write_text("print('hi')\n")
    (workspace / "build").mkdir()
    (workspace / "build" / "out.txt").write_text("ignored\n")
    st = await session.wait_status(
        lambda s: (
            s["lastCheckpoint"]
            and s["lastCheckpoint"]["trigger"] == "save"
            and {"m3.py", "new_module.py"} <= set(s["lastCheckpoint"]["files"])
        ),
        "checkpoint of the agent's writes",
    )
    assert st["lastCheckpoint"]["message"] == "changed on disk"
    timeline = await session.timeline()
    assert not any("build/out.txt" in c["files"] for c in timeline)


async def test_agent_state_file_is_imported(session: Session, workspace: Path) -> None:
    (workspace / ".agent-session.json").write_text(
        json.dumps(
            {"current_task": "port the parser", "files_in_progress": ["m1.py"], "next_steps": ["run tests"]}
        )
    )
    await aretry_until(
        lambda: any(
            c.get("trigger") == "step" for c in [s["lastCheckpoint"] or {} for s in session.statuses]
        ),
        timeout=15,
        what="step checkpoint after the agent file changed",
    )
    result = await session.command(P.CMD_RESUME, {})
    steps = session.next_steps[-1]
    assert steps["task"] == "port the parser"
    assert steps["nextSteps"] == ["run tests"]
    assert "m1.py" in result["opened"]


async def test_malformed_agent_file_warns(session: Session, workspace: Path) -> None:
    (workspace / ".agent-session.json").write_text('{"current_task": ')
    msgs = await aretry_until(
        lambda: [m for m in session.client.messages if ".agent-session.json" in m.message],
        timeout=15,
        what="warning about the state file",
    )
    assert msgs[0].type == types.MessageType.Warning
    assert (await session.command(P.CMD_STATUS, {}))["state"] != "error"


async def test_status_is_rate_limited_and_the_last_state_arrives(session: Session, workspace: Path) -> None:
    await session.wait_status(lambda s: s["state"] == "idle", "idle")
    uri = session.open("m1.py", "v = 1\n")
    seen = len(session.statuses)
    # 300 edits flipping the buffer dirty/clean: without a rate limit, 300 status changes.
    for v in range(300):
        session.edit(uri, v + 2, 0, 4, 0, 5, "2" if v % 2 == 0 else "1")
    session.edit(uri, 400, 0, 4, 0, 5, "9")  # ends dirty
    session.open("m2.py", "v = 2\n")  # a state no intermediate status had: 2 files
    # The trailing send delivers the final state even though it came inside the rate window.
    await session.wait_status(
        lambda s: s["dirtyBuffers"] == 1 and s["filesInProgress"] == 2, "final state", since=seen
    )
    burst = session.statuses[seen:]
    assert len(burst) < 50, len(burst)
    assert burst[-1]["filesInProgress"] == 2
