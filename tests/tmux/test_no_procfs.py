"""Process facts without /proc (macOS, the BSDs): the backend is chosen by capability, so these
tests turn /proc off (``TETHER_NO_PROCFS=1``) and check, against a real tmux server on a private
socket and real processes, that psutil and ``ps`` find what /proc finds: the pane's foreground argv,
cwd, environment, start, liveness and the boot's identity. /proc itself is read here only as the
independent answer to compare with.

"psutil is not installed" is made real for the import system (``sys.modules["psutil"] = None``
makes ``import psutil`` raise ImportError): then doctor and resume say what could not be recorded.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.agent_standins import standins
from tests.support.retry import retry_until
from tests.support.tmuxsrv import PrivateTmux
from tests.tmux.conftest import panes_by_uid, run_in, wait_prompt
from tether import procs
from tether.conversations.probe import PaneAgent
from tether.editor.status import server_alive
from tether.scan import feed
from tether.tmux.config import RunPolicy
from tether.tmux.foreground import foreground_argv
from tether.tmux.link import TmuxLink

MakeLink = Callable[..., TmuxLink]
SPACED = ["python3", "-c", "import time; time.sleep(600)", "x y", "it's"]


@pytest.fixture
def no_procfs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(procs.NO_PROCFS_ENV, "1")
    assert not procs.procfs()
    yield


def _proc_tpgid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[5])


def _proc_btime() -> int:
    line = next(ln for ln in Path("/proc/stat").read_text().splitlines() if ln.startswith("btime"))
    return int(line.split()[1])


def _same_argv(got: list[str] | None, want: list[str]) -> bool:
    # A pyenv shim may exec the real interpreter by its full path.
    return bool(got) and os.path.basename(got[0]) == want[0] and got[1:] == want[1:]  # type: ignore[index]


def _running_job(srv: PrivateTmux, link: TmuxLink, sub: Path) -> tuple[int, int]:
    """(pane pid, foreground job pid) of SPACED run in ``sub`` with a marker variable."""
    link.ensure_session()
    s = link.session
    run_in(srv, f"={s}:", f"cd {shlex.quote(str(sub))} && TETHER_T_MARK=mark-42 {shlex.join(SPACED)}")
    pane_pid = int(next(iter(panes_by_uid(srv, s).values()))["pane_pid"])
    job = retry_until(
        lambda: (
            (t := _proc_tpgid(pane_pid)) != pane_pid and t > 0 and Path(f"/proc/{t}/cmdline").exists() and t
        ),
        timeout=10,
        what="the job in front of the pane",
    )
    return pane_pid, int(job)


def test_foreground_argv_cwd_env_and_start_without_proc(
    tmux_server: PrivateTmux, make_link: MakeLink, workspace: Path, no_procfs: None
) -> None:
    sub = workspace / "sub dir"
    sub.mkdir()
    link = make_link()
    pane_pid, job = _running_job(tmux_server, link, sub)

    groups = procs.foreground_groups([pane_pid, 999_999_999])
    assert groups == {pane_pid: job}  # one ps call; a gone pid is left out
    shell, command = foreground_argv(pane_pid, groups)
    assert shell is not None and os.path.basename(shell[0]).lstrip("-") == "bash"
    assert _same_argv(command, SPACED)  # argv boundaries intact (psutil, not ps's joined text)
    assert procs.cwd(job) == str(sub) == os.readlink(f"/proc/{job}/cwd")
    env = procs.environ_bytes(job)
    assert env is not None and b"TETHER_T_MARK=mark-42\0" in env
    assert procs.children(pane_pid) == [job]
    started = procs.start_time(job)
    assert started is not None
    ticks = int(Path(f"/proc/{job}/stat").read_text().rsplit(")", 1)[1].split()[19])
    assert abs(started - (_proc_btime() + ticks / os.sysconf("SC_CLK_TCK"))) < 2

    # The snapshot taken through the fallback records the command and says nothing is missing.
    snap = link.snapshot()
    assert snap is not None
    pane = snap.windows[0].panes[0]
    assert _same_argv(pane.command, SPACED) and pane.cwd == str(sub)
    assert snap.missing == []


def test_an_agents_conversation_is_found_through_its_environment_without_proc(
    tmux_server: PrivateTmux,
    make_link: MakeLink,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_procfs: None,
) -> None:
    """The Claude stand-in writes its record under the CLAUDE_CONFIG_DIR exported in its pane
    only: the probe finds it only by reading the agent process's own environment (psutil)."""
    bin_dir, marker, idfile = standins(tmp_path)
    idfile.write_text("0b9f6c2e-1d3a-4c5b-8e7f-a1b2c3d4e5f6")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    with open(Path(os.environ["HOME"]) / ".bashrc", "a") as fh:
        fh.write(f"export PATH={shlex.quote(str(bin_dir))}:$PATH\n")
    config_dir = tmp_path / "claude-config"
    link = make_link()
    link.ensure_session()
    run_in(
        tmux_server,
        f"={link.session}:",
        f"CLAUDE_CONFIG_DIR={shlex.quote(str(config_dir))} claude --model opus",
    )
    retry_until(lambda: list((config_dir / "sessions").glob("*.json")), what="the stand-in's record")
    snap = link.snapshot()
    assert snap is not None
    pane = snap.windows[0].panes[0]
    assert pane.agent == PaneAgent("claude", "0b9f6c2e-1d3a-4c5b-8e7f-a1b2c3d4e5f6", "claude-sessions")
    assert pane.command is not None and pane.command[-2:] == ["--model", "opus"]
    assert marker.exists()


