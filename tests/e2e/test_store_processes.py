"""Two real processes checkpointing one workspace at once: both succeed, nothing lost or doubled."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tether.store.db import Store

ROUNDS = 40

WORKER = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from tether.checkpoints.checkpointer import Checkpointer
    from tether.store.db import Store

    root, state, name, rounds = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    made = []
    with Store.open(root, state) as store:
        cp = Checkpointer(store)
        for i in range(rounds):
            own = root / f"{name}" / f"f{i:03d}.txt"
            own.parent.mkdir(exist_ok=True)
            own.write_text(f"{name} {i}\\n")
            # Atomic replace, like an editor's save: two plain writers would interleave bytes.
            tmp = root / f".shared.{name}.tmp"
            tmp.write_text(f"{name} {i}\\n")
            os.replace(tmp, root / "shared.txt")
            if i % 5 == 4:
                # The periodic safety net: a full scan that also sees the other writer's files.
                out = cp.checkpoint("periodic")
            else:
                out = cp.checkpoint("save", paths=[str(own), "shared.txt"])
            if out.info is not None:
                made.append(out.info.id)
    print(json.dumps(made))
    """
)


def test_two_processes_checkpoint_the_same_workspace(workspace: Path, state_dir: Path) -> None:
    (workspace / ".gitignore").write_text("*.tmp\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "server")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(workspace), str(state_dir), name, str(ROUNDS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("alpha", "beta")
    ]
    made: list[int] = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 0, err
        made.extend(json.loads(out))

    # No checkpoint claimed twice, numbering contiguous, each one's parent is its predecessor.
    assert len(made) == len(set(made))
    with Store.open(workspace, state_dir) as store:
        infos = sorted(store.list_checkpoints(limit=None), key=lambda c: c.id)
        assert [c.id for c in infos] == list(range(1, len(infos) + 1))
        assert sorted(made) == [c.id for c in infos]
        assert all(c.parent == (c.id - 1 if c.id > 1 else None) for c in infos)

        # Every file either process wrote is recorded with its final content, and no path is
        # ever recorded twice in a row with the same content (a scan may catch a half-written
        # file once: that is a real, different version).
        rows = store._db.execute("SELECT path, hash FROM changes ORDER BY path, checkpoint").fetchall()
        by_path: dict[str, list[str | None]] = {}
        for path, digest in rows:
            by_path.setdefault(path, []).append(digest)
        for path, versions in by_path.items():
            assert all(a != b for a, b in itertools.pairwise(versions)), path
        final = store.manifest(infos[-1].id)
        for name in ("alpha", "beta"):
            for i in range(ROUNDS):
                rel = f"{name}/f{i:03d}.txt"
                assert store.read_blob(final[rel].hash) == f"{name} {i}\n".encode(), rel

        # The final state matches the disk, including the file both kept rewriting.
        for path, entry in final.items():
            assert store.read_blob(entry.hash) == (workspace / path).read_bytes(), path
        assert set(final) == {
            ".gitignore",
            *(str(p.relative_to(workspace)) for p in workspace.rglob("*.txt")),
        }
        # Every version of shared.txt in the history is one a writer really wrote, and once
        # recorded it never disappears. The first checkpoints may lack it: a change whose file
        # was replaced again between the scan and the store's lock is dropped (verify_stat),
        # and the next checkpoint records the newer version.
        written = {f"{n} {i}\n".encode() for n in ("alpha", "beta") for i in range(ROUNDS)}
        entries = [store.entry_at(c.id, "shared.txt") for c in infos]
        first = next(i for i, e in enumerate(entries) if e is not None)
        for entry in entries[first:]:
            assert entry is not None and store.read_blob(entry.hash) in written
        db_path = store.db_path

    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


