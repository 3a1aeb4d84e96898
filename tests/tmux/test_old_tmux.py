"""tmux older than 3.0: every tmux entry point of the CLI says so, once per process.

tmux 2.9 cannot be installed on this machine: :mod:`tests.support.oldtmux` puts a stand-in
``tmux`` first on PATH that reports 2.9 and answers Tether's commands as 2.9 does ("no server
running", usage text). The hand-off's recording side runs on the real tmux (a private server);
the receiving machine has the old one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.gitremote import GIT_ENV, clone, make_project
from tests.support.oldtmux import calls, install_old_tmux, version_calls_per_process
from tests.support.tmuxsrv import PrivateTmux
from tether.store.db import Store
from tether.tmux.link import TmuxLink

MakeLink = Callable[..., TmuxLink]
MESSAGE = "tmux 2.9 is too old; Tether needs ≥ 3.0"


@pytest.fixture
def old(tmp_path: Path) -> Path:
    d = tmp_path / "old-tmux"
    install_old_tmux(d)
    return d


def _tether(
    old: Path, state: Path, *argv: str, cwd: Path | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | GIT_ENV
    env["PATH"] = f"{old / 'bin'}{os.pathsep}{env['PATH']}"
    env.pop("TETHER_TMUX_SOCKET", None)  # the default socket: the stand-in never reaches a server
    return subprocess.run(
        [sys.executable, "-m", "tether", "--state-dir", str(state), *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        input=stdin,
        timeout=60,
        check=False,
    )


def _said_too_old(text: str) -> None:
    assert MESSAGE in text, text
    assert "no tmux server" not in text and "no server running" not in text, text
    assert "usage:" not in text, text


@pytest.mark.parametrize(
    "argv",
    [["start"], ["start", "--attach"], ["attach", "--print"], ["attach", "--no-run"]],
    ids=["start", "start-attach", "attach-print", "attach"],
)
def test_session_commands_say_tmux_is_too_old(
    old: Path, workspace: Path, tmp_path: Path, argv: list[str]
) -> None:
    res = _tether(old, tmp_path / "state", "-C", str(workspace), *argv)
    assert res.returncode == 6, res.stderr
    _said_too_old(res.stderr)
    assert not (tmp_path / "state" / "tmux").exists()  # nothing written for a session that cannot be
    # The version is asked once per process, and nothing else is sent to the old tmux.
    assert list(version_calls_per_process(old).values()) == [1]
    assert calls(old) == ["-V"]


def test_json_error_names_the_reason(old: Path, workspace: Path, tmp_path: Path) -> None:
    res = _tether(old, tmp_path / "state", "-C", str(workspace), "--json", "start")
    assert res.returncode == 6
    err = json.loads(res.stdout)["error"]
    assert err["reason"] == "tmuxTooOld" and MESSAGE in err["message"]


def test_doctor_reports_old_tmux(old: Path, workspace: Path, tmp_path: Path) -> None:
    res = _tether(old, tmp_path / "state", "-C", str(workspace), "--json", "doctor")
    assert res.returncode == 1
    checks = {c["check"]: c for c in json.loads(res.stdout)["checks"]}
    assert checks["tmux"]["ok"] is False and MESSAGE in checks["tmux"]["detail"]
    assert MESSAGE in checks["session"]["detail"]
    assert list(version_calls_per_process(old).values()) == [1]


def test_step_checkpoints_without_tmux_and_says_why_once(old: Path, workspace: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    (workspace / "a.py").write_text("x = 1\n")
    res = _tether(old, state, "-C", str(workspace), "step", "--done", "first", "--next", "second")
    assert res.returncode == 0, res.stderr
    assert res.stderr.count(MESSAGE) == 1 and "tmux panes are not recorded" in res.stderr
    with Store.open(workspace, state) as store:
        latest = store.latest()
        assert latest is not None and "a.py" in latest.files
    assert list(version_calls_per_process(old).values()) == [1]


def test_resume_says_tmux_is_too_old_and_still_prints_the_handoff(
    old: Path, workspace: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    (workspace / "a.py").write_text("x = 1\n")
    assert _tether(old, state, "-C", str(workspace), "step", "--done", "d", "--next", "n1").returncode == 0
    res = _tether(old, state, "-C", str(workspace), "resume")
    assert res.returncode == 0, res.stderr
    _said_too_old(res.stdout + res.stderr)
    assert "n1" in res.stdout
    assert all(n == 1 for n in version_calls_per_process(old).values())


def test_handoff_onto_a_machine_with_old_tmux(
    old: Path, tmp_path: Path, tmux_server: PrivateTmux, make_link: MakeLink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tether.cli import main

    monkeypatch.setenv("TETHER_TMUX_SOCKET", tmux_server.socket_path)
    remote, a = make_project(tmp_path, {"README.md": "x\n"})
    b = clone(remote, tmp_path / "b")
    make_link(a).ensure_session()  # machine A: a real, current tmux
    (a / "README.md").write_text("y\n")
    sa = ["--state-dir", str(tmp_path / "sa")]
    monkeypatch.chdir(a)
    for k, v in GIT_ENV.items():
        monkeypatch.setenv(k, v)
    assert main(["-C", str(a), *sa, "step", "--done", "edit"]) == 0
    assert main(["-C", str(a), *sa, "push", "--as", "alice"]) == 0

    res = _tether(
        old, tmp_path / "sb", "-C", str(b), "--json", "handoff", "origin/alice", "--apply", "--no-run", cwd=b
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert MESSAGE in doc["tmux"]["error"]
    assert (b / "README.md").read_text() == "y\n"  # the files came over all the same
    assert list(version_calls_per_process(old).values()) == [1]
