"""Drive a real `tether lsp` process over stdio with pytest-lsp's client.

Sessions are started by hand (not through the pytest-lsp fixture) because the disconnect
story needs two servers one after the other and a SIGKILL in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities
from pytest_lsp.client import make_test_lsp_client

from tests.support.retry import aretry_until
from tether import protocol as P

CLIENTS = ["neovim@v0.11", "visual-studio-code"]


def plain(value: Any) -> Any:
    """pygls hands unknown payloads over as namedtuples: turn them back into dicts/lists."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


@dataclass
class Session:
    client: LanguageClient
    root: Path
    pid: int
    statuses: list[dict[str, Any]] = field(default_factory=list)
    terminals: list[dict[str, Any]] = field(default_factory=list)
    next_steps: list[dict[str, Any]] = field(default_factory=list)
    restoring: list[dict[str, Any]] = field(default_factory=list)
    edits: list[types.ApplyWorkspaceEditParams] = field(default_factory=list)
    # What arrived, in order: "restoring" (tether/restoringBuffers) and "edit" (applyEdit).
    arrivals: list[str] = field(default_factory=list)
    registrations: list[types.Registration] = field(default_factory=list)
    apply_result: bool = True

    def uri(self, rel: str) -> str:
        return (self.root / rel).as_uri()

    async def command(self, name: str, params: Any = None, *, raw_args: list[Any] | None = None) -> Any:
        args = raw_args if raw_args is not None else ([] if params is None else [params])
        res = await asyncio.wait_for(
            self.client.workspace_execute_command_async(
                types.ExecuteCommandParams(command=name, arguments=args)
            ),
            30,
        )
        return plain(res)

    def open(self, rel: str, text: str, version: int = 1, uri: str | None = None) -> str:
        uri = uri or self.uri(rel)
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=version, text=text
                )
            )
        )
        return uri

    def edit(
        self, uri: str, version: int, line: int, char: int, end_line: int, end_char: int, text: str
    ) -> None:
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(
                            start=types.Position(line=line, character=char),
                            end=types.Position(line=end_line, character=end_char),
                        ),
                        text=text,
                    )
                ],
            )
        )

    def save(self, uri: str) -> None:
        self.client.text_document_did_save(
            types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )

    def send_raw(self, message: dict[str, Any]) -> None:
        """Bytes straight onto the server's stdin: malformed messages the client would refuse."""
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        writer = self.client.protocol.writer
        assert writer is not None
        writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def cursor(self, uri: str, line: int, character: int) -> None:
        self.client.protocol.notify(
            P.CLIENT_NOTIFY_CURSOR, {"uri": uri, "line": line, "character": character}
        )

    async def wait_status(
        self, pred: Any, what: str = "status", timeout: float = 15, since: int = 0
    ) -> dict[str, Any]:
        """The newest status matching ``pred`` among those received after the first ``since``."""

        def check() -> dict[str, Any] | None:
            for s in reversed(self.statuses[since:]):
                if pred(s):
                    return s
            return None

        result: dict[str, Any] = await aretry_until(check, timeout=timeout, what=what)
        return result

    async def timeline(self) -> list[dict[str, Any]]:
        res = await self.command(P.CMD_TIMELINE, {})
        return list(res["checkpoints"])

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.shutdown_session(), 15)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.stop(), 10)

    async def kill(self) -> None:
        """Crash: the server is SIGKILLed and the client goes away without shutdown."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        server = self.client._server
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait(), 10)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.stop(), 10)


async def start_session(
    root: Path,
    state_dir: Path,
    caps: str | types.ClientCapabilities = "visual-studio-code",
    *,
    init_options: Any = None,
    tmux_socket: str | None = None,
    configuration: dict[str, Any] | None = None,
    extra_env: dict[str, str] | None = None,
    scoped_configuration: dict[str, Any] | None = None,
) -> Session:
    client = make_test_lsp_client()
    env = dict(os.environ)
    env["TETHER_STATE_DIR"] = str(state_dir)
    env["TETHER_TMUX_SOCKET"] = tmux_socket or str(state_dir / "no-tmux-here")
    env.pop("TMUX", None)
    env.update(extra_env or {})
    if configuration is not None:
        client.set_configuration(configuration)
    for scope, item in (scoped_configuration or {}).items():  # per folder: {scope URI: settings}
        client.set_configuration(item, scope_uri=scope)
    await client.start_io(sys.executable, "-m", "tether", "lsp", env=env)
    assert client._server is not None
    session = Session(client, root, client._server.pid)

    @client.feature(P.NOTIFY_STATUS)
    def _status(params: Any) -> None:
        session.statuses.append(plain(params))

    @client.feature(P.NOTIFY_OPEN_TERMINAL)
    def _terminal(params: Any) -> None:
        session.terminals.append(plain(params))

    @client.feature(P.NOTIFY_SHOW_NEXT_STEPS)
    def _steps(params: Any) -> None:
        session.next_steps.append(plain(params))

    @client.feature(P.NOTIFY_RESTORING_BUFFERS)
    def _restoring(params: Any) -> None:
        session.restoring.append(plain(params))
        session.arrivals.append("restoring")

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def _apply(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        session.edits.append(params)
        session.arrivals.append("edit")
        if session.apply_result:
            return types.ApplyWorkspaceEditResult(applied=True)
        return types.ApplyWorkspaceEditResult(applied=False, failure_reason="test refused")

    @client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def _register(params: types.RegistrationParams) -> None:
        session.registrations.extend(params.registrations)

    capabilities = client_capabilities(caps) if isinstance(caps, str) else caps
    await asyncio.wait_for(
        client.initialize_session(
            types.InitializeParams(
                capabilities=capabilities,
                root_uri=root.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
                initialization_options=init_options,
                client_info=types.ClientInfo(name="pytest-lsp"),
            )
        ),
        30,
    )
    return session
