"""Resume latency as a Neovim user sees it (a measurement script, not a test).

    .venv/bin/python -m tests.e2e.nvim.bench_resume [--files 20] [--rounds 3]

Each round: Neovim A opens N files, leaves half of them with unsaved edits, starts the tmux
session, checkpoints, and is SIGKILLed. Neovim B starts in the workspace and runs `:Tether resume`.
Inside B, timed with vim.uv.hrtime(): from the command to the `User TetherResume` event (files
shown, unsaved text applied, terminal and next steps received), beside the median of a no-op
`tether.status` round trip measured in the same Neovim. Prints both and their ratio.

The test init disables Neovim's Python provider (vim.g.loaded_python3_provider = 0): with it
enabled, the first Python buffer costs ~3 s of pynvim probing in Neovim itself.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from tests.e2e.nvim.scenario import editor, make_workspace, wait_client
from tests.support.retry import retry_until
from tests.support.tmuxsrv import private_tmux_server

ROUND_TRIP = """
local c = vim.lsp.get_clients({ name = 'tether' })[1]
local times = {}
for _ = 1, 20 do
  local t0 = vim.uv.hrtime()
  local r = c:request_sync('workspace/executeCommand',
    { command = 'tether.status', arguments = { vim.empty_dict() } }, 5000, 0)
  assert(r and not r.err, 'status failed')
  times[#times + 1] = (vim.uv.hrtime() - t0) / 1e6
end
table.sort(times)
return times[math.floor(#times / 2) + 1]
"""


def one_round(base: Path, n_files: int) -> tuple[float, float]:
    files = {f"src/m{i:02d}.py": "".join(f"v_{i}_{j} = {j}\n" for j in range(200)) for i in range(n_files)}
    ws = make_workspace(base / "ws", files)
    state = base / "state"
    with private_tmux_server() as tmux:
        a = editor(base / "home-a", ws, state, tmux)
        try:
            a.start(*files)
            wait_client(a, next(iter(files)))
            for i, rel in enumerate(files):
                a.cmd(f"edit {rel}")
                if i % 2 == 0:
                    a.lua(f"vim.api.nvim_buf_set_lines(0, 10, 11, false, {{ 'unsaved {i}' }})")
                a.lua("vim.api.nvim_win_set_cursor(0, { 50, 0 })")
            a.run("Tether start")
            a.wait(
                "#vim.tbl_filter(function(b) return vim.bo[b].buftype == 'terminal' end,"
                " vim.api.nvim_list_bufs()) > 0"
            )
            a.run("Tether checkpoint bench")
            a.wait(
                "#vim.tbl_filter(function(e) return e.name == 'TetherCheckpoint' end, T.events) > 0",
                timeout=30,
            )
            a.kill()
        finally:
            a.close()
        b = editor(base / "home-b", ws, state, tmux)
        try:
            b.start()
            wait_client(b)
            retry_until(
                lambda: b.statusline() == "Tether: resume available", timeout=30, what="resume available"
            )
            rtt = float(b.lua(ROUND_TRIP, timeout=60))
            b.lua(
                "vim.api.nvim_create_autocmd('User', { pattern = 'TetherResume', once = true,"
                " callback = function() T.t1 = vim.uv.hrtime() end })"
                " T.t0 = vim.uv.hrtime(); require('tether').resume()"
            )
            ms = float(b.wait("T.t1 and (T.t1 - T.t0) / 1e6", timeout=60, what="resume"))
            restored = b.lua(
                "return #vim.tbl_filter(function(x) return vim.bo[x].modified end, vim.api.nvim_list_bufs())"
            )
            assert restored == (n_files + 1) // 2, (
                f"expected {(n_files + 1) // 2} restored buffers, got {restored}"
            )
        finally:
            b.close()
    return ms, rtt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    resumes: list[float] = []
    rtts: list[float] = []
    for r in range(args.rounds):
        base = Path(tempfile.mkdtemp(prefix=f"tether-nvim-bench-{r}-"))
        try:
            ms, rtt = one_round(base, args.files)
        finally:
            shutil.rmtree(base, ignore_errors=True)
        resumes.append(ms)
        rtts.append(rtt)
        print(f"round {r + 1}: resume {ms:.1f} ms, no-op round trip {rtt:.2f} ms")
    res, rtt = statistics.median(resumes), statistics.median(rtts)
    print(
        f"median over {args.rounds} rounds, {args.files} files ({(args.files + 1) // 2} unsaved): "
        f":Tether resume → TetherResume {res:.1f} ms; tether.status round trip {rtt:.2f} ms; "
        f"ratio {res / rtt:.1f}x"
    )


if __name__ == "__main__":
    main()
