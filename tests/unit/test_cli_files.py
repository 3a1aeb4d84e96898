"""`tether checkpoint|log|diff|restore|status|gc` in-process: output, --json, exit codes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tether.cli import main
from tether.errors import BadParamsError, NoCheckpointError, OutsideWorkspaceError, StoreError


class Cli:
    def __init__(self, workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.workspace = workspace
        self.capsys = capsys

    def run(self, *argv: str) -> tuple[int, str, str]:
        code = main(["-C", str(self.workspace), *argv])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *argv: str, code: int = 0) -> Any:
        got, out, err = self.run("--json", *argv)
        assert got == code, (out, err)
        return json.loads(out)


@pytest.fixture
def cli(workspace: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(workspace, capsys)


def write(root: Path, rel: str, data: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(data)


def test_checkpoint_log_and_json(cli: Cli, workspace: Path) -> None:
    write(workspace, "a.txt", "1\n")
    code, out, _ = cli.run("checkpoint", "-m", "first")
    assert code == 0 and out.startswith("checkpoint 1: 1 file changed")
    write(workspace, "b.txt", "2\n")
    data = cli.json("checkpoint")
    assert data["id"] == 2 and data["files"] == ["b.txt"] and data["trigger"] == "manual"
    # --json accepted before the subcommand as well.
    code, out, _ = cli.run("--json", "log")
    assert code == 0
    log = json.loads(out)
    assert [c["id"] for c in log["checkpoints"]] == [2, 1]
    assert log["checkpoints"][1]["message"] == "first"
    code, out, _ = cli.run("log")
    assert "first" in out and "manual" in out
    assert len(cli.json("log", "-n", "1")["checkpoints"]) == 1
    # ... and after it, for every file command.
    for argv in (
        ["log"],
        ["status"],
        ["diff", "1"],
        ["diff", "1", "2", "--stat"],
        ["restore", "1", "--dry-run"],
    ):
        code, out, _ = cli.run(*argv, "--json")
        assert code == 0 and isinstance(json.loads(out), dict), argv


def test_checkpoint_told_paths(cli: Cli, workspace: Path) -> None:
    write(workspace, "a.txt", "1\n")
    write(workspace, "b.txt", "1\n")
    data = cli.json("checkpoint", "a.txt")
    assert data["files"] == ["a.txt"]


def test_checkpoint_reports_skipped(cli: Cli, workspace: Path) -> None:
    write(workspace, "ok.txt", "1\n")
    (workspace / "link").symlink_to(workspace / "ok.txt")
    data = cli.json("checkpoint")
    assert [s["path"] for s in data["skipped"]] == ["link"]
    code, out, _ = cli.run("status")
    assert code == 0 and "skipped    link: symlink" in out


def test_diff_forms(cli: Cli, workspace: Path) -> None:
    write(workspace, "a.txt", "one\n")
    write(workspace, "2", "a file named like a checkpoint\n")
    cli.run("checkpoint")
    write(workspace, "a.txt", "two\n")
    write(workspace, "2", "changed\n")
    cli.run("checkpoint")
    write(workspace, "a.txt", "three\n")

    both = cli.json("diff", "1", "2")
    assert {f["path"] for f in both["files"]} == {"a.txt", "2"}
    only = cli.json("diff", "1", "2", "--", "a.txt")
    assert [f["path"] for f in only["files"]] == ["a.txt"] and only["to"] == 2
    assert "+two" in only["files"][0]["diff"]
    live = cli.json("diff", "1", "--", "a.txt")
    assert live["to"] is None and "+three" in live["files"][0]["diff"]
    # After `--`, "2" is a path, not checkpoint B.
    named = cli.json("diff", "1", "--", "2")
    assert named["to"] is None and [f["path"] for f in named["files"]] == ["2"]
    code, out, _ = cli.run("diff", "1", "2", "--stat")
    assert code == 0 and sorted(out.split("\n")[:2]) == ["M 2", "M a.txt"]
    code, out, _ = cli.run("diff", "2", "a.txt")
    assert out.startswith("--- checkpoint-2/a.txt\n+++ live/a.txt\n")


def test_restore_paths_dry_run_then_real_then_undo(cli: Cli, workspace: Path) -> None:
    write(workspace, "a.txt", "one\n")
    write(workspace, "b.txt", "bee\n")
    cli.run("checkpoint")
    write(workspace, "a.txt", "two\n")
    write(workspace, "b.txt", "BEE\n")

    code, out, _ = cli.run("restore", "1", "a.txt", "--dry-run")
    assert code == 0 and "-two\n+one\n" in out and "nothing was written" in out
    assert (workspace / "a.txt").read_text() == "two\n"
    dry = cli.json("restore", "1", "a.txt", "--dry-run")
    assert dry["dryRun"] and [f["path"] for f in dry["files"]] == ["a.txt"]
    assert dry["undoCheckpoint"] is None

    done = cli.json("restore", "1", "a.txt")
    assert (workspace / "a.txt").read_text() == "one\n"
    assert (workspace / "b.txt").read_text() == "BEE\n"  # not asked for
    undo = done["undoCheckpoint"]
    code, out, _ = cli.run("restore", str(undo))
    assert code == 0 and "restored 1 file" in out
    assert (workspace / "a.txt").read_text() == "two\n"
    code, out, _ = cli.run("restore", str(undo), "a.txt")
    assert "nothing to restore" in out


def test_status_text_and_json(cli: Cli, workspace: Path) -> None:
    code, out, _ = cli.run("status")
    assert code == 0 and "no checkpoint yet" in out
    write(workspace, "a.txt", "1\n")
    cli.run("checkpoint", "-m", "base")
    write(workspace, "a.txt", "2\n")
    data = cli.json("status")
    assert data["lastCheckpoint"]["id"] == 1 and data["changedSinceCheckpoint"] == ["a.txt"]
    assert data["workspace"] == str(workspace)
    code, out, _ = cli.run("status")
    assert "checkpoint 1" in out and "base" in out and "changed    1 file since: a.txt" in out


def test_status_includes_the_agent_side(cli: Cli, workspace: Path) -> None:
    write(workspace, "a.txt", "1\n")
    assert cli.run("step", "--done", "wrote a", "--next", "test a", "--task", "the task")[0] == 0
    data = cli.json("status")
    assert data["agent"]["task"] == "the task" and data["agent"]["nextSteps"] == ["test a"]
    assert data["agent"]["lastStep"]["message"] == "wrote a" and data["runs"] == []
    out = cli.run("status")[1]
    assert "task       the task" in out and "next       1. test a" in out


def test_gc_options(cli: Cli, workspace: Path) -> None:
    for i in range(6):
        write(workspace, "a.txt", f"{i}\n")
        cli.run("checkpoint")
    data = cli.json("gc", "--keep", "3")
    assert sorted(data["removedCheckpoints"]) == [1, 2, 3]
    assert [c["id"] for c in cli.json("log")["checkpoints"]] == [6, 5, 4]
    assert cli.json("gc", "--max-age-days", "30")["removedCheckpoints"] == []
    data = cli.json("gc", "--max-size", "0")
    assert sorted(data["removedCheckpoints"]) == [4, 5]
    code, out, _ = cli.run("gc", "--max-size", "1.5G")
    assert code == 0 and "removed 0 checkpoints" in out
    code, out, _ = cli.run("diff", "6", "--", "a.txt")
    assert code == 0 and out == ""


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["gc"], BadParamsError.exit_code),
        (["gc", "--max-size", "lots"], BadParamsError.exit_code),
        (["gc", "--max-size", "-5M"], BadParamsError.exit_code),
        (["gc", "--keep", "-1"], 2),
        (["gc", "--max-age-days", "soon"], 2),
        (["log", "-n", "0"], 2),
        (["restore", "0"], 2),
        (["restore", "abc"], 2),
        (["diff"], 2),
        (["diff", "1", "--bogus"], BadParamsError.exit_code),
        (["log", "--no-such-flag"], 2),
        (["no-such-command"], 2),
        (["restore", "7"], NoCheckpointError.exit_code),
        (["diff", "7"], NoCheckpointError.exit_code),
        (["restore", "1", "../outside.txt"], OutsideWorkspaceError.exit_code),
        (["restore", "1", "/etc/passwd"], OutsideWorkspaceError.exit_code),
    ],
)
def test_errors_exit_codes_and_json(cli: Cli, workspace: Path, argv: list[str], expected: int) -> None:
    write(workspace, "a.txt", "1\n")
    cli.run("checkpoint")
    code, out, err = cli.run(*argv)
    assert code == expected
    assert out == "" and "tether: error: " in err and "Traceback" not in err
    data = cli.json(*argv, code=expected)
    assert set(data) == {"error"} and data["error"]["message"]
    assert data["error"]["reason"] in {"badParams", "noCheckpoint", "outsideWorkspace"}


def test_corrupt_store_exit_code_and_message(cli: Cli, workspace: Path, state_dir: Path) -> None:
    write(workspace, "a.txt", "1\n")
    cli.run("checkpoint")
    [db] = list(state_dir.glob("workspaces/*/tether.db"))
    for side in db.parent.glob("tether.db-*"):
        side.unlink()
    db.write_bytes(b"this is not sqlite at all" * 100)
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    data = cli.json("log", code=StoreError.exit_code)
    assert data["error"]["reason"] == "storeError" and "corrupt" in data["error"]["message"]
    code, _, err = cli.run("checkpoint")
    assert code == StoreError.exit_code and "Move it aside" in err
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before


def test_workspace_must_exist(state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["-C", str(tmp_path / "missing"), "--json", "log"])
    data = json.loads(capsys.readouterr().out)
    assert code == 2 and "not a directory" in data["error"]["message"]


def test_help_and_version_return_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert "tether" in capsys.readouterr().out
    assert main(["diff", "--help"]) == 0
    assert "[-- PATH ...]" in capsys.readouterr().out


def test_workspace_found_from_subdirectory(
    cli: Cli, workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (workspace / ".git").mkdir()
    write(workspace, "src/a.py", "x\n")
    monkeypatch.chdir(workspace / "src")
    assert main(["--json", "checkpoint"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["files"] == ["src/a.py"]
    assert os.getcwd() == str(workspace / "src")


@pytest.mark.parametrize(
    "argv",
    [
        ["restore", "99999999999999999999"],
        ["restore", "--dry-run", "9223372036854775808"],
        ["diff", "99999999999999999999"],
        ["diff", "1", "99999999999999999999"],
        ["log", "-n", "99999999999999999999"],
        ["steps", "-n", "99999999999999999999"],
        ["gc", "--keep", "99999999999999999999"],
    ],
)
def test_numbers_out_of_range_are_a_clear_error(cli: Cli, workspace: Path, argv: list[str]) -> None:
    # SQLite integers are 64-bit: these used to end in an OverflowError traceback (issue 20).
    write(workspace, "a.txt", "1\n")
    cli.run("checkpoint")
    code, out, err = cli.run(*argv)
    assert code == 2, (out, err)
    assert "out of range" in err and "Traceback" not in err
    data = cli.json(*argv, code=2)
    assert data["error"]["reason"] == "badParams" and "out of range" in data["error"]["message"]


def test_diff_against_the_live_tree_reads_only_what_the_stat_cache_cannot_vouch_for(
    cli: Cli, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tether diff N --stat`: a file whose stat matches head is compared by hash, neither it
    nor its blob read; changed, new and deleted files are found as before."""
    from tether.checkpoints import restore as restore_mod
    from tether.store.db import Store

    for i in range(20):
        write(workspace, f"src/m{i}.py", f"v = {i}\n")
    old = (os.stat(workspace).st_mtime_ns // 10**9 - 3600) * 10**9
    for i in range(20):
        os.utime(workspace / f"src/m{i}.py", ns=(old, old))  # outside the racy window
    cli.json("checkpoint", "-m", "base")
    write(workspace, "src/m3.py", "v = 33\n")
    os.remove(workspace / "src/m4.py")
    write(workspace, "src/new.py", "n = 1\n")
    live_reads: list[str] = []
    blob_reads: list[str] = []
    read_live, read_blob = restore_mod.read_live, Store.read_blob

    def spy_live(root: Path, rel: str) -> bytes | None:
        live_reads.append(rel)
        return read_live(root, rel)

    def spy_blob(store: Store, digest: str) -> bytes:
        blob_reads.append(digest)
        return read_blob(store, digest)

    monkeypatch.setattr(restore_mod, "read_live", spy_live)
    monkeypatch.setattr(Store, "read_blob", spy_blob)
    code, out, _ = cli.run("diff", "1", "--stat")
    assert code == 0
    assert out.splitlines() == ["M src/m3.py", "D src/m4.py"]
    assert sorted(live_reads) == ["src/m3.py", "src/m4.py"]
    assert len(blob_reads) == 2
    # A whole diff of the same: the same reads; with paths: only those looked at.
    live_reads.clear()
    data = cli.json("diff", "1", "--", "src/m1.py", "src/m3.py")
    assert [f["path"] for f in data["files"]] == ["src/m3.py"] and live_reads == ["src/m3.py"]
