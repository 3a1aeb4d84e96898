"""An agent pane comes back on its own conversation: real tmux on a private socket, snapshot, kill
the server, recreate.

Which agent is real here:
- Claude Code, Gemini CLI, Copilot CLI: the real pinned binaries (``scripts/install-agents.sh``
  into ``$TETHER_TOOLS_DIR/agents``) stay up offline and write their own session records
  (Claude with ``CLAUDE_CODE_USE_BEDROCK=1``, no credentials, onboarding and folder trust
  pre-seeded in ``~/.claude.json``; no prompt is ever sent), so capture and resume are real end to
  end; Claude's resume is also run for real (``[agents] resume = "run"``).
- Codex, opencode: the real binaries stay up at their start screen, but only create a conversation
  on the first prompt (which needs a login): the test writes the record into their real locations
  in their documented formats (a rollout ``session_meta`` line; a row in opencode's own db).
- aider is not installed; the hostile-id, symlink/huge-record and exited-agent cases need a record
  the test controls: executables named ``aider`` / ``claude`` stand in
  (tests/support/agent_standins.py; the ``claude`` one writes ``sessions/<pid>.json`` in Claude's
  format).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.agent_standins import standins as _standins
from tests.support.retry import retry_until
from tests.support.tmuxsrv import PrivateTmux
from tests.tmux.conftest import PROMPT, capture, foreground_cmdline, panes_by_uid, run_in, wait_prompt
from tether.conversations import agents as cv_agents
from tether.conversations import probe as cv_probe
from tether.conversations import record as cv_record
from tether.conversations.record import ConversationLog
from tether.tmux.config import WindowSpec
from tether.tmux.link import TmuxLink
from tether.tmux.snapshot import TmuxSnapshot

MakeLink = Callable[..., TmuxLink]


def _on_path(monkeypatch: pytest.MonkeyPatch, d: Path) -> None:
    """``d`` first on PATH for Tether (resume argv) and for the panes' shells (login shells
    reset PATH from /etc/profile, then read the test's ~/.bashrc)."""
    monkeypatch.setenv("PATH", f"{d}:{os.environ['PATH']}")
    with open(Path(os.environ["HOME"]) / ".bashrc", "a") as fh:
        fh.write(f"export PATH={shlex.quote(str(d))}:$PATH\n")


def _agent_bin() -> Path:
    tools = Path(os.environ.get("TETHER_TOOLS_DIR") or Path(__file__).resolve().parents[2] / ".tools")
    return tools / "agents" / "node_modules" / ".bin"


def _real(name: str) -> Path:
    p = _agent_bin() / name
    if not p.exists():
        pytest.skip(f"{name} CLI not installed at {p} (run scripts/install-agents.sh; CI installs it)")
    return p


def _typed(srv: PrivateTmux, target: str, text: str) -> None:
    wait_prompt(srv, target)
    retry_until(
        lambda: capture(srv, target, False).rstrip().endswith(PROMPT + text),
        timeout=10,
        what=f"typed {text!r}",
    )


def _pane(snap: TmuxSnapshot, window: str) -> cv_probe.PaneAgent | None:
    w = next(w for w in snap.windows if w.name == window)
    return w.panes[0].agent


def _env_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(x.split("=", 1) for x in raw.decode().split("\0") if "=" in x)


