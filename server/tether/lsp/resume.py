"""``tether.resume`` and ``tether.startSession`` against the editor: the pure plan
(``editor/resume.py``) applied with showDocument / applyEdit, and the tmux session reattached,
recreated or started, in the worker thread while the editor requests go out."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from tether import protocol as P
from tether.editor import resume as resume_mod
from tether.editor.documents import end_position, text_hash
from tether.errors import BusyError, ClientTimeoutError, TetherError, TmuxError
from tether.logs import get_logger

if TYPE_CHECKING:
    from tether.lsp.engine import Engine

log = get_logger(__name__)

# A second tether.resume waits this long for the first (whose client requests are bounded).
RESUME_QUEUE_TIMEOUT = 30.0


async def resume(eng: Engine, n: int | None) -> dict[str, Any]:
    """One resume at a time: a double-clicked command must not apply the buffers twice. The first
    one's client requests are bounded, so the wait for it is too."""
    try:
        await asyncio.wait_for(eng.resume_lock.acquire(), RESUME_QUEUE_TIMEOUT)
    except TimeoutError:
        raise BusyError(
            f"another tether.resume is still running after {RESUME_QUEUE_TIMEOUT:g} s; try again"
        ) from None
    try:
        return await _resume(eng, n)
    finally:
        eng.resume_lock.release()


async def _resume(eng: Engine, n: int | None) -> dict[str, Any]:
    def gather() -> resume_mod.ResumePlan:
        b = eng.backend
        inputs = resume_mod.load_inputs(b.store, n, b.hand_off(), eng.config.resume_max_files)
        return resume_mod.plan(inputs)

    client = eng.client
    t0 = time.perf_counter()
    plan = await eng.run(gather)
    t_plan = time.perf_counter()
    # tmux work runs in the worker while the editor messages go out.
    terminal_task = asyncio.ensure_future(_terminal(eng))
    opened: list[str] = []
    restored: list[str] = []
    skipped = [{"path": s.path, "reason": s.reason} for s in plan.skipped]
    shows = [s for s in plan.show if not s.focus] if client.supports_show_document else []
    focus = [s for s in plan.show if s.focus] if client.supports_show_document else []
    buffers = []
    retry: set[str] = set()  # not restored, for a reason that may pass: stays pending
    for buf in plan.buffers:
        verdict, end = _against_live_doc(eng, buf.path, buf.text)
        if verdict == "same":
            restored.append(buf.path)  # already there (e.g. a second resume): no edit
        elif verdict is not None:
            skipped.append({"path": buf.path, "reason": verdict})
            retry.add(buf.path)
        else:
            buffers.append(resume_mod.BufferEdit(buf.path, buf.uri, buf.text, end or buf.end, buf.base_hash))
    if buffers:
        # Before the edits (notifications and requests keep their order): an editor with its
        # own recovery files (Neovim's swap files) decides with these which copy is newer.
        journaled = plan.journaled_at
        client.notify(
            P.NOTIFY_RESTORING_BUFFERS,
            {
                "buffers": [
                    {
                        "path": b.path,
                        "uri": b.uri,
                        "journaledAt": _iso_ms(journaled) if journaled is not None else None,
                        "textHash": text_hash(b.text),
                        "baseHash": b.base_hash,
                    }
                    for b in buffers
                ]
            },
        )
    results = await asyncio.gather(
        *(client.show_document(s.uri, s.line, s.character, False) for s in shows),
        *(client.apply_edit(P.LABEL_RESTORE_EDIT, b.uri, b.end, b.text) for b in buffers),
        return_exceptions=True,
    )
    # Requests the editor never answered (each is bounded): said in the result.
    timed_out: list[dict[str, str]] = []
    for s, ok in zip(shows, results[: len(shows)], strict=True):
        if ok is True:
            opened.append(s.path)
        elif isinstance(ok, ClientTimeoutError):
            timed_out.append({"request": ok.request, "path": s.path})
    for b, res in zip(buffers, results[len(shows) :], strict=True):
        if isinstance(res, tuple) and res[0]:
            restored.append(b.path)
        elif isinstance(res, ClientTimeoutError):
            timed_out.append({"request": res.request, "path": b.path})
            skipped.append({"path": b.path, "reason": res.message})
        else:
            why = res[1] if isinstance(res, tuple) else str(res)
            retry.add(b.path)
            skipped.append({"path": b.path, "reason": f"the editor refused the edit: {why or 'no reason'}"})
    # The focused document last, so it ends up in front.
    for s in focus:
        try:
            if await client.show_document(s.uri, s.line, s.character, True):
                opened.append(s.path)
        except ClientTimeoutError as exc:
            timed_out.append({"request": exc.request, "path": s.path})
        except Exception as exc:
            log.info("showDocument %s failed: %s", s.uri, exc)
    t_editor = time.perf_counter()
    terminal, no_terminal = await terminal_task
    t_term = time.perf_counter()
    log.info(
        "resume: plan %.0f ms, %d documents + %d buffers %.0f ms, terminal wait after them %.0f ms",
        (t_plan - t0) * 1000,
        len(plan.show),
        len(plan.buffers),
        (t_editor - t_plan) * 1000,
        (t_term - t_editor) * 1000,
    )
    client.notify(P.NOTIFY_SHOW_NEXT_STEPS, plan.next_steps)

    if plan.pending is not None:
        # Consumed only as far as it really came back: refused buffers stay for next time.
        pending = plan.pending
        with contextlib.suppress(TetherError):
            await eng.run(lambda: eng.candidate.consume(eng.backend.store, pending, retry))
        eng.update_status()
    return {
        "checkpoint": plan.checkpoint,
        "opened": opened,
        "restoredBuffers": restored,
        "skippedBuffers": skipped,
        "terminal": terminal,
        "noTerminal": no_terminal,
        "nextSteps": plan.next_steps.get("nextSteps", []),
        "timedOut": timed_out,
    }


