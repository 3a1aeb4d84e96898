"""The server-side watcher on a real directory (watchdog's inotify observer, no mocks)."""

from __future__ import annotations

import threading
from pathlib import Path

from tests.support.retry import retry_until
from tether.scan.watcher import Watcher


def _collect(root: Path, **kw: object) -> tuple[Watcher, list[list[str]]]:
    batches: list[list[str]] = []
    lock = threading.Lock()

    def on_paths(paths: list[str]) -> None:
        with lock:
            batches.append(paths)

    w = Watcher(root, on_paths, debounce=0.2, **kw)  # type: ignore[arg-type]
    w.start()
    return w, batches


def test_reports_workspace_writes_in_batches(workspace: Path) -> None:
    (workspace / ".gitignore").write_text("dist/\n")
    (workspace / "node_modules").mkdir()
    (workspace / "dist").mkdir()
    w, batches = _collect(workspace)
    try:
        for i in range(30):
            (workspace / f"f{i}.py").write_text("x")
        (workspace / "node_modules" / "dep.js").write_text("x")
        (workspace / "dist" / "bundle.js").write_text("x")
        (workspace / ".git").mkdir()
        (workspace / ".git" / "index").write_text("x")
        (workspace / ".agent-session.json").write_text("{}")
        seen = retry_until(
            lambda: (s := {p for b in batches for p in b}) >= {f"f{i}.py" for i in range(30)} and s,
            timeout=10,
            what="all writes reported",
        )
        retry_until(lambda: ".agent-session.json" in {p for b in batches for p in b}, timeout=10)
        seen = {p for b in batches for p in b}
        assert not any(p.startswith(("node_modules", "dist", ".git/")) for p in seen), seen
        assert len(batches) < 30  # debounced: not one callback per file
    finally:
        w.stop()


def test_state_dir_inside_workspace_is_excluded(workspace: Path) -> None:
    state = workspace / "state"
    state.mkdir()
    w, batches = _collect(workspace, exclude=[state])
    try:
        (state / "tether.db").write_text("x")
        (workspace / "real.py").write_text("x")
        retry_until(lambda: any("real.py" in b for b in batches), timeout=10)
        assert not any(p.startswith("state") for b in batches for p in b)
    finally:
        w.stop()


def test_stop_is_clean_and_idempotent(workspace: Path) -> None:
    before = {t.name for t in threading.enumerate()}
    w, _ = _collect(workspace)
    w.stop()
    w.stop()
    assert "tether-watch" not in {t.name for t in threading.enumerate()} - before
