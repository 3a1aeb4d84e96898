"""Which tmux is on PATH, and whether it is new enough for Tether.

Tether drives tmux with flags that older servers reject with their usage text (pane options
``set-option -p`` and ``new-window -e`` came in 3.0), or answer with errors that read like "no
server running". Every tmux entry point goes through :func:`require` first, so an old tmux is
reported as what it is. ``tmux -V`` runs once per binary per process: the answer is cached
under the binary's path and stat, so an upgrade in place is noticed by a long-lived server;
:func:`cached_version` keeps it in the state dir too, for the commands that run after every agent
step: no process is started while the binary is the same file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from functools import lru_cache
from pathlib import Path

from tether.errors import TmuxError
from tether.record import dataclass

MIN_VERSION = (3, 0)
_VERSION_RE = re.compile(r"(\d+)\.(\d+)([a-z]?)")


class TmuxMissingError(TmuxError):
    """No ``tmux`` on PATH."""


class TmuxTooOldError(TmuxError):
    """The tmux on PATH is older than :data:`MIN_VERSION`."""

    reason = "tmuxTooOld"


@dataclass(frozen=True)
class TmuxVersion:
    path: str
    text: str  # what ``tmux -V`` printed, e.g. "tmux 3.3a"
    number: tuple[int, int] | None  # None: not a version we can read ("tmux master")

    @property
    def too_old(self) -> bool:
        return self.number is not None and self.number < MIN_VERSION

    @property
    def label(self) -> str:
        """``3.3a`` from ``tmux 3.3a``; the whole text when it has no number."""
        m = _VERSION_RE.search(self.text)
        return m.group(0) if m else self.text


def parse_version(text: str) -> tuple[int, int] | None:
    """``tmux 3.3a`` → (3, 3); ``tmux next-3.4`` → (3, 4); ``tmux openbsd-7.4`` (OpenBSD's own
    numbering, a current tmux) and ``tmux master`` → None: not judged."""
    if "openbsd" in text.lower():
        return None
    m = _VERSION_RE.search(text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def need_text() -> str:
    return f"{MIN_VERSION[0]}.{MIN_VERSION[1]}"


def find_tmux() -> str:
    from tether.tmux.presence import which_tmux

    found = which_tmux()
    if not found:
        raise TmuxMissingError("tmux is not installed (no `tmux` on PATH)")
    return found


def _identity(path: str) -> tuple[int, int, int, int]:
    try:
        st = os.stat(path)
        return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    except OSError:
        return (0, 0, 0, 0)


def version_of(path: str) -> TmuxVersion:
    """``tmux -V`` of the binary at ``path``, cached per process while the file is unchanged."""
    return _version_of(path, _identity(path))


CACHE_NAME = "tmux-version.json"


def cached_version(path: str, state: Path) -> TmuxVersion:
    """:func:`version_of`, kept in ``state``/tmux-version.json under the binary's path and
    identity (device, inode, mtime, size): ``tmux -V`` runs again only when the binary changed
    (an upgrade in place, another tmux first on PATH). A broken or unwritable cache only costs
    the process it would have saved."""
    key = list(_identity(path))
    cache = state / CACHE_NAME
    try:
        doc = json.loads(cache.read_bytes())
        if doc["path"] == path and doc["key"] == key and isinstance(doc["text"], str):
            number = doc["number"]
            if number is None:
                return TmuxVersion(path, doc["text"], None)
            major, minor = number
            if isinstance(major, int) and isinstance(minor, int):
                return TmuxVersion(path, doc["text"], (major, minor))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    v = version_of(path)
    from tether.paths import write_private_file

    doc = {"path": path, "key": key, "text": v.text, "number": v.number}
    with contextlib.suppress(OSError):
        write_private_file(cache, json.dumps(doc).encode())
    return v


@lru_cache(maxsize=8)
def _version_of(path: str, _key: tuple[int, int, int, int]) -> TmuxVersion:
    import subprocess

    try:
        res = subprocess.run(
            [path, "-V"],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=10,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise TmuxError(f"{path} -V did not answer within 10s") from None
    except OSError as exc:
        raise TmuxError(f"cannot run tmux: {exc}") from exc
    text = (res.stdout.strip() or res.stderr.strip()).splitlines()
    first = text[0] if text else ""
    return TmuxVersion(path, first, parse_version(first) if res.returncode == 0 else None)


def too_old_message(v: TmuxVersion) -> str:
    return f"tmux {v.label} is too old; Tether needs ≥ {need_text()} ({v.path}; upgrade tmux)"


def require() -> str:
    """The path of a tmux new enough for Tether; :class:`TmuxMissingError` or
    :class:`TmuxTooOldError` otherwise."""
    path = find_tmux()
    v = version_of(path)
    if v.too_old:
        raise TmuxTooOldError(too_old_message(v))
    return path
