"""Shared fixtures. Tier markers come from the folder: tests/unit, tests/tmux, tests/e2e."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.tmuxsrv import PrivateTmux, private_tmux_server

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] in ("unit", "tmux", "e2e"):
            item.add_marker(getattr(pytest.mark, parts[0]))


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private store location; also exported so subprocesses (CLI, server) use it."""
    d = tmp_path / "state"
    monkeypatch.setenv("TETHER_STATE_DIR", str(d))
    return d


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws.resolve()


@pytest.fixture
def tmux_server() -> Iterator[PrivateTmux]:
    """A real tmux server on a private socket under a short /tmp dir; killed by socket after."""
    with private_tmux_server() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _no_default_tmux(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing under test may reach the user's default tmux server by accident.
    monkeypatch.delenv("TMUX", raising=False)
    monkeypatch.delenv("TMUX_PANE", raising=False)
    os.environ.setdefault("TETHER_TEST", "1")
