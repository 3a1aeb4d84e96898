"""Generated workspaces for the tests that need a large tree."""

from __future__ import annotations

import os
from pathlib import Path

# An old checkout's file times: no stat is too fresh to vouch for (store.head.RACY_NS).
OLD_NS = 1_700_000_000_000_000_000


def old_tree(root: Path, files: int, *, pkgs: int, mods: int) -> None:
    """``files`` small Python files in ``pkgs`` x ``mods`` directories (``pkg{i % pkgs}/m{i %
    mods}/f{i}.py``, holding ``x = {i}``) and a ``.gitignore``, all dated back. Directory ctimes
    cannot be: a caller that needs their listings kept waits out the racy window itself."""
    (root / ".gitignore").write_text("*.log\n")
    for i in range(files):
        d = root / f"pkg{i % pkgs}" / f"m{i % mods}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.py").write_text(f"x = {i}\n")
    for p in root.rglob("*.py"):
        os.utime(p, ns=(OLD_NS, OLD_NS))
