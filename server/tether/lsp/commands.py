"""The ``workspace/executeCommand`` commands: one table of (name, params parser, handler).

The server registers every entry the same way: params are validated first (a bad call is
refused at once, even while the store opens), then the store is waited for once (bounded) when
the command needs it, then the handler runs. Handlers are thin: params in, an engine or service
call, a wire result out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from tether import protocol as P
from tether.checkpoints.diffing import is_binary
from tether.editor.resume import next_steps_payload
from tether.errors import OutsideWorkspaceError, StoreError
from tether.lsp import params as prm
from tether.lsp import resume as resume_flow
from tether.lsp.status import shown
from tether.model import CheckpointInfo
from tether.paths import normalize_rel
from tether.record import dataclass

if TYPE_CHECKING:
    from tether.lsp.engine import Engine

Params = Mapping[str, Any]


@dataclass(frozen=True)
class Command:
    name: str
    # params → the handler's argument (BadParamsError / OutsideWorkspaceError naming the field)
    parse: Callable[[Engine, Params], Any]
    run: Callable[[Engine, Any], Awaitable[dict[str, Any]]]
    needs_store: bool = True


async def status(eng: Engine, _: None) -> dict[str, Any]:
    return eng.status()


async def checkpoint(eng: Engine, message: str | None) -> dict[str, Any]:
    """The whole workspace, the saves still pending included (not checkpointed twice)."""
    paths = eng.saves.take()
    if paths:
        await eng.run(lambda: eng.backend.checkpointer.note_changed(paths))
    info = await eng.checkpoint(P.TRIGGER_MANUAL, message, full=True, allow_empty=True)
    assert info is not None
    eng.candidate.superseded = True
    eng.update_status()
    return shown(info)


async def timeline(eng: Engine, limit: int) -> dict[str, Any]:
    infos = await eng.run(lambda: eng.backend.store.list_checkpoints(limit))
    return {"checkpoints": [shown(i) for i in infos]}


async def diff(eng: Engine, args: tuple[int, int | None, list[str] | None]) -> dict[str, Any]:
    from tether.checkpoints import restore as restore_mod

    a, b, paths = args
    files = await eng.run(
        lambda: restore_mod.diff(eng.backend.store, a, b, paths, checkpointer=eng.backend.checkpointer)
    )
    return {"from": a, "to": b, "files": [f.to_wire() for f in files]}


async def file_at(eng: Engine, args: tuple[int, str]) -> dict[str, Any]:
    n, rel = args

    def work() -> dict[str, Any]:
        store = eng.backend.store
        entry = store.entry_at(n, rel)
        if entry is None:
            return {"path": rel, "exists": False, "binary": False, "text": None}
        data = store.read_blob(entry.hash)
        binary = is_binary(data)
        return {
            "path": rel,
            "exists": True,
            "binary": binary,
            "text": None if binary else data.decode("utf-8"),
        }

    return await eng.run(work)


async def restore(eng: Engine, args: tuple[int, list[str] | None, bool]) -> dict[str, Any]:
    from tether.checkpoints import restore as restore_mod

    n, paths, dry = args

    def work() -> Any:
        b = eng.backend
        result = restore_mod.restore(b.store, b.checkpointer, n, paths, dry_run=dry)
        latest = b.store.latest()
        if not dry and latest is not None and latest != eng.last_checkpoint:
            eng.after_checkpoint(latest)
        return result

    with eng.busy() if not dry else contextlib.nullcontext():
        result = await eng.run(work)
    out: dict[str, Any] = result.to_wire()
    return out


async def step(eng: Engine, args: tuple[str, list[str] | None, str | None]) -> dict[str, Any]:
    """A step of the agent's, its checkpoint, and the next steps shown in the editor."""
    done, nxt, task = args
    await eng.journal.flush_now()

    def work() -> tuple[CheckpointInfo | None, dict[str, Any]]:
        b = eng.backend
        if b.agent is not None:
            info = b.agent.record_step(b.checkpointer, done, next_steps=nxt, task=task)
            if info is not None:
                eng.after_checkpoint(info)
            return info, b.hand_off()
        out = b.checkpointer.checkpoint(P.TRIGGER_STEP, done, allow_empty=True)
        if out.info is not None:
            eng.after_checkpoint(out.info)
        return out.info, {"task": task, "nextSteps": nxt or []}

    with eng.busy():
        try:
            info, hand = await eng.run(work)
        finally:
            eng.candidate.superseded = True
    eng.client.notify(P.NOTIFY_SHOW_NEXT_STEPS, next_steps_payload(hand, eng.docs.open_paths()))
    if info is None:
        raise StoreError("the step was not recorded")
    return shown(info)


