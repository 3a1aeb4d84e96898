"""The change feed on a real directory and a real store (watchdog's inotify observer, no mocks):
what a step looks at when the watcher can vouch for it, and when it walks instead."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.checkpoints.checkpointer import Checkpointer
from tether.protocol import TRIGGER_STEP
from tether.scan.feed import BASELINE, OFF, TRUSTED, ChangeFeed
from tether.store.db import Store


@pytest.fixture
def setup(workspace: Path, state_dir: Path) -> Iterator[tuple[ChangeFeed, Checkpointer]]:
    (workspace / "src").mkdir()
    for i in range(20):
        (workspace / "src" / f"m{i}.py").write_text(f"x = {i}\n")
    store = Store.open(workspace, state_dir)
    cp = Checkpointer(store)
    cp.checkpoint(TRIGGER_STEP, "base", full=True)
    feed = ChangeFeed(store.root, exclude=[state_dir])
    assert feed.start()
    try:
        yield feed, cp
    finally:
        feed.stop()
        store.close()


def walk(feed: ChangeFeed, cp: Checkpointer, checkpointed: bool = False) -> list[str]:
    mark = feed.mark()
    scan = cp.scan_workspace()
    if checkpointed:
        cp.checkpoint(TRIGGER_STEP, "walked", scan=scan, allow_empty=True)
    feed.after_full_scan(scan, mark, checkpointed)
    return scan.changed_paths


def step(feed: ChangeFeed, cp: Checkpointer) -> list[str] | None:
    """What a step through the feed checkpoints; None when it would have to walk."""
    taken = feed.take()
    if taken is None:
        return None
    paths, mark = taken
    scan = cp.scan_told(paths)
    outcome = cp.checkpoint(TRIGGER_STEP, "step", scan=scan, allow_empty=True)
    feed.done(paths, mark)
    assert outcome.info is not None
    return sorted(outcome.info.files)


def test_a_step_sees_what_changed_without_a_walk_after_a_baseline(
    setup: tuple[ChangeFeed, Checkpointer],
) -> None:
    feed, cp = setup
    root = feed.root
    assert feed.state == BASELINE and feed.take() is None  # no baseline yet: walk
    (root / "src" / "m1.py").write_text("changed before the baseline\n")
    assert walk(feed, cp) == ["src/m1.py"]
    assert feed.state == TRUSTED
    # Written just before the step, no pause: sync() makes the watcher deliver it first.
    (root / "src" / "m2.py").write_text("edited\n")
    (root / "src" / "m3.py").unlink()
    (root / "new").mkdir()
    (root / "new" / "deep.py").write_text("made in a new directory\n")
    os.rename(root / "src" / "m4.py", root / "src" / "moved.py")
    assert step(feed, cp) == [
        "new/deep.py",
        "src/m1.py",
        "src/m2.py",
        "src/m3.py",
        "src/m4.py",
        "src/moved.py",
    ]
    assert step(feed, cp) == []  # all in the store: nothing pending any more
    assert feed.pending_count() == 0
    assert walk(feed, cp) == [] and feed.state == TRUSTED  # the walk agrees


def test_a_path_written_again_during_a_step_stays_pending(setup: tuple[ChangeFeed, Checkpointer]) -> None:
    feed, cp = setup
    walk(feed, cp)
    target = feed.root / "src" / "m1.py"
    target.write_text("one\n")
    taken = feed.take()
    assert taken is not None and taken[0] == ["src/m1.py"]
    paths, mark = taken
    scan = cp.scan_told(paths)
    target.write_text("two, while the step runs\n")
    cp.checkpoint(TRIGGER_STEP, "step", scan=scan)
    feed.done(paths, mark)
    assert step(feed, cp) == ["src/m1.py"]  # the second write is the next step's


def test_a_gitignore_change_asks_for_a_new_baseline(setup: tuple[ChangeFeed, Checkpointer]) -> None:
    feed, cp = setup
    walk(feed, cp)
    (feed.root / ".gitignore").write_text("src/m1.py\n")  # m1 leaves the tracked set, no event of its own
    assert feed.take() is None and feed.state == BASELINE
    assert walk(feed, cp, checkpointed=True) == [".gitignore", "src/m1.py"]
    assert feed.state == TRUSTED


def test_a_change_the_watcher_cannot_see_turns_the_feed_off(
    setup: tuple[ChangeFeed, Checkpointer], tmp_path: Path
) -> None:
    feed, cp = setup
    walk(feed, cp)
    # Written through a hard link outside the workspace: inotify reports it on the other
    # directory only, like an edit through another mount of the same files.
    outside = tmp_path / "outside-link.py"
    os.link(feed.root / "src" / "m5.py", outside)
    with outside.open("a") as fh:
        fh.write("# unseen\n")
    assert step(feed, cp) == []  # the feed does not know: the step misses it ...
    assert walk(feed, cp) == ["src/m5.py"]  # ... the next walk finds it, and the watcher out
    assert feed.state == OFF and feed.take() is None and feed.mark() is None


def test_lost_events_ask_for_a_new_baseline(setup: tuple[ChangeFeed, Checkpointer]) -> None:
    feed, cp = setup
    walk(feed, cp)
    feed._on_lost()  # what the watcher calls on an inotify queue overflow
    assert feed.take() is None and feed.state == BASELINE
    walk(feed, cp)
    assert feed.state == TRUSTED


def test_store_writes_inside_the_workspace_are_not_changes(workspace: Path) -> None:
    state = workspace / ".tether-state"
    (workspace / "a.py").write_text("a\n")
    store = Store.open(workspace, state)
    cp = Checkpointer(store)
    feed = ChangeFeed(store.root, exclude=[state], state_dir=state)
    assert feed.start()
    try:
        walk(feed, cp, checkpointed=True)
        (workspace / "a.py").write_text("b\n")
        assert step(feed, cp) == ["a.py"]
        walk(feed, cp)
        assert feed.state == TRUSTED  # the store's own files never count as missed changes
    finally:
        feed.stop()
        store.close()


def test_a_watcher_that_cannot_be_synced_is_not_asked_again(setup: tuple[ChangeFeed, Checkpointer]) -> None:
    feed, cp = setup
    walk(feed, cp)
    assert feed.state == TRUSTED
    feed.stop()  # a dead watcher: sync() cannot vouch for anything
    (feed.root / "src" / "m1.py").write_text("changed\n")
    assert feed.take() is None and feed.state == OFF
    assert feed.mark() is None  # no more waiting on it: every caller walks
    assert walk(feed, cp) == ["src/m1.py"]


def test_sync_marks_are_removed_and_stale_ones_swept(workspace: Path, state_dir: Path) -> None:
    from tether.procs import pid_alive

    gone = 2**22 + 1  # above Linux's pid_max: no such process
    assert not pid_alive(gone)
    stale = workspace / f".tether-sync-{gone}-3.tmp"
    stale.mkdir()
    (workspace / ".tether-sync-1-1.tmp").mkdir()  # pid 1 is alive: not ours to remove
    feed = ChangeFeed(workspace.resolve())
    assert feed.start()
    try:
        assert not stale.exists()
        assert feed.mark() is not None and feed.mark() is not None
        marks = sorted(p.name for p in workspace.iterdir() if p.name.startswith(".tether-sync-"))
        assert marks == [".tether-sync-1-1.tmp"]
    finally:
        feed.stop()
