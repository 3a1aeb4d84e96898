"""The MCP tools: thin adapters from validated arguments to Tether's services, each answering a
typed result (``structuredContent``, schema from :mod:`tether.mcp.schemas`) and a concise text
form for the model to read.

Every tool runs its work in the backend's worker thread. A Tether error (no such checkpoint, a
path outside the workspace, a store that cannot be written) comes back as a tool error naming
the argument at fault; nothing a client sends stops the server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, cast

from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import ConfigDict, Field

from tether.agent import provenance
from tether.agent.handoff import handoff_text
from tether.agent.model import clean_text, safe_text
from tether.agent.runs import run_summaries
from tether.agent.status import skipped_wire, workspace_status
from tether.agent.steps import manual_checkpoint, record_conversations, record_step
from tether.checkpoints import restore as restore_mod
from tether.checkpoints.diffing import FileDiff, cap_diff, is_binary
from tether.errors import BadParamsError, NoCheckpointError, OutsideWorkspaceError, TetherError
from tether.humanize import checkpoint_line, plural
from tether.mcp import schemas as s
from tether.mcp.backend import Backend, Workspace
from tether.model import CheckpointInfo
from tether.paths import normalize_rel
from tether.text import escape

if TYPE_CHECKING:
    from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase

log = logging.getLogger(__name__)

Reply = tuple[s.Wire, str]
# Files named per checkpoint in a timeline (each lists every changed path otherwise).
TIMELINE_FILES = 20
RESTORE_PREVIEW_CHARS = 20_000


class BadArgument(BadParamsError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")


# --- argument checks needing the workspace -----------------------------------------------------


def _rel(ws: Workspace, field: str, value: str) -> str:
    try:
        return normalize_rel(ws.root, value)
    except OutsideWorkspaceError as exc:
        raise BadArgument(field, exc.message) from None


def _rels(ws: Workspace, field: str, values: Sequence[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [_rel(ws, f"{field}[{i}]", v) for i, v in enumerate(values)]


def _existing(ws: Workspace, field: str, n: int) -> CheckpointInfo:
    try:
        return ws.store.get_checkpoint(n)
    except NoCheckpointError as exc:
        raise BadArgument(field, exc.message) from None


def _info(info: CheckpointInfo, files: int | None = None) -> s.CheckpointInfo:
    wire = info.to_wire()
    if files is not None:
        wire["files"] = wire["files"][:files]
        wire["fileCount"] = len(info.files)
    return s.CheckpointInfo.model_validate(wire)


def _names(paths: Sequence[str], n: int = 8) -> str:
    # Names go into the agent's context: shown escaped (a name may hold control characters).
    return ", ".join(map(escape, paths[:n])) + (f" and {len(paths) - n} more" if len(paths) > n else "")


def _diff_files(files: list[FileDiff], cut: Sequence[str] = ()) -> list[s.DiffFile]:
    return [
        s.DiffFile(path=f.path, status=f.status, binary=f.binary, diff=f.diff, cut=f.path in cut)
        for f in files
    ]


# --- the work, in the worker thread -------------------------------------------------------------


def do_handoff(ws: Workspace) -> Reply:
    ws.session.import_file()  # its warning is part of the hand-off
    text, data = handoff_text(ws.store, ws.scan())
    return s.Handoff.model_validate(data), text


def do_status(ws: Workspace) -> Reply:
    st = workspace_status(ws.store, ws.checkpointer, ws.scan())
    return s.Status.model_validate(st.data), st.text


def do_record_step(
    ws: Workspace, done: str, next_steps: list[str] | None, task: str | None, files: list[str] | None
) -> Reply:
    rels = _rels(ws, "files", files)
    if not clean_text(done):
        raise BadArgument("done", "empty once control characters are removed: say what the step did")
    with ws.changes() as scan:  # the file watcher's sync overlaps the work up to the scan
        conversations, problem = record_conversations(ws.root, ws.state_dir, source="mcp")
        if problem:
            log.warning("%s", problem)
        outcome = record_step(
            ws.store,
            ws.session,
            ws.checkpointer,
            done,
            next_steps=next_steps,
            task=task,
            files=rels,
            scan=scan,
            later=ws.later,  # the agent's file is rewritten once the reply is sent
        )
    state = outcome.state
    result = s.StepRecorded(
        checkpoint=_info(outcome.info),
        step=s.Step.model_validate(outcome.step.to_json()) if outcome.step else None,
        task=state.task,
        next_steps=state.next_steps,
        files_in_progress=state.files_in_progress,
        conversations=[s.Conversation.model_validate(c.to_json()) for c in conversations],
        warning=outcome.warning,
    )
    return result, "\n".join(outcome.lines())


def do_next_steps(ws: Workspace) -> Reply:
    _, warning = ws.session.import_file()
    state = ws.session.state()
    shipped = [f for f in provenance.FIELDS if state.is_shipped(f)]
    result = s.NextSteps(
        task=state.task,
        next_steps=state.next_steps,
        files_in_progress=state.files_in_progress,
        shipped=[{"next_steps": "nextSteps"}.get(f, f) for f in shipped],
        warning=warning or state.warning,
    )

    def note(field: str) -> str:
        # Not recorded on this machine: never presented as the agent's own.
        return f" ({provenance.SHIPPED_NOTE})" if field in shipped else ""

    lines = [f"Task{note('task')}: {escape(state.task)}"] if state.task else []
    if state.next_steps and "next_steps" in shipped:
        lines.append(f"Next steps ({provenance.SHIPPED_NOTE}):")
    lines.extend(f"{i + 1}. {escape(step)}" for i, step in enumerate(state.next_steps))
    if not state.next_steps:
        lines.append("no next steps recorded (record_step with next_steps sets them)")
    return result, "\n".join(lines)


def do_checkpoint(ws: Workspace, message: str | None, paths: list[str] | None) -> Reply:
    rels = _rels(ws, "paths", paths)
    text = safe_text(message) if message is not None else None
    mark = ws.feed.mark() if ws.feed is not None and not rels else None
    outcome = manual_checkpoint(ws.session, ws.checkpointer, text or None, rels or None)
    if ws.feed is not None and not rels:
        ws.feed.after_full_scan(outcome.scan, mark, checkpointed=True)
    info = outcome.info
    assert info is not None
    skipped = skipped_wire(outcome.scan.skipped)
    result = s.CheckpointMade(checkpoint=_info(info), skipped=[s.Skipped.model_validate(x) for x in skipped])
    line = f"checkpoint {info.id}: {plural(len(info.files), 'file')} changed"
    if info.files:
        line += f" ({_names(info.files)})"
    if skipped:
        line += f"; {len(skipped)} skipped (see status)"
    return result, line


def do_timeline(ws: Workspace, limit: int) -> Reply:
    infos = ws.store.list_checkpoints(limit=limit + 1)
    more = len(infos) > limit
    infos = infos[:limit]
    result = s.Timeline(checkpoints=[_info(i, TIMELINE_FILES) for i in infos], more=more)
    if not infos:
        return result, "no checkpoints yet"
    lines = [checkpoint_line(i) for i in infos]
    if more:
        lines.append(f"… older checkpoints not shown (limit {limit})")
    return result, "\n".join(lines)


def do_diff(ws: Workspace, a: int, b: int | None, paths: list[str] | None, max_chars: int) -> Reply:
    _existing(ws, "from_checkpoint", a)
    if b is not None:
        _existing(ws, "to_checkpoint", b)
    rels = _rels(ws, "paths", paths) or []
    capped = cap_diff(restore_mod.diff(ws.store, a, b, rels or None, checkpointer=ws.checkpointer), max_chars)
    result = s.Diff.model_validate(
        {
            "from": a,
            "to": b,
            "paths": rels,
            "files": _diff_files(capped.files, capped.cut),
            "totalChars": capped.total_chars,
        }
    )
    against = f"checkpoint {b}" if b is not None else "the live workspace"
    if not capped.files:
        return result, f"no differences between checkpoint {a} and {against}"
    text = capped.text
    if capped.cut:
        text += (
            f"\n… cut to {max_chars} of {capped.total_chars} characters; left out or shortened: "
            f"{_names(capped.cut)} (ask for those paths, or a larger max_chars)"
        )
    return result, text


def do_file_at(ws: Workspace, n: int, path: str, max_chars: int) -> Reply:
    rel = _rel(ws, "path", path)
    _existing(ws, "checkpoint", n)
    entry = ws.store.entry_at(n, rel)
    if entry is None:
        result = s.FileAt(
            checkpoint=n, path=rel, exists=False, binary=False, size=0, sha256=None, text=None, cut=False
        )
        return result, f"{rel} was not tracked at checkpoint {n}"
    data = ws.store.read_blob(entry.hash)
    if is_binary(data):
        result = s.FileAt(
            checkpoint=n, path=rel, exists=True, binary=True, size=len(data), sha256=entry.hash, text=None,
            cut=False,
        )  # fmt: skip
        return result, f"{rel} at checkpoint {n}: binary, {len(data)} bytes"
    text = data.decode("utf-8")
    cut = len(text) > max_chars
    if cut:
        end = text.rfind("\n", 0, max_chars)
        text = text[: end + 1 if end > 0 else max_chars]
    result = s.FileAt(
        checkpoint=n,
        path=rel,
        exists=True,
        binary=False,
        size=len(data),
        sha256=entry.hash,
        text=text,
        cut=cut,
    )
    if cut:
        note = f"\n… cut at {len(text)} characters of {len(data)} bytes (a larger max_chars gives more)"
        return result, text + note
    return result, text


def do_restore(ws: Workspace, n: int, paths: list[str] | None, confirm: bool) -> Reply:
    _existing(ws, "checkpoint", n)
    rels = _rels(ws, "paths", paths)
    res = restore_mod.restore(ws.store, ws.checkpointer, n, rels or None, dry_run=not confirm)
    capped = cap_diff(res.files, RESTORE_PREVIEW_CHARS)
    result = s.Restore(
        checkpoint=n,
        dry_run=res.dry_run,
        files=_diff_files(capped.files if res.dry_run else res.files, capped.cut if res.dry_run else ()),
        undo_checkpoint=res.undo_checkpoint,
        after_checkpoint=res.after_checkpoint,
    )
    if not res.files:
        return result, f"nothing to restore: the workspace matches checkpoint {n}"
    listing = _names([f"{f.path} ({f.status})" for f in res.files], 12)
    if res.dry_run:
        text = (
            f"dry run: {plural(len(res.files), 'file')} would change: {listing}\n\n{capped.text}"
            + (f"\n… preview cut to {RESTORE_PREVIEW_CHARS} characters\n" if capped.cut else "")
            + "\nNothing was written. To restore, call restore again with confirm: true "
            "(the workspace is checkpointed first, so it can be undone)."
        )
        return result, text
    return result, (
        f"restored {plural(len(res.files), 'file')} from checkpoint {n}: {listing}. "
        f"To undo, restore checkpoint {res.undo_checkpoint} with confirm: true."
    )


def do_run_status(ws: Workspace) -> Reply:
    summaries = run_summaries(ws.store, ws.scan())
    runs = [s.RunValidity.model_validate(r.to_wire()) for r in summaries]
    result = s.RunStatus(
        runs=runs,
        hold=[r.command for r in summaries if not r.stale],
        rerun=[r.command for r in summaries if r.stale],
    )
    if not summaries:
        return result, (
            "no runs recorded: run builds and tests through `tether run -- CMD` so Tether can tell "
            "which results still hold"
        )
    return result, "\n".join(r.summary for r in summaries)


# --- the tools ----------------------------------------------------------------------------------


def _reply(reply: Reply) -> CallToolResult:
    model, text = reply
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=model.wire())


def build_tools(backend: Backend) -> list[Tool]:
    """The tools, bound to ``backend``; descriptions are written for the model that calls them."""

    async def work(fn: Callable[[Workspace], Reply], wrote: bool = False) -> CallToolResult:
        try:
            return _reply(await backend.run(fn, wrote=wrote))
        except TetherError as exc:
            raise ToolError(exc.message) from None

    async def handoff() -> Annotated[CallToolResult, s.Handoff]:
        """Where the work stands, for an agent starting or resuming a session: the task, the next
        steps, the files in progress with lines changed since the last step, recent steps, which
        test/build runs still hold, the last failing run's output and recent shell history.
        Call it first in a session (it is what `tether resume --print` prints). Reads only;
        costs one stat walk of the workspace (tens of milliseconds at 10,000 files)."""
        return await work(do_handoff)

    async def status() -> Annotated[CallToolResult, s.Status]:
        """The workspace's state: last checkpoint, files changed since it, files skipped (too
        large, unreadable), the task, next steps, last step and run validity. Reads only; one
        stat walk of the workspace."""
        return await work(do_status)

    async def record_step(
        done: Annotated[s.Text, Field(description="what this step did, one line")],
        next_steps: Annotated[
            s.TextList | None,
            Field(
                description="the next steps, replacing the current list ([] clears it); omitted: "
                "a next step equal to `done` is ticked off"
            ),
        ] = None,
        task: Annotated[s.Text | None, Field(description="set the current task")] = None,
        files: Annotated[
            s.PathList | None,
            Field(description="files this step worked on; they become the files in progress"),
        ] = None,
    ) -> Annotated[CallToolResult, s.StepRecorded]:
        """Record a step after each unit of work: what was done, what comes next. Checkpoints
        every file changed on disk since the last checkpoint (edits made through the shell
        included), so the step can be diffed and restored. Call it after finishing a change,
        before moving on. Cheap: one stat walk and one store transaction (milliseconds)."""
        return await work(lambda ws: do_record_step(ws, done, next_steps, task, files), wrote=True)

    async def next_steps() -> Annotated[CallToolResult, s.NextSteps]:
        """The current task and its next steps, numbered. Reads only; instant."""
        return await work(do_next_steps)

    async def checkpoint(
        message: Annotated[s.Text | None, Field(description="a note shown in the timeline")] = None,
        paths: Annotated[
            s.PathList | None,
            Field(description="only look at these files or directories (faster); default: everything"),
        ] = None,
    ) -> Annotated[CallToolResult, s.CheckpointMade]:
        """Checkpoint the workspace now, outside a step (e.g. before a risky change). Written
        even when nothing changed. Prefer record_step after a unit of work."""
        return await work(lambda ws: do_checkpoint(ws, message, paths), wrote=True)

    async def timeline(
        limit: Annotated[int, Field(ge=1, le=500, description="how many checkpoints, newest first")] = 20,
    ) -> Annotated[CallToolResult, s.Timeline]:
        """The checkpoints, newest first: number, time, trigger (step, save, manual…), message
        and files changed. Use the numbers with diff, file_at and restore. Reads only; instant."""
        return await work(lambda ws: do_timeline(ws, limit))

    async def diff(
        from_checkpoint: Annotated[s.CheckpointNumber, Field(description="the older side")],
        to_checkpoint: Annotated[
            s.CheckpointNumber | None, Field(description="the newer side; omitted: the live workspace")
        ] = None,
        paths: Annotated[
            s.PathList | None, Field(description="only these files or directories (faster)")
        ] = None,
        max_chars: s.MaxChars = s.DEFAULT_MAX_CHARS,
    ) -> Annotated[CallToolResult, s.Diff]:
        """Unified diff from a checkpoint to another checkpoint or to the files on disk now, cut
        to max_chars (whole files first; the rest are named). Reads only: files unchanged since the
        last checkpoint (by their stat) are not read."""
        return await work(lambda ws: do_diff(ws, from_checkpoint, to_checkpoint, paths, max_chars))

    async def file_at(
        checkpoint: s.CheckpointNumber,
        path: s.PathArg,
        max_chars: s.MaxChars = s.DEFAULT_MAX_CHARS,
    ) -> Annotated[CallToolResult, s.FileAt]:
        """A file's content as it was at a checkpoint (text only; binary files give their size).
        Reads only; instant."""
        return await work(lambda ws: do_file_at(ws, checkpoint, path, max_chars))

    async def restore(
        checkpoint: s.CheckpointNumber,
        paths: Annotated[
            s.PathList | None,
            Field(description="files or directories to restore; default: every tracked file"),
        ] = None,
        confirm: Annotated[
            bool, Field(description="false (default): only show what would change; true: write the files")
        ] = False,
    ) -> Annotated[CallToolResult, s.Restore]:
        """Put files back as they were at a checkpoint. A dry run unless confirm is true: call it
        first without confirm, check the preview, then again with confirm: true. A real restore
        checkpoints the whole workspace first and reports that undo checkpoint; files Tether
        never tracked are not deleted. Writes files: ask the user before confirming a restore
        they did not request."""
        return await work(lambda ws: do_restore(ws, checkpoint, paths, confirm), wrote=confirm)

    async def run_status() -> Annotated[CallToolResult, s.RunStatus]:
        """Which recorded build/test runs (`tether run -- CMD`) still hold for the files on disk
        and which must re-run, naming the files changed since. Check it before re-running a
        slow test suite. Reads only; one stat walk."""
        return await work(do_run_status)

    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    writes = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
    destructive = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)
    return [
        strict_tool(handoff, "Hand-off: where the work stands", read_only),
        strict_tool(status, "Workspace status", read_only),
        strict_tool(record_step, "Record a step", writes),
        strict_tool(next_steps, "Next steps", read_only),
        strict_tool(checkpoint, "Checkpoint now", writes),
        strict_tool(timeline, "Checkpoint timeline", read_only),
        strict_tool(diff, "Diff against a checkpoint", read_only),
        strict_tool(file_at, "File at a checkpoint", read_only),
        strict_tool(restore, "Restore files from a checkpoint", destructive),
        strict_tool(run_status, "Run validity", read_only),
    ]


def strict_tool(fn: Callable[..., Any], title: str, annotations: ToolAnnotations) -> Tool:
    """A tool whose arguments are checked strictly: no unknown argument, no coercion (``"3"`` is
    not a number, ``1`` not a boolean), and the schema the client sees says so."""
    tool = Tool.from_function(fn, title=title, annotations=annotations, structured_output=True)
    meta = tool.fn_metadata
    base = meta.arg_model
    strict = cast(
        "type[ArgModelBase]",
        type(
            base.__name__,
            (base,),
            {
                "model_config": ConfigDict(extra="forbid", strict=True, hide_input_in_errors=True),
                "__module__": __name__,
            },
        ),
    )
    meta.arg_model = strict
    tool.parameters = strict.model_json_schema(by_alias=True)
    return tool
