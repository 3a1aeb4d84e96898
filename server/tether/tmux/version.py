"""Which tmux is on PATH, and whether it is new enough for Tether.

Tether drives tmux with flags that older servers reject with their usage text (pane options
``set-option -p`` and ``new-window -e`` came in 3.0), or answer with errors that read like "no
server running". Every tmux entry point goes through :func:`require` first, so an old tmux is
reported as what it is. ``tmux -V`` runs once per binary per process: the answer is cached
under the binary's path and stat, so an upgrade in place is noticed by a long-lived server.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

from tether.errors import TmuxError

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
    found = shutil.which("tmux")
    if not found:
        raise TmuxMissingError("tmux is not installed (no `tmux` on PATH)")
    return found


def version_of(path: str) -> TmuxVersion:
    """``tmux -V`` of the binary at ``path``, cached per process while the file is unchanged."""
    try:
        st = os.stat(path)
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
    except OSError:
        key = (0, 0, 0)
    return _version_of(path, key)


@lru_cache(maxsize=8)
def _version_of(path: str, _key: tuple[int, int, int]) -> TmuxVersion:
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
