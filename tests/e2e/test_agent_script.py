"""A script plays an agent: shell edits, `tether step`, `tether run`; and docs/agents.md's snippets
are executed as written.

The agents themselves (Claude Code, aider, Codex) cannot run here: their side of the contract
(when hooks fire, the JSON on stdin) is taken from their documentation. Everything on Tether's
side (the hook command lines, the git hook, the aider command lines, the wrapper) runs for real.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.terminal import read_terminal
from tether import protocol
from tether.agent.model import parse_attachment
from tether.agent.runs import load_runs
from tether.agent.session import AgentSession
from tether.scan.result import AGENT_FILE
from tether.store.db import Store

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TETHER = BIN / "tether"
DOC = ROOT / "docs" / "agents.md"


@pytest.fixture
def env(state_dir: Path, tmp_path: Path) -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{BIN}:{e.get('PATH', '/usr/bin:/bin')}"
    e["TETHER_STATE_DIR"] = str(state_dir)
    # Never the user's tmux server: a socket path where no server runs.
    e["TETHER_TMUX_SOCKET"] = str(tmp_path / "no-tmux")
    for k in ("TMUX", "TMUX_PANE"):
        e.pop(k, None)
    return e


@pytest.fixture
def ws(workspace: Path, env: dict[str, str]) -> Iterator[Path]:
    subprocess.run(["git", "init", "-q", str(workspace)], check=True, env=env)
    yield workspace


def sh(
    script: str, cwd: Path, env: dict[str, str], stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        ["bash", "-c", script],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and res.returncode != 0:
        raise AssertionError(
            f"script failed ({res.returncode}):\n{script}\n--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}"
        )
    return res


def snippet(name: str) -> str:
    """The fenced block right after ``<!-- snippet: NAME -->`` in docs/agents.md."""
    text = DOC.read_text()
    m = re.search(rf"<!-- snippet: {re.escape(name)} -->\s*```[a-z]*\n(.*?)```", text, re.DOTALL)
    assert m, f"snippet {name} missing from {DOC}"
    return m.group(1)


def open_store(ws: Path, env: dict[str, str]) -> Store:
    return Store.open(ws, env["TETHER_STATE_DIR"])


# --- the agent script --------------------------------------------------------------------------


AGENT_SCRIPT = r"""
set -eu
printf 'def add(a, b):\n    return a + b\n' > calc.py
printf 'scratch\n' > notes.txt
printf 'legacy\n' > old.txt
tether step --done "scaffold calc" --next "add tests" --task "build a calculator"

