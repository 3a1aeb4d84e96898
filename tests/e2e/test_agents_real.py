"""`tether setup` and `tether hook` against the agents' real CLIs (scripts/install-agents.sh).

Offline only: no login, no prompt. Every run has its own HOME, CLAUDE_CONFIG_DIR, CODEX_HOME and
XDG dirs (tests/support/agents.py). Claude Code runs the SessionStart hook for real
(`claude --init-only`) and health-checks MCP servers (`claude mcp list`); Codex and Gemini CLI
list the MCP server Tether wrote into their config; opencode and Copilot CLI print their version.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.agents import agent_env, run_agent


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    d = (tmp_path / "ws").resolve()
    d.mkdir()
    subprocess.run(["git", "init", "-q", str(d)], check=True)
    return d


@pytest.fixture
def env(tmp_path: Path, ws: Path) -> dict[str, str]:
    e = agent_env(tmp_path / "home", ws)
    e["TETHER_STATE_DIR"] = str(tmp_path / "state")
    return e


def tether(args: list[str], ws: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [sys.executable, "-m", "tether", *args],
        check=False,
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    return res


def mcp_started(env: dict[str, str]) -> bool:
    """The agent's health check really ran `tether mcp` (its log, in the test's state dir)."""
    log = Path(env["TETHER_STATE_DIR"]) / "mcp.log"
    return log.exists() and "mcp starting" in log.read_text()


def trust_workspace(env: dict[str, str], ws: Path) -> None:
    """What answering Claude Code's "trust this folder?" prompt records (the user's act, not
    Tether's: `tether setup` never writes it)."""
    state = Path(env["CLAUDE_CONFIG_DIR"]) / ".claude.json"
    doc = json.loads(state.read_text()) if state.exists() else {}
    doc.setdefault("projects", {})[str(ws)] = {"hasTrustDialogAccepted": True}
    state.write_text(json.dumps(doc))


def test_claude_session_start_hook_through_the_real_binary(ws: Path, env: dict[str, str]) -> None:
    tether(
        ["step", "--done", "wrote the parser", "--next", "wire the CLI", "--task", "real claude demo"],
        ws,
        env,
    )
    # The user's own settings, with a SessionStart hook of theirs.
    user_settings = (
        '{\n    "model": "opus",\n    "hooks": {"SessionStart": [{"hooks": '
        '[{"type": "command", "command": "touch user-hook-ran"}]}]}\n}\n'
    )
    (ws / ".claude").mkdir()
    (ws / ".claude" / "settings.json").write_text(user_settings)
    tether(["setup", "claude"], ws, env)
    settings = json.loads((ws / ".claude" / "settings.json").read_text())
    assert set(settings["hooks"]) == {"SessionStart", "PostToolUse", "PostToolUseFailure", "Stop"}
    debug = Path(env["CLAUDE_CONFIG_DIR"]) / "debug"

    def init_only() -> str:
        """One `claude --init-only` run; its debug log (the hooks it ran and their output)."""
        seen = set(debug.glob("*.txt")) if debug.exists() else set()
        res = run_agent("claude", ["--init-only", "--debug", "hooks"], env, ws)
        assert res.returncode == 0, res.stderr
        logs = set(debug.glob("*.txt")) - seen
        assert logs, "claude wrote no debug log"
        return "\n".join(p.read_text(errors="replace") for p in logs)

    log = init_only()
    # Claude Code's debug log records the hook's run and the context it took from its stdout.
    assert "SessionStart:startup [tether hook claude-code] finished with status 0" in log
    assert "Hook SessionStart:startup (SessionStart) success" in log
    assert "Task: real claude demo" in log and "1. wire the CLI" in log
    assert (ws / "user-hook-ran").exists()  # the user's hook still runs beside Tether's

    # --remove gives the user's file back byte for byte; Claude then runs only their hook.
    (ws / "user-hook-ran").unlink()
    tether(["setup", "claude", "--remove"], ws, env)
    assert (ws / ".claude" / "settings.json").read_text() == user_settings
    log = init_only()
    assert "tether hook" not in log and (ws / "user-hook-ran").exists()


def test_claude_mcp_list_after_setup(ws: Path, env: dict[str, str]) -> None:
    tether(["setup", "claude", "--mcp"], ws, env)
    res = run_agent("claude", ["mcp", "list"], env, ws)
    assert res.returncode == 0, res.stderr
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("tether:")), None)
    assert line is not None, res.stdout
    assert "tether mcp" in line
    assert "Pending approval" in line  # an untrusted workspace: Claude's own gate holds
    trust_workspace(env, ws)
    res = run_agent("claude", ["mcp", "list"], env, ws)
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("tether:"))
    assert "Pending approval" not in line  # approved by name in .claude/settings.local.json
    assert "Connected" in line, res.stdout  # Claude started `tether mcp` and initialized it
    assert mcp_started(env)
    detail = run_agent("claude", ["mcp", "get", "tether"], env, ws).stdout
    assert "Project config" in detail and "Type: stdio" in detail

    # --remove takes it out again: Claude no longer lists it.
    tether(["setup", "claude", "--mcp", "--remove"], ws, env)
    assert not (ws / ".mcp.json").exists()
    assert "tether:" not in run_agent("claude", ["mcp", "list"], env, ws).stdout


