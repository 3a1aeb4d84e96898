"""`tether step / next / task / resume --print / status` in-process through tether.cli.main.

`tether run` spawns the command, so it is covered in tests/e2e/test_agent_script.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether import protocol
from tether.agent.runs import Run, save_run
from tether.checkpoints.checkpointer import Checkpointer
from tether.cli import main
from tether.scan.result import AGENT_FILE
from tether.store.db import Store


@pytest.fixture
def ws(workspace: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    monkeypatch.chdir(workspace)
    (workspace / ".git").mkdir()  # the root marker `tether` looks for
    # Nothing here may reach a real tmux server: point the link at a socket that does not exist,
    # and keep tmux off PATH so the unit tier starts no process (the tmux tier covers it).
    monkeypatch.setenv("TETHER_TMUX_SOCKET", str(tmp_path / "no-tmux-here"))
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    yield workspace


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_step_next_task_roundtrip(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ws / "a.py").write_text("x = 1\n")
    code, out, _ = cli(capsys, "step", "--done", "wrote a", "--next", "test a", "lint", "--task", "demo")
    assert code == 0
    assert "step recorded in checkpoint 1" in out and "1. test a" in out and "2. lint" in out
    code, out, _ = cli(capsys, "next")
    assert out == "1. test a\n2. lint\n"
    code, out, _ = cli(capsys, "--json", "next")
    assert json.loads(out) == {"task": "demo", "nextSteps": ["test a", "lint"]}
    code, out, _ = cli(capsys, "task")
    assert out == "demo\n"
    code, out, _ = cli(capsys, "task", "new task")
    assert json.loads((ws / AGENT_FILE).read_text())["current_task"] == "new task"
    code, out, _ = cli(capsys, "task", "--clear")
    assert out.startswith("no task recorded")


def test_step_json_and_repeatable_flags(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ws / "sub").mkdir()
    (ws / "sub" / "m.py").write_text("m\n")
    code, out, _ = cli(capsys, "step", "-d", "one", "-n", "a", "-n", "b", "--file", "sub/m.py", "--json")
    doc = json.loads(out)
    assert code == 0
    assert doc["checkpoint"]["trigger"] == "step" and doc["checkpoint"]["message"] == "one"
    assert doc["nextSteps"] == ["a", "b"] and doc["filesInProgress"] == ["sub/m.py"]
    assert doc["step"]["checkpoint"] == doc["checkpoint"]["id"]
    code, out, _ = cli(capsys, "step", "-d", "two", "--no-next")
    code, out, _ = cli(capsys, "next")
    assert out.startswith("no next steps recorded")


def test_step_file_paths_are_relative_to_cwd(
    ws: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (ws / "pkg").mkdir()
    (ws / "pkg" / "mod.py").write_text("1\n")
    monkeypatch.chdir(ws / "pkg")
    code, out, _ = cli(capsys, "--json", "step", "-d", "in a subdir", "--file", "mod.py")
    assert code == 0 and json.loads(out)["filesInProgress"] == ["pkg/mod.py"]


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["step"], 2, "--done"),
        (["step", "--done", ""], 2, "needs a message"),
        (["step", "--done", "x", "--file", "../../etc/passwd"], 3, "outside the workspace"),
        (["run"], 2, "nothing to run"),
        (["run", "--"], 2, "nothing to run"),
    ],
)
def test_step_bad_input(
    ws: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, needle: str
) -> None:
    try:
        got = main(argv)
    except SystemExit as exc:  # argparse usage errors
        got = int(exc.code or 0)
    _, err = capsys.readouterr()
    assert got == code and needle in err
    with Store.open(ws) as s:
        assert s.latest() is None  # nothing half-recorded


def test_malformed_state_file_warns_and_keeps_state(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ws / AGENT_FILE).write_text(json.dumps({"current_task": "good", "next_steps": ["n1"], "mine": 1}))
    cli(capsys, "next")
    (ws / AGENT_FILE).write_text('{"current_task": "bad",,}')
    code, out, err = cli(capsys, "next")
    assert code == 0 and out == "1. n1\n"
    assert f"warning: {AGENT_FILE}: not valid JSON" in err and "line 1, column 24" in err
    # A step rewrites the file from the last good state (unknown keys kept).
    cli(capsys, "step", "-d", "after garbage")
    doc = json.loads((ws / AGENT_FILE).read_text())
    assert doc["current_task"] == "good" and doc["mine"] == 1 and doc["next_steps"] == ["n1"]


def test_step_takes_in_the_agent_file_once_and_says_its_warning_once(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "step", "-d", "first", "-n", "mine")
    doc = json.loads((ws / AGENT_FILE).read_text())
    (ws / AGENT_FILE).write_text(json.dumps({**doc, "next_steps": ["the agent's"], "extra": 1}))
    code, out, err = cli(capsys, "--json", "step", "-d", "second")
    assert code == 0 and err == ""
    assert json.loads(out)["nextSteps"] == ["the agent's"] and json.loads(out)["warning"] is None
    (ws / AGENT_FILE).write_text('{"current_task": "bad",,}')
    code, out, err = cli(capsys, "--json", "step", "-d", "third")
    assert code == 0 and err.count(f"warning: {AGENT_FILE}: not valid JSON") == 1
    assert f"{AGENT_FILE}: not valid JSON" in json.loads(out)["warning"]
    doc = json.loads((ws / AGENT_FILE).read_text())  # rewritten from the last good state
    assert doc["next_steps"] == ["the agent's"] and doc["extra"] == 1
    (ws / AGENT_FILE).write_text('{"current_task": "bad",,}')  # the same bad content: said once
    code, out, err = cli(capsys, "--json", "step", "-d", "fourth")
    assert code == 0 and err == "" and json.loads(out)["warning"] is None


def test_resume_print_and_status(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ws / "a.py").write_text("1\n")
    cli(capsys, "step", "-d", "first", "-n", "run tests", "--task", "ship it", "-f", "a.py")
    with Store.open(ws) as s:
        cp = s.latest()
        assert cp is not None
        save_run(s, Run(0, ["pytest", "-q"], ".", 1, 2.0, "t", cp.id, ["E assert 1 == 2", "1 failed"]))
        Checkpointer(s).checkpoint(
            protocol.TRIGGER_MANUAL,
            allow_empty=True,
            extra_attachments={
                protocol.ATTACH_TMUX: json.dumps(
                    {
                        "windows": [
                            {"index": 0, "name": "agent", "panes": [{"index": 0, "history": ["pytest -q"]}]}
                        ]
                    }
                ).encode()
            },
        )
    (ws / "a.py").write_text("1\n2\n")
    code, out, _ = cli(capsys, "resume", "--print")
    assert code == 0
    assert "Task: ship it" in out and "1. run tests" in out
    assert "a.py  +1/-0" in out
    assert "`pytest -q` failed (exit 1) at checkpoint 1; 1 file changed since: a.py: re-run" in out
    assert "E assert 1 == 2" in out and "$ pytest -q" in out
    code, out, _ = cli(capsys, "resume", "--print", "--json")
    doc = json.loads(out)
    assert doc["runs"][0]["stale"] is True and doc["runs"][0]["changedSince"] == ["a.py"]
    assert doc["lastFailingRun"]["outputTail"] == ["E assert 1 == 2", "1 failed"]
    code, out, _ = cli(capsys, "status")
    assert "task       ship it" in out and "next       1. run tests" in out
    assert "run        `pytest -q` failed (exit 1)" in out and "agent.0: pytest -q" in out
    code, out, _ = cli(capsys, "status", "--json")
    doc = json.loads(out)
    assert doc["agent"]["task"] == "ship it" and doc["runs"][0]["command"] == "pytest -q"


def test_resume_without_tmux_degrades_clearly(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli(capsys, "task", "t")
    code, out, _ = cli(capsys, "resume")
    assert code == 0
    assert out.startswith("tmux: ") and "Task: t" in out


def test_a_failure_fixed_by_a_later_pass_is_not_the_last_failing_run(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (ws / "a.py").write_text("1\n")
    cli(capsys, "step", "-d", "s")
    with Store.open(ws) as s:
        save_run(s, Run(0, ["pytest"], ".", 1, 1.0, "t", 1, ["old failure"]))
        save_run(s, Run(0, ["ruff", "check"], ".", 1, 1.0, "t", 1, ["lint failure"]))
        save_run(s, Run(0, ["pytest"], ".", 0, 1.0, "t", 1, ["all passed"]))
    _, out, _ = cli(capsys, "resume", "--print")
    assert "Last failing run: `ruff check` (exit 1)" in out and "lint failure" in out
    assert "old failure" not in out


def test_plain_checkpoint_carries_agent_state_and_rewrites_the_file(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (ws / AGENT_FILE).write_text(json.dumps({"current_task": "from the agent", "next_steps": ["n"], "k": 1}))
    code, out, _ = cli(capsys, "--json", "checkpoint", "-m", "by hand")
    info = json.loads(out)
    assert code == 0
    with Store.open(ws) as s:
        att = s.attachment(info["id"], protocol.ATTACH_AGENT)
        assert att is not None and json.loads(att)["task"] == "from the agent"
    doc = json.loads((ws / AGENT_FILE).read_text())
    assert doc["last_checkpoint"] == info["time"] and doc["k"] == 1


def test_secrets_in_steps_next_steps_and_task_are_not_stored(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
    (ws / AGENT_FILE).write_text(json.dumps({"next_steps": [f"export GH_TOKEN={secret}"]}))
    code, _, _ = cli(capsys, "step", "-d", f"pushed with token={secret}", "--task", f"use password: {secret}")
    assert code == 0
    with Store.open(ws) as s:
        latest = s.latest()
        assert latest is not None
        blobs = [
            s.get_state("agent") or b"",
            s.attachment(latest.id, protocol.ATTACH_AGENT) or b"",
            (latest.message or "").encode(),
        ]
    assert all(secret.encode() not in b for b in blobs)
    assert b"[REDACTED]" in blobs[0]
    assert secret not in (ws / AGENT_FILE).read_text()


def test_task_environment(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "task", "t", "--environment", "staging")
    assert code == 0 and out == "t\nenvironment: staging\n"
    assert json.loads((ws / AGENT_FILE).read_text())["environment"] == "staging"


def test_status_imports_a_fresh_agent_file(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ws / AGENT_FILE).write_text(json.dumps({"current_task": "just written", "next_steps": ["go"]}))
    code, out, _ = cli(capsys, "status")
    assert code == 0 and "task       just written" in out and "next       1. go" in out


def test_steps_lists_the_step_log(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "steps")
    assert out.startswith("no steps recorded")
    (ws / "a.py").write_text("1\n")
    cli(capsys, "step", "-d", "one")
    (ws / "b.py").write_text("2\n")
    cli(capsys, "step", "-d", "two")
    code, out, _ = cli(capsys, "steps")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert "checkpoint 1" in lines[0] and "one  (a.py)" in lines[0]
    assert "checkpoint 2" in lines[1] and "two  (b.py)" in lines[1]
    code, out, _ = cli(capsys, "steps", "-n", "1", "--json")
    assert [s["message"] for s in json.loads(out)["steps"]] == ["two"]
