"""A watcher's dirty set read by another process (scan/dirty.py), here a second store connection
in the same process, the owner a real watcher (watchdog's inotify observer) on a real store: a
whole-workspace scan looks only at what the watcher saw, and walks whenever the watcher cannot
vouch for that (each way it can stop vouching has a test)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.checkpoints.checkpointer import Checkpointer
from tether.protocol import TRIGGER_MANUAL, TRIGGER_STEP
from tether.scan import dirty
from tether.scan.feed import OFF, TRUSTED, ChangeFeed
from tether.scan.result import ScanResult
from tether.scan.scanner import Scanner
from tether.store.db import Store

FILES = 30


@pytest.fixture
def owner(workspace: Path, state_dir: Path) -> Iterator[ChangeFeed]:
    """The long-lived process's side: its store, its checkpointer, its watcher."""
    (workspace / "src").mkdir()
    for i in range(FILES):
        (workspace / "src" / f"m{i}.py").write_text(f"x = {i}\n")
    with Store.open(workspace, state_dir) as store:
        Checkpointer(store).checkpoint(TRIGGER_STEP, "base", full=True)
        feed = ChangeFeed(store.root, exclude=[state_dir], state_dir=state_dir)
        assert feed.start()
        try:
            yield feed
        finally:
            feed.stop()


@pytest.fixture
def reader(workspace: Path, state_dir: Path) -> Iterator[Checkpointer]:
    """Another process's side: its own store connection and a watched checkpointer."""
    with Store.open(workspace, state_dir) as store:
        yield Checkpointer(store, watched=True)


@pytest.fixture(autouse=True)
def short_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dirty, "SYNC_TIMEOUT", 0.5)  # a watcher that does not answer: walk soon


def baseline(feed: ChangeFeed, state_dir: Path) -> None:
    """The owner's whole walk, checkpointed: its dirty set is trusted from there."""
    with Store.open(feed.root, state_dir) as store:
        cp = Checkpointer(store)
        mark = feed.mark()
        outcome = cp.checkpoint(TRIGGER_MANUAL, "walk", full=True, allow_empty=True)
        feed.after_full_scan(outcome.scan, mark, checkpointed=True)


def scan(reader: Checkpointer) -> ScanResult:
    return reader.scan_workspace()


def walked(result: ScanResult) -> bool:
    """Whether the scan walked the workspace; when it did not, it looked below no directory but
    those the watcher reported (a directory moved or made in)."""
    if result.taken is None:
        assert result.walked > 0
        return True
    assert result.walked <= len(result.taken.rows)
    return False


def test_without_a_watcher_a_command_walks(workspace: Path, state_dir: Path, reader: Checkpointer) -> None:
    (workspace / "a.txt").write_text("a\n")
    result = scan(reader)
    assert walked(result) and result.changed_paths == ["a.txt"]


def test_a_trusted_watcher_is_read_instead_of_walking(
    owner: ChangeFeed, state_dir: Path, reader: Checkpointer, monkeypatch: pytest.MonkeyPatch
) -> None:
    baseline(owner, state_dir)
    assert owner.state == TRUSTED
    root = owner.root
    # Made just before the command, no pause: the sync mark makes the watcher write it first.
    (root / "src" / "m1.py").write_text("edited\n")
    (root / "src" / "m2.py").unlink()
    (root / "new").mkdir()
    (root / "new" / "deep.py").write_text("in a new directory\n")
    os.rename(root / "src" / "m3.py", root / "src" / "moved.py")
    monkeypatch.setattr(Scanner, "full_scan", lambda *a, **k: pytest.fail("walked"))
    result = scan(reader)
    assert not walked(result)
    expected = ["new/deep.py", "src/m1.py", "src/m2.py", "src/m3.py", "src/moved.py"]
    assert result.changed_paths == expected
    outcome = reader.checkpoint(TRIGGER_STEP, "step", full=True)
    assert outcome.info is not None and list(outcome.info.files) == expected
    # In the store now: off the dirty set, and the next command finds nothing to look at.
    assert owner.pending_count() == 0
    again = scan(reader)
    assert not walked(again) and again.changed_paths == [] and again.scope == []


def test_before_its_first_whole_walk_a_watcher_vouches_for_nothing(
    owner: ChangeFeed, reader: Checkpointer
) -> None:
    (owner.root / "src" / "m1.py").write_text("edited\n")
    result = scan(reader)
    assert walked(result) and result.changed_paths == ["src/m1.py"]


def test_lost_events_mean_a_walk_until_the_next_whole_walk(
    owner: ChangeFeed, state_dir: Path, reader: Checkpointer
) -> None:
    baseline(owner, state_dir)
    owner._on_lost()  # what the watcher calls on an inotify queue overflow
    (owner.root / "src" / "m1.py").write_text("edited\n")
    assert walked(scan(reader))
    baseline(owner, state_dir)
    (owner.root / "src" / "m2.py").write_text("edited\n")
    result = scan(reader)
    assert not walked(result) and result.changed_paths == ["src/m2.py"]


