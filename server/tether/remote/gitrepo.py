"""The side repository Tether writes its git objects to, and the few git calls it makes.

The side repository is a bare repository in the workspace's state directory, never the user's
``.git``: the user's HEAD, index, branches, stash, config and even object store stay byte for
byte as they were. Pushes read the user's objects through ``GIT_ALTERNATE_OBJECT_DIRECTORIES``
(for that one process only) so a blob the remote already has through the user's branches is not
sent again; objects are never *written* with the alternate in place, so a ``git gc`` of the
user's repository can never take an object the side repository relies on.
"""

from __future__ import annotations

import os
import re
import subprocess
import zlib
from collections.abc import Sequence
from pathlib import Path

from tether.errors import HandoffError
from tether.git import run_git
from tether.logs import get_logger

log = get_logger(__name__)

REF_PREFIX = "refs/tether"
INCOMING_PREFIX = "refs/tether-incoming"
_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")
_OBJECT_ID_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def ref_part(text: str) -> str:
    """A safe single ref component (check-ref-format: no '..', no leading '.', no '.lock')."""
    out = _NAME_RE.sub("-", text).strip("-.") or "x"
    out = out.replace("..", "-")
    return out[:-5] + "-lock" if out.endswith(".lock") else out[:80]


def user_git_dir(root: Path) -> Path | None:
    """The user's git directory for ``root`` (read-only use), or None outside a repository."""
    res = run_git(["rev-parse", "--absolute-git-dir"], cwd=root, check=False)
    if res.returncode != 0:
        return None
    return Path(res.stdout.decode().strip())


def user_objects(root: Path) -> Path | None:
    res = run_git(["rev-parse", "--git-path", "objects"], cwd=root, check=False)
    if res.returncode != 0:
        return None
    p = Path(res.stdout.decode().strip())
    return (root / p).resolve() if not p.is_absolute() else p


def resolve_remote(root: Path, remote: str) -> str:
    """A configured remote's URL (read from config, never written), else ``remote`` as a URL."""
    res = run_git(["remote", "get-url", "--", remote], cwd=root, check=False)
    if res.returncode == 0:
        return res.stdout.decode().strip()
    if "://" in remote or remote.startswith("/") or ":" in remote or Path(remote).exists():
        return remote
    raise HandoffError(f"no git remote named {remote!r} in {root} (give a remote name or a URL)")


def workspace_id(root: Path) -> str:
    """Same on every clone of the project: its first commit, else the directory's name."""
    res = run_git(["rev-list", "--max-parents=0", "--max-count=1", "HEAD"], cwd=root, check=False)
    sha = res.stdout.decode().strip() if res.returncode == 0 else ""
    return f"ws-{sha[:12]}" if sha else ref_part(root.name)


def default_who() -> str:
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "user"
    return ref_part(f"{user}@{socket.gethostname()}")


def _make_private(path: Path) -> None:
    """A side repository created before it was private: restrict what exists, and make git
    create the rest private."""
    run_git(["config", "core.sharedRepository", "0600"], git_dir=path)
    for dirpath, _dirs, files in os.walk(path):
        os.chmod(dirpath, 0o700)
        for name in files:
            f = os.path.join(dirpath, name)
            if not os.path.islink(f):
                os.chmod(f, os.stat(f).st_mode & 0o700)


class SideRepo:
    """Tether's own bare repository for one workspace (0700, in the state directory)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def open(cls, state_dir: Path) -> SideRepo:
        path = state_dir / "handoff.git"
        if not (path / "HEAD").exists():
            path.mkdir(mode=0o700, exist_ok=True)
            # Private like the rest of the state dir: git creates everything 0700/0600 (objects
            # 0400), whatever the umask; no template (sample hooks, description).
            run_git(
                ["init", "--bare", "-q", "--template=", "--shared=0600", str(path)],
                what="creating the hand-off repository",
            )
            run_git(["config", "gc.auto", "0"], git_dir=path)
        elif (path / "config").stat().st_mode & 0o077:
            _make_private(path)
        return cls(path)

    def git(self, args: Sequence[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
        return run_git(args, git_dir=self.path, **kw)  # type: ignore[arg-type]

    def loose_commit(self, ref: str) -> tuple[str, str] | None:
        """(id, message) of the commit ``ref`` names, read from the loose ref file and loose
        object when both are (an incremental export is unpacked: fast-import unpacks fewer
        than 100 objects), without a git process; None otherwise (packed, a symbolic ref, a
        tag…): then ask git."""
        try:
            sha = (self.path / ref).read_bytes().decode("ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        if not _OBJECT_ID_RE.fullmatch(sha):
            return None
        try:
            raw = zlib.decompress((self.path / "objects" / sha[:2] / sha[2:]).read_bytes())
        except (OSError, zlib.error):
            return None
        header, _, body = raw.partition(b"\0")
        if not header.startswith(b"commit "):
            return None
        # Headers end at the first empty line (continuation lines start with a space).
        _, sep, message = body.partition(b"\n\n")
        return (sha, message.decode("utf-8", "replace")) if sep else None

    def rev(self, ref: str) -> str | None:
        res = self.git(["rev-parse", "--verify", "-q", ref + "^{commit}"], check=False)
        return res.stdout.decode().strip() if res.returncode == 0 else None

    def refs(self, prefix: str) -> dict[str, str]:
        res = self.git(["for-each-ref", "--format=%(objectname) %(refname)", prefix])
        out: dict[str, str] = {}
        for line in res.stdout.decode().splitlines():
            sha, _, name = line.partition(" ")
            out[name] = sha
        return out

    def is_ancestor(self, old: str, new: str) -> bool:
        return self.git(["merge-base", "--is-ancestor", old, new], check=False).returncode == 0
