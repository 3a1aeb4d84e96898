"""What Neovim shows, in a real headless Neovim 0.11 with its default options against the real
`tether lsp`: the restore preview is on screen when the question is asked, a restore over a
buffer with unsaved edits warns before (and leaves no W12 prompt after), `:Tether step` takes
quoted words like a shell, the next-steps float says each thing once, the status names the
checkpoint."""

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
            "local s = T.selects[1]; return s and { prompt = s.prompt, items = s.items, screen = s.screen }"
        ),
        timeout=20,
        what="vim.ui.select",
    )


def test_restore_preview_is_on_screen_when_asked(tmp_path: Path, state_dir: Path) -> None:
    ws = make_workspace(tmp_path / "ws", {"a.txt": V1})
    with editor(tmp_path / "home", ws, state_dir, None, defaults=True) as nv:
        nv.start("a.txt")
        wait_client(nv, "a.txt")
        first = checkpoint(nv, "first")
        (ws / "a.txt").write_text("alpha\nBETA\ngamma\n")
        nv.run(f"Tether restore {first}")
        confirm = pending_select(nv)
        screen = str(confirm["screen"])
        assert f"# Restore from checkpoint #{first}: 1 file" in screen, screen
        assert "-BETA" in screen and "+beta" in screen, screen
        nv.lua("T.choose(nil)")


def test_restore_over_unsaved_edits_warns_first_and_leaves_no_w12(tmp_path: Path, state_dir: Path) -> None:
    ws = make_workspace(tmp_path / "ws", {"a.txt": V1, "b.txt": "one\n"})
    with editor(tmp_path / "home", ws, state_dir, None, defaults=True) as nv:
        nv.start("a.txt")
        wait_client(nv, "a.txt")
        first = checkpoint(nv, "first")
        (ws / "a.txt").write_text("alpha\nAGENT\ngamma\n")  # changed on disk since
        (ws / "b.txt").write_text("two\n")
        nv.cmd("checktime")  # the buffer follows the disk (nothing unsaved yet)
        nv.lua("vim.api.nvim_buf_set_lines(0, 2, 3, false, { 'UNSAVED GAMMA' })")
        assert nv.lua("return vim.bo.modified") is True
        nv.run(f"Tether restore {first}")
        confirm = pending_select(nv)
        assert "a.txt has unsaved edits here" in str(confirm["prompt"]), confirm
        items = list(confirm["items"])  # type: ignore[call-overload]
        assert items[0] == "Restore 2 files, replacing the unsaved edits in a.txt"
        assert items[1] == "Restore only the other 1 file"
        assert items[-1] == "Cancel"
        assert (ws / "a.txt").read_text() == "alpha\nAGENT\ngamma\n"  # nothing written yet
        nv.lua("T.choose(1)")
        retry_until(lambda: (ws / "a.txt").read_text() == V1, timeout=20, what="a.txt restored")
        buf = retry_until(
            lambda: (
                (
                    b := nv.lua(
                        f"local b = vim.fn.bufnr({str(ws / 'a.txt')!r}) return {{ lines ="
                        " vim.api.nvim_buf_get_lines(b, 0, -1, false), modified = vim.bo[b].modified }"
                    )
                )
                and b["lines"] == ["alpha", "beta", "gamma"]
                and b
            ),
            timeout=20,
            what="buffer reloaded with the restored text",
        )
        assert buf["modified"] is False
        nv.cmd("checktime")
        assert "W12" not in nv.messages()
        # The unsaved edits were not thrown away: undo brings them back.
        nv.cmd("undo")
        assert nv.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)")[2] == "UNSAVED GAMMA"


def test_step_takes_quoted_words_and_the_float_says_each_thing_once(tmp_path: Path, state_dir: Path) -> None:
    ws = make_workspace(tmp_path / "ws", {"a.txt": V1})
    with editor(tmp_path / "home", ws, state_dir, None, defaults=True) as nv:
        nv.start("a.txt")
        wait_client(nv, "a.txt")
        nv.run("""Tether step wrote "the parser" --task "wire up mul" --next 'import mul' --next add test""")
        shown = retry_until(lambda: events(nv, "TetherNextSteps"), timeout=20, what="next steps")[-1]
        steps = shown["next_steps"]
        assert steps["task"] == "wire up mul"
        assert steps["nextSteps"] == ["import mul", "add test"]
        lines = retry_until(lambda: float_lines(nv), timeout=15, what="next steps float")
        text = "\n".join(lines)
        assert text.count("wire up mul") == 1, lines
        assert text.count("import mul") == 1, lines
        assert "1. import mul" in lines and "2. add test" in lines
        status = nv.wait(
            "(function() local s = require('tether').status() return s and s.nextStep and s end)()",
            timeout=15,
            what="status after the step",
        )
        assert status["text"].startswith(f"#{status['lastCheckpoint']['id']} · ")
        assert "Next step: import mul" in status["tooltip"]