@pytest.mark.parametrize("n_proc", [3])
def test_concurrent_cli_checkpoints_all_succeed(workspace: Path, state_dir: Path, n_proc: int) -> None:
    """`tether checkpoint` from several shells at once (an agent hook and a user): no 'locked' errors."""
    (workspace / "a.txt").write_text("start\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "server")}
    procs = []
    for i in range(n_proc):
        (workspace / f"w{i}.txt").write_text(f"{i}\n")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "tether", "-C", str(workspace), "--json", "checkpoint", "-m", f"p{i}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        ids.append(json.loads(out)["id"])
    assert sorted(ids) == list(range(1, n_proc + 1))
    with Store.open(workspace, state_dir) as store:
        final = store.manifest(n_proc)
        assert set(final) == {"a.txt", *(f"w{i}.txt" for i in range(n_proc))}


GITIGNORE_CASES = {
    ".gitignore": "*.log\nbuild/\n!keep.log\n/root_only.txt\ndocs/*.md\n!docs/README.md\n**/gen/*.c\n"
    "tmp*\n!tmpl.txt\nspace\\ name.txt\n*.py[co]\n",
    "pkg/.gitignore": "!*.log\nlocal.txt\nsub/\n/anchored.txt\n",
    "pkg/deep/.gitignore": "*.txt\n!wanted.txt\n",
}
FILES = [
    "a.log", "keep.log", "root_only.txt", "pkg/root_only.txt", "docs/x.md", "docs/README.md",
    "docs/sub/y.md", "src/gen/a.c", "gen/b.c", "src/gen/deeper/c.c", "tmpfile", "tmpl.txt",
    "space name.txt", "m.pyc", "m.py", "build/out.o", "src/build/x", "pkg/a.log", "pkg/local.txt",
    "pkg/x/local.txt", "pkg/sub/f", "pkg/anchored.txt", "pkg/x/anchored.txt", "pkg/deep/t.txt",
    "pkg/deep/wanted.txt", "pkg/deep/other.md", "pkg/deep/more/u.txt", "ok/plain.txt",
]  # fmt: skip


def test_gitignore_semantics_match_git(workspace: Path, state_dir: Path) -> None:
    """Our .gitignore handling tracks exactly what git itself would (asked via git ls-files)."""
    for rel, text in GITIGNORE_CASES.items():
        (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
        (workspace / rel).write_text(text)
    for rel in FILES:
        (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
        (workspace / rel).write_text(rel + "\n")
    subprocess.run(["git", "init", "-q"], cwd=workspace, check=True)
    out = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "-z"],
        cwd=workspace,
        check=True,
        capture_output=True,
    ).stdout
    want = {p for p in out.decode().split("\0") if p}
    from tether.checkpoints.checkpointer import Checkpointer

    with Store.open(workspace, state_dir) as store:
        Checkpointer(store).checkpoint("manual")
        assert set(store.head()) == want
        # The told-path route gives the same verdicts.
        for rel in FILES:
            (workspace / rel).write_text("changed\n")
        told = Checkpointer(store).checkpoint("save", paths=FILES)
        assert told.info is not None
        assert set(told.info.files) == want & set(FILES)


def test_a_second_store_in_a_process_keeps_its_commits_visible_to_others(
    workspace: Path, state_dir: Path
) -> None:
    """A process with two connections (the language server's worker and its file watcher): a
    short-lived command that opens and closes the store meanwhile must not take the last
    connection's part (checkpoint and delete the write-ahead log under the others), or what the
    long-lived process commits afterwards goes to a deleted file that nobody reads."""
    (workspace / "a.txt").write_text("a\n")
    reader = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from tether.store.db import Store
        with Store.open(Path(sys.argv[1]), sys.argv[2]) as s:
            print(s.get_meta("probe"))
        """
    )

    def read_probe() -> str:
        out = subprocess.run(
            [sys.executable, "-c", reader, str(workspace), str(state_dir)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return out.stdout.strip()

    first = Store.open(workspace, state_dir)
    second = Store.open(workspace, state_dir)  # e.g. the watcher's own connection
    try:
        for i in range(3):
            assert read_probe() in ("None", str(i - 1))  # a command comes and goes
            with first.write() as tx:
                tx.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('probe', ?)", (str(i),))
            assert read_probe() == str(i)  # committed, and seen by the next process
        with second.write() as tx:
            tx.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('probe', 'second')")
        assert read_probe() == "second"
    finally:
        second.close()
        first.close()
