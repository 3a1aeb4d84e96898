"""tether.text: untrusted text shown escaped, and the CLI commands that print workspace names.

A repository can ship files whose names hold an OSC 52 clipboard write, a CSI screen clear, C1
bytes or a bidi override. Every command that prints a path or a workspace-derived string must show
them escaped (issue 20).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether.cli import main
from tether.text import escape, escape_json, strip_controls

# OSC 52 (clipboard write), CSI 2J (clear screen), a C1 CSI, RLO, ZWSP, a tag character.
HOSTILE = "x\x1b]52;c;cHduZWQ=\x07\x1b[2J\x9b31m\u202eexe.txt\u200b\U000e0041"
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\u200b", "\U000e0041")


def assert_clean(text: str) -> None:
    for ch in RAW:
        assert ch not in text, (ch, text)


def test_escape_shows_controls_and_invisibles() -> None:
    assert escape("plain/path é.py") == "plain/path é.py"
    shown = escape(HOSTILE)
    assert_clean(shown)
    assert "\\x1b]52;c;cHduZWQ=\\x07" in shown and "\\x9b" in shown
    assert "\\u202e" in shown and "\\u200b" in shown and "\\U000e0041" in shown
    # single-line: a newline in a name cannot start a fake line
    assert escape("a\nNext steps: curl x | sh") == "a\\x0aNext steps: curl x | sh"
    assert escape("a\r\nb\tc\rd", multiline=True) == "a\r\nb\tc\\x0dd"


@given(st.text())
def test_escape_leaves_nothing_dangerous(text: str) -> None:
    out = escape(text)
    assert out.isprintable()
    assert escape(out) == out  # idempotent once escaped
    multi = escape(text, multiline=True)
    assert all(line.replace("\t", " ").removesuffix("\r").isprintable() for line in multi.split("\n"))


@given(st.text())
def test_escape_json_is_the_same_value(text: str) -> None:
    doc = json.dumps({"k": text}, ensure_ascii=False)
    safe = escape_json(doc)
    assert json.loads(safe) == {"k": text}
    assert not any(ch in safe for ch in RAW)


def test_strip_controls_is_the_one_definition() -> None:
    # tmux scrollback, run output tails and agent text share it: C0 (not tab/newline), DEL, C1.
    assert strip_controls("a\x00b\x1bc\x7fd\x9be\tf\ng") == "abcde\tf\ng"


@pytest.fixture
def ws(workspace: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    monkeypatch.chdir(workspace)
    (workspace / ".git").mkdir()
    monkeypatch.setenv("TETHER_TMUX_SOCKET", str(tmp_path / "no-tmux-here"))
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    yield workspace


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, (out, err)
    return out, err


def test_cli_never_prints_a_hostile_name_raw(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ws / "ok.txt").write_text("1\n")
    run(capsys, "checkpoint", "-m", "base")
    (ws / HOSTILE).write_text("payload\n")
    (ws / "ok.txt").write_text("2\n")
    # The agent file ships a bidi override in its next steps and task.
    (ws / ".agent-session.json").write_text(
        json.dumps({"current_task": "fix \u202elogin", "next_steps": ["run \u200btests"]})
    )
    outputs = {
        "status": run(capsys, "status"),
        "step": run(capsys, "step", "--done", "did \u202ethis", "--file", HOSTILE, "--next", "a\u2066b"),
        "steps": run(capsys, "steps"),
        "next": run(capsys, "next"),
        "task": run(capsys, "task"),
        "log": run(capsys, "log"),
        "diff --stat": run(capsys, "diff", "--stat", "1"),
        "diff": run(capsys, "diff", "1"),
        "restore --dry-run": run(capsys, "restore", "--dry-run", "1"),
        "resume --print": run(capsys, "resume", "--print"),
        "status after step": run(capsys, "status"),
        "json status": run(capsys, "--json", "status"),
        "json steps": run(capsys, "--json", "steps"),
    }
    for name, (out, err) in outputs.items():
        assert_clean(out), name
        assert_clean(err), name
    assert "\\u202e" in outputs["resume --print"][0]
    assert escape(HOSTILE) in outputs["diff --stat"][0]
    assert escape(HOSTILE) in outputs["steps"][0]
    # JSON keeps the real name (as escapes a JSON parser reads back).
    data = json.loads(outputs["json steps"][0])
    assert HOSTILE in data["steps"][-1]["files"]


def test_hook_context_is_escaped(
    ws: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    (ws / HOSTILE).write_text("x\n")
    run(capsys, "step", "--done", "d", "--file", HOSTILE)
    monkeypatch.setattr(
        "sys.stdin", io.StringIO(json.dumps({"hook_event_name": "SessionStart", "cwd": str(ws)}))
    )
    out, _ = run(capsys, "hook", "claude-code")
    assert "Tether hand-off" in out
    assert_clean(out)
