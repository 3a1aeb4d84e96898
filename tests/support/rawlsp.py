"""A minimal blocking JSON-RPC client for `tether lsp` over stdio, for load and fuzz tests.

pytest-lsp drives one server per event loop; the load test runs eight servers at once from
plain threads and the fuzz test sends payloads no typed client would produce (raw JSON), so
they speak the wire protocol directly. A reader thread drains the server's stdout at all times
(a server blocked on a full pipe would stall the test, not the product), answers the server's
own requests, and keeps every notification.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TIMEOUT = 30.0


class RawLsp:
    def __init__(
        self,
        root: Path,
        state_dir: Path,
        extra_env: dict[str, str] | None = None,
        argv: list[str] | None = None,
    ) -> None:
        env = dict(os.environ)
        env["TETHER_STATE_DIR"] = str(state_dir)
        env["TETHER_TMUX_SOCKET"] = str(state_dir / "no-tmux-here")
        env.pop("TMUX", None)
        env.update(extra_env or {})
        self.root = root
        self._stderr = (state_dir.parent / f"lsp-{id(self)}.stderr").open("wb")
        self.proc = subprocess.Popen(
            argv or [sys.executable, "-m", "tether", "lsp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd=root,
        )
        self.pid = self.proc.pid
        self._next = 0
        self._write_lock = threading.Lock()
        self._cond = threading.Condition()
        self._responses: dict[int | None, dict[str, Any]] = {}
        self.notifications: list[tuple[str, Any]] = []
        # The server's own requests, and how to answer them: method -> "never" (no answer),
        # "null" (result null), "error" (an error response), or a result value.
        self.server_requests: list[tuple[str, Any]] = []
        self.answers: dict[str, Any] = {}
        self.closed = False
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    # --- wire -----------------------------------------------------------------------------

    def _send(self, msg: dict[str, Any]) -> None:
        body = json.dumps(msg).encode()
        assert self.proc.stdin is not None
        with self._write_lock:
            self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            self.proc.stdin.flush()

    def _messages(self) -> Iterator[dict[str, Any]]:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                line = line.strip()
                if not line:
                    break
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            if length is None:
                continue
            yield json.loads(out.read(length))

    def _read_loop(self) -> None:
        try:
            for msg in self._messages():
                if "method" in msg and "id" in msg:
                    self._answer(msg)
                elif "method" in msg:
                    with self._cond:
                        self.notifications.append((msg["method"], msg.get("params")))
                        self._cond.notify_all()
                elif "id" in msg:
                    with self._cond:
                        self._responses[msg["id"]] = msg
                        self._cond.notify_all()
        except (ValueError, OSError):
            pass
        finally:
            with self._cond:
                self.closed = True
                self._cond.notify_all()

    def _answer(self, msg: dict[str, Any]) -> None:
        with self._cond:
            self.server_requests.append((msg["method"], msg.get("params")))
            self._cond.notify_all()
        policy = self.answers.get(msg["method"], "default")
        if policy == "never":
            return
        if policy == "error":
            with contextlib.suppress(OSError, ValueError):
                self._send({"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32601, "message": "no"}})
            return
        if policy != "default":
            answer = None if policy == "null" else policy
            with contextlib.suppress(OSError, ValueError):
                self._send({"jsonrpc": "2.0", "id": msg["id"], "result": answer})
            return
        result: Any = None
        if msg["method"] == "workspace/configuration":
            result = [None for _ in (msg.get("params") or {}).get("items", [])]
        elif msg["method"] == "workspace/applyEdit":
            result = {"applied": True}
        elif msg["method"] == "window/showDocument":
            result = {"success": True}
        with contextlib.suppress(OSError, ValueError):
            self._send({"jsonrpc": "2.0", "id": msg["id"], "result": result})

    # --- API ------------------------------------------------------------------------------

    def notify(self, method: str, params: Any) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: Any, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The whole response message: ``{"result": ...}`` or ``{"error": {...}}``."""
        with self._cond:
            self._next += 1
            rid = self._next
        self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        with self._cond:
            ok = self._cond.wait_for(lambda: rid in self._responses or self.closed, timeout)
            if rid in self._responses:
                return self._responses.pop(rid)
        raise AssertionError(f"no answer to {method} within {timeout}s (server closed: {self.closed}, {ok})")

    def command(self, name: str, params: Any = None, raw_args: list[Any] | None = None) -> dict[str, Any]:
        args = raw_args if raw_args is not None else ([] if params is None else [params])
        return self.request("workspace/executeCommand", {"command": name, "arguments": args})

    def initialize(
        self, capabilities: dict[str, Any] | None = None, options: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        res = self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": self.root.as_uri(),
                "workspaceFolders": [{"uri": self.root.as_uri(), "name": self.root.name}],
                "capabilities": capabilities or {"workspace": {"configuration": True, "applyEdit": True}},
                "initializationOptions": options,
                "clientInfo": {"name": "rawlsp"},
            },
        )
        assert "result" in res, res
        self.notify("initialized", {})
        return res

    def open(self, rel: str, text: str, version: int = 1) -> str:
        uri = (self.root / rel).as_uri()
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": version, "text": text}},
        )
        return uri

    def change(self, uri: str, version: int, text: str) -> None:
        self.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]},
        )

    def insert(self, uri: str, version: int, line: int, text: str) -> None:
        pos = {"line": line, "character": 0}
        self.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"range": {"start": pos, "end": pos}, "text": text}],
            },
        )

    def save(self, uri: str) -> None:
        self.notify("textDocument/didSave", {"textDocument": {"uri": uri}})

    def write_raw(self, data: bytes) -> None:
        """Bytes straight onto the server's stdin (malformed framing)."""
        assert self.proc.stdin is not None
        with self._write_lock:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def close_stdin(self) -> None:
        """The editor goes away without shutdown/exit."""
        assert self.proc.stdin is not None
        with self._write_lock:
            self.proc.stdin.close()

    def wait_response(self, rid: int | None, timeout: float = TIMEOUT) -> dict[str, Any]:
        with self._cond:
            self._cond.wait_for(lambda: rid in self._responses or self.closed, timeout)
            if rid in self._responses:
                return self._responses.pop(rid)
        raise AssertionError(f"no response with id {rid!r} within {timeout}s")

    def send_request(self, method: str, params: Any) -> int:
        """Send a request without waiting; :meth:`wait_response` collects the answer."""
        with self._cond:
            self._next += 1
            rid = self._next
        self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        return rid

    def wait_notification(self, method: str, pred: Any = None, timeout: float = TIMEOUT) -> Any:
        def found() -> Any:
            for m, p in reversed(self.notifications):
                if m == method and (pred is None or pred(p)):
                    return p
            return None

        with self._cond:
            self._cond.wait_for(lambda: found() is not None or self.closed, timeout)
            got = found()
        if got is None:
            raise AssertionError(f"no {method} notification within {timeout}s")
        return got

    def messages_of(self, method: str) -> list[Any]:
        with self._cond:
            return [p for m, p in self.notifications if m == method]

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """Graceful shutdown, then SIGKILL by pid if the server does not leave."""
        if self.alive():
            with contextlib.suppress(Exception):
                self.request("shutdown", None, timeout=15)
                self.notify("exit", None)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._finish()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._finish()

    def _finish(self) -> None:
        for f in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                f.close()  # type: ignore[union-attr]
        self._reader.join(timeout=5)
        self._stderr.close()

    def stderr_text(self) -> str:
        return Path(self._stderr.name).read_text(errors="replace")