def test_a_gitignore_change_means_a_walk(owner: ChangeFeed, state_dir: Path, reader: Checkpointer) -> None:
    baseline(owner, state_dir)
    (owner.root / ".gitignore").write_text("src/m1.py\n")  # m1 leaves the tracked set, no event of its own
    result = scan(reader)
    assert walked(result) and result.changed_paths == [".gitignore", "src/m1.py"]


def test_a_stopped_watcher_leaves_nothing_to_trust(
    owner: ChangeFeed, state_dir: Path, reader: Checkpointer
) -> None:
    baseline(owner, state_dir)
    owner.stop()
    (owner.root / "src" / "m1.py").write_text("edited\n")
    assert walked(scan(reader))


def test_a_watcher_that_does_not_answer_is_not_trusted(
    owner: ChangeFeed, state_dir: Path, reader: Checkpointer
) -> None:
    baseline(owner, state_dir)
    owner._watcher.stop()  # its thread is gone, its row stays (a hung or wedged server)
    (owner.root / "src" / "m1.py").write_text("edited\n")
    result = scan(reader)
    assert walked(result) and result.changed_paths == ["src/m1.py"]
    assert not [p for p in owner.root.iterdir() if p.name.startswith(".tether-sync-")]  # mark removed


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE watchers SET pid=4194304",  # above Linux's pid_max: the process is gone
        "UPDATE watchers SET started=started+1",  # its pid runs another process now
        "UPDATE watchers SET boot='another boot'",  # a row from before a reboot
    ],
)
def test_a_watcher_of_a_process_that_is_gone_is_not_trusted(
    owner: ChangeFeed, state_dir: Path, reader: Checkpointer, change: str
) -> None:
    baseline(owner, state_dir)
    with reader.store.write() as tx:
        tx.execute(change)
    (owner.root / "src" / "m1.py").write_text("edited\n")
    result = scan(reader)
    assert walked(result) and result.changed_paths == ["src/m1.py"]


