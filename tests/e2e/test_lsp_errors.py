"""Bad input over real stdio: malformed command params, unknown URIs, files outside the
workspace, bad configuration, and a server SIGKILLed in the middle of a checkpoint."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.e2e.lsp_harness import CLIENTS, Session, start_session
from tether import protocol as P


@pytest.fixture(params=CLIENTS)
async def session(request: pytest.FixtureRequest, workspace: Path, state_dir: Path) -> Any:
    (workspace / "a.py").write_text("a = 1\n")
    s = await start_session(workspace, state_dir, str(request.param))
    await s.wait_status(lambda st: st["state"] == "idle", "baseline done")
    yield s
    await s.stop()


BAD_PARAMS = [
    (P.CMD_CHECKPOINT, {"message": 5}, "'message' must be a string"),
    (P.CMD_TIMELINE, {"limit": "ten"}, "'limit' must be a whole number"),
    (P.CMD_TIMELINE, {"limit": 0}, "'limit' must be at least 1"),
    (P.CMD_DIFF, {}, "'from' is required"),
    (P.CMD_DIFF, {"from": "x"}, "'from' must be a whole number"),
    (P.CMD_DIFF, {"from": 1, "paths": "a.py"}, "'paths' must be a list of strings"),
    (P.CMD_FILE_AT, {"checkpoint": 1}, "'path' is required"),
    (P.CMD_FILE_AT, {"checkpoint": -1, "path": "a.py"}, "'checkpoint' must be at least 1"),
    (P.CMD_RESTORE, {"checkpoint": 1, "dryRun": "yes"}, "'dryRun' must be true or false"),
    (P.CMD_RESTORE, {}, "'checkpoint' is required"),
    (P.CMD_STEP, {}, "'done' is required"),
    (P.CMD_STEP, {"done": "x", "next": [1]}, "'next[0]' must be a non-empty string"),
    (P.CMD_RESUME, {"checkpoint": "latest"}, "'checkpoint' must be a whole number"),
    (P.CMD_STATUS, 42, "expects a params object"),
]


async def _expect_error(
    s: Session, command: str, params: Any, raw: list[Any] | None = None
) -> JsonRpcException:
    with pytest.raises(JsonRpcException) as info:
        await s.command(command, params, raw_args=raw)
    return info.value


async def test_malformed_params(session: Session) -> None:
    for command, params, message in BAD_PARAMS:
        err = await _expect_error(session, command, params)
        assert err.code == -32602, (command, params, err)
        assert message in err.message, (command, params, err.message)
        assert command in err.message
        assert err.data == {"reason": "badParams"}
        # The server keeps working.
        status = await session.command(P.CMD_STATUS, {})
        assert status["state"] in ("idle", "busy")


async def test_more_than_one_argument(session: Session) -> None:
    err = await _expect_error(session, P.CMD_TIMELINE, None, raw=[{}, {}])
    assert err.code == -32602 and "one params object" in err.message


async def test_outside_workspace_paths_are_rejected(session: Session, tmp_path: Path) -> None:
    for cmd, params in [
        (P.CMD_RESTORE, {"checkpoint": 1, "paths": ["../../etc/passwd"], "dryRun": False}),
        (P.CMD_DIFF, {"from": 1, "paths": ["/etc/passwd"]}),
        (P.CMD_FILE_AT, {"checkpoint": 1, "path": "../outside.txt"}),
    ]:
        err = await _expect_error(session, cmd, params)
        assert err.code == -32602
        assert err.data == {"reason": "outsideWorkspace"}
        assert "outside the workspace" in err.message


async def test_unknown_checkpoint_is_a_clear_error(session: Session) -> None:
    err = await _expect_error(session, P.CMD_DIFF, {"from": 999})
    assert err.code == -32603
    assert err.data == {"reason": "noCheckpoint"}
    assert "no checkpoint 999" in err.message


async def test_unknown_uris_are_ignored(session: Session) -> None:
    ghost = session.uri("never-opened.py")
    session.edit(ghost, 2, 0, 0, 0, 0, "x")
    session.save(ghost)
    session.cursor(ghost, 3, 3)
    session.client.protocol.notify(P.CLIENT_NOTIFY_CURSOR, {"uri": 5, "line": "x"})
    session.client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=ghost))
    )
    # Malformed standard notifications and out-of-range edits: logged, never fatal.
    session.send_raw({"method": "textDocument/didOpen", "params": {"textDocument": {"uri": 5}}})
    session.send_raw({"method": "textDocument/didSave", "params": {"nope": True}})
    session.send_raw({"method": "textDocument/didChange", "params": []})
    real = session.open("a.py", "a = 1\n")
    session.edit(real, 2, 999, 0, 1000, 4, "far away")
    session.edit(real, 3, 0, 50, 0, 2, "backwards")
    status = await session.command(P.CMD_STATUS, {})
    assert status["filesInProgress"] == 1
    assert status["state"] != "error"
    session.client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=real))
    )
    status = await session.command(P.CMD_STATUS, {})
    assert status["filesInProgress"] == 0 and status["dirtyBuffers"] == 0
    assert status["state"] != "error"
    assert not [m for m in session.client.messages if m.type == types.MessageType.Error]


async def test_files_outside_the_workspace_are_not_tracked(session: Session, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n")
    before = outside.stat().st_mtime_ns
    for uri in ["file:///etc/passwd", outside.as_uri(), "untitled:Untitled-1"]:
        session.open("", "root:x:0:0\n", uri=uri)
        session.edit(uri, 2, 0, 0, 0, 0, "EDITED ")
        session.save(uri)
    inside = session.open("a.py", "a = 1\n")
    session.edit(inside, 2, 0, 4, 0, 5, "2")
    status = await session.wait_status(lambda s: s["dirtyBuffers"] == 1, "the workspace file is dirty")
    assert status["filesInProgress"] == 1
    cp = await session.command(P.CMD_CHECKPOINT, {"message": "after outside edits"})
    assert all(not f.startswith("/") and ".." not in f for f in cp["files"])
    result = await session.command(P.CMD_RESUME, {"checkpoint": cp["id"]})
    assert result["opened"] == ["a.py"]
    assert outside.read_text() == "secret\n" and outside.stat().st_mtime_ns == before


async def test_bad_initialization_options(workspace: Path, state_dir: Path) -> None:
    opts = {"checkpointIntervalSeconds": "often", "saveDebounceMs": -5, "tmux": 3, "unknownKey": 1}
    s = await start_session(workspace, state_dir, "visual-studio-code", init_options=opts)
    try:
        await s.wait_status(lambda st: st["state"] == "idle", "baseline done")
        texts = [m.message for m in s.client.messages if m.type == types.MessageType.Warning]
        assert any("checkpointIntervalSeconds must be a number" in t and "600" in t for t in texts), texts
        assert any("saveDebounceMs must be at least 0" in t for t in texts), texts
        assert any("tmux must be an object" in t for t in texts), texts
        assert not any("unknownKey" in t for t in texts)
        assert (await s.command(P.CMD_CHECKPOINT, {}))["trigger"] == "manual"
    finally:
        await s.stop()


async def test_initialization_options_not_an_object(workspace: Path, state_dir: Path) -> None:
    s = await start_session(workspace, state_dir, "neovim@v0.11", init_options="fast please")
    try:
        await s.wait_status(lambda st: st["state"] == "idle", "baseline done")
        texts = [m.message for m in s.client.messages]
        assert any("initializationOptions must be an object" in t for t in texts), texts
    finally:
        await s.stop()


async def test_workspace_configuration_is_read(workspace: Path, state_dir: Path) -> None:
    s = await start_session(
        workspace,
        state_dir,
        "visual-studio-code",
        configuration={"tether": {"saveDebounceMs": "soon"}},
    )
    try:
        await s.wait_status(lambda st: st["state"] == "idle", "baseline done")
        texts = [m.message for m in s.client.messages]
        assert any("settings tether.saveDebounceMs must be a number" in t for t in texts), texts
    finally:
        await s.stop()


async def test_sigkill_mid_checkpoint_keeps_the_store_whole(workspace: Path, state_dir: Path) -> None:
    n_files, size = 40, 512 * 1024
    for i in range(n_files):
        (workspace / f"big{i:02}.bin").write_bytes(os.urandom(size))
    a = await start_session(workspace, state_dir, "visual-studio-code")
    await a.wait_status(lambda st: st["lastCheckpoint"] is not None, "baseline", timeout=60)
    baseline = (await a.timeline())[0]
    await a.wait_status(lambda st: st["state"] == "idle", "idle after the baseline")
    # A burst of saves of big files: one big checkpoint, SIGKILLed while it is being written.
    uris = [a.open(f"big{i:02}.bin", "(binary)") for i in range(n_files)]
    seen = len(a.statuses)
    for i in range(n_files):
        (workspace / f"big{i:02}.bin").write_bytes(os.urandom(size))
    for uri in uris:
        a.save(uri)
    await a.wait_status(lambda st: st["state"] == "busy", "checkpoint under way", timeout=20, since=seen)
    os.kill(a.pid, signal.SIGKILL)
    await a.kill()

    db = next(state_dir.glob("workspaces/*/tether.db"))
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        orphans = conn.execute(
            "SELECT COUNT(*) FROM changes WHERE checkpoint NOT IN (SELECT id FROM checkpoints)"
        ).fetchone()[0]
        assert orphans == 0
    finally:
        conn.close()
    b = await start_session(workspace, state_dir, "visual-studio-code")
    try:
        timeline = await b.timeline()
        later = [c for c in timeline if c["id"] > baseline["id"] and c["trigger"] == "save"]
        # Whole or nothing: either no burst checkpoint, or one holding every file.
        assert later == [] or sorted(later[-1]["files"]) == sorted(f"big{i:02}.bin" for i in range(n_files))
        restored = await b.command(P.CMD_RESTORE, {"checkpoint": baseline["id"], "paths": ["big00.bin"]})
        assert restored["dryRun"] is True
        got = await b.command(P.CMD_FILE_AT, {"checkpoint": baseline["id"], "path": "big00.bin"})
        assert got["exists"] is True and got["binary"] is True
    finally:
        await b.stop()
    await asyncio.sleep(0)
