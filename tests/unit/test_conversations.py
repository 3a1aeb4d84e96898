"""Agent detection, id validation, resume argv building and the durable conversation record."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tether.conversations import agents as cv_agents
from tether.conversations import probe as cv_probe
from tether.conversations import record as cv_record
from tether.conversations.probe import PaneAgent
from tether.conversations.record import ConversationLog

U = "1b2c3d4e-0000-4000-8000-000000000001"
OC = "ses_4f2a9c1d7e3b5a8c0d1e2f3a4b"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["claude"], ("claude", 0)),
        (["/usr/local/bin/claude", "--model", "opus"], ("claude", 0)),
        (["node", "/x/node_modules/.bin/codex"], ("codex", 1)),
        (
            ["/usr/bin/node", "--max-old-space-size=12052", "/x/@google/gemini-cli/bundle/gemini.js"],
            ("gemini", 2),
        ),
        (["opencode"], ("opencode", 0)),
        (["python3", "-m", "aider", "a.py"], ("aider", 2)),
        (["/home/u/.local/bin/aider"], ("aider", 0)),
        (["node", "/x/node_modules/@github/copilot/npm-loader.js"], ("copilot", 1)),
        (["vim", "claude.txt"], None),
        (["python3", "-m", "http.server"], None),
        (["node", "server.js"], None),
        (["python3", "/home/u/claude.py"], None),  # a Python script is not Claude Code
        (["node", "/x/aider"], None),
        ([], None),
    ],
)
def test_detect_agent(argv: list[str], expected: tuple[str, int] | None) -> None:
    assert cv_agents.detect_agent(argv) == expected


@pytest.mark.parametrize(
    ("agent", "value", "ok"),
    [
        ("claude", U, True),
        ("claude", U.upper(), True),
        ("codex", U, True),
        ("gemini", U, True),
        ("copilot", U, True),
        ("opencode", OC, True),
        ("opencode", U, False),
        ("claude", OC, False),
        ("claude", U + "; rm -rf ~", False),
        ("claude", U + "\n", False),
        ("claude", "$(touch x)", False),
        ("claude", "my-session-name", False),  # claude --resume takes names too: never ours to type
        ("aider", U, False),
        ("claude", 12, False),
        ("unknown", U, False),
    ],
)
def test_valid_id(agent: str, value: object, ok: bool) -> None:
    assert (cv_agents.valid_id(agent, value) is not None) is ok


@pytest.mark.parametrize(
    ("agent", "argv", "cid", "expected"),
    [
        # Claude: other flags kept, prompt / -p / old resume / continue dropped, variadic kept whole.
        ("claude", ["claude", "--model", "opus", "fix the bug"], U,
         ["claude", "--model", "opus", "--resume", U]),
        ("claude", ["claude", "-c"], U, ["claude", "--resume", U]),
        ("claude", ["claude", "--resume", "old-name", "--model=opus"], U,
         ["claude", "--model=opus", "--resume", U]),
        ("claude", ["claude", "-r"], U, ["claude", "--resume", U]),
        ("claude", ["claude", "-p", "one shot", "--permission-mode", "plan"], U,
         ["claude", "--permission-mode", "plan", "--resume", U]),
        ("claude", ["claude", "--add-dir", "a", "b", "--session-id", U, "hi"], U,
         ["claude", "--add-dir", "a", "b", "--resume", U]),
        ("claude", ["claude", "mcp", "list"], U, None),
        ("claude", ["claude"], "x; rm -rf ~", None),
        # Codex: `codex resume ID`, global options kept, prompt and an old resume replaced.
        ("codex", ["codex", "-m", "o3", "write tests"], U, ["codex", "-m", "o3", "resume", U]),
        ("codex", ["codex", "resume", "--last"], U, ["codex", "resume", U]),
        ("codex", ["codex", "resume", "0000", "-s", "read-only"], U,
         ["codex", "-s", "read-only", "resume", U]),
        ("codex", ["codex", "exec", "do it"], U, None),
        ("gemini", ["gemini", "-m", "pro", "-i", "hello", "--resume", "latest"], U,
         ["gemini", "-m", "pro", "--resume", U]),
        ("gemini", ["gemini", "query text"], U, ["gemini", "--resume", U]),
        ("opencode", ["opencode", "proj", "-c", "--model", "a/b"], OC,
         ["opencode", "proj", "--model", "a/b", "--session", OC]),
        ("opencode", ["opencode", "-s", "ses_oldoldoldold"], OC, ["opencode", "--session", OC]),
        ("opencode", ["opencode", "run", "hi"], OC, None),
        ("aider", ["aider", "--model", "x", "a.py", "-m", "do it"], None,
         ["aider", "--model", "x", "a.py", "--restore-chat-history"]),
        ("aider", ["python3", "-m", "aider", "--restore-chat-history"], None,
         ["python3", "-m", "aider", "--restore-chat-history"]),
        ("copilot", ["copilot", "--resume", "--model", "gpt-5"], U,
         ["copilot", "--model", "gpt-5", "--resume", U]),
        ("copilot", ["copilot", "-p", "fix", "--allow-all-tools"], U,
         ["copilot", "--allow-all-tools", "--resume", U]),
        ("claude", ["codex"], U, None),  # the argv is not this agent's
    ],
)  # fmt: skip
def test_resume_argv(agent: str, argv: list[str], cid: str | None, expected: list[str] | None) -> None:
    assert cv_agents.resume_argv(agent, argv, cid) == expected


def test_resume_argv_types_the_bare_name_when_path_finds_the_same_launcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = tmp_path / "pkg" / "codex.js"
    script.parent.mkdir()
    script.write_text("#!/usr/bin/env node\n")
    script.chmod(0o755)
    (bin_dir / "codex").symlink_to(script)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert cv_agents.resume_argv("codex", ["node", str(bin_dir / "codex")], U) == ["codex", "resume", U]
    # Not what PATH finds: the script's own path (its shebang runs it), never a guess.
    other = tmp_path / "other" / "codex"
    other.parent.mkdir()
    other.write_text("")
    assert cv_agents.resume_argv("codex", ["node", str(other)], U) == [str(other), "resume", U]


def test_argv_id() -> None:
    assert cv_agents.argv_id("claude", ["claude", "--resume", U]) == U
    assert cv_agents.argv_id("claude", ["claude", "--resume=" + U]) == U
    assert cv_agents.argv_id("codex", ["codex", "resume", U]) == U
    assert cv_agents.argv_id("opencode", ["opencode", "-s", OC]) == OC
    assert cv_agents.argv_id("claude", ["claude", "--resume", "bad;id"]) is None


def test_pane_agent_from_json_drops_bad_ids() -> None:
    assert PaneAgent.from_json({"name": "claude", "id": U, "source": "x"}) == PaneAgent("claude", U, "x")
    assert PaneAgent.from_json({"name": "claude", "id": "a;b", "source": "x"}) == PaneAgent(
        "claude", None, "x"
    )
    assert PaneAgent.from_json({"name": "evil", "id": U}) is None
    assert PaneAgent.from_json("claude") is None


def test_readers_use_the_agents_own_locations(tmp_path: Path) -> None:
    home = tmp_path / "h"
    cfg = tmp_path / "claude-config"
    (cfg / "sessions").mkdir(parents=True)
    (cfg / "sessions" / "4242.json").write_text(json.dumps({"pid": 4242, "sessionId": U, "cwd": "/w"}))
    assert cv_probe._claude([4242], {"HOME": str(home), "CLAUDE_CONFIG_DIR": str(cfg)}, "/w", None) == U
    assert cv_probe._claude([4242], {"HOME": str(home)}, "/w", None) is None  # CLAUDE_CONFIG_DIR honoured
    # A record for another pid (pid reuse) is not this process's.
    (cfg / "sessions" / "77.json").write_text(json.dumps({"pid": 78, "sessionId": U}))
    assert cv_probe._claude([77], {"CLAUDE_CONFIG_DIR": str(cfg)}, "/w", None) is None

    codex = tmp_path / "codex-home" / "sessions" / "2026" / "12" / "02"
    codex.mkdir(parents=True)
    line = {"type": "session_meta", "payload": {"id": U, "cwd": "/w"}}
    (codex / f"rollout-2026-12-02T10-00-00-{U}.jsonl").write_text(json.dumps(line) + "\n{}\n")
    env = {"CODEX_HOME": str(tmp_path / "codex-home")}
    assert cv_probe._codex([1], env, "/w", None) == U
    assert cv_probe._codex([1], env, "/other", None) is None
    # A rollout older than the process is an earlier conversation.
    assert cv_probe._codex([1], env, "/w", since=os.stat(codex).st_mtime + 3600) is None


def test_huge_or_binary_first_lines_are_no_id(tmp_path: Path) -> None:
    d = tmp_path / "sessions" / "2026" / "12" / "02"
    d.mkdir(parents=True)
    (d / f"rollout-x-{U}.jsonl").write_bytes(b"\x00\xff" * 100_000)
    assert cv_probe._codex([1], {"CODEX_HOME": str(tmp_path)}, "/w", None) is None
    assert cv_probe.read_capped(d / f"rollout-x-{U}.jsonl", cap=10) is None


def test_opencode_db_missing_or_corrupt_is_no_id(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path)}
    assert cv_probe._opencode([1], env, "/w", None) is None
    (tmp_path / "opencode").mkdir()
    (tmp_path / "opencode" / "opencode.db").write_bytes(b"not sqlite" * 100)
    assert cv_probe._opencode([1], env, "/w", None) is None


def test_probe_of_a_gone_pid_is_no_id() -> None:
    assert cv_probe.probe(2**22 + 12345, ["claude"]) == PaneAgent("claude", None, "none")
    assert cv_probe.probe(1, ["bash"]) is None


def test_log_records_validates_and_finds_latest(tmp_path: Path) -> None:
    log = ConversationLog(tmp_path / "ws")
    assert log.record("claude", "x; rm -rf ~") is None
    assert log.record("nobody", U) is None
    assert not log.path.exists()
    a = log.record("claude-code", U, cwd="/w", pane="p1", source="hook")
    assert a is not None and a.agent == "claude"
    assert oct(log.path.stat().st_mode & 0o777) == "0o600"
    b = log.record("codex", U.replace("1b2c", "2b2c"), cwd="/w/sub", pane="p2")
    assert b is not None
    assert log.latest("claude", pane="p1") == a
    assert log.latest("codex", pane="p9", cwd="/w/sub") == b
    assert log.latest("claude", pane="p9") is None
    assert log.latest() == b
    assert [c.agent for c in log.current()] == ["codex", "claude"]
    # The same fact again is not rewritten (a hook per tool call).
    before = log.path.stat().st_mtime_ns
    log.record("codex", b.id, cwd="/w/sub", pane="p2")
    assert log.path.stat().st_mtime_ns == before


def test_log_corrupt_file_is_reported_and_replaced(tmp_path: Path) -> None:
    log = ConversationLog(tmp_path)
    log.path.write_text("{broken")
    assert log.entries() == []
    assert log.record("gemini", U) is not None
    assert [c.agent for c in log.entries()] == ["gemini"]
    # Entries with bad ids in the file (edited by hand) are dropped on read.
    doc = json.loads(log.path.read_text())
    doc["conversations"].append({"agent": "claude", "id": "$(x)", "time": 1.0})
    log.path.write_text(json.dumps(doc))
    assert [c.agent for c in log.entries()] == ["gemini"]


def test_record_from_env_reads_each_agents_variable(tmp_path: Path) -> None:
    env = {"CLAUDE_CODE_SESSION_ID": U, "GEMINI_SESSION_ID": "not-a-uuid", "TETHER_PANE_ID": "pabc"}
    got = cv_record.record_from_env(tmp_path / "root", tmp_path / "state", env, cwd="/w")
    assert [(c.agent, c.id, c.pane, c.source) for c in got] == [("claude", U, "pabc", "step")]


def test_concurrent_writers_lose_no_record(tmp_path: Path) -> None:
    import threading

    log = ConversationLog(tmp_path)
    ids = [f"1b2c3d4e-0000-4000-8000-{i:012d}" for i in range(12)]
    threads = [threading.Thread(target=log.record, args=("claude", cid), kwargs={"pane": f"p{i}"})
               for i, cid in enumerate(ids)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(c.id for c in log.entries()) == ids
