"""The shell hooks Tether installs in its panes, as shipped (package data files): shellcheck reads
the sh and bash ones, zsh parses the zsh ones, and what a session gets is exactly those bytes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tether.tmux import hooks

HOOKS_DIR = Path(hooks.__file__).with_name("hooks")


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_every_shipped_hook_is_installed() -> None:
    assert sorted(name for _, name in hooks.FILES) == sorted(p.name for p in HOOKS_DIR.iterdir())


@pytest.mark.parametrize("name", ["pane-start.sh", "hook.bash"])
def test_shellcheck_passes(name: str) -> None:
    exe = shutil.which("shellcheck")
    assert exe, "shellcheck is not installed (scripts/bootstrap.sh installs it)"
    res = run([exe, "--norc", str(HOOKS_DIR / name)])
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("name", ["zshenv.zsh", "zprofile.zsh", "zshrc.zsh"])
def test_zsh_parses(name: str) -> None:
    exe = shutil.which("zsh")
    assert exe, "zsh is not installed (scripts/bootstrap.sh installs it)"
    res = run([exe, "-n", str(HOOKS_DIR / name)])
    assert res.returncode == 0, res.stderr


def test_a_broken_hook_is_caught(tmp_path: Path) -> None:
    """The checks above can fail: an unquoted expansion and a zsh syntax error are reported."""
    bad_sh = tmp_path / "bad.sh"
    bad_sh.write_text("# shellcheck shell=sh\nrm -rf $TETHER_REPLAY/x\n")
    assert run(["shellcheck", "--norc", str(bad_sh)]).returncode != 0
    bad_zsh = tmp_path / "bad.zsh"
    bad_zsh.write_text("if [[ -o login ]]; then\n")
    assert run(["zsh", "-n", str(bad_zsh)]).returncode != 0


def test_installed_hooks_are_the_shipped_bytes(tmp_path: Path) -> None:
    d = tmp_path / "tmux"
    d.mkdir(mode=0o700)
    hooks.install(d)
    for rel, name in hooks.FILES:
        assert (d / rel).read_bytes() == (HOOKS_DIR / name).read_bytes()
        assert ((d / rel).stat().st_mode & 0o777) == 0o600
    (d / "hook.bash").write_text("tampered\n")
    hooks.install(d)  # rewritten where it differs
    assert (d / "hook.bash").read_bytes() == (HOOKS_DIR / "hook.bash").read_bytes()
