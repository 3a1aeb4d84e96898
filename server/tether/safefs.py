"""File system access that a symlink cannot redirect.

Checking a path and then using it by name leaves a window in which a directory can be swapped
for a symlink (a restore racing a hostile agent, a state dir whose subdirectory a repository
ships as a symlink). Here every directory is reached from an already opened parent with
``O_NOFOLLOW``, and files are created, read, renamed and removed relative to the opened directory
(``dir_fd``), so what was checked is what is written.

- Workspace files: :func:`read_file`, :func:`write_file`, :func:`unlink_file`, :func:`open_dir`
  take the resolved workspace root and a relative path; a symlink anywhere below the root is
  refused (:class:`~tether.errors.OutsideWorkspaceError`) or, when reading, read as absent.
- Tether's own directories: :func:`private_dir` creates 0700 directories, below a trusted base
  never through a symlink and never one owned by someone else.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as stat_mod
from collections.abc import Iterator
from pathlib import Path

from tether.errors import OutsideWorkspaceError

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR = os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC
_DIR_NOFOLLOW = _DIR | os.O_NOFOLLOW


class SymlinkInPathError(OSError):
    """A component that must be a real directory is a symlink."""


def _is_symlink_at(dir_fd: int, name: str) -> bool:
    try:
        return stat_mod.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode)
    except OSError:
        return False


def _open_child_dir(dir_fd: int, name: str, shown: str) -> int:
    """``name`` in ``dir_fd`` opened as a directory, never through a symlink."""
    try:
        return os.open(name, _DIR_NOFOLLOW, dir_fd=dir_fd)
    except OSError as exc:
        # O_DIRECTORY | O_NOFOLLOW on a symlink fails with ENOTDIR (Linux) or ELOOP.
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_symlink_at(dir_fd, name):
            raise SymlinkInPathError(errno.ELOOP, "is a symlink (not followed)", shown) from None
        raise


def _parts(rel: str) -> list[str]:
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise OutsideWorkspaceError(f"{rel!r} is not a workspace-relative path")
    return parts


@contextlib.contextmanager
def open_dir(root: Path, rel_dir: str, *, create: bool = False) -> Iterator[int]:
    """An fd of workspace directory ``rel_dir`` ("" or "." for the root), walked from ``root``
    with O_NOFOLLOW; ``create``: missing directories are made (mode 0777 & ~umask, like mkdir)."""
    fd = os.open(root, _DIR)
    try:
        for i, name in enumerate([p for p in rel_dir.split("/") if p not in ("", ".")]):
            if name == "..":
                raise OutsideWorkspaceError(f"{rel_dir!r} leads outside the workspace {root}")
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o777, dir_fd=fd)
            shown = "/".join(rel_dir.split("/")[: i + 1])
            try:
                child = _open_child_dir(fd, name, shown)
            except SymlinkInPathError:
                raise OutsideWorkspaceError(
                    f"{rel_dir!r} goes through the symlink {shown!r}: not followed"
                ) from None
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def read_file(root: Path, rel: str, limit: int | None = None) -> tuple[bytes, int] | None:
    """(content, permission bits) of the regular file ``rel``; None when it is absent, not a
    regular file, a symlink, or reached through a symlinked directory."""
    parts = _parts(rel)
    try:
        with open_dir(root, "/".join(parts[:-1])) as dfd:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC, dir_fd=dfd)
    except (OutsideWorkspaceError, FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the file itself is a symlink
            return None
        raise
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat_mod.S_ISREG(st.st_mode):
            return None
        data = fh.read() if limit is None else fh.read(limit)
        return data, stat_mod.S_IMODE(st.st_mode)


def write_file(root: Path, rel: str, data: bytes, mode: int, temp_name: str) -> None:
    """Replace workspace file ``rel`` atomically (``temp_name`` in the same directory, then a
    rename), creating missing directories; every step relative to the opened directory."""
    parts = _parts(rel)
    name = parts[-1]
    perm = mode & 0o7777 or 0o644
    with open_dir(root, "/".join(parts[:-1]), create=True) as dfd:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name, dir_fd=dfd)
        fd = os.open(
            temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC, perm, dir_fd=dfd
        )
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                os.fchmod(fh.fileno(), perm)
            os.replace(temp_name, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name, dir_fd=dfd)
            raise


def unlink_file(root: Path, rel: str) -> None:
    """Remove workspace file ``rel`` (absent: nothing to do)."""
    parts = _parts(rel)
    try:
        with open_dir(root, "/".join(parts[:-1])) as dfd:
            os.unlink(parts[-1], dir_fd=dfd)
    except (FileNotFoundError, NotADirectoryError):
        return


# --- Tether's own directories ---------------------------------------------------------------


def _make_private(fd: int, shown: str) -> None:
    st = os.fstat(fd)
    if st.st_uid != os.geteuid():
        raise PermissionError(errno.EPERM, f"owned by uid {st.st_uid}, not by you", shown)
    if stat_mod.S_IMODE(st.st_mode) != 0o700:
        os.fchmod(fd, 0o700)


def private_dir(path: Path | str, base: Path | str | None = None) -> Path:
    """Create ``path`` 0700 (missing parents too, one by one, whatever the umask) and return it
    resolved.

    ``base`` is a directory the user chose (``$TETHER_STATE_DIR``…): the existing part of its
    path is followed as given. Everything from ``base`` down is Tether's: each component is
    opened with O_NOFOLLOW from its parent, so a symlink (a directory a repository shipped as
    one, or swapped in) is refused, not followed; a directory owned by someone else is refused
    rather than chmod'ed. Without ``base``, ``path`` itself is the user's choice.
    """
    target = Path(os.path.abspath(path))
    top = Path(os.path.abspath(base)) if base is not None else target
    below = target.relative_to(top).parts  # ValueError when path is not under base
    anchor = top
    missing: list[str] = []
    while not os.path.isdir(anchor) and anchor != anchor.parent:
        # (A directory another process created this instant is not "not a directory".)
        if os.path.lexists(anchor) and not os.path.islink(anchor) and not os.path.isdir(anchor):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(anchor))
        missing.insert(0, anchor.name)
        anchor = anchor.parent
    real = Path(os.path.realpath(anchor))
    fd = os.open(real, _DIR)
    try:
        if not missing:
            _make_private(fd, str(top))
        shown = real
        for name in (*missing, *below):
            shown = shown / name
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=fd)
            try:
                child = _open_child_dir(fd, name, str(shown))
            except NotADirectoryError:
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(shown)) from None
            os.close(fd)
            fd = child
            _make_private(fd, str(shown))
        return shown
    finally:
        os.close(fd)


def create_private_file(dir_path: Path, name: str) -> int:
    """An fd to write ``dir_path/name`` (created 0600, truncated), never through a symlink."""
    fd = os.open(dir_path / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | _CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older file may have been created with other bits
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_upto(fd: int, limit: int) -> bytes:
    """At most ``limit`` bytes of ``fd`` from its offset (fewer at its end), read in chunks of at
    most 1 MiB: a file that grows while it is read cannot make the read unbounded."""
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_capped(path: Path | str, cap: int) -> bytes | None:
    """A regular file's bytes, never through a symlink, None when bigger than ``cap``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode) or st.st_size > cap:
            return None
        return os.read(fd, cap + 1)[:cap]
    except OSError:
        return None
    finally:
        os.close(fd)
