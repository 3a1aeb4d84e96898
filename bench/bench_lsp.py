"""Language server benchmarks against the real `tether lsp` over stdio.

Measured in one run, each figure beside a baseline from the same run:

- no-op round trip: `tether.status` (answered from memory) — the floor of any request;
- didChange throughput: N incremental edits sent back to back, then a request; the clock stops
  at its reply, so every edit has been processed (no backlog). Run at two N: a rate that holds
  as N grows means the queue does not build up;
- resume latency, 20 files in progress (5 with unsaved edits): a server is SIGKILLed after
  editing (its tmux session, on a private socket, stays alive), a new one connects; from
  sending `tether.resume` until every showDocument, applyEdit, tether/openTerminal and
  tether/showNextSteps has arrived (and, separately, from spawning the new
  server to the same point: reconnect → resumed). Target: resume < 300 ms.

    .venv/bin/python bench/bench_lsp.py [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.lsp_harness import Session, start_session  # noqa: E402

from tether import protocol as P  # noqa: E402

CAPS = "visual-studio-code"

# The floor: a pygls server that does nothing but keep the text (pygls' own didChange handling).
BARE_SERVER = """
from lsprotocol import types
from pygls.lsp.server import LanguageServer
server = LanguageServer("bare", "0")
@server.command("bare.noop")
def noop(ls, *args):
    return {}
@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def changed(ls, params):
    ls.workspace.get_text_document(params.text_document.uri).source
