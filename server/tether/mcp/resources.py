"""The MCP resources (the hand-off, one checkpoint, the step log) and the ``resume`` prompt.

Resources are what a client attaches to a conversation by itself (``@tether:…`` in Claude
Code); tools are what the model calls. Both read through the same services.
"""

from __future__ import annotations

import json
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR

from tether import protocol
from tether.agent.handoff import handoff_text
from tether.agent.model import parse_attachment
from tether.errors import NoCheckpointError, TetherError
from tether.mcp.backend import Backend, Workspace

HANDOFF_URI = "tether://handoff"
CHECKPOINT_URI = "tether://checkpoints/{n}"
STEPS_URI = "tether://steps"
RESUME_PROMPT = "resume"

# A baseline checkpoint lists every file of the workspace: the resource names this many.
CHECKPOINT_FILES = 1000
STEPS = 50

RESUME_TEXT = """\
Continue the work in this workspace from where it was left. Tether's hand-off follows: the task, \
the next steps, the files in progress and what changed since the last step, and which test runs \
still hold. Start with the first next step unless the hand-off shows something more urgent (a \
failing run, files changed since the last step). After each unit of work, record it with the \
`record_step` tool (what you did, the next steps).

"""


def _handoff(ws: Workspace) -> str:
    ws.session.import_file()
    text, _ = handoff_text(ws.store, ws.scan())
    return text


def _checkpoint(ws: Workspace, n: int) -> str:
    info = ws.store.get_checkpoint(n)
    wire = info.to_wire()
    wire["files"] = wire["files"][:CHECKPOINT_FILES]
    wire["fileCount"] = len(info.files)
    doc: dict[str, Any] = {"checkpoint": wire, "agent": None}
    found = ws.store.latest_attachment(protocol.ATTACH_AGENT, at=n)
    if found is not None:
        state, _ = parse_attachment(found[1], found[0])
        step = next((st for st in reversed(state.steps) if st.checkpoint == n), None)
        doc["agent"] = {
            "task": state.task,
            "nextSteps": state.next_steps,
            "filesInProgress": state.files_in_progress,
            "step": step.to_json() if step else None,
        }
    return json.dumps(doc, indent=2, ensure_ascii=False)


def _steps(ws: Workspace) -> str:
    ws.session.import_file()
    steps = ws.session.state().steps[-STEPS:]
    return json.dumps({"steps": [st.to_json() for st in steps]}, indent=2, ensure_ascii=False)


def register(server: MCPServer[Any], backend: Backend) -> None:
    @server.resource(
        HANDOFF_URI,
        name="handoff",
        title="Tether hand-off",
        description="Where the work in this workspace stands: task, next steps, files in progress, "
        "recent steps, run validity (what `tether resume --print` prints).",
        mime_type="text/markdown",
    )
    async def handoff() -> str:
        try:
            return await backend.run(_handoff)
        except TetherError as exc:
            raise ResourceError(exc.message) from None

    @server.resource(
        CHECKPOINT_URI,
        name="checkpoint",
        title="Tether checkpoint",
        description="One checkpoint: time, trigger, message, files changed, and the agent's task, "
        "next steps and step recorded with it (JSON).",
        mime_type="application/json",
    )
    async def checkpoint(n: str) -> str:
        if not (n.isascii() and n.isdigit()) or not 0 < int(n) < 2**31:
            raise ResourceNotFoundError(f"{n!r} is not a checkpoint number (1, 2, …)")
        try:
            return await backend.run(lambda ws: _checkpoint(ws, int(n)))
        except NoCheckpointError as exc:
            raise ResourceNotFoundError(exc.message) from None
        except TetherError as exc:
            raise ResourceError(exc.message) from None

    @server.resource(
        STEPS_URI,
        name="steps",
        title="Tether step log",
        description=f"The agent's steps, newest last (the last {STEPS}): time, message, checkpoint, "
        "files changed (JSON).",
        mime_type="application/json",
    )
    async def steps() -> str:
        try:
            return await backend.run(_steps)
        except TetherError as exc:
            raise ResourceError(exc.message) from None

    @server.prompt(
        name=RESUME_PROMPT,
        title="Resume with Tether",
        description="Continue the work from Tether's hand-off (task, next steps, what changed).",
    )
    async def resume() -> str:
        try:
            return RESUME_TEXT + await backend.run(_handoff)
        except TetherError as exc:
            raise MCPError(code=INTERNAL_ERROR, message=exc.message) from None
