"""The agents' own records, read while an agent runs (:func:`probe`): which conversation the
agent in a pane is on.

Claude Code's ``<config>/sessions/<pid>.json``, Codex's rollout files matched by cwd, Gemini CLI's
``~/.gemini/tmp/<project>/chats/session-*.jsonl``, opencode's SQLite ``session`` table, Copilot
CLI's ``~/.copilot/session-state/<id>/inuse.<pid>.lock``. Paths come from the agent process's own
environment (``CLAUDE_CONFIG_DIR``, ``CODEX_HOME``, ``XDG_DATA_HOME``, ``HOME``). Every file is
opened without following symlinks and read to a small cap; anything unreadable gives no id.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import sqlite3
import stat
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tether import procs, safefs
from tether.conversations.agents import argv_id, canonical, detect_agent, valid_id
from tether.record import dataclass
from tether.sha import sha256_hex

log = logging.getLogger(__name__)

_READ_CAP = 256 * 1024  # session records are a few hundred bytes; a huge one is not theirs
_LINE_CAP = 64 * 1024
_SCAN_FILES = 200  # newest rollout / chat files looked at per probe


@dataclass(frozen=True)
class PaneAgent:
    """The agent running in a pane, as captured in a tmux snapshot."""

    name: str
    id: str | None
    source: str  # where the id came from: a record, "argv", "told" (hook/step), or "none"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "id": self.id, "source": self.source}

    @classmethod
    def from_json(cls, doc: object) -> PaneAgent | None:
        """Validated read-back (snapshots are files on disk): a bad id is dropped, never typed."""
        if not isinstance(doc, dict):
            return None
        raw = doc.get("name")
        name = canonical(raw) if isinstance(raw, str) else None
        if name is None:
            return None
        source = doc.get("source")
        return cls(name, valid_id(name, doc.get("id")), source if isinstance(source, str) else "none")


def read_capped(path: Path | str, cap: int = _READ_CAP) -> bytes | None:
    """:func:`tether.safefs.read_capped` with the probes' cap (session records are small)."""
    return safefs.read_capped(path, cap)


def _first_json_line(path: Path) -> dict[str, Any] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        head = os.read(fd, _LINE_CAP)
    except OSError:
        return None
    finally:
        os.close(fd)
    line, nl, _ = head.partition(b"\n")
    if not nl and len(head) >= _LINE_CAP:
        return None
    try:
        doc = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _environ(pid: int) -> dict[str, str]:
    raw = procs.environ_bytes(pid)
    out: dict[str, str] = {}
    for item in (raw or b"").split(b"\0"):
        k, eq, v = item.partition(b"=")
        if eq:
            out[k.decode("utf-8", "replace")] = v.decode("utf-8", "replace")
    return out


def _descendants(pid: int, limit: int = 64) -> list[int]:
    """``pid`` and its descendants (npm launchers run the native agent as a child)."""
    out = [pid]
    i = 0
    while i < len(out) and len(out) < limit:
        p = out[i]
        i += 1
        out.extend(procs.children(p))
    return out[:limit]


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or os.path.expanduser("~"))


def _newest(pattern: str, limit: int = _SCAN_FILES) -> list[Path]:
    found: list[tuple[float, str]] = []
    for p in glob.glob(pattern):
        with contextlib.suppress(OSError):
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                found.append((st.st_mtime, p))
    found.sort(reverse=True)
    return [Path(p) for _, p in found[:limit]]


def _mtime(path: Path) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0


def _claude(pids: list[int], env: Mapping[str, str], cwd: str, since: float | None) -> str | None:
    base = Path(env["CLAUDE_CONFIG_DIR"]) if env.get("CLAUDE_CONFIG_DIR") else _home(env) / ".claude"
    for pid in pids:
        raw = read_capped(base / "sessions" / f"{pid}.json")
        if raw is None:
            continue
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(doc, dict) and doc.get("pid") == pid:
            sid = valid_id("claude", doc.get("sessionId"))
            if sid:
                return sid
    return None


