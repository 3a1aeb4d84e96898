"""SIGKILL the CLI at random points of `tether checkpoint` and `tether restore N`.

After every kill the store must open, pass SQLite's integrity check, show no half-written
checkpoint, and the last checkpoint the killed process reported complete must restore
byte-identical files. A restore killed mid-way leaves the workspace untouched, complete, or
recoverable from its undo checkpoint.

Most iterations fork the test process (tether already imported) and run the CLI's ``main`` in the
child, so 200+ kills fit in well under a minute; a few more start a fresh interpreter with
``python -c`` as a user's shell would. The kill delay comes from a seeded RNG (seed printed on
failure) and spans the child's whole run time.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.faults import audit_store, digest_files, manifest_files, tree_digest, tree_files
from tether.checkpoints import restore as restore_mod
from tether.checkpoints.checkpointer import Checkpointer
from tether.cli import main
from tether.store.db import Store

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("TETHER_FAULT_SEED", "20261122"))
ITERATIONS = 200
SUBPROCESS_ITERATIONS = 12


def _fork(fn: Callable[[int], None]) -> tuple[int, int]:
    """Run ``fn(write_fd)`` in a forked child; returns (pid, read_fd). The child never returns."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            os.close(r)
            # Silence the CLI's stdout/stderr: the parent's pytest capture is not ours to write to.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            fn(w)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


def _kill_after(pid: int, delay: float) -> int:
    # Not polling: the delay *is* the injected fault's timing.
    time.sleep(delay)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return status


def _read_all(fd: int) -> list[str]:
    chunks = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(fd)
    return b"".join(chunks).decode().splitlines()


def _cli_json(argv: list[str]) -> dict[str, object]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(argv)
    assert code == 0, buf.getvalue()
    return json.loads(buf.getvalue())  # type: ignore[no-any-return]


def _checkpoint_loop(ws: Path, state: Path, seed: int, w: int) -> None:
    """Child: mutate a few files, `tether checkpoint`, report (step, id, digest of what it wrote)."""
    rng = random.Random(seed)
    model = tree_files(ws)
    for k in range(10_000):
        for _ in range(rng.randint(1, 4)):
            name = f"d{rng.randint(0, 2)}/f{rng.randint(0, 11)}.txt"
            if name in model and rng.random() < 0.15:
                (ws / name).unlink()
                del model[name]
                continue
            data = (f"{seed}:{k}:{name}\n" * rng.randint(1, 300)).encode()
            (ws / name).parent.mkdir(exist_ok=True)
            (ws / name).write_bytes(data)  # deliberately not atomic: a kill may tear it
            model[name] = data
        out = _cli_json(["-C", str(ws), "--state-dir", str(state), "--json", "checkpoint", "-m", f"k{k}"])
        os.write(w, f"{k} {out['id']} {digest_files(model)}\n".encode())


def _restore(ws: Path, state: Path, n: int) -> None:
    with Store.open(ws, state) as store:
        restore_mod.restore(store, Checkpointer(store), n, dry_run=False)


def _untracked(ws: Path, state: Path) -> list[str]:
    with Store.open(ws, state) as store:
        head = store.head()
    return [p for p in tree_files(ws) if p not in head]


