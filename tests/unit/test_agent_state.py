"""Agent task state: the seed's .agent-session.json, steps, the attachment, the hand-off."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether import protocol
from tether.agent import model as agent_model
from tether.agent import session_file
from tether.agent.handoff import handoff_text, pane_histories, status_section
from tether.agent.model import clean_text, parse_attachment
from tether.agent.session import AgentSession
from tether.agent.session_file import parse_session_file
from tether.checkpoints.checkpointer import Checkpointer
from tether.errors import BadParamsError, OutsideWorkspaceError
from tether.scan.result import AGENT_FILE
from tether.store.db import Store

SEED = {
    "current_task": "refactor user authentication",
    "files_in_progress": ["auth.js", "user.model.js"],
    "next_steps": ["update tests", "check error handling"],
    "environment": "development",
    "last_checkpoint": "2024-01-15T14:30:00Z",
}


@pytest.fixture
def store(workspace: Path, state_dir: Path) -> Iterator[Store]:
    with Store.open(workspace, state_dir) as s:
        yield s


def write(ws: Path, doc: object | bytes | str) -> None:
    p = ws / AGENT_FILE
    if isinstance(doc, bytes):
        p.write_bytes(doc)
    elif isinstance(doc, str):
        p.write_text(doc)
    else:
        p.write_text(json.dumps(doc))


def read(ws: Path) -> dict[str, object]:
    doc = json.loads((ws / AGENT_FILE).read_text())
    assert isinstance(doc, dict)
    return doc


# --- parsing ----------------------------------------------------------------------------------


def test_seed_file_parses(workspace: Path) -> None:
    patch, problem = parse_session_file(json.dumps(SEED).encode(), workspace)
    assert problem is None and patch is not None
    assert patch.fields["current_task"] == "refactor user authentication"
    assert patch.fields["files_in_progress"] == ["auth.js", "user.model.js"]
    assert patch.fields["next_steps"] == ["update tests", "check error handling"]
    assert patch.extra == {} and patch.warnings == []


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b'{"current_task": "x",\n  bad}', "line 2, column 3"),
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"[1, 2]", "JSON object"),
        (b'"just a string"', "JSON object"),
        (b'{"a": NaN}', "NaN"),
        (b'{"current_task": "\xff\xfe"}', "offset"),
        (b"[" * 100_000, "not valid JSON"),
    ],
)
def test_malformed_file_is_rejected_with_position(workspace: Path, raw: bytes, needle: str) -> None:
    patch, problem = parse_session_file(raw, workspace)
    assert patch is None
    assert problem is not None and AGENT_FILE in problem and needle in problem


def test_bad_field_types_keep_other_fields(workspace: Path) -> None:
    raw = json.dumps({"current_task": 12, "next_steps": "not a list", "environment": "dev"}).encode()
    patch, problem = parse_session_file(raw, workspace)
    assert problem is None and patch is not None
    assert patch.fields == {"environment": "dev"}
    assert any("'current_task' must be a string" in w for w in patch.warnings)
    assert any("'next_steps' must be a list of strings" in w for w in patch.warnings)


def test_paths_outside_the_workspace_are_dropped(workspace: Path, tmp_path: Path) -> None:
    (workspace / "link").symlink_to(tmp_path)
    raw = json.dumps(
        {"files_in_progress": ["ok.py", "../etc/passwd", "/etc/shadow", "link/x", "a\x00b", "./ok.py"]}
    ).encode()
    patch, _ = parse_session_file(raw, workspace)
    assert patch is not None
    assert patch.fields["files_in_progress"] == ["ok.py"]
    assert len([w for w in patch.warnings if "dropped" in w]) == 4


def test_strings_are_cleaned_and_capped(workspace: Path) -> None:
    evil = "\x1b]0;owned\x07\x1b[31mred\x1b[0m\x07 step\r\nnext"
    raw = json.dumps({"current_task": "t" * 10_000, "next_steps": [evil, "", "  "] + ["s"] * 500}).encode()
    patch, _ = parse_session_file(raw, workspace)
    assert patch is not None
    assert patch.fields["next_steps"][0] == "red step next"
    assert len(patch.fields["next_steps"]) == agent_model.MAX_LIST - 2
    assert len(patch.fields["current_task"]) == agent_model.MAX_TASK
    assert any("entries" in w for w in patch.warnings)


def test_clean_text_removes_every_control_character() -> None:
    assert clean_text("a\x00b\x1bc\x9bd\te") == "abcd e"


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    doc=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=30),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
        max_leaves=20,
    )
)
def test_any_json_never_crashes_and_never_escapes(workspace: Path, doc: object) -> None:
    if isinstance(doc, dict) and "files_in_progress" not in doc:
        doc = {**doc, "files_in_progress": ["../x", "y"]}
    patch, problem = parse_session_file(json.dumps(doc).encode(), workspace)
    assert (patch is None) != (problem is None)
    if patch is not None:
        for f in patch.fields.get("files_in_progress", []):
            assert not f.startswith(("/", "..")) and "\x00" not in f
        for s in patch.fields.get("next_steps", []):
            assert not any(ord(c) < 32 for c in s)


# --- import -------------------------------------------------------------------------------------


def test_import_seed_file(store: Store, workspace: Path) -> None:
    write(workspace, {**SEED, "agent_notes": {"model": "x", "n": [1, 2]}})
    session = AgentSession(store)
    assert session.import_file() == (True, None)
    st_ = session.state()
    assert st_.task == "refactor user authentication"
    assert st_.next_steps == ["update tests", "check error handling"]
    assert st_.files_in_progress == ["auth.js", "user.model.js"]
    assert st_.environment == "development"
    assert st_.extra == {"agent_notes": {"model": "x", "n": [1, 2]}}
    # Unchanged bytes: nothing to do.
    assert session.import_file() == (False, None)


def test_content_taken_in_already_is_not_parsed_again(
    store: Store, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tether.agent import session as session_mod

    parsed: list[bytes] = []

    def counting(raw: bytes, root: Path) -> object:
        parsed.append(raw)
        return parse_session_file(raw, root)

    monkeypatch.setattr(session_mod, "parse_session_file", counting)
    session = AgentSession(store)
    write(workspace, SEED)
    assert session.import_file() == (True, None) and len(parsed) == 1
    assert session.import_file() == (False, None) and len(parsed) == 1  # as taken in: not parsed
    cp = Checkpointer(store)
    session.step(cp, "one", next_steps=["two"])  # rewrites the file: Tether's own content
    parsed.clear()
    session.step(cp, "two", next_steps=["three"])
    assert session.import_file() == (False, None) and parsed == []
    assert read(workspace)["next_steps"] == ["three"]
    # Read as taken in, but another process took in an agent write meanwhile: parsed then, and
    # taken in as the agent's (not called unusable).
    before = session.read_file(session._doc().file_hash)
    assert before.raw is not None and before.patch is None and before.problem is None
    write(workspace, {**read(workspace), "next_steps": ["the agent's"]})
    assert AgentSession(store).import_file() == (True, None)
    doc = session._doc()
    plan = session._import_plan(before, doc)
    assert plan is not None and parsed
    plan.apply(doc)  # Tether's own earlier content: a new base, not a bad file
    assert doc.bad_hash is None and doc.state.warning is None
    assert session.state().next_steps == ["the agent's"] and session.state().warning is None
    # A changed file is parsed, and a bad one still warns.
    parsed.clear()
    write(workspace, '{"next_steps": ')
    changed, warning = session.import_file()
    assert not changed and warning is not None and "not valid JSON" in warning and len(parsed) == 1


def test_missing_file_is_fine(store: Store) -> None:
    session = AgentSession(store)
    assert session.import_file() == (False, None)
    assert session.state().is_empty()
    assert session.provider() is None


def test_malformed_file_keeps_last_good_state_and_warns_once(store: Store, workspace: Path) -> None:
    session = AgentSession(store)
    write(workspace, SEED)
    session.import_file()
    write(workspace, '{"current_task": "half written", "next_st')
    changed, warning = session.import_file()
    assert not changed
    assert warning is not None and AGENT_FILE in warning and "line 1, column" in warning
    assert "keeping the last good state" in warning
    assert session.state().task == "refactor user authentication"
    assert session.state().warning == warning
    # The same bad content again: no repeated warning, still shown in the state.
    assert session.import_file() == (False, None)
    assert session.state().warning == warning
    # A good file clears the warning.
    write(workspace, {**SEED, "current_task": "new task"})
    assert session.import_file() == (True, None)
    assert session.state().task == "new task" and session.state().warning is None


def test_oversized_symlinked_and_special_files_are_refused(
    store: Store, workspace: Path, tmp_path: Path
) -> None:
    session = AgentSession(store)
    write(workspace, SEED)
    session.import_file()
    p = workspace / AGENT_FILE
    p.write_bytes(b'{"x": "' + b"a" * (agent_model.MAX_FILE_BYTES + 10) + b'"}')
    _, warning = session.import_file()
    assert warning is not None and "limit" in warning
    p.unlink()
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"current_task": "from outside"}))
    p.symlink_to(secret)
    _, warning = session.import_file()
    assert warning is not None and "symlink" in warning
    p.unlink()
    os.mkfifo(p)  # would block a naive reader forever
    _, warning = session.import_file()
    assert warning is not None and "regular file" in warning
    assert session.state().task == "refactor user authentication"


def test_file_absent_keys_keep_values(store: Store, workspace: Path) -> None:
    session = AgentSession(store)
    write(workspace, SEED)
    session.import_file()
    write(workspace, {"current_task": "only the task"})
    assert session.import_file() == (True, None)
    assert session.state().next_steps == SEED["next_steps"]


# --- steps and the file rewrite -----------------------------------------------------------------


def test_record_step_checkpoints_edits_made_outside_any_editor(store: Store, workspace: Path) -> None:
    (workspace / "a.py").write_text("one\n")
    (workspace / "gone.txt").write_text("bye\n")
    cp = Checkpointer(store)
    base = cp.checkpoint(protocol.TRIGGER_MANUAL, "base", full=True).info
    assert base is not None
    # What an agent's shell would do: write, append, delete, create. No editor, no told paths.
    (workspace / "a.py").write_text("one\ntwo\n")
    (workspace / "gone.txt").unlink()
    (workspace / "sub").mkdir()
    (workspace / "sub" / "new.py").write_text("x = 1\n")
    session = AgentSession(store)
    info = session.record_step(cp, "wrote two", next_steps=["fix lint"], task="demo")
    assert info.trigger == protocol.TRIGGER_STEP and info.message == "wrote two"
    assert set(info.files) == {"a.py", "gone.txt", "sub/new.py"}
    manifest = store.manifest(info.id)
    assert store.read_blob(manifest["a.py"].hash) == b"one\ntwo\n"
    assert "gone.txt" not in manifest
    assert store.read_blob(manifest["sub/new.py"].hash) == b"x = 1\n"
    state = session.state()
    assert state.task == "demo" and state.next_steps == ["fix lint"]
    assert state.steps[-1].checkpoint == info.id
    assert state.steps[-1].files == ["a.py", "gone.txt", "sub/new.py"]
    assert state.files_in_progress[:3] == ["a.py", "gone.txt", "sub/new.py"]
    # The attachment of that checkpoint carries the step.
    att = store.attachment(info.id, protocol.ATTACH_AGENT)
    assert att is not None
    attached, _ = parse_attachment(att, info.id)
    assert attached.steps[-1].message == "wrote two" and attached.steps[-1].checkpoint == info.id
    # The file is written in the seed's format.
    doc = read(workspace)
    assert doc["current_task"] == "demo" and doc["next_steps"] == ["fix lint"]
    assert doc["last_checkpoint"] == state.last_checkpoint


def test_a_step_and_its_checkpoint_commit_together(
    store: Store, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One transaction: a step whose state cannot be written leaves no checkpoint behind; the
    agent's file is read and parsed once for the whole step, and taken in with it."""
    (workspace / "a.py").write_text("one\n")
    cp = Checkpointer(store)
    session = AgentSession(store)
    before = store.latest()

    def broken(self: object) -> bytes:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(agent_model.AgentDoc, "dump", broken)
        with pytest.raises(OSError):
            session.record_step(cp, "lost")
    assert store.latest() == before  # no checkpoint without its step
    (workspace / AGENT_FILE).write_text(json.dumps(SEED))
    parses: list[bytes] = []
    real_parse = parse_session_file

    def counting(raw: bytes, root: Path) -> object:
        parses.append(raw)
        return real_parse(raw, root)

    monkeypatch.setattr("tether.agent.session.parse_session_file", counting)
    info = session.record_step(cp, "kept")
    assert len(parses) == 1
    state = session.state()
    assert state.task == SEED["current_task"] and state.steps[-1].checkpoint == info.id
    latest = store.latest()
    assert latest is not None and latest.id == info.id and set(info.files) == {"a.py"}


