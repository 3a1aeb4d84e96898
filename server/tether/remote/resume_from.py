"""Resume another machine's session here: pull, then the usual preview-first restore.

Without ``apply`` nothing local changes beyond the import itself: the files that would change
are listed (a dry-run restore) with the task and next steps. With ``apply`` the files are
restored through the usual undoable restore (this machine's state is checkpointed first), the
task, next steps and step log are taken over, and the tmux layout is recreated from the
imported snapshot, whose cwds were mapped to this machine's root at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tether import protocol
from tether.errors import HandoffError
from tether.humanize import plural
from tether.remote.gitrepo import ref_part
from tether.remote.handoff import Handoff
from tether.store.db import Store


def resume_from(
    store: Store,
    remote: str,
    who: str | None,
    *,
    me: str | None = None,
    ws_id: str | None = None,
    apply: bool = False,
    run: bool = True,
    state_dir: str | Path | None = None,
) -> tuple[dict[str, Any], str]:
    from tether.agent.model import parse_attachment
    from tether.agent.session import AgentSession
    from tether.checkpoints import restore as restore_mod
    from tether.checkpoints.checkpointer import Checkpointer

    handoff = Handoff(store, me, ws_id)
    pulled = handoff.pull(remote, only=who)
    origin = ref_part(who) if who else handoff.newest_origin()
    info = store.latest(origin=origin) if origin else None
    if origin is None or info is None:
        raise HandoffError(
            f"no other machine has pushed this workspace to {remote} (this clone pushes as "
            f"{handoff.who}; `tether pull {remote}` lists what is there)"
        )
    lines = [f"hand-off from {origin}: checkpoint {info.id} ({info.message or info.trigger})"]
    result = restore_mod.restore(store, Checkpointer(store), info.id, None, dry_run=not apply)
    changed = [f.path for f in result.files]
    if apply:
        lines.append(
            f"restored {plural(len(changed), 'file')}"
            + (f"; undo with `tether restore {result.undo_checkpoint}`" if result.undo_checkpoint else "")
        )
    elif changed:
        lines.append(f"would change {plural(len(changed), 'file')}: " + ", ".join(changed[:20]))
        lines.append(f"nothing written yet: run again with --apply (or `tether restore {info.id}`)")
    else:
        lines.append("files: the workspace already matches")
    found = store.latest_attachment(protocol.ATTACH_AGENT, at=info.id)
    state, _runs = parse_attachment(found[1], info.id) if found else (None, [])
    if state is not None:
        if state.task:
            lines.append(f"Task: {state.task}")
        if state.next_steps:
            lines.append("Next: " + "; ".join(state.next_steps))
        if apply:
            AgentSession(store).adopt(state, at=info.id)
            _take_runs(store, origin, _runs)
    if apply:
        from tether.agent.runs import run_summaries

        lines.extend(r.summary for r in run_summaries(store)[:3])
    tmux: dict[str, Any] | None = None
    if apply:
        tmux = _recreate_tmux(store, info.id, state_dir, run, lines)
    data = {
        "origin": origin,
        "checkpoint": info.id,
        "applied": apply,
        "files": changed,
        "undoCheckpoint": result.undo_checkpoint,
        "task": state.task if state else None,
        "nextSteps": state.next_steps if state else [],
        "pulled": pulled.to_wire(),
        "tmux": tmux,
    }
    return data, "\n".join(lines)


def _recreate_tmux(
    store: Store, n: int, state_dir: str | Path | None, run: bool, lines: list[str]
) -> dict[str, Any] | None:
    from tether.errors import TetherError
    from tether.tmux.config import RunPolicy
    from tether.tmux.user import user_link

    found = store.latest_attachment(protocol.ATTACH_TMUX, at=n)
    if found is None:
        lines.append("tmux: the other machine recorded no tmux session")
        return None
    link, warnings = user_link(store.root, Path(state_dir) if state_dir else None)
    lines.extend(f"tmux: {w}" for w in warnings)
    try:
        report = link.restore(found[1], RunPolicy(mode="allowlist" if run else "never"))
    except TetherError as exc:
        lines.append(f"tmux: could not recreate the session: {exc.message}")
        return {"error": exc.message}
    if report.recreated:
        lines.append(
            f"tmux: recreated session {report.session}; attach with `{' '.join(link.attach_argv())}`"
        )
    else:
        lines.append(f"tmux: session {report.session} is already running here; left as it is")
    return {"session": report.session, "recreated": report.recreated}


def _take_runs(store: Store, origin: str, runs: list[dict[str, Any]]) -> int:
    """Record the other machine's runs here, each against the imported checkpoint it ran at, so
    "tests last passed at checkpoint N; 3 files changed since" holds for this machine's files."""
    import json

    from tether.agent.runs import Run, load_runs, save_run
    from tether.remote.importer import ATTACH_HANDOFF

    numbers: dict[int, int] = {}
    for n in store.checkpoint_ids(origin=origin):
        raw = store.attachment(n, ATTACH_HANDOFF)
        try:
            theirs = json.loads(raw)["checkpoint"] if raw else None
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(theirs, int):
            numbers[theirs] = n
    have = {(r.command_text, r.started) for r in load_runs(store)}
    taken = 0
    for doc in runs:
        run = Run.from_json(doc)
        if run is None or run.checkpoint not in numbers or (run.command_text, run.started) in have:
            continue
        run.checkpoint = numbers[run.checkpoint]
        save_run(store, run)
        taken += 1
    return taken