def test_sigkill_during_checkpoint_loses_nothing_complete(workspace: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    rng = random.Random(SEED)
    for i in range(6):
        (workspace / f"seed{i}.txt").write_text(f"seed {i}\n")
    first = _cli_json(["-C", str(workspace), "--state-dir", str(state), "--json", "checkpoint"])
    good: tuple[int, str] = (int(first["id"]), tree_digest(workspace))  # type: ignore[call-overload]
    torn = 0
    for it in range(ITERATIONS):
        child_seed = rng.randrange(1 << 30)
        pid, r = _fork(lambda w, s=child_seed: _checkpoint_loop(workspace, state, s, w))
        _kill_after(pid, rng.uniform(0.0, 0.25))
        lines = _read_all(r)
        ctx = f"seed={SEED} iteration={it} reported={len(lines)}"
        ids = audit_store(workspace, state)
        if lines:
            _k, cp, digest = lines[-1].split()
            good = (int(cp), digest)
            # The reported checkpoint is there, whole, with exactly the files the child wrote.
            assert digest_files(manifest_files(workspace, state, good[0])) == good[1], ctx
        assert good[0] in ids, ctx
        if tree_digest(workspace) != good[1]:
            torn += 1
        # A checkpoint committed but not yet reported may follow; audit_store checked it is whole.
        untracked = _untracked(workspace, state)
        _restore(workspace, state, good[0])
        # Like git, a restore never deletes files it never tracked (a file the child created
        # just before the kill); every tracked file is byte-identical, and nothing else changed.
        for rel in untracked:
            (workspace / rel).unlink()
        assert tree_digest(workspace) == good[1], ctx
    audit_store(workspace, state)
    # Most kills land mid-step, leaving the tree unlike any checkpoint; the restore fixed each one.
    print(f"checkpoint kills: {ITERATIONS}, workspace left differing from the last checkpoint: {torn}")
    assert torn > 0


def test_sigkill_of_a_fresh_cli_process(workspace: Path, tmp_path: Path) -> None:
    """The same with `python -c 'from tether.cli import main'` processes killed during start-up or work."""
    state = tmp_path / "state"
    rng = random.Random(SEED + 1)
    for i in range(30):
        (workspace / f"f{i}.txt").write_bytes(os.urandom(2000))
    argv = [sys.executable, "-c", "import sys; from tether.cli import main; sys.exit(main())"]
    base = ["-C", str(workspace), "--state-dir", str(state), "--json"]
    t0 = time.monotonic()
    done = subprocess.run(
        [*argv, *base, "checkpoint"], capture_output=True, text=True, timeout=60, check=False
    )
    run_time = time.monotonic() - t0
    assert done.returncode == 0, done.stderr
    good = (json.loads(done.stdout)["id"], tree_digest(workspace))
    for it in range(SUBPROCESS_ITERATIONS):
        for i in rng.sample(range(30), 5):
            (workspace / f"f{i}.txt").write_bytes(os.urandom(2000))
        proc = subprocess.Popen([*argv, *base, "checkpoint"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _kill_after(proc.pid, rng.uniform(0.0, run_time * 1.2))
        out, _ = proc.communicate(timeout=30)
        ids = audit_store(workspace, state)
        if out.strip():
            good = (json.loads(out)["id"], tree_digest(workspace))
            assert good[0] in ids
        # Whatever the kill left, audit_store found every checkpoint whole; the last reported restores.
        assert good[0] in ids
        _restore(workspace, state, good[0])
        assert tree_digest(workspace) == good[1], f"seed={SEED + 1} iteration={it}"


def test_sigkill_during_restore_is_undoable(workspace: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    rng = random.Random(SEED + 2)
    base = ["-C", str(workspace), "--state-dir", str(state), "--json"]
    for i in range(24):
        (workspace / f"m{i // 6}" / f"f{i}.bin").parent.mkdir(exist_ok=True)
        (workspace / f"m{i // 6}" / f"f{i}.bin").write_bytes(os.urandom(3000) + b"A" * 3000)
    a = int(_cli_json([*base, "checkpoint", "-m", "A"])["id"])  # type: ignore[call-overload]
    digest_a = tree_digest(workspace)
    for i in range(20):
        (workspace / f"m{i // 6}" / f"f{i}.bin").write_bytes(os.urandom(2000) + b"B" * 5000)
    for i in range(20, 24):
        (workspace / f"m{i // 6}" / f"f{i}.bin").unlink()
    for i in range(5):
        (workspace / "new" / f"n{i}.txt").parent.mkdir(exist_ok=True)
        (workspace / "new" / f"n{i}.txt").write_text(f"new {i}\n")
    b = int(_cli_json([*base, "checkpoint", "-m", "B"])["id"])  # type: ignore[call-overload]
    digest_b = tree_digest(workspace)
    states = {a: digest_a, b: digest_b}

    # One unkilled restore measures the run time the kills are spread over.
    t0 = time.monotonic()
    pid, r = _fork(lambda w: _cli_json([*base, "restore", str(a)]) and None)
    os.waitpid(pid, 0)
    _read_all(r)
    run_time = time.monotonic() - t0
    assert tree_digest(workspace) == digest_a
    current = a
    outcomes = {"untouched": 0, "complete": 0, "partial": 0}
    for it in range(ITERATIONS):
        target = b if current == a else a
        before_ids = audit_store(workspace, state)
        pid, r = _fork(lambda w, t=target: _cli_json([*base, "restore", str(t)]) and None)
        _kill_after(pid, rng.uniform(0.0, run_time * 1.3))
        _read_all(r)
        ctx = f"seed={SEED + 2} iteration={it} {current}->{target}"
        audit_store(workspace, state)
        now = tree_digest(workspace)
        if now == states[current]:
            outcomes["untouched"] += 1
        elif now == states[target]:
            outcomes["complete"] += 1
            current = target
        else:
            outcomes["partial"] += 1
            with Store.open(workspace, state) as store:
                undo = [
                    c.id
                    for c in store.list_checkpoints(limit=None)
                    if c.id > before_ids[-1] and c.message == f"before restoring checkpoint {target}"
                ]
            # Files were written, so the undo checkpoint was committed first.
            assert undo, ctx
            _restore(workspace, state, undo[0])
            assert tree_digest(workspace) == states[current], ctx
    print(f"restore kills: {ITERATIONS}, outcomes {outcomes}, restore run time {run_time * 1000:.0f} ms")
    assert outcomes["partial"] + outcomes["untouched"] > 0


class _Killed(BaseException):
    """Stands in for SIGKILL in-process: unwinds without running the rest of the restore."""


def test_restore_interrupted_after_creating_files_is_undone_exactly(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic twin of the kill loop: a restore that dies after creating a file the
    current tree does not have; restoring its undo checkpoint removes that file again."""
    state = tmp_path / "state"
    (workspace / "keep.txt").write_text("v1\n")
    # Sorted first, so it is the file the dying restore creates before it dies.
    (workspace / "a_created.txt").write_text("only in checkpoint 1\n")
    with Store.open(workspace, state) as store:
        cp = Checkpointer(store)
        first = cp.checkpoint("manual", full=True).info
        assert first is not None
        (workspace / "a_created.txt").unlink()
        (workspace / "keep.txt").write_text("v2\n")
        cp.checkpoint("manual", full=True)
        before = tree_files(workspace)
        real_write = restore_mod.safefs.write_file
        calls = []

        def dying_write(root: Path, rel: str, data: bytes, mode: int, temp_name: str) -> None:
            calls.append(rel)
            real_write(root, rel, data, mode, temp_name)
            if len(calls) == 1:
                raise _Killed

        monkeypatch.setattr(restore_mod.safefs, "write_file", dying_write)
        with pytest.raises(_Killed):
            restore_mod.restore(store, cp, first.id, dry_run=False)
        monkeypatch.setattr(restore_mod.safefs, "write_file", real_write)
        assert calls == ["a_created.txt"] and (workspace / "a_created.txt").exists()  # half-restored
        undo = [
            c.id for c in store.list_checkpoints() if c.message == f"before restoring checkpoint {first.id}"
        ]
        assert undo
        restore_mod.restore(store, cp, undo[0], dry_run=False)
        assert tree_files(workspace) == before


def test_leftover_restore_temp_files_are_ignored_and_swept(workspace: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    (workspace / "src").mkdir()
    (workspace / "src" / "a.py").write_text("a = 1\n")
    with Store.open(workspace, state) as store:
        cp = Checkpointer(store)
        first = cp.checkpoint("manual", full=True).info
        assert first is not None
        # What a restore killed between write and rename leaves (pid 2**22+1: not a live process).
        litter = workspace / "src" / f".a.py.tether-{2**22 + 1}.tmp"
        litter.write_text("half-written\n")
        (workspace / "src" / "a.py").write_text("a = 2\n")
        second = cp.checkpoint("manual", full=True).info
        assert second is not None and second.files == ("src/a.py",)
        assert "src/" + litter.name not in store.head()
        restore_mod.restore(store, cp, first.id, dry_run=False)
    assert not litter.exists()
    assert (workspace / "src" / "a.py").read_text() == "a = 1\n"
