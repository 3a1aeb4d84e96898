"""Property test: any sequence of writes to `.agent-session.json` is imported without raising.

The agent (or anything else) may write any bytes to the file at any time: random JSON values,
random bytes, a good document cut short half-way. Importing never raises; bad content changes
nothing but the warning (the last good state stays), and a good document afterwards is taken.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tether.agent.session import AgentSession
from tether.agent.session_file import parse_session_file
from tether.scan.result import AGENT_FILE
from tether.store.db import Store

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4),
    max_leaves=12,
)
KEYS = st.sampled_from(["current_task", "files_in_progress", "next_steps", "environment", "last_checkpoint"])
FIELDISH = st.dictionaries(KEYS, JSON, max_size=5)


def _good(i: int) -> bytes:
    return json.dumps(
        {"current_task": f"task {i}", "files_in_progress": ["a.py"], "next_steps": [f"step {i}"]}
    ).encode()


WRITES = st.lists(
    st.one_of(
        st.integers(0, 5).map(lambda i: ("good", _good(i))),
        JSON.map(lambda v: ("json", json.dumps(v).encode())),
        FIELDISH.map(lambda v: ("fields", json.dumps(v).encode())),
        st.binary(max_size=200).map(lambda b: ("bytes", b)),
        st.tuples(st.integers(0, 5), st.integers(1, 40)).map(lambda t: ("torn", _good(t[0])[: t[1]])),
        st.just(("bom", b"\xef\xbb\xbf" + _good(9))),
        st.just(("nul", b'{"current_task": "a\x00b"}')),
        st.just(("deep", b"[" * 5000 + b"]" * 5000)),
        st.just(("huge-number", b'{"current_task": 1' + b"0" * 5000 + b"}")),
    ),
    min_size=1,
    max_size=8,
)


def _core(state: Any) -> dict[str, Any]:
    doc = dict(state.to_json())
    doc.pop("warning", None)
    return doc


@settings(max_examples=40, deadline=None)
@given(writes=WRITES)
def test_any_writes_import_without_raising_and_keep_the_last_good_state(
    writes: list[tuple[str, bytes]],
) -> None:
    base = Path(tempfile.mkdtemp(prefix="tether-agent-props-")).resolve()
    try:
        root = base / "ws"
        root.mkdir()
        with Store.open(root, base / "state") as store:
            session = AgentSession(store)
            (root / AGENT_FILE).write_bytes(_good(0))
            session.import_file()
            assert session.state().task == "task 0"
            for kind, data in writes:
                before = _core(session.state())
                (root / AGENT_FILE).write_bytes(data)
                changed, warning = session.import_file()
                assert isinstance(changed, bool)
                assert warning is None or (isinstance(warning, str) and AGENT_FILE in warning)
                patch, problem = parse_session_file(data, root)
                if patch is None:
                    # Refused: nothing but the warning moved.
                    assert problem, (kind, data[:60])
                    assert _core(session.state()) == before, (kind, data[:60])
                    assert session.state().warning
                if kind == "good":
                    task = json.loads(data)["current_task"]
                    assert session.state().task == task
                json.dumps(session.state().to_json())  # always serialisable
                assert "\x00" not in json.dumps(session.state().to_json(), ensure_ascii=False)
    finally:
        shutil.rmtree(base, ignore_errors=True)