def test_record_step_keeps_the_stat_refreshes_of_its_scan(store: Store, workspace: Path) -> None:
    """A file touched without a content change is read once by a step's scan; its new stat
    goes to the store, so the next step does not read it again."""
    p = workspace / "touched.py"
    p.write_text("same\n")
    old = p.stat().st_mtime_ns - 60_000_000_000
    os.utime(p, ns=(old, old))
    cp = Checkpointer(store)
    cp.checkpoint(protocol.TRIGGER_MANUAL, "base", full=True)
    assert store.head()["touched.py"].mtime_ns == old
    newer = old + 10_000_000_000
    os.utime(p, ns=(newer, newer))  # still well outside the racy window
    session = AgentSession(store)
    info = session.record_step(cp, "nothing changed in content")
    assert "touched.py" not in info.files
    assert store.head()["touched.py"].mtime_ns == newer
    assert session.record_step(cp, "again").files == ()
    assert Checkpointer(store).scan_workspace().stat_updates == []


def test_record_step_needs_a_message_and_safe_paths(store: Store, workspace: Path) -> None:
    session = AgentSession(store)
    with pytest.raises(BadParamsError):
        session.record_step(Checkpointer(store), "  \x1b[0m ")
    with pytest.raises(OutsideWorkspaceError):
        session.record_step(Checkpointer(store), "x", files=["../outside.py"])
    assert store.latest() is None


