"""`tether lsp` against a client that answers late, wrongly or never, sends frames it cannot
hold, numbers it cannot store, huge buffers, or vanishes mid-edit (issue 20). Raw JSON-RPC
(tests/support/rawlsp.py): a typed client would not misbehave like this."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.rawlsp import RawLsp
from tests.support.retry import retry_until
from tether import protocol as P
from tether.editor.resume import STATE_JOURNAL, journal_sessions
from tether.store.db import Store

CAPS_ALL: dict[str, Any] = {
    "workspace": {
        "configuration": True,
        "applyEdit": True,
        "didChangeWatchedFiles": {"dynamicRegistration": True},
    },
    "window": {"workDoneProgress": True, "showDocument": {"support": True}},
}


@pytest.fixture
def servers(state_dir: Path) -> Iterator[list[RawLsp]]:
    started: list[RawLsp] = []
    yield started
    for s in started:
        if s.alive():
            s.kill()


def start(servers: list[RawLsp], root: Path, state_dir: Path, env: dict[str, str] | None = None) -> RawLsp:
    s = RawLsp(root, state_dir, extra_env=env)
    servers.append(s)
    return s


def baseline_done(s: RawLsp) -> Any:
    return s.wait_notification(P.NOTIFY_STATUS, lambda p: p["lastCheckpoint"] is not None, timeout=60)


def log_lines(state_dir: Path) -> list[str]:
    return (state_dir / "lsp.log").read_text().splitlines()


def first(lines: list[str], needle: str) -> int:
    return next((i for i, ln in enumerate(lines) if needle in ln), len(lines))


@pytest.mark.parametrize("answer", ["never", "wrong"])
def test_startup_never_waits_on_the_clients_answers(
    servers: list[RawLsp], workspace: Path, state_dir: Path, answer: str
) -> None:
    (workspace / "a.py").write_text("x = 1\n")
    s = start(servers, workspace, state_dir)
    if answer == "never":
        s.answers.update(
            {
                m: "never"
                for m in (
                    "workspace/configuration",
                    "client/registerCapability",
                    "window/workDoneProgress/create",
                )
            }
        )
    else:  # a null configuration, an error, and a result of the wrong shape
        s.answers.update(
            {
                "workspace/configuration": "null",
                "client/registerCapability": "error",
                "window/workDoneProgress/create": {"not": "null"},
            }
        )
    s.initialize(CAPS_ALL)
    baseline_done(s)
    asked = {m for m, _ in s.server_requests}
    assert {"workspace/configuration", "client/registerCapability"} <= asked
    # Neither the store nor the baseline waited for those answers: the server's log has the
    # store open and the baseline recorded before it gave up on any of them.
    lines = log_lines(state_dir)
    opened = first(lines, "store open")
    assert opened < first(lines, "workspace/configuration unavailable"), lines
    if answer == "never":  # (an error answer is taken at once either way)
        assert opened < first(lines, "client did not register file watching"), lines
    assert s.command(P.CMD_STATUS)["result"]["lastCheckpoint"] is not None
    errors = [p for p in s.messages_of("window/showMessage") if p["type"] == 1]
    assert errors == []
    s.stop()


def test_a_late_configuration_still_applies(servers: list[RawLsp], workspace: Path, state_dir: Path) -> None:
    (workspace / "a.py").write_text("x = 1\n")
    s = start(servers, workspace, state_dir)
    s.answers["workspace/configuration"] = [{"stateDir": "/tmp/evil", "saveDebounceMs": "fast"}]
    s.initialize(CAPS_ALL)
    baseline_done(s)

    def texts() -> list[str]:
        return [m["message"] for m in s.messages_of("window/showMessage")]

    retry_until(lambda: any("saveDebounceMs must be a number" in t for t in texts()), what="config warning")
    assert any("ignoring stateDir from settings tether" in t for t in texts()), texts()
    assert not Path("/tmp/evil").exists()
    s.stop()


def _crashed_session_with_a_dirty_buffer(servers: list[RawLsp], root: Path, state_dir: Path) -> None:
    (root / "a.py").write_text("x = 1\n")
    (root / "b.py").write_text("y = 2\n")
    a = start(servers, root, state_dir)
    a.initialize()
    baseline_done(a)
    a.open("b.py", "y = 2\n")
    uri = a.open("a.py", "x = 1\n")
    a.change(uri, 2, "x = 1\n# unsaved\n")
    a.command(P.CMD_CHECKPOINT, {"message": "journal flushed"})
    a.kill()


def test_resume_with_a_client_that_never_answers_returns_and_says_what_timed_out(
    servers: list[RawLsp], workspace: Path, state_dir: Path
) -> None:
    _crashed_session_with_a_dirty_buffer(servers, workspace, state_dir)
    b = start(servers, workspace, state_dir)
    b.answers.update({"window/showDocument": "never", "workspace/applyEdit": "never"})
    b.initialize(CAPS_ALL)
    b.wait_notification(P.NOTIFY_STATUS, lambda p: p["resumeAvailable"], timeout=60)
    first_id = b.send_request("workspace/executeCommand", {"command": P.CMD_RESUME, "arguments": [{}]})
    second_id = b.send_request("workspace/executeCommand", {"command": P.CMD_RESUME, "arguments": [{}]})
    one = b.wait_response(first_id, timeout=60)["result"]
    timed_out = {(t["request"], t["path"]) for t in one["timedOut"]}
    assert ("workspace/applyEdit", "a.py") in timed_out and ("window/showDocument", "b.py") in timed_out
    assert any(sk["path"] == "a.py" and "did not answer" in sk["reason"] for sk in one["skippedBuffers"])
    assert one["restoredBuffers"] == [] and "a.py" not in one["opened"]
    # The second resume was not queued forever behind the first.
    two = b.wait_response(second_id, timeout=60)
    assert "result" in two or two["error"]["data"]["reason"] == "busy", two
    assert b.command(P.CMD_STATUS)["result"]["workspace"] == str(workspace)
    b.stop()


def test_a_frame_too_large_gets_an_error_not_a_crash(
    servers: list[RawLsp], workspace: Path, state_dir: Path
) -> None:
    s = start(servers, workspace, state_dir)
    s.initialize()
    before = s.rss_kib()
    s.write_raw(b"Content-Length: 99999999999\r\n\r\n")
    err = s.wait_response(None, timeout=30)["error"]
    assert err["code"] == -32600 and err["data"]["reason"] == "messageTooLarge"
    assert "99999999999" in err["message"]
    assert s.alive() and s.rss_kib() < before + 64 * 1024
    # The declared body never comes; the editor goes away: a clean exit, not MemoryError.
    s.close_stdin()
    s.proc.wait(timeout=30)
    assert "MemoryError" not in s.stderr_text()


def test_numbers_too_large_for_the_store_are_invalid_params(
    servers: list[RawLsp], workspace: Path, state_dir: Path
) -> None:
    (workspace / "a.py").write_text("x = 1\n")
    s = start(servers, workspace, state_dir)
    s.initialize()
    baseline_done(s)
    big = 2**63
    for command, params in [
        (P.CMD_DIFF, {"from": big}),
        (P.CMD_DIFF, {"from": 1, "to": 10**20}),
        (P.CMD_FILE_AT, {"checkpoint": big, "path": "a.py"}),
        (P.CMD_RESTORE, {"checkpoint": big}),
        (P.CMD_RESUME, {"checkpoint": big}),
        (P.CMD_TIMELINE, {"limit": big}),
    ]:
        err = s.command(command, params)["error"]
        assert err["code"] == -32602, (command, err)
        assert err["data"]["reason"] == "badParams" and "at most" in err["message"], err
    s.stop()


def test_a_buffer_over_max_file_bytes_is_tracked_without_its_text(
    servers: list[RawLsp], workspace: Path, state_dir: Path
) -> None:
    # 50 MB, ten times the default maxFileBytes: pygls used to re-split all of it on each
    # keystroke (12-14 s of blocked event loop for five), and it stayed in memory twice.
    big = ("x" * 99 + "\n") * (512 * 1024)
    (workspace / "big.txt").write_text(big)
    (workspace / "small.py").write_text("x = 1\n")
    s = start(servers, workspace, state_dir)
    s.initialize(CAPS_ALL, options={"bufferJournalDebounceMs": 0})
    baseline_done(s)
    before = s.rss_kib()
    uri = s.open("big.txt", big)
    for i in range(5):
        s.insert(uri, 2 + i, 0, "k")
    st = s.wait_notification(P.NOTIFY_STATUS, lambda p: p["dirtyBuffers"] == 1)
    assert st["filesInProgress"] == 1
    assert s.command(P.CMD_STATUS)["result"]["dirtyBuffers"] == 1
    # Its text is not held (neither by pygls nor by Tether): the process did not grow by it.
    grown = s.rss_kib() - before
    assert grown < 25 * 1024, f"RSS grew by {grown} KiB for a 50 MB buffer tracked without its text"
    s.stop()
    with Store.open(workspace, state_dir) as store:
        journal = journal_sessions(store.get_state(STATE_JOURNAL))
    assert journal and journal[-1]["buffers"] == []
    assert [f["path"] for f in journal[-1]["files"]] == ["big.txt"] and journal[-1]["files"][0]["dirty"]


def test_an_edit_just_before_stdin_closes_reaches_the_journal(
    servers: list[RawLsp], workspace: Path, state_dir: Path
) -> None:
    (workspace / "a.py").write_text("x = 1\n")
    s = start(servers, workspace, state_dir)
    # The journal timer would never fire on its own: only the flush at end of input writes it.
    s.initialize(options={"bufferJournalDebounceMs": 60000})
    baseline_done(s)
    uri = s.open("a.py", "x = 1\n")
    s.change(uri, 2, "x = 1\n# typed just before the editor vanished\n")
    s.wait_notification(P.NOTIFY_STATUS, lambda p: p["dirtyBuffers"] == 1)
    s.close_stdin()
    s.proc.wait(timeout=30)
    with Store.open(workspace, state_dir) as store:
        journal = journal_sessions(store.get_state(STATE_JOURNAL))
    texts = [b["text"] for j in journal for b in j.get("buffers", [])]
    assert any("typed just before the editor vanished" in t for t in texts), json.dumps(journal)[:500]
