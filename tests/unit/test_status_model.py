"""The status model's definitions, pure: files in progress, label, tooltip, resume offer."""

from __future__ import annotations

from typing import Any

from tether.editor.documents import text_hash
from tether.editor.resume import still_pending
from tether.editor.status import (
    StatusFacts,
    files_in_progress,
    merge_pending,
    resume_offer,
    status_text,
    status_tooltip,
)
from tether.model import CheckpointInfo

NOW = 1_800_000_000.0


def cp(
    n: int = 12, trigger: str = "save", files: tuple[str, ...] = ("a.py",), age: float = 120
) -> CheckpointInfo:
    return CheckpointInfo(id=n, time=NOW - age, trigger=trigger, message=None, parent=n - 1, files=files)


def test_files_in_progress_agent_first_each_once() -> None:
    assert files_in_progress(["b.py", "a.py"], ["a.py", "c.py", "b.py"]) == ["b.py", "a.py", "c.py"]
    assert files_in_progress([], []) == []


def test_label_names_the_checkpoint_and_leaves_out_zero_files() -> None:
    facts = StatusFacts(last=cp(), files=["a", "b", "c", "d"], dirty=0, checkpointing=False)
    assert status_text(facts, NOW) == "#12 · 2m ago · 4 files"
    assert status_text(StatusFacts(last=cp(), files=[], dirty=0, checkpointing=False), NOW) == "#12 · 2m ago"
    assert status_text(StatusFacts(last=None, files=[], dirty=0, checkpointing=False)) == "no checkpoint yet"
    assert status_text(StatusFacts(last=cp(), files=["a"], dirty=0, checkpointing=True)) == "checkpointing…"
    err = StatusFacts(last=cp(), files=[], dirty=0, checkpointing=True, error="disk full")
    assert status_text(err) == "error: disk full"


def test_tooltip_says_trigger_files_and_next_step() -> None:
    facts = StatusFacts(
        last=cp(files=("a.py", "b.py")),
        files=["a.py"],
        dirty=1,
        checkpointing=False,
        next_step="write tests",
        tmux={"session": "tether-w-1", "alive": False},
    )
    tip = status_tooltip(facts, NOW).split("\n")
    assert tip == [
        "Checkpoint #12 (save), 2m ago: 2 files changed (a.py, b.py)",
        "Files in progress: 1 (a.py)",
        "Unsaved buffers: 1",
        "Next step: write tests",
        "Terminal: tmux session tether-w-1 (not running)",
    ]
    base = status_tooltip(
        StatusFacts(last=cp(1, "baseline", ("x",)), files=[], dirty=0, checkpointing=False), NOW
    )
    assert "Checkpoint #1 (baseline), 2m ago: 1 file recorded (x)" in base
    assert "Files in progress: none" in base


def journal(files: list[str], buffers: list[dict[str, Any]], clean: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {"files": [{"path": p} for p in files], "buffers": buffers}
    if clean:
        doc["clean"] = True
    return doc


BUF = {"path": "a.py", "text": "a = 2\n", "baseHash": text_hash("a = 1\n")}


def test_resume_offered_for_unsaved_text_not_already_there() -> None:
    cand = journal(["a.py"], [BUF], clean=True)
    yes = lambda _p, _b: True  # noqa: E731
    no = lambda _p, _b: False  # noqa: E731
    assert resume_offer(cand, {}, yes, superseded=True) is True  # unsaved text is data: always
    assert resume_offer(cand, {"a.py": text_hash("a = 2\n")}, yes, superseded=False) is False  # already here
    assert resume_offer(cand, {}, no, superseded=False) is False  # the file changed on disk since


def test_resume_offered_for_files_only_after_a_crash_and_until_superseded() -> None:
    crash = journal(["a.py", "b.py"], [])
    never = lambda _p, _b: False  # noqa: E731
    assert resume_offer(crash, {}, never, superseded=False) is True
    assert resume_offer(crash, {"a.py": "h", "b.py": "h"}, never, superseded=False) is False  # all open
    assert resume_offer(crash, {}, never, superseded=True) is False  # the new session moved on
    clean = journal(["a.py"], [], clean=True)
    assert resume_offer(clean, {}, never, superseded=False) is False  # a clean quit lost nothing
    assert resume_offer(None, {}, never, superseded=False) is False


def test_a_newer_journal_carries_the_older_ones_unsaved_buffers() -> None:
    older = journal(["a.py"], [BUF, {"path": "b.py", "text": "b", "baseHash": "x"}])
    newer = journal(["c.py"], [{"path": "b.py", "text": "newer b", "baseHash": "y"}])
    merged = merge_pending(newer, older)
    assert [b["path"] for b in merged["buffers"]] == ["b.py", "a.py"]
    assert merged["buffers"][0]["text"] == "newer b"
    assert merged["files"] == [{"path": "c.py"}]
    assert merge_pending(newer, None) is newer


def test_still_pending_keeps_only_what_did_not_come_back() -> None:
    pending = {
        **journal(["a.py", "b.py"], [BUF, {"path": "b.py", "text": "t", "baseHash": "h"}]),
        "updated": 5,
    }
    left = still_pending(pending, {"b.py"})
    assert left is not None
    assert left["files"] == [] and [b["path"] for b in left["buffers"]] == ["b.py"] and left["updated"] == 5
    assert still_pending(pending, set()) is None
