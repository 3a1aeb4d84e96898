"""JSON nested too deep is refused like malformed JSON (issue 20): an unknown key of
.agent-session.json holding an array ~980 deep used to end `tether step` and `tether task` in a
RecursionError traceback when the state was written back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.agent.session import AgentSession
from tether.agent.session_file import parse_session_file
from tether.cli import main
from tether.jsonsafe import MAX_DEPTH, JsonTooDeepError, depth_exceeds, loads
from tether.scan.result import AGENT_FILE
from tether.store.db import Store


def deep(n: int) -> str:
    return "[" * n + "]" * n


def test_loads_refuses_deep_documents() -> None:
    assert loads(deep(MAX_DEPTH)) is not None
    with pytest.raises(JsonTooDeepError):
        loads(deep(MAX_DEPTH + 1))
    with pytest.raises(ValueError, match="nested deeper"):
        loads('{"a": ' + deep(980) + "}")
    with pytest.raises(ValueError, match="nested deeper"):
        loads(deep(200_000))  # the C parser's own RecursionError, turned into a ValueError
    assert not depth_exceeds({"a": [{"b": 1}]}, 3) and depth_exceeds({"a": [{"b": []}]}, 3)


def test_session_file_too_deep_is_a_warning(workspace: Path) -> None:
    raw = ('{"current_task": "t", "x": ' + deep(980) + "}").encode()
    patch, problem = parse_session_file(raw, workspace)
    assert patch is None and problem is not None and "nested deeper" in problem


@pytest.fixture
def ws(workspace: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    monkeypatch.chdir(workspace)
    (workspace / ".git").mkdir()
    monkeypatch.setenv("TETHER_TMUX_SOCKET", str(tmp_path / "no-tmux-here"))
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    yield workspace


def test_step_and_task_survive_a_deep_agent_file(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["task", "keep me"]) == 0
    (ws / AGENT_FILE).write_text('{"current_task": "evil", "x": ' + deep(980) + "}")
    capsys.readouterr()
    assert main(["step", "--done", "did it", "--next", "then"]) == 0
    out, err = capsys.readouterr()
    assert "step recorded" in out and "nested deeper" in err and "Traceback" not in err
    assert main(["task"]) == 0
    out, _ = capsys.readouterr()
    assert out == "keep me\n"  # the last good state stays
    with Store.open(ws) as store:
        assert AgentSession(store).state().task == "keep me"
    # Tether rewrote the file from its good state: it parses again.
    assert json.loads((ws / AGENT_FILE).read_text())["current_task"] == "keep me"