def test_liveness_token_and_boot_identity_without_proc(no_procfs: None) -> None:
    boot = procs.boot_id()
    assert boot.startswith("boot-time:")
    assert abs(int(boot.split(":", 1)[1]) - _proc_btime()) <= 1
    child = subprocess.Popen(["sleep", "600"])
    try:
        token = procs.start_token(child.pid)
        assert token is not None and token == procs.start_token(child.pid)
        assert token != procs.start_token(os.getpid())
        # The watcher's liveness check (store/watchers row: pid, start, boot).
        assert feed._running(child.pid, token, boot)
        assert not feed._running(child.pid, token + 1, boot)  # another process given the same pid
        assert not feed._running(child.pid, token, "boot-time:1")  # another boot
    finally:
        child.kill()
        child.wait(10)
    assert not procs.pid_alive(child.pid)
    assert procs.start_token(child.pid) is None
    assert not feed._running(child.pid, token, boot)


def test_a_token_of_the_other_backend_is_never_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A /proc token (ticks, boot UUID) read by a process without /proc means "not the same
    process": a walk, never a wrong trust."""
    me = os.getpid()
    token, boot = procs.start_token(me), procs.boot_id()
    assert token is not None and feed._running(me, token, boot)
    monkeypatch.setenv(procs.NO_PROCFS_ENV, "1")
    assert not feed._running(me, token, boot)


def test_another_editors_server_is_seen_alive_without_proc(no_procfs: None, tmp_path: Path) -> None:
    # A real process whose argv is a language server's: `… tether lsp`.
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "tether", "lsp"])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "tether", "step"])
    try:
        assert server_alive({"pid": fake.pid})
        assert not server_alive({"pid": other.pid})  # a live tether process, but not a server
        assert not server_alive({"pid": os.getpid()})  # ourselves
    finally:
        for p in (fake, other):
            p.kill()
            p.wait(10)
    assert not server_alive({"pid": fake.pid})


def test_without_any_backend_the_snapshot_and_resume_say_what_was_not_recorded(
    tmux_server: PrivateTmux,
    make_link: MakeLink,
    workspace: Path,
    no_procfs: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)  # `import psutil` raises ImportError
    sub = workspace / "w"
    sub.mkdir()
    link = make_link(allowlist=["python3*"])
    _running_job(tmux_server, link, sub)
    assert procs.cmdline(os.getpid()) is None and procs.boot_id() == ""
    snap = link.snapshot()
    assert snap is not None
    assert snap.windows[0].panes[0].command is None  # nobody could see it
    assert any("running commands" in m and "psutil is not installed" in m for m in snap.missing)
    data = link.snapshot_bytes()
    assert data is not None and b"psutil is not installed" in data

    tmux_server.kill()
    report = link.restore(data, RunPolicy(mode="allowlist"))
    assert report.recreated
    said = [w for w in report.warnings if w.startswith("this snapshot could not record")]
    assert any("the panes' running commands" in w for w in said), report.warnings
    wait_prompt(tmux_server, f"={link.session}:")


def test_doctor_says_which_process_facts_cannot_be_had(tmp_path: Path, state_dir: Path) -> None:
    """`tether doctor` in a process where /proc is off and psutil cannot be imported (a
    ``psutil`` package on the path that fails to import, as a missing one does)."""
    shadow = tmp_path / "shadow" / "psutil"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('psutil is not installed here')\n")
    base = {**os.environ, "TETHER_STATE_DIR": str(state_dir), procs.NO_PROCFS_ENV: "1"}

    def doctor(env: dict[str, str]) -> dict[str, object]:
        res = subprocess.run(
            [sys.executable, "-m", "tether", "doctor", "--json"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        doc = json.loads(res.stdout)
        return next(c for c in doc["checks"] if c["check"] == "processes")

    fallback = doctor(base)
    assert (
        fallback["ok"]
        and "psutil" in str(fallback["detail"])
        and "TETHER_NO_PROCFS" in str(fallback["detail"])
    )
    missing = doctor(
        {**base, "PYTHONPATH": f"{tmp_path / 'shadow'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    )
    assert not missing["ok"]
    detail = str(missing["detail"])
    assert "psutil is not installed" in detail
    assert "running commands" in detail and "environment" in detail and "alive" in detail
