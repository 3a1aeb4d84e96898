"""The resume plan is pure: saved editor state + disk contents + hand-off in, actions out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tether import protocol as P
from tether.editor.documents import text_hash
from tether.editor.resume import STATE_PENDING, ResumeInputs, load_inputs, next_steps_payload, plan
from tether.model import FileChange
from tether.store.db import Store


def _state(files: list[dict[str, Any]], buffers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"version": 1, "sessionId": "old", "files": files, "buffers": buffers or []}


def _inputs(
    root: Path,
    editor: dict[str, Any] | None,
    disk: dict[str, bytes | None] | None = None,
    hand: dict[str, Any] | None = None,
    max_files: int = 30,
) -> ResumeInputs:
    return ResumeInputs(root, None, editor, disk or {}, hand, max_files)


def test_files_at_cursors_last_one_focused(workspace: Path) -> None:
    (workspace / "a.py").write_text("a\n")
    (workspace / "b.py").write_text("b\n")
    p = plan(
        _inputs(workspace, _state([{"path": "a.py", "cursor": [3, 4]}, {"path": "b.py", "cursor": None}]))
    )
    assert [(s.path, s.line, s.character, s.focus) for s in p.show] == [
        ("a.py", 3, 4, False),
        ("b.py", 0, 0, True),
    ]
    assert p.show[0].uri == (workspace / "a.py").as_uri()


def test_buffer_applied_only_on_matching_base(workspace: Path) -> None:
    files = [{"path": "a.py"}, {"path": "b.py"}, {"path": "c.py"}, {"path": "d.py"}]
    buffers = [
        {"path": "a.py", "text": "a edited\n", "baseHash": text_hash("a\n")},
        {"path": "b.py", "text": "b edited\n", "baseHash": text_hash("b\n")},
        {"path": "c.py", "text": "c edited\n", "baseHash": text_hash("c\n")},
        {"path": "d.py", "text": "d\n", "baseHash": text_hash("d\n")},
    ]
    disk = {"a.py": b"a\n", "b.py": b"b changed by the agent\n", "c.py": None, "d.py": b"d\n"}
    p = plan(_inputs(workspace, _state(files, buffers), disk))
    assert [(b.path, b.text, b.end) for b in p.buffers] == [("a.py", "a edited\n", (1, 0))]
    reasons = {s.path: s.reason for s in p.skipped}
    assert reasons == {
        "b.py": "the file changed on disk after these unsaved edits were made",
        "c.py": "the file no longer exists on disk",
    }


def test_malicious_or_broken_state_is_dropped(workspace: Path) -> None:
    editor = _state(
        [
            {"path": "../escape.py"},
            {"path": "/etc/passwd"},
            {"path": 5},
            "not a dict",
            {"path": "ok.py", "cursor": [-1, "x"]},
        ],
        [{"path": "../x", "text": "t", "baseHash": "h"}, {"path": "ok.py", "text": 3, "baseHash": "h"}],
    )
    p = plan(_inputs(workspace, editor, {"ok.py": b""}))
    assert [(s.path, s.line, s.character) for s in p.show] == [("ok.py", 0, 0)]
    assert p.buffers == [] and p.skipped == []


def test_agent_files_join_and_limit(workspace: Path) -> None:
    for name in ("a.py", "agent1.py", "agent2.py"):
        (workspace / name).write_text("")
    hand = {"task": "t", "nextSteps": ["n1"], "filesInProgress": ["agent1.py", "a.py", "missing.py", "../x"]}
    p = plan(_inputs(workspace, _state([{"path": "a.py", "cursor": [1, 1]}]), hand=hand))
    assert [s.path for s in p.show] == ["agent1.py", "a.py"]
    assert p.show[-1].focus
    assert p.next_steps["task"] == "t" and p.next_steps["nextSteps"] == ["n1"]
    assert p.next_steps["filesInProgress"][:2] == ["agent1.py", "a.py"]
    limited = plan(_inputs(workspace, _state([{"path": "a.py"}]), hand=hand, max_files=1))
    assert [s.path for s in limited.show] == ["a.py"]


def test_next_steps_defaults() -> None:
    payload = next_steps_payload({}, ["x.py"])
    assert payload == {
        "task": None,
        "nextSteps": [],
        "filesInProgress": ["x.py"],
        "runs": [],
        "recentCommands": [],
        "summary": "1 file in progress",
        "shipped": [],
    }
    assert next_steps_payload({"task": 5, "nextSteps": "no"}, [])["summary"] == "No task recorded"


def test_empty_state_plans_nothing(workspace: Path) -> None:
    p = plan(_inputs(workspace, None))
    assert p.empty and p.next_steps["summary"] == "No task recorded"


def test_load_inputs_prefers_pending_journal(workspace: Path, state_dir: Path) -> None:
    (workspace / "a.py").write_text("a\n")
    with Store.open(workspace, state_dir) as store:
        store.create_checkpoint(
            "manual",
            None,
            [FileChange("a.py", b"a\n")],
            attachments={P.ATTACH_EDITOR: json.dumps(_state([{"path": "a.py", "cursor": [9, 9]}])).encode()},
        )
        inputs = load_inputs(store)
        assert inputs.checkpoint == 1 and inputs.editor is not None
        assert inputs.editor["files"][0]["cursor"] == [9, 9]
        pending = _state(
            [{"path": "a.py", "cursor": [1, 1]}],
            [{"path": "a.py", "text": "a2\n", "baseHash": text_hash("a\n")}],
        )
        store.put_state(STATE_PENDING, json.dumps(pending).encode())
        inputs = load_inputs(store)
        assert inputs.checkpoint is None
        assert inputs.disk == {"a.py": b"a\n"}
        p = plan(inputs)
        assert [b.path for b in p.buffers] == ["a.py"]
        # An explicit checkpoint ignores the journal.
        assert load_inputs(store, 1).editor["files"][0]["cursor"] == [9, 9]  # type: ignore[index]


def test_journal_sessions_layouts() -> None:
    from tether.editor.resume import dump_sessions, journal_sessions

    one = _state([{"path": "a.py"}])
    assert journal_sessions(None) == []
    assert journal_sessions(b"garbage") == []
    assert journal_sessions(json.dumps(one).encode()) == [one]  # a bare journal (first layout)
    two = [one, {**one, "sessionId": "new"}]
    assert journal_sessions(dump_sessions(two)) == two
    assert journal_sessions(b'{"sessions": [1, {"files": []}]}') == [{"files": []}]
