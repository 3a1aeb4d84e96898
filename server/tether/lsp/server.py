"""pygls adapter: ``create_server(config)`` builds a server whose handlers only translate LSP
params into :class:`~tether.lsp.engine.Engine` calls and results back. Nothing is built at
import time."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import uuid
from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInternalError, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method

from tether import __version__
from tether import protocol as P
from tether.errors import BadParamsError, ClientTimeoutError, OutsideWorkspaceError, TetherError
from tether.logs import get_logger
from tether.lsp.commands import COMMANDS, Command, execute
from tether.lsp.config import Config
from tether.lsp.engine import Engine
from tether.lsp.params import as_params
from tether.lsp.transport import CappedStdin, refused_response
from tether.text import escape

log = get_logger(__name__)

CONFIG_SECTION = "tether"
# Bounds on waiting for the client's answers. Startup never waits on them (they run beside the
# store and the baseline scan); resume waits at most this long per showDocument / applyEdit.
CONFIG_TIMEOUT = 3.0
PROGRESS_TIMEOUT = 5.0
CLIENT_REQUEST_TIMEOUT = 5.0
# When stdin ends without shutdown/exit: time left to checkpoint pending saves and write the
# journal (as on SIGTERM).
EOF_FLUSH_TIMEOUT = 5.0
WATCH_REGISTRATION_ID = "tether-watch-files"

T = TypeVar("T")


async def _bounded(aw: Awaitable[T], timeout: float, what: str) -> T:
    """``aw`` within ``timeout``; shielded, so a late answer lands on a live future."""
    try:
        return await asyncio.wait_for(asyncio.shield(aw), timeout)
    except TimeoutError:
        raise ClientTimeoutError(f"the editor did not answer {what} within {timeout:g} s", what) from None


class TetherProtocol(LanguageServerProtocol):
    def _execute_handler(self, msg_id: Any, handler: Any, callback: Any, *a: Any, **kw: Any) -> Any:
        # pygls 2.1 files the future of every async/generator/threaded *notification* handler
        # (didOpen, didChange, didSave...) in _request_futures under a fresh uuid and never
        # removes it (only request results are popped): ~2 KiB per keystroke, forever. Drop
        # each notification's entry once its handler is done (tests/e2e/test_load.py).
        result = super()._execute_handler(msg_id, handler, callback, *a, **kw)
        if callback == self._check_handler_result:
            future = self._request_futures.get(msg_id)
            if future is not None:

                def forget(_done: Any, key: Any = msg_id) -> None:
                    self._request_futures.pop(key, None)

                future.add_done_callback(forget)
        return result

    def _engine(self) -> Engine | None:
        return getattr(self._server, "engine", None)

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams) -> Any:
        # A buffer over maxFileBytes never enters pygls's workspace: pygls would re-split all of
        # it on every keystroke. The engine tracks it without its text.
        eng = self._engine()
        if eng is not None and eng.editing.too_large(params.text_document.text):
            td = params.text_document
            log.info("tracking %s without its text (larger than maxFileBytes)", td.uri)
            eng.editing.did_open(td.uri, td.version, None, td.language_id)
            return None
        return (yield from super().lsp_text_document__did_open(params))

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> Any:
        uri = params.text_document.uri
        if uri not in self.workspace.text_documents:
            eng = self._engine()
            if eng is not None and eng.editing.tracks_without_text(uri):
                full = [c for c in params.content_changes if getattr(c, "range", None) is None]
                if full and not eng.editing.too_large(full[-1].text):
                    # The whole text again, small enough now: back into pygls's workspace.
                    last = params.content_changes.index(full[-1])
                    self.workspace.put_text_document(
                        types.TextDocumentItem(
                            uri=uri, language_id="", version=params.text_document.version, text=full[-1].text
                        )
                    )
                    for change in params.content_changes[last + 1 :]:
                        self.workspace.update_text_document(params.text_document, change)
                else:
                    end = _edit_end(params.content_changes[-1]) if params.content_changes else None
                    eng.editing.did_change(uri, params.text_document.version, None, end)
                    return None
            else:
                # pygls raises KeyError on a change to a document it never saw opened; a
                # confused client must not get an error popup per keystroke.
                log.warning("didChange for a document that is not open: %s", uri)
                return None
        else:
            for change in params.content_changes:
                self.workspace.update_text_document(params.text_document, change)
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None
        return None


class TetherServer(LanguageServer):
    engine: Engine | None
    base_config: Config
    root_uri: str | None = None  # the client's URI of the folder this server tracks

    def report_server_error(self, error: Exception, source: Any) -> None:
        # Never pop up generic "Error in server" toasts; log instead.
        log.error("server error (%s): %s", getattr(source, "__name__", source), error)

    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """pygls's stdio loop over a size-capped stdin (transport.py); when stdin ends without
        ``exit`` (the editor quit or crashed), the journal is written before the loop closes."""
        from pygls.io_ import StdinAsyncReader, StdoutWriter, run_async

        stop = self._stop_event = threading.Event()
        loop: list[asyncio.AbstractEventLoop] = []

        def refused(length: int) -> None:  # pygls's reader thread
            if loop:
                loop[0].call_soon_threadsafe(self.protocol._send_data, refused_response(length))

        capped: Any = CappedStdin(stdin or sys.stdin.buffer, refused)
        reader = StdinAsyncReader(capped, self.thread_pool)
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))

        async def main() -> None:
            loop.append(asyncio.get_running_loop())
            await run_async(
                stop_event=stop,
                reader=reader,
                protocol=self.protocol,
                logger=log,
                error_handler=self.report_server_error,
            )
            if self.engine is not None:
                log.info("end of input: writing the journal")
                try:
                    await asyncio.wait_for(self.engine.shutdown(), EOF_FLUSH_TIMEOUT)
                    await asyncio.wait_for(self.engine.close(), EOF_FLUSH_TIMEOUT)
                except Exception as exc:
                    log.warning("flush at the end of input failed: %s", exc)

        try:
            asyncio.run(main())
        except BrokenPipeError:
            log.error("connection to the client lost; shutting down")
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.shutdown()  # type: ignore[no-untyped-call]


class _Client:
    """ClientPort over a pygls server."""

    def __init__(self, ls: TetherServer) -> None:
        self.ls = ls
        caps = ls.client_capabilities
        window = caps.window
        self.supports_show_document = bool(window and window.show_document and window.show_document.support)
        self.supports_progress = bool(window and window.work_done_progress)

    def notify(self, method: str, params: Mapping[str, Any]) -> None:
        try:
            self.ls.protocol.notify(method, dict(params))
        except OSError as exc:  # the editor closed the pipe; what is being done still finishes
            log.debug("%s not sent: %s", method, exc)

    def show_message(self, level: str, text: str) -> None:
        kind = {
            "error": types.MessageType.Error,
            "warning": types.MessageType.Warning,
            "info": types.MessageType.Info,
        }.get(level, types.MessageType.Log)
        # Messages name workspace files and quote workspace text: never raw control characters.
        params = types.ShowMessageParams(type=kind, message=escape(text, multiline=True))
        try:
            self.ls.window_show_message(params)
        except OSError as exc:
            log.debug("message not shown: %s", exc)

    async def show_document(self, uri: str, line: int, character: int, focus: bool) -> bool:
        pos = types.Position(line=line, character=character)
        res = await _bounded(
            self.ls.window_show_document_async(
                types.ShowDocumentParams(uri=uri, take_focus=focus, selection=types.Range(start=pos, end=pos))
            ),
            CLIENT_REQUEST_TIMEOUT,
            types.WINDOW_SHOW_DOCUMENT,
        )
        return bool(res and res.success)

    async def apply_edit(
        self, label: str, uri: str, end: tuple[int, int], text: str
    ) -> tuple[bool, str | None]:
        edit = types.TextEdit(
            range=types.Range(
                start=types.Position(line=0, character=0),
                end=types.Position(line=end[0], character=end[1]),
            ),
            new_text=text,
        )
        res = await _bounded(
            self.ls.workspace_apply_edit_async(
                types.ApplyWorkspaceEditParams(edit=types.WorkspaceEdit(changes={uri: [edit]}), label=label)
            ),
            CLIENT_REQUEST_TIMEOUT,
            types.WORKSPACE_APPLY_EDIT,
        )
        return bool(res and res.applied), getattr(res, "failure_reason", None)

    async def progress_begin(self, title: str, message: str | None = None) -> object | None:
        token = f"tether-{uuid.uuid4().hex[:12]}"
        try:
            await _bounded(self.ls.work_done_progress.create_async(token), PROGRESS_TIMEOUT, "progress")
        except Exception as exc:
            log.info("client refused progress: %s", exc)
            return None
        self.ls.work_done_progress.begin(
            token, types.WorkDoneProgressBegin(title=title, message=message, cancellable=False)
        )
        return token

    def progress_end(self, token: object | None, message: str | None = None) -> None:
        if isinstance(token, str):
            self.ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))


def _rpc_error(exc: TetherError) -> JsonRpcException:
    data = {"reason": exc.reason}
    if isinstance(exc, BadParamsError | OutsideWorkspaceError):
        return JsonRpcInvalidParams(message=exc.message, data=data)
    return JsonRpcInternalError(message=exc.message, data=data)


def _edit_end(change: Any) -> tuple[int, int] | None:
    """Where the cursor is after an incremental edit: the end of the inserted text."""
    rng = getattr(change, "range", None)
    if rng is None:
        return None
    text: str = change.text
    line = rng.start.line + text.count("\n")
    char = len(text) - text.rfind("\n") - 1 if "\n" in text else rng.start.character + len(text)
    return line, char


def _on_sigterm_flush(eng: Engine) -> None:
    """Editors stop servers with SIGTERM when `exit` does not come quickly: the last second of
    typing goes to the journal before the process ends (bounded: 3 s)."""
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers belong to the main thread (not when embedded in tests)
    loop = asyncio.get_running_loop()

    async def terminate() -> None:
        try:
            await asyncio.wait_for(eng.shutdown(), 3)
            await asyncio.wait_for(eng.close(), 3)
        except Exception as exc:
            log.warning("flush on SIGTERM failed: %s", exc)
        finally:
            log.info("terminated by SIGTERM")
            logging.shutdown()
            os._exit(0)

    try:
        loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(terminate()))
    except (NotImplementedError, RuntimeError, ValueError) as exc:
        log.info("no SIGTERM handler: %s", exc)


async def _fetch_configuration(ls: TetherServer, eng: Engine) -> None:
    """The ``tether`` section of workspace/configuration for this server's folder (``scopeUri``:
    in a multi-root window each folder has its own server, and per-folder settings apply),
    applied when (if) it comes. A ``null`` answer, ``[null]`` or an error means: no settings
    there."""
    item = types.ConfigurationItem(section=CONFIG_SECTION, scope_uri=ls.root_uri)
    try:
        res = await _bounded(
            ls.workspace_configuration_async(types.ConfigurationParams(items=[item])),
            CONFIG_TIMEOUT,
            types.WORKSPACE_CONFIGURATION,
        )
    except Exception as exc:
        log.info("workspace/configuration unavailable: %s", exc)
        return
    section = res[0] if isinstance(res, list | tuple) and res else None
    if section is not None:
        await eng.apply_config(section, "settings tether")


def _watcher(ls: TetherServer, relative: bool) -> types.FileSystemWatcher:
    """Every file under this server's folder: a RelativePattern on it when the client supports
    them (in a multi-root window, the other folders' events go to their own servers), else a
    glob (events outside the folder are dropped by the handler)."""
    if relative and ls.root_uri:
        return types.FileSystemWatcher(
            glob_pattern=types.RelativePattern(base_uri=ls.root_uri, pattern="**/*")
        )
    return types.FileSystemWatcher(glob_pattern="**/*")


async def _register_file_watching(ls: TetherServer, relative: bool) -> None:
    try:
        await _bounded(
            ls.client_register_capability_async(
                types.RegistrationParams(
                    registrations=[
                        types.Registration(
                            id=WATCH_REGISTRATION_ID,
                            method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                            register_options=types.DidChangeWatchedFilesRegistrationOptions(
                                watchers=[_watcher(ls, relative)]
                            ),
                        )
                    ]
                )
            ),
            CONFIG_TIMEOUT,
            types.CLIENT_REGISTER_CAPABILITY,
        )
    except Exception as exc:
        log.info("client did not register file watching: %s", exc)


def create_server(config: Config | None = None) -> TetherServer:
    """A new server. ``config`` is the base (CLI flags); the client's options are merged over it."""
    server = TetherServer(
        P.SERVER_NAME,
        __version__,
        text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
        protocol_cls=TetherProtocol,
    )
    server.engine = None
    server.base_config = config or Config()
    pending_warnings: list[str] = []

    def engine(ls: TetherServer) -> Engine:
        if ls.engine is None:
            raise JsonRpcInternalError(message="the Tether server is not initialized")
        return ls.engine

    @server.feature(types.INITIALIZE)
    def on_initialize(ls: TetherServer, params: types.InitializeParams) -> None:
        cfg, warnings = ls.base_config.merged(params.initialization_options)
        pending_warnings.extend(warnings)
        folders = [f.uri for f in (params.workspace_folders or [])]
        root = root_from(params.root_uri, params.root_path, folders)
        ls.root_uri = root_uri_of(root, [*folders, params.root_uri])
        ls.engine = Engine(root, cfg, _Client(ls))
        log.info("workspace %s, client %s", root, params.client_info.name if params.client_info else "?")

    @server.feature(types.INITIALIZED)
    async def on_initialized(ls: TetherServer, params: types.InitializedParams) -> None:
        eng = engine(ls)
        eng.client = _Client(ls)
        _on_sigterm_flush(eng)
        for w in pending_warnings:
            eng.client.show_message("warning", w)
        pending_warnings.clear()
        ws = ls.client_capabilities.workspace
        # The client's answers (workspace/configuration, registerCapability, later progress) are
        # awaited beside the store and the baseline scan, never before them: a client that
        # answers late, wrongly or never costs nothing at startup.
        if ws is not None and ws.configuration:
            eng.spawn(_fetch_configuration(ls, eng))
        watched = ws.did_change_watched_files if ws is not None else None
        if watched is not None and watched.dynamic_registration:
            eng.spawn(_register_file_watching(ls, bool(watched.relative_pattern_support)))
        await eng.start()

    @server.feature(types.SHUTDOWN)
    async def on_shutdown(ls: TetherServer, params: None) -> None:
        if ls.engine is not None:
            await ls.engine.shutdown()
            await ls.engine.close()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: TetherServer, params: types.DidOpenTextDocumentParams) -> None:
        td = params.text_document
        engine(ls).editing.did_open(td.uri, td.version, td.text, td.language_id)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: TetherServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        doc = ls.workspace.text_documents.get(uri)
        if doc is None:
            return
        eng = engine(ls)
        end = _edit_end(params.content_changes[-1]) if params.content_changes else None
        text: str | None = doc.source
        if text is not None and eng.editing.too_large(text):
            # Grew past maxFileBytes: from now on tracked without its text (see did_open).
            ls.workspace.remove_text_document(uri)
            text = None
        eng.editing.did_change(uri, params.text_document.version, text, end)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))
    def did_save(ls: TetherServer, params: types.DidSaveTextDocumentParams) -> None:
        engine(ls).editing.did_save(params.text_document.uri, params.text)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: TetherServer, params: types.DidCloseTextDocumentParams) -> None:
        engine(ls).editing.did_close(params.text_document.uri)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched(ls: TetherServer, params: types.DidChangeWatchedFilesParams) -> None:
        eng = engine(ls)
        rels = []
        for ev in params.changes:
            rel = eng.docs.rel_path(ev.uri)
            if rel is not None:
                rels.append(rel)
        if rels:
            eng.saves.changed(rels, False)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: TetherServer, params: types.DidChangeConfigurationParams) -> None:
        eng = engine(ls)
        settings: Any = params.settings
        section = None
        if isinstance(settings, Mapping):
            section = settings.get(CONFIG_SECTION)
        elif hasattr(settings, "_asdict"):
            section = settings._asdict().get(CONFIG_SECTION)
        if section is None:
            # "Settings changed" without them (vscode-languageclient's pull model): asked
            # again, for this folder.
            ws = ls.client_capabilities.workspace
            if ws is not None and ws.configuration:
                await _fetch_configuration(ls, eng)
            return
        await eng.apply_config(section, "settings tether")

    @server.feature(P.CLIENT_NOTIFY_CURSOR)
    def on_cursor(ls: TetherServer, params: Any) -> None:
        eng = engine(ls)
        get = params._asdict() if hasattr(params, "_asdict") else params
        if not isinstance(get, Mapping):
            log.warning("%s: params must be an object", P.CLIENT_NOTIFY_CURSOR)
            return
        uri, line, char = get.get("uri"), get.get("line"), get.get("character")
        if (
            not isinstance(uri, str)
            or not isinstance(line, int)
            or not isinstance(char, int)
            or isinstance(line, bool)
            or isinstance(char, bool)
            or line < 0
            or char < 0
        ):
            log.warning("%s: bad params %r", P.CLIENT_NOTIFY_CURSOR, get)
            return
        visible = None
        rng: Any = get.get("visibleRange")
        if hasattr(rng, "_asdict"):
            rng = rng._asdict()
        if isinstance(rng, Mapping):
            first, last = rng.get("start"), rng.get("end")
            if isinstance(first, int) and isinstance(last, int) and 0 <= first <= last:
                visible = (first, last)
        eng.editing.set_cursor(uri, line, char, visible)

    def register(command: Command) -> None:
        async def handler(ls: TetherServer, *args: Any) -> Any:
            try:
                return await execute(engine(ls), command, as_params(command.name, args))
            except TetherError as exc:
                log.info("%s failed: %s", command.name, exc.message)
                raise _rpc_error(exc) from None

        handler.__name__ = command.name.replace(".", "_")
        server.command(command.name)(handler)

    for command in COMMANDS:
        register(command)
    return server


def root_uri_of(root: Path, uris: Sequence[str | None]) -> str:
    """The client's own URI for ``root`` (a folder it named, spelled as it spells it: scopes and
    base URIs are matched as strings), else ``root``'s file URI."""
    from tether.editor.documents import uri_to_path

    for uri in uris:
        path = uri_to_path(uri) if uri else None
        if uri and path and os.path.isdir(path) and Path(path).resolve() == root:
            return uri
    return root.as_uri()


def root_from(root_uri: str | None, root_path: str | None, folders: Sequence[str]) -> Path:
    """The workspace root from initialize params (first folder, root URI, root path, else cwd)."""
    from tether.editor.documents import uri_to_path

    for uri in [*folders, root_uri]:
        if uri:
            path = uri_to_path(uri)
            if path and os.path.isdir(path):
                return Path(path).resolve()
    if root_path and os.path.isdir(root_path):
        return Path(root_path).resolve()
    return Path.cwd().resolve()