def test_claude_user_scope_mcp(ws: Path, env: dict[str, str]) -> None:
    tether(["setup", "claude", "--mcp", "--user"], ws, env)
    res = run_agent("claude", ["mcp", "list"], env, ws)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("tether:")), None)
    assert line is not None and "tether mcp" in line, res.stdout
    assert "Connected" in line, res.stdout
    detail = run_agent("claude", ["mcp", "get", "tether"], env, ws).stdout
    assert "User config" in detail


def test_codex_mcp_list_after_setup(ws: Path, env: dict[str, str]) -> None:
    tether(["setup", "codex", "--mcp", "--user"], ws, env)
    config = Path(env["CODEX_HOME"]) / "config.toml"
    config.write_text('model = "o3"  # the user\'s own line\n' + config.read_text())
    res = run_agent("codex", ["mcp", "list", "--json"], env, ws)
    assert res.returncode == 0, res.stderr
    servers = {s["name"]: s for s in json.loads(res.stdout)}
    assert "tether" in servers, res.stdout
    transport = servers["tether"]["transport"]
    assert transport["command"] == "tether" or transport["command"].endswith("tether")
    assert transport["args"][-1] == "mcp"
    tether(["setup", "codex", "--mcp", "--user", "--remove"], ws, env)
    assert config.read_text() == 'model = "o3"  # the user\'s own line\n'
    res = run_agent("codex", ["mcp", "list", "--json"], env, ws)
    assert "tether" not in {s["name"] for s in json.loads(res.stdout)}


def test_gemini_mcp_list_after_setup(ws: Path, env: dict[str, str]) -> None:
    tether(["setup", "gemini", "--mcp"], ws, env)
    tether(["setup", "gemini"], ws, env)  # hooks in the same settings.json: both load
    res = run_agent("gemini", ["mcp", "list"], env, ws, timeout=120)
    out = res.stdout + res.stderr
    assert "tether: tether mcp (stdio) - Disabled" in out, out  # untrusted folder: Gemini's gate
    # What answering Gemini's folder-trust prompt records (the user's act, not Tether's).
    trusted = Path(env["HOME"]) / ".gemini" / "trustedFolders.json"
    trusted.write_text(json.dumps({str(ws): "TRUST_FOLDER"}))
    res = run_agent("gemini", ["mcp", "list"], env, ws, timeout=120)
    out = res.stdout + res.stderr
    line = next((ln for ln in out.splitlines() if "tether: tether mcp" in ln), None)
    assert line is not None and "Disabled" not in line, out
    assert "Connected" in line, out
    assert mcp_started(env)


def test_opencode_and_copilot_run_offline(ws: Path, env: dict[str, str]) -> None:
    for name in ("opencode", "copilot"):
        res = run_agent(name, ["--version"], env, ws)
        assert res.returncode == 0 and res.stdout.strip(), (name, res.stderr)
    tether(["setup", "opencode", "--mcp"], ws, env)
    tether(["setup", "opencode"], ws, env)  # the plugin file: opencode must still load its config
    res = run_agent("opencode", ["mcp", "list"], env, ws, timeout=120)
    out = res.stdout + res.stderr
    assert "tether" in out and "tether mcp" in out, out
    assert "connected" in out and "failed" not in out, out  # opencode started and initialized it


def test_opencode_plugin_calls_tether(ws: Path, env: dict[str, str]) -> None:
    """opencode resolves the plugin setup wrote; its handlers then run in Node as the host
    (a stand-in for opencode's Bun runtime: firing them inside opencode needs a prompt)."""
    import shutil

    from tests.support.retry import retry_until
    from tether.store.db import Store

    tether(["step", "--done", "start"], ws, env)
    tether(["setup", "opencode"], ws, env)
    plugin = ws / ".opencode" / "plugin" / "tether.js"
    res = run_agent("opencode", ["debug", "config"], env, ws, timeout=120)
    assert plugin.as_uri() in res.stdout, res.stdout + res.stderr
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not on PATH")
    (ws / "edited.txt").write_text("by the agent\n")
    script = (
        f"const m = await import({json.dumps(plugin.as_uri())});"
        f"const h = await m.TetherPlugin({{ directory: {json.dumps(str(ws))} }});"
        "await h['tool.execute.after']({ tool: 'bash', sessionID: 'ses_1' });"
    )
    subprocess.run([node, "--input-type=module", "-e", script], check=True, env=env, cwd=ws, timeout=60)

    def checkpointed() -> str | None:
        with Store.open(ws, env["TETHER_STATE_DIR"]) as store:
            latest = store.latest()
            return latest.message if latest is not None and "edited.txt" in latest.files else None

    assert retry_until(checkpointed, timeout=30, what="the plugin's hook checkpoint") == "opencode bash"


def test_codex_reads_the_instructions_setup_wrote(ws: Path, env: dict[str, str]) -> None:
    (ws / "AGENTS.md").write_text("# House rules\n\nUse tabs.\n")
    tether(["setup", "codex"], ws, env)
    hooks = json.loads((ws / ".codex" / "hooks.json").read_text())
    assert set(hooks["hooks"]) == {"SessionStart", "PostToolUse", "Stop"}
    # The model-visible prompt input Codex would send (rendered locally, nothing is sent).
    res = run_agent("codex", ["debug", "prompt-input"], env, ws)
    assert res.returncode == 0, res.stderr
    assert "Use tabs." in res.stdout
    assert "After each unit of work run `tether step --done" in res.stdout