def test_a_change_of_the_excludes_file_means_a_walk(
    workspace: Path, state_dir: Path, reader: Checkpointer
) -> None:
    """info/exclude lives in .git, which the watcher does not watch: the reader compares it."""
    (workspace / ".git" / "info").mkdir(parents=True)
    (workspace / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    exclude = workspace / ".git" / "info" / "exclude"
    exclude.write_text("*.log\n")
    (workspace / "a.log").write_text("log\n")
    with Store.open(workspace, state_dir) as store:
        Checkpointer(store).checkpoint(TRIGGER_STEP, "base", full=True)
    feed = ChangeFeed(workspace, exclude=[state_dir], state_dir=state_dir)
    assert feed.start()
    try:
        baseline(feed, state_dir)
        result = scan(reader)
        assert not walked(result) and result.changed_paths == []
        exclude.write_text("# nothing ignored now\n")  # a.log joins the tracked set, no event
        result = scan(reader)
        assert walked(result) and result.changed_paths == ["a.log"]
    finally:
        feed.stop()


def test_other_scanner_settings_mean_a_walk(owner: ChangeFeed, state_dir: Path, workspace: Path) -> None:
    baseline(owner, state_dir)
    with Store.open(workspace, state_dir) as store:
        other = Checkpointer(store, max_file_bytes=10, watched=True)  # another size cap
        assert walked(other.scan_workspace())


def test_a_watcher_that_missed_a_change_is_never_read_again(
    owner: ChangeFeed, state_dir: Path, reader: Checkpointer, tmp_path: Path
) -> None:
    baseline(owner, state_dir)
    # Written through a hard link outside the workspace: inotify reports it on the other
    # directory only, like an edit through another mount of the same files.
    outside = tmp_path / "outside-link.py"
    os.link(owner.root / "src" / "m5.py", outside)
    with outside.open("a") as fh:
        fh.write("# unseen\n")
    baseline(owner, state_dir)  # the owner's next whole walk finds what its watcher missed
    assert owner.state == OFF
    (owner.root / "src" / "m1.py").write_text("edited\n")
    assert walked(scan(reader))


def test_a_path_written_again_during_a_command_stays_dirty(
    owner: ChangeFeed, state_dir: Path, reader: Checkpointer
) -> None:
    baseline(owner, state_dir)
    target = owner.root / "src" / "m1.py"
    target.write_text("one\n")
    result = scan(reader)
    assert result.changed_paths == ["src/m1.py"]
    target.write_text("two, while the command runs\n")
    outcome = reader.checkpoint(TRIGGER_STEP, "step", scan=result)
    assert outcome.info is None  # what was read is not current any more: left out
    again = scan(reader)  # the second write is the next command's
    assert not walked(again) and again.changed_paths == ["src/m1.py"]


def test_a_command_that_read_the_dirty_set_keeps_the_stored_listings(
    owner: ChangeFeed, state_dir: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A watched command lists no directory: it must not replace the listings a whole walk stored
    (the next unwatched command would list every directory again), and a hook that finds nothing
    changed writes no transaction at all."""
    import tether.store.head as store_head

    monkeypatch.setattr(store_head, "RACY_NS", 0)  # every file vouched for: the walk keeps listings
    baseline(owner, state_dir)
    with Store.open(workspace, state_dir) as store:
        stored = sorted(r.dir for r in store.scan_dirs()[1])
    assert {"", "src"} <= set(stored)
    (workspace / "src" / "m1.py").write_text("edited\n")
    with Store.open(workspace, state_dir) as store:
        cp = Checkpointer(store, watched=True)
        outcome = cp.checkpoint(TRIGGER_STEP, "step", full=True)
        assert outcome.scan.taken is not None and outcome.info is not None
        assert list(outcome.info.files) == ["src/m1.py"]
        assert sorted(r.dir for r in store.scan_dirs()[1]) == stored
    # Nothing changed since: the hook's scan takes an empty dirty set and writes nothing.
    from tether.cli import hook

    with Store.open(workspace, state_dir) as store:
        cp = Checkpointer(store, watched=True)
        writes: list[int] = []
        real_write = store.write

        def counted() -> object:
            writes.append(1)
            return real_write()

        store.write = counted  # type: ignore[method-assign]
        result = cp.scan_workspace()
        assert result.taken is not None and not result.taken.rows and not result.changes
        hook._keep_scan(cp, result)
        assert writes == []
        assert sorted(r.dir for r in store.scan_dirs()[1]) == stored


def test_a_hook_after_a_step_finds_nothing_to_look_at(
    owner: ChangeFeed,
    state_dir: Path,
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The step rewrites .agent-session.json in the workspace and the watcher reports it (its own
    server imports it): the next hook, which imports it itself, still has nothing to scan."""
    import json
    import sys

    from tether.cli import hook
    from tether.scan.scanner import Scanner

    baseline(owner, state_dir)
    (workspace / ".agent-session.json").write_text('{"task": "t"}\n')
    with Store.open(workspace, state_dir) as store:
        taken = dirty.take(store, Scanner(store.root).fingerprint())
        assert taken is not None and list(taken.rows) == [".agent-session.json"]
        # Its sync mark, made and removed by that take, is no change either.
        again = dirty.take(store, Scanner(store.root).fingerprint())
        assert again is not None and list(again.rows) == [".agent-session.json"]
    monkeypatch.setattr(Scanner, "scan_paths", lambda *a, **k: pytest.fail("scanned"))
    event = {"hook_event_name": "PostToolUse", "tool_name": "Read", "cwd": str(workspace)}
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO(json.dumps(event)))
    assert hook.cmd_hook(hook.HookArgs("claude-code", str(workspace), str(state_dir))) == 0
    assert "tether hook:" not in capsys.readouterr().err


def marks(root: Path) -> list[str]:
    return [p.name for p in root.iterdir() if p.name.startswith(dirty.MARK_PREFIX)]


def test_a_step_s_scan_waits_for_the_sync_it_started_before_its_other_work(
    owner: ChangeFeed, state_dir: Path, reader: Checkpointer, monkeypatch: pytest.MonkeyPatch
) -> None:
    baseline(owner, state_dir)
    (owner.root / "src" / "m1.py").write_text("edited before the step\n")
    monkeypatch.setattr(Scanner, "full_scan", lambda *a, **k: pytest.fail("walked"))
    with reader.workspace_changes() as changes:
        assert len(marks(owner.root)) == 1  # the sync started as the block was entered
        (owner.root / "src" / "m2.py").write_text("edited during the step's own work\n")
        result = changes()
        assert not marks(owner.root)
    assert not walked(result) and "src/m1.py" in result.changed_paths
    outcome = reader.checkpoint(TRIGGER_STEP, "step", scan=result)
    assert outcome.info is not None and "src/m1.py" in outcome.info.files
    # A change after the mark is this step's when the watcher's answer came after it, else
    # the next command's: never lost.
    assert ("src/m2.py" in outcome.info.files) != ("src/m2.py" in scan(reader).changed_paths)


def test_a_step_that_fails_before_its_scan_removes_its_mark_without_waiting(
    owner: ChangeFeed, state_dir: Path, reader: Checkpointer, monkeypatch: pytest.MonkeyPatch
) -> None:
    baseline(owner, state_dir)
    monkeypatch.setattr(dirty, "_wait_for", lambda *a: pytest.fail("waited for an answer nobody wants"))
    with pytest.raises(RuntimeError), reader.workspace_changes():
        assert len(marks(owner.root)) == 1
        raise RuntimeError("e.g. a step without a message")
    assert not marks(owner.root)


def test_unwatched_or_without_a_watcher_a_step_s_scan_walks(
    workspace: Path, state_dir: Path, reader: Checkpointer
) -> None:
    (workspace / "a.txt").write_text("a\n")
    with reader.workspace_changes() as changes:
        assert not marks(workspace)
        result = changes()
    assert walked(result) and result.changed_paths == ["a.txt"]
    with Store.open(workspace, state_dir) as store, Checkpointer(store).workspace_changes() as changes:
        assert changes().changed_paths == ["a.txt"]
