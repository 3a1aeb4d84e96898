"""Fixtures for the tmux link tests: a private tmux server, a temp HOME, a deterministic bash."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.retry import retry_until
from tests.support.tmuxsrv import PrivateTmux
from tether.tmux.config import TmuxConfig
from tether.tmux.link import TmuxLink

PROMPT = "tt$ "


@pytest.fixture(autouse=True)
def _deterministic_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SHELL", "/bin/bash")
    # The user's rc (read by Tether's hook) fixes the prompt; bash reads /etc/bash.bashrc first.
    (home / ".bashrc").write_text(f"PS1='{PROMPT}'\nunset PROMPT_COMMAND\n")
    # Panes a test opens itself run tmux's default login shell.
    (home / ".bash_profile").write_text(". ~/.bashrc\n")
    monkeypatch.delenv("PROMPT_COMMAND", raising=False)
    monkeypatch.delenv("TETHER_TMUX_SOCKET", raising=False)
    return home


@pytest.fixture
def make_link(tmux_server: PrivateTmux, state_dir: Path, workspace: Path) -> Callable[..., TmuxLink]:
    def make(root: Path | None = None, **kw: object) -> TmuxLink:
        cfg = TmuxConfig(socket_path=tmux_server.socket_path, shell="/bin/bash", shell_rc=True)
        for k, v in kw.items():
            setattr(cfg, k, v)
        return TmuxLink(root or workspace, cfg, state_dir=state_dir)

    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def capture(srv: PrivateTmux, target: str, history: bool = True) -> str:
    args = ["capture-pane", "-p", "-J", "-t", target]
    if history:
        args[3:3] = ["-S", "-"]
    res = srv.cmd(*args, check=False)
    return res.stdout if res.returncode == 0 else ""


def wait_prompt(srv: PrivateTmux, target: str) -> None:
    retry_until(lambda: PROMPT.strip() in capture(srv, target), timeout=10, what=f"prompt in {target}")


def run_in(srv: PrivateTmux, target: str, command: str) -> None:
    wait_prompt(srv, target)
    srv.cmd("send-keys", "-t", target, "-l", "--", command)
    srv.cmd("send-keys", "-t", target, "Enter")


def panes_by_uid(srv: PrivateTmux, session: str) -> dict[str, dict[str, str]]:
    fields = [
        "window_index",
        "window_name",
        "window_zoomed_flag",
        "window_active",
        "pane_index",
        "pane_active",
        "pane_current_path",
        "pane_pid",
        "pane_width",
        "pane_height",
        "@tether_pane",
    ]
    res = srv.cmd("list-panes", "-s", "-t", f"={session}:", "-F", "\x1f".join(f"#{{{f}}}" for f in fields))
    out: dict[str, dict[str, str]] = {}
    for line in res.stdout.splitlines():
        row = dict(zip(fields, line.split("\x1f"), strict=True))
        out[row["@tether_pane"]] = row
    return out


def foreground_cmdline(pane_pid: int) -> list[str] | None:
    """The argv of the pane's foreground job, or None when the shell itself is in front."""
    stat = Path(f"/proc/{pane_pid}/stat").read_text()
    tpgid = int(stat.rsplit(")", 1)[1].split()[5])
    if tpgid == pane_pid or tpgid <= 0:
        return None
    try:
        raw = Path(f"/proc/{tpgid}/cmdline").read_bytes()
    except FileNotFoundError:
        return None
    return [a.decode() for a in raw.rstrip(b"\0").split(b"\0")]