def test_rewrite_preserves_unknown_keys_and_mode(store: Store, workspace: Path) -> None:
    write(workspace, {**SEED, "custom": {"deep": [1, {"k": None}]}, "zz": 3})
    (workspace / AGENT_FILE).chmod(0o600)
    session = AgentSession(store)
    session.record_step(Checkpointer(store), "did it")
    doc = read(workspace)
    assert doc["custom"] == {"deep": [1, {"k": None}]} and doc["zz"] == 3
    assert list(doc)[:5] == list(SEED)
    assert doc["last_checkpoint"] != SEED["last_checkpoint"]
    assert stat.S_IMODE((workspace / AGENT_FILE).stat().st_mode) == 0o600


def test_new_file_is_0644_and_only_when_there_is_state(store: Store, workspace: Path) -> None:
    session = AgentSession(store)
    info = Checkpointer(store).checkpoint(protocol.TRIGGER_MANUAL, allow_empty=True).info
    assert info is not None
    session.after_checkpoint(info)
    assert not (workspace / AGENT_FILE).exists()
    session.set_fields(task="t")
    assert stat.S_IMODE((workspace / AGENT_FILE).stat().st_mode) == 0o644
    assert read(workspace)["current_task"] == "t"


def test_after_checkpoint_does_not_rewrite_an_up_to_date_file(store: Store, workspace: Path) -> None:
    session = AgentSession(store)
    info = session.record_step(Checkpointer(store), "s1")
    before = (workspace / AGENT_FILE).stat()
    session.after_checkpoint(info)
    after = (workspace / AGENT_FILE).stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_concurrent_agent_write_during_rewrite_is_merged(
    store: Store, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent writes between Tether's read and its swap: its content must survive."""
    session = AgentSession(store)
    write(workspace, SEED)
    session.import_file()
    real_exchange = session_file.exchange
    calls = {"n": 0}

    def racing_exchange(a: Path, b: Path) -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            write(workspace, {**SEED, "next_steps": ["agent wrote this"], "agent_key": 1})
        return real_exchange(a, b)

    monkeypatch.setattr(session_file, "exchange", racing_exchange)
    session.set_fields(task="tether task")
    doc = read(workspace)
    assert calls["n"] == 2  # swapped, saw the agent's write, merged and swapped again
    assert doc["next_steps"] == ["agent wrote this"] and doc["agent_key"] == 1
    assert doc["current_task"] == "tether task"


def test_rewrite_without_renameat2(store: Store, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_file, "exchange", lambda a, b: False)
    session = AgentSession(store)
    write(workspace, SEED)
    session.set_fields(task="fallback")
    assert read(workspace)["current_task"] == "fallback"
    assert read(workspace)["next_steps"] == SEED["next_steps"]
    assert not [p for p in workspace.iterdir() if p.name.endswith(".tmp")]


def test_threads_with_their_own_store_lose_no_step(workspace: Path, state_dir: Path) -> None:
    """Two writers (think: the agent's CLI and the language server) record steps at once."""
    errors: list[BaseException] = []

    def writer(tag: str) -> None:
        try:
            with Store.open(workspace, state_dir) as s:
                session = AgentSession(s)
                cp = Checkpointer(s)
                for i in range(8):
                    (workspace / f"{tag}.txt").write_text(f"{tag} {i}\n")
                    session.record_step(cp, f"{tag}-{i}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    with Store.open(workspace, state_dir) as s:
        messages = [step.message for step in AgentSession(s).state().steps]
    assert sorted(messages) == sorted([f"a-{i}" for i in range(8)] + [f"b-{i}" for i in range(8)])
    assert json.loads((workspace / AGENT_FILE).read_text())


# --- attachment, hand-off, status ---------------------------------------------------------------


def test_provider_is_stable_when_nothing_changed(store: Store, workspace: Path) -> None:
    session = AgentSession(store)
    write(workspace, SEED)
    first = session.provider()
    assert first is not None
    cp = Checkpointer(store)
    cp.add_provider(protocol.ATTACH_AGENT, session.provider)
    info = cp.checkpoint(protocol.TRIGGER_MANUAL, allow_empty=True).info
    assert info is not None
    session.after_checkpoint(info)  # rewrites the file and last_checkpoint
    assert session.provider() == first
    # So a periodic checkpoint with nothing changed writes nothing.
    assert cp.checkpoint(protocol.TRIGGER_PERIODIC).info is None
    doc = json.loads(first)
    assert doc["task"] == SEED["current_task"] and "lastCheckpoint" not in doc


def test_hand_off_payload(store: Store, workspace: Path) -> None:
    write(workspace, SEED)
    session = AgentSession(store)
    session.import_file()
    hand = session.hand_off()
    assert hand["task"] == SEED["current_task"]
    assert hand["nextSteps"] == SEED["next_steps"]
    assert hand["filesInProgress"] == SEED["files_in_progress"]
    assert hand["runs"] == []
    assert "update tests" in hand["summary"]


def _tmux_attachment(store: Store, doc: object) -> None:
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    Checkpointer(store).checkpoint(
        protocol.TRIGGER_MANUAL, allow_empty=True, extra_attachments={protocol.ATTACH_TMUX: data}
    )


def test_pane_history_read_defensively(store: Store) -> None:
    assert pane_histories(store) == []
    _tmux_attachment(
        store,
        {
            "schema": 1,
            "windows": [
                {
                    "index": 0,
                    "name": "agent",
                    "panes": [
                        {
                            "index": 0,
                            "cwd": "/w",
                            "command": ["pytest", "-q"],
                            "history": ["ls", "git status"],
                        },
                        {"index": 1, "history": "not a list"},
                        "garbage",
                        {"index": 2, "history": ["export API_TOKEN=abcdef123456", "\x1b[31mred"]},
                    ],
                },
                {"name": 5, "panes": None},
                7,
            ],
        },
    )
    hist = pane_histories(store)
    assert [h.history for h in hist] == [["ls", "git status"], [], ["export API_TOKEN=[REDACTED]", "red"]]
    assert hist[0].label() == "agent.0" and hist[0].command == "pytest -q"
    _tmux_attachment(store, b"\x00not json")
    assert pane_histories(store) == []
    _tmux_attachment(store, [1, 2])
    assert pane_histories(store) == []


def test_status_section_and_handoff_text(store: Store, workspace: Path) -> None:
    (workspace / "a.py").write_text("1\n2\n3\n")
    session = AgentSession(store)
    cp = Checkpointer(store)
    session.record_step(cp, "wrote a", next_steps=["test a", "ship"], task="the task", files=["a.py"])
    (workspace / "a.py").write_text("1\nTWO\n3\n4\n")
    (workspace / "b.py").write_text("new\n")
    _tmux_attachment(
        store, {"windows": [{"index": 0, "name": "agent", "panes": [{"index": 0, "history": ["make"]}]}]}
    )
    lines, data = status_section(store)
    text = "\n".join(lines)
    assert "task       the task" in text and "1. test a" in text and "2. ship" in text
    assert "step       wrote a" in text and "agent.0: make" in text
    assert data["agent"]["nextSteps"] == ["test a", "ship"]
    out, hdata = handoff_text(store)
    assert "Task: the task" in out
    assert "  a.py  +2/-1" in out
    assert "Also changed since that step: b.py" in out
    assert "$ make" in out
    assert hdata["files"] == [{"path": "a.py", "change": "+2/-1"}]
    assert hdata["nextSteps"] == ["test a", "ship"]
    hand = session.hand_off()
    assert hand["recentCommands"] == [{"where": "window agent", "commands": ["make"]}]
    assert "agent.0" not in hand["summary"] and "make" not in hand["summary"]


def test_never_writes_over_a_planted_directory_or_an_unreadable_file(store: Store, workspace: Path) -> None:
    session = AgentSession(store)
    (workspace / AGENT_FILE).mkdir()
    (workspace / AGENT_FILE / "keep").write_text("mine")
    session.set_fields(task="t")  # must not swap the directory away
    assert (workspace / AGENT_FILE / "keep").read_text() == "mine"
    (workspace / AGENT_FILE / "keep").unlink()
    (workspace / AGENT_FILE).rmdir()
    big = b'{"notes": "' + b"n" * (agent_model.MAX_FILE_BYTES + 1) + b'"}'
    (workspace / AGENT_FILE).write_bytes(big)
    session.set_fields(task="t2")  # refused on import: the agent's oversized file is left alone
    assert (workspace / AGENT_FILE).read_bytes() == big
    assert session.state().task == "t2"


def test_warning_clears_when_the_file_returns_to_its_last_good_content(store: Store, workspace: Path) -> None:
    session = AgentSession(store)
    write(workspace, SEED)
    session.import_file()
    write(workspace, "{oops")
    assert session.import_file()[1] is not None
    write(workspace, SEED)
    assert session.import_file() == (False, None)
    assert session.state().warning is None


def test_unwritable_file_keeps_the_step(
    store: Store, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk (ENOSPC, injected: a real full file system needs root-only mounts here) while
    rewriting the file: the step and its checkpoint are kept, the file is left as it was."""
    import errno

    write(workspace, SEED)
    (workspace / "a.py").write_text("1\n")

    def full(self: session_file.SessionFile, data: bytes, before: bytes | None) -> bool:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(session_file.SessionFile, "swap_in", full)
    info = AgentSession(store).record_step(Checkpointer(store), "disk full")
    assert AgentSession(store).state().steps[-1].checkpoint == info.id
    assert "a.py" in info.files
    assert json.loads((workspace / AGENT_FILE).read_text()) == SEED


def test_handoff_stays_compact(store: Store, workspace: Path) -> None:
    for i in range(30):
        (workspace / f"f{i:02d}.py").write_text("x\n")
    (workspace / "big.txt").write_text("line\n" * 200_000)
    session = AgentSession(store)
    names = [f"f{i:02d}.py" for i in range(30)]
    session.record_step(Checkpointer(store), "many", files=["big.txt", *names])
    (workspace / "big.txt").write_text("line\n" * 200_001)
    (workspace / "f00.py").write_text("y\n")
    out, data = handoff_text(store)
    assert "  big.txt  changed (large file)" in out
    assert "  f00.py  +1/-1" in out
    assert "… 11 more" in out and "f29.py" not in out
    assert len(data["files"]) == 31  # the JSON keeps everything


_VAL = st.sampled_from(["a", "b", "c"])
_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "current_task": _VAL,
        "environment": _VAL,
        "next_steps": st.lists(_VAL, max_size=2),
        "files_in_progress": st.lists(_VAL, max_size=2),
    },
)
_EXTRA = st.dictionaries(st.sampled_from(["x", "y", "z"]), st.integers(0, 2), max_size=3)


@settings(max_examples=150, deadline=None)
@given(base_f=_FIELDS, base_x=_EXTRA, ours_f=_FIELDS, ours_x=_EXTRA, theirs_f=_FIELDS, theirs_x=_EXTRA)
def test_three_way_merge_takes_exactly_what_the_agent_changed(
    base_f: dict[str, object],
    base_x: dict[str, int],
    ours_f: dict[str, object],
    ours_x: dict[str, int],
    theirs_f: dict[str, object],
    theirs_x: dict[str, int],
) -> None:
    ours = agent_model.TaskState(
        task=ours_f.get("current_task"),  # type: ignore[arg-type]
        environment=ours_f.get("environment"),  # type: ignore[arg-type]
        next_steps=list(ours_f.get("next_steps", [])),  # type: ignore[call-overload]
        files_in_progress=list(ours_f.get("files_in_progress", [])),  # type: ignore[call-overload]
        extra=dict(ours_x),
    )
    before = ours.to_file()
    merged = session_file.apply_patch(
        ours, session_file.FilePatch(dict(theirs_f), dict(theirs_x), []), {**base_x, **base_f}
    ).to_file()
    for key in ("current_task", "environment", "next_steps", "files_in_progress"):
        if key in theirs_f and theirs_f[key] != base_f.get(key, "<missing>"):
            assert merged[key] == theirs_f[key], key  # the agent changed it: the agent wins
        else:
            assert merged[key] == before[key], key  # untouched by the agent: Tether's value stays
    for key in ("x", "y", "z"):
        if theirs_x.get(key) != base_x.get(key):
            assert merged.get(key) == theirs_x.get(key), key
        else:
            assert merged.get(key) == ours_x.get(key), key


def test_step_files_are_changes_since_the_previous_step(store: Store, workspace: Path) -> None:
    session = AgentSession(store)
    cp = Checkpointer(store)
    (workspace / "a.py").write_text("1\n")
    session.record_step(cp, "first")
    (workspace / "a.py").write_text("2\n")
    # Another checkpoint (a save, or `tether run`'s) records the edit before the step does.
    assert cp.checkpoint(protocol.TRIGGER_SAVE, full=True).info is not None
    info = session.record_step(cp, "second")
    assert info.files == ()
    assert session.state().steps[-1].files == ["a.py"]
    att = store.attachment(info.id, protocol.ATTACH_AGENT)
    assert att is not None and parse_attachment(att, info.id)[0].steps[-1].files == ["a.py"]


def test_a_step_ticks_off_the_next_step_it_names(store: Store, workspace: Path) -> None:
    session = AgentSession(store)
    cp = Checkpointer(store)
    session.record_step(cp, "start", next_steps=["Update tests", "check error handling"])
    session.record_step(cp, "update tests")
    assert session.state().next_steps == ["check error handling"]
    session.record_step(cp, "something else")
    assert session.state().next_steps == ["check error handling"]
    session.record_step(cp, "check error handling", next_steps=["ship"])  # explicit list wins
    assert session.state().next_steps == ["ship"]


def test_temp_files_of_a_killed_writer_are_cleaned_up(store: Store, workspace: Path) -> None:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    dead = workspace / f".{AGENT_FILE}.{pid_max + 1}.123.tmp"  # no process can have this pid
    alive = workspace / f".{AGENT_FILE}.1.456.tmp"  # pid 1 always exists: another writer's
    dead.write_text("{}")
    alive.write_text("{}")
    AgentSession(store).set_fields(task="t")
    assert not dead.exists() and alive.exists()


def _agent_doc(counter: int) -> bytes:
    return json.dumps(
        {"current_task": "t", "next_steps": [f"step-{counter}"], "agent_counter": counter}
    ).encode()


def test_an_older_copy_of_the_agents_file_never_moves_state_back(store: Store) -> None:
    # Two Tether processes may each hold the agent's bytes from different moments; the one that
    # imports last must not win when its copy is the older one.
    session = AgentSession(store)
    now = 1_800_000_000 * 10**9
    session.import_bytes(_agent_doc(2), mtime_ns=now)
    changed, _ = session.import_bytes(_agent_doc(1), mtime_ns=now - 5_000_000)
    assert changed is False
    assert session.state().extra["agent_counter"] == 2 and session.state().next_steps == ["step-2"]
    # A much older file put back on purpose (a backup restored with `cp -p`) is a real change.
    changed, _ = session.import_bytes(_agent_doc(0), mtime_ns=now - 3600 * 10**9)
    assert changed is True and session.state().extra["agent_counter"] == 0


def test_the_first_step_names_the_edits_since_the_editors_baseline(store: Store, workspace: Path) -> None:
    session = AgentSession(store)
    cp = Checkpointer(store)
    (workspace / "a.py").write_text("1\n")
    (workspace / "b.py").write_text("1\n")
    assert cp.checkpoint(protocol.TRIGGER_BASELINE, full=True).info is not None
    (workspace / "a.py").write_text("2\n")
    (workspace / "c.py").write_text("new\n")
    # The editor's file watcher checkpoints the agent's edits before its first step.
    assert cp.checkpoint(protocol.TRIGGER_SAVE, full=True).info is not None
    info = session.record_step(cp, "first")
    assert info.files == ()
    assert session.state().steps[-1].files == ["a.py", "c.py"]


def test_a_first_step_without_a_baseline_names_what_it_checkpointed(store: Store, workspace: Path) -> None:
    session = AgentSession(store)
    cp = Checkpointer(store)
    (workspace / "a.py").write_text("1\n")
    info = session.record_step(cp, "first")
    assert session.state().steps[-1].files == list(info.files) == ["a.py"]