def _against_live_doc(eng: Engine, path: str, text: str) -> tuple[str | None, tuple[int, int] | None]:
    """How a journaled buffer meets the document this editor already has open, if any:
    ("same", None) when it already holds the text, (reason, None) when it has other
    unsaved edits (never overwritten), else (None, end of its current text)."""
    for doc in eng.docs.all():
        if doc.path != path:
            continue
        if doc.text is None:
            return "the document is larger than maxFileBytes: its text is not tracked", None
        if text_hash(doc.text) == text_hash(text):
            return "same", None
        if doc.dirty:
            return "the file already has different unsaved edits in this editor", None
        return None, end_position(doc.text)
    return None, None


async def _terminal(eng: Engine) -> tuple[dict[str, Any] | None, str | None]:
    """(ResumeResult.terminal, ResumeResult.noTerminal): the session reattached or recreated,
    else why not (None when tmux is off)."""
    b = eng.backend_or_none
    if b is None or b.tmux is None:
        return None, None
    link = b.tmux

    def work() -> tuple[str, bool, list[str], list[dict[str, Any]], list[str]] | str:
        from tether.tmux.config import RunPolicy
        from tether.tmux.watch import latest_snapshot

        recreated = False
        agents: list[dict[str, Any]] = []
        warnings: list[str] = []
        if not link.alive():
            found = latest_snapshot(b.store)
            if found is None:
                return (
                    f"the tmux session {link.session} is not running and no snapshot of it was "
                    "ever recorded, so there is no terminal to bring back (Tether: Start agent "
                    "session or `tether start` creates one and records it at once)"
                )
            # Recorded commands run again only when they match the user's allowlist.
            report = link.restore(found.data, RunPolicy(mode="allowlist"))
            recreated = bool(report.recreated)
            if b.watch is not None:
                b.watch.check_now(force=True, store=b.store)
            for w in report.warnings:
                log.warning("tmux restore: %s", w)
            warnings = list(report.warnings)
            # Which conversation each agent pane resumes, for the client to show.
            agents = [
                {"window": p.window, "pane": p.uid, "agent": p.agent, "conversation": p.conversation,
                 "action": p.action, "command": p.command}
                for p in report.panes
                if p.agent
            ]  # fmt: skip
        argv = list(link.attach_argv())
        eng.refresh_side_state()
        return str(link.session), recreated, argv, agents, warnings

    try:
        out = await eng.run(work)
    except Exception as exc:
        log.warning("terminal resume failed: %s", exc)
        return None, f"could not bring the tmux session back: {exc}"
    if isinstance(out, str):
        return None, out
    name, recreated, argv, agents, warnings = out
    eng.client.notify(P.NOTIFY_OPEN_TERMINAL, {"name": name, "argv": argv, "cwd": str(eng.root)})
    eng.update_status()
    return {"session": name, "recreated": recreated, "agents": agents, "warnings": warnings}, None


async def start_session(eng: Engine) -> dict[str, Any]:
    b = eng.backend
    link = b.tmux
    if link is None:
        raise TmuxError("tmux is disabled or not available on this machine")

    def work() -> tuple[str, bool, list[str]]:
        name, created = link.ensure_session()
        if b.watch is not None:
            # Snapshotted at once (and hooked): a reboot a second later brings it back.
            b.watch.check_now(force=bool(created), store=b.store)
        argv = list(link.attach_argv())
        eng.refresh_side_state()
        return str(name), bool(created), argv

    try:
        name, created, argv = await eng.run(work)
    except TetherError:
        raise
    except Exception as exc:
        raise TmuxError(f"could not start the tmux session: {exc}") from exc
    eng.client.notify(P.NOTIFY_OPEN_TERMINAL, {"name": name, "argv": argv, "cwd": str(eng.root)})
    eng.update_status()
    return {"session": name, "created": created, "argv": argv}


def _iso_ms(t: float) -> str:
    """ISO 8601 UTC with milliseconds: a journal and a swap file written in the same second
    must still compare."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"
