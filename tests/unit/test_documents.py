"""The open set, dirty tracking, cursors and the journal's shape (no pygls, no subprocess)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tether.editor.documents import (
    Documents,
    end_position,
    has_content,
    parse_editor_state,
    text_hash,
    uri_to_path,
    utf16_len,
)
from tether.redact import looks_secret


@pytest.fixture
def docs(workspace: Path) -> Documents:
    return Documents(workspace)


def test_only_workspace_files_are_tracked(docs: Documents, workspace: Path, tmp_path: Path) -> None:
    assert docs.open((workspace / "a.py").as_uri(), 1, "x\n") is not None
    assert docs.open("file:///etc/passwd", 1, "root\n") is None
    assert docs.open((tmp_path / "outside.txt").as_uri(), 1, "o\n") is None
    assert docs.open((workspace / ".." / "escape.txt").as_uri(), 1, "e\n") is None
    assert docs.open("untitled:Untitled-1", 1, "u") is None
    assert docs.open("file://otherhost/x.py", 1, "u") is None
    assert docs.open_paths() == ["a.py"]


def test_dirty_follows_content_not_versions(docs: Documents, workspace: Path) -> None:
    uri = (workspace / "a.py").as_uri()
    docs.open(uri, 1, "x = 1\n")
    assert docs.dirty() == []
    docs.change(uri, 2, "x = 2\n", (0, 5))
    assert [d.path for d in docs.dirty()] == ["a.py"]
    # Undo back to the saved text: clean again.
    docs.change(uri, 3, "x = 1\n", (0, 5))
    assert docs.dirty() == []
    docs.change(uri, 4, "x = 3\n", (0, 5))
    docs.save(uri)
    assert docs.dirty() == []
    assert docs.get(uri) is not None and docs.get(uri).base_hash == text_hash("x = 3\n")  # type: ignore[union-attr]
    assert "a.py" in docs.edited_paths


def test_unknown_uris_are_ignored(docs: Documents, workspace: Path) -> None:
    uri = (workspace / "ghost.py").as_uri()
    assert docs.change(uri, 2, "x", None) is None
    assert docs.save(uri) is None
    assert docs.close(uri) is None
    assert docs.set_cursor(uri, 1, 1) is None
    assert docs.all() == []


def test_cursor_from_edit_and_explicit(docs: Documents, workspace: Path) -> None:
    uri = (workspace / "a.py").as_uri()
    docs.open(uri, 1, "abc\n")
    docs.change(uri, 2, "abXc\n", (0, 3))
    assert docs.get(uri).cursor == (0, 3)  # type: ignore[union-attr]
    gen = docs.generation
    docs.set_cursor(uri, 0, 1)
    assert docs.get(uri).cursor == (0, 1)  # type: ignore[union-attr]
    assert docs.generation == gen + 1
    docs.set_cursor(uri, 0, 1)  # no change, no journal churn
    assert docs.generation == gen + 1


def test_reopen_keeps_the_cursor(docs: Documents, workspace: Path) -> None:
    uri = (workspace / "a.py").as_uri()
    docs.open(uri, 1, "abc\n")
    docs.set_cursor(uri, 0, 2)
    docs.open(uri, 1, "abc\n")
    assert docs.get(uri).cursor == (0, 2)  # type: ignore[union-attr]


def test_journal_has_text_and_base_hash_attachment_does_not(docs: Documents, workspace: Path) -> None:
    a = (workspace / "a.py").as_uri()
    b = (workspace / "b.py").as_uri()
    docs.open(a, 1, "a\n")
    docs.open(b, 1, "b\n")
    docs.change(b, 2, "b changed\n", (0, 9))
    # Not vetted yet (not ignored, not secret): flagged, so the journal writer vets it itself.
    assert [x["vetted"] for x in docs.snapshot("sess", with_text=True)["buffers"]] == [False]
    docs.set_journal_text(b, False)
    assert docs.snapshot("sess", with_text=True)["buffers"] == []
    docs.set_journal_text(b, True)
    journal = docs.snapshot("sess", with_text=True)
    assert journal["sessionId"] == "sess"
    assert [f["path"] for f in journal["files"]] == ["a.py", "b.py"]  # most recently touched last
    assert journal["buffers"] == [
        {"path": "b.py", "uri": b, "text": "b changed\n", "baseHash": text_hash("b\n"), "vetted": True}
    ]
    att = json.loads(docs.attachment_bytes("sess"))
    assert att["buffers"] == []
    assert {f["path"]: f["dirty"] for f in att["files"]} == {"a.py": False, "b.py": True}
    # Deterministic bytes: the store deduplicates unchanged attachments.
    assert docs.attachment_bytes("sess") == docs.attachment_bytes("sess")


def test_mark_base_detects_editor_restored_buffers(docs: Documents, workspace: Path) -> None:
    uri = (workspace / "a.py").as_uri()
    docs.open(uri, 1, "unsaved text from the editor's own hot exit\n")
    docs.mark_base(uri, text_hash("disk text\n"))
    (doc,) = docs.dirty()
    assert doc.base_hash == text_hash("disk text\n")


def test_parse_editor_state_never_raises() -> None:
    assert parse_editor_state(None) is None
    assert parse_editor_state(b"") is None
    assert parse_editor_state(b"\xff\xfe") is None
    assert parse_editor_state(b"[1, 2]") is None
    assert parse_editor_state(b'{"files": 3}') is None
    assert parse_editor_state(b'{"files": []}') == {"files": []}
    assert not has_content({"files": [], "buffers": []})
    assert has_content({"files": [{"path": "a"}]})


def test_positions_count_utf16() -> None:
    assert utf16_len("a😀b") == 4
    assert end_position("") == (0, 0)
    assert end_position("ab\n") == (1, 0)
    assert end_position("ab\nc😀") == (1, 3)


def test_uri_to_path() -> None:
    assert uri_to_path("file:///tmp/a%20b.py") == "/tmp/a b.py"
    assert uri_to_path("untitled:x") is None
    assert uri_to_path("https://example.com/x") is None


def test_concurrent_snapshots_while_editing(docs: Documents, workspace: Path) -> None:
    uri = (workspace / "a.py").as_uri()
    docs.open(uri, 1, "")
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(300):
                docs.attachment_bytes("s")
                docs.snapshot("s", with_text=True)
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    for v in range(2, 600):
        docs.change(uri, v, "x" * v, (0, v))
        if v % 50 == 0:
            docs.open((workspace / f"f{v}.py").as_uri(), 1, "")
    t.join(10)
    assert errors == []


def test_secret_looking_paths() -> None:
    for rel in [
        ".env",
        "config/.env.local",
        "prod.env",
        "certs/server.pem",
        "keys/deploy.key",
        ".netrc",
        "id_rsa",
    ]:
        assert looks_secret(rel), rel
    for rel in ["app.py", "environment.md", "src/keyboard.ts", "README"]:
        assert not looks_secret(rel), rel


def test_encoded_uris_map_to_workspace_paths(docs: Documents, workspace: Path) -> None:
    (workspace / "my dir").mkdir()
    uri = (workspace / "my dir" / "naïve file.py").as_uri()
    assert "%20" in uri
    doc = docs.open(uri, 1, "")
    assert doc is not None and doc.path == "my dir/naïve file.py"


def test_huge_buffers_are_not_journaled(docs: Documents, workspace: Path) -> None:
    small = (workspace / "small.py").as_uri()
    big = (workspace / "big.py").as_uri()
    for uri in (small, big):
        docs.open(uri, 1, "")
        docs.set_journal_text(uri, True)
    docs.change(small, 2, "x" * 10, None)
    docs.change(big, 2, "x" * 1000, None)
    snap = docs.snapshot("s", with_text=True, max_text=100)
    assert [b["path"] for b in snap["buffers"]] == ["small.py"]
    assert {f["path"]: f["dirty"] for f in snap["files"]} == {"small.py": True, "big.py": True}
