"""The durable record of agent conversations (:class:`ConversationLog`): "agent X, conversation Y,
in this cwd/pane" as told by hooks and ``tether step`` (and learned at snapshots), per workspace,
next to its store. Claude clears ``~/.claude/sessions`` at reboot, so what was learned before
must be kept here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from tether import paths
from tether.conversations.agents import ENV_IDS, canonical, valid_id
from tether.record import dataclass
from tether.safefs import read_capped

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = logging.getLogger(__name__)

_LOG_NAME = "conversations.json"
_LOG_KEEP = 50


@dataclass(frozen=True)
class Conversation:
    agent: str
    id: str
    cwd: str | None
    pane: str | None  # Tether's pane uid (TETHER_PANE_ID) when known
    source: str  # "hook", "step", a record name (learned at a snapshot)
    time: float

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent, "id": self.id, "cwd": self.cwd, "pane": self.pane,
            "source": self.source, "time": self.time,
        }  # fmt: skip

    @classmethod
    def from_json(cls, doc: object) -> Conversation | None:
        if not isinstance(doc, dict):
            return None
        agent = canonical(doc["agent"]) if isinstance(doc.get("agent"), str) else None
        cid = valid_id(agent, doc.get("id")) if agent else None
        t = doc.get("time")
        if agent is None or cid is None or not isinstance(t, int | float) or isinstance(t, bool):
            return None
        cwd, pane, source = doc.get("cwd"), doc.get("pane"), doc.get("source")
        return cls(
            agent,
            cid,
            cwd if isinstance(cwd, str) else None,
            pane if isinstance(pane, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", pane) else None,
            source if isinstance(source, str) else "told",
            float(t),
        )


class ConversationLog:
    """The workspace's record of agent conversations, newest last; 0600 JSON next to the store.

    Writers (hooks, steps, snapshots: several processes) update it under an flock, read-modify-
    write, and replace it atomically, so two hooks at once never lose each other's record.
    """

    def __init__(self, directory: Path, base: Path | None = None) -> None:
        self.path = directory / _LOG_NAME
        self.base = base  # the state dir: nothing below it is followed through a symlink

    @classmethod
    def for_workspace(cls, root: Path, state: str | os.PathLike[str] | None = None) -> ConversationLog:
        from tether.store.db import workspace_key

        base = paths.state_dir(state)
        return cls(base / "workspaces" / workspace_key(Path(root).resolve()), base)

    def entries(self) -> list[Conversation]:
        raw = read_capped(self.path, 4 << 20)
        if not raw:
            return []
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            log.warning("%s is not valid JSON; starting a new conversation record", self.path)
            return []
        items = doc.get("conversations") if isinstance(doc, dict) else None
        out = [Conversation.from_json(x) for x in items] if isinstance(items, list) else []
        return [c for c in out if c is not None]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        paths.ensure_private_dir(self.path.parent, self.base)
        fd = os.open(
            self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def record(
        self, agent: str, conversation: object, *, cwd: str | None = None, pane: str | None = None,
        source: str = "told",
    ) -> Conversation | None:  # fmt: skip
        """Record that ``agent`` runs ``conversation``; None (nothing written) when the agent is
        unknown or the id is not of its form. The same (agent, id, pane) again only refreshes it."""
        name = canonical(agent)
        cid = valid_id(name, conversation) if name else None
        if name is None or cid is None:
            return None
        entry = Conversation.from_json(
            {"agent": name, "id": cid, "cwd": cwd, "pane": pane, "source": source, "time": time.time()}
        )
        assert entry is not None
        with self._locked():
            current = self.entries()
            last = current[-1] if current else None
            same = last is not None and (last.agent, last.id, last.pane, last.cwd) == (
                name,
                cid,
                entry.pane,
                cwd,
            )
            if same and last is not None and entry.time - last.time < 60:
                return last  # a hook per tool call: no rewrite for the same fact within a minute
            keep = [c for c in current if not (c.agent == name and c.id == cid and c.pane == entry.pane)]
            keep.append(entry)
            data = json.dumps({"version": 1, "conversations": [c.to_json() for c in keep[-_LOG_KEEP:]]})
            paths.write_private_file(self.path, data.encode())
        return entry

    def latest(
        self,
        agent: str | None = None,
        *,
        pane: str | None = None,
        cwd: str | None = None,
        since: float | None = None,
    ) -> Conversation | None:
        """The newest record for ``agent`` in ``pane`` (else in ``cwd``, else any when neither is
        given), recorded at or after ``since`` (an agent process's start: an older record is an
        earlier conversation, not the one this process runs)."""
        items = [
            c
            for c in self.entries()
            if (agent is None or c.agent == agent) and (since is None or c.time >= since - 2)
        ]
        if pane is not None:
            hit = next((c for c in reversed(items) if c.pane == pane), None)
            if hit is not None or cwd is None:
                return hit
        if cwd is not None:
            return next((c for c in reversed(items) if c.cwd == cwd), None)
        return items[-1] if items else None

    def current(self, limit: int = 3) -> list[Conversation]:
        """The newest record per (agent, pane), newest first."""
        seen: set[tuple[str, str | None]] = set()
        out: list[Conversation] = []
        for c in reversed(self.entries()):
            if (c.agent, c.pane) in seen:
                continue
            seen.add((c.agent, c.pane))
            out.append(c)
            if len(out) >= limit:
                break
        return out


def record_hook_event(
    root: Path, state: str | os.PathLike[str] | None, agent: str, event: Mapping[str, Any]
) -> Conversation | None:
    """Record the ``session_id`` of a hook payload for ``agent`` (any hook kind calls this)."""
    cwd = event.get("cwd")
    try:
        return ConversationLog.for_workspace(root, state).record(
            agent,
            event.get("session_id"),
            cwd=cwd if isinstance(cwd, str) else None,
            pane=os.environ.get("TETHER_PANE_ID"),
            source="hook",
        )
    except OSError as exc:
        log.warning("cannot record the conversation id: %s", exc)
        return None


def record_from_env(
    root: Path,
    state: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    source: str = "step",
) -> list[Conversation]:
    """Record the conversation ids an agent put in the environment of what it runs
    (``CLAUDE_CODE_SESSION_ID``, ``CODEX_THREAD_ID``, ``GEMINI_SESSION_ID``; the agent's stdio MCP
    servers get them too). Every step path calls this: ``tether step`` and the MCP server's step.
    Never raises for a bad id or an unwritable state dir (nothing is recorded then)."""
    env = os.environ if env is None else env
    out: list[Conversation] = []
    if not any(env.get(var) for var, _ in ENV_IDS):
        return out
    try:
        log_ = ConversationLog.for_workspace(root, state)
    except OSError as exc:
        log.warning("cannot record the conversation id: %s", exc)
        return out
    for var, agent in ENV_IDS:
        if env.get(var):
            try:
                c = log_.record(agent, env[var], cwd=cwd or os.getcwd(), pane=env.get("TETHER_PANE_ID"),
                                source=source)  # fmt: skip
            except OSError as exc:
                log.warning("cannot record the conversation id: %s", exc)
                continue
            if c is not None:
                out.append(c)
    return out


def describe(agent: str, conversation: str | None) -> str:
    """``claude conversation 1b2c…`` / ``aider (chat history)`` for messages."""
    if agent == "aider":
        return "aider (its chat history)"
    return f"{agent} conversation {conversation}" if conversation else f"{agent} (no conversation id known)"
