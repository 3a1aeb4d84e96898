""".agent-session.json written by the agent and by Tether at the same time, from separate processes.

- An agent writing atomically (temp + rename) and two Tether processes recording steps in a loop:
  every read of the file parses, no step is lost, the agent's last write survives in the file.
- An agent that also writes garbage in place: Tether never takes it, keeps the last good state,
  and ends on the agent's last good write.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tether.agent.session import AgentSession
from tether.scan.result import AGENT_FILE
from tether.store.db import Store

ROUNDS = 40

AGENT = textwrap.dedent(
    """
    import json, os, sys, time
    ws, rounds, garbage_every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    path = os.path.join(ws, ".agent-session.json")
    for i in range(rounds):
        doc = {"current_task": "agent task", "files_in_progress": ["src/a.py"],
               "next_steps": [f"agent-{i}"], "environment": "dev",
               "last_checkpoint": None, "agent_counter": i, "agent_blob": {"i": i, "k": [i, "x"]}}
        if garbage_every and i % garbage_every == garbage_every - 1:
            with open(path, "w") as fh:  # in place, half a document: what a careless agent does
                fh.write('{"current_task": "GARBAGE", "next_steps": [')
            time.sleep(0.01)
        tmp = f"{path}.agent.tmp"
        with open(tmp, "w") as fh:
            json.dump(doc, fh)
        os.replace(tmp, path)
        time.sleep(0.005)
    print("agent done", flush=True)
    """
)

TETHER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from tether.agent.session import AgentSession
    from tether.checkpoints.checkpointer import Checkpointer
    from tether.store.db import Store
    ws, state, tag, rounds = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    with Store.open(ws, state) as store:
        session = AgentSession(store)
        cp = Checkpointer(store)
        cp.add_provider("agent", session.provider)
        for i in range(rounds):
            (ws / f"{tag}.txt").write_text(f"{tag} {i}\\n")
            session.record_step(cp, f"{tag}-{i}")
    print("tether done", flush=True)
    """
)


def spawn(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, f"{p.args}\n{out}\n{err}"


def test_agent_and_two_tether_processes(workspace: Path, state_dir: Path) -> None:
    (workspace / "src").mkdir()
    (workspace / "src" / "a.py").write_text("a\n")
    path = workspace / AGENT_FILE
    procs = [
        spawn(AGENT, str(workspace), str(ROUNDS), "0"),
        spawn(TETHER, str(workspace), str(state_dir), "t1", str(ROUNDS // 2)),
        spawn(TETHER, str(workspace), str(state_dir), "t2", str(ROUNDS // 2)),
    ]
    reads = 0
    try:
        # Read the file as a third party would, the whole time the writers run.
        while any(p.poll() is None for p in procs):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            doc = json.loads(data)  # every read parses: all writers replace the file atomically
            assert isinstance(doc, dict) and "agent_counter" in doc
            reads += 1
    finally:
        finish(procs)
    assert reads > 0
    with Store.open(workspace, state_dir) as store:
        session = AgentSession(store)
        session.import_file()
        session.write_file()
        state = session.state()
        messages = sorted(s.message for s in state.steps)
        expected = sorted([f"t1-{i}" for i in range(ROUNDS // 2)] + [f"t2-{i}" for i in range(ROUNDS // 2)])
        assert messages == expected  # no lost step
        assert all(s.checkpoint for s in state.steps)
        # The agent's last write survived every Tether rewrite.
        assert state.extra["agent_counter"] == ROUNDS - 1
        assert state.next_steps == [f"agent-{ROUNDS - 1}"]
        doc = json.loads(path.read_text())
        assert doc["agent_counter"] == ROUNDS - 1 and doc["agent_blob"] == {
            "i": ROUNDS - 1,
            "k": [ROUNDS - 1, "x"],
        }
        assert doc["next_steps"] == [f"agent-{ROUNDS - 1}"]
        assert doc["last_checkpoint"] == state.last_checkpoint
    assert not [p for p in workspace.iterdir() if p.name.endswith(".tmp")]


def test_agent_writing_garbage_never_wins(workspace: Path, state_dir: Path) -> None:
    path = workspace / AGENT_FILE
    agent = spawn(AGENT, str(workspace), str(ROUNDS), "4")
    seen_tasks: set[str | None] = set()
    with Store.open(workspace, state_dir) as store:
        session = AgentSession(store)
        deadline = time.monotonic() + 120
        while agent.poll() is None and time.monotonic() < deadline:
            session.import_file()
            seen_tasks.add(session.state().task)
        finish([agent])
        session.import_file()
        state = session.state()
        assert "GARBAGE" not in seen_tasks
        assert state.task == "agent task" and state.extra["agent_counter"] == ROUNDS - 1
        assert state.warning is None  # the last write was good
        session.write_file()
    assert json.loads(path.read_text())["agent_counter"] == ROUNDS - 1
    # Garbage gives a clear warning and changes nothing.
    with Store.open(workspace, state_dir) as store:
        path.write_text('{"current_task": "GARBAGE", "next_steps": [')
        _, warning = AgentSession(store).import_file()
        assert warning is not None and "not valid JSON" in warning and "line 1" in warning
        assert AgentSession(store).state().task == "agent task"
