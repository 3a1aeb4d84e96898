"""Tether's own directories are never reached through a symlink (issue 20, High).

A state dir that ends up inside a repository (a relative ``stateDir``, a ``$TETHER_STATE_DIR``
pointing into a clone) may hold symlinks the repository shipped: ``tmux -> /some/dir`` used to
make Tether chmod that outside directory from 1777 to 0700 and write its hook scripts there.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tether.errors import StoreError
from tether.paths import ensure_private_dir, state_dir
from tether.safefs import SymlinkInPathError, private_dir
from tether.store.db import Store
from tether.tmux.link import TmuxLink


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    d = tmp_path / "outside"
    d.mkdir()
    d.chmod(0o1777)
    return d


def _untouched(d: Path) -> None:
    assert stat.S_IMODE(d.stat().st_mode) == 0o1777
    assert list(d.iterdir()) == []


def test_tmux_dir_shipped_as_a_symlink_is_refused(tmp_path: Path, workspace: Path, outside: Path) -> None:
    state = workspace / ".ts"  # a state dir inside the repository, as a relative stateDir made it
    state.mkdir()
    (state / "tmux").symlink_to(outside)
    link = TmuxLink(workspace, state_dir=state)
    with pytest.raises(SymlinkInPathError, match="symlink"):
        link._install_hooks()
    with pytest.raises(OSError):
        link.history_file("p1")
    _untouched(outside)


def test_nested_state_dirs_and_hook_scripts_are_not_followed(workspace: Path, outside: Path) -> None:
    state = workspace / ".ts"
    link = TmuxLink(workspace, state_dir=state)
    hooks = link._install_hooks()
    assert (hooks / "pane-start.sh").is_file()
    # An agent (or a later checkout) swaps the zsh dir and a hook script for symlinks.
    zsh = hooks / "zsh"
    for f in zsh.iterdir():
        f.unlink()
    zsh.rmdir()
    zsh.symlink_to(outside)
    (hooks / "hook.bash").unlink()
    (hooks / "hook.bash").symlink_to(outside / "written")
    with pytest.raises(SymlinkInPathError):
        link._install_hooks()
    _untouched(outside)


def test_store_below_the_state_dir_is_not_followed(workspace: Path, tmp_path: Path, outside: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "workspaces").symlink_to(outside)
    with pytest.raises(StoreError, match="symlink"):
        Store.open(workspace, state)
    _untouched(outside)


def test_private_dir_creates_0700_and_follows_only_the_users_own_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    alias = tmp_path / "alias"
    alias.symlink_to(real)  # the user's own state dir behind a symlink (another disk): followed
    old = os.umask(0)
    try:
        got = private_dir(alias / "a" / "b", base=alias)
    finally:
        os.umask(old)
    assert got == real / "a" / "b"
    for d in (real, real / "a", real / "a" / "b"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    monkeypatch.setenv("TETHER_STATE_DIR", str(alias))
    assert state_dir() == real
    # ...but nothing below it is.
    (real / "c").symlink_to(real / "a")
    with pytest.raises(SymlinkInPathError):
        ensure_private_dir(real / "c" / "d", real)
    assert not (real / "a" / "d").exists()


def test_private_dir_refuses_a_directory_owned_by_someone_else(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    base = tmp_path / "state"
    (base / "tmux").mkdir(parents=True)
    os.chown(base / "tmux", 65534, 65534)
    (base / "tmux").chmod(0o755)
    with pytest.raises(PermissionError, match="owned by uid 65534"):
        private_dir(base / "tmux" / "x", base)
    assert stat.S_IMODE((base / "tmux").stat().st_mode) == 0o755
