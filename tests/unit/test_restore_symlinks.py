"""Live content is never read through a symlinked directory (issue 20): a tracked `src/`
replaced by `src -> /outside` used to make `tether diff`, `restore --dry-run` and the LSP
`tether.diff` print the outside file. (The restore write race: tests/e2e/test_restore_race.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.checkpoints import restore as restore_mod
from tether.checkpoints.checkpointer import Checkpointer
from tether.cli import main
from tether.store.db import Store


@pytest.fixture
def store(workspace: Path, state_dir: Path) -> Iterator[Store]:
    s = Store.open(workspace, state_dir)
    yield s
    s.close()


def test_live_content_is_never_read_through_a_symlinked_directory(
    workspace: Path, store: Store, tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.txt").write_text("OUTSIDE SECRET\n")
    (workspace / "src").mkdir()
    (workspace / "src" / "a.txt").write_text("tracked\n")
    Checkpointer(store).checkpoint("manual")
    (workspace / "src" / "a.txt").unlink()
    (workspace / "src").rmdir()
    (workspace / "src").symlink_to(outside)
    diffs = restore_mod.diff(store, 1)
    assert [(d.path, d.status) for d in diffs] == [("src/a.txt", "deleted")]
    assert "OUTSIDE" not in (diffs[0].diff or "")
    planned = restore_mod.plan(store, 1)
    assert all("OUTSIDE" not in (p.diff.diff or "") for p in planned)
    for argv in (["diff", "1"], ["restore", "--dry-run", "1"], ["--json", "diff", "1"]):
        assert main(["-C", str(workspace), *argv]) == 0
        out, _ = capsys.readouterr()
        assert "OUTSIDE" not in out, argv
    assert (outside / "a.txt").read_text() == "OUTSIDE SECRET\n"
