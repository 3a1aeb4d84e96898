"""Property test: random JSON as `workspace/executeCommand` arguments to a real `tether lsp`.

Every command, fed any JSON value (or a params object whose known keys hold random values),
answers with a result or a proper JSON-RPC error carrying a message, and the server stays alive
and keeps working. Lives in e2e because it drives a real server process over stdio.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.faults import audit_store, dir_fingerprint
from tests.support.rawlsp import RawLsp
from tether import protocol as P

# JSON-RPC codes a handled failure may use; -32603 (internal error) is allowed only with a
# Tether reason attached (e.g. a store error), never as an unhandled exception.
INVALID_PARAMS = -32602
INTERNAL = -32603

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["../../etc/passwd", "/etc/passwd", "a\x00b", "src/app.py", "file:///etc/passwd"]),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=10,
)
KEYS = st.sampled_from(
    ["checkpoint", "from", "to", "paths", "path", "dryRun", "message", "limit", "done", "next", "task", "uri"]
)
PARAMS = st.one_of(JSON, st.dictionaries(KEYS, JSON, max_size=5))
ARGS = st.one_of(PARAMS.map(lambda p: [p]), st.lists(PARAMS, max_size=3))
# startSession and resume would start tmux; they are fuzzed too, on a socket this test owns.
COMMANDS = st.sampled_from(list(P.COMMANDS))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RawLsp, Path, Path, Path]]:
    base = tmp_path_factory.mktemp("lspfuzz")
    root = base / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('hi')\n")
    (root / "README.md").write_text("# fuzz\n")
    outside = base / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("never touched\n")
    state = base / "state"
    sock = state / "no-tmux-here"
    lsp = RawLsp(root.resolve(), state, {"TETHER_TMUX_SOCKET": str(sock)})
    try:
        lsp.initialize()
        assert "result" in lsp.command(P.CMD_CHECKPOINT, {"message": "base"})
        yield lsp, root.resolve(), state, outside
    finally:
        lsp.stop()
        # Cleanup by socket: a fuzzed startSession may have started a tmux server there.
        subprocess.run(["tmux", "-S", str(sock), "kill-server"], capture_output=True, timeout=20, check=False)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(command=COMMANDS, args=ARGS)
def test_random_command_params_get_a_result_or_a_proper_error(
    server: tuple[RawLsp, Path, Path, Path], command: str, args: list[object]
) -> None:
    lsp, _root, _state, outside = server
    before = dir_fingerprint(outside)
    res = lsp.command(command, raw_args=args)
    assert lsp.alive(), lsp.stderr_text()[-2000:]
    assert ("result" in res) != ("error" in res), res
    if "error" in res:
        err = res["error"]
        assert isinstance(err.get("code"), int) and isinstance(err.get("message"), str) and err["message"]
        assert "Traceback" not in err["message"]
        if err["code"] == INTERNAL:
            assert isinstance(err.get("data"), dict) and err["data"].get("reason"), res
        else:
            assert err["code"] == INVALID_PARAMS, res
    assert dir_fingerprint(outside) == before


def test_server_still_whole_after_fuzzing(server: tuple[RawLsp, Path, Path, Path]) -> None:
    lsp, root, state, _outside = server
    res = lsp.command(P.CMD_STATUS)
    assert "result" in res, res
    errors = [m for m in lsp.messages_of("window/showMessage") if m and m.get("type") == 1]
    # Errors the user sees are Tether's clear messages, never a traceback.
    assert all("Traceback" not in m["message"] for m in errors)
    audit_store(root, state)