async def resume(eng: Engine, n: int | None) -> dict[str, Any]:
    return await resume_flow.resume(eng, n)


async def start_session(eng: Engine, _: None) -> dict[str, Any]:
    return await resume_flow.start_session(eng)


def _rel_paths(eng: Engine, command: str, paths: list[str] | None) -> list[str] | None:
    if paths is None:
        return None
    out = []
    for raw in paths:
        candidate = raw
        if raw.startswith("file://"):
            from tether.editor.documents import uri_to_path

            candidate = uri_to_path(raw) or raw
        try:
            out.append(normalize_rel(eng.root, candidate))
        except OutsideWorkspaceError as exc:
            raise OutsideWorkspaceError(f"{command}: {exc.message}") from None
    return out


def _diff_args(eng: Engine, p: Params) -> tuple[int, int | None, list[str] | None]:
    c = P.CMD_DIFF
    a = prm.checkpoint_id(c, p, "from", required=True)
    b = prm.checkpoint_id(c, p, "to", required=False)
    assert a is not None
    return a, b, _rel_paths(eng, c, prm.opt_str_list(c, p, "paths"))


def _file_at_args(eng: Engine, p: Params) -> tuple[int, str]:
    c = P.CMD_FILE_AT
    n = prm.checkpoint_id(c, p, "checkpoint", required=True)
    rels = _rel_paths(eng, c, [prm.req_str(c, p, "path")])
    assert rels is not None and n is not None
    return n, rels[0]


def _restore_args(eng: Engine, p: Params) -> tuple[int, list[str] | None, bool]:
    c = P.CMD_RESTORE
    n = prm.checkpoint_id(c, p, "checkpoint", required=True)
    paths = _rel_paths(eng, c, prm.opt_str_list(c, p, "paths"))
    assert n is not None
    return n, paths, prm.opt_bool(c, p, "dryRun", True)


def _step_args(_eng: Engine, p: Params) -> tuple[str, list[str] | None, str | None]:
    c = P.CMD_STEP
    return prm.req_str(c, p, "done"), prm.opt_str_list(c, p, "next", max_items=200), prm.opt_str(c, p, "task")


COMMANDS: tuple[Command, ...] = (
    Command(P.CMD_STATUS, lambda e, p: None, status, needs_store=False),
    Command(P.CMD_CHECKPOINT, lambda e, p: prm.opt_str(P.CMD_CHECKPOINT, p, "message"), checkpoint),
    Command(P.CMD_TIMELINE, lambda e, p: prm.opt_int(P.CMD_TIMELINE, p, "limit", 50, minimum=1), timeline),
    Command(P.CMD_DIFF, _diff_args, diff),
    Command(P.CMD_FILE_AT, _file_at_args, file_at),
    Command(P.CMD_RESTORE, _restore_args, restore),
    Command(P.CMD_STEP, _step_args, step),
    Command(
        P.CMD_RESUME, lambda e, p: prm.checkpoint_id(P.CMD_RESUME, p, "checkpoint", required=False), resume
    ),
    Command(P.CMD_START_SESSION, lambda e, p: None, start_session),
)


async def execute(eng: Engine, command: Command, p: Params) -> dict[str, Any]:
    """The one way a command runs: validated params, the store waited for once, the handler."""
    args = command.parse(eng, p)
    if command.needs_store:
        await eng.wait_ready()
    return await command.run(eng, args)