server.start_io()
"""
FILES = 20
DIRTY = 5


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


async def _noop_roundtrip(s: Session, n: int = 200) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await s.command(P.CMD_STATUS, {})
        out.append((time.perf_counter() - t) * 1000)
    return out


async def _flush_journal(s: Session) -> None:
    # The journal is debounced; a manual checkpoint flushes it first (and returns when written).
    await s.command(P.CMD_CHECKPOINT, {"message": "bench"})


async def _throughput(s: Session, root: Path, n: int) -> float:
    rel = f"typing_{n}.py"
    text = "".join(f"line_{i} = {i}\n" for i in range(200))
    (root / rel).write_text(text)
    uri = s.open(rel, text)
    t = time.perf_counter()
    for v in range(n):
        line = v % 200
        s.edit(uri, v + 2, line, 0, line, 0, "x")
    await s.command(P.CMD_STATUS, {})
    elapsed = time.perf_counter() - t
    return n / elapsed


async def _resume_once(root: Path, state: Path, tmux_socket: str | None) -> tuple[float, float]:
    env = {"SHELL": "/bin/sh"}
    a = await start_session(root, state, CAPS, tmux_socket=tmux_socket, extra_env=env)
    await a.wait_status(lambda st: st["lastCheckpoint"] is not None, "baseline", timeout=60)
    for i in range(FILES):
        rel = f"src/mod{i:02}.py"
        text = (root / rel).read_text()
        uri = a.open(rel, text)
        a.cursor(uri, 3, 2)
        if i < DIRTY:
            a.edit(uri, 2, 0, 0, 0, 0, f"# unsaved {i}\n")
    if tmux_socket:
        await a.command(P.CMD_START_SESSION, {})
    await a.wait_status(lambda st: st["dirtyBuffers"] == DIRTY, "dirty")
    await _flush_journal(a)
    await a.kill()

    t_spawn = time.perf_counter()
    b = await start_session(root, state, CAPS, tmux_socket=tmux_socket, extra_env=env)
    try:
        await b.wait_status(lambda st: st["resumeAvailable"], "resume available", timeout=30)
        t0 = time.perf_counter()
        result = await b.command(P.CMD_RESUME, {})
        while not (
            len(b.client.shown_documents) >= FILES
            and len(b.edits) >= DIRTY
            and b.next_steps
            and (b.terminals or not tmux_socket)
        ):
            await asyncio.sleep(0.001)
        t1 = time.perf_counter()
        assert len(result["opened"]) == FILES, result
        assert len(result["restoredBuffers"]) == DIRTY, result
    finally:
        await b.stop()
    return (t1 - t0) * 1000, (t1 - t_spawn) * 1000


async def _bare_pygls(base: Path) -> tuple[float, float]:
    from lsprotocol import types
    from pytest_lsp import client_capabilities
    from pytest_lsp.client import make_test_lsp_client

    script = base / "bare_server.py"
    script.write_text(BARE_SERVER)
    c = make_test_lsp_client()
    await c.start_io(sys.executable, str(script))
    await c.initialize_session(
        types.InitializeParams(capabilities=client_capabilities(CAPS), root_uri=base.as_uri())
    )
    noop = types.ExecuteCommandParams(command="bare.noop", arguments=[])
    times = []
    for _ in range(200):
        t = time.perf_counter()
        await c.workspace_execute_command_async(noop)
        times.append((time.perf_counter() - t) * 1000)
    uri = (base / "bare.py").as_uri()
    text = "".join(f"line_{i} = {i}\n" for i in range(200))
    c.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
        )
    )
    n = 5000
    t = time.perf_counter()
    for v in range(n):
        pos = types.Position(line=v % 200, character=0)
        c.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=v + 2),
                content_changes=[
                    types.TextDocumentContentChangePartial(range=types.Range(start=pos, end=pos), text="x")
                ],
            )
        )
    await c.workspace_execute_command_async(noop)
    rate = n / (time.perf_counter() - t)
    await c.shutdown_session()
    await c.stop()
    return _median(times), rate


def _workspace(base: Path) -> Path:
    root = base / "ws"
    (root / "src").mkdir(parents=True)
    for i in range(FILES):
        (root / "src" / f"mod{i:02}.py").write_text(
            "".join(f"def f{j}():\n    return {j}\n" for j in range(50))
        )
    for i in range(200):
        (root / f"other{i:03}.txt").write_text(f"filler {i}\n" * 20)
    return root.resolve()


async def main_async(repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tether-bench-lsp-") as tmp:
        base = Path(tmp)
        root = _workspace(base)
        state = base / "state"
        os.environ["TETHER_STATE_DIR"] = str(state)
        s = await start_session(root, state, CAPS)
        try:
            await s.wait_status(lambda st: st["lastCheckpoint"] is not None, "baseline", timeout=60)
            noop = await _noop_roundtrip(s)
            small = [await _throughput(s, root, 1000) for _ in range(2)]
            large = [await _throughput(s, root, 5000) for _ in range(2)]
            noop_after = await _noop_roundtrip(s, 50)
        finally:
            await s.stop()
        tmux_dir = Path(tempfile.mkdtemp(prefix="tb-", dir="/tmp")) if shutil.which("tmux") else None
        sock = str(tmux_dir / "s") if tmux_dir else None
        try:
            resume = [await _resume_once(root, state, sock) for _ in range(repeat)]
        finally:
            if sock:
                # Only our private server, by its socket.
                subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True, check=False)
            if tmux_dir:
                shutil.rmtree(tmux_dir, ignore_errors=True)
        bare_noop, bare_rate = await _bare_pygls(base)
        log = (state / "lsp.log").read_text() if (state / "lsp.log").exists() else ""
        phases = [
            line.split(": ", 2)[-1] for line in log.splitlines() if "tether.lsp.engine: resume:" in line
        ]
    return {
        "barePyglsNoopMs": bare_noop,
        "barePyglsDidChangePerSecond": bare_rate,
        "resumePhases": phases,
        "noopRoundTripMs": _median(noop),
        "noopRoundTripAfterTypingMs": _median(noop_after),
        "didChangePerSecond1000": max(small),
        "didChangePerSecond5000": max(large),
        "resumeMs": [r[0] for r in resume],
        "resumeMedianMs": _median([r[0] for r in resume]),
        "reconnectToResumedMedianMs": _median([r[1] for r in resume]),
        "files": FILES,
        "dirty": DIRTY,
        "tmux": sock is not None,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = asyncio.run(main_async(args.repeat))
    if args.json:
        print(json.dumps(res, indent=2))
        return
    noop = res["noopRoundTripMs"]
    print(f"bare pygls: no-op command round trip             : {res['barePyglsNoopMs']:7.2f} ms")
    print(f"bare pygls: didChange, 5000 edits then a request : {res['barePyglsDidChangePerSecond']:7.0f} /s")
    print(f"no-op round trip (tether.status), median of 200 : {noop:7.2f} ms")
    print(f"didChange, 1000 edits then a request            : {res['didChangePerSecond1000']:7.0f} /s")
    print(f"didChange, 5000 edits then a request            : {res['didChangePerSecond5000']:7.0f} /s")
    print(f"no-op round trip after the typing bursts         : {res['noopRoundTripAfterTypingMs']:7.2f} ms")
    print(
        f"resume, {res['files']} files ({res['dirty']} unsaved), median of {len(res['resumeMs'])} : "
        f"{res['resumeMedianMs']:7.1f} ms  ({res['resumeMedianMs'] / noop:.0f}x the no-op round trip; "
        f"{'with' if res['tmux'] else 'without'} a live tmux session to reattach; "
        f"target < 300 ms)"
    )
    print(f"reconnect (spawn server) -> all resume messages : {res['reconnectToResumedMedianMs']:7.1f} ms")
    for line in res["resumePhases"]:
        print(f"  server side: {line}")


if __name__ == "__main__":
    main()