# Shell edits only: no editor, nothing told to Tether.
sed -i 's/a + b/b + a/' calc.py
printf 'def test_add():\n    from calc import add\n    assert add(1, 2) == 3\n' >> test_calc.py
mkdir -p docs && mv notes.txt docs/notes.md
rm old.txt
python3 -c 'open("gen.json", "w").write("{\"generated\": true}\n")'
printf 'ignored\n' > debug.log && printf '*.log\n' > .gitignore
tether step --done "tests, moves, generated file" --next "run the tests" "open a PR"
"""


def test_agent_script_shell_edits_land_in_the_step_checkpoint(ws: Path, env: dict[str, str]) -> None:
    out = sh(AGENT_SCRIPT, ws, env).stdout
    assert "step recorded in checkpoint 2" in out
    with open_store(ws, env) as store:
        info = store.latest()
        assert info is not None and info.trigger == protocol.TRIGGER_STEP
        assert info.message == "tests, moves, generated file"
        assert set(info.files) == {
            "calc.py",
            "test_calc.py",
            "notes.txt",
            "docs/notes.md",
            "old.txt",
            "gen.json",
            ".gitignore",
        }
        manifest = store.manifest(info.id)
        # The checkpoint holds exactly what is on disk.
        for path in ("calc.py", "test_calc.py", "docs/notes.md", "gen.json", ".gitignore"):
            assert store.read_blob(manifest[path].hash) == (ws / path).read_bytes(), path
        assert "notes.txt" not in manifest and "old.txt" not in manifest and "debug.log" not in manifest
        assert b"b + a" in store.read_blob(manifest["calc.py"].hash)
        att = store.attachment(info.id, protocol.ATTACH_AGENT)
        assert att is not None
        state, _ = parse_attachment(att, info.id)
        assert state.task == "build a calculator"
        assert [s.message for s in state.steps] == ["scaffold calc", "tests, moves, generated file"]
        assert state.steps[-1].checkpoint == info.id
        assert state.next_steps == ["run the tests", "open a PR"]
    doc = json.loads((ws / AGENT_FILE).read_text())
    assert doc["current_task"] == "build a calculator" and doc["next_steps"] == ["run the tests", "open a PR"]
    # The hand-off an agent would read next session.
    hand = sh("tether resume --print", ws, env).stdout
    assert "Task: build a calculator" in hand and "1. run the tests" in hand
    assert "tests, moves, generated file (checkpoint 2" in hand


def test_runs_exit_codes_validity_and_staleness(ws: Path, env: dict[str, str]) -> None:
    sh("printf 'x = 1\\n' > app.py && tether step --done start", ws, env)
    fail = sh(
        'tether run -- python3 -c \'import sys; print("boom"); '
        'print("token=ghp_abcdefghijklmnopqrstuvwxyz012345"); sys.exit(3)\'',
        ws,
        env,
        check=False,
    )
    assert fail.returncode == 3
    assert "boom" in fail.stdout  # the user sees the output
    assert "run 1 recorded" in fail.stderr and "exit 3" in fail.stderr
    ok = sh("tether run -- python3 -c 'print(\"fine\")'", ws, env)
    assert ok.returncode == 0 and "fine" in ok.stdout
    missing = sh("tether run -- no-such-command-xyz --flag", ws, env, check=False)
    assert missing.returncode == 127
    status = sh("tether status", ws, env).stdout
    assert "`python3 -c 'print(\"fine\")'` passed at checkpoint" in status
    assert "no tracked file changed since: no need to re-run" in status
    # The agent edits through the shell: the passing run goes stale, naming the file.
    sh("printf 'x = 2\\n' > app.py", ws, env)
    status = sh("tether --json status", ws, env).stdout
    runs = {r["command"]: r for r in json.loads(status)["runs"]}
    fine = runs["python3 -c 'print(\"fine\")'"]
    assert fine["stale"] and fine["changedSince"] == ["app.py"]
    assert "1 file changed since: app.py: re-run" in fine["summary"]
    with open_store(ws, env) as store:
        recorded = load_runs(store)
        assert [r.exit_code for r in recorded] == [3, 0, 127]
        assert recorded[0].output_tail[0] == "boom"
        assert "ghp_" not in json.dumps([r.to_json() for r in recorded])
        assert recorded[0].cwd == "."
        # The run's checkpoint is the tree it ran on.
        cp = recorded[1].checkpoint
        assert cp is not None
        assert store.read_blob(store.manifest(cp)["app.py"].hash) == b"x = 1\n"
    hand = sh("tether resume --print", ws, env).stdout
    assert "Last failing run: `no-such-command-xyz --flag` (exit 127)" in hand
    assert "command not found: no-such-command-xyz" in hand


def test_manual_checkpoint_carries_the_agent_state(ws: Path, env: dict[str, str]) -> None:
    """`tether checkpoint` (the files group) still stores the task and next steps and rewrites
    .agent-session.json, although the agent group is imported only when it is needed."""
    sh("printf 'x\\n' > a.py && tether task 'ship the parser'", ws, env)
    sh("tether step --done start --next 'write docs'", ws, env)
    (ws / "a.py").write_text("y\n")
    out = sh("tether --json checkpoint -m by-hand", ws, env).stdout
    n = json.loads(out)["id"]
    with open_store(ws, env) as store:
        att = store.attachment(n, protocol.ATTACH_AGENT)
        assert att is not None, "the manual checkpoint lost the agent state"
        state, _ = parse_attachment(att, n)
        assert state.task == "ship the parser" and state.next_steps == ["write docs"]
    doc = json.loads((ws / AGENT_FILE).read_text())
    assert doc["last_checkpoint"] and doc["next_steps"] == ["write docs"]


def test_run_under_a_terminal_uses_a_pty(ws: Path, env: dict[str, str]) -> None:
    """With a terminal on stdout the command gets a terminal too (colours, progress bars)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            str(TETHER),
            "run",
            "--",
            "python3",
            "-c",
            "import sys; print('tty', sys.stdout.isatty()); sys.exit(5)",
        ],
        cwd=ws,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    try:
        seen = read_terminal(master, proc, 60)
        assert proc.wait(timeout=30) == 5
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert b"tty True" in seen
    with open_store(ws, env) as store:
        [run] = load_runs(store)
        assert run.output_tail == ["tty True"] and run.exit_code == 5


# --- docs/agents.md snippets, executed ---------------------------------------------------------


def claude_hooks() -> dict[str, list[tuple[str | None, str]]]:
    settings = json.loads(snippet("claude-code-settings"))
    out: dict[str, list[tuple[str | None, str]]] = {}
    for event, groups in settings["hooks"].items():
        for group in groups:
            for hook in group["hooks"]:
                assert hook["type"] == "command"
                out.setdefault(event, []).append((group.get("matcher"), hook["command"]))
    return out


