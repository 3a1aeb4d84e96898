"""The disconnect story over real stdio: client A edits, saves, leaves unsaved edits and dies
with its server; client B connects to the same workspace and resumes."""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path

import pytest

from tests.e2e.lsp_harness import CLIENTS, Session, start_session
from tests.support.retry import aretry_until
from tether import protocol as P


@pytest.fixture(params=CLIENTS)
def caps(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _crash_after_editing(workspace: Path, state_dir: Path, caps: str) -> Session:
    (workspace / "app.py").write_text("def main():\n    pass\n")
    (workspace / "util.py").write_text("X = 1\n")
    (workspace / "notes.md").write_text("# notes\n")
    a = await start_session(workspace, state_dir, caps)
    await a.wait_status(lambda s: s["lastCheckpoint"] is not None, "baseline checkpoint")

    app = a.open("app.py", "def main():\n    pass\n")
    util = a.open("util.py", "X = 1\n")
    # Saved edit: app.py changes on disk, then didSave.
    a.edit(app, 2, 1, 4, 1, 8, "return 42")
    (workspace / "app.py").write_text("def main():\n    return 42\n")
    a.save(app)
    await a.wait_status(
        lambda s: (
            s["lastCheckpoint"]
            and s["lastCheckpoint"]["trigger"] == "save"
            and s["lastCheckpoint"]["files"] == ["app.py"]
        ),
        "save checkpoint",
    )
    # Unsaved edit in util.py, cursor reported explicitly in app.py.
    a.edit(util, 2, 0, 4, 0, 5, "2\nY = 3")
    a.cursor(app, 1, 7)
    await a.wait_status(lambda s: s["dirtyBuffers"] == 1, "dirty buffer counted")
    # Let the journal (debounced ~1 s) reach the store, observed through a command round trip.
    await aretry_until(lambda: _journal_has(state_dir, "Y = 3"), timeout=10, what="journal written")
    await a.kill()
    return a


def _journal_has(state_dir: Path, needle: str) -> bool:
    import sqlite3
    import zlib

    for db in state_dir.glob("workspaces/*/tether.db"):
        conn = sqlite3.connect(db)
        try:
            row = conn.execute("SELECT codec, data FROM state WHERE name='editor'").fetchone()
        finally:
            conn.close()
        if row:
            data = zlib.decompress(row[1]) if row[0] == "zlib" else bytes(row[1])
            if needle.encode() in data:
                return True
    return False


async def test_disconnect_and_resume(workspace: Path, state_dir: Path, caps: str) -> None:
    await _crash_after_editing(workspace, state_dir, caps)

    b = await start_session(workspace, state_dir, caps)
    try:
        st = await b.wait_status(lambda s: s["resumeAvailable"], "resume available")
        assert st["lastCheckpoint"] is not None
        result = await b.command(P.CMD_RESUME, {})

        shown = {d.uri: d for d in b.client.shown_documents}
        assert set(shown) == {b.uri("app.py"), b.uri("util.py")}
        app_sel = shown[b.uri("app.py")].selection
        assert app_sel is not None and (app_sel.start.line, app_sel.start.character) == (1, 7)
        util_sel = shown[b.uri("util.py")].selection
        # Cursor fallback: the end of the last edit ("2\nY = 3" inserted at 0:4).
        assert util_sel is not None and (util_sel.start.line, util_sel.start.character) == (1, 5)
        # Exactly one document takes the focus.
        assert sum(1 for d in b.client.shown_documents if d.take_focus) == 1

        assert len(b.edits) == 1
        ((uri, text_edits),) = b.edits[0].edit.changes.items()
        assert uri == b.uri("util.py")
        assert text_edits[0].new_text == "X = 2\nY = 3\n"
        assert (text_edits[0].range.end.line, text_edits[0].range.end.character) == (1, 0)
        assert result["restoredBuffers"] == ["util.py"]
        assert result["skippedBuffers"] == []
        assert sorted(result["opened"]) == ["app.py", "util.py"]

        await aretry_until(lambda: b.next_steps, timeout=5, what="showNextSteps")
        steps = b.next_steps[-1]
        assert sorted(steps["filesInProgress"]) == ["app.py", "util.py"] or steps["filesInProgress"]
        # Resumed: no longer offered.
        await b.wait_status(lambda s: not s["resumeAvailable"], "resume consumed")
        # The saved edit was checkpointed before the crash.
        diff = await b.command(P.CMD_FILE_AT, {"checkpoint": st["lastCheckpoint"]["id"], "path": "app.py"})
        assert diff["text"] == "def main():\n    return 42\n"
    finally:
        await b.stop()


async def test_stale_buffer_is_skipped(workspace: Path, state_dir: Path) -> None:
    await _crash_after_editing(workspace, state_dir, "visual-studio-code")
    # The agent rewrote util.py after the unsaved edits were made: they must not be applied.
    (workspace / "util.py").write_text("X = 100\n")
    b = await start_session(workspace, state_dir, "visual-studio-code")
    try:
        await b.wait_status(lambda s: s["resumeAvailable"], "resume available")
        result = await b.command(P.CMD_RESUME, {})
        assert b.edits == []
        assert result["restoredBuffers"] == []
        assert [s["path"] for s in result["skippedBuffers"]] == ["util.py"]
        assert "changed on disk" in result["skippedBuffers"][0]["reason"]
        assert (workspace / "util.py").read_text() == "X = 100\n"
    finally:
        await b.stop()


async def test_refused_edit_is_reported(workspace: Path, state_dir: Path) -> None:
    await _crash_after_editing(workspace, state_dir, "neovim@v0.11")
    b = await start_session(workspace, state_dir, "neovim@v0.11")
    b.apply_result = False
    try:
        await b.wait_status(lambda s: s["resumeAvailable"], "resume available")
        result = await b.command(P.CMD_RESUME, {})
        assert len(b.edits) == 1
        assert result["restoredBuffers"] == []
        assert result["skippedBuffers"] == [
            {"path": "util.py", "reason": "the editor refused the edit: test refused"}
        ]
        # Not consumed: the journal entry waits until the buffer really comes back.
        st = await b.wait_status(lambda s: s["resumeAvailable"], "still offered")
        assert st["resumeAvailable"] is True
        b.apply_result = True
        again = await b.command(P.CMD_RESUME, {})
        assert again["restoredBuffers"] == ["util.py"]
        assert again["opened"] == ["util.py"]  # only what had not come back
        ((_, edits),) = b.edits[-1].edit.changes.items()
        assert edits[0].new_text == "X = 2\nY = 3\n"
        await b.wait_status(lambda s: not s["resumeAvailable"], "consumed once restored")
    finally:
        await b.stop()
    # A new editor: nothing left to resume.
    c = await start_session(workspace, state_dir, "neovim@v0.11")
    try:
        st = await c.wait_status(lambda s: s["state"] == "idle", "ready")
        assert st["resumeAvailable"] is False
    finally:
        await c.stop()


async def test_edits_are_announced_before_they_are_sent(workspace: Path, state_dir: Path) -> None:
    """tether/restoringBuffers comes first, with what an editor's recovery files compare with."""
    await _crash_after_editing(workspace, state_dir, "neovim@v0.11")
    b = await start_session(workspace, state_dir, "neovim@v0.11")
    try:
        await b.wait_status(lambda s: s["resumeAvailable"], "resume available")
        await b.command(P.CMD_RESUME, {})
        assert b.arrivals == ["restoring", "edit"]
        (buf,) = b.restoring[0]["buffers"]
        assert buf["path"] == "util.py" and buf["uri"] == b.uri("util.py")
        assert buf["textHash"] == hashlib.sha256(b"X = 2\nY = 3\n").hexdigest()
        assert buf["baseHash"] == hashlib.sha256(b"X = 1\n").hexdigest()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", buf["journaledAt"])
    finally:
        await b.stop()


async def test_resume_without_previous_session(workspace: Path, state_dir: Path) -> None:
    (workspace / "a.py").write_text("a\n")
    s = await start_session(workspace, state_dir, "visual-studio-code")
    try:
        st = await s.wait_status(lambda st: st["lastCheckpoint"] is not None, "baseline")
        assert st["resumeAvailable"] is False
        assert st["text"] == "#1 · just now"  # no file in progress: no "· 0 files"
        result = await s.command(P.CMD_RESUME, {})
        assert result["opened"] == [] and result["restoredBuffers"] == [] and result["terminal"] is None
        await aretry_until(lambda: s.next_steps, timeout=5, what="showNextSteps")
        assert s.next_steps[-1]["summary"] == "no task recorded" or s.next_steps[-1]["task"] is None
    finally:
        await s.stop()


async def test_secret_and_ignored_buffers_are_not_journaled(workspace: Path, state_dir: Path) -> None:
    (workspace / ".gitignore").write_text("local/\n")
    (workspace / "local").mkdir()
    (workspace / "local" / "scratch.py").write_text("x = 1\n")
    (workspace / ".env").write_text("TOKEN=old\n")
    (workspace / "app.py").write_text("a = 1\n")
    a = await start_session(workspace, state_dir, "visual-studio-code")
    await a.wait_status(lambda s: s["lastCheckpoint"] is not None, "baseline")
    for rel, text in [(".env", "TOKEN=old\n"), ("local/scratch.py", "x = 1\n"), ("app.py", "a = 1\n")]:
        uri = a.open(rel, text)
        a.edit(uri, 2, 0, 0, 0, 0, "SECRET_UNSAVED ")
    await a.wait_status(lambda s: s["dirtyBuffers"] == 3, "three dirty buffers")
    await a.command(P.CMD_CHECKPOINT, {})  # flushes the journal
    await aretry_until(lambda: _journal_has(state_dir, "SECRET_UNSAVED a = 1"), timeout=10, what="journal")
    assert not _journal_has(state_dir, "SECRET_UNSAVED TOKEN")
    assert not _journal_has(state_dir, "SECRET_UNSAVED x = 1")
    await a.kill()
    b = await start_session(workspace, state_dir, "visual-studio-code")
    try:
        await b.wait_status(lambda s: s["resumeAvailable"], "resume available")
        result = await b.command(P.CMD_RESUME, {})
        assert result["restoredBuffers"] == ["app.py"]
        assert sorted(result["opened"]) == [".env", "app.py", "local/scratch.py"]
    finally:
        await b.stop()


async def test_double_resume_applies_buffers_once(workspace: Path, state_dir: Path) -> None:
    await _crash_after_editing(workspace, state_dir, "visual-studio-code")
    b = await start_session(workspace, state_dir, "visual-studio-code")
    try:
        await b.wait_status(lambda s: s["resumeAvailable"], "resume available")
        first, second = await asyncio.gather(b.command(P.CMD_RESUME, {}), b.command(P.CMD_RESUME, {}))
        assert len(b.edits) == 1
        assert sorted([first["restoredBuffers"], second["restoredBuffers"]]) == [[], ["util.py"]]
    finally:
        await b.stop()


async def test_buffer_already_restored_by_the_editor(workspace: Path, state_dir: Path) -> None:
    await _crash_after_editing(workspace, state_dir, "visual-studio-code")
    b = await start_session(workspace, state_dir, "visual-studio-code")
    try:
        await b.wait_status(lambda s: s["resumeAvailable"], "resume available")
        # The editor's own hot exit already brought the unsaved text back.
        b.open("util.py", "X = 2\nY = 3\n")
        await b.wait_status(lambda s: s["dirtyBuffers"] == 1, "reopened dirty")
        result = await b.command(P.CMD_RESUME, {})
        assert b.edits == []
        assert result["restoredBuffers"] == ["util.py"]
    finally:
        await b.stop()
