"""Panes Tether creates behave like the user's own terminal: login shells, so PATH entries from
~/.bash_profile, ~/.profile or ~/.zprofile (Homebrew, pyenv, nvm) are there, while Tether's
shell hook (per-pane history) still runs and a recreated pane keeps the variables it carried."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.retry import retry_until
from tests.support.tmuxsrv import PrivateTmux
from tests.tmux.conftest import PROMPT, panes_by_uid, run_in
from tether.record import replace
from tether.tmux.env import EnvVar
from tether.tmux.link import TmuxLink

MakeLink = Callable[..., TmuxLink]


def _tool(home: Path) -> Path:
    """An executable only reachable through the PATH entry the login file adds."""
    d = home / "brew" / "bin"
    d.mkdir(parents=True)
    exe = d / "brewed-tool"
    exe.write_text("#!/bin/sh\necho brewed-ok\n")
    exe.chmod(0o755)
    return d


def _probe(srv: PrivateTmux, link: TmuxLink, out: Path, command: str) -> str:
    """What ``command`` prints in the session's first pane (complete: up to an end marker)."""
    run_in(srv, f"={link.session}:", f"{{ {command}; echo @end; }} > {out} 2>&1")
    text: str = retry_until(
        lambda: out.exists() and out.read_text().endswith("@end\n") and out.read_text(), what=command
    )
    return text.removesuffix("@end\n")


def _history(link: TmuxLink, srv: PrivateTmux, text: str) -> None:
    (uid,) = panes_by_uid(srv, link.session)
    hist = link.history_file(uid)
    retry_until(lambda: hist.exists() and text in hist.read_text(), what="the hook's history file")


@pytest.mark.parametrize("login_file", [".bash_profile", ".profile"])
def test_bash_pane_reads_the_login_files(
    tmux_server: PrivateTmux, make_link: MakeLink, workspace: Path, login_file: str
) -> None:
    home = Path(os.environ["HOME"])
    (home / ".bash_profile").unlink()  # the fixture's; each case writes its own login file
    brew = _tool(home)
    (home / login_file).write_text(f'export PATH="{brew}:$PATH"\nexport FROM_LOGIN=yes\n. ~/.bashrc\n')
    link = make_link()
    link.ensure_session()
    out = _probe(tmux_server, link, workspace / "probe.out", 'brewed-tool; echo "login=$FROM_LOGIN"')
    assert out.splitlines() == ["brewed-ok", "login=yes"]
    # Tether's hook ran after the user's files: the pane's history file gets the command.
    _history(link, tmux_server, "brewed-tool")


def test_bash_without_login_files_reads_bashrc(
    tmux_server: PrivateTmux, make_link: MakeLink, workspace: Path
) -> None:
    home = Path(os.environ["HOME"])
    (home / ".bash_profile").unlink()
    with open(home / ".bashrc", "a") as fh:
        fh.write("export FROM_RC=yes\n")
    link = make_link()
    link.ensure_session()
    assert _probe(tmux_server, link, workspace / "p.out", 'echo "rc=$FROM_RC"') == "rc=yes\n"


def test_login_shell_off_reads_only_bashrc(
    tmux_server: PrivateTmux, make_link: MakeLink, workspace: Path
) -> None:
    home = Path(os.environ["HOME"])
    brew = _tool(home)
    (home / ".bash_profile").write_text(f'export PATH="{brew}:$PATH"\n. ~/.bashrc\n')
    link = make_link(login_shell=False)
    link.ensure_session()
    out = _probe(tmux_server, link, workspace / "p.out", "command -v brewed-tool || echo missing")
    assert out == "missing\n"
    _history(link, tmux_server, "brewed-tool")


def test_recreated_pane_keeps_its_variables_over_the_login_files(
    tmux_server: PrivateTmux, make_link: MakeLink, workspace: Path
) -> None:
    home = Path(os.environ["HOME"])
    # /etc/profile resets PATH on Debian; the profile sets MODE: the pane's own values must win.
    (home / ".bash_profile").write_text("export MODE=from-profile\n. ~/.bashrc\n")
    link = make_link()
    link.ensure_session()
    run_in(tmux_server, f"={link.session}:", "true")
    snap = link.snapshot()
    assert snap is not None
    pane = snap.windows[0].panes[0]
    custom_path = f"{workspace}/node_modules/.bin:/usr/bin:/bin"
    pane.env = [
        *pane.env,
        EnvVar("MODE", "project", "restored", "pane"),
        EnvVar("PATH", "project", custom_path, "pane"),
    ]
    snap = replace(snap, env=[*snap.env, EnvVar("SESSION_MODE", "project", "kept", "session")])
    (home / ".bash_profile").write_text("export MODE=from-profile SESSION_MODE=from-profile\n. ~/.bashrc\n")
    tmux_server.kill()
    link.restore(snap)
    out = _probe(tmux_server, link, workspace / "p.out", 'echo "$MODE $SESSION_MODE $PATH"')
    assert out == f"restored kept {custom_path}\n"


@pytest.mark.skipif(
    shutil.which("zsh") is None, reason="zsh not installed (scripts/bootstrap.sh installs it)"
)
def test_zsh_pane_reads_zprofile_and_keeps_the_hook(
    tmux_server: PrivateTmux, make_link: MakeLink, workspace: Path
) -> None:
    home = Path(os.environ["HOME"])
    brew = _tool(home)
    (home / ".zprofile").write_text(f'export PATH="{brew}:$PATH"\n')
    (home / ".zshrc").write_text(f"PROMPT='{PROMPT}'\nexport FROM_ZSHRC=yes\n")
    (home / ".zlogin").write_text("export FROM_ZLOGIN=yes\n")
    link = make_link(shell="zsh")
    link.ensure_session()
    out = _probe(
        tmux_server,
        link,
        workspace / "z.out",
        'brewed-tool; echo "$FROM_ZSHRC $FROM_ZLOGIN"; [[ -o login ]] && echo login; echo "$ZDOTDIR"',
    )
    assert out.splitlines() == ["brewed-ok", "yes yes", "login", str(home)]
    _history(link, tmux_server, "brewed-tool")