def fire(
    event: str, payload: dict[str, object], ws: Path, env: dict[str, str], tool: str | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """Run every hook command Claude Code would run for ``event``, as it runs them."""
    results = []
    for matcher, command in claude_hooks()[event]:
        if tool is not None and matcher not in (None, "", "*") and not re.fullmatch(matcher, tool):
            continue
        hook_env = {**env, "CLAUDE_PROJECT_DIR": str(ws)}
        body = {
            "session_id": "s1",
            "transcript_path": "/dev/null",
            "cwd": str(ws),
            "hook_event_name": event,
            **payload,
        }
        res = subprocess.run(
            ["bash", "-c", command],
            check=False,
            cwd=ws,
            env=hook_env,
            input=json.dumps(body),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, res.stderr
        results.append(res)
    return results


def test_claude_code_hooks_from_the_docs(ws: Path, env: dict[str, str]) -> None:
    hooks = claude_hooks()
    assert set(hooks) == {"SessionStart", "PostToolUse", "PostToolUseFailure", "Stop"}
    # Every tool, MCP tools included ("*" is Claude Code's match-all).
    assert hooks["PostToolUse"][0][0] == "*" and hooks["PostToolUseFailure"][0][0] == "*"

    # A first session in a workspace Tether knows nothing about: nothing is added to the context.
    [empty] = fire("SessionStart", {"source": "startup"}, ws, env)
    assert empty.stdout == ""
    sh(
        "printf 'v1\\n' > main.py && tether step --done 'first' --next 'wire the CLI' --task 'hooks demo'",
        ws,
        env,
    )
    # A new session: the hand-off goes to Claude's context through SessionStart's stdout.
    [start] = fire("SessionStart", {"source": "startup"}, ws, env)
    assert "Task: hooks demo" in start.stdout and "1. wire the CLI" in start.stdout

    # Claude edits through Bash (which its own checkpoints do not track).
    with open_store(ws, env) as store:
        before = store.latest()
        assert before is not None
    cmd = "sed -i s/v1/v2/ main.py && API_TOKEN=sk-abcdefghijklmnop1234 make"
    sh("sed -i s/v1/v2/ main.py", ws, env)
    fire(
        "PostToolUse",
        {"tool_name": "Bash", "tool_input": {"command": cmd}, "tool_response": {}},
        ws,
        env,
        "Bash",
    )
    with open_store(ws, env) as store:
        after = store.latest()
        assert after is not None and after.id == before.id + 1
        assert after.files == ("main.py",)
        assert after.message is not None and after.message.startswith("claude Bash: sed -i s/v1/v2/ main.py")
        assert "sk-abcdefghijklmnop1234" not in after.message
        assert store.read_blob(store.manifest(after.id)["main.py"].hash) == b"v2\n"
    # A tool that changed nothing makes no checkpoint.
    fire("PostToolUse", {"tool_name": "Bash", "tool_input": {"command": "ls"}}, ws, env, "Bash")
    # Nor does a Read or an MCP tool that changed nothing (they are matched: the scan is cheap).
    fire("PostToolUse", {"tool_name": "Read", "tool_input": {"file_path": "main.py"}}, ws, env, "Read")
    fire("PostToolUse", {"tool_name": "mcp__tether__status", "tool_input": {}}, ws, env, "mcp__x__y")
    with open_store(ws, env) as store:
        latest = store.latest()
        assert latest is not None and latest.id == after.id

    # A Bash command that edits and then fails: PostToolUse does not fire, PostToolUseFailure does.
    sh("sed -i s/v2/v3/ main.py", ws, env)
    fire(
        "PostToolUseFailure",
        {
            "tool_name": "Bash",
            "tool_input": {"command": "sed -i s/v2/v3/ main.py && pytest"},
            "error": "exit 1",
        },
        ws,
        env,
        "Bash",
    )
    with open_store(ws, env) as store:
        failed = store.latest()
        assert failed is not None and failed.id == after.id + 1 and failed.files == ("main.py",)
        assert failed.message is not None and failed.message.startswith("claude Bash: sed -i s/v2/v3/")
        latest = failed

    # End of the turn: a step when something changed during it.
    (ws / "extra.py").write_text("e\n")
    fire("Stop", {"stop_hook_active": False}, ws, env)
    with open_store(ws, env) as store:
        latest = store.latest()
        assert latest is not None and latest.trigger == "step" and latest.message == "claude: turn finished"
        assert latest.files == ("extra.py",)
        steps = AgentSession(store).state().steps
        assert steps[-1].message == "claude: turn finished"
    fire("Stop", {"stop_hook_active": True}, ws, env)
    fire("Stop", {}, ws, env)  # nothing changed since
    with open_store(ws, env) as store:
        assert store.latest() == latest

    # Garbage on stdin never fails the agent.
    for _, command in hooks["Stop"]:
        res = subprocess.run(
            ["bash", "-c", command],
            check=False,
            cwd=ws,
            env=env,
            input="{not json",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0


def test_git_post_commit_hook_from_the_docs(ws: Path, env: dict[str, str]) -> None:
    hook = ws / ".git" / "hooks" / "post-commit"
    hook.write_text(snippet("git-post-commit"))
    hook.chmod(0o755)
    genv = {
        **env,
        "GIT_AUTHOR_NAME": "a",
        "GIT_AUTHOR_EMAIL": "a@x",
        "GIT_COMMITTER_NAME": "a",
        "GIT_COMMITTER_EMAIL": "a@x",
    }
    sh("printf 'one\\n' > f.py && git add f.py && git commit -qm 'add f'", ws, genv)
    sh("printf 'two\\n' >> f.py && git commit -qam 'grow f; \"quotes\" $HOME `x`'", ws, genv)
    sha = sh("git rev-parse --short HEAD", ws, genv).stdout.strip()
    with open_store(ws, env) as store:
        steps = AgentSession(store).state().steps
        assert [s.message for s in steps] == [
            steps[0].message,
            f'commit {sha}: grow f; "quotes" $HOME `x`',
        ]
        assert steps[0].message.endswith(": add f")
        assert store.read_blob(store.manifest(store.latest().id)["f.py"].hash) == b"one\ntwo\n"  # type: ignore[union-attr]


def test_aider_command_lines_from_the_docs(ws: Path, env: dict[str, str]) -> None:
    conf = dict(line.split(": ", 1) for line in snippet("aider-conf").strip().splitlines())
    assert conf["auto-test"] == "true"
    (ws / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    (ws / "bad.py").write_text("import os\n")  # unused import: ruff reports F401
    # aider runs test-cmd as a shell command, and lint-cmd with the edited files appended.
    test = sh(conf["test-cmd"] + " -p no:cacheprovider", ws, env, check=False)
    lint = sh(conf["lint-cmd"] + " --no-cache bad.py", ws, env, check=False)
    assert test.returncode == 0, test.stdout + test.stderr
    assert lint.returncode == 1 and "F401" in lint.stdout
    with open_store(ws, env) as store:
        runs = load_runs(store)
        assert [(r.command[0], r.exit_code) for r in runs] == [("pytest", 0), ("ruff", 1)]
        assert any("F401" in line for line in runs[1].output_tail)


def test_wrapper_function_from_the_docs(ws: Path, env: dict[str, str]) -> None:
    script = snippet("wrapper") + "\nagent_with_tether sh -c 'echo hi > w.txt; exit 3'\necho rc=$?\n"
    out = sh(script, ws, env).stdout
    assert "rc=3" in out
    with open_store(ws, env) as store:
        info = store.latest()
        assert info is not None and info.message == "agent run: sh (exit 3)" and info.files == ("w.txt",)


def test_instruction_block_names_real_commands(ws: Path, env: dict[str, str]) -> None:
    block = snippet("agent-instructions")
    names = set(re.findall(r"`tether ([a-z]+)", block))
    assert names == {"resume", "step", "run", "status"}
    for name in names:
        assert sh(f"tether {name} --help", ws, env).returncode == 0
    assert shutil.which("tether", path=env["PATH"])


def test_ctrl_c_during_a_run_is_recorded_and_passed_through(ws: Path, env: dict[str, str]) -> None:
    """Ctrl-C reaches the whole foreground process group: the command stops, the run is kept."""
    code = "import time; print('ready', flush=True); time.sleep(60)"
    proc = subprocess.Popen(
        [str(TETHER), "run", "--", "python3", "-c", code],
        cwd=ws,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, like a shell job
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready and proc.stdout.readline() == b"ready\n"
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    with open_store(ws, env) as store:
        [run] = load_runs(store)
        assert run.exit_code == 130 and run.output_tail[0] == "ready"


def test_a_run_that_leaves_a_background_process_still_ends(
    ws: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """`cmd &` keeps the output pipe open after the command exits: the run must not wait for it."""
    out_file = tmp_path / "out.txt"
    with out_file.open("wb") as out:
        proc = subprocess.Popen(
            [str(TETHER), "run", "--", "sh", "-c", "sleep 120 & echo bg=$!; echo started"],
            cwd=ws,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    text = out_file.read_text()
    [pid] = re.findall(r"bg=(\d+)", text)
    os.kill(int(pid), signal.SIGKILL)  # the background sleep this test started
    assert "started" in text
    with open_store(ws, env) as store:
        [run] = load_runs(store)
        assert run.exit_code == 0 and run.output_tail[-1] == "started"
