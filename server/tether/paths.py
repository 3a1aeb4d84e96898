"""Where state lives, how it is created (0700 dirs, 0600 files), and workspace path safety."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from pathlib import Path

from tether.errors import OutsideWorkspaceError
from tether.text import LazyPattern

STATE_DIR_ENV = "TETHER_STATE_DIR"
# What marks a workspace's root when none is named: the nearest parent holding one of these.
ROOT_MARKERS = (".git", ".agent-session.json", ".hg")

# Restore writes `.NAME.tether-PID.tmp` next to each file and renames it over NAME. A restore
# killed between the two leaves it behind: never tracked, swept by the next restore.
_RESTORE_TEMP_RE = LazyPattern(r"\..+\.tether-(\d+)\.tmp")


def restore_temp_name(name: str) -> str:
    return f".{name}.tether-{os.getpid()}.tmp"


def restore_temp_pid(name: str) -> int | None:
    """The writer's pid when ``name`` (a base name) is a restore temp file, else None."""
    m = _RESTORE_TEMP_RE.fullmatch(name) if name.endswith(".tmp") else None
    return int(m.group(1)) if m else None


# Where platformdirs is asked for the user's dirs. Elsewhere (Linux, the BSDs) its answer is the
# XDG base directory one, computed by :func:`user_dir`: importing platformdirs, with tempfile
# under it, costs ~5 ms of every command, and agents run a hook after every tool call.
PLATFORMDIRS_OS = sys.platform in ("darwin", "win32", "cygwin", "ios", "android")
_XDG = {"config": ("XDG_CONFIG_HOME", ".config"), "state": ("XDG_STATE_HOME", ".local/state")}


def user_dir(kind: str) -> Path:
    """platformdirs' ``user_{kind}_dir("tether")`` (``kind``: config or state): on an XDG system
    ``$XDG_{KIND}_HOME/tether`` (an absolute value only, as the spec says), else
    ``~/.config/tether`` or ``~/.local/state/tether``."""
    if PLATFORMDIRS_OS:
        import platformdirs

        return Path(
            platformdirs.user_config_dir("tether")
            if kind == "config"
            else platformdirs.user_state_dir("tether")
        )
    var, default = _XDG[kind]
    base = os.environ.get(var, "")
    return Path(base if os.path.isabs(base) else os.path.join(os.path.expanduser("~"), default)) / "tether"


def find_root(start: Path) -> Path:
    """The nearest parent of ``start`` (itself included) with a root marker, else ``start``."""
    start = start.resolve()
    for d in (start, *start.parents):
        if any(os.path.exists(d / m) for m in ROOT_MARKERS):
            return d
    return start


def state_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The store's directory, created 0700 and returned resolved: explicit override (``tether
    --state-dir``), then $TETHER_STATE_DIR, then the platform's. Never an editor setting: those
    can come from a file in the repository."""
    if override:
        base = Path(override)
    elif os.environ.get(STATE_DIR_ENV):
        base = Path(os.environ[STATE_DIR_ENV])
    else:
        base = user_dir("state")
    return ensure_private_dir(base)


def ensure_private_dir(path: Path, base: Path | None = None) -> Path:
    """Create ``path`` (and missing parents, also 0700) and force it to 0700, whatever the umask;
    returned resolved. Below ``base`` (a state dir), no component is followed through a symlink
    or taken when another user owns it (see :func:`tether.safefs.private_dir`).
    """
    from tether.safefs import private_dir

    return private_dir(path, base)


def write_private_file(path: Path, data: bytes, base: Path | None = None) -> None:
    """Atomically replace ``path`` with ``data``, mode 0600 (temp file + fsync + rename); the
    temp file is created with O_NOFOLLOW | O_EXCL. ``base``: as for :func:`ensure_private_dir`
    when the directory must be created."""
    if base is not None or not path.parent.is_dir():
        ensure_private_dir(path.parent, base)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def normalize_rel(root: Path, path: str | os.PathLike[str]) -> str:
    """Turn a user/client path into a workspace-relative POSIX path, or raise.

    Rejects NUL bytes, ``..`` escapes, absolute paths elsewhere, and paths whose parent
    directory resolves outside ``root`` through a symlink. The last component is not
    followed: writers replace it (rename over a symlink replaces the link, not its target).
    ``root`` must already be resolved.
    """
    raw = os.fspath(path)
    if "\x00" in raw:
        raise OutsideWorkspaceError(f"path contains a NUL byte: {raw!r}")
    if not raw:
        raise OutsideWorkspaceError("empty path")
    # String operations, not pathlib: this runs for every told path and every restored file.
    base = os.fspath(root)
    prefix = base if base.endswith("/") else base + "/"
    candidate = os.path.normpath(raw if os.path.isabs(raw) else os.path.join(base, raw))
    if candidate.startswith(prefix):
        rel = candidate[len(prefix) :]
    else:
        # An absolute path may name the workspace through a symlinked alias of the root.
        try:
            head, tail = os.path.split(candidate)
            aliased = os.path.normpath(os.path.join(os.path.realpath(head), tail))
        except (OSError, RuntimeError, ValueError):
            aliased = ""
        if not aliased.startswith(prefix):
            raise OutsideWorkspaceError(f"{raw!r} is outside the workspace {root}")
        rel = aliased[len(prefix) :]
    if not rel or rel == ".." or rel.startswith("../"):
        raise OutsideWorkspaceError(f"{raw!r} is outside the workspace {root}")
    parent_rel = os.path.dirname(rel)
    if parent_rel and _symlink_below(base, parent_rel):
        try:
            parent = os.path.realpath(os.path.join(base, parent_rel))
        except (OSError, RuntimeError, ValueError) as exc:  # names too long
            raise OutsideWorkspaceError(f"cannot resolve {raw!r}: {exc}") from exc
        if not (parent + "/").startswith(prefix):
            raise OutsideWorkspaceError(f"{raw!r} leads outside the workspace {root} through a symlink")
    return rel


def _symlink_below(base: str, rel: str) -> bool:
    """Whether a directory on the way from ``base`` (resolved) to ``base/rel`` (normalized, no
    ``..``) is a symlink, or cannot be looked at (realpath then says). Without one, ``base/rel``
    resolves to itself, inside ``base``: realpath would lstat every component of ``base`` again
    (resolved already, as normalize_rel requires), and this runs for every path of an agent's
    file at every step."""
    path = base
    for name in rel.split("/"):
        path = f"{path}/{name}" if not path.endswith("/") else path + name
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return False  # nothing below exists: realpath keeps the rest of the names as they are
        except (OSError, ValueError):
            return True  # let realpath say (or raise)
        if stat.S_ISLNK(st.st_mode):
            return True
    return False


def safe_target(root: Path, rel: str) -> Path:
    """The absolute path for a stored relative path, checked again before any write.

    A stored path is re-validated because a symlink may have been planted in the workspace
    since the checkpoint was taken.
    """
    checked = normalize_rel(root, rel)
    if checked != rel:
        raise OutsideWorkspaceError(f"stored path {rel!r} is not in normal form")
    return root / rel
