"""Whether the workspace's tmux session can be running, answered without starting tmux.

`tether step` runs after every agent step and attaches a tmux snapshot when the session runs.
A tmux server listens on a socket file: when there is no file at the socket the link talks to,
no server runs there and no session can be asked for (a file a killed server left behind is
still asked: tmux then says there is no server). This module imports nothing of the tmux link.
"""

from __future__ import annotations

import os
import stat

SOCKET_ENV = "TETHER_TMUX_SOCKET"


def link_socket(configured: str | None) -> str | None:
    """The socket the workspace's link passes to tmux (``-S``): the user's config, else
    ``$TETHER_TMUX_SOCKET``; None: tmux's own default."""
    return configured or os.environ.get(SOCKET_ENV) or None


def default_socket() -> str:
    """Where a tmux client given neither ``-S`` nor ``-L`` connects, as tmux finds it: inside
    tmux, the socket named in ``$TMUX``; else ``$TMUX_TMPDIR`` (or /tmp) ``/tmux-UID/default``."""
    inside = os.environ.get("TMUX", "")
    if inside and not inside.startswith(","):
        return inside.split(",", 1)[0]
    return os.path.join(os.environ.get("TMUX_TMPDIR") or "/tmp", f"tmux-{os.getuid()}", "default")


def server_may_run(socket: str | None) -> bool:
    """False only when nothing listens at ``socket`` (None: tmux's default) for sure."""
    try:
        st = os.stat(socket or default_socket())
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True  # cannot tell (a directory we may not search): tmux answers
    return stat.S_ISSOCK(st.st_mode)


def which_tmux() -> str | None:
    """``shutil.which("tmux")`` without importing shutil (bz2, lzma, fnmatch under it)."""
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(d, "tmux")
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None
