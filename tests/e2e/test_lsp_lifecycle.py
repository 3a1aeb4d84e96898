"""Server lifecycle over real stdio: exit on EOF with a clean stdout, a corrupt store, periodic
checkpoints, an editor reopening its own unsaved buffers, configuration changes, clean shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from lsprotocol import types

from tests.e2e.lsp_harness import start_session
from tests.support.retry import aretry_until, retry_until
from tether import protocol as P


def _frame(obj: dict[str, object]) -> bytes:
    body = json.dumps(obj).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def _frames(data: bytes) -> list[dict[str, object]]:
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"garbage on stdout: {data[:80]!r}"
        length = None
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            assert name.lower() in (b"content-length", b"content-type"), f"not an LSP header: {line!r}"
            if name.lower() == b"content-length":
                length = int(value)
        assert length is not None
        out.append(json.loads(rest[:length]))
        data = rest[length:]
    return out


def test_exits_on_eof_and_stdout_is_only_lsp(workspace: Path, state_dir: Path) -> None:
    (workspace / "a.py").write_text("print('hello')\n")
    env = dict(os.environ, TETHER_STATE_DIR=str(state_dir), TETHER_TMUX_SOCKET=str(state_dir / "none"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "lsp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write(
            _frame(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {"processId": None, "rootUri": workspace.as_uri(), "capabilities": {}},
                }
            )
        )
        proc.stdin.write(_frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
        proc.stdin.write(
            _frame(
                {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "workspace/executeCommand",
                    "params": {"command": P.CMD_CHECKPOINT, "arguments": [{"message": "eof test"}]},
                }
            )
        )
        proc.stdin.flush()
        # Let the checkpoint's reply arrive before the editor "crashes" (EOF on stdin).
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        got = bytearray()

        def replied() -> bool:
            chunk = proc.stdout.read() if proc.stdout else None  # type: ignore[union-attr]
            if chunk:
                got.extend(chunk)
            return b'"id": 2' in got or b'"id":2' in got

        retry_until(replied, timeout=30, what="checkpoint reply")
        os.set_blocking(proc.stdout.fileno(), True)
        rest, err = proc.communicate(timeout=20)  # closes stdin: EOF, the server must exit
        out = bytes(got) + rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    frames = _frames(out)
    assert frames[0]["id"] == 1 and "capabilities" in frames[0]["result"]  # type: ignore[operator]
    cmds = frames[0]["result"]["capabilities"]["executeCommandProvider"]["commands"]  # type: ignore[index]
    assert sorted(cmds) == sorted(P.COMMANDS)
    replies = [f for f in frames if f.get("id") == 2]
    assert replies and replies[0]["result"]["trigger"] == "manual"  # type: ignore[index]
    log = state_dir / "lsp.log"
    assert log.exists() and (log.stat().st_mode & 0o777) == 0o600
    assert b"Traceback" not in err


async def test_corrupt_store_is_reported_and_the_server_stays_up(workspace: Path, state_dir: Path) -> None:
    from tether.store.db import workspace_key

    db_dir = state_dir / "workspaces" / workspace_key(workspace)
    db_dir.mkdir(parents=True)
    (db_dir / "tether.db").write_bytes(b"this is not sqlite" * 100)
    s = await start_session(workspace, state_dir, "visual-studio-code")
    try:
        st = await s.wait_status(lambda st: st["state"] == "error", "error status")
        assert "corrupt" in st["error"] and st["text"].startswith("error:")
        assert any("corrupt" in m.message for m in s.client.messages if m.type == types.MessageType.Error)
        try:
            await s.command(P.CMD_TIMELINE, {})
        except Exception as exc:
            assert getattr(exc, "code", None) == -32603
            assert getattr(exc, "data", None) == {"reason": "storeError"}
        else:
            raise AssertionError("timeline on a corrupt store must fail")
        # Still answering.
        assert (await s.command(P.CMD_STATUS, {}))["state"] == "error"
        assert (db_dir / "tether.db").read_bytes().startswith(b"this is not sqlite")
    finally:
        await s.stop()


async def test_periodic_checkpoint(workspace: Path, state_dir: Path) -> None:
    s = await start_session(
        workspace, state_dir, "neovim@v0.11", init_options={"checkpointIntervalSeconds": 1, "watcher": False}
    )
    try:
        await s.wait_status(lambda st: st["state"] == "idle", "baseline done")
        (workspace / "late.txt").write_text("written without telling anyone\n")
        st = await s.wait_status(
            lambda st: st["lastCheckpoint"] and st["lastCheckpoint"]["trigger"] == "periodic", "periodic"
        )
        assert st["lastCheckpoint"]["files"] == ["late.txt"]
    finally:
        await s.stop()


async def test_editor_reopening_its_own_unsaved_buffer(workspace: Path, state_dir: Path) -> None:
    (workspace / "doc.md").write_text("on disk\n")
    s = await start_session(workspace, state_dir, "visual-studio-code")
    try:
        await s.wait_status(lambda st: st["state"] == "idle", "baseline done")
        # VS Code's hot exit reopens the buffer with text that was never saved.
        s.open("doc.md", "on disk\nplus unsaved\n")
        await s.wait_status(lambda st: st["dirtyBuffers"] == 1, "reopened buffer counted dirty")
        await s.command(P.CMD_CHECKPOINT, {})  # flushes the journal
    finally:
        await s.kill()
    b = await start_session(workspace, state_dir, "visual-studio-code")
    try:
        await b.wait_status(lambda st: st["resumeAvailable"], "resume available")
        result = await b.command(P.CMD_RESUME, {})
        assert result["restoredBuffers"] == ["doc.md"]
        ((_, edits),) = b.edits[0].edit.changes.items()
        assert edits[0].new_text == "on disk\nplus unsaved\n"
    finally:
        await b.stop()


async def test_configuration_change_applies(workspace: Path, state_dir: Path) -> None:
    s = await start_session(workspace, state_dir, "neovim@v0.11")
    try:
        await s.wait_status(lambda st: st["state"] == "idle", "baseline done")
        s.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"tether": {"resumeMaxFiles": "lots"}})
        )
        msgs = await aretry_until(
            lambda: [m for m in s.client.messages if "resumeMaxFiles" in m.message],
            timeout=10,
            what="warning",
        )
        assert "using 30" in msgs[0].message
    finally:
        await s.stop()


async def test_clean_exit_offers_no_resume_but_resume_still_reopens(workspace: Path, state_dir: Path) -> None:
    (workspace / "a.py").write_text("a = 1\n")
    s = await start_session(workspace, state_dir, "neovim@v0.11")
    await s.wait_status(lambda st: st["state"] == "idle", "baseline done")
    uri = s.open("a.py", "a = 1\n")
    s.cursor(uri, 0, 3)
    await s.stop()  # shutdown + exit: the journal is written on shutdown
    b = await start_session(workspace, state_dir, "neovim@v0.11")
    try:
        # Nothing was lost (no unsaved text): a clean quit is not offered as a resume…
        st = await b.wait_status(lambda st: st["state"] == "idle", "ready")
        assert st["resumeAvailable"] is False
        # …but asked for, the files come back where they were.
        result = await b.command(P.CMD_RESUME, {})
        assert result["opened"] == ["a.py"]
        (doc,) = b.client.shown_documents
        assert doc.selection is not None and doc.selection.start.character == 3
    finally:
        await b.stop()


async def test_a_second_live_editor_is_not_a_session_to_resume(workspace: Path, state_dir: Path) -> None:
    (workspace / "a.py").write_text("a = 1\n")
    a = await start_session(workspace, state_dir, "visual-studio-code")
    try:
        await a.wait_status(lambda st: st["state"] == "idle", "A ready")
        a.open("a.py", "a = 1\n")
        await a.command(P.CMD_CHECKPOINT, {})  # journal flushed: A's open file is on record
        b = await start_session(workspace, state_dir, "neovim@v0.11")
        try:
            st = await b.wait_status(lambda st: st["state"] == "idle", "B ready")
            assert st["resumeAvailable"] is False
        finally:
            await b.stop()
    finally:
        await a.kill()
    # A crashed: now its journal is a session to resume.
    c = await start_session(workspace, state_dir, "neovim@v0.11")
    try:
        await c.wait_status(lambda st: st["resumeAvailable"], "resume available once A is gone")
    finally:
        await c.stop()


async def test_state_dir_inside_the_workspace_is_not_tracked(workspace: Path) -> None:
    state = workspace / ".tether-state"
    (workspace / "a.py").write_text("a = 1\n")
    s = await start_session(workspace, state, "visual-studio-code")
    try:
        await s.wait_status(lambda st: st["state"] == "idle", "baseline done")
        uri = s.open("a.py", "a = 1\n")
        s.edit(uri, 2, 0, 4, 0, 5, "2")
        (workspace / "a.py").write_text("a = 2\n")
        s.save(uri)
        await s.wait_status(
            lambda st: st["lastCheckpoint"] and st["lastCheckpoint"]["trigger"] == "save", "save checkpoint"
        )
        manual = await s.command(P.CMD_CHECKPOINT, {"message": "after"})
        timeline = await s.timeline()
        assert all(not f.startswith(".tether-state") for c in timeline for f in c["files"])
        # No feedback loop: the store's own writes never cause checkpoints.
        assert [c["trigger"] for c in timeline] == ["manual", "save", "baseline"]
        assert timeline[0]["id"] == manual["id"]
    finally:
        await s.stop()


async def test_sigterm_flushes_the_last_edits(workspace: Path, state_dir: Path) -> None:
    (workspace / "a.py").write_text("a = 1\n")
    # A journal timer far away: only the SIGTERM handler can have written the edit.
    s = await start_session(
        workspace, state_dir, "visual-studio-code", init_options={"bufferJournalDebounceMs": 60000}
    )
    await s.wait_status(lambda st: st["state"] == "idle", "ready")
    uri = s.open("a.py", "a = 1\n")
    s.edit(uri, 2, 0, 4, 0, 5, "42")
    await s.wait_status(lambda st: st["dirtyBuffers"] == 1, "edit processed")
    os.kill(s.pid, signal.SIGTERM)
    server = s.client._server
    assert server is not None
    assert await asyncio.wait_for(server.wait(), 10) == 0
    await s.kill()
    b = await start_session(workspace, state_dir, "visual-studio-code")
    try:
        await b.wait_status(lambda st: st["resumeAvailable"], "resume available")
        result = await b.command(P.CMD_RESUME, {})
        assert result["restoredBuffers"] == ["a.py"]
        ((_, edits),) = b.edits[0].edit.changes.items()
        assert edits[0].new_text == "a = 42\n"
    finally:
        await b.stop()


def _latest_save(workspace: Path, state_dir: Path) -> tuple[str, bytes] | None:
    from tether.store.db import Store

    with Store.open(workspace, state_dir) as store:
        latest = store.latest()
        if latest is None or latest.trigger != "save":
            return None
        entry = store.entry_at(latest.id, "a.py")
        return latest.trigger, store.read_blob(entry.hash) if entry else b""


async def test_a_save_right_before_shutdown_is_checkpointed(workspace: Path, state_dir: Path) -> None:
    (workspace / "a.py").write_text("a = 1\n")
    # A debounce far away: only the flush on shutdown can have made the checkpoint.
    s = await start_session(workspace, state_dir, "neovim@v0.11", init_options={"saveDebounceMs": 60000})
    await s.wait_status(lambda st: st["state"] == "idle", "ready")
    uri = s.open("a.py", "a = 1\n")
    (workspace / "a.py").write_text("a = 2  # saved\n")
    s.save(uri)
    await s.stop()  # shutdown + exit at once, as `:w | qa` does
    assert _latest_save(workspace, state_dir) == ("save", b"a = 2  # saved\n")


async def test_a_save_right_before_stdin_closes_is_checkpointed(workspace: Path, state_dir: Path) -> None:
    """The editor quits without waiting for the answer to `shutdown` (or crashes): stdin ends."""
    (workspace / "a.py").write_text("a = 1\n")
    s = await start_session(
        workspace, state_dir, "visual-studio-code", init_options={"saveDebounceMs": 60000}
    )
    await s.wait_status(lambda st: st["state"] == "idle", "ready")
    uri = s.open("a.py", "a = 1\n")
    (workspace / "a.py").write_text("a = 3  # saved\n")
    s.save(uri)
    await s.command(P.CMD_STATUS, {})  # answered after the didSave before it was handled
    server = s.client._server
    assert server is not None and server.stdin is not None
    server.stdin.close()
    assert await asyncio.wait_for(server.wait(), 15) == 0
    await s.kill()
    assert _latest_save(workspace, state_dir) == ("save", b"a = 3  # saved\n")
