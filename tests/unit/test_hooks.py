"""`tether hook AGENT` output contracts, in-process: what each agent reads on the hook's stdout."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.cli import main
from tether.cli.hook import HANDOFF_CAP, cap_handoff
from tether.store.db import Store


@pytest.fixture
def ws(workspace: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    monkeypatch.chdir(workspace)
    (workspace / ".git").mkdir()
    monkeypatch.setenv("TETHER_TMUX_SOCKET", str(tmp_path / "no-tmux-here"))
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    for var in ("CLAUDE_PROJECT_DIR", "GEMINI_PROJECT_DIR"):
        monkeypatch.delenv(var, raising=False)
    yield workspace


def hook(
    kind: str,
    event: dict[str, object] | str,
    ws: Path,
    capsys: pytest.CaptureFixture[str],
    mp: pytest.MonkeyPatch,
) -> tuple[int, str, str]:
    body = event if isinstance(event, str) else json.dumps({"cwd": str(ws), "session_id": "s1", **event})
    mp.setattr("sys.stdin", io.StringIO(body))
    code = main(["hook", kind])
    out, err = capsys.readouterr()
    return code, out, err


def step(capsys: pytest.CaptureFixture[str], *argv: str) -> None:
    assert main(["step", *argv]) == 0
    capsys.readouterr()


def test_gemini_prints_json_with_the_context(
    ws: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing to hand off yet: still one JSON object, never plain text (Gemini would show it).
    code, out, _ = hook(
        "gemini", {"hook_event_name": "SessionStart", "source": "startup"}, ws, capsys, monkeypatch
    )
    assert code == 0 and json.loads(out) == {}
    step(capsys, "--done", "parser", "--next", "wire the CLI", "--task", "gemini demo")
    code, out, _ = hook(
        "gemini", {"hook_event_name": "SessionStart", "source": "startup"}, ws, capsys, monkeypatch
    )
    doc = json.loads(out)
    assert doc["hookSpecificOutput"]["hookEventName"] == "SessionStart"
    context = doc["hookSpecificOutput"]["additionalContext"]
    assert "Task: gemini demo" in context and "1. wire the CLI" in context

    # AfterTool checkpoints what changed and prints {}; AfterAgent records a step.
    (ws / "a.py").write_text("x = 1\n")
    event = {
        "hook_event_name": "AfterTool",
        "tool_name": "run_shell_command",
        "tool_input": {"command": "touch a.py"},
    }
    code, out, _ = hook("gemini", event, ws, capsys, monkeypatch)
    assert code == 0 and json.loads(out) == {}
    with Store.open(ws) as store:
        latest = store.latest()
        assert latest is not None and latest.files == ("a.py",)
        assert latest.message == "gemini run_shell_command: touch a.py"
    (ws / "b.py").write_text("y = 2\n")
    code, out, _ = hook("gemini", {"hook_event_name": "AfterAgent"}, ws, capsys, monkeypatch)
    assert json.loads(out) == {}
    with Store.open(ws) as store:
        latest = store.latest()
        assert latest is not None and latest.trigger == "step" and latest.message == "gemini: turn finished"


def test_codex_context_is_plain_text_and_stop_prints_json(
    ws: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    step(capsys, "--done", "parser", "--next", "wire the CLI", "--task", "codex demo")
    code, out, _ = hook("codex", {"hook_event_name": "SessionStart"}, ws, capsys, monkeypatch)
    assert code == 0 and out.startswith("# Tether hand-off") and "Task: codex demo" in out
    (ws / "c.py").write_text("z\n")
    code, out, _ = hook(
        "codex",
        {"hook_event_name": "PostToolUse", "tool_name": "shell", "tool_input": {"command": "x"}},
        ws,
        capsys,
        monkeypatch,
    )
    assert code == 0 and out == ""
    (ws / "d.py").write_text("w\n")
    code, out, _ = hook(
        "codex", {"hook_event_name": "Stop", "stop_hook_active": False}, ws, capsys, monkeypatch
    )
    assert code == 0 and json.loads(out) == {}
    with Store.open(ws) as store:
        latest = store.latest()
        assert latest is not None and latest.message == "codex: turn finished" and latest.files == ("d.py",)
    # Nothing changed: still JSON.
    code, out, _ = hook("codex", {"hook_event_name": "Stop"}, ws, capsys, monkeypatch)
    assert json.loads(out) == {}


@pytest.mark.parametrize("kind", ["claude-code", "codex", "gemini", "opencode"])
def test_hooks_never_fail_the_agent(
    ws: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str
) -> None:
    # Garbage on stdin: exit 0.
    code, out, _ = hook(kind, "not json {", ws, capsys, monkeypatch)
    assert code == 0
    # A store that cannot be opened (the state dir is a file): exit 0, the error on stderr, and
    # the agent still gets the output its contract needs.
    bad = tmp_path / "state-is-a-file"
    bad.write_text("x")
    monkeypatch.setenv("TETHER_STATE_DIR", str(bad / "sub"))
    name = {"gemini": "AfterAgent"}.get(kind, "Stop")
    code, out, err = hook(kind, {"hook_event_name": name}, ws, capsys, monkeypatch)
    assert code == 0 and err.startswith("tether hook: ")
    if kind in ("gemini", "codex"):
        assert json.loads(out) == {}
    else:
        assert out == ""


def test_session_start_context_stays_under_claudes_cap(
    ws: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    long_steps = [f"next step {i}: " + "do the thing carefully " * 8 for i in range(150)]
    step(capsys, "--done", "big plan", "--next", *long_steps, "--task", "t" * 3000)
    assert main(["resume", "--print"]) == 0
    full = capsys.readouterr().out
    assert len(full) > HANDOFF_CAP  # the case under test
    code, out, _ = hook("claude-code", {"hook_event_name": "SessionStart"}, ws, capsys, monkeypatch)
    assert code == 0 and len(out) <= HANDOFF_CAP
    assert out.rstrip().endswith("`tether resume --print` prints all of it)")
    assert out.startswith(full[:2000])
    code, out, _ = hook("gemini", {"hook_event_name": "SessionStart"}, ws, capsys, monkeypatch)
    assert len(json.loads(out)["hookSpecificOutput"]["additionalContext"]) <= HANDOFF_CAP


def test_cap_handoff_cuts_at_a_line() -> None:
    text = "\n".join(f"line {i:05d}" for i in range(5000))
    cut = cap_handoff(text, 1000)
    assert len(cut) <= 1000
    kept = cut.split("\n…")[0]
    assert text.startswith(kept) and kept.endswith(tuple("0123456789"))
    assert cap_handoff("short", 1000) == "short"


def test_a_hook_with_nothing_to_checkpoint_keeps_what_its_scan_learned(
    ws: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file checkpointed within the racy window is stored without its mtime, so the next
    # scan reads it again: once it is found unchanged, that hook keeps its stat (and the
    # directories it listed), so later hooks neither read it nor list again.
    import tether.store.head as store_head

    (ws / "src").mkdir()
    (ws / "src" / "a.py").write_text("x = 1\n")
    event = {"hook_event_name": "PostToolUse", "tool_name": "Write"}
    monkeypatch.setattr(store_head, "RACY_NS", 10**18)
    hook("claude-code", event, ws, capsys, monkeypatch)
    with Store.open(ws) as store:
        assert store.head(["src/a.py"])["src/a.py"][4] == 0  # mtime_ns not trusted yet
        first = store.latest()
    monkeypatch.setattr(store_head, "RACY_NS", 0)
    hook("claude-code", {**event, "tool_name": "Read"}, ws, capsys, monkeypatch)
    with Store.open(ws) as store:
        assert store.latest() == first  # nothing changed: no checkpoint
        assert store.head(["src/a.py"])["src/a.py"][4] == (ws / "src" / "a.py").stat().st_mtime_ns
        assert {"", "src"} <= {r.dir for r in store.scan_dirs()[1]}
