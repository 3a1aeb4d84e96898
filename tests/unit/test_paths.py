"""Workspace path safety and private files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tether.errors import OutsideWorkspaceError
from tether.paths import ensure_private_dir, normalize_rel, safe_target, state_dir, write_private_file


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("a.txt", "a.txt"),
        ("./d/../d/b.txt", "d/b.txt"),
        ("d//c.txt", "d/c.txt"),
        ("ünï/ファイル name.txt", "ünï/ファイル name.txt"),
    ],
)
def test_normalize_rel_accepts(workspace: Path, raw: str, want: str) -> None:
    assert normalize_rel(workspace, raw) == want
    assert normalize_rel(workspace, str(workspace / raw)) == want


@pytest.mark.parametrize("raw", ["../x", "d/../../x", "/etc/passwd", "", ".", "a\x00b"])
def test_normalize_rel_rejects(workspace: Path, raw: str) -> None:
    with pytest.raises(OutsideWorkspaceError):
        normalize_rel(workspace, raw)


def test_symlinked_parent_pointing_outside_is_rejected(workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (workspace / "escape").symlink_to(outside)
    with pytest.raises(OutsideWorkspaceError, match="through a symlink"):
        normalize_rel(workspace, "escape/x.txt")
    with pytest.raises(OutsideWorkspaceError):
        safe_target(workspace, "escape/x.txt")


def test_symlink_deep_below_the_root_is_followed_like_realpath(workspace: Path, tmp_path: Path) -> None:
    # Only the directories below the root are looked at for symlinks (the root is resolved):
    # a link at any depth is resolved, and judged by where it leads.
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    deep = workspace / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "escape").symlink_to(outside)
    (deep / "inner").symlink_to(workspace / "a")
    (workspace / "a" / "file").write_text("x")
    for raw in ("a/b/escape/x.txt", "a/b/escape/sub/x.txt", "a/b/inner/b/escape/x.txt"):
        with pytest.raises(OutsideWorkspaceError, match="through a symlink"):
            normalize_rel(workspace, raw)
    assert normalize_rel(workspace, "a/b/inner/b/x.txt") == "a/b/inner/b/x.txt"
    assert normalize_rel(workspace, "a/missing/deeper/x.txt") == "a/missing/deeper/x.txt"
    assert normalize_rel(workspace, "a/file/x.txt") == "a/file/x.txt"


def test_symlinked_alias_of_root_is_accepted(workspace: Path, tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(workspace)
    assert normalize_rel(workspace, str(alias / "f.txt")) == "f.txt"


def test_safe_target_requires_normal_form(workspace: Path) -> None:
    assert safe_target(workspace, "d/x") == workspace / "d/x"
    with pytest.raises(OutsideWorkspaceError, match="normal form"):
        safe_target(workspace, "d/./x")


def test_state_dir_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_STATE_DIR", str(tmp_path / "env-state"))
    assert state_dir() == tmp_path / "env-state"
    assert state_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert stat.S_IMODE((tmp_path / "env-state").stat().st_mode) == 0o700


def test_private_dir_and_file_under_umask_000(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        d = ensure_private_dir(tmp_path / "a" / "b")
        write_private_file(d / "f.json", b"{}")
        write_private_file(d / "f.json", b"[]")  # replace keeps it private
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((d / "f.json").stat().st_mode) == 0o600
    assert (d / "f.json").read_bytes() == b"[]"
    assert [p.name for p in d.iterdir()] == ["f.json"]  # no temp file left behind


def test_ensure_private_dir_on_a_file_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(OSError):
        ensure_private_dir(tmp_path / "f")