def _codex(pids: list[int], env: Mapping[str, str], cwd: str, since: float | None) -> str | None:
    base = Path(env["CODEX_HOME"]) if env.get("CODEX_HOME") else _home(env) / ".codex"
    # Rollouts live in one directory per day: only the days since the process started (local
    # dates, a day of slack) are listed, not a heavy user's whole history.
    days = sorted(glob.glob(str(base / "sessions" / "[0-9]*" / "[0-9]*" / "[0-9]*")), reverse=True)
    if since is not None:
        first = time.strftime("%Y/%m/%d", time.localtime(since - 86400))
        days = [d for d in days if d[len(str(base / "sessions")) + 1 :] >= first]
    files: list[Path] = []
    for d in days[:31]:
        files.extend(_newest(str(Path(d) / "rollout-*.jsonl")))
        if len(files) >= _SCAN_FILES:
            break
    files.sort(key=_mtime, reverse=True)
    for path in files[:_SCAN_FILES]:
        if since is not None and _mtime(path) < since - 2:
            break  # older than the process: not its conversation (and the rest are older still)
        doc = _first_json_line(path)
        payload = doc.get("payload") if doc else None
        if not isinstance(payload, dict) or doc is None or doc.get("type") != "session_meta":
            continue
        if payload.get("cwd") == cwd:
            sid = valid_id("codex", payload.get("id"))
            if sid and path.name.endswith(f"{sid}.jsonl"):
                return sid
    return None


def _gemini(pids: list[int], env: Mapping[str, str], cwd: str, since: float | None) -> str | None:
    base = _home(env) / ".gemini"
    digest = sha256_hex(cwd.encode())
    dirs = [base / "tmp" / digest]
    raw = read_capped(base / "projects.json")
    with contextlib.suppress(ValueError, UnicodeDecodeError, AttributeError, TypeError):
        short = json.loads(raw or b"{}").get("projects", {}).get(cwd)
        if isinstance(short, str) and short and "/" not in short and short not in (".", ".."):
            dirs.insert(0, base / "tmp" / short)
    for d in dirs:
        for path in _newest(str(d / "chats" / "session-*.jsonl")):
            if since is not None and _mtime(path) < since - 2:
                break
            doc = _first_json_line(path)
            if doc and doc.get("projectHash") == digest and doc.get("kind", "main") == "main":
                sid = valid_id("gemini", doc.get("sessionId"))
                if sid:
                    return sid
    return None


def _opencode(pids: list[int], env: Mapping[str, str], cwd: str, since: float | None) -> str | None:
    data = Path(env["XDG_DATA_HOME"]) if env.get("XDG_DATA_HOME") else _home(env) / ".local" / "share"
    db = data / "opencode" / "opencode.db"
    try:
        if not stat.S_ISREG(os.lstat(db).st_mode):
            return None
    except OSError:
        return None
    try:
        conn = sqlite3.connect(f"file:{quote(str(db))}?mode=ro", uri=True, timeout=0.5)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute(
            "SELECT id, time_updated FROM session WHERE directory = ? AND parent_id IS NULL "
            "ORDER BY time_updated DESC LIMIT 1",
            (cwd,),
        ).fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    if not row or (since is not None and isinstance(row[1], int) and row[1] / 1000 < since - 2):
        return None  # a session of an earlier run: this one has not started a conversation yet
    return valid_id("opencode", row[0])


def _copilot(pids: list[int], env: Mapping[str, str], cwd: str, since: float | None) -> str | None:
    base = Path(env["COPILOT_HOME"]) if env.get("COPILOT_HOME") else _home(env) / ".copilot"
    for pid in pids:
        for lock in glob.glob(str(base / "session-state" / "*" / f"inuse.{pid}.lock")):
            sid = valid_id("copilot", Path(lock).parent.name)
            if sid:
                return sid
    return None


_READERS = {
    "claude": (_claude, "claude-sessions"),
    "codex": (_codex, "codex-rollout"),
    "gemini": (_gemini, "gemini-chats"),
    "opencode": (_opencode, "opencode-db"),
    "copilot": (_copilot, "copilot-session-state"),
}


def probe(pid: int, argv: Sequence[str] | None, cwd: str | None = None) -> PaneAgent | None:
    """The agent ``pid`` runs (``argv`` is its command line) and its conversation id, when its own
    records tell it. Never raises: an unreadable record is no id."""
    found = detect_agent(argv)
    if found is None:
        return None
    agent = found[0]
    try:
        env = _environ(pid)
        here = procs.cwd(pid) or cwd or ""
        reader = _READERS.get(agent)
        if reader is not None:
            sid = reader[0](_descendants(pid), env, here, procs.start_time(pid))
            if sid:
                return PaneAgent(agent, sid, reader[1])
        sid = argv_id(agent, argv)
        if sid:
            return PaneAgent(agent, sid, "argv")
    except Exception:  # a record we cannot read is no id, never a failed snapshot
        log.debug("agent probe of pid %s failed", pid, exc_info=True)
    return PaneAgent(agent, None, "none")
