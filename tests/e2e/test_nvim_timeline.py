"""Timeline, diff and restore from a real headless Neovim against the real `tether lsp`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.nvim.driver import Nvim
from tests.e2e.nvim.scenario import checkpoint, editor, events, float_lines, make_workspace, wait_client
from tests.support.retry import retry_until

pytestmark = [pytest.mark.nvim, pytest.mark.timeout(180)]

V1 = "alpha\nbeta\ngamma\n"


def pending_select(nv: Nvim) -> dict[str, object]:
    return retry_until(
        lambda: nv.lua(
            "local s = T.selects[1]; return s and { prompt = s.prompt, items = s.items, kind = s.kind }"
        ),
        timeout=20,
        what="vim.ui.select",
    )


def test_timeline_diff_and_restore(tmp_path: Path, state_dir: Path) -> None:
    ws = make_workspace(tmp_path / "ws", {"a.txt": V1})
    with editor(tmp_path / "home", ws, state_dir, None) as nv:
        nv.start("a.txt")
        wait_client(nv, "a.txt")
        first = checkpoint(nv, "first")

        nv.lua("vim.api.nvim_buf_set_lines(0, 1, 2, false, { 'BETA' })")
        nv.cmd("write")
        second = checkpoint(nv, "second")
        assert second > first

        # Timeline: newest first, formatted with id, trigger and message.
        nv.run("Tether timeline")
        sel = pending_select(nv)
        assert sel["kind"] == "tether.timeline"
        items = sel["items"]
        assert items[0].startswith(f"#{second} ") and "manual" in items[0] and items[0].endswith("second")
        idx = next(i for i, it in enumerate(items) if it.startswith(f"#{first} "))
        assert items[idx].endswith("first")
        nv.lua(f"T.choose({idx + 1})")
        actions = pending_select(nv)
        assert actions["items"][0] == f"Compare current file with #{first}"
        nv.lua("T.choose(1)")

        # Diff: checkpoint content in a scratch split, both windows in diff mode.
        diff = nv.wait(
            "(function() local r = {} for _, w in ipairs(vim.api.nvim_tabpage_list_wins(0)) do"
            " local b = vim.api.nvim_win_get_buf(w) r[#r + 1] = { name = vim.api.nvim_buf_get_name(b),"
            " diff = vim.wo[w].diff, lines = vim.api.nvim_buf_get_lines(b, 0, -1, false) } end"
            " return #r == 2 and r[1].diff and r[2].diff and r end)()",
            timeout=20,
            what="diff split",
        )
        scratch = next(w for w in diff if w["name"].startswith("tether://"))
        live = next(w for w in diff if not w["name"].startswith("tether://"))
        assert scratch["name"] == f"tether://{first}/a.txt"
        assert scratch["lines"] == ["alpha", "beta", "gamma"]
        assert live["lines"] == ["alpha", "BETA", "gamma"]

        # Checkpoint numbers are offered for completion once the timeline was fetched.
        comp = nv.lua("return vim.fn.getcompletion('Tether restore ', 'cmdline')")
        assert str(first) in comp and str(second) in comp

        # Wiping the checkpoint buffer ends the comparison: diff mode off in the live window.
        nv.lua(
            "for _, b in ipairs(vim.api.nvim_list_bufs()) do"
            " if vim.api.nvim_buf_get_name(b):match('^tether://') then"
            " vim.api.nvim_buf_delete(b, { force = true }) end end"
        )
        nv.wait("#vim.api.nvim_list_wins() == 1 and not vim.wo.diff", what="diff mode off")
        assert nv.lua("return vim.api.nvim_buf_get_name(0)") == str(ws / "a.txt")

        # Restore: preview the diff first, confirm, file back on disk and in the buffer.
        nv.run(f"Tether restore {first}")
        confirm = pending_select(nv)
        assert confirm["prompt"] == f"Restore from checkpoint #{first}: 1 file?"
        preview = nv.lua(
            "return { ft = vim.bo.filetype, lines = vim.api.nvim_buf_get_lines(0, 0, -1, false) }"
        )
        assert preview["ft"] == "diff"
        assert "-BETA" in preview["lines"] and "+beta" in preview["lines"]
        assert (ws / "a.txt").read_text() == "alpha\nBETA\ngamma\n"  # nothing written before confirming
        nv.lua("T.choose(1)")
        retry_until(lambda: (ws / "a.txt").read_text() == V1, timeout=20, what="file restored on disk")
        retry_until(
            lambda: (
                nv.lua(
                    f"return vim.api.nvim_buf_get_lines(vim.fn.bufnr({str(ws / 'a.txt')!r}), 0, -1, false)"
                )
                == ["alpha", "beta", "gamma"]
            ),
            timeout=20,
            what="buffer reloaded",
        )
        note = retry_until(
            lambda: [n for n in nv.notes() if "restored 1 file from checkpoint" in n], timeout=20, what="note"
        )
        assert "undo with :Tether restore" in note[0]

        # The restore is undoable: the checkpoint it names brings the pre-restore state back.
        undo = int(note[0].rsplit(" ", 1)[1])
        nv.run(f"Tether restore {undo}")
        assert pending_select(nv)["prompt"] == f"Restore from checkpoint #{undo}: 1 file?"
        nv.lua("T.choose(1)")
        retry_until(
            lambda: (ws / "a.txt").read_text() == "alpha\nBETA\ngamma\n", timeout=20, what="undo restore"
        )
        retry_until(
            lambda: (
                nv.lua(
                    f"return vim.api.nvim_buf_get_lines(vim.fn.bufnr({str(ws / 'a.txt')!r}), 0, -1, false)"
                )
                == ["alpha", "BETA", "gamma"]
            ),
            timeout=20,
            what="buffer reloaded after undo",
        )

        # `:Tether diff` without arguments compares the current file with the latest checkpoint.
        nv.run("Tether diff")
        latest = nv.wait(
            "(function() for _, w in ipairs(vim.api.nvim_tabpage_list_wins(0)) do"
            " local n = vim.api.nvim_buf_get_name(vim.api.nvim_win_get_buf(w))"
            " if n:match('^tether://') then return n end end end)()",
            timeout=20,
            what="diff with the latest checkpoint",
        )
        nv.run(lua="require('tether').fetch_timeline(function(cps) T.newest = cps[1].id end)")
        newest = nv.wait("T.newest", what="timeline")
        assert latest == f"tether://{newest}/a.txt"
        assert newest > undo
        nv.lua(
            "for _, b in ipairs(vim.api.nvim_list_bufs()) do"
            " if vim.api.nvim_buf_get_name(b):match('^tether://') then"
            " vim.api.nvim_buf_delete(b, { force = true }) end end"
        )

        # Cancelling a restore writes nothing.
        nv.lua("vim.api.nvim_buf_set_lines(0, 0, 1, false, { 'ALPHA' })")
        nv.cmd("write")
        nv.run(f"Tether restore {first}")
        pending_select(nv)
        nv.lua("T.choose(nil)")
        assert (ws / "a.txt").read_text() == "ALPHA\nBETA\ngamma\n"

        # A checkpoint that does not exist: the server's error is shown, nothing opens.
        wins = nv.lua("return #vim.api.nvim_list_wins()")
        nv.run("Tether diff 9999")
        retry_until(
            lambda: [n for n in nv.notes() if "tether.fileAt failed" in n], timeout=20, what="error note"
        )
        assert nv.lua("return #vim.api.nvim_list_wins()") == wins


def test_step_prompts_when_given_no_arguments(tmp_path: Path, state_dir: Path) -> None:
    ws = make_workspace(tmp_path / "ws", {"a.txt": V1})
    with editor(tmp_path / "home", ws, state_dir, None) as nv:
        nv.start("a.txt")
        wait_client(nv, "a.txt")
        nv.run("Tether step")

        def prompt() -> str | None:
            return nv.lua("return T.inputs[1] and T.inputs[1].prompt")

        assert retry_until(prompt, timeout=10, what="first prompt") == "Done: "
        nv.run(lua="T.answer('split the parser')")
        assert retry_until(prompt, timeout=10, what="second prompt") == "Next steps (separated by ;): "
        nv.run(lua="T.answer('add tests; ; update docs ')")
        found = retry_until(
            lambda: [e for e in events(nv, "TetherCheckpoint") if e["checkpoint"].get("trigger") == "step"],
            timeout=20,
            what="step checkpoint",
        )
        assert found[0]["checkpoint"]["message"] == "split the parser"
        steps = retry_until(lambda: float_lines(nv), timeout=15, what="next steps float")
        assert "1. add tests" in steps and "2. update docs" in steps
        assert "3." not in " ".join(steps)  # the empty item was dropped


def test_saving_checkpoints_and_updates_the_statusline(tmp_path: Path, state_dir: Path) -> None:
    ws = make_workspace(tmp_path / "ws", {"a.txt": V1})
    with editor(tmp_path / "home", ws, state_dir, None) as nv:
        nv.start("a.txt")
        wait_client(nv, "a.txt")
        before = retry_until(
            lambda: nv.lua("return require('tether').status()"), timeout=20, what="first status"
        )
        nv.lua("vim.api.nvim_buf_set_lines(0, 2, 3, false, { 'GAMMA' })")
        nv.cmd("write")
        saved = retry_until(
            lambda: [e for e in events(nv, "TetherCheckpoint") if e["checkpoint"]["trigger"] == "save"],
            timeout=20,
            what="save checkpoint announced",
        )[0]["checkpoint"]
        assert saved["files"] == ["a.txt"]
        if before.get("lastCheckpoint"):
            assert saved["id"] > before["lastCheckpoint"]["id"]
        status = nv.wait(
            f"(function() local s = require('tether').status()"
            f" return s and s.lastCheckpoint and s.lastCheckpoint.id == {saved['id']} and s end)()",
            timeout=15,
            what="status with the save checkpoint",
        )
        assert nv.statusline() == f"Tether: {status['text']}"
        assert status["text"]


def test_restore_only_the_named_paths(tmp_path: Path, state_dir: Path) -> None:
    ws = make_workspace(tmp_path / "ws", {"a.txt": V1, "b.txt": "one\ntwo\n"})
    with editor(tmp_path / "home", ws, state_dir, None) as nv:
        nv.start("a.txt")
        wait_client(nv, "a.txt")
        first = checkpoint(nv, "both original")
        (ws / "a.txt").write_text("changed a\n")  # an agent writing from the shell
        (ws / "b.txt").write_text("changed b\n")
        nv.run(f"Tether restore {first} b.txt")
        confirm = pending_select(nv)
        assert confirm["prompt"] == f"Restore from checkpoint #{first}: 1 file?"
        preview = nv.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)")
        assert "+one" in preview and not any("alpha" in line for line in preview)
        nv.lua("T.choose(1)")
        retry_until(lambda: (ws / "b.txt").read_text() == "one\ntwo\n", timeout=20, what="b.txt restored")
        assert (ws / "a.txt").read_text() == "changed a\n"
