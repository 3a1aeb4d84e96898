"""Imported checkpoints in the store: their own delta chain per origin, head and this machine's
chain untouched; path checks and mapping of the hand-off importer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.cli.remote import split_source
from tether.errors import HandoffError
from tether.model import FileChange, ImportedCheckpoint
from tether.remote.gitrepo import ref_part
from tether.remote.importer import check_path, map_path
from tether.store.db import Store


def test_imported_chain_is_separate_from_local(workspace: Path, state_dir: Path) -> None:
    with Store.open(workspace, state_dir) as store:
        c1 = store.create_checkpoint("step", "local 1", [FileChange("a.txt", b"local a")])
        assert c1 is not None
        imported = store.import_checkpoints(
            "alice",
            [
                ImportedCheckpoint(
                    10.0, "step", "remote 1", [("a.txt", b"remote a", 0o644), ("r.txt", b"r", 0o755)]
                ),
                ImportedCheckpoint(11.0, "step", "remote 2", [("r.txt", None, 0o644)], {"agent": b"{}"}),
            ],
        )
        r1, r2 = imported
        assert r1.origin == r2.origin == "alice" and r2.parent == r1.id
        c2 = store.create_checkpoint("step", "local 2", [FileChange("b.txt", b"local b")])
        assert c2 is not None and c2.parent == c1.id  # not the imported one
        assert {p: e.size for p, e in store.manifest(c2.id).items()} == {"a.txt": 7, "b.txt": 7}
        assert (
            set(store.manifest(r1.id)) == {"a.txt", "r.txt"} and store.manifest(r1.id)["r.txt"].mode == 0o755
        )
        assert set(store.manifest(r2.id)) == {"a.txt"}
        assert store.read_blob(store.manifest(r2.id)["a.txt"].hash) == b"remote a"
        assert set(store.head()) == {"a.txt", "b.txt"} and store.head()["a.txt"].size == 7
        assert store.latest() == store.get_checkpoint(c2.id)
        assert store.latest(origin="alice") == store.get_checkpoint(r2.id)
        assert store.latest_attachment("agent") is None  # alice's attachment is not ours
        assert store.latest_attachment("agent", at=r2.id) == (r2.id, b"{}")
        assert [c.origin for c in store.list_checkpoints()] == [None, "alice", "alice", None]
        store.gc(keep_last=1)
        assert [c.id for c in store.list_checkpoints()] == [c2.id, r2.id, r1.id]
        assert set(store.manifest(c2.id)) == {"a.txt", "b.txt"}
        assert set(store.manifest(r2.id)) == {"a.txt"}


@pytest.mark.parametrize(
    "bad", ["../x", "a/../b", ".git/config", "a/.GIT/x", "", "a//b", "/etc/passwd", "./a"]
)
def test_check_path_refuses_escapes(bad: str) -> None:
    with pytest.raises(HandoffError):
        check_path(bad)


def test_check_path_and_map_path_accept_ordinary_paths() -> None:
    assert check_path("src/app.py") == "src/app.py"
    assert map_path("/home/alice/proj/src", "/home/alice/proj", "/work/bob") == "/work/bob/src"
    assert map_path("/home/alice/proj", "/home/alice/proj/", "/work/bob") == "/work/bob"
    assert map_path("/etc", "/home/alice/proj", "/work/bob") == "/work/bob"  # outside: the root
    assert map_path("/home/alice/proj/../x", "/home/alice/proj", "/work/bob") == "/work/bob"


def test_split_source_and_ref_part() -> None:
    assert split_source("origin/alice@box") == ("origin", "alice@box")
    assert split_source("origin") == ("origin", None)
    assert split_source("file:///srv/r.git#alice") == ("file:///srv/r.git", "alice")
    assert split_source("/srv/r.git") == ("/srv/r.git", None)
    part = ref_part("a b/../c.lock")
    assert ".." not in part and "/" not in part and " " not in part and not part.endswith(".lock")
    assert ref_part("..") == "x"


def test_push_side_files_drop_non_project_env_and_text() -> None:
    import json

    from tether.remote.export import strip_editor, strip_tmux

    pane = {
        "scrollback": ["secret output"],
        "history": ["export X=1"],
        "env": [
            {"name": "TOKEN", "kind": "secret", "value": "sk-1"},
            {"name": "P", "kind": "project", "value": "v"},
        ],
    }
    doc = {
        "env": [{"name": "SSH_AUTH_SOCK", "kind": "volatile", "value": "/tmp/s"}],
        "windows": [{"panes": [pane]}],
    }
    out = json.loads(strip_tmux(json.dumps(doc).encode(), include_terminal=False))
    p = out["windows"][0]["panes"][0]
    assert p["scrollback"] == [] and p["history"] == []
    assert [e["value"] for e in p["env"]] == [None, "v"] and out["env"][0]["value"] is None
    kept = json.loads(strip_tmux(json.dumps(doc).encode(), include_terminal=True))
    assert kept["windows"][0]["panes"][0]["scrollback"] == ["secret output"]
    assert json.loads(strip_editor(b'{"files": [], "buffers": [{"text": "unsaved"}]}'))["buffers"] == []
