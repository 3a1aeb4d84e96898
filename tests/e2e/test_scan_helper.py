"""The stored-stats check split with a helper process (scan/helper.py, scan/statcheck.py), with
real helper processes: in this process, in the `tether` CLI and hook, and in `tether lsp`
(threads running, stdout the LSP transport). The helper must never change what a scan finds,
must only cost time when it fails, hangs or is not used, and must never be left behind."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import tether.store.head as store_head
from tests.e2e.lsp_harness import start_session
from tests.support.retry import retry_until
from tests.support.trees import old_tree
from tether.checkpoints.checkpointer import Checkpointer
from tether.cli.lsp import LOG_NAME
from tether.scan import helper
from tether.scan.statcheck import VerifyItem, verify_dirs
from tether.store.db import Store
from tether.store.scan_dirs import STAT

SPLIT = "shared with helper"
BIG = helper.MIN_FILES + 400  # the CLI and the server split from MIN_FILES listed files on


def helper_checked(log: str) -> int:
    """How many directories the helper checked, from the debug line of the last shared check."""
    line = [ln for ln in log.splitlines() if SPLIT in ln][-1]
    return int(line.split("the helper ")[1].split(",")[0])


def no_children_left() -> bool:
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def children_of(pid: int) -> list[str]:
    """Processes whose parent is ``pid`` (zombies included), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(f"{entry.name} {fields[0]}")
    return found


def helper_processes(parent: int | None = None, marker: str | None = None) -> list[int]:
    """Running helpers (the stat check script), those of ``parent`` or those whose environment
    holds ``marker``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if helper._SCRIPT.encode() not in (entry / "cmdline").read_bytes():
                continue
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            if parent is not None and ppid != parent:
                continue
            if marker is not None and marker.encode() not in (entry / "environ").read_bytes():
                continue
        except OSError:  # gone meanwhile
            continue
        found.append(int(entry.name))
    return found


def small_tree(root: Path, n: int = 240) -> None:
    (root / ".gitignore").write_text("*.log\n")
    for i in range(n):
        d = root / f"d{i % 12}" / f"s{i % 4}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.txt").write_text(f"{i}\n")


def big_tree(root: Path) -> None:
    old_tree(root, BIG, pkgs=8, mods=160)
    # Let the directories leave the racy-timestamp window (store.head.RACY_NS), or no listing
    # would be kept. A fixed wait, not a poll.
    time.sleep(2.1)


def edit(root: Path) -> set[str]:
    """An in-place same-size rewrite, a deletion and a new file, in the first and the last
    directories (the helper takes the last ones): what a scan must report."""
    (root / "pkg1/m1/f1.py").write_text("y = 1\n")  # same size as "x = 1\n"
    (root / "pkg7/m159/f159.py").unlink()
    (root / "pkg6/m158/new.py").write_text("new\n")
    return {"pkg1/m1/f1.py", "pkg7/m159/f159.py", "pkg6/m158/new.py"}


@pytest.fixture
def items(workspace: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> list[VerifyItem]:
    """A small tree's stored listings, with the helper used for any size."""
    monkeypatch.setattr(store_head, "RACY_NS", 0)  # trust the stats just made
    monkeypatch.setattr(helper, "MIN_FILES", 0)
    small_tree(workspace)
    with Store.open(workspace, state_dir) as store:
        Checkpointer(store).checkpoint("manual")
        _, rows = store.scan_dirs()
    return [(r.dir, r.key, r.files, r.stats) for r in rows]


def edit_every_seventh(workspace: Path, items: list[VerifyItem]) -> None:
    for rel, _, files, _ in items[::7]:
        if files:
            with (workspace / rel / files[0]).open("a") as fh:
                fh.write("edit\n")


def test_the_split_check_gives_the_one_process_result(
    workspace: Path, items: list[VerifyItem], caplog: pytest.LogCaptureFixture
) -> None:
    edit_every_seventh(workspace, items)
    one = verify_dirs(str(workspace), items, STAT.format)
    with caplog.at_level(logging.DEBUG, logger=helper.__name__):
        both = helper.verify_split(str(workspace), items, STAT.format)
    assert SPLIT in caplog.text  # the helper really checked its part
    assert both == one
    assert 0 < len(one) < len(items)  # some directories vouched for, the edited ones not
    assert no_children_left()


