"""Indicators that do not mislead, over real stdio (tether/status): one definition of "files in
progress" shared with the CLI, "checkpointing…" from the moment of a save, `#N · ago · files`
with a tooltip, and "resume" offered only when something would come back."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from lsprotocol import types

from tests.e2e.lsp_harness import start_session
from tests.support.retry import aretry_until
from tether import protocol as P

TETHER = Path(sys.executable).parent / "tether"


def cli_status(workspace: Path, state_dir: Path) -> dict:
    res = subprocess.run(
        [str(TETHER), "-C", str(workspace), "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "TETHER_STATE_DIR": str(state_dir)},
    )
    return json.loads(res.stdout)


async def test_files_in_progress_is_the_same_number_everywhere(workspace: Path, state_dir: Path) -> None:
    for name in ("a.py", "b.py", "c.py"):
        (workspace / name).write_text(f"{name} = 1\n")
    s = await start_session(workspace, state_dir, "neovim@v0.11")
    try:
        await s.wait_status(lambda st: st["state"] == "idle", "ready")
        # The agent names two files; the editor has one of them and another open.
        await s.command(P.CMD_STEP, {"done": "started", "task": "t"})
        proc = subprocess.run(
            [str(TETHER), "-C", str(workspace), "step", "--done", "picked files", "-f", "a.py", "b.py"],
            capture_output=True, text=True, timeout=60, check=True,
            env={**os.environ, "TETHER_STATE_DIR": str(state_dir)}, cwd=workspace,
        )  # fmt: skip
        assert proc.returncode == 0
        s.open("b.py", "b.py = 1\n")
        s.open("c.py", "c.py = 1\n")
        await s.command(P.CMD_CHECKPOINT, {})  # the journal (open files) is on record
        st = await s.wait_status(lambda st: st["filesInProgress"] == 3, "a, b (agent) + c (editor)")
        cli = cli_status(workspace, state_dir)
        assert cli["filesInProgress"] == ["a.py", "b.py", "c.py"]
        assert st["filesInProgress"] == len(cli["filesInProgress"])
        assert st["text"].endswith("· 3 files")
    finally:
        await s.stop()
    # No editor running: only the agent's files remain in progress.
    assert cli_status(workspace, state_dir)["filesInProgress"] == ["a.py", "b.py"]


async def test_status_text_names_the_checkpoint_and_the_tooltip_explains(
    workspace: Path, state_dir: Path
) -> None:
    (workspace / "a.py").write_text("a = 1\n")
    s = await start_session(workspace, state_dir, "visual-studio-code")
    try:
        await s.wait_status(lambda st: st["state"] == "idle", "ready")
        s.open("a.py", "a = 1\n")
        info = await s.command(P.CMD_STEP, {"done": "wrote a", "next": ["test a", "lint"], "task": "t"})
        st = await s.wait_status(
            lambda st: (st["lastCheckpoint"] or {}).get("id") == info["id"] and st["nextStep"], "step"
        )
        assert st["text"] == f"#{info['id']} · just now · 1 file"
        tip = st["tooltip"]
        assert f"Checkpoint #{info['id']} (step: wrote a)" in tip
        assert "Files in progress: 1 (a.py)" in tip
        assert "Next step: test a" in tip
    finally:
        await s.stop()


async def test_a_save_shows_checkpointing_at_once_and_echoes_do_not_delay_it(
    workspace: Path, state_dir: Path
) -> None:
    (workspace / "a.py").write_text("a = 1\n")
    # A long max delay: only a debounce that echoes do not push back lands while they go on.
    s = await start_session(
        workspace,
        state_dir,
        "visual-studio-code",
        init_options={"saveDebounceMs": 750, "saveMaxDelayMs": 60000, "statusMinIntervalMs": 0},
    )
    try:
        await s.wait_status(lambda st: st["state"] == "idle", "ready")
        (workspace / "a.py").write_text("a = 2\n")
        uri = s.open("a.py", "a = 1\n")
        # The open's own check (the buffer differs from the disk) reports before the save does.
        await s.wait_status(lambda st: st["dirtyBuffers"] == 1, "the open buffer's check")
        seen = len(s.statuses)
        s.save(uri)
        first = await s.wait_status(lambda st: True, "a status after the save", since=seen)
        assert first["checkpointing"] is True and first["text"] == "checkpointing…"

        # The editor's own file events (and the server's watcher) keep reporting the same file,
        # as VS Code does after each save: the checkpoint must not wait for them to stop.
        async def echo() -> None:
            while True:
                s.client.workspace_did_change_watched_files(
                    types.DidChangeWatchedFilesParams(
                        changes=[types.FileEvent(uri=uri, type=types.FileChangeType.Changed)]
                    )
                )
                await asyncio.sleep(0.2)

        echoes = asyncio.ensure_future(echo())
        try:
            st = await s.wait_status(
                lambda st: (st["lastCheckpoint"] or {}).get("trigger") == "save" and not st["checkpointing"],
                "the save checkpoint while the echoes go on",
                timeout=10,
            )
        finally:
            echoes.cancel()
        assert st["lastCheckpoint"]["files"] == ["a.py"]
        assert st["text"].startswith(f"#{st['lastCheckpoint']['id']} · just now")
    finally:
        await s.stop()


async def _crash_with_open_file(workspace: Path, state_dir: Path, unsaved: bool) -> None:
    (workspace / "a.py").write_text("a = 1\n")
    a = await start_session(workspace, state_dir, "visual-studio-code")
    await a.wait_status(lambda st: st["state"] == "idle", "A ready")
    uri = a.open("a.py", "a = 1\n")
    if unsaved:
        a.edit(uri, 2, 0, 4, 0, 5, "2")
    await a.command(P.CMD_CHECKPOINT, {})  # the journal is flushed with it
    await a.kill()


async def test_resume_offer_is_cleared_once_superseded(workspace: Path, state_dir: Path) -> None:
    await _crash_with_open_file(workspace, state_dir, unsaved=False)
    b = await start_session(workspace, state_dir, "visual-studio-code")
    try:
        await b.wait_status(lambda st: st["resumeAvailable"], "offered after a crash")
        # The user goes on working in the new editor instead: the old file list is past.
        (workspace / "b.py").write_text("b = 1\n")
        await b.command(P.CMD_CHECKPOINT, {"message": "moving on"})
        st = await b.wait_status(lambda st: not st["resumeAvailable"], "offer cleared")
        assert st["resumeAvailable"] is False
        # Still there when asked for.
        result = await b.command(P.CMD_RESUME, {})
        assert result["opened"] == ["a.py"]
    finally:
        await b.stop()


async def test_nothing_offered_when_the_editor_already_has_it(workspace: Path, state_dir: Path) -> None:
    """A server restart that lost nothing: the editor still holds the files and unsaved text."""
    await _crash_with_open_file(workspace, state_dir, unsaved=True)
    b = await start_session(workspace, state_dir, "visual-studio-code")
    try:
        b.open("a.py", "a = 2\n")  # the editor's own buffer, unsaved text and all
        await b.command(P.CMD_STATUS, {})
        st = await b.wait_status(lambda st: st["state"] == "idle" and st["dirtyBuffers"] == 1, "reopened")
        assert st["resumeAvailable"] is False
    finally:
        await b.stop()


async def test_unsaved_text_stays_offered_until_it_comes_back(workspace: Path, state_dir: Path) -> None:
    await _crash_with_open_file(workspace, state_dir, unsaved=True)
    b = await start_session(workspace, state_dir, "visual-studio-code")
    try:
        await b.wait_status(lambda st: st["resumeAvailable"], "offered")
        await b.command(P.CMD_CHECKPOINT, {"message": "something else"})
        # Unsaved text is data: a checkpoint does not make the offer go away.
        st = await b.command(P.CMD_STATUS, {})
        assert st["resumeAvailable"] is True
        result = await b.command(P.CMD_RESUME, {})
        assert result["restoredBuffers"] == ["a.py"]
        await b.wait_status(lambda st: not st["resumeAvailable"], "used")
    finally:
        await b.stop()


async def test_unsaved_text_of_an_unresumed_session_is_carried_over(workspace: Path, state_dir: Path) -> None:
    """B never resumes and quits cleanly: A's unsaved text is still offered to C."""
    await _crash_with_open_file(workspace, state_dir, unsaved=True)
    b = await start_session(workspace, state_dir, "visual-studio-code")
    await b.wait_status(lambda st: st["resumeAvailable"], "offered to B")
    (workspace / "other.py").write_text("o = 1\n")
    b.open("other.py", "o = 1\n")
    await b.stop()
    c = await start_session(workspace, state_dir, "visual-studio-code")
    try:
        await c.wait_status(lambda st: st["resumeAvailable"], "still offered to C")
        result = await c.command(P.CMD_RESUME, {})
        assert result["restoredBuffers"] == ["a.py"]
        assert "other.py" in result["opened"]
        await aretry_until(lambda: c.edits, timeout=5, what="the edit")
    finally:
        await c.stop()
