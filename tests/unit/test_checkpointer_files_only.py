"""files_only checkpoints (save/periodic/baseline in the server): attachments alone never
make a checkpoint, but ride along with the next file change."""

from __future__ import annotations

from pathlib import Path

from tether.checkpoints.checkpointer import Checkpointer
from tether.store.db import Store


def test_files_only(workspace: Path, state_dir: Path) -> None:
    (workspace / "a.txt").write_text("1")
    cursor = {"n": 0}
    with Store.open(workspace, state_dir) as store:
        cp = Checkpointer(store)
        cp.add_provider("editor", lambda: str(cursor["n"]).encode())
        first = cp.checkpoint("baseline", full=True, files_only=True).info
        assert first is not None and first.files == ("a.txt",)
        cursor["n"] = 1  # the cursor moved, no file changed
        assert cp.checkpoint("periodic", full=True, files_only=True).info is None
        assert cp.checkpoint("save", paths=["a.txt"], files_only=True).info is None
        # Without files_only the attachment change alone is a checkpoint (manual, step).
        manual = cp.checkpoint("manual", full=True).info
        assert manual is not None and manual.files == ()
        cursor["n"] = 2
        (workspace / "a.txt").write_text("2")
        later = cp.checkpoint("save", paths=["a.txt"], files_only=True).info
        assert later is not None and later.files == ("a.txt",)
        assert store.attachment(later.id, "editor") == b"2"
