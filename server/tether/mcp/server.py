"""``create_server(config)``: the MCP server's wiring (tools, resources, prompt, background work)
on the official SDK's :class:`MCPServer`. Nothing is built at import time.

What this layer adds to the SDK:

- the workspace is settled before the first request is served (``--workspace``, else the
  client's roots, else the cwd's), so tools, resources and the prompt all see the same one;
- argument errors are answered as tool errors naming each argument at fault, in one line;
- background tasks (``McpConfig.background``) start with the server and stop with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.stdio import stdio_server
from mcp_types import CallToolResult, GetPromptResult, InputRequiredResult
from pydantic import ValidationError
from pydantic.networks import AnyUrl

from tether import __version__
from tether.mcp import resources, tools
from tether.mcp.backend import Backend
from tether.mcp.stdio import pipes
from tether.record import dataclass, field

log = logging.getLogger(__name__)

BackgroundTask = Callable[[Backend], Awaitable[None]]

INSTRUCTIONS = """\
Tether keeps this workspace's task, next steps, step log and file checkpoints across sessions, \
disconnects and machines. At the start of a session call `handoff` and continue from its next \
steps. After each unit of work call `record_step` (what you did, the next steps): it checkpoints \
every file changed on disk. Before re-running a slow test suite, `run_status` says whether the \
last run still holds. `timeline`, `diff`, `file_at` and `restore` (a dry run unless confirm is \
true) go back to earlier checkpoints.\
"""


@dataclass
class McpConfig:
    workspace: Path | None = None  # None: the client's roots, else the cwd's workspace
    state_dir: str | None = None
    # Long-running companions started with the server and cancelled when it stops. Each is
    # given the backend: ``await backend.wait_root()`` for the workspace, ``backend.run(fn)``
    # for store work. A failing task is logged; the server goes on.
    background: Sequence[BackgroundTask] = field(default_factory=tuple)


class TetherMCP(MCPServer[None]):
    def __init__(self, backend: Backend, tool_list: Iterable[Any], **kwargs: Any) -> None:
        tool_list = list(tool_list)
        super().__init__(tools=tool_list, **kwargs)
        self.backend = backend
        self._arguments = {t.name: list(t.parameters.get("properties", {})) for t in tool_list}

    async def run_stdio_async(self) -> None:
        """The SDK's stdio serving, on asyncio pipes when the streams are pipes (mcp/stdio.py)."""
        async with pipes() as streams:
            if streams is None:
                await super().run_stdio_async()
                return
            # Typed as anyio's AsyncFile; the SDK only iterates the one and writes and flushes the
            # other (mcp/server/stdio.py).
            async with stdio_server(*streams) as (read, write):  # type: ignore[arg-type]
                # The SDK's own run_stdio_async, given the streams (it takes none).
                lowlevel = self._lowlevel_server
                await lowlevel.run(read, write, lowlevel.create_initialization_options())

    async def _settle(self, context: Context[None, Any] | None) -> None:
        if self.backend.root is None:
            await self.backend.ensure_root(_roots_lister(context))

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[None, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        await self._settle(context)
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                raise ToolError(argument_errors(name, cause, self._arguments.get(name, []))) from cause
            if isinstance(cause, ToolError):  # raised by the tool: drop the SDK's "Error executing…"
                raise ToolError(f"{name}: {cause}") from cause
            raise

    async def read_resource(self, uri: AnyUrl | str, context: Context[None, Any] | None = None) -> Any:
        await self._settle(context)
        return await super().read_resource(uri, context)

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[None, Any] | None = None
    ) -> GetPromptResult | InputRequiredResult:
        await self._settle(context)
        return await super().get_prompt(name, arguments, context)


def _roots_lister(context: Context[None, Any] | None) -> Callable[[], Awaitable[list[str]]] | None:
    """Asks the client for its roots, when it said it has some (a programmatic call has none)."""
    if context is None:
        return None
    try:
        caps = context.client_capabilities
        session = context.session
    except Exception:  # no request behind this context
        return None
    if caps is None or caps.roots is None:
        return None

    async def list_roots() -> list[str]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # roots are deprecated in the newest protocol revision
            result = await session.list_roots()
        return [str(r.uri) for r in result.roots]

    return list_roots


def _where(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if len(part) <= 60 else part[:57] + "…"
            out += f".{text}" if out else text
    return out or "arguments"


def argument_errors(tool: str, exc: ValidationError, accepted: Sequence[str]) -> str:
    """``record_step: invalid arguments: done: required; confrm: unknown argument (…)``."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        kind = err["type"]
        if kind == "extra_forbidden":
            known = ", ".join(accepted) if accepted else "none"
            problem = f"unknown argument (accepted: {known})"
        elif kind == "missing":
            problem = "required"
        else:
            problem = err["msg"]
        parts.append(f"{_where(err['loc'])}: {problem}")
    more = f"; and {len(parts) - 8} more" if len(parts) > 8 else ""
    return f"{tool}: invalid arguments: " + "; ".join(parts[:8]) + more


async def _guarded(task: BackgroundTask, backend: Backend) -> None:
    try:
        await task(backend)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("background task %s failed", getattr(task, "__name__", task))


def create_server(config: McpConfig) -> TetherMCP:
    backend = Backend(config.workspace, config.state_dir)

    @contextlib.asynccontextmanager
    async def lifespan(_app: MCPServer[None]) -> AsyncIterator[None]:
        running = [asyncio.ensure_future(_guarded(t, backend)) for t in config.background]
        try:
            yield None
        finally:
            for t in running:
                t.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            await backend.close()

    server = TetherMCP(
        backend,
        tools.build_tools(backend),
        name="tether",
        title="Tether",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
    )
    resources.register(server, backend)
    return server


def run_stdio(config: McpConfig) -> None:
    """Serve on stdin/stdout until the client closes stdin. While serving, fd 1 points at
    stderr, so nothing but protocol messages reaches stdout."""
    create_server(config).run("stdio")
