"""`tether step` and `tether hook` record the agent's conversation id; the hand-off names it."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.cli import main
from tether.conversations.record import ConversationLog

U = "1b2c3d4e-0000-4000-8000-000000000001"
V = "9f8e7d6c-0000-4000-8000-000000000002"


@pytest.fixture
def ws(workspace: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    monkeypatch.chdir(workspace)
    (workspace / ".git").mkdir()
    monkeypatch.setenv("TETHER_TMUX_SOCKET", str(tmp_path / "no-tmux-here"))
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    for var in ("CLAUDE_CODE_SESSION_ID", "CODEX_THREAD_ID", "GEMINI_SESSION_ID", "TETHER_PANE_ID"):
        monkeypatch.delenv(var, raising=False)
    yield workspace


def _log(ws: Path, state_dir: Path) -> ConversationLog:
    return ConversationLog.for_workspace(ws, state_dir)


def _hook(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], event: dict[str, object]
) -> str:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(event)))
    assert main(["hook", "claude-code"]) == 0
    return capsys.readouterr().out


def test_step_records_the_agents_env_id_and_the_handoff_names_it(
    ws: Path, state_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDE_CODE_SESSION_ID", U)
    monkeypatch.setenv("TETHER_PANE_ID", "pabc123")
    assert main(["step", "--done", "wrote tests", "--next", "fix lint"]) == 0
    got = _log(ws, state_dir).latest("claude")
    assert got is not None and (got.id, got.pane, got.source, got.cwd) == (U, "pabc123", "step", str(ws))
    capsys.readouterr()
    assert main(["resume", "--print", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(c["agent"], c["id"]) for c in data["conversations"]] == [("claude", U)]
    assert main(["resume", "--print"]) == 0
    assert f"Continues: claude conversation {U} in {ws}" in capsys.readouterr().out


def test_step_ignores_a_malformed_env_id(
    ws: Path, state_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEX_THREAD_ID", "x; rm -rf ~")
    assert main(["step", "--done", "a step"]) == 0
    assert _log(ws, state_dir).entries() == []


def test_hooks_record_session_id_and_session_start_names_the_previous_one(
    ws: Path, state_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (ws / "a.txt").write_text("x\n")
    event = {"hook_event_name": "PostToolUse", "session_id": U, "cwd": str(ws), "tool_name": "Write"}
    out = _hook(monkeypatch, capsys, {**event, "tool_input": {"file_path": "a.txt"}})
    assert out == ""
    assert [c.id for c in _log(ws, state_dir).entries()] == [U]
    assert main(["step", "--done", "something to hand off"]) == 0
    capsys.readouterr()
    # A new Claude session starts: its hand-off names the conversation this work continues...
    out = _hook(monkeypatch, capsys, {"hook_event_name": "SessionStart", "session_id": V, "cwd": str(ws)})
    assert f"Continues: claude conversation {U}" in out and V not in out
    # ...and the new one is recorded after it.
    latest = _log(ws, state_dir).latest("claude")
    assert latest is not None and latest.id == V and latest.source == "hook"


def test_hook_with_a_hostile_session_id_records_nothing_and_exits_0(
    ws: Path, state_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for bad in (U + "\n", "$(touch pwned)", 42, None):
        _hook(monkeypatch, capsys, {"hook_event_name": "Stop", "session_id": bad, "cwd": str(ws)})
    assert _log(ws, state_dir).entries() == []
