"""Random damage over every page of a real store (seeded, bounded).

For each damaged copy, every command a user or an agent runs on a store (log, status, diff,
restore --dry-run, resume --print, doctor, step) answers with the documented error or an answer:
never a traceback, never another exit code. Read commands never write; `step` writes only when it
succeeds (damage SQLite cannot see is not judged); a store judged corrupt stays byte for byte
as it was, for the command that found the damage and for every later one. The language server,
started on a damaged store, never writes to it either.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.lsp_harness import start_session
from tether import protocol as P
from tether.cli import main

SEED = 1818
TRIALS_PER_PAGE = 6
MAX_TRIALS = 200
READERS = (
    ["log"],
    ["status"],
    ["diff", "1"],
    ["restore", "1", "--dry-run"],
    ["resume", "--print"],
    ["doctor"],
)


def _state(db: Path) -> tuple[bytes, int, bytes | None]:
    wal = db.with_name(db.name + "-wal")
    return (
        db.read_bytes(),
        db.stat().st_mtime_ns,
        wal.read_bytes() if wal.exists() and wal.stat().st_size else None,
    )


def _put(db: Path, data: bytes) -> None:
    for side in db.parent.glob(db.name + "*"):
        if side != db:
            side.unlink()
    db.write_bytes(data)


class Runner:
    def __init__(self, workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.workspace, self.capsys = workspace, capsys

    def __call__(self, *argv: str) -> tuple[int, dict[str, object]]:
        """Exit code and the JSON answer; any exception escaping the CLI fails the test."""
        code = main(["-C", str(self.workspace), "--json", *argv])
        out, err = self.capsys.readouterr()
        assert "Traceback" not in err, (argv, err)
        try:
            doc = json.loads(out)
        except ValueError:
            raise AssertionError(f"{argv}: not a JSON answer: {out[:200]!r} {err[:200]!r}") from None
        return code, doc


@pytest.fixture
def history(
    workspace: Path, state_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[Runner, Path]:
    """A store with steps, a run, a task, next steps and a few dozen pages."""
    monkeypatch.setenv("TETHER_TMUX_SOCKET", str(state_dir.parent / "no-tmux-here"))
    monkeypatch.setenv("TETHER_CONFIG", str(state_dir.parent / "no-config.toml"))
    run = Runner(workspace, capsys)
    (workspace / "src").mkdir()
    rng = random.Random(SEED)
    for i in range(8):
        for j in range(3):
            # Text that compresses poorly: blobs spill onto overflow pages, as real sources do.
            words = " ".join(f"{rng.getrandbits(40):x}" for _ in range(60 * (j + 1)))
            (workspace / "src" / f"m{j}.py").write_text(f"# step {i}\n{words}\n")
        code, _ = run("step", "--done", f"step {i}", "--next", f"then {i + 1}", "--task", "parser rewrite")
        assert code == 0
    code, _ = run("run", "--", "true")
    assert code == 0
    code, _ = run("checkpoint", "-m", "before the damage")
    assert code == 0
    [db] = list((workspace.parent / "state").glob("workspaces/*/tether.db"))
    return run, db


def test_random_damage_on_every_page_gives_a_clear_error_and_no_write(
    history: tuple[Runner, Path], workspace: Path
) -> None:
    run, db = history
    _put(db, db.read_bytes())  # no WAL: everything is in the file
    good = db.read_bytes()
    page_size = int.from_bytes(good[16:18], "big")
    pages = len(good) // page_size
    agent_file = workspace / ".agent-session.json"
    agent_good = agent_file.read_bytes()
    rng = random.Random(SEED)
    outcomes: Counter[str] = Counter()
    trials = min(MAX_TRIALS, pages * TRIALS_PER_PAGE)
    assert pages >= 20, pages
    for trial in range(trials):
        page = trial % pages
        length = rng.randint(1, 64)
        offset = page * page_size + rng.randrange(page_size - length)
        damaged = bytearray(good)
        damaged[offset : offset + length] = rng.randbytes(length)
        where = f"trial {trial}: {length} bytes at {offset} (page {page + 1})"
        for argv in READERS:
            _put(db, bytes(damaged))
            agent_file.write_bytes(agent_good)
            before = _state(db)
            code, doc = run(*argv)
            outcomes[f"{argv[0]}:{code}"] += 1
            if argv[0] == "doctor":
                assert code in (0, 1), (where, argv, doc)
            elif code != 0:
                assert code in (4, 5), (where, argv, code, doc)
                assert doc["error"]["message"], (where, argv)  # type: ignore[index]
            assert _state(db) == before, (where, argv, "a read command wrote to the store")
        # A step, with the agent's session file changed since: it is imported (written) first.
        _put(db, bytes(damaged))
        agent_file.write_text(json.dumps({**json.loads(agent_good), "task": f"edited {trial}"}))
        (workspace / "src" / "new.py").write_text(f"n = {trial}\n")
        before = _state(db)
        code, doc = run("step", "--done", f"after damage {trial}")
        outcomes[f"step:{code}"] += 1
        if code != 0:
            assert code == 5 and "is corrupt" in doc["error"]["message"], (where, doc)  # type: ignore[index]
            assert _state(db) == before, (where, "step said corrupt yet wrote")
            # Judged corrupt: later writers refuse too, and write nothing.
            code, doc = run("checkpoint", "-m", "again")
            assert code == 5 and _state(db) == before, (where, doc)
    agent_file.write_bytes(agent_good)
    # The loop saw both kinds of damage: some that SQLite (or the checks) found, some not.
    assert outcomes["step:5"] > 0 and outcomes["step:0"] > 0, outcomes
    print(f"{trials} trials over {pages} pages:", dict(sorted(outcomes.items())))


async def test_the_language_server_never_writes_to_a_damaged_store(
    history: tuple[Runner, Path], workspace: Path, state_dir: Path
) -> None:
    _, db = history
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    page = int(conn.execute("SELECT rootpage FROM sqlite_master WHERE name='checkpoints'").fetchone()[0])
    conn.close()
    data = bytearray(db.read_bytes())
    size = int.from_bytes(data[16:18], "big")
    at = (page - 1) * size + size - 96
    data[at : at + 64] = bytes(range(200, 256)) + bytes(8)
    _put(db, bytes(data))
    before = _state(db)
    (workspace / "src" / "edited.py").write_text("x = 1\n")
    s = await start_session(workspace, state_dir, "visual-studio-code")
    try:
        st = await s.wait_status(lambda st: st["state"] == "error", "error status")
        assert "corrupt" in st["error"]
        with pytest.raises(Exception, match=r"corrupt|store"):
            await s.command(P.CMD_CHECKPOINT, {"message": "please"})
    finally:
        await s.stop()
    assert _state(db) == before