def test_claude_and_aider_panes_come_back_typed_then_run(
    tmux_server: PrivateTmux, make_link: MakeLink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir, marker, idfile = _standins(tmp_path)
    sid = str(uuid.uuid4())
    idfile.write_text(sid)
    _on_path(monkeypatch, bin_dir)
    link = make_link(windows=[WindowSpec("shell")])
    root = link.root
    (root / "sub").mkdir()
    s = link.session
    link.ensure_session()
    srv = tmux_server
    srv.cmd("set-environment", "-t", f"={s}", "PROJECT_MODE", "staging")
    srv.cmd("new-window", "-d", "-t", f"={s}:3", "-n", "claude", "-c", str(root / "sub"))
    srv.cmd("new-window", "-d", "-t", f"={s}:4", "-n", "aider", "-c", str(root))
    run_in(srv, f"={s}:claude", "claude --model opus 'fix the login bug'")
    run_in(srv, f"={s}:aider", "aider --model sonnet app.py --message 'add tests'")
    retry_until(lambda: marker.exists() and len(marker.read_text().splitlines()) == 2, what="agents up")
    retry_until(lambda: list((tmp_path / "home" / ".claude" / "sessions").glob("*.json")), what="record")

    snap = link.snapshot()
    assert snap is not None
    assert _pane(snap, "claude") == cv_probe.PaneAgent("claude", sid, "claude-sessions")
    assert _pane(snap, "aider") == cv_probe.PaneAgent("aider", None, "none")
    assert _pane(snap, "shell") is None
    # Learned at the snapshot, kept: Claude's sessions dir is cleared at reboot.
    kept = ConversationLog.for_workspace(root, link._state_dir).latest("claude")
    assert kept is not None and kept.id == sid and kept.cwd == str(root / "sub")

    srv.kill()
    marker.unlink()
    report = link.restore(snap)
    by_window = {p.window: p for p in report.panes}
    expected = f"claude --model opus --resume {sid}"
    assert by_window[3].action == "typed" and by_window[3].conversation == sid
    assert shlex.join(by_window[3].command or []) == expected
    _typed(srv, f"={s}:claude", expected)
    _typed(srv, f"={s}:aider", "aider --model sonnet app.py --restore-chat-history")
    rows = {r["window_name"]: r for r in panes_by_uid(srv, s).values()}
    assert rows["claude"]["pane_current_path"] == str(root / "sub")
    assert _env_of(int(rows["claude"]["pane_pid"]))["PROJECT_MODE"] == "staging"
    assert not marker.exists()  # typed, not run

    # With the user's `[agents] resume = "run"` the same snapshot runs them.
    srv.kill()
    link.config.agent_resume = "run"
    report = link.restore(snap)
    assert {p.window: p.action for p in report.panes if p.agent} == {3: "ran", 4: "ran"}
    retry_until(lambda: marker.exists() and len(marker.read_text().splitlines()) == 2, what="agents ran")
    ran = sorted(json.loads(ln) for ln in marker.read_text().splitlines())
    assert ran == [
        ["--model", "opus", "--resume", sid],
        ["--model", "sonnet", "app.py", "--restore-chat-history"],
    ]
    # --no-run (`never`) still wins over the user's "run".
    srv.kill()
    report = link.restore(snap, "never")
    assert all(p.action == "typed" for p in report.panes if p.agent)


@pytest.mark.parametrize(
    "bad",
    [
        "1b2c3d4e-0000-4000-8000-00000000000a; rm -rf ~",
        "1b2c3d4e-0000-4000-8000-00000000000a\nrm -rf /",
        "$(touch x)",
    ],
)
def test_hostile_claude_session_id_is_never_typed(
    tmux_server: PrivateTmux, make_link: MakeLink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    bin_dir, _marker, idfile = _standins(tmp_path)
    idfile.write_text(bad)
    _on_path(monkeypatch, bin_dir)
    link = make_link()
    s = link.session
    link.ensure_session()
    run_in(tmux_server, f"={s}:", "claude --model opus")
    retry_until(lambda: list((tmp_path / "home" / ".claude" / "sessions").glob("*.json")), what="record")
    snap = link.snapshot()
    assert snap is not None
    assert snap.windows[0].panes[0].agent == cv_probe.PaneAgent("claude", None, "none")
    tmux_server.kill()
    report = link.restore(snap)
    assert report.panes[0].conversation is None
    _typed(tmux_server, f"={s}:", "claude --model opus")  # the original command, no --resume
    assert "rm -rf" not in capture(tmux_server, f"={s}:", False)


def test_symlinked_huge_and_exited_records_give_no_id(
    tmux_server: PrivateTmux, make_link: MakeLink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir, _marker, idfile = _standins(tmp_path)
    sid = str(uuid.uuid4())
    idfile.write_text(sid)
    _on_path(monkeypatch, bin_dir)
    link = make_link()
    s = link.session
    link.ensure_session()
    run_in(tmux_server, f"={s}:", "claude")
    sessions = tmp_path / "home" / ".claude" / "sessions"
    record = retry_until(lambda: next(iter(sessions.glob("*.json")), None), what="record")
    pid = int(record.stem)
    argv = foreground_cmdline(int(next(iter(panes_by_uid(tmux_server, s).values()))["pane_pid"]))
    assert cv_probe.probe(pid, argv) == cv_probe.PaneAgent("claude", sid, "claude-sessions")

    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(record.read_text())
    record.unlink()
    record.symlink_to(elsewhere)
    assert cv_probe.probe(pid, argv) == cv_probe.PaneAgent("claude", None, "none")

    record.unlink()
    doc = json.loads(elsewhere.read_text())
    record.write_text(json.dumps(doc) + " " * (1 << 20))
    assert cv_probe.probe(pid, argv) == cv_probe.PaneAgent("claude", None, "none")

    # The agent exits: its pane is a shell again, the snapshot has no agent and retypes nothing.
    os.kill(pid, signal.SIGTERM)
    wait_prompt(tmux_server, f"={s}:")
    retry_until(
        lambda: (
            foreground_cmdline(int(next(iter(panes_by_uid(tmux_server, s).values()))["pane_pid"])) is None
        ),
        what="claude gone",
    )
    snap = link.snapshot()
    assert snap is not None and snap.windows[0].panes[0].agent is None
    tmux_server.kill()
    assert [p.action for p in link.restore(snap).panes] == ["none"]


def test_told_conversation_is_used_when_the_record_is_gone(
    tmux_server: PrivateTmux, make_link: MakeLink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hook or `tether step` told the id (Claude's own record is gone): the pane resumes it."""
    bin_dir, _marker, idfile = _standins(tmp_path)
    idfile.write_text("not-an-id")
    _on_path(monkeypatch, bin_dir)
    link = make_link()
    s = link.session
    link.ensure_session()
    uid = next(iter(panes_by_uid(tmux_server, s)))
    run_in(tmux_server, f"={s}:", "claude")
    retry_until(lambda: list((tmp_path / "home" / ".claude" / "sessions").glob("*.json")), what="record")
    told = str(uuid.uuid4())
    cv_record.record_from_env(
        link.root,
        link._state_dir,
        {"CLAUDE_CODE_SESSION_ID": told, "TETHER_PANE_ID": uid},
        cwd=str(link.root),
    )
    snap = link.snapshot()
    assert snap is not None
    assert snap.windows[0].panes[0].agent == cv_probe.PaneAgent("claude", told, "told")
    tmux_server.kill()
    link.restore(snap)
    _typed(tmux_server, f"={s}:", f"claude --resume {told}")


# ------------------------------------------------------------------------------------ real CLIs


def _start_real(
    srv: PrivateTmux, link: TmuxLink, monkeypatch: pytest.MonkeyPatch, agent: str, command: str
) -> tuple[str, int]:
    _real(agent)
    _on_path(monkeypatch, _agent_bin())
    # A user's terminal has no CI variable; CI runners set CI=true, which turns Gemini CLI (and
    # other ink UIs) non-interactive: it would exit asking for auth instead of staying up.
    with open(Path(os.environ["HOME"]) / ".bashrc", "a") as fh:
        fh.write("unset CI CONTINUOUS_INTEGRATION\n")
    link.ensure_session()
    s = link.session
    uid = next(iter(panes_by_uid(srv, s)))
    run_in(srv, f"={s}:", command)

    def fg() -> int | None:
        pane_pid = int(panes_by_uid(srv, s)[uid]["pane_pid"])
        argv = foreground_cmdline(pane_pid)
        if not argv or cv_agents.detect_agent(argv) is None:
            return None
        return int(Path(f"/proc/{pane_pid}/stat").read_text().rsplit(")", 1)[1].split()[5])

    return uid, retry_until(fg, timeout=30, what=f"{agent} in front")


def _resume_and_check(srv: PrivateTmux, link: TmuxLink, snap: TmuxSnapshot, expected: str) -> None:
    srv.kill()
    report = link.restore(snap)
    assert [p.action for p in report.panes] == ["typed"]
    assert shlex.join(report.panes[0].command or []) == expected
    _typed(srv, f"={link.session}:", expected)


def _snap_with_agent(link: TmuxLink, agent: str) -> TmuxSnapshot:
    def found() -> TmuxSnapshot | None:
        link._cache = None  # the agent's record appears without the pane changing
        snap = link.snapshot()
        a = snap.windows[0].panes[0].agent if snap else None
        return snap if a is not None and a.name == agent and a.id else None

    return retry_until(found, timeout=45, what=f"{agent} conversation id in a snapshot")


def test_real_gemini_pane(
    tmux_server: PrivateTmux, make_link: MakeLink, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = make_link()
    _start_real(tmux_server, link, monkeypatch, "gemini", "gemini -m gemini-2.5-pro")
    snap = _snap_with_agent(link, "gemini")
    agent = snap.windows[0].panes[0].agent
    assert agent is not None and agent.source == "gemini-chats"
    chats = list((Path(os.environ["HOME"]) / ".gemini" / "tmp").glob("*/chats/session-*.jsonl"))
    assert any(json.loads(c.read_text().splitlines()[0])["sessionId"] == agent.id for c in chats)
    _resume_and_check(tmux_server, link, snap, f"gemini -m gemini-2.5-pro --resume {agent.id}")


def test_real_copilot_pane(
    tmux_server: PrivateTmux, make_link: MakeLink, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = make_link()
    _start_real(tmux_server, link, monkeypatch, "copilot", "copilot --model gpt-5")
    snap = _snap_with_agent(link, "copilot")
    agent = snap.windows[0].panes[0].agent
    assert agent is not None and agent.source == "copilot-session-state"
    assert (Path(os.environ["HOME"]) / ".copilot" / "session-state" / str(agent.id)).is_dir()
    _resume_and_check(tmux_server, link, snap, f"copilot --model gpt-5 --resume {agent.id}")


def test_real_codex_pane(
    tmux_server: PrivateTmux, make_link: MakeLink, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = make_link()
    _start_real(tmux_server, link, monkeypatch, "codex", "codex -m gpt-5-codex")
    sid = str(uuid.uuid4())
    day = time.strftime("%Y/%m/%d")
    d = Path(os.environ["HOME"]) / ".codex" / "sessions" / day
    d.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S")
    meta = {"timestamp": stamp, "type": "session_meta", "payload": {"id": sid, "cwd": str(link.root)}}
    # Another workspace's rollout, newer: never picked (matched by cwd).
    (d / f"rollout-{stamp}-{sid}.jsonl").write_text(json.dumps(meta) + "\n")
    other = str(uuid.uuid4())
    other_meta = {"timestamp": stamp, "type": "session_meta", "payload": {"id": other, "cwd": "/elsewhere"}}
    (d / f"rollout-{stamp}-{other}.jsonl").write_text(json.dumps(other_meta) + "\n")
    snap = _snap_with_agent(link, "codex")
    assert snap.windows[0].panes[0].agent == cv_probe.PaneAgent("codex", sid, "codex-rollout")
    _resume_and_check(tmux_server, link, snap, f"codex -m gpt-5-codex resume {sid}")


def test_real_opencode_pane(
    tmux_server: PrivateTmux, make_link: MakeLink, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = make_link()
    _start_real(tmux_server, link, monkeypatch, "opencode", "opencode --model anthropic/claude-sonnet-4")
    db = Path(os.environ["HOME"]) / ".local" / "share" / "opencode" / "opencode.db"

    def table() -> bool:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
                return bool(c.execute("SELECT name FROM sqlite_master WHERE name='session'").fetchone())
        except sqlite3.Error:
            return False

    retry_until(table, timeout=30, what="opencode's own db")
    sid = "ses_" + uuid.uuid4().hex[:26]
    now = int(time.time() * 1000)
    with sqlite3.connect(db, timeout=10) as c:
        c.execute(
            "INSERT INTO session (id, project_id, slug, directory, title, version, time_created,"
            " time_updated) VALUES (?, 'global', 'slug', ?, 'title', '1.18.33', ?, ?)",
            (sid, str(link.root), now, now),
        )
    snap = _snap_with_agent(link, "opencode")
    assert snap.windows[0].panes[0].agent == cv_probe.PaneAgent("opencode", sid, "opencode-db")
    _resume_and_check(tmux_server, link, snap, f"opencode --model anthropic/claude-sonnet-4 --session {sid}")


def foreground_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _claude_offline(root: Path) -> None:
    """Real Claude Code stays up offline with a cloud provider selected and no credentials (it asks
    for nothing until a prompt is sent, which no test does), onboarding and folder trust done."""
    home = Path(os.environ["HOME"])
    trusted = {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}
    doc = {"hasCompletedOnboarding": True, "theme": "dark", "projects": {str(root): trusted}}
    (home / ".claude.json").write_text(json.dumps(doc))
    with open(home / ".bashrc", "a") as fh:
        fh.write("export CLAUDE_CODE_USE_BEDROCK=1 AWS_REGION=us-east-1\n")


def test_real_claude_pane(
    tmux_server: PrivateTmux, make_link: MakeLink, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = make_link()
    _real("claude")
    _claude_offline(link.root)
    _uid, pid = _start_real(tmux_server, link, monkeypatch, "claude", "claude --model opus 'say hi'")
    record = Path(os.environ["HOME"]) / ".claude" / "sessions" / f"{pid}.json"
    retry_until(record.exists, timeout=30, what="claude's own sessions/<pid>.json")
    sid = json.loads(record.read_text())["sessionId"]
    snap = _snap_with_agent(link, "claude")
    assert snap.windows[0].panes[0].agent == cv_probe.PaneAgent("claude", sid, "claude-sessions")
    tmux_server.kill()
    # A reboot clears Claude's per-process records: only what Tether kept remains.
    retry_until(lambda: not foreground_alive(pid), timeout=10, what="claude gone with its server")
    shutil.rmtree(record.parent)
    report = link.restore(snap)
    assert [p.action for p in report.panes] == ["typed"]
    assert shlex.join(report.panes[0].command or []) == f"claude --model opus --resume {sid}"
    _typed(tmux_server, f"={link.session}:", f"claude --model opus --resume {sid}")
    kept = ConversationLog.for_workspace(link.root, link._state_dir).latest("claude")
    assert kept is not None and kept.id == sid

    # `[agents] resume = "run"`: the real binary is started on that conversation.
    tmux_server.kill()
    link.config.agent_resume = "run"
    report = link.restore(snap)
    assert [p.action for p in report.panes] == ["ran"]
    uid = report.panes[0].uid

    def running() -> list[str] | None:
        row = panes_by_uid(tmux_server, link.session).get(uid)
        argv = foreground_cmdline(int(row["pane_pid"])) if row else None
        return argv if argv and cv_agents.detect_agent(argv) else None

    assert retry_until(running, timeout=30, what="claude resumed") == [
        "claude",
        "--model",
        "opus",
        "--resume",
        sid,
    ]


def test_a_tampered_snapshot_id_is_dropped_before_tmux(
    tmux_server: PrivateTmux, make_link: MakeLink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapshot is a file in the store: an agent id edited into it is validated on read."""
    from tether.tmux.snapshot import layout_checksum

    link = make_link()
    body = "80x24,0,0,1"
    pane = {"uid": "pabc", "index": 0, "active": True, "cwd": str(link.root), "width": 80, "height": 24,
            "shell": None, "command": ["claude", "--model", "opus"], "dead": False, "dead_status": None,
            "scrollback": [], "history": [], "env": [],
            "agent": {"name": "claude", "id": "1b2c3d4e-0000-4000-8000-000000000001; touch pwned",
                      "source": "claude-sessions"}}  # fmt: skip
    win = {"index": 0, "name": "w", "layout": f"{layout_checksum(body)},{body}", "zoomed": False,
           "active": True, "width": 80, "height": 24, "panes": [pane]}  # fmt: skip
    doc = {"schema": 1, "session": link.session, "root": str(link.root), "windows": [win], "env": []}
    snap = TmuxSnapshot.from_json(doc)
    assert snap.windows[0].panes[0].agent == cv_probe.PaneAgent("claude", None, "claude-sessions")
    report = link.restore(doc)
    assert report.panes[0].action == "typed" and report.panes[0].conversation is None
    _typed(tmux_server, f"={link.session}:", "claude --model opus")
    assert not (link.root / "pwned").exists()
