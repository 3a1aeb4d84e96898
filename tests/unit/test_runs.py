"""Recorded runs: storage, output tails, and validity against the workspace.

Executing commands needs a subprocess, so that part is tested in tests/e2e/test_agent_script.py;
here runs are recorded with ``save_run`` against real checkpoints of a real workspace.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether import protocol
from tether.agent import runs as runs_mod
from tether.agent.runs import (
    LiveTree,
    Run,
    changed_since,
    clean_tail,
    current_hashes,
    load_runs,
    run_summaries,
    save_run,
    summarize,
)
from tether.checkpoints.checkpointer import Checkpointer
from tether.store.db import Store


@pytest.fixture
def store(workspace: Path, state_dir: Path) -> Iterator[Store]:
    with Store.open(workspace, state_dir) as s:
        yield s


def checkpoint(store: Store) -> int:
    info = Checkpointer(store).checkpoint(protocol.TRIGGER_MANUAL, full=True, allow_empty=True).info
    assert info is not None
    return info.id


def run(cp: int, code: int = 0, cmd: tuple[str, ...] = ("pytest", "-q")) -> Run:
    return Run(0, list(cmd), ".", code, 1.5, "2026-11-22T06:00:00Z", cp, ["tail"])


def test_runs_are_numbered_and_kept(store: Store) -> None:
    for i in range(3):
        save_run(store, run(1, code=i))
    runs = load_runs(store)
    assert [r.id for r in runs] == [1, 2, 3]
    assert [r.exit_code for r in runs] == [0, 1, 2]
    assert runs[0].command_text == "pytest -q"


def test_unreadable_runs_state_is_ignored(store: Store) -> None:
    store.put_state("runs", b"\x00garbage")
    assert load_runs(store) == []
    store.put_state(
        "runs", json.dumps({"runs": [{"command": []}, 5, {"command": ["ok"], "exitCode": 0}]}).encode()
    )
    assert [r.command for r in load_runs(store)] == [["ok"]]


def test_valid_run_when_nothing_changed(store: Store, workspace: Path) -> None:
    (workspace / "a.py").write_text("a\n")
    cp = checkpoint(store)
    save_run(store, run(cp))
    [s] = run_summaries(store)
    assert not s.stale and s.changed_since == []
    assert (
        s.summary
        == f"`pytest -q` passed at checkpoint {cp}; no tracked file changed since: no need to re-run"
    )
    assert s.to_wire() == {
        "command": "pytest -q",
        "exitCode": 0,
        "checkpoint": cp,
        "stale": False,
        "changedSince": [],
        "summary": s.summary,
    }


def test_stale_run_names_changed_files(store: Store, workspace: Path) -> None:
    (workspace / "a.py").write_text("a\n")
    (workspace / "b.py").write_text("b\n")
    (workspace / "c.py").write_text("c\n")
    cp = checkpoint(store)
    save_run(store, run(cp, code=1))
    # Changed and checkpointed since, changed on disk only, deleted, added, and touched-only.
    (workspace / "a.py").write_text("a2\n")
    checkpoint(store)
    (workspace / "b.py").write_text("b2\n")
    (workspace / "c.py").unlink()
    (workspace / "d.py").write_text("d\n")
    [s] = run_summaries(store)
    assert s.stale
    assert s.changed_since == ["a.py", "b.py", "c.py", "d.py"]
    assert "failed (exit 1)" in s.summary and "4 files changed since: a.py, b.py, c.py, d.py" in s.summary


def test_touching_a_file_without_changing_it_keeps_the_run_valid(store: Store, workspace: Path) -> None:
    (workspace / "a.py").write_text("a\n")
    cp = checkpoint(store)
    save_run(store, run(cp))
    (workspace / "a.py").write_text("a\n")  # same bytes, new mtime
    (workspace / "ignored.log").write_text("x")
    (workspace / ".gitignore").write_text("*.log\n")
    [s] = run_summaries(store)
    # .gitignore itself is a tracked file: it changed.
    assert s.changed_since == [".gitignore"]


def test_latest_run_per_command(store: Store, workspace: Path) -> None:
    (workspace / "a.py").write_text("a\n")
    cp1 = checkpoint(store)
    save_run(store, run(cp1, code=1))
    save_run(store, run(cp1, cmd=("ruff", "check")))
    (workspace / "a.py").write_text("b\n")
    cp2 = checkpoint(store)
    save_run(store, run(cp2, code=0))
    summaries = run_summaries(store)
    assert [(s.command, s.checkpoint, s.exit_code) for s in summaries] == [
        ("pytest -q", cp2, 0),
        ("ruff check", cp1, 0),
    ]
    assert not summaries[0].stale and summaries[1].stale


def test_run_whose_checkpoint_was_collected(store: Store, workspace: Path) -> None:
    (workspace / "a.py").write_text("a\n")
    cp = checkpoint(store)
    save_run(store, run(cp))
    (workspace / "a.py").write_text("b\n")
    checkpoint(store)
    store.gc(keep_last=1)
    [s] = run_summaries(store)
    assert s.stale and "gone (gc)" in s.summary


def test_summary_of_a_failing_run_with_nothing_changed() -> None:
    s = summarize(run(3, code=2), [])
    assert not s.stale and "failed (exit 2)" in s.summary and "fail the same way" in s.summary


def test_clean_tail_strips_escapes_applies_carriage_returns_and_redacts() -> None:
    raw = (
        b"\x1b[32mPASSED\x1b[0m test_a\r\n"
        b"progress 10%\rprogress 50%\rprogress 100%\n"
        b"\x1b]0;title\x07export GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123\n"
        b"password: hunter2hunter2\n" + b"x" * 1000 + b"\n\xff\xfe bad utf8\n\n\n"
    )
    lines = clean_tail(raw)
    assert lines[0] == "PASSED test_a"
    assert lines[1] == "progress 100%"
    assert "ghp_" not in lines[2] and "[REDACTED]" in lines[2]
    assert "hunter2" not in lines[3]
    assert len(lines[4]) == 400 and lines[4].endswith("…")
    assert lines[-1].endswith("bad utf8")
    assert clean_tail(b"\n".join(b"l%d" % i for i in range(500)), lines=5) == [
        f"l{i}" for i in range(495, 500)
    ]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["write", "delete", "checkpoint"]), st.sampled_from(["a", "b", "c", "d/e"])
        ),
        max_size=14,
    ),
    small=st.booleans(),
)
def test_live_tree_delta_walk_matches_a_full_manifest_compare(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, str]], small: bool
) -> None:
    root = tmp_path_factory.mktemp("ws")
    state = tmp_path_factory.mktemp("state")
    with Store.open(root, state) as store:
        (root / "a").write_text("0")
        checkpoint(store)
        for i, (op, name) in enumerate(ops):
            path = root / name
            if op == "write":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(str(i))
            elif op == "delete":
                path.unlink(missing_ok=True)
            else:
                checkpoint(store)
        latest = store.latest()
        assert latest is not None
        with pytest.MonkeyPatch.context() as mp:
            if small:  # force the fallback paths too
                mp.setattr(runs_mod, "MAX_DELTA_CHECKPOINTS", 1)
                mp.setattr(runs_mod, "MAX_DELTA_PATHS", 1)
            live = LiveTree(store)
            current = current_hashes(store, live.scan)
            for n in range(1, latest.id + 1):
                assert live.changed_since(n) == changed_since(store, n, current), n
