"""Resume with the terminal side: a real tmux server on a private socket, agent steps, and the
session coming back alive (reattach) or dead (recreate from the last snapshot)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.lsp_harness import CLIENTS, Session, start_session
from tests.support.retry import aretry_until
from tests.support.tmuxsrv import PrivateTmux
from tether import protocol as P


@pytest.fixture(params=CLIENTS)
def caps(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"HOME": str(home), "SHELL": "/bin/sh"}


async def _work_then_crash(
    workspace: Path, state_dir: Path, caps: str, tmux: PrivateTmux, env: dict[str, str]
) -> Session:
    (workspace / "auth.py").write_text("def login():\n    pass\n")
    a = await start_session(workspace, state_dir, caps, tmux_socket=tmux.socket_path, extra_env=env)
    await a.wait_status(lambda s: s["lastCheckpoint"] is not None, "baseline")

    started = await a.command(P.CMD_START_SESSION, {})
    assert started["created"] is True
    assert started["argv"][:3] == ["tmux", "-S", tmux.socket_path] or tmux.socket_path in started["argv"]
    await aretry_until(lambda: a.terminals, timeout=5, what="openTerminal on startSession")
    assert a.terminals[-1]["argv"] == started["argv"]
    assert tmux.alive()
    await a.wait_status(lambda s: s["tmux"] is not None and s["tmux"]["alive"], "tmux alive in status")

    uri = a.open("auth.py", "def login():\n    pass\n")
    a.edit(uri, 2, 1, 4, 1, 8, "return check()")
    (workspace / "auth.py").write_text("def login():\n    return check()\n")
    a.save(uri)
    step = await a.command(
        P.CMD_STEP,
        {"done": "login calls check", "next": ["write tests", "fix lint"], "task": "refactor auth"},
    )
    assert step["trigger"] == "step" and step["message"] == "login calls check"
    await aretry_until(lambda: a.next_steps, timeout=5, what="showNextSteps after step")
    assert a.next_steps[-1]["nextSteps"] == ["write tests", "fix lint"]
    assert a.next_steps[-1]["task"] == "refactor auth"
    a.edit(uri, 3, 1, 18, 1, 18, "  # unsaved")
    await a.wait_status(lambda s: s["dirtyBuffers"] == 1, "dirty")
    # The journal is flushed on a timer; a manual checkpoint also persists the tmux snapshot.
    await a.command(P.CMD_CHECKPOINT, {"message": "before disconnect"})
    await aretry_until(lambda: _journal_written(a), timeout=10, what="journal flushed")
    await a.kill()
    return a


def _journal_written(a: Session) -> bool:
    # Observed via the public side: the next server sees it. Here: the status round trip.
    return any(s["dirtyBuffers"] == 1 for s in a.statuses) and _db_has(a, b"# unsaved")


def _db_has(a: Session, needle: bytes) -> bool:
    import os
    import sqlite3
    import zlib

    state_dir = Path(os.environ.get("TETHER_STATE_DIR", ""))
    for db in state_dir.glob("workspaces/*/tether.db"):
        conn = sqlite3.connect(db)
        try:
            row = conn.execute("SELECT codec, data FROM state WHERE name='editor'").fetchone()
        finally:
            conn.close()
        if row and needle in (zlib.decompress(row[1]) if row[0] == "zlib" else bytes(row[1])):
            return True
    return False


async def test_resume_reattaches_live_tmux(
    workspace: Path, state_dir: Path, tmux_server: PrivateTmux, caps: str, tmp_path: Path
) -> None:
    env = _env(tmp_path)
    await _work_then_crash(workspace, state_dir, caps, tmux_server, env)
    b = await start_session(workspace, state_dir, caps, tmux_socket=tmux_server.socket_path, extra_env=env)
    try:
        await b.wait_status(lambda s: s["resumeAvailable"], "resume available")
        result = await b.command(P.CMD_RESUME, {})
        assert result["terminal"]["recreated"] is False
        await aretry_until(lambda: b.terminals, timeout=5, what="openTerminal")
        term = b.terminals[-1]
        assert term["argv"][0].endswith("tmux") and tmux_server.socket_path in term["argv"]
        assert "attach-session" in term["argv"]
        assert term["cwd"] == str(workspace)
        steps = b.next_steps[-1]
        assert steps["task"] == "refactor auth"
        assert steps["nextSteps"] == ["write tests", "fix lint"]
        assert "auth.py" in steps["filesInProgress"]
        assert result["restoredBuffers"] == ["auth.py"]
        ((edit_uri, edits),) = b.edits[0].edit.changes.items()
        assert edit_uri == b.uri("auth.py")
        assert edits[0].new_text == "def login():\n    return check()  # unsaved\n"
    finally:
        await b.stop()


async def test_resume_recreates_dead_tmux(
    workspace: Path, state_dir: Path, tmux_server: PrivateTmux, tmp_path: Path
) -> None:
    env = _env(tmp_path)
    await _work_then_crash(workspace, state_dir, "visual-studio-code", tmux_server, env)
    tmux_server.kill()  # a reboot
    assert not tmux_server.alive()
    b = await start_session(
        workspace, state_dir, "visual-studio-code", tmux_socket=tmux_server.socket_path, extra_env=env
    )
    try:
        st = await b.wait_status(lambda s: s["resumeAvailable"], "resume available")
        assert st["tmux"] is not None and st["tmux"]["alive"] is False
        result = await b.command(P.CMD_RESUME, {})
        assert result["terminal"]["recreated"] is True
        assert not [
            w for w in result["terminal"]["warnings"] if w.startswith("this snapshot could not record")
        ]
        assert tmux_server.alive()
        await aretry_until(lambda: b.terminals, timeout=5, what="openTerminal")
        assert result["terminal"]["session"] in b.terminals[-1]["argv"][-1]
        await b.wait_status(lambda s: s["tmux"] is not None and s["tmux"]["alive"], "alive again")
    finally:
        await b.stop()


async def test_editor_settings_cannot_make_tmux_run_commands(
    workspace: Path, state_dir: Path, tmux_server: PrivateTmux, tmp_path: Path
) -> None:
    # As if from a cloned repo's .vscode/settings.json.
    opts = {
        "tmux": {
            "windows": [{"name": "agent", "command": "touch PWNED"}, {"name": "tests"}],
            "shell": str(workspace / "evil.sh"),
            "allowlist": ["*"],
        }
    }
    (workspace / "evil.sh").write_text("#!/bin/sh\ntouch EVIL_SHELL\nexec /bin/sh\n")
    (workspace / "evil.sh").chmod(0o755)
    s = await start_session(
        workspace,
        state_dir,
        "neovim@v0.11",
        tmux_socket=tmux_server.socket_path,
        init_options=opts,
        extra_env=_env(tmp_path),
    )
    try:
        await s.wait_status(lambda st: st["state"] == "idle", "ready")
        texts = [m.message for m in s.client.messages]
        assert any("tmux.windows['agent'].command" in t and "tmux.shell" in t for t in texts), texts
        started = await s.command(P.CMD_START_SESSION, {})
        windows = tmux_server.cmd("list-windows", "-t", started["session"], "-F", "#{window_name}").stdout
        assert windows.split() == ["agent", "tests"]
        # The pane runs the ordinary shell, and nothing was typed into it.
        start_cmds = tmux_server.cmd(
            "list-panes", "-s", "-t", started["session"], "-F", "#{pane_start_command}"
        )
        assert "evil" not in start_cmds.stdout
        target = f"{started['session']}:agent"

        def pane_text() -> str:
            return tmux_server.cmd("capture-pane", "-p", "-t", target).stdout.strip()

        await aretry_until(pane_text, timeout=10, what="shell prompt")
        pane = tmux_server.cmd("capture-pane", "-p", "-t", f"{started['session']}:agent").stdout
        assert "PWNED" not in pane
        assert not (workspace / "EVIL_SHELL").exists() and not (workspace / "PWNED").exists()
    finally:
        await s.stop()


async def test_users_config_file_names_windows_and_their_commands(
    workspace: Path, state_dir: Path, tmux_server: PrivateTmux, tmp_path: Path
) -> None:
    # The user's own file is trusted (unlike editor settings): its window commands run.
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[tmux]\nshell = "/bin/sh"\n'
        '[[tmux.windows]]\nname = "agent"\n'
        '[[tmux.windows]]\nname = "server"\ncommand = "echo user-window-ran"\n'
    )
    env = {**_env(tmp_path), "TETHER_CONFIG": str(cfg)}
    # Editor settings that try to rename the windows do not override the user's file.
    opts = {"tmux": {"windows": [{"name": "other"}]}}
    s = await start_session(
        workspace,
        state_dir,
        "visual-studio-code",
        tmux_socket=tmux_server.socket_path,
        init_options=opts,
        extra_env=env,
    )
    try:
        await s.wait_status(lambda st: st["state"] == "idle", "ready")
        started = await s.command(P.CMD_START_SESSION, {})
        windows = tmux_server.cmd("list-windows", "-t", started["session"], "-F", "#{window_name}").stdout
        assert windows.split() == ["agent", "server"]

        def ran() -> bool:
            text = tmux_server.cmd("capture-pane", "-p", "-t", f"{started['session']}:server").stdout
            return "user-window-ran" in text.replace("echo user-window-ran", "")

        await aretry_until(ran, timeout=10, what="the user's window command output")
    finally:
        await s.stop()


async def test_resume_says_when_no_tmux_snapshot_exists(
    workspace: Path, state_dir: Path, tmux_server: PrivateTmux, tmp_path: Path
) -> None:
    (workspace / "a.py").write_text("a = 1\n")
    s = await start_session(
        workspace,
        state_dir,
        "visual-studio-code",
        tmux_socket=tmux_server.socket_path,
        extra_env=_env(tmp_path),
    )
    try:
        await s.wait_status(lambda st: st["state"] == "idle", "ready")
        result = await s.command(P.CMD_RESUME, {})
        assert result["terminal"] is None
        assert "no snapshot" in result["noTerminal"] and "tether-" in result["noTerminal"]
        assert not s.terminals
    finally:
        await s.stop()


async def test_started_session_is_recorded_at_once_and_comes_back(
    workspace: Path, state_dir: Path, tmux_server: PrivateTmux, tmp_path: Path
) -> None:
    """A reboot right after `startSession` and a new window: no checkpoint ran in between."""
    (workspace / "a.py").write_text("a = 1\n")
    env = _env(tmp_path)
    a = await start_session(
        workspace, state_dir, "neovim@v0.11", tmux_socket=tmux_server.socket_path, extra_env=env
    )
    try:
        await a.wait_status(lambda st: st["state"] == "idle", "ready")
        started = await a.command(P.CMD_START_SESSION, {})
        tmux_server.cmd("new-window", "-d", "-t", f"={started['session']}:", "-n", "tests")

        def recorded() -> bool:
            from tether.store.db import Store
            from tether.tmux.watch import read_live

            with Store.open(workspace, state_dir) as store:
                found = read_live(store)
            return found is not None and b'"name":"tests"' in found.data

        await aretry_until(recorded, timeout=10, what="the new window recorded")
        timeline = await a.timeline()
        assert [c["trigger"] for c in timeline] == ["baseline"]  # no checkpoint since
    finally:
        await a.kill()
    tmux_server.kill()
    b = await start_session(
        workspace, state_dir, "neovim@v0.11", tmux_socket=tmux_server.socket_path, extra_env=env
    )
    try:
        result = await b.command(P.CMD_RESUME, {})
        assert result["terminal"]["recreated"] is True and result["noTerminal"] is None
        names = tmux_server.cmd("list-windows", "-t", f"={started['session']}:", "-F", "#{window_name}")
        assert names.stdout.split() == ["shell", "tests"]
    finally:
        await b.stop()


async def test_resume_says_what_the_snapshot_could_not_record(
    workspace: Path, state_dir: Path, tmux_server: PrivateTmux, tmp_path: Path
) -> None:
    """A server with neither /proc nor psutil (TETHER_NO_PROCFS=1 and a ``psutil`` that fails
    to import, as a missing one does) records the session without its commands; the resume
    says so instead of silently re-running nothing."""
    shadow = tmp_path / "shadow" / "psutil"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('psutil is not installed here')\n")
    env = _env(tmp_path)
    blind = {**env, "TETHER_NO_PROCFS": "1", "PYTHONPATH": str(tmp_path / "shadow")}
    a = await start_session(
        workspace, state_dir, "neovim@v0.11", tmux_socket=tmux_server.socket_path, extra_env=blind
    )
    try:
        await a.wait_status(lambda st: st["state"] == "idle", "ready")
        await a.command(P.CMD_START_SESSION, {})
        await a.command(P.CMD_CHECKPOINT, {"message": "with the session"})
    finally:
        await a.kill()
    tmux_server.kill()
    b = await start_session(
        workspace, state_dir, "neovim@v0.11", tmux_socket=tmux_server.socket_path, extra_env=env
    )
    try:
        result = await b.command(P.CMD_RESUME, {})
        assert result["terminal"]["recreated"] is True
        said = result["terminal"]["warnings"]
        assert any(
            w.startswith("this snapshot could not record the panes' running commands")
            and "psutil is not installed" in w
            for w in said
        ), said
    finally:
        await b.stop()
