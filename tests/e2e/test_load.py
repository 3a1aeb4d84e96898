"""Load: 4 workspaces x 2 editors (two `tether lsp` servers per workspace, one shared store)
saving in bursts at once for a bounded time; and the server's memory across 10k edits.

- No lost checkpoint: the content left on disk at the end of every burst shows up in the
  workspace's store (checked by content hash, from outside the server). Saves inside a burst
  are coalesced by design (save debounce), so only each burst's final content is owed a
  checkpoint; the quiet spell after a burst is longer than the debounces.
- No lock errors surfaced: no error/warning showMessage, no `error` status, every command
  answered with a result.
- Memory: RSS after 1k and after 10k didChange; the growth must stay within a modest slack
  (a bounded check, not a timing assert). Figures are printed (run with -s).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faults import audit_store
from tests.support.rawlsp import RawLsp
from tests.support.retry import retry_until
from tether import protocol as P
from tether.model import blob_hash
from tether.store.db import Store

pytestmark = pytest.mark.slow

WORKSPACES = 4
EDITORS = 2
DURATION_S = float(os.environ.get("TETHER_LOAD_SECONDS", "20"))
QUIET_S = 2.0
ROUNDS = max(3, int(DURATION_S / (QUIET_S + 0.5)))
FILES_PER_EDITOR = 3
BURST = 5
# Edits and RSS sampling points for the memory check.
EDITS_WARM = 1_000
EDITS_TOTAL = 10_000
RSS_SLACK_KIB = 6 * 1024


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.editor.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _recorded(db_path: Path, rel: str, digest: str) -> bool:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=15)
    try:
        row = db.execute("SELECT 1 FROM changes WHERE path=? AND hash=? LIMIT 1", (rel, digest)).fetchone()
        return row is not None
    finally:
        db.close()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[list[tuple[Path, Path, list[RawLsp]]]]:
    out: list[tuple[Path, Path, list[RawLsp]]] = []
    servers: list[RawLsp] = []
    state = tmp_path / "state"
    try:
        for w in range(WORKSPACES):
            root = (tmp_path / f"ws{w}").resolve()
            root.mkdir()
            for e in range(EDITORS):
                for f in range(FILES_PER_EDITOR):
                    (root / f"e{e}_f{f}.py").write_text(f"# editor {e} file {f}\n")
            editors = [RawLsp(root, state) for _ in range(EDITORS)]
            servers.extend(editors)
            out.append((root, state, editors))
        for s in servers:
            s.initialize()
        yield out
    finally:
        for s in servers:
            s.stop()


def test_four_workspaces_two_editors_each_save_bursts(fleet: list[tuple[Path, Path, list[RawLsp]]]) -> None:
    failures: list[str] = []
    pending: list[tuple[Path, str, str]] = []  # (db, rel, digest) of every burst's final content
    lock = threading.Lock()
    bursts = [0]
    barriers = {root: threading.Barrier(EDITORS) for root, _s, _e in fleet}
    db_paths = {}
    for root, state, _ in fleet:
        with Store.open(root, state) as store:
            db_paths[root] = store.db_path

    def editor(root: Path, e: int, lsp: RawLsp) -> None:
        try:
            uris = {}
            texts = {}
            for f in range(FILES_PER_EDITOR):
                rel = f"e{e}_f{f}.py"
                texts[rel] = (root / rel).read_text()
                uris[rel] = lsp.open(rel, texts[rel])
            version = 1
            n = 0
            for _round in range(ROUNDS):
                # The editors of a workspace burst together, then all stay quiet for QUIET_S.
                barriers[root].wait(timeout=60)
                written: dict[str, str] = {}
                for i in range(BURST):
                    rel = f"e{e}_f{(n + i) % FILES_PER_EDITOR}.py"
                    n += 1
                    version += 1
                    text = f"# editor {e} save {n}\n" + "x = 1\n" * (n % 50)
                    lsp.change(uris[rel], version, text)
                    _write_atomic(root / rel, text.encode())
                    lsp.save(uris[rel])
                    texts[rel] = written[rel] = text
                # After the burst, the content on disk of each file must reach the store.
                with lock:
                    bursts[0] += 1
                    for rel, text in written.items():
                        pending.append((db_paths[root], rel, blob_hash(text.encode())))
                res = lsp.command(P.CMD_TIMELINE, {"limit": 5})
                if "result" not in res:
                    failures.append(f"{root.name}/{e}: timeline failed: {res}")
                # Pacing (load generation, not polling): a quiet spell longer than the save and
                # watcher debounces, so each burst's final content must be checkpointed.
                threading.Event().wait(QUIET_S)
        except Exception as exc:  # surfaced below with its editor
            failures.append(f"{root.name}/{e}: {exc!r}")

    threads = [
        threading.Thread(target=editor, args=(root, e, lsp), daemon=True)
        for root, _state, editors in fleet
        for e, lsp in enumerate(editors)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=ROUNDS * (QUIET_S + 30) + 60)
        assert not t.is_alive(), "an editor thread hung"
    assert not failures, failures

    # Every burst's final content lands in the store (bounded wait: servers catch up on debounce).
    unique = sorted(set(pending))
    for db, rel, digest in unique:
        retry_until(
            lambda d=db, r=rel, h=digest: _recorded(d, r, h),  # type: ignore[misc]
            timeout=30,
            what=f"{rel} {digest[:8]} in {db.parent.name}",
        )

    for root, state, editors in fleet:
        audit_store(root, state)
        for lsp in editors:
            assert lsp.alive(), lsp.stderr_text()[-2000:]
            shown = [m for m in lsp.messages_of("window/showMessage") if m and m.get("type") in (1, 2)]
            assert not shown, shown
            statuses = lsp.messages_of(P.NOTIFY_STATUS)
            assert statuses, "no status notifications at all"
            assert not [s for s in statuses if s and s.get("state") == P.STATE_ERROR], statuses[-3:]
            assert "database is locked" not in lsp.stderr_text()
    print(
        f"load: {WORKSPACES} workspaces x {EDITORS} editors, {ROUNDS} rounds: {bursts[0]} bursts of "
        f"{BURST} saves, {len(unique)} burst-final contents all recorded"
    )


def test_server_memory_stays_flat_across_10k_edits(tmp_path: Path) -> None:
    root = (tmp_path / "ws").resolve()
    root.mkdir()
    (root / "big.py").write_text("# start\n")
    lsp = RawLsp(root, tmp_path / "state")
    try:
        lsp.initialize()
        uri = lsp.open("big.py", "# start\n")
        samples = {}
        version = 1
        for i in range(1, EDITS_TOTAL + 1):
            version += 1
            # Same-size full-text edits: any growth is the server's, not the document's.
            lsp.change(uri, version, f"# edit {i:06d}\n" + "y = 2\n" * 300)
            if i in (EDITS_WARM, EDITS_TOTAL):
                # A request round-trip: every earlier notification has been handled.
                assert "result" in lsp.command(P.CMD_STATUS)
                samples[i] = lsp.rss_kib()
        assert lsp.alive()
    finally:
        lsp.stop()
    growth = samples[EDITS_TOTAL] - samples[EDITS_WARM]
    print(
        f"memory: RSS after {EDITS_WARM} edits {samples[EDITS_WARM]} KiB, after {EDITS_TOTAL} "
        f"{samples[EDITS_TOTAL]} KiB, growth {growth} KiB (slack {RSS_SLACK_KIB} KiB)"
    )
    assert growth < RSS_SLACK_KIB
