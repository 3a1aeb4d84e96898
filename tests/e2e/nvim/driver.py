"""Drive a real headless Neovim 0.11 over its --listen socket, without pynvim.

Each call is `nvim --server SOCK --remote-expr "luaeval('T.eval(_A)', '<base64 lua>')"`, which
returns JSON produced by tests/e2e/nvim/init.lua. Every call has a timeout; every process is
started here and killed by PID (Neovim, its language server and terminal jobs).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.support.retry import retry_until

ROOT = Path(__file__).resolve().parents[3]
PLUGIN = ROOT / "neovim-client"
INIT = Path(__file__).resolve().parent / "init.lua"
VENV_BIN = Path(sys.executable).parent
NVIM = str(VENV_BIN / "nvim") if (VENV_BIN / "nvim").exists() else (shutil.which("nvim") or "nvim")
TETHER = str(VENV_BIN / "tether") if (VENV_BIN / "tether").exists() else (shutil.which("tether") or "tether")


class NvimError(AssertionError):
    pass


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (children first), read from /proc."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        kids: list[int] = []
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError), open(f"/proc/{p}/task/{task}/children") as fh:
                    kids.extend(int(x) for x in fh.read().split())
        out.extend(kids)
        todo.extend(kids)
    return out


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return []


class Nvim:
    """One headless Neovim process with the plugin loaded from the repo."""

    def __init__(
        self,
        home: Path,
        cwd: Path,
        opts: Any = None,
        mode: str = "setup",
        env: dict[str, str] | None = None,
        defaults: bool = False,
    ) -> None:
        self.home = home
        # True: Neovim's default options (swap files on, in stdpath('state')/swap), as a user has.
        self.defaults = defaults
        self.cwd = cwd
        self.opts = opts
        self.mode = mode
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        # Unix socket paths are limited to ~107 bytes: a short dir directly under /tmp.
        self._sockdir = Path(tempfile.mkdtemp(prefix="tn-", dir="/tmp"))
        self.sock = str(self._sockdir / "s")
        self.log = home / "nvim-stdio.log"
        self._known_children: set[int] = set()

    # lifecycle ----------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("CONFIG", "DATA", "STATE", "CACHE"):
            d = self.home / "xdg" / name.lower()
            d.mkdir(parents=True, exist_ok=True)
            env[f"XDG_{name}_HOME"] = str(d)
        env["HOME"] = str(self.home)
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        env["TETHER_NVIM_PLUGIN"] = str(PLUGIN)
        env["TETHER_TEST_MODE"] = self.mode
        env["TETHER_TEST_OPTS"] = json.dumps(self.opts) if self.opts is not None else ""
        env["TETHER_TEST_DEFAULTS"] = "1" if self.defaults else ""
        env.pop("NVIM", None)
        env.pop("NVIM_LISTEN_ADDRESS", None)
        env.update(self.extra_env)
        return env

    def start(self, *files: str) -> Nvim:
        self.home.mkdir(parents=True, exist_ok=True)
        no_swap = [] if self.defaults else ["-n"]
        argv = [NVIM, "--headless", *no_swap, "-i", "NONE", "-u", str(INIT), "--listen", self.sock, *files]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv, cwd=self.cwd, env=self.env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        retry_until(self._ready, timeout=15, what="Neovim to listen")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise NvimError(
                f"Neovim exited with {self.proc.returncode}: {self.log.read_text(errors='replace')}"
            )
        if not os.path.exists(self.sock):
            return False
        res = self._remote("1", timeout=5, check=False)
        return res.returncode == 0 and res.stdout.strip() == "1"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def remember_children(self) -> list[int]:
        """Note the PIDs below Neovim (server, terminal jobs) so they can be killed later."""
        kids = descendants(self.pid)
        self._known_children.update(kids)
        return kids

    def kill(self) -> None:
        """SIGKILL Neovim by PID: no clean exit, no LSP shutdown, nothing saved."""
        assert self.proc is not None
        self.remember_children()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
        for pid in sorted(self._known_children):
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self._sockdir, ignore_errors=True)

    def __enter__(self) -> Nvim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # RPC ----------------------------------------------------------------------------------
    def _remote(self, expr: str, timeout: float, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [NVIM, "--clean", "--headless", "--server", self.sock, "--remote-expr", expr],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            cwd=self.cwd,
            check=False,
        )
        if check and res.returncode != 0:
            raise NvimError(f"remote-expr failed ({res.returncode}): {res.stderr.strip()}")
        return res

    def lua(self, code: str, timeout: float = 10) -> Any:
        """Evaluate a Lua chunk in Neovim (use `return ...`) and return its value."""
        b64 = base64.b64encode(code.encode()).decode()
        res = self._remote(f"luaeval('T.eval(_A)', '{b64}')", timeout=timeout)
        try:
            reply = json.loads(res.stdout)
        except json.JSONDecodeError as exc:
            raise NvimError(f"bad reply {res.stdout!r} (stderr {res.stderr!r})") from exc
        if not reply.get("ok"):
            raise NvimError(f"Lua error: {reply.get('error')}\n--- code ---\n{code}")
        return reply.get("value")

    def cmd(self, ex: str) -> Any:
        """Run an Ex command inside the RPC request (errors raise here)."""
        return self.lua(f"vim.cmd({json.dumps(ex)})")

    def run(self, ex: str | None = None, lua: str | None = None, timeout: float = 10) -> None:
        """Run an Ex command (or Lua) from the main loop, as a user typing it would, and wait
        until it returned. Messages shown with error level inside an RPC request would turn
        into exceptions there; from the main loop they are just shown, as for a user."""
        code = f"vim.cmd({json.dumps(ex)})" if ex is not None else lua
        assert code
        seq = self.lua(
            "T.seq = (T.seq or 0) + 1; local n = T.seq; vim.schedule(function()"
            f" local ok, err = pcall(function() {code} end)"
            " if not ok then table.insert(T.notes, { msg = 'driver error: ' .. tostring(err) }) end"
            " T.done = math.max(T.done or 0, n) end); return n"
        )
        self.wait(f"(T.done or 0) >= {seq}", timeout=timeout, what=f"{ex or lua} to run")

    def wait(self, code: str, timeout: float = 15, what: str | None = None) -> Any:
        """Poll a Lua expression (bounded) until it is truthy; returns its value."""
        return retry_until(
            lambda: self.lua(f"return {code}"), timeout=timeout, interval=0.1, what=what or code
        )

    # conveniences -------------------------------------------------------------------------
    def notify_handler(self, method: str, payload: object, client_id: int = 0) -> None:
        """Feed the plugin's handler for a server notification, from the main loop."""
        arg = json.dumps(json.dumps(payload))
        self.run(
            lua=f"require('tether.handlers')[{json.dumps(method)}](nil, vim.json.decode({arg}),"
            f" {{ client_id = {client_id} }})"
        )

    def statusline(self) -> str:
        return str(self.lua("return T.statusline()"))

    def notes(self) -> list[str]:
        return [str(n["msg"]) for n in self.lua("return T.notes") or []]

    def messages(self) -> str:
        return str(self.lua("return vim.fn.execute('messages')"))

    def tether_client_ready(self) -> bool:
        return bool(
            self.lua(
                "local c = vim.lsp.get_clients({ name = 'tether' })[1]; return c ~= nil and c.initialized"
            )
        )

    def server_pids(self) -> list[int]:
        """PIDs below Neovim running `tether lsp`."""
        return [
            p
            for p in self.remember_children()
            if "lsp" in cmdline(p) and any("tether" in a for a in cmdline(p))
        ]