def test_a_warm_helper_is_used_and_an_unused_one_let_go(
    workspace: Path,
    items: list[VerifyItem],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    edit_every_seventh(workspace, items)
    one = verify_dirs(str(workspace), items, STAT.format)
    with caplog.at_level(logging.DEBUG, logger=helper.__name__):
        with helper.warmed(len(items)):
            assert helper._warm is not None
            time.sleep(0.05)  # the block's other work
            assert helper.verify_split(str(workspace), items, STAT.format) == one
            assert helper._warm is None  # taken by the check
        [line] = [r.getMessage() for r in caplog.records if SPLIT in r.getMessage()]
        started_before = float(line.split("started ")[1].split(" ms")[0])
        assert started_before >= 50  # the warm one, not a new one
        caplog.clear()
        with helper.warmed(len(items)):
            pass  # no check in the block: let go
        assert helper._warm is None
        # Started before the size is known (a command starting: cli/__init__.py), then asked for
        # again once it is: the first one is kept, none is started beside it.
        with helper.warmed():
            early = helper._warm
            assert early is not None
            with helper.warmed(len(items)):
                assert helper._warm is early
                # (Its command line shows once its exec is through: posix_spawn may return first.)
                retry_until(lambda: helper_processes(os.getpid()) == [early.pid], what="the one helper")
                assert helper.verify_split(str(workspace), items, STAT.format) == one
        assert f"{SPLIT} {early.pid} " in caplog.text  # the early one did its part
        assert helper._warm is None
    assert no_children_left()
    assert capfd.readouterr().err == ""  # told nothing to do, it left without a word


def test_a_helper_that_finishes_its_part_first_leaves_this_process_only_the_rest(
    workspace: Path,
    items: list[VerifyItem],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A slow process (here, 20 ms a directory) meets the helper where the helper's part
    begins: the helper's verdicts stand, even after it has exited."""
    edit_every_seventh(workspace, items)
    one = verify_dirs(str(workspace), items, STAT.format)
    real = helper.Checker

    class Slow(real):  # type: ignore[misc,valid-type]
        def __call__(self, item: VerifyItem) -> bool:
            time.sleep(0.02)
            return bool(super().__call__(item))

    monkeypatch.setattr(helper, "Checker", Slow)
    monkeypatch.setattr(helper, "POLL_FILES", 1)
    with caplog.at_level(logging.DEBUG, logger=helper.__name__):
        got = helper.verify_split(str(workspace), items, STAT.format)
    assert got == one
    lo = next(i for i in range(len(items)) if sum(len(it[2]) for it in items[:i]) >= 240 * helper.HELPER_FROM)
    assert helper_checked(caplog.text) == len(items) - lo  # all of its part, none of the rest
    assert no_children_left()


def test_helpers_that_fail_hang_or_answer_badly_only_cost_time(
    workspace: Path,
    state_dir: Path,
    items: list[VerifyItem],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """This process checks what such a helper leaves, never waiting for it: the same result."""
    edit_every_seventh(workspace, items)
    one = verify_dirs(str(workspace), items, STAT.format)
    last = len(items) - 1
    scripts = {
        "fails": "import sys; sys.stdin.buffer.read(); sys.exit(3)",
        "answers out of range": (
            "import sys, struct; sys.stdin.buffer.read(); sys.stdout.buffer.write(struct.pack('<i', 10**6))"
        ),
        "answers out of order": (
            "import sys, struct; sys.stdin.buffer.read(); "
            f"sys.stdout.buffer.write(struct.pack('<i', {last - 3}))"
        ),
        "answers garbage": "import sys; sys.stdin.buffer.read(); sys.stdout.buffer.write(b'not a record')",
        "never reads": "import time; time.sleep(60)",
        "reads and hangs": "import sys, time; sys.stdin.buffer.read(); time.sleep(60)",
        "vouches for one, then hangs": (
            "import sys, struct, time; sys.stdin.buffer.read(); "
            f"sys.stdout.buffer.write(struct.pack('<i', {last} - {{lo}})); sys.stdout.flush(); time.sleep(60)"
        ),
    }
    lo = next(i for i in range(len(items)) if sum(len(it[2]) for it in items[:i]) >= 240 * helper.HELPER_FROM)
    for name, code in scripts.items():
        script = tmp_path / f"{name.replace(' ', '_').replace(',', '')}.py"
        script.write_text(code.replace("{lo}", str(lo)) + "\n")
        monkeypatch.setattr(helper, "_SCRIPT", str(script))
        started = time.monotonic()
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger=helper.__name__):
            got = helper.verify_split(str(workspace), items, STAT.format)
        assert got == one, name
        assert time.monotonic() - started < 10, name  # never waited for
        assert no_children_left(), name  # stopped and reaped
        assert SPLIT in caplog.text, name
    # Either way a scan from there is still right.
    (workspace / "d0/s0/f0.txt").write_text("changed\n")
    with Store.open(workspace, state_dir) as store:
        assert "d0/s0/f0.txt" in Checkpointer(store).scan_workspace().changed_paths


def test_the_switch_a_missing_interpreter_or_script_mean_one_process(
    workspace: Path,
    items: list[VerifyItem],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    one = verify_dirs(str(workspace), items, STAT.format)
    with caplog.at_level(logging.DEBUG, logger=helper.__name__):
        monkeypatch.setenv(helper.ENV, "0")
        assert helper.verify_split(str(workspace), items, STAT.format) == one
        monkeypatch.delenv(helper.ENV)
        monkeypatch.setattr(sys, "executable", str(workspace / "no-such-python"))
        assert helper.verify_split(str(workspace), items, STAT.format) == one
        monkeypatch.undo()
        monkeypatch.setattr(helper, "MIN_FILES", 0)
        monkeypatch.setattr(helper, "_SCRIPT", str(workspace / "statcheck.pyc-only"))
        assert helper.verify_split(str(workspace), items, STAT.format) == one
    assert SPLIT not in caplog.text
    assert no_children_left()


def tether(
    *args: str, state_dir: Path, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tether", *args],
        cwd=cwd,
        env={**os.environ, "TETHER_STATE_DIR": str(state_dir), **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_scan_and_hook_split_the_check_and_find_every_change(workspace: Path, state_dir: Path) -> None:
    big_tree(workspace)
    first = tether("checkpoint", "-m", "baseline", state_dir=state_dir, cwd=workspace)
    assert first.returncode == 0, first.stderr
    expected = edit(workspace)
    out = tether("-vv", "--json", "status", state_dir=state_dir, cwd=workspace)
    assert out.returncode == 0, out.stderr
    # Shared with a helper (how many directories it took is a race: under load it may take none;
    # test_a_helper_that_finishes_its_part_first_... checks its part with a slowed checker).
    assert SPLIT in out.stderr
    assert set(json.loads(out.stdout)["changedSinceCheckpoint"]) == expected
    # The hook (its helper started before the checkpointer is even imported) checkpoints them.
    event = {"session_id": "", "cwd": str(workspace), "hook_event_name": "PostToolUse", "tool_name": "Bash"}
    hook = tether("hook", "claude-code", state_dir=state_dir, cwd=workspace, stdin=json.dumps(event))
    assert hook.returncode == 0 and hook.stderr == "", hook.stderr
    log = tether("--json", "log", state_dir=state_dir, cwd=workspace)
    assert set(json.loads(log.stdout)["checkpoints"][0]["files"]) == expected
    # Unchanged since: the next process vouches for every directory and finds nothing.
    last = tether("-vv", "--json", "status", state_dir=state_dir, cwd=workspace)
    assert last.returncode == 0, last.stderr
    assert json.loads(last.stdout)["changedSinceCheckpoint"] == []
    assert SPLIT in last.stderr


@pytest.mark.parametrize("event", ["PostToolUse", "SessionStart"])
def test_a_hook_starts_a_helper_before_its_imports_and_never_leaves_it_behind(
    workspace: Path, state_dir: Path, event: str
) -> None:
    """The hook starts the helper before it knows the tree's size or the event: a small tree, or
    an event that does not walk, lets it go before the process ends, and the hook still works."""
    small_tree(workspace)
    mark = str(uuid.uuid4())
    payload = {"session_id": "s1", "cwd": str(workspace), "hook_event_name": event, "tool_name": "Bash"}
    (workspace / "d0/s0/f0.txt").write_text("changed\n")
    res = tether(
        "hook",
        "claude-code",
        state_dir=state_dir,
        cwd=workspace,
        stdin=json.dumps(payload),
        env={"TETHER_TEST_MARK": mark},
    )
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert helper_processes(marker=f"TETHER_TEST_MARK={mark}") == []
    log = tether("--json", "log", state_dir=state_dir, cwd=workspace)
    checkpoints = json.loads(log.stdout)["checkpoints"]
    assert bool(checkpoints) == (event == "PostToolUse")  # the first checkpoint: every file


async def test_lsp_server_splits_the_check_beside_its_threads(workspace: Path, state_dir: Path) -> None:
    big_tree(workspace)
    env = {"TETHER_LOG_LEVEL": "DEBUG"}
    s = await start_session(workspace, state_dir, init_options={"watcher": False}, extra_env=env)
    try:
        await s.wait_status(lambda st: st["state"] == "idle", "first baseline", timeout=60)
    finally:
        await s.stop()
    expected = edit(workspace)
    s = await start_session(workspace, state_dir, init_options={"watcher": False}, extra_env=env)
    try:
        st = await s.wait_status(
            lambda st: st["state"] == "idle" and st["lastCheckpoint"], "second baseline", timeout=60
        )
        assert set(st["lastCheckpoint"]["files"]) == expected
        assert children_of(s.pid) == []  # the helper was reaped
        # The server (and its stdout transport) is fine after it.
        assert (await s.command("tether.status", {}))["state"] == "idle"
    finally:
        await s.stop()
    log = (state_dir / LOG_NAME).read_text()
    assert SPLIT in log, log[-2000:]
    assert SPLIT in log
